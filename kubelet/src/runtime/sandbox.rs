//! What a pod's containers share besides the network: UTS (hostname = pod name) and IPC
//! namespaces, held by bind mounts instead of a pause process, and the `/etc/hosts`,
//! `/etc/hostname` and `/etc/resolv.conf` the kubelet writes and mounts into every container.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use nix::sched::CloneFlags;

use crate::network::netns::{bind_new_namespace, unbind_namespace};

/// The pod-level files and namespaces, all under one directory of the pod.
#[derive(Clone, Debug)]
pub struct Sandbox {
    pub dir: PathBuf,
}

/// How the pod's resolv.conf is made.
#[derive(Clone, Debug, Default)]
pub struct DnsConfig {
    /// The cluster DNS service's address, if the cluster has one.
    pub cluster_dns: Option<String>,
    /// `cluster.local`.
    pub cluster_domain: String,
    /// The node's own resolv.conf (used for dnsPolicy Default, and when there is no cluster
    /// DNS).
    pub host_resolv_conf: String,
}

impl Sandbox {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    pub fn uts(&self) -> PathBuf {
        self.dir.join("ns-uts")
    }

    pub fn ipc(&self) -> PathBuf {
        self.dir.join("ns-ipc")
    }

    pub fn etc(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Creates the namespaces (kept if they exist) and writes the files.
    pub fn create(&self, pod: &Pod, pod_ip: &str, dns: &DnsConfig) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let hostname = hostname(pod);
        for (path, kind) in [
            (self.uts(), CloneFlags::CLONE_NEWUTS),
            (self.ipc(), CloneFlags::CLONE_NEWIPC),
        ] {
            if !crate::network::netns::is_netns(&path) {
                let _ = unbind_namespace(&path);
                let name = (kind == CloneFlags::CLONE_NEWUTS).then_some(hostname.as_str());
                bind_new_namespace(kind, &path, name)?;
            }
        }
        let host_network = pod.spec.as_ref().and_then(|s| s.host_network) == Some(true);
        if host_network {
            // The node's own files, as the kubelet gives host-network pods (with their
            // hostAliases).
            let mut hosts = fs::read_to_string("/etc/hosts").unwrap_or_default();
            hosts.push_str(&host_aliases(pod));
            let node = nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default();
            write_atomic(&self.etc("hosts"), &hosts)?;
            write_atomic(&self.etc("hostname"), &format!("{node}\n"))?;
        } else {
            write_atomic(&self.etc("hosts"), &etc_hosts(pod, pod_ip))?;
            write_atomic(&self.etc("hostname"), &format!("{hostname}\n"))?;
        }
        write_atomic(&self.etc("resolv.conf"), &resolv_conf(pod, dns))?;
        Ok(())
    }

