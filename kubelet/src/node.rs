//! The Node: what the kubelet registers (addresses, capacity, node info, conditions), its
//! status heartbeats and its Lease in `kube-node-lease`, all with the node's own credentials.

use std::net::{IpAddr, Ipv4Addr};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::{json, Value};

/// The container runtime as the Node reports it.
pub const RUNTIME_VERSION: &str = "libcontainer://0.7.0";
/// The Kubernetes version this kubelet speaks (the apiserver serves 1.32).
pub const KUBELET_VERSION: &str = "v1.32.0-tinykube";

/// Facts about this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFacts {
    pub cpus: u64,
    pub memory_bytes: u64,
    pub ephemeral_bytes: u64,
    pub kernel: String,
    pub os_image: String,
    pub machine_id: String,
    pub boot_id: String,
    pub architecture: String,
}

/// How the node presents itself.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub name: String,
    pub node_ip: IpAddr,
    pub pod_cidr: String,
    pub max_pods: u32,
    pub kubelet_port: u16,
    /// The kubelet's root dir: its filesystem is the node's (nodefs and imagefs).
    pub root_dir: std::path::PathBuf,
}

/// The eviction signals behind the node's pressure conditions, as the kubelet's eviction
/// manager reads them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signals {
    /// `memory.available`: what the node can still give without reclaiming (MemAvailable).
    pub memory_available: u64,
    /// `nodefs.available` and the filesystem's size, bytes.
    pub nodefs_available: u64,
    pub nodefs_size: u64,
    /// `nodefs.inodesFree` and the filesystem's inodes.
    pub nodefs_inodes_free: u64,
    pub nodefs_inodes: u64,
}

/// The node's pressure conditions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pressure {
    pub memory: bool,
    pub disk: bool,
    pub pid: bool,
}

/// Kubernetes' default hard eviction thresholds (`evictionHard`): memory.available<100Mi,
/// nodefs.available<10%, nodefs.inodesFree<5% (imagefs is the same filesystem here, so its own
/// thresholds do not apply, as in the kubelet). `pid.available` has no default threshold:
/// PIDPressure stays False.
pub fn pressure(s: &Signals) -> Pressure {
    const MEMORY: u64 = 100 << 20;
    Pressure {
        memory: s.memory_available < MEMORY,
        disk: (s.nodefs_size > 0 && s.nodefs_available * 10 < s.nodefs_size)
            || (s.nodefs_inodes > 0 && s.nodefs_inodes_free * 20 < s.nodefs_inodes),
        pid: false,
    }
}

