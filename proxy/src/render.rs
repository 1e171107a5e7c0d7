//! The whole desired ruleset as `iptables-restore --noflush` input: a pure function of the
//! service ports, the proxy's config and the chains that exist now (stale ones are deleted in
//! the same restore). Chains and rules as kube-proxy's iptables mode writes them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use sha2::{Digest, Sha256};

use crate::model::{Endpoint, ServicePort};

/// The mark that asks KUBE-POSTROUTING to masquerade.
pub const MASQ_MARK: &str = "0x4000";

/// Chains the proxy owns in each table (the per-service ones are made on demand).
pub const NAT_CHAINS: &[&str] = &[
    "KUBE-SERVICES",
    "KUBE-NODEPORTS",
    "KUBE-POSTROUTING",
    "KUBE-MARK-MASQ",
];
pub const FILTER_CHAINS: &[&str] = &[
    "KUBE-SERVICES",
    "KUBE-EXTERNAL-SERVICES",
    "KUBE-FORWARD",
    "KUBE-FIREWALL",
];
/// Prefixes of the chains made per service (any chain with one is the proxy's).
pub const CHAIN_PREFIXES: &[&str] = &["KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-SEP-"];

/// The jumps from the built-in chains into the proxy's: (table, chain, rule spec).
pub const JUMPS: &[(&str, &str, &str)] = &[
    (
        "nat",
        "PREROUTING",
        "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
    ),
    (
        "nat",
        "OUTPUT",
        "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
    ),
    (
        "nat",
        "POSTROUTING",
        "-m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING",
    ),
    (
        "filter",
        "INPUT",
        "-m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES",
    ),
    ("filter", "INPUT", "-j KUBE-FIREWALL"),
    ("filter", "OUTPUT", "-j KUBE-FIREWALL"),
    (
        "filter",
        "OUTPUT",
        "-m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
    ),
    (
        "filter",
        "FORWARD",
        "-m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD",
    ),
    (
        "filter",
        "FORWARD",
        "-m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
    ),
    (
        "filter",
        "FORWARD",
        "-m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES",
    ),
];

/// How the proxy renders.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// The pod CIDR: traffic to a cluster IP from outside it is masqueraded.
    pub cluster_cidr: Option<String>,
}

/// A rendered ruleset: the rules of every chain, by (table, chain), in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub chains: BTreeMap<(String, String), Vec<String>>,
}

impl Ruleset {
    /// Declares `chain` of `table` (a chain may have no rules).
    fn chain(&mut self, table: &str, chain: &str) {
        self.chains
            .entry((table.to_string(), chain.to_string()))
            .or_default();
    }

    /// Appends `rule` (`-A <chain> …`) to its chain of `table`.
    fn rule(&mut self, table: &str, rule: String) {
        let chain = rule
            .strip_prefix("-A ")
            .and_then(|r| r.split(' ').next())
            .expect("a rule line")
            .to_string();
        self.chains
            .entry((table.to_string(), chain))
            .or_default()
            .push(rule);
    }

    /// The `iptables-restore --noflush` input that turns what is in place into this ruleset.
    /// With `previous` (the last ruleset applied) only chains whose rules changed are
    /// rewritten — a partial sync, as kube-proxy's; without it every chain is. Chains in
    /// `previous` or `existing` that are no longer wanted are flushed and deleted. Empty when
    /// there is nothing to do.
    pub fn restore_text(
        &self,
        previous: Option<&Ruleset>,
        existing: &BTreeSet<(String, String)>,
    ) -> String {
        let mut stale: BTreeSet<&(String, String)> = existing
            .iter()
            .filter(|k| !self.chains.contains_key(*k))
            .collect();
        if let Some(p) = previous {
            stale.extend(p.chains.keys().filter(|k| !self.chains.contains_key(*k)));
        }
        let changed: Vec<(&(String, String), &Vec<String>)> = self
            .chains
            .iter()
            .filter(|(k, rules)| previous.is_none_or(|p| p.chains.get(*k) != Some(*rules)))
            .collect();
        if changed.is_empty() && stale.is_empty() {
            return String::new();
        }
        let mut text = String::new();
        for table in ["filter", "nat"] {
            let mine = |k: &(String, String)| k.0 == table;
            if !changed.iter().any(|(k, _)| mine(k)) && !stale.iter().any(|k| mine(k)) {
                continue;
            }
            let _ = writeln!(text, "*{table}");
            for (k, _) in changed.iter().filter(|(k, _)| mine(k)) {
                let _ = writeln!(text, ":{} - [0:0]", k.1);
            }
            for k in stale.iter().filter(|k| mine(k)) {
                let _ = writeln!(text, ":{} - [0:0]", k.1);
            }
            for (_, rules) in changed.iter().filter(|(k, _)| mine(k)) {
                for r in *rules {
                    text.push_str(r);
                    text.push('\n');
                }
            }
            for k in stale.iter().filter(|k| mine(k)) {
                let _ = writeln!(text, "-X {}", k.1);
            }
            let _ = writeln!(text, "COMMIT");
        }
        text
    }
}

