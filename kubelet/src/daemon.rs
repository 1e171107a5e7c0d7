//! The kubelet's flags, its start-up, and `tinykube-kubelet cleanup`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::image::{BackOffPolicy, ImageManager, ImageService, RegistryConfig, Store};
use crate::kubelet::Kubelet;
use crate::network::cni::{Cni, NetworkConfigList};
use crate::network::{masq, netns};
use crate::node::{self, NodeConfig};
use crate::runtime::cgroups;
use crate::runtime::pods::{PodRuntime, RuntimeConfig};
use crate::runtime::sandbox::DnsConfig;
use crate::server;

/// How the kubelet runs (every flag has an embedded default).
#[derive(Clone, Debug, clap::Args)]
pub struct Flags {
    /// The kubeconfig with the node's credentials.
    #[arg(
        long,
        env = "TINYKUBE_KUBELET_KUBECONFIG",
        default_value = "/var/lib/tinykube/apiserver/kubelet.kubeconfig"
    )]
    pub kubeconfig: PathBuf,
    /// Where the kubelet keeps images, pods and containers.
    #[arg(
        long,
        alias = "data-dir",
        env = "TINYKUBE_KUBELET_DATA_DIR",
        default_value = "/var/lib/tinykube/kubelet"
    )]
    pub root_dir: PathBuf,
    /// Container logs (CRI format), as /var/log/pods on every Kubernetes node.
    #[arg(long, default_value = "/var/log/pods")]
    pub pod_log_dir: PathBuf,
    /// The node's name (default: the hostname).
    #[arg(long)]
    pub hostname_override: Option<String>,
    /// The node's InternalIP (default: the address of the default route's interface).
    #[arg(long)]
    pub node_ip: Option<IpAddr>,
    /// The range pod IPs are allocated from (the default CNI network's host-local IPAM).
    #[arg(long, default_value = "10.244.0.0/24", value_parser = parse_cidr)]
    pub pod_cidr: String,
    /// The bridge of the default CNI network.
    #[arg(long, default_value = "tinykube0")]
    pub bridge: String,
    /// A directory with CNI network configs; the first one is used instead of the default
    /// bridge network.
    #[arg(long)]
    pub cni_conf_dir: Option<PathBuf>,
    /// Where CNI plugin binaries are (repeatable).
    #[arg(long = "cni-bin-dir", default_value = "/usr/lib/cni")]
    pub cni_bin_dirs: Vec<PathBuf>,
    /// The parent cgroup of every pod.
    #[arg(long, default_value = "tinykube")]
    pub cgroup_root: String,
    /// Who makes pods' cgroups: systemd (slices and scopes over D-Bus, where systemd is PID 1
    /// with cgroup v2 only), cgroupfs (directories), or auto (systemd where it can be).
    #[arg(long, value_enum, default_value = "auto")]
    pub cgroup_driver: cgroups::DriverFlag,
    /// Pods' network namespaces are named `<prefix>-<pod uid>` (in /run/netns). A kubelet
    /// restarted with the same prefix finds its pods' namespaces again.
    #[arg(long, default_value = "tk", value_parser = parse_netns_prefix)]
    pub pod_netns_prefix: String,
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
    /// The port the kubelet's server listens on (reported in the Node).
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,
    /// The cluster DNS service's address (pods with dnsPolicy ClusterFirst use it); when not
    /// given, the `kube-dns` Service's cluster IP (kube-system), if the cluster has one.
    #[arg(long)]
    pub cluster_dns: Option<String>,
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// The node's resolver configuration, for pods with dnsPolicy Default (and ClusterFirst
    /// while the cluster has no DNS). When it names only a local stub (systemd-resolved's
    /// 127.0.0.53), which a pod cannot reach, systemd-resolved's own upstream list is used.
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub resolv_conf: std::path::PathBuf,
    /// The most processes one container may have (unlimited when not set).
    #[arg(long)]
    pub pod_pids_limit: Option<i64>,
    #[arg(long, default_value_t = 10 << 20)]
    pub container_log_max_size: u64,
    #[arg(long, default_value_t = 5)]
    pub container_log_max_files: usize,
    /// A registry mirror, HOST=URL[,URL...] (e.g. gcr.io=http://127.0.0.1:5000); repeatable.
    #[arg(long = "registry-mirror", value_name = "HOST=URL")]
    pub mirrors: Vec<String>,
    /// A registry reached over plain HTTP although it is not on loopback; repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure: Vec<String>,
}

