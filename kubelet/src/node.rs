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

/// The node's conditions: Ready, and no memory/disk/PID pressure.
pub fn conditions(ready: bool, ready_message: &str) -> Value {
    let now = now();
    let cond = |t: &str, status: &str, reason: &str, message: &str| {
        json!({"type": t, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!([
        cond(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        cond(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        cond(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        if ready {
            cond("Ready", "True", "KubeletReady", ready_message)
        } else {
            cond("Ready", "False", "KubeletNotReady", ready_message)
        },
    ])
}

/// The status part of the Node (what heartbeats write).
pub fn node_status(cfg: &NodeConfig, facts: &HostFacts, ready: bool, message: &str) -> Value {
    let resources = json!({
        "cpu": facts.cpus.to_string(),
        "memory": format!("{}Ki", facts.memory_bytes / 1024),
        "ephemeral-storage": format!("{}Ki", facts.ephemeral_bytes / 1024),
        "pods": cfg.max_pods.to_string(),
    });
    json!({
        "capacity": resources,
        "allocatable": resources,
        "conditions": conditions(ready, message),
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
        "status": node_status(cfg, facts, false, "kubelet is starting"),
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
    let body = json!({"status": node_status(cfg, facts, ready, message)});
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
    fn host_facts_are_read_from_the_machine() {
        let f = host_facts(std::path::Path::new("/"));
        assert!(f.cpus >= 1 && f.memory_bytes > 0 && f.ephemeral_bytes > 0);
        assert!(!f.kernel.is_empty());
    }
}