/// `<prefix><16 hex digits of sha256(parts)>`: under iptables' 28-character chain names.
pub fn chain_name(prefix: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let hex: String = h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    format!("{prefix}{hex}")
}

/// Whether `chain` is one the proxy makes.
pub fn is_ours(table: &str, chain: &str) -> bool {
    CHAIN_PREFIXES.iter().any(|p| chain.starts_with(p))
        || match table {
            "nat" => NAT_CHAINS.contains(&chain),
            "filter" => FILTER_CHAINS.contains(&chain),
            _ => false,
        }
}

fn sep_name(sp: &ServicePort, e: &Endpoint) -> String {
    chain_name(
        "KUBE-SEP-",
        &[&sp.id(), &sp.protocol, &format!("{}:{}", e.ip, e.port)],
    )
}

/// `-p tcp -m tcp`.
fn proto(sp: &ServicePort) -> String {
    format!("-p {0} -m {0}", sp.protocol)
}

/// Rules that spread over `eps` (with ClientIP affinity first, if any) into `chain`.
fn spread(out: &mut Ruleset, chain: &str, sp: &ServicePort, eps: &[&Endpoint]) {
    let id = sp.id();
    if let Some(t) = sp.affinity_seconds {
        for e in eps {
            let sep = sep_name(sp, e);
            out.rule("nat", format!("-A {chain} -m comment --comment \"{id} -> {}:{}\" -m recent --name {sep} --rcheck --seconds {t} --reap -j {sep}",
                e.ip, e.port));
        }
    }
    let n = eps.len();
    for (i, e) in eps.iter().enumerate() {
        let sep = sep_name(sp, e);
        if i + 1 < n {
            let p = 1.0 / (n - i) as f64;
            out.rule("nat", format!("-A {chain} -m comment --comment \"{id} -> {}:{}\" -m statistic --mode random --probability {p:.10} -j {sep}",
                e.ip, e.port));
        } else {
            out.rule(
                "nat",
                format!(
                    "-A {chain} -m comment --comment \"{id} -> {}:{}\" -j {sep}",
                    e.ip, e.port
                ),
            );
        }
    }
}

