//! The CNI runtime with Debian's real plugins (containernetworking-plugins), inside a "node"
//! network namespace of the test's own so the host's interfaces and rules are never touched.

use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;

use tinykube_kubelet::network::cni::{self, Attachment, Cni, NetworkConfigList, PortMapping};
use tinykube_kubelet::network::{masq, netns};

/// Runs `f` on a thread that lives in network namespace `ns` (setns only moves the calling
/// thread; the processes it spawns start in that namespace too).
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(netns::path(ns)).unwrap();
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Namespaces removed even when the test fails.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = netns::delete(n);
        }
        netns::release_dir();
    }
}

#[test]
fn bridge_and_host_local_wire_a_pod_and_del_undoes_it() {
    let plugins = Path::new("/usr/lib/cni");
    assert!(
        plugins.join("bridge").exists(),
        "install Debian's containernetworking-plugins (hack/test.sh does)"
    );
    let id = std::process::id();
    let (node, pod_a, pod_b) = (
        format!("tk-test-node-{id}"),
        format!("tk-test-a-{id}"),
        format!("tk-test-b-{id}"),
    );
    let _guard = Namespaces(vec![pod_a.clone(), pod_b.clone(), node.clone()]);
    for n in [&node, &pod_a, &pod_b] {
        netns::create(n).unwrap();
    }
    // Creating again is harmless and gives the same namespace.
    netns::create(&node).unwrap();
    assert!(netns::is_netns(&netns::path(&node)));

    let tmp = tempfile::tempdir().unwrap();
    let list =
        NetworkConfigList::default_bridge("10.250.0.0/24", "tktest0", &tmp.path().join("ipam"));
    let runtime = Cni {
        plugin_dirs: vec![plugins.into()],
        cache_dir: tmp.path().join("cache"),
    };
    let att = |ns: &str, cid: &str, ports: Vec<PortMapping>| Attachment {
        container_id: cid.into(),
        netns: netns::path(ns),
        ifname: "eth0".into(),
        pod_namespace: "default".into(),
        pod_name: ns.into(),
        port_mappings: ports,
    };

    in_netns(&node, || {
        ip(&["link", "set", "lo", "up"]);
        let a = runtime.add(&list, &att(&pod_a, "ca", vec![])).unwrap();
        let ip_a = cni::pod_ip(&a).unwrap();
        assert!(ip_a.starts_with("10.250.0."), "{a}");
        let b = runtime
            .add(
                &list,
                &att(
                    &pod_b,
                    "cb",
                    vec![PortMapping {
                        host_port: 30080,
                        container_port: 8080,
                        protocol: "tcp".into(),
                        host_ip: String::new(),
                    }],
                ),
            )
            .unwrap();
        let ip_b = cni::pod_ip(&b).unwrap();
        assert_ne!(ip_a, ip_b);

        // The pod has eth0 with its address; the node reaches it over the bridge, and the
        // pods reach each other.
        let shown = ip(&["netns", "exec", &pod_a, "ip", "-4", "addr", "show", "eth0"]);
        assert!(shown.contains(&format!("inet {ip_a}/24")), "{shown}");
        let ping = |args: &[&str]| {
            Command::new(args[0])
                .args(&args[1..])
                .status()
                .unwrap()
                .success()
        };
        assert!(ping(&["busybox", "ping", "-c", "1", "-W", "2", &ip_a]));
        assert!(ping(&[
            "ip", "netns", "exec", &pod_b, "busybox", "ping", "-c", "1", "-W", "2", &ip_a
        ]));
        // portmap ran only for the pod with a hostPort.
        let nat = Command::new("iptables-save")
            .args(["-t", "nat"])
            .output()
            .unwrap();
        let nat = String::from_utf8_lossy(&nat.stdout);
        assert!(
            nat.contains("--dport 30080") && nat.contains(&format!("{ip_b}:8080")),
            "{nat}"
        );

        // DEL (twice: it is idempotent) removes the veth, the address lease and the hostPort rule.
        for _ in 0..2 {
            runtime.del(&list, &att(&pod_a, "ca", vec![])).unwrap();
            runtime.del(&list, &att(&pod_b, "cb", vec![])).unwrap();
        }
        assert!(Command::new("ip")
            .args(["netns", "exec", &pod_a, "ip", "link", "show", "eth0"])
            .output()
            .unwrap()
            .stderr
            .starts_with(b"Device \"eth0\" does not exist"));
        let leases = std::fs::read_dir(tmp.path().join("ipam/tinykube"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("10.250.")
            })
            .count();
        assert_eq!(leases, 0);
        let nat = Command::new("iptables-save")
            .args(["-t", "nat"])
            .output()
            .unwrap();
        assert!(!String::from_utf8_lossy(&nat.stdout).contains("--dport 30080"));
    });

    // The namespaces go away with delete; deleting twice is fine.
    for n in [&pod_a, &pod_b, &node] {
        netns::delete(n).unwrap();
        netns::delete(n).unwrap();
        assert!(!netns::path(n).exists());
    }
}

