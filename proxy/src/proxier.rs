//! The proxy daemon: informers on Services and EndpointSlices, batched syncs (at most one per
//! min-sync-period, a full resync every resync-period), one `iptables-restore` per sync,
//! LoadBalancer status, and stale UDP conntrack entries flushed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::Client;
use serde_json::json;
use tokio::sync::Notify;

use crate::iptables::Iptables;
use crate::model::{service_ports, ServicePort};
use crate::render::{render, Config, Ruleset};

pub struct Settings {
    pub node_name: String,
    /// Where the proxy keeps what it must give back (the sysctls it changed).
    pub state_dir: std::path::PathBuf,
    pub node_ip: IpAddr,
    pub config: Config,
    pub min_sync_period: Duration,
    pub resync_period: Duration,
    /// The cluster DNS, if this proxy serves it.
    pub dns: Option<crate::dns::Settings>,
}

/// Watches `api` into a store, waking each of `changed` on every event; `ready` once listed.
fn informer<K>(api: Api<K>, changed: Vec<Arc<Notify>>) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher::watcher(api, watcher::Config::default()));
    let task = tokio::spawn(async move {
        let mut stream = stream.boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(_) => changed.iter().for_each(|c| c.notify_one()),
                Err(e) => {
                    tracing::warn!(error = %e, "watch failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    (reader, task)
}

/// The service ports the stores describe now.
pub fn desired(
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
    node: &str,
) -> Vec<ServicePort> {
    let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for s in slices {
        if let Some(name) = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
        {
            by_service
                .entry((
                    s.metadata.namespace.clone().unwrap_or_default(),
                    name.clone(),
                ))
                .or_default()
                .push(s);
        }
    }
    let mut out = Vec::new();
    for svc in services {
        let key = (
            svc.metadata.namespace.clone().unwrap_or_default(),
            svc.metadata.name.clone().unwrap_or_default(),
        );
        let slices = by_service.get(&key).cloned().unwrap_or_default();
        out.extend(service_ports(svc, &slices, node));
    }
    out
}

/// UDP endpoints per (cluster IP, port), to flush conntrack entries of removed ones.
fn udp_endpoints(ports: &[ServicePort]) -> BTreeMap<(String, u16), BTreeSet<String>> {
    ports
        .iter()
        .filter(|p| p.protocol == "udp")
        .filter_map(|p| {
            let ip = p.cluster_ip.clone()?;
            Some((
                (ip, p.port),
                p.usable().iter().map(|e| e.ip.clone()).collect(),
            ))
        })
        .collect()
}

fn flush_conntrack(cluster_ip: &str, endpoint: &str) {
    // The conntrack tool (package conntrack); exit 1 means nothing matched.
    let _ = std::process::Command::new("conntrack")
        .args([
            "-D",
            "-p",
            "udp",
            "--orig-dst",
            cluster_ip,
            "--dst-nat",
            endpoint,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// The kernel settings the proxy needs: NodePorts on 127.0.0.1 (as kube-proxy's localhost
/// node ports) and bridged pod traffic through iptables (a pod reaching a pod of the same
/// bridge through a service). Forwarding (`ip_forward`) is the kubelet's: its network plugin
/// turns it on with the first pod, and only the kubelet knows the value before that.
pub const SYSCTLS: &[(&str, &str)] = &[
    ("/proc/sys/net/ipv4/conf/all/route_localnet", "1"),
    ("/proc/sys/net/bridge/bridge-nf-call-iptables", "1"),
];

/// Sets [`SYSCTLS`], recording the values before the proxy's first start in `record`.
pub fn set_sysctls(record: &std::path::Path) {
    for (path, error) in tinykube_machinery::sysctl::set(record, SYSCTLS) {
        tracing::warn!(%path, %error, "cannot set or record a sysctl");
    }
}

/// Gives the sysctls recorded in `record` their values back and removes the record.
pub fn restore_sysctls(record: &std::path::Path) -> Result<(), String> {
    tinykube_machinery::sysctl::restore(record, SYSCTLS)
}

/// Runs the proxy until killed.
pub async fn run(client: Client, ipt: Iptables, s: Settings) -> anyhow::Result<()> {
    set_sysctls(&s.state_dir.join("sysctls.json"));
    let changed = Arc::new(Notify::new());
    let dns_changed = Arc::new(Notify::new());
    let wake = vec![changed.clone(), dns_changed.clone()];
    let (services, _t1) = informer(Api::<Service>::all(client.clone()), wake.clone());
    let (slices, _t2) = informer(Api::<EndpointSlice>::all(client.clone()), wake);
    // Until both are listed the rules in place (a previous run's) stay as they are: a restart
    // never opens a window without rules.
    services.wait_until_ready().await?;
    slices.wait_until_ready().await?;
    // The DNS starts once the stores are listed (it answers nothing from empty ones). One
    // waiter per store: kube's ready signal is waited on here only.
    let _dns = s.dns.clone().map(|settings| {
        let (client, services, slices) = (client.clone(), services.clone(), slices.clone());
        // A DNS that cannot start (its port taken) is reported and the Services' rules go
        // on: pods lose names, not their connections.
        tokio::spawn(async move {
            if let Err(e) = crate::dns::run(client, services, slices, dns_changed, settings).await {
                tracing::error!(error = %e, "the cluster DNS is not running; pods cannot resolve names (start the proxy with --dns-port 0 to run without it)");
            }
        })
    });
    tracing::info!(backend = %ipt.restore, "informers synced; programming rules");

    // Chains of ours already there (a previous run's): adopted, and deleted if unwanted.
    let mut existing = ipt.our_chains();
    // The ruleset in force; None forces a full rewrite (first sync, resync, after an error).
    let mut last: Option<Ruleset> = None;
    let mut last_sync = Instant::now() - s.min_sync_period;
    let mut next_full = Instant::now();
    let mut udp_before: BTreeMap<(String, u16), BTreeSet<String>> = BTreeMap::new();
    let mut retry: Option<Instant> = None;
    loop {
        let deadline = retry.map_or(next_full, |r| r.min(next_full));
        tokio::select! {
            _ = changed.notified() => {}
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
        // Batch: at most one sync per min-sync-period.
        let since = last_sync.elapsed();
        if since < s.min_sync_period {
            tokio::time::sleep(s.min_sync_period - since).await;
        }
        let full = Instant::now() >= next_full;
        if full {
            last = None;
        }
        let ports = desired(&services.state(), &slices.state(), &s.node_name);
        let t = Instant::now();
        let rendered = render(&ports, &s.config);
        let text = rendered.restore_text(last.as_ref(), &existing);
        let render_took = t.elapsed();
        last_sync = Instant::now();
        if text.is_empty() {
            continue;
        }
        let t = Instant::now();
        match ipt.restore(&text) {
            Ok(()) => {
                // The chains exist now: make sure the built-in chains jump into them.
                if full {
                    if let Err(e) = ipt.ensure_jumps() {
                        tracing::error!(error = %e, "ensuring the jumps into the proxy's chains");
                    }
                    next_full = Instant::now() + s.resync_period;
                }
                tracing::debug!(
                    services = ports.len(),
                    render_ms = render_took.as_secs_f64() * 1e3,
                    restore_ms = t.elapsed().as_secs_f64() * 1e3,
                    "synced"
                );
                existing = rendered.chains.keys().cloned().collect();
                last = Some(rendered);
                retry = None;
                let udp_now = udp_endpoints(&ports);
                for (key, before) in &udp_before {
                    let now = udp_now.get(key);
                    for ep in before {
                        if now.is_none_or(|n: &BTreeSet<String>| !n.contains(ep)) {
                            flush_conntrack(&key.0, ep);
                        }
                    }
                }
                udp_before = udp_now;
            }
            Err(e) => {
                tracing::error!(error = %e, "sync failed; retrying in 1 s");
                retry = Some(Instant::now() + Duration::from_secs(1));
                last = None;
            }
        }
        update_load_balancers(&client, &services.state(), s.node_ip).await;
    }
}

/// LoadBalancer services get the node's address as their ingress (the single-node answer).
async fn update_load_balancers(client: &Client, services: &[Arc<Service>], node_ip: IpAddr) {
    for svc in services {
        if svc.spec.as_ref().and_then(|s| s.type_.as_deref()) != Some("LoadBalancer") {
            continue;
        }
        let current = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.as_ref())
            .map(|i| i.iter().filter_map(|i| i.ip.clone()).collect::<Vec<_>>())
            .unwrap_or_default();
        if current == [node_ip.to_string()] {
            continue;
        }
        let api: Api<Service> = Api::namespaced(
            client.clone(),
            svc.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let body = json!({"status": {"loadBalancer": {"ingress": [{"ip": node_ip.to_string(), "ipMode": "VIP"}]}}});
        if let Err(e) = api
            .patch_status(
                svc.metadata.name.as_deref().unwrap_or(""),
                &PatchParams::default(),
                &Patch::Merge(&body),
            )
            .await
        {
            tracing::warn!(error = %e, "writing a LoadBalancer's status");
        }
    }
}
