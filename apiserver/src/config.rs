//! Command-line flags, validated into one typed configuration before anything starts.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;

use crate::store::sqlite::Synchronous;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "tinykube-apiserver",
    version,
    about = "The Kubernetes API server of tinykube: the Kubernetes REST API over HTTPS on an embedded SQLite store."
)]
pub struct Flags {
    /// Address to serve HTTPS on. On loopback (the default), the apiserver also serves on the
    /// advertised address, where the `kubernetes` Service sends pods.
    #[arg(long, default_value = "127.0.0.1", env = "TINYKUBE_BIND_ADDRESS")]
    pub bind_address: IpAddr,
    /// Port to serve HTTPS on (0 picks a free one; it is written to <data-dir>/port).
    #[arg(long, default_value_t = 6443)]
    pub secure_port: u16,
    /// Where the store, certificates and kubeconfig files live.
    #[arg(
        long,
        default_value = "/var/lib/tinykube/apiserver",
        env = "TINYKUBE_APISERVER_DATA_DIR"
    )]
    pub data_dir: PathBuf,
    /// The address other members of the cluster (pods, through the `kubernetes` service) reach the
    /// apiserver at. Defaults to the bind address, or the host's default-route address when
    /// binding to loopback or all addresses.
    #[arg(long)]
    pub advertise_address: Option<IpAddr>,
    /// CIDR that Service ClusterIPs are allocated from.
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cluster_ip_range: String,
    /// Port range that NodePorts are allocated from.
    #[arg(long, default_value = "30000-32767")]
    pub service_node_port_range: String,
    /// Static bearer tokens: lines of `token,user,uid,"group1,group2"`.
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// The `iss` of the service account tokens issued, and the audience the API accepts.
    #[arg(long, default_value = crate::auth::serviceaccount::DEFAULT_ISSUER)]
    pub service_account_issuer: String,
    /// The node name the kubelet's client certificate is issued for (default: the hostname).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Extra names or addresses for the serving certificate.
    #[arg(long = "tls-san")]
    pub tls_sans: Vec<String>,
    /// How often old history is compacted (the history kept is between one and two intervals).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub compaction_interval: Duration,
    /// How long events are kept.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub event_ttl: Duration,
    /// SQLite durability: `normal` survives a crash of the process, `full` also a power loss.
    #[arg(long, default_value = "normal", value_parser = parse_sync)]
    pub sqlite_synchronous: Synchronous,
    /// How long a node may go without renewing its Lease before it is marked Unknown.
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    pub node_monitor_grace_period: Duration,
    /// How often the node lifecycle controller looks at nodes.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub node_monitor_period: Duration,
    /// tolerationSeconds given to pods for the not-ready NoExecute taint when they set none.
    #[arg(long, default_value_t = 300)]
    pub default_not_ready_toleration_seconds: i64,
    /// tolerationSeconds given to pods for the unreachable NoExecute taint when they set none.
    #[arg(long, default_value_t = 300)]
    pub default_unreachable_toleration_seconds: i64,
    /// Log format: text or json.
    #[arg(long, default_value = "text")]
    pub log_format: String,
}

/// A Go duration (`90s`, `5m`, `1h`, `500ms`), as kube-apiserver's flags take it.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    tinykube_machinery::duration::parse(s).map_err(|e| e.to_string())
}

fn parse_sync(s: &str) -> Result<Synchronous, String> {
    match s {
        "normal" => Ok(Synchronous::Normal),
        "full" => Ok(Synchronous::Full),
        _ => Err(format!("{s:?}: want normal or full")),
    }
}

/// The address this host uses to reach the rest of the network (no packet is sent).
pub fn default_route_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect((Ipv4Addr::new(203, 0, 113, 1), 9)).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

pub fn hostname() -> String {
    nix_hostname()
        .unwrap_or_else(|| "localhost".into())
        .to_lowercase()
}

fn nix_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

impl Flags {
    pub fn validate(&self) -> Result<()> {
        crate::registry::alloc::IpAllocator::new(&self.service_cluster_ip_range)
            .map_err(anyhow::Error::msg)
            .context("--service-cluster-ip-range")?;
        crate::registry::alloc::PortAllocator::new(&self.service_node_port_range)
            .map_err(anyhow::Error::msg)
            .context("--service-node-port-range")?;
        if !matches!(self.log_format.as_str(), "text" | "json") {
            bail!("--log-format must be text or json");
        }
        Ok(())
    }

    pub fn advertise(&self) -> Option<IpAddr> {
        self.advertise_address.or_else(|| {
            if self.bind_address.is_loopback() || self.bind_address.is_unspecified() {
                default_route_address()
            } else {
                Some(self.bind_address)
            }
        })
    }

    pub fn node(&self) -> String {
        self.node_name.clone().unwrap_or_else(hostname)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(
            parse_duration("2").unwrap_err(),
            "time: missing unit in duration \"2\""
        );
    }
}
