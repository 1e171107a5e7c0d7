//! Containers for real: the shim runs libcontainer on a busybox image's overlay rootfs,
//! copies the output into CRI log files and records the exit. Needs root.

#[path = "images/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libcontainer::oci_spec::runtime::{LinuxBuilder, ProcessBuilder, RootBuilder, Spec};
use tinykube_kubelet::image::archive;
use tinykube_kubelet::image::rootfs::{mount_rootfs, remove_rootfs};
use tinykube_kubelet::runtime::shim::{self, ShimArgs};

/// A node dir with the busybox image loaded, and cgroups under a parent of the test's own.
struct Fixture {
    node: harness::Node,
    cgroup_parent: String,
}

impl Fixture {
    fn new() -> Self {
        let node = harness::Node::new(&[]);
        let base = tinykube_images::busybox_layer(&harness::busybox()).unwrap();
        let archive_file = node.dir.path().join("busybox.tar");
        tinykube_images::write_oci_archive(
            &archive_file,
            &[(
                "docker.io/library/busybox:latest",
                &tinykube_images::busybox_image(&base),
            )],
        )
        .unwrap();
        archive::load(node.store(), &archive_file, None).unwrap();
        Self {
            node,
            cgroup_parent: format!("tinykube-test-{}", std::process::id()),
        }
    }

    /// Prepares container `id` running `args` and returns the shim's arguments.
    fn bundle(&self, id: &str, args: &[&str]) -> ShimArgs {
        let image = self
            .node
            .store()
            .get("docker.io/library/busybox:latest")
            .unwrap()
            .unwrap();
        let rootfs = mount_rootfs(self.node.store(), id, &image).unwrap();
        let bundle = self.node.dir.path().join("bundles").join(id);
        std::fs::create_dir_all(&bundle).unwrap();
        let mut spec = Spec::default();
        spec.set_root(Some(
            RootBuilder::default()
                .path(&rootfs)
                .readonly(false)
                .build()
                .unwrap(),
        ));
        let process = ProcessBuilder::default()
            .args(args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .env(vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin".to_string()])
            .cwd("/")
            .terminal(false)
            .build()
            .unwrap();
        let defaults = spec.process().clone().unwrap();
        let mut process = process;
        process.set_capabilities(defaults.capabilities().clone());
        process.set_user(defaults.user().clone());
        spec.set_process(Some(process));
        let linux = spec.linux().clone().unwrap();
        let mut lb = LinuxBuilder::default()
            .namespaces(linux.namespaces().clone().unwrap())
            .masked_paths(linux.masked_paths().clone().unwrap_or_default())
            .readonly_paths(linux.readonly_paths().clone().unwrap_or_default())
            .build()
            .unwrap();
        lb.set_cgroups_path(Some(PathBuf::from(format!("/{}/{id}", self.cgroup_parent))));
        spec.set_linux(Some(lb));
        spec.save(bundle.join("config.json")).unwrap();
        ShimArgs {
            id: id.into(),
            bundle: bundle.clone(),
            state_root: self.node.dir.path().join("state"),
            log: self.node.dir.path().join("logs").join(format!("{id}.log")),
            exit_file: bundle.join("exit.json"),
            log_max_size: 10 << 20,
            log_max_files: 5,
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for e in std::fs::read_dir(self.node.store().root().join("rootfs"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = remove_rootfs(self.node.store(), &e.file_name().to_string_lossy());
        }
        remove_cgroup_parent(&self.cgroup_parent);
    }
}

/// Removes the test's parent cgroup in every hierarchy (libcontainer removes only leaves).
fn remove_cgroup_parent(name: &str) {
    let mut dirs = vec![PathBuf::from("/sys/fs/cgroup").join(name)];
    for e in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        dirs.push(e.path().join(name));
    }
    for d in dirs {
        let _ = std::fs::remove_dir(d);
    }
}

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tinykube-kubelet"))
}

#[test]
fn a_container_runs_logs_and_exits_with_its_code() {
    let f = Fixture::new();
    let args = f.bundle(
        "c-exit",
        &[
            "sh",
            "-c",
            "echo hello; echo oops >&2; printf 'no newline'; exit 3",
        ],
    );
    let t = Instant::now();
    let (report, mut child) = shim::spawn(exe(), &args).unwrap();
    assert!(report.error.is_none(), "{report:?}");
    assert!(report.pid.unwrap() > 1);
    assert!(child.wait().unwrap().success());
    let took = t.elapsed();
    let exit = shim::read_exit(&args.exit_file).expect("exit recorded");
    assert_eq!(
        (exit.exit_code, exit.signal, exit.oom_killed),
        (3, None, false)
    );
    assert!(exit.finished_at >= exit.started_at);
    let log = std::fs::read_to_string(&args.log).unwrap();
    let records: Vec<_> = log
        .lines()
        .map(|l| l.split_once(' ').unwrap().1.to_string())
        .collect();
    assert!(records.contains(&"stdout F hello".to_string()), "{log}");
    assert!(records.contains(&"stderr F oops".to_string()), "{log}");
    assert!(
        records.contains(&"stdout F no newline".to_string()),
        "{log}"
    );
    // libcontainer deleted its state (and the container's cgroup).
    assert!(!args.state_root.join("c-exit").exists());
    eprintln!("create+start+exit+delete through the shim: {took:?}");
}

#[test]
fn a_killed_container_records_the_signal() {
    let f = Fixture::new();
    let args = f.bundle("c-kill", &["sleep", "1000"]);
    let (report, mut child) = shim::spawn(exe(), &args).unwrap();
    let pid = report.pid.expect("started");
    // The container is alive and the shim keeps it.
    std::thread::sleep(Duration::from_millis(100));
    assert!(child.try_wait().unwrap().is_none());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
    assert!(child.wait().unwrap().success());
    let exit = shim::read_exit(&args.exit_file).unwrap();
    assert_eq!((exit.exit_code, exit.signal), (137, Some(9)));
}

#[test]
fn a_bad_bundle_is_reported_not_hung() {
    let f = Fixture::new();
    let args = f.bundle("c-bad", &["/no/such/binary"]);
    let (report, mut child) = shim::spawn(exe(), &args).unwrap();
    child.wait().unwrap();
    // libcontainer reports a missing executable at create time (or the exec fails: 127).
    match report.error {
        Some(e) => assert!(e.contains("c-bad"), "{e}"),
        None => assert_eq!(shim::read_exit(&args.exit_file).unwrap().exit_code, 127),
    }
}
