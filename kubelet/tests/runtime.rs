//! Containers for real: the shim runs libcontainer on a busybox image's overlay rootfs,
//! copies the output into CRI log files and records the exit. Needs root.

#[path = "images/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use tinykube_kubelet::image::archive;
use tinykube_kubelet::image::rootfs::{mount_rootfs, remove_rootfs};
use tinykube_kubelet::network::netns;
use tinykube_kubelet::runtime::sandbox::{DnsConfig, Sandbox};
use tinykube_kubelet::runtime::shim::{self, ShimArgs};
use tinykube_kubelet::runtime::spec::{container_spec, BindMount, ImageConfig, Inputs};

/// A container's `stdin`, `stdinOnce` and `tty`.
#[derive(Clone, Copy, Default)]
struct Io {
    stdin: bool,
    stdin_once: bool,
    tty: bool,
}

/// A node dir with the busybox image loaded, and cgroups under a parent of the test's own.
struct Fixture {
    node: harness::Node,
    cgroup_parent: String,
    netns: String,
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
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let netns_name = format!("tk-test-rt-{}-{n}", std::process::id());
        netns::create(&netns_name).unwrap();
        Self {
            node,
            cgroup_parent: format!("tinykube-test-{}-{n}", std::process::id()),
            netns: netns_name,
        }
    }

    /// Prepares container `id` running `args` and returns the shim's arguments.
    fn bundle(&self, id: &str, args: &[&str]) -> ShimArgs {
        self.bundle_in(id, args, None)
    }

    /// The same, for a container of a pod whose sandbox (UTS/IPC namespaces, /etc files) is
    /// `sandbox`.
    fn bundle_in(&self, id: &str, args: &[&str], sandbox: Option<&Sandbox>) -> ShimArgs {
        self.bundle_io(id, args, sandbox, Io::default())
    }

    /// The same, with the container's `stdin`, `stdinOnce` and `tty`.
    fn bundle_io(&self, id: &str, args: &[&str], sandbox: Option<&Sandbox>, io: Io) -> ShimArgs {
        let image = self
            .node
            .store()
            .get("docker.io/library/busybox:latest")
            .unwrap()
            .unwrap();
        let rootfs = mount_rootfs(self.node.store(), id, &image).unwrap();
        let bundle = self.node.dir.path().join("bundles").join(id);
        std::fs::create_dir_all(&bundle).unwrap();
        // The spec the kubelet writes for a pod's container (secure defaults and all).
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": if sandbox.is_some() { "web-1" } else { "p" }, "namespace": "default", "uid": "u"},
            "spec": {"containers": [{"name": "c", "image": "busybox", "command": args,
                "stdin": io.stdin, "stdinOnce": io.stdin_once, "tty": io.tty}]}
        }))
        .unwrap();
        let container = &pod.spec.as_ref().unwrap().containers[0];
        let config = self.node.store().read_blob(&image.id).unwrap();
        let inputs = Inputs {
            rootfs,
            netns: netns::path(&self.netns),
            host_network: false,
            pidns: None,
            utsns: sandbox.map(|s| s.uts()),
            ipcns: sandbox.map(|s| s.ipc()),
            mounts: sandbox
                .map(|s| {
                    ["hosts", "hostname", "resolv.conf"]
                        .iter()
                        .map(|f| BindMount {
                            destination: format!("/etc/{f}"),
                            source: s.etc(f),
                            read_only: false,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            cgroups_path: format!("/{}/{id}", self.cgroup_parent),
            pod_ip: String::new(),
            host_ip: String::new(),
            node_name: "node".into(),
            resolved_env: Default::default(),
            service_env: vec![],
            passwd: String::new(),
            group: String::new(),
            pids_limit: Some(1024),
            seccomp_dir: "/nonexistent".into(),
        };
        let spec =
            container_spec(&pod, container, &ImageConfig::from_blob(&config), &inputs).unwrap();
        std::fs::write(
            bundle.join("config.json"),
            serde_json::to_vec(&spec).unwrap(),
        )
        .unwrap();
        ShimArgs {
            id: id.into(),
            bundle: bundle.clone(),
            state_root: self.node.dir.path().join("state"),
            log: self.node.dir.path().join("logs").join(format!("{id}.log")),
            exit_file: bundle.join("exit.json"),
            log_max_size: 10 << 20,
            log_max_files: 5,
            systemd_cgroup: false,
            stdin: io.stdin,
            stdin_once: io.stdin_once,
            tty: io.tty,
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
        // Containers a failed test left running (their shims then end with them).
        for pid in tinykube_kubelet::runtime::cgroups::procs(&self.cgroup_parent) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !tinykube_kubelet::runtime::cgroups::procs(&self.cgroup_parent).is_empty()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        tinykube_kubelet::runtime::cgroups::remove_tree(&self.cgroup_parent);
        let _ = netns::delete(&self.netns);
        netns::release_dir();
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

/// Attaches to the container of `args` (its instance directory is the bundle), sends
/// `input` then EOF, and returns the output until the exit, and the exit code.
fn attach(args: &ShimArgs, input: &[u8], resize: Option<(u16, u16)>) -> (Vec<u8>, i32) {
    use std::io::{Read, Write};
    use tinykube_kubelet::runtime::attach as a;
    let (_dir, path) = a::short_path(&args.bundle, a::SOCKET).unwrap();
    let mut s = std::os::unix::net::UnixStream::connect(path).expect("the shim listens");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(&a::frame(a::HELLO, &[1])).unwrap();
    if let Some((w, h)) = resize {
        let mut size = w.to_be_bytes().to_vec();
        size.extend(h.to_be_bytes());
        s.write_all(&a::frame(a::RESIZE, &size)).unwrap();
    }
    // A container that already ended closes the socket once it sent its output: what is
    // written then is lost, as for any client of an exited container.
    let _ = s.write_all(&a::frame(a::STDIN, input));
    let _ = s.write_all(&a::frame(a::STDIN_EOF, &[]));
    let mut d = a::Decoder::default();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).expect("output until the exit");
        assert!(n > 0, "the shim closed before the exit: {out:?}");
        d.push(&buf[..n]);
        while let Some((kind, data)) = d.next_frame().unwrap() {
            match kind {
                a::STDOUT | a::STDERR => out.extend(data),
                a::EXIT => return (out, i32::from_be_bytes(data.try_into().unwrap())),
                k => panic!("unexpected frame {k}"),
            }
        }
    }
}

#[test]
fn attach_feeds_stdin_once_and_replays_early_output_to_the_first_client() {
    let f = Fixture::new();
    let io = Io {
        stdin: true,
        stdin_once: true,
        tty: false,
    };
    // Output before anyone attached, then a stdin read to its end.
    let args = f.bundle_io(
        "c-attach",
        &["sh", "-c", "echo early; cat; echo done"],
        None,
        io,
    );
    let (report, mut child) = shim::spawn(exe(), &args).unwrap();
    assert!(report.error.is_none(), "{report:?}");
    let (out, code) = attach(&args, b"typed\n", None);
    assert_eq!(String::from_utf8_lossy(&out), "early\ntyped\ndone\n");
    assert_eq!(code, 0);
    assert!(child.wait().unwrap().success());
    assert!(!args.bundle.join("attach.sock").exists());
    // A quick exit waits for the session's client, who still gets everything.
    let args = f.bundle_io("c-quick", &["echo", "hi"], None, io);
    let (report, mut child) = shim::spawn(exe(), &args).unwrap();
    // The container is gone (its shim reaped it) before anyone attaches.
    let proc = format!("/proc/{}", report.pid.unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&proc).exists() {
        assert!(Instant::now() < deadline, "echo never ended");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (out, code) = attach(&args, b"", None);
    assert_eq!((String::from_utf8_lossy(&out).as_ref(), code), ("hi\n", 0));
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_terminal_container_is_attached_with_its_size() {
    let f = Fixture::new();
    let io = Io {
        stdin: true,
        stdin_once: true,
        tty: true,
    };
    let args = f.bundle_io("c-tty", &["sh"], None, io);
    let (report, mut child) = shim::spawn(exe(), &args).unwrap();
    assert!(report.error.is_none(), "{report:?}");
    let (out, code) = attach(
        &args,
        b"[ -t 0 ] && stty size && echo $((6*7)); exit 3\n",
        Some((100, 30)),
    );
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("30 100\r\n42\r\n"), "{out:?}");
    assert_eq!(code, 3);
    assert!(child.wait().unwrap().success());
    // The terminal's output is the container's log, as stdout.
    let log = std::fs::read_to_string(&args.log).unwrap();
    assert!(log.contains(" stdout "), "{log}");
}

#[test]
fn containers_get_kubernetes_default_confinement() {
    let f = Fixture::new();
    let script = "grep -E '^(NoNewPrivs|Seccomp|CapEff):' /proc/self/status; \
                  wc -c < /proc/timer_list; \
                  echo 1 > /proc/sys/kernel/ostype 2>/dev/null && echo sys-writable; \
                  unshare -U true 2>/dev/null && echo userns-allowed; \
                  cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null; \
                  hostname";
    let args = f.bundle("c-conf", &["sh", "-c", script]);
    let (report, mut child) = shim::spawn(exe(), &args).unwrap();
    assert!(report.error.is_none(), "{report:?}");
    child.wait().unwrap();
    assert_eq!(shim::read_exit(&args.exit_file).unwrap().exit_code, 0);
    let log = std::fs::read_to_string(&args.log).unwrap();
    let out: Vec<&str> = log
        .lines()
        .map(|l| l.splitn(4, ' ').nth(3).unwrap())
        .collect();
    assert!(out.contains(&"NoNewPrivs:\t1"), "{log}");
    assert!(out.contains(&"Seccomp:\t2"), "{log}");
    // The 14 default capabilities: docker's and containerd's 0x00000000a80425fb.
    assert!(out.contains(&"CapEff:\t00000000a80425fb"), "{log}");
    // /proc/timer_list is masked (reads empty; 6 KB on the host); /proc/sys is read-only;
    // no user namespaces; the pids limit is in force.
    assert!(out.contains(&"0"), "{log}");
    assert!(
        !out.contains(&"sys-writable") && !out.contains(&"userns-allowed"),
        "{log}"
    );
    assert!(out.contains(&"1024"), "{log}");
    assert!(out.contains(&"p"), "hostname is the pod's name: {log}");
}

#[test]
fn a_killed_container_records_the_signal() {
    let f = Fixture::new();
    let args = f.bundle("c-kill", &["sleep", "1000"]);
    let (report, mut child) = shim::spawn(exe(), &args).unwrap();
    let pid = report.pid.expect("started");
    // The container is alive and the shim keeps it: nothing to wait for when all goes well
    // (a shim that let go would exit), so it is given 100 ms to do so.
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

#[test]
fn containers_of_a_pod_share_its_hostname_ipc_and_etc_files() {
    let f = Fixture::new();
    let sandbox = Sandbox::new(&f.node.dir.path().join("pods/u"));
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-1", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    let dns = DnsConfig {
        cluster_dns: Some("10.96.0.10".into()),
        cluster_domain: "cluster.local".into(),
        host_resolv_conf: String::new(),
    };
    sandbox.create(&pod, "10.244.0.9", &dns).unwrap();
    // Creating again (a kubelet restart) keeps the namespaces.
    let uts_inode = std::fs::metadata(sandbox.uts()).unwrap();
    sandbox.create(&pod, "10.244.0.9", &dns).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(sandbox.uts()).unwrap().ino(),
        uts_inode.ino()
    );

    // Both containers report the pod's hostname, files and IPC namespace.
    let a = f.bundle_in("c-a", &["sh", "-c", "hostname; cat /etc/hosts | tail -1; head -1 /etc/resolv.conf; readlink /proc/self/ns/ipc"], Some(&sandbox));
    let b = f.bundle_in(
        "c-b",
        &["sh", "-c", "hostname; readlink /proc/self/ns/ipc"],
        Some(&sandbox),
    );
    let mut out = Vec::new();
    for args in [&a, &b] {
        let (report, mut child) = shim::spawn(exe(), args).unwrap();
        assert!(report.error.is_none(), "{report:?}");
        child.wait().unwrap();
        assert_eq!(shim::read_exit(&args.exit_file).unwrap().exit_code, 0);
        let log = std::fs::read_to_string(&args.log).unwrap();
        out.push(
            log.lines()
                .map(|l| l.splitn(4, ' ').nth(3).unwrap().to_string())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(out[0][0], "web-1");
    assert_eq!(out[0][1], "10.244.0.9\tweb-1");
    assert_eq!(
        out[0][2],
        "search default.svc.cluster.local svc.cluster.local cluster.local"
    );
    assert_eq!(out[1][0], "web-1");
    // Same IPC namespace for both containers, and not the host's.
    assert_eq!(out[0][3], out[1][1]);
    assert_ne!(
        out[0][3],
        std::fs::read_link("/proc/self/ns/ipc")
            .unwrap()
            .to_string_lossy()
    );

    sandbox.remove().unwrap();
    assert!(!sandbox.dir.exists());
}
