//! A packet tracer over a rendered ruleset (the subset of iptables the renderer writes), as
//! kube-proxy's tests trace packets: where does a packet from `src` to `dst:port` go — which
//! endpoints (every branch of the random spreading), masqueraded or not, or rejected — without
//! root and without a kernel.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

/// A new connection's first packet.
#[derive(Clone, Debug)]
pub struct Packet {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// `tcp`, `udp`, `sctp`.
    pub proto: String,
    pub dport: u16,
}

/// Where a packet ends up.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// DNATed to `ip:port`, source masqueraded or not.
    Endpoint {
        to: String,
        masquerade: bool,
    },
    Reject,
    Drop,
    /// No rule of the proxy's took it: the host answers (or routes) it as it is.
    Untouched,
}

type Chains = HashMap<(String, String), Vec<Vec<String>>>;

fn parse(text: &str) -> Chains {
    let mut chains = Chains::new();
    let mut table = String::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t.to_string();
        } else if let Some(rest) = line.strip_prefix("-A ") {
            let mut t = crate::iptables::split_rule(rest);
            let chain = t.remove(0);
            chains.entry((table.clone(), chain)).or_default().push(t);
        }
    }
    chains
}

fn in_cidr(ip: Ipv4Addr, cidr: &str) -> bool {
    // iptables writes a single address without its /32.
    let cidr = if cidr.contains('/') {
        cidr.to_string()
    } else {
        format!("{cidr}/32")
    };
    tinykube_machinery::cidr::Cidr::parse(&cidr).is_ok_and(|c| c.contains_v4(ip))
}

#[derive(Clone, Debug)]
struct State {
    pkt: Packet,
    mark: u32,
    dnat: bool,
}

enum End {
    /// The chain ran out (or RETURNed): the caller goes on.
    Fallthrough(State),
    Terminal(State, Verdict),
}

struct Tracer<'a> {
    chains: &'a Chains,
    local: &'a [Ipv4Addr],
}