    /// The holder of the pod's shared PID namespace, if the pod has one and it lives:
    /// its PID.
    pub fn pause(&self) -> Option<i32> {
        let text = fs::read_to_string(self.dir.join("pause.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        let pid = v["pid"].as_i64()? as i32;
        let start = v["start"].as_u64()?;
        (super::pods::process_start(pid) == Some(start)).then_some(pid)
    }

    /// Whether the pod's shared PID namespace was made and is gone (its holder died, so
    /// did everything in it): the sandbox must be made again.
    pub fn pause_lost(&self) -> bool {
        self.dir.join("pause.json").exists() && self.pause().is_none()
    }

    /// Makes the holder of the pod's shared PID namespace (the kubelet binary `exe`
    /// re-executed), unless it lives.
    pub fn ensure_pause(&self, exe: &Path) -> io::Result<i32> {
        if let Some(pid) = self.pause() {
            return Ok(pid);
        }
        let pid = super::pause::start(exe)?;
        let start = super::pods::process_start(pid)
            .ok_or_else(|| io::Error::other("the namespace holder died at once"))?;
        write_atomic(
            &self.dir.join("pause.json"),
            &serde_json::json!({"pid": pid, "start": start}).to_string(),
        )?;
        Ok(pid)
    }

    /// Kills the holder of the pod's shared PID namespace (and with it whatever is left in
    /// the namespace).
    pub fn stop_pause(&self) {
        if let Some(pid) = self.pause() {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
        let _ = fs::remove_file(self.dir.join("pause.json"));
    }

    /// Releases the namespaces and removes the directory.
    pub fn remove(&self) -> io::Result<()> {
        self.stop_pause();
        unbind_namespace(&self.uts())?;
        unbind_namespace(&self.ipc())?;
        match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn write_atomic(path: &Path, content: &str) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, content)?;
    fs::rename(tmp, path)
}

/// The pod's hostname: spec.hostname, else its name (truncated to 63 characters as the
/// kubelet does).
pub fn hostname(pod: &Pod) -> String {
    let spec_host = pod.spec.as_ref().and_then(|s| s.hostname.clone());
    let name = spec_host.unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    let mut h: String = name.chars().take(63).collect();
    while h.ends_with(['-', '.']) {
        h.pop();
    }
    h
}

/// `/etc/hosts` as the kubelet writes it: loopback entries, the pod's IP with its hostname
/// (and FQDN when it has a subdomain), then hostAliases.
pub fn etc_hosts(pod: &Pod, pod_ip: &str) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    let host = hostname(pod);
    let spec = pod.spec.as_ref();
    if !pod_ip.is_empty() {
        match spec
            .and_then(|s| s.subdomain.as_deref())
            .filter(|s| !s.is_empty())
        {
            Some(sub) => {
                let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
                out.push_str(&format!(
                    "{pod_ip}\t{host}.{sub}.{ns}.svc.cluster.local\t{host}\n"
                ));
            }
            None => out.push_str(&format!("{pod_ip}\t{host}\n")),
        }
    }
    out.push_str(&host_aliases(pod));
    out
}

/// The hostAliases' part of `/etc/hosts`.
fn host_aliases(pod: &Pod) -> String {
    let mut out = String::new();
    let aliases = pod.spec.as_ref().and_then(|s| s.host_aliases.as_ref());
    if let Some(aliases) = aliases.filter(|a| !a.is_empty()) {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            let names = a.hostnames.clone().unwrap_or_default().join("\t");
            out.push_str(&format!("{}\t{names}\n", a.ip));
        }
    }
    out
}

/// systemd-resolved's list of the real upstreams (its stub at 127.0.0.53 is the node's).
const RESOLVED_UPSTREAMS: &str = "/run/systemd/resolve/resolv.conf";

/// The resolv.conf pods with dnsPolicy Default get: the node's `path`, unless every nameserver
/// in it is on loopback (a local stub, unreachable from a pod's network namespace), then
/// systemd-resolved's upstream list when there is one, as kubeadm points the kubelet at it.
pub fn host_resolv_conf(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    if only_loopback(&text) {
        if let Ok(upstream) = std::fs::read_to_string(RESOLVED_UPSTREAMS) {
            if !only_loopback(&upstream) {
                return upstream;
            }
        }
        tracing::warn!(path = %path.display(), "the node's resolv.conf names only loopback resolvers, which pods cannot reach");
    }
    text
}

fn only_loopback(resolv_conf: &str) -> bool {
    let servers: Vec<std::net::IpAddr> = resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse().ok())
        .collect();
    !servers.is_empty() && servers.iter().all(|ip| ip.is_loopback())
}