/// Reads the signals on this machine (`root_dir`: the kubelet's).
pub fn read_signals(root_dir: &std::path::Path) -> Signals {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = |key: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|v| v * 1024)
    };
    let mut s = Signals {
        memory_available: kib("MemAvailable:").unwrap_or(u64::MAX),
        ..Default::default()
    };
    if let Ok(v) = nix::sys::statvfs::statvfs(root_dir) {
        s.nodefs_available = v.blocks_available() * v.fragment_size();
        s.nodefs_size = v.blocks() * v.fragment_size();
        s.nodefs_inodes_free = v.files_available();
        s.nodefs_inodes = v.files();
    }
    s
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Reads the machine's facts (`data_dir`'s filesystem gives ephemeral-storage).
pub fn host_facts(data_dir: &std::path::Path) -> HostFacts {
    let memory_bytes = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024;
    let ephemeral_bytes = nix::sys::statvfs::statvfs(data_dir)
        .map(|s| s.blocks() * s.fragment_size())
        .unwrap_or(0);
    let os_image = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|r| {
            r.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".into());
    let uname = nix::sys::utsname::uname().ok();
    HostFacts {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
        memory_bytes,
        ephemeral_bytes,
        kernel: uname
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        os_image,
        machine_id: read_trim("/etc/machine-id"),
        boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
        architecture: crate::image::pull::host_platform().1.to_string(),
    }
}

/// The address of the interface that holds the default route (as the kubelet picks its
/// InternalIP), else loopback.
pub fn default_node_ip() -> IpAddr {
    let iface = std::fs::read_to_string("/proc/net/route")
        .ok()
        .and_then(|t| {
            t.lines().skip(1).find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() > 2 && f[1] == "00000000").then(|| f[0].to_string())
            })
        });
    if let Some(iface) = iface {
        if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
            for a in addrs {
                if a.interface_name != iface {
                    continue;
                }
                if let Some(sin) = a.address.as_ref().and_then(|s| s.as_sockaddr_in()) {
                    return IpAddr::V4(sin.ip());
                }
            }
        }
    }
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The node's conditions: Ready, and memory/disk/PID pressure, with Kubernetes' reasons and
/// messages.
pub fn conditions(ready: bool, ready_message: &str, p: Pressure) -> Value {
    let now = now();
    let cond = |t: &str, status: &str, reason: &str, message: &str| {
        json!({"type": t, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let pressure = |t: &str, on: bool, yes: (&str, &str), no: (&str, &str)| {
        let (reason, message) = if on { yes } else { no };
        cond(t, if on { "True" } else { "False" }, reason, message)
    };
    json!([
        pressure(
            "MemoryPressure",
            p.memory,
            (
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available"
            ),
            (
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available"
            ),
        ),
        pressure(
            "DiskPressure",
            p.disk,
            ("KubeletHasDiskPressure", "kubelet has disk pressure"),
            ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ),
        pressure(
            "PIDPressure",
            p.pid,
            (
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available"
            ),
            (
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available"
            ),
        ),
        if ready {
            cond("Ready", "True", "KubeletReady", ready_message)
        } else {
            cond("Ready", "False", "KubeletNotReady", ready_message)
        },
    ])
}

/// The status part of the Node (what heartbeats write).
pub fn node_status(
    cfg: &NodeConfig,
    facts: &HostFacts,
    ready: bool,
    message: &str,
    pressure: Pressure,
) -> Value {
    let resources = json!({
        "cpu": facts.cpus.to_string(),
        "memory": format!("{}Ki", facts.memory_bytes / 1024),
        "ephemeral-storage": format!("{}Ki", facts.ephemeral_bytes / 1024),
        "pods": cfg.max_pods.to_string(),
    });
    json!({
        "capacity": resources,
        "allocatable": resources,
        "conditions": conditions(ready, message, pressure),
        "addresses": [
            {"type": "InternalIP", "address": cfg.node_ip.to_string()},
            {"type": "Hostname", "address": cfg.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": cfg.kubelet_port}},
        "nodeInfo": {
            "machineID": facts.machine_id,
            "systemUUID": facts.machine_id,
            "bootID": facts.boot_id,
            "kernelVersion": facts.kernel,
            "osImage": facts.os_image,
            "containerRuntimeVersion": RUNTIME_VERSION,
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": facts.architecture,
        },
    })
}

/// The whole Node object registered on first start.
pub fn node_object(cfg: &NodeConfig, facts: &HostFacts) -> Node {
    serde_json::from_value(json!({
        "metadata": {
            "name": cfg.name,
            "labels": {
                "kubernetes.io/hostname": cfg.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": facts.architecture,
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": facts.architecture,
                "node-role.kubernetes.io/control-plane": "",
            },
        },
        "spec": {"podCIDR": cfg.pod_cidr, "podCIDRs": [cfg.pod_cidr]},
        "status": node_status(cfg, facts, false, "kubelet is starting", Pressure::default()),
    }))
    .expect("node object")
}

/// Registers the node (an existing Node — a restart — gets its labels and status refreshed).
pub async fn register(client: &Client, cfg: &NodeConfig, facts: &HostFacts) -> kube::Result<Node> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = node_object(cfg, facts);
    match nodes.create(&PostParams::default(), &node).await {
        Ok(n) => Ok(n),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let labels = json!({"metadata": {"labels": node.metadata.labels}});
            nodes
                .patch(&cfg.name, &PatchParams::default(), &Patch::Merge(&labels))
                .await?;
            post_status(client, cfg, facts, false, "kubelet is starting").await
        }
        Err(e) => Err(e),
    }
}

/// A status heartbeat.
pub async fn post_status(
    client: &Client,
    cfg: &NodeConfig,
    facts: &HostFacts,
    ready: bool,
    message: &str,
) -> kube::Result<Node> {
    let nodes: Api<Node> = Api::all(client.clone());
    let p = pressure(&read_signals(&cfg.root_dir));
    let body = json!({"status": node_status(cfg, facts, ready, message, p)});
    nodes
        .patch_status(&cfg.name, &PatchParams::default(), &Patch::Merge(&body))
        .await
}

/// Creates or renews the node's Lease (40 s, renewed every 10 s by the caller).
pub async fn renew_lease(client: &Client, name: &str) -> kube::Result<Lease> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let renew = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string();
    let body = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": renew},
    });
    match leases
        .patch(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let lease: Lease = serde_json::from_value(body).expect("lease");
            leases.create(&PostParams::default(), &lease).await
        }
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> HostFacts {
        HostFacts {
            cpus: 2,
            memory_bytes: 8 << 30,
            ephemeral_bytes: 100 << 30,
            kernel: "6.1.0".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            machine_id: "m".into(),
            boot_id: "b".into(),
            architecture: "amd64".into(),
        }
    }

    #[test]
    fn the_node_reports_what_kubectl_shows() {
        let cfg = NodeConfig {
            name: "tiny".into(),
            node_ip: "192.168.1.5".parse().unwrap(),
            pod_cidr: "10.244.0.0/24".into(),
            max_pods: 110,
            kubelet_port: 10250,
            root_dir: "/".into(),
        };
        let node = node_object(&cfg, &facts());
        let v = serde_json::to_value(&node).unwrap();
        assert_eq!(v["status"]["capacity"]["memory"], "8388608Ki");
        assert_eq!(v["status"]["capacity"]["pods"], "110");
        assert_eq!(
            v["status"]["nodeInfo"]["containerRuntimeVersion"],
            "libcontainer://0.7.0"
        );
        assert_eq!(v["status"]["addresses"][0]["address"], "192.168.1.5");
        assert_eq!(v["spec"]["podCIDR"], "10.244.0.0/24");
        assert_eq!(v["metadata"]["labels"]["kubernetes.io/hostname"], "tiny");
        let types: Vec<_> = v["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["type"].as_str().unwrap(), c["status"].as_str().unwrap()))
            .collect();
        assert_eq!(
            types,
            [
                ("MemoryPressure", "False"),
                ("DiskPressure", "False"),
                ("PIDPressure", "False"),
                ("Ready", "False")
            ]
        );
    }

    #[test]
    fn pressure_follows_the_default_eviction_thresholds() {
        let mi = 1u64 << 20;
        let ok = Signals {
            memory_available: 2048 * mi,
            nodefs_available: 50 * 1024 * mi,
            nodefs_size: 100 * 1024 * mi,
            nodefs_inodes_free: 900,
            nodefs_inodes: 1000,
        };
        let none = Pressure::default();
        for (what, s, want) in [
            ("plenty", ok, none),
            (
                "100Mi left is enough",
                Signals {
                    memory_available: 100 * mi,
                    ..ok
                },
                none,
            ),
            (
                "99Mi left",
                Signals {
                    memory_available: 99 * mi,
                    ..ok
                },
                Pressure {
                    memory: true,
                    ..none
                },
            ),
            (
                "10% of the disk left",
                Signals {
                    nodefs_available: 10 * 1024 * mi,
                    ..ok
                },
                none,
            ),
            (
                "9% of the disk left",
                Signals {
                    nodefs_available: 9 * 1024 * mi,
                    ..ok
                },
                Pressure { disk: true, ..none },
            ),
            (
                "4% of the inodes left",
                Signals {
                    nodefs_inodes_free: 40,
                    ..ok
                },
                Pressure { disk: true, ..none },
            ),
            (
                "5% of the inodes left",
                Signals {
                    nodefs_inodes_free: 50,
                    ..ok
                },
                none,
            ),
            (
                "an unknown filesystem",
                Signals {
                    nodefs_size: 0,
                    nodefs_inodes: 0,
                    ..ok
                },
                none,
            ),
        ] {
            assert_eq!(pressure(&s), want, "{what}");
        }
        let c = conditions(
            true,
            "ready",
            Pressure {
                memory: true,
                ..none
            },
        );
        assert_eq!(c[0]["status"], "True");
        assert_eq!(c[0]["reason"], "KubeletHasInsufficientMemory");
        assert_eq!(c[0]["message"], "kubelet has insufficient memory available");
        assert_eq!(c[1]["reason"], "KubeletHasNoDiskPressure");
        // The machine's own signals are read (whether it is under pressure is its business:
        // a test machine with a nearly full disk is, and the node would say so).
        let real = read_signals(std::path::Path::new("/"));
        assert!(real.memory_available > 0 && real.nodefs_size > 0 && real.nodefs_inodes > 0);
        assert!(real.nodefs_available <= real.nodefs_size, "{real:?}");
    }

    #[test]
    fn host_facts_are_read_from_the_machine() {
        let f = host_facts(std::path::Path::new("/"));
        assert!(f.cpus >= 1 && f.memory_bytes > 0 && f.ephemeral_bytes > 0);
        assert!(!f.kernel.is_empty());
    }
}
