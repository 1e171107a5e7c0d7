//! A test process killed with SIGKILL (as a CI timeout does) never runs its `Drop`s: its
//! node's namespaces, cgroups, mounts, dirs, daemons and containers stay. The next
//! `Node::start` sweeps them (tinykube_e2e::sweep). Here a child test process (this binary
//! re-executed) starts a node with a pod, is killed once the pod runs, and the sweep must
//! leave nothing of it. Needs root.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use tinykube_e2e::node::Node;
use tinykube_e2e::{eventually, sweep};

const CHILD: &str = "TINYKUBE_E2E_SWEEP_CHILD";
const TEST: &str = "a_killed_test_process_leaves_nothing_after_the_sweep";

/// The child: a node and a running pod, then it waits to be killed. Prints
/// `ready <node name> <node root> <pod uid>`.
fn child() {
    let node = Node::start();
    node.wait_ready();
    let uid = node.net.block_on(async {
        let pods: Api<Pod> = Api::namespaced(node.apiserver.client("admin").await, "default");
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "sleeper"},
            "spec": {"containers": [{"name": "c", "image": "busybox:latest",
                                     "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
        eventually(60, "the pod runs", || async {
            let p = pods.get("sleeper").await.ok()?;
            let running = p.status.as_ref()?.phase.as_deref() == Some("Running");
            running.then(|| p.metadata.uid.clone()).flatten()
        })
        .await
    });
    // On a line of its own: libtest has printed `test NAME ... ` without a newline.
    println!("\nready {} {} {uid}", node.name, node.root.path().display());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Every cgroup hierarchy's dir for `rel` that exists (v1 controllers and the cgroup2 mount).
fn cgroup_dirs(rel: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|e| e.path().join(rel))
        .chain([Path::new("/sys/fs/cgroup").join(rel)])
        .filter(|d| d.is_dir())
        .collect()
}

fn procs(dir: &Path, out: &mut BTreeSet<i32>) {
    if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(s.lines().filter_map(|l| l.parse::<i32>().ok()));
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            procs(&e.path(), out);
        }
    }
}

fn netns_pids(name: &str) -> BTreeSet<i32> {
    let out = Command::new("ip")
        .args(["netns", "pids", name])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Whether `pid` runs (not a zombie waiting for a parent that never reaps).
fn runs(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        let state = s.rsplit_once(") ").map(|(_, r)| &r[..1]);
        !matches!(state, None | Some("Z") | Some("X"))
    })
}

fn netns_of(node: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n == node || n.starts_with(&format!("{node}-")))
        .collect()
}

#[test]
fn a_killed_test_process_leaves_nothing_after_the_sweep() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let mut c = Command::new(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = c.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(r) = l.strip_prefix("ready ") {
                let _ = tx.send(r.to_string());
            }
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(120));
    let ready = ready.unwrap_or_else(|e| {
        let _ = c.kill();
        let status = c.wait();
        sweep::sweep();
        panic!("the child never had its pod running ({e}): {status:?}");
    });
    let [name, root, uid]: [&str; 3] = ready
        .split(' ')
        .collect::<Vec<_>>()
        .try_into()
        .expect("ready NAME ROOT UID");
    let (name, root) = (name.to_string(), PathBuf::from(root));
    let cgroup_root = format!("{}{name}", sweep::CGROUP_PREFIX);

    // What the child's node has: its namespace and the pod's (named after the node), cgroups
    // in every hierarchy, daemons in the node's namespace, the container in its cgroup.
    let pod_netns = format!("{name}-{uid}");
    assert_eq!(
        netns_of(&name).into_iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([name.clone(), pod_netns.clone()])
    );
    let mut pids = netns_pids(&name);
    let daemons = pids.len();
    let in_pod = netns_pids(&pod_netns);
    assert!(!in_pod.is_empty(), "nothing runs in the pod's namespace");
    pids.extend(in_pod);
    for d in cgroup_dirs(&cgroup_root) {
        procs(&d, &mut pids);
    }
    assert!(daemons >= 4, "apiserver, registry, kubelet, shim: {pids:?}");
    assert!(!cgroup_dirs(&cgroup_root).is_empty());

    c.kill().unwrap();
    c.wait().unwrap();
    // Nothing went with it.
    assert!(
        pids.iter().any(|p| runs(*p)),
        "{pids:?} ended with the child"
    );
    assert_eq!(netns_of(&name).len(), 2);

    let swept = sweep::sweep();
    assert!(swept.contains(&name), "{name} not swept: {swept:?}");
    assert_eq!(netns_of(&name), Vec::<String>::new(), "namespaces left");
    assert_eq!(
        cgroup_dirs(&cgroup_root),
        Vec::<PathBuf>::new(),
        "cgroups left"
    );
    let running: Vec<i32> = pids.iter().copied().filter(|p| runs(*p)).collect();
    assert_eq!(running, Vec::<i32>::new(), "processes left of {pids:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root_s = root.display().to_string();
    let left: Vec<&str> = mounts.lines().filter(|l| l.contains(&root_s)).collect();
    assert!(left.is_empty(), "mounts left: {left:#?}");
    assert!(!root.exists(), "{} left", root.display());
    assert!(!Path::new(sweep::RECORD_DIR).join(&name).exists());
    // A second sweep finds nothing of it.
    assert!(!sweep::sweep().contains(&name));
}