impl Tracer<'_> {
    fn is_local(&self, ip: Ipv4Addr) -> bool {
        ip.is_loopback() || self.local.contains(&ip)
    }

    /// Every way `chain` of `table` can end for `st`.
    fn walk(&self, table: &str, chain: &str, st: State, depth: usize) -> Vec<End> {
        assert!(depth < 32, "chain loop at {chain}");
        let Some(rules) = self.chains.get(&(table.to_string(), chain.to_string())) else {
            return vec![End::Fallthrough(st)];
        };
        let mut live = vec![st];
        let mut ended = Vec::new();
        for rule in rules {
            let mut next = Vec::new();
            for st in live {
                let (matches, maybe) = self.matches(rule, &st);
                if maybe {
                    // A random branch: both ways.
                    next.push(st.clone());
                }
                if !matches {
                    if !maybe {
                        next.push(st);
                    }
                    continue;
                }
                for end in self.target(table, rule, st, depth) {
                    match end {
                        End::Fallthrough(s) => next.push(s),
                        t => ended.push(t),
                    }
                }
            }
            live = next;
        }
        ended.extend(live.into_iter().map(End::Fallthrough));
        ended
    }

    /// Whether `rule` matches (and whether it matches only sometimes).
    fn matches(&self, rule: &[String], st: &State) -> (bool, bool) {
        let mut i = 0;
        let mut neg = false;
        let mut maybe = false;
        let p = &st.pkt;
        while i < rule.len() {
            let arg = |k: usize| rule.get(i + k).map(String::as_str).unwrap_or("");
            let (ok, used) = match arg(0) {
                "!" => {
                    neg = true;
                    i += 1;
                    continue;
                }
                "-j" => break,
                "-m" | "--comment" | "--name" | "--seconds" | "--mode" => (true, 2),
                "--reap" | "--set" | "--rsource" => (true, 1),
                "--rcheck" => (false, 1), // a new client has no affinity yet
                "-s" => (in_cidr(p.src, arg(1)), 2),
                "-d" => (in_cidr(p.dst, arg(1)), 2),
                "-p" => (p.proto == arg(1), 2),
                "--dport" => (arg(1).parse() == Ok(p.dport), 2),
                "--dst-type" => (self.is_local(p.dst), 2),
                "--src-type" => (self.is_local(p.src), 2),
                "--probability" => {
                    maybe = true;
                    (true, 2)
                }
                "--mark" => {
                    let (v, m) = arg(1).split_once('/').unwrap_or((arg(1), "0xffffffff"));
                    let parse =
                        |s: &str| u32::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or(0);
                    (st.mark & parse(m) == parse(v), 2)
                }
                "--ctstate" => {
                    let states: Vec<&str> = arg(1).split(',').collect();
                    (
                        states.contains(&"NEW") || (st.dnat && states.contains(&"DNAT")),
                        2,
                    )
                }
                other => panic!("the tracer does not know {other:?} in {rule:?}"),
            };
            if ok == neg {
                return (false, false);
            }
            neg = false;
            i += used;
        }
        (true, maybe)
    }

    fn target(&self, table: &str, rule: &[String], mut st: State, depth: usize) -> Vec<End> {
        let Some(j) = rule.iter().position(|t| t == "-j") else {
            return vec![End::Fallthrough(st)];
        };
        let arg = |k: usize| rule.get(j + k).map(String::as_str).unwrap_or("");
        let hex = |s: &str| u32::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or(0);
        match arg(1) {
            "RETURN" => vec![End::Fallthrough(st)],
            "ACCEPT" => vec![End::Terminal(st, Verdict::Untouched)],
            "REJECT" => vec![End::Terminal(st, Verdict::Reject)],
            "DROP" => vec![End::Terminal(st, Verdict::Drop)],
            "MARK" => {
                match arg(2) {
                    "--or-mark" => st.mark |= hex(arg(3)),
                    "--xor-mark" => st.mark ^= hex(arg(3)),
                    o => panic!("MARK {o}"),
                }
                vec![End::Fallthrough(st)]
            }
            "MASQUERADE" => vec![End::Fallthrough(st)],
            "DNAT" => {
                let to = arg(3).to_string();
                let (ip, port) = to.split_once(':').expect("ip:port");
                st.pkt.dst = ip.parse().expect("DNAT ip");
                st.pkt.dport = port.parse().expect("DNAT port");
                st.dnat = true;
                vec![End::Terminal(
                    st,
                    Verdict::Endpoint {
                        to,
                        masquerade: false,
                    },
                )]
            }
            chain => self.walk(table, chain, st, depth + 1),
        }
    }
}

/// Traces `pkt` through the rules in `text` (nat: KUBE-SERVICES then KUBE-POSTROUTING; filter:
/// the firewall, service and external-service chains for packets nat left alone) on a node
/// whose addresses are `local`. Returns every possible outcome.
pub fn trace(text: &str, pkt: &Packet, local: &[Ipv4Addr]) -> BTreeSet<Verdict> {
    let chains = parse(text);
    let t = Tracer {
        chains: &chains,
        local,
    };
    let start = State {
        pkt: pkt.clone(),
        mark: 0,
        dnat: false,
    };
    let mut out = BTreeSet::new();
    for end in t.walk("nat", "KUBE-SERVICES", start, 0) {
        match end {
            End::Terminal(st, Verdict::Endpoint { to, .. }) => {
                // KUBE-POSTROUTING masquerades what KUBE-MARK-MASQ marked.
                let masquerade = st.mark & 0x4000 != 0;
                out.insert(Verdict::Endpoint { to, masquerade });
            }
            End::Terminal(_, v) => {
                out.insert(v);
            }
            End::Fallthrough(st) => {
                let mut v = Verdict::Untouched;
                let mut chains = vec!["KUBE-FIREWALL", "KUBE-SERVICES"];
                if t.is_local(st.pkt.dst) {
                    chains.push("KUBE-EXTERNAL-SERVICES");
                }
                'filter: for c in chains {
                    for e in t.walk("filter", c, st.clone(), 0) {
                        if let End::Terminal(_, verdict) = e {
                            v = verdict;
                            break 'filter;
                        }
                    }
                }
                out.insert(v);
            }
        }
    }
    out
}
