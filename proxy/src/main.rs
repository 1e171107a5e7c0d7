//! tinykube-proxy: programs Services as iptables rules (`tinykube-proxy`), or removes every
//! rule and chain it made (`tinykube-proxy cleanup`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use k8s_openapi::api::core::v1::Node;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tinykube_proxy::iptables::Iptables;
use tinykube_proxy::proxier::{self, Settings};
use tinykube_proxy::render::Config;

#[derive(Parser)]
#[command(
    name = "tinykube-proxy",
    version,
    about = "Services as iptables rules (ClusterIP, NodePort, LoadBalancer)",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// The kubeconfig with the proxy's credentials.
    #[arg(
        long,
        env = "TINYKUBE_PROXY_KUBECONFIG",
        default_value = "/var/lib/tinykube/apiserver/proxy.kubeconfig"
    )]
    kubeconfig: PathBuf,
    /// Where the proxy records what cleanup gives back (the sysctls it changed).
    #[arg(long, global = true, default_value = "/var/lib/tinykube/proxy")]
    state_dir: PathBuf,
    /// This node's name (its endpoints are local; default: the hostname).
    #[arg(long)]
    hostname_override: Option<String>,
    /// The address LoadBalancer services get as their ingress (default: the Node's InternalIP).
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// The pod CIDR: traffic to cluster IPs from outside it is masqueraded.
    #[arg(long, default_value = "10.244.0.0/24")]
    cluster_cidr: String,
    /// The least time between two syncs (changes within it are batched).
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    min_sync_period: Duration,
    /// How often the whole ruleset is rewritten even without changes (repairs drift; between
    /// them syncs rewrite only the chains that changed).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    sync_period: Duration,
    /// The port the cluster DNS listens on, on the node's address (UDP and TCP); 0: no DNS
    /// here. Pods reach it as the `kube-dns` Service.
    #[arg(long, default_value_t = 53)]
    dns_port: u16,
    /// The cluster domain the DNS serves.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// The TTL of the cluster DNS's records, in seconds.
    #[arg(long, default_value_t = 5)]
    dns_ttl: u32,
    /// The port of the DNS's Prometheus metrics (on the node's address); 0: none.
    #[arg(long, default_value_t = 9153)]
    dns_metrics_port: u16,
    /// The resolv.conf whose nameservers answer names outside the cluster.
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
}

#[derive(Subcommand)]
enum Cmd {
    /// Remove every chain and rule the proxy made (the host's own rules stay) and give the
    /// sysctls it changed their values back.
    Cleanup,
}

/// A Go duration (`10ms`, `1m30s`), as kube-proxy's flags take it.
fn parse_duration(s: &str) -> Result<Duration, String> {
    tinykube_machinery::duration::parse(s).map_err(|e| e.to_string())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .unwrap_or_else(|_| "localhost".into())
}

async fn run(cli: Cli, ipt: Iptables) -> anyhow::Result<()> {
    let kc = Kubeconfig::read_from(&cli.kubeconfig)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", cli.kubeconfig.display()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    let client = kube::Client::try_from(cfg)?;
    let node_name = cli.hostname_override.clone().unwrap_or_else(hostname);
    let node_ip = match cli.node_ip {
        Some(ip) => ip,
        None => node_address(&client, &node_name).await,
    };
    let clients = tinykube_machinery::cidr::Cidr::parse(&cli.cluster_cidr)
        .map_err(|e| anyhow::anyhow!("--cluster-cidr: {e}"))?;
    let dns = (cli.dns_port != 0).then(|| tinykube_proxy::dns::Settings {
        bind: std::net::SocketAddr::new(node_ip, cli.dns_port),
        domain: cli.cluster_domain.clone(),
        ttl: cli.dns_ttl,
        resolv_conf: cli.resolv_conf.clone(),
        clients: vec![clients],
        metrics_port: cli.dns_metrics_port,
    });
    proxier::run(
        client,
        ipt,
        Settings {
            dns,
            node_name,
            state_dir: cli.state_dir.clone(),
            node_ip,
            config: Config {
                cluster_cidr: Some(cli.cluster_cidr.clone()),
            },
            min_sync_period: cli.min_sync_period,
            resync_period: cli.sync_period,
        },
    )
    .await
}

/// The Node's InternalIP, waiting for the kubelet to register it.
async fn node_address(client: &kube::Client, name: &str) -> IpAddr {
    let nodes: kube::Api<Node> = kube::Api::all(client.clone());
    loop {
        if let Ok(n) = nodes.get(name).await {
            let ip = n
                .status
                .and_then(|s| s.addresses)
                .into_iter()
                .flatten()
                .find(|a| a.type_ == "InternalIP")
                .and_then(|a| a.address.parse().ok());
            if let Some(ip) = ip {
                return ip;
            }
        }
        tracing::info!(node = %name, "waiting for the node to register");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TINYKUBE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colours only for a terminal: not in log files nor the journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let ipt = Iptables::detect();
    if let Some(Cmd::Cleanup) = cli.command {
        let restored = proxier::restore_sysctls(&cli.state_dir.join("sysctls.json"));
        return match ipt.cleanup().and(restored) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli, ipt)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