/// The ruleset for `ports`.
pub fn render(ports: &[ServicePort], cfg: &Config) -> Ruleset {
    let mut out = Ruleset::default();
    for c in NAT_CHAINS {
        out.chain("nat", c);
    }
    for c in FILTER_CHAINS {
        out.chain("filter", c);
    }

    let mut ports: Vec<&ServicePort> = ports.iter().collect();
    ports.sort_by_key(|p| (p.id(), p.protocol.clone()));
    for sp in ports {
        let id = sp.id();
        let pr = proto(sp);
        let eps = sp.usable();
        let svc = chain_name("KUBE-SVC-", &[&id, &sp.protocol]);
        let svl = chain_name("KUBE-SVL-", &[&id, &sp.protocol]);
        let ext = chain_name("KUBE-EXT-", &[&id, &sp.protocol]);
        let has_external = sp.node_port.is_some()
            || !sp.external_ips.is_empty()
            || !sp.load_balancer_ips.is_empty();
        let locals: Vec<&Endpoint> = eps.iter().copied().filter(|e| e.local).collect();

        if eps.is_empty() {
            // No endpoints: refuse at once instead of letting connections hang.
            if let Some(ip) = &sp.cluster_ip {
                out.rule("filter", format!("-A KUBE-SERVICES -m comment --comment \"{id} has no endpoints\" {pr} -d {ip}/32 --dport {} -j REJECT",
                    sp.port));
            }
            for ip in sp.external_ips.iter().chain(&sp.load_balancer_ips) {
                out.rule("filter", format!("-A KUBE-EXTERNAL-SERVICES -m comment --comment \"{id} has no endpoints\" {pr} -d {ip}/32 --dport {} -j REJECT",
                    sp.port));
            }
            if let Some(np) = sp.node_port {
                out.rule("filter", format!("-A KUBE-EXTERNAL-SERVICES -m comment --comment \"{id} has no endpoints\" -m addrtype --dst-type LOCAL {pr} --dport {np} -j REJECT"));
            }
            continue;
        }

        out.chain("nat", &svc);
        // Cluster IP: to the service chain (or the local endpoints only).
        let internal_target = if sp.internal_local { &svl } else { &svc };
        if let Some(ip) = &sp.cluster_ip {
            out.rule("nat", format!("-A KUBE-SERVICES -m comment --comment \"{id} cluster IP\" {pr} -d {ip}/32 --dport {} -j {internal_target}",
                sp.port));
        }
        if has_external {
            out.chain("nat", &ext);
            for (ip, what) in sp.external_ips.iter().map(|ip| (ip, "external IP")).chain(
                sp.load_balancer_ips
                    .iter()
                    .map(|ip| (ip, "loadbalancer IP")),
            ) {
                out.rule("nat", format!("-A KUBE-SERVICES -m comment --comment \"{id} {what}\" {pr} -d {ip}/32 --dport {} -j {ext}",
                    sp.port));
            }
            if let Some(np) = sp.node_port {
                out.rule(
                    "nat",
                    format!(
                        "-A KUBE-NODEPORTS -m comment --comment {id} {pr} --dport {np} -j {ext}"
                    ),
                );
            }
            if sp.external_local {
                if let Some(cidr) = &cfg.cluster_cidr {
                    out.rule("nat", format!("-A {ext} -m comment --comment \"pod traffic for {id} external destinations\" -s {cidr} -j {svc}"));
                }
                out.rule("nat", format!("-A {ext} -m comment --comment \"masquerade LOCAL traffic for {id} external destinations\" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ"));
                out.rule("nat", format!("-A {ext} -m comment --comment \"route LOCAL traffic for {id} external destinations\" -m addrtype --src-type LOCAL -j {svc}"));
                out.rule("nat", format!("-A {ext} -j {svl}"));
                if locals.is_empty() {
                    if let Some(np) = sp.node_port {
                        out.rule("filter", format!("-A KUBE-EXTERNAL-SERVICES -m comment --comment \"{id} has no local endpoints\" -m addrtype --dst-type LOCAL {pr} --dport {np} -j DROP"));
                    }
                }
            } else {
                out.rule("nat", format!("-A {ext} -m comment --comment \"masquerade traffic for {id} external destinations\" -j KUBE-MARK-MASQ"));
                out.rule("nat", format!("-A {ext} -j {svc}"));
            }
        }
        // The service chain: masquerade off-cluster sources, then spread.
        if let (Some(cidr), Some(ip)) = (&cfg.cluster_cidr, &sp.cluster_ip) {
            out.rule("nat", format!("-A {svc} -m comment --comment \"{id} cluster IP\" {pr} -d {ip}/32 --dport {} ! -s {cidr} -j KUBE-MARK-MASQ",
                sp.port));
        }
        spread(&mut out, &svc, sp, &eps);
        if sp.internal_local || sp.external_local {
            out.chain("nat", &svl);
            spread(&mut out, &svl, sp, &locals);
        }
        for e in &eps {
            let sep = sep_name(sp, e);
            out.chain("nat", &sep);
            // Hairpin: a pod reaching itself through its service is masqueraded.
            out.rule(
                "nat",
                format!(
                    "-A {sep} -m comment --comment {id} -s {}/32 -j KUBE-MARK-MASQ",
                    e.ip
                ),
            );
            let recent = if sp.affinity_seconds.is_some() {
                format!(" -m recent --name {sep} --set --rsource")
            } else {
                String::new()
            };
            out.rule("nat", format!("-A {sep} -m comment --comment {id} {pr}{recent} -j DNAT --to-destination {}:{}",
                e.ip, e.port));
        }
    }

    let fixed = [
        (
            "filter",
            format!(
            "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n\
             -A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT\n\
             -A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
             -A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment \"block incoming localnet connections\" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
            ),
        ),
        (
            "nat",
            format!(
            "-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN\n\
             -A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}\n\
             -A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully\n\
             -A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}\n\
             -A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
            ),
        ),
    ];
    for (table, rules) in fixed {
        for r in rules.lines() {
            out.rule(table, r.to_string());
        }
    }
    out
}