impl Flags {
    pub fn node_name(&self) -> String {
        self.hostname_override.clone().unwrap_or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".into())
                .to_lowercase()
        })
    }

    /// The CNI network: the first config in --cni-conf-dir, else the default bridge.
    fn network(&self) -> Result<(NetworkConfigList, bool), String> {
        if let Some(dir) = &self.cni_conf_dir {
            if let Some(list) = NetworkConfigList::load_dir(dir).map_err(|e| e.to_string())? {
                return Ok((list, false));
            }
        }
        Ok((
            NetworkConfigList::default_bridge(
                &self.pod_cidr,
                &self.bridge,
                &self.root_dir.join("ipam"),
            ),
            true,
        ))
    }

    fn runtime(
        &self,
        store: Arc<Store>,
        node_ip: IpAddr,
        network: NetworkConfigList,
    ) -> Result<PodRuntime, String> {
        let exe = std::env::current_exe().map_err(|e| format!("finding my binary: {e}"))?;
        let driver = cgroups::resolve(
            self.cgroup_driver,
            cgroups::systemd_booted(),
            cgroups::unified(),
        )?;
        tracing::info!(driver = driver.as_str(), root = %self.cgroup_root, "pods' cgroups");
        Ok(PodRuntime::new(
            RuntimeConfig {
                root: self.root_dir.clone(),
                log_dir: self.pod_log_dir.clone(),
                cgroups: cgroups::Layout::new(driver, &self.cgroup_root),
                exe,
                cni: Cni {
                    plugin_dirs: self.cni_bin_dirs.clone(),
                    cache_dir: self.root_dir.join("cni-cache"),
                },
                network,
                dns: DnsConfig {
                    cluster_dns: self.cluster_dns.clone(),
                    cluster_domain: self.cluster_domain.clone(),
                    host_resolv_conf: crate::runtime::sandbox::host_resolv_conf(&self.resolv_conf),
                },
                node_name: self.node_name(),
                node_ip: node_ip.to_string(),
                netns_prefix: self.pod_netns_prefix.clone(),
                pids_limit: self.pod_pids_limit,
                log_max_size: self.container_log_max_size,
                log_max_files: self.container_log_max_files,
            },
            store,
        ))
    }

    fn store(&self) -> Result<Arc<Store>, String> {
        Store::open(&self.root_dir.join("images"))
            .map(Arc::new)
            .map_err(|e| e.to_string())
    }
}

/// Runs the kubelet until it is killed.
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    crate::image::pull::install_crypto_provider();
    let node_ip = flags.node_ip.unwrap_or_else(node::default_node_ip);
    let store = flags.store().map_err(anyhow::Error::msg)?;
    let (network, default_network) = flags.network().map_err(anyhow::Error::msg)?;
    if default_network {
        masq::install(&flags.pod_cidr).map_err(anyhow::Error::msg)?;
    }
    // Before any pod: the network plugins turn forwarding on, and cleanup gives back what
    // was there before the kubelet's first start.
    for (path, error) in tinykube_machinery::sysctl::set(&sysctl_record(&flags), SYSCTLS) {
        tracing::warn!(%path, %error, "cannot set or record a sysctl");
    }
    let rt = Arc::new(
        flags
            .runtime(store.clone(), node_ip, network)
            .map_err(anyhow::Error::msg)?,
    );
    let mut registry = RegistryConfig::default();
    for m in &flags.mirrors {
        registry.add_mirror_flag(m).map_err(anyhow::Error::msg)?;
    }
    registry.insecure = flags.insecure.clone();
    let images = Arc::new(ImageManager::new(
        ImageService::new(store, registry),
        BackOffPolicy::default(),
    ));
    let kc = Kubeconfig::read_from(&flags.kubeconfig)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", flags.kubeconfig.display()))?;
    let client_ca = cluster_ca(&kc)?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    let client = kube::Client::try_from(cfg)?;
    let node = NodeConfig {
        name: flags.node_name(),
        node_ip,
        pod_cidr: flags.pod_cidr.clone(),
        max_pods: flags.max_pods,
        kubelet_port: flags.kubelet_port,
        root_dir: flags.root_dir.clone(),
    };
    let facts = node::host_facts(&flags.root_dir);
    let name = node.name.clone();
    let kubelet = Kubelet::new(client, node, facts, rt.clone(), images);
    // The server: on the node's address and loopback.
    let mut addrs = vec![node_ip];
    if !node_ip.is_loopback() {
        addrs.push(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    }
    let mut listeners = Vec::new();
    for ip in &addrs {
        let addr = std::net::SocketAddr::new(*ip, flags.kubelet_port);
        listeners.push(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("listening on {addr}: {e}"))?,
        );
    }
    let tls = server::tls_config(&client_ca, &name, &addrs)?;
    // Console sockets of execs a previous kubelet was serving.
    let _ = std::fs::remove_dir_all(flags.root_dir.join("exec"));
    let state = Arc::new(server::State {
        kubelet: kubelet.clone(),
        rt,
        exe: std::env::current_exe()?,
        run_dir: flags.root_dir.join("exec"),
    });
    tokio::spawn(server::serve(listeners, tls, state));
    kubelet.run().await
}