/// `/etc/resolv.conf` by dnsPolicy: ClusterFirst (the default) points at the cluster DNS with
/// Kubernetes' search path and `ndots:5` — or falls back to the node's file when the cluster
/// has no DNS, as the kubelet does; Default uses the node's file; None uses only dnsConfig.
pub fn resolv_conf(pod: &Pod, dns: &DnsConfig) -> String {
    let spec = pod.spec.as_ref();
    let policy = spec
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or("ClusterFirst");
    let host_network = spec.and_then(|s| s.host_network) == Some(true);
    let parse_host = |key: &str| -> Vec<String> {
        dns.host_resolv_conf
            .lines()
            .filter_map(|l| l.trim().strip_prefix(key))
            .flat_map(|rest| {
                rest.split_whitespace()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let (mut servers, mut searches, mut options) = match (policy, &dns.cluster_dns) {
        ("ClusterFirst", Some(ip)) | ("ClusterFirstWithHostNet", Some(ip))
            if policy != "ClusterFirst" || !host_network =>
        {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            let d = &dns.cluster_domain;
            let mut search = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()];
            search.extend(parse_host("search"));
            (vec![ip.clone()], search, vec!["ndots:5".to_string()])
        }
        ("None", _) => (vec![], vec![], vec![]),
        _ => (
            parse_host("nameserver"),
            parse_host("search"),
            parse_host("options"),
        ),
    };
    if let Some(cfg) = spec.and_then(|s| s.dns_config.as_ref()) {
        servers.extend(cfg.nameservers.clone().unwrap_or_default());
        searches.extend(cfg.searches.clone().unwrap_or_default());
        for o in cfg.options.iter().flatten() {
            let name = o.name.clone().unwrap_or_default();
            options.retain(|x| x.split(':').next() != Some(name.as_str()));
            options.push(match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name,
            });
        }
    }
    servers.truncate(3);
    searches.dedup();
    searches.truncate(32);
    let mut out = String::new();
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c", "image": "busybox"}]);
        serde_json::from_value(
            json!({"metadata": {"name": "web-1", "namespace": "shop"}, "spec": spec}),
        )
        .unwrap()
    }

    fn dns(cluster: Option<&str>) -> DnsConfig {
        DnsConfig {
            cluster_dns: cluster.map(String::from),
            cluster_domain: "cluster.local".into(),
            host_resolv_conf: "nameserver 192.168.1.1\nsearch lan\noptions edns0\n".into(),
        }
    }

    #[test]
    fn hosts_files_name_the_pod() {
        let h = etc_hosts(&pod(json!({})), "10.244.0.7");
        assert!(h.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("10.244.0.7\tweb-1\n"), "{h}");
        let h = etc_hosts(
            &pod(json!({"hostname": "db", "subdomain": "svc-a",
                        "hostAliases": [{"ip": "10.0.0.9", "hostnames": ["foo", "bar"]}]})),
            "10.244.0.8",
        );
        assert!(
            h.contains("10.244.0.8\tdb.svc-a.shop.svc.cluster.local\tdb\n"),
            "{h}"
        );
        assert!(
            h.ends_with("# Entries added by HostAliases.\n10.0.0.9\tfoo\tbar\n"),
            "{h}"
        );
    }

    #[test]
    fn a_loopback_stub_is_not_for_pods() {
        assert!(only_loopback(
            "nameserver 127.0.0.53\noptions edns0 trust-ad\n"
        ));
        assert!(!only_loopback(
            "nameserver 127.0.0.53\nnameserver 192.168.1.1\n"
        ));
        assert!(!only_loopback("search lan\n"));
    }

    #[test]
    fn resolv_conf_follows_dns_policy() {
        let p = pod(json!({}));
        assert_eq!(
            resolv_conf(&p, &dns(Some("10.96.0.10"))),
            "search shop.svc.cluster.local svc.cluster.local cluster.local lan\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
        // No cluster DNS yet: the node's resolver, as the kubelet falls back.
        assert_eq!(
            resolv_conf(&p, &dns(None)),
            "search lan\nnameserver 192.168.1.1\noptions edns0\n"
        );
        let d = pod(json!({"dnsPolicy": "Default"}));
        assert_eq!(
            resolv_conf(&d, &dns(Some("10.96.0.10"))),
            "search lan\nnameserver 192.168.1.1\noptions edns0\n"
        );
        let none = pod(
            json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"], "options": [{"name": "ndots", "value": "2"}]}}),
        );
        assert_eq!(
            resolv_conf(&none, &dns(Some("10.96.0.10"))),
            "nameserver 1.1.1.1\noptions ndots:2\n"
        );
    }

    #[test]
    fn hostnames_are_dns_labels() {
        let long = format!("{}-x", "a".repeat(62));
        let p: Pod =
            serde_json::from_value(json!({"metadata": {"name": long}, "spec": {"containers": []}}))
                .unwrap();
        assert_eq!(hostname(&p), "a".repeat(62));
    }
}