#[test]
fn a_failing_plugin_is_reported_with_its_message() {
    let tmp = tempfile::tempdir().unwrap();
    let list = NetworkConfigList {
        cni_version: "1.0.0".into(),
        name: "broken".into(),
        plugins: vec![serde_json::json!({"type": "bridge", "ipam": {"type": "nonexistent-ipam"}})],
    };
    let runtime = Cni {
        plugin_dirs: vec!["/usr/lib/cni".into()],
        cache_dir: tmp.path().join("cache"),
    };
    let name = format!("tk-test-fail-{}", std::process::id());
    let node = format!("tk-test-fnode-{}", std::process::id());
    let _guard = Namespaces(vec![name.clone(), node.clone()]);
    netns::create(&name).unwrap();
    netns::create(&node).unwrap();
    // The bridge plugin makes its bridge before asking IPAM: keep that off the host.
    in_netns(&node, || a_failing_plugin(runtime, list, &name));
}

fn a_failing_plugin(runtime: Cni, list: NetworkConfigList, name: &str) {
    let att = Attachment {
        container_id: "x".into(),
        netns: netns::path(name),
        ifname: "eth0".into(),
        pod_namespace: "default".into(),
        pod_name: "p".into(),
        port_mappings: vec![],
    };
    let err = runtime.add(&list, &att).unwrap_err().to_string();
    assert!(
        err.contains("bridge") && err.contains("nonexistent-ipam"),
        "{err}"
    );
    // Nothing was cached for a failed ADD.
    assert!(std::fs::read_dir(&runtime.cache_dir).map_or(true, |d| d.count() == 0));
    let missing = NetworkConfigList {
        plugins: vec![serde_json::json!({"type": "no-such-plugin"})],
        ..list
    };
    let err = runtime.add(&missing, &att).unwrap_err().to_string();
    assert!(
        err.contains("failed to find plugin \"no-such-plugin\""),
        "{err}"
    );
}

#[test]
fn pod_network_masquerade_is_one_rule_installed_once_and_removed_whole() {
    let node = format!("tk-test-masq-{}", std::process::id());
    let _guard = Namespaces(vec![node.clone()]);
    netns::create(&node).unwrap();
    in_netns(&node, || {
        let nat = || {
            let out = Command::new("iptables-save")
                .args(["-t", "nat"])
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        masq::install("10.250.0.0/24").unwrap();
        masq::install("10.250.0.0/24").unwrap();
        let rules = nat();
        assert_eq!(
            rules
                .matches("-A POSTROUTING -j TINYKUBE-POSTROUTING")
                .count(),
            1,
            "{rules}"
        );
        assert_eq!(rules.matches("-j MASQUERADE").count(), 1, "{rules}");
        assert!(
            rules.contains("-s 10.250.0.0/24 ! -d 10.250.0.0/24"),
            "{rules}"
        );
        masq::remove().unwrap();
        masq::remove().unwrap();
        assert!(!nat().contains("TINYKUBE"), "{}", nat());
    });
}