/// The CA of the kubeconfig's cluster: the kubelet's server trusts client certificates it
/// signed (the apiserver's kubelet client, the admin).
fn cluster_ca(kc: &Kubeconfig) -> anyhow::Result<Vec<u8>> {
    use base64::Engine;
    let current = kc.current_context.clone().unwrap_or_default();
    let cluster_name = kc
        .contexts
        .iter()
        .find(|c| c.name == current)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone());
    let cluster = kc
        .clusters
        .iter()
        .find(|c| Some(&c.name) == cluster_name.as_ref())
        .or(kc.clusters.first())
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| anyhow::anyhow!("the kubeconfig names no cluster"))?;
    if let Some(data) = &cluster.certificate_authority_data {
        return Ok(base64::engine::general_purpose::STANDARD.decode(data.trim())?);
    }
    if let Some(path) = &cluster.certificate_authority {
        return Ok(std::fs::read(path)?);
    }
    anyhow::bail!("the kubeconfig's cluster has no certificate authority: client certificates could not be verified")
}

/// The kernel settings pods need: forwarding between their bridge and the node (the bridge
/// plugin's `isGateway` turns it on too, unrecorded; the kubelet sets it first to know the
/// value to give back).
const SYSCTLS: &[(&str, &str)] = &[("/proc/sys/net/ipv4/ip_forward", "1")];

fn sysctl_record(flags: &Flags) -> std::path::PathBuf {
    flags.root_dir.join("sysctls.json")
}

/// Removes everything the kubelet made on this machine: containers (killed), their mounts,
/// cgroups and state, the pods' network namespaces and CNI attachments, the bridge and the
/// masquerade rule; with `purge`, the data dir (images) and logs too.
pub fn cleanup(flags: &Flags, purge: bool) -> Result<(), String> {
    let store = flags.store()?;
    let node_ip = flags
        .node_ip
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    let (network, default_network) = flags.network()?;
    let rt = flags.runtime(store.clone(), node_ip, network)?;
    let uids = rt.pod_uids();
    for uid in &uids {
        rt.kill_all(uid);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for uid in &uids {
        while rt.observe(uid).running().next().is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        rt.remove_sandbox(uid)?;
    }
    // Whatever a crash left outside a pod's records.
    for e in std::fs::read_dir(store.root().join("rootfs"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = crate::image::rootfs::remove_rootfs(&store, &e.file_name().to_string_lossy());
    }
    let _ = std::fs::remove_dir_all(rt.state_root());
    if default_network {
        masq::remove()?;
        // Asked of `ip`, not /sys/class/net: sysfs shows the namespace it was mounted in,
        // which need not be ours (a node in its own network namespace).
        let exists = std::process::Command::new("ip")
            .args(["link", "show", "dev", &flags.bridge])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if exists {
            let out = std::process::Command::new("ip")
                .args(["link", "del", &flags.bridge])
                .output()
                .map_err(|e| format!("ip link del {}: {e}", flags.bridge))?;
            if !out.status.success() {
                return Err(format!(
                    "ip link del {}: {}",
                    flags.bridge,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        let _ = std::fs::remove_dir_all(flags.root_dir.join("ipam"));
    }
    let _ = std::fs::remove_dir_all(flags.root_dir.join("cni-cache"));
    let _ = std::fs::remove_dir_all(flags.root_dir.join("exec"));
    // Both drivers' trees: a node may have run with the other one before.
    cgroups::Layout::new(cgroups::Driver::Cgroupfs, &flags.cgroup_root).remove_all();
    if cgroups::systemd_booted() {
        cgroups::Layout::new(cgroups::Driver::Systemd, &flags.cgroup_root).remove_all();
    }
    netns::release_dir();
    // No pod forwards any more.
    tinykube_machinery::sysctl::restore(&sysctl_record(flags), SYSCTLS)?;
    if purge {
        let _ = std::fs::remove_dir_all(&flags.root_dir);
        // Only if nothing else logs there.
        let _ = std::fs::remove_dir(&flags.pod_log_dir);
    }
    Ok(())
}

/// A prefix of network namespace names: a file name in /run/netns once the uid is added.
fn parse_netns_prefix(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 200 || s.contains(['/', '\0']) || s.starts_with('.') {
        return Err(format!(
            "{s:?}: want a non-empty name without '/' that does not start with '.'"
        ));
    }
    Ok(s.to_string())
}

/// A CIDR flag (`10.244.0.0/24`, `fd00::/64`): an address and a prefix length that fits it.
fn parse_cidr(s: &str) -> Result<String, String> {
    tinykube_machinery::cidr::Cidr::parse(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}
