//! The cluster zone: what the cluster's names are, built from Services and EndpointSlices as
//! Kubernetes' DNS specification (and CoreDNS's `kubernetes` plugin) defines them, and the
//! answers to questions about them.
//!
//! - `<svc>.<ns>.svc.<domain>`: A/AAAA → the cluster IPs; for a headless service the ready
//!   endpoints' addresses (and the not-ready ones with `publishNotReadyAddresses`); for an
//!   ExternalName service a CNAME to the external name.
//! - `<endpoint>.<svc>.<ns>.svc.<domain>` for a headless service's endpoints: the endpoint's
//!   hostname (a pod's `hostname` with `subdomain` = the service) or its dashed address.
//! - `_<port>._<proto>.<svc>.<ns>.svc.<domain>`: SRV for each named port.
//! - `<a-b-c-d>.<ns>.pod.<domain>`: A → a.b.c.d (CoreDNS' `pods insecure`, the default).
//! - PTR for cluster IPs and headless endpoints' addresses.
//! - SOA and NS at the apex; NXDOMAIN for names that do not exist, NODATA (NOERROR, no
//!   answer, the SOA in authority) for names that exist with other types or only as the parent
//!   of others.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// What a name holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Entry {
    addrs: Vec<IpAddr>,
    cname: Option<Name>,
    srv: Vec<(u16, Name)>,
}

/// One answer of the zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
    /// A CNAME whose target lies outside the zone: the caller resolves it upstream.
    pub chase: Option<Name>,
}

/// The cluster's names at one moment (rebuilt whole on every change; cheap at thousands of
/// services).
#[derive(Clone, Debug)]
pub struct Zone {
    domain: Name,
    /// `ns.dns.<domain>`, `pod.<domain>`, and the reverse zones (made once, not per question).
    ns: Name,
    mail: Name,
    pods: Name,
    in_addr: Name,
    ip6: Name,
    ttl: u32,
    serial: u32,
    /// The DNS service's own address (the NS record's glue).
    dns_ip: Option<IpAddr>,
    names: HashMap<Name, Entry>,
    /// Names that exist only as parents of others (`<ns>.svc.<domain>`, …).
    parents: HashSet<Name>,
    ptrs: HashMap<IpAddr, Vec<Name>>,
    /// The A/AAAA answers in wire form, for the hot path.
    fast: super::fast::Answers,
}

fn lower(n: &str) -> Option<Name> {
    let mut name = Name::from_ascii(n).ok()?.to_lowercase();
    name.set_fqdn(true);
    Some(name)
}

fn child(label: &str, parent: &Name) -> Option<Name> {
    Name::from_ascii(label)
        .ok()?
        .to_lowercase()
        .append_domain(parent)
        .ok()
}

/// `10.244.0.5` → `10-244-0-5`; IPv6 with `-` for `:`, as Kubernetes' DNS spec writes them.
fn dashed(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

fn undashed(label: &str) -> Option<IpAddr> {
    label
        .replace('-', ".")
        .parse::<std::net::Ipv4Addr>()
        .map(IpAddr::V4)
        .ok()
        .or_else(|| label.replace('-', ":").parse().ok())
}

/// The address a reverse name (`5.0.244.10.in-addr.arpa.`, nibbles under `ip6.arpa.`) is of.
fn reverse(name: &Name) -> Option<IpAddr> {
    let text = name.to_ascii().to_ascii_lowercase();
    let text = text.trim_end_matches('.');
    if let Some(v4) = text.strip_suffix(".in-addr.arpa") {
        let mut octets: Vec<&str> = v4.split('.').collect();
        if octets.len() != 4 {
            return None;
        }
        octets.reverse();
        return octets.join(".").parse().ok();
    }
    let v6 = text.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<&str> = v6.split('.').collect();
    if nibbles.len() != 32 || nibbles.iter().any(|n| n.len() != 1) {
        return None;
    }
    let hex: String = nibbles.iter().rev().copied().collect();
    let value = u128::from_str_radix(&hex, 16).ok()?;
    Some(IpAddr::V6(value.into()))
}

impl Zone {
    pub fn empty(domain: &str, ttl: u32) -> Zone {
        let domain = lower(domain).unwrap_or_else(|| lower("cluster.local").expect("a name"));
        Zone {
            ns: child("ns.dns", &domain).expect("ns.dns.<domain>"),
            mail: child("hostmaster", &domain).expect("hostmaster.<domain>"),
            pods: child("pod", &domain).expect("pod.<domain>"),
            in_addr: lower("in-addr.arpa").expect("a name"),
            ip6: lower("ip6.arpa").expect("a name"),
            domain,
            ttl,
            serial: 0,
            dns_ip: None,
            names: HashMap::new(),
            parents: HashSet::new(),
            ptrs: HashMap::new(),
            fast: Default::default(),
        }
    }

    /// The zone the stores describe: `services` and their `slices`.
    pub fn build(
        domain: &str,
        ttl: u32,
        serial: u32,
        services: &[Arc<Service>],
        slices: &[Arc<EndpointSlice>],
    ) -> Zone {
        let mut zone = Zone::empty(domain, ttl);
        zone.serial = serial;
        let mut by_service: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
        for s in slices {
            let name = s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"));
            if let (Some(ns), Some(name)) = (s.metadata.namespace.as_deref(), name) {
                by_service.entry((ns, name.as_str())).or_default().push(s);
            }
        }
        let svc_domain = child("svc", &zone.domain).expect("svc.<domain>");
        for svc in services {
            let (Some(ns), Some(name)) = (
                svc.metadata.namespace.as_deref(),
                svc.metadata.name.as_deref(),
            ) else {
                continue;
            };
            let Some(spec) = svc.spec.as_ref() else {
                continue;
            };
            if ns == "kube-system" && name == "kube-dns" {
                zone.dns_ip = spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok());
            }
            let Some(base) = child(ns, &svc_domain).and_then(|n| child(name, &n)) else {
                continue;
            };
            if spec.type_.as_deref() == Some("ExternalName") {
                if let Some(target) = spec.external_name.as_deref().and_then(lower) {
                    zone.entry(&base).cname = Some(target);
                }
                continue;
            }
            let headless = spec.cluster_ip.as_deref() == Some("None");
            if !headless {
                let mut ips: Vec<IpAddr> = Vec::new();
                for ip in spec
                    .cluster_ips
                    .iter()
                    .flatten()
                    .chain(spec.cluster_ip.iter())
                {
                    match ip.parse() {
                        Ok(ip) if !ips.contains(&ip) => ips.push(ip),
                        _ => {}
                    }
                }
                if ips.is_empty() {
                    continue;
                }
                for ip in &ips {
                    zone.ptrs.entry(*ip).or_default().push(base.clone());
                }
                zone.entry(&base).addrs = ips;
                for p in spec.ports.iter().flatten() {
                    let Some(port_name) = p.name.as_deref().filter(|n| !n.is_empty()) else {
                        continue;
                    };
                    let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                    if let Some(srv) = child(&format!("_{port_name}._{proto}"), &base) {
                        zone.entry(&srv).srv.push((p.port as u16, base.clone()));
                    }
                }
                continue;
            }
            // Headless: the endpoints themselves.
            let publish_all = spec.publish_not_ready_addresses == Some(true);
            // A name exists for a headless service even before it has endpoints.
            zone.entry(&base);
            for slice in by_service.get(&(ns, name)).into_iter().flatten() {
                for ep in &slice.endpoints {
                    let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                    if !ready && !publish_all {
                        continue;
                    }
                    for addr in &ep.addresses {
                        let Ok(ip) = addr.parse::<IpAddr>() else {
                            continue;
                        };
                        let label = ep
                            .hostname
                            .clone()
                            .filter(|h| !h.is_empty())
                            .unwrap_or_else(|| dashed(&ip));
                        let Some(ep_name) = child(&label, &base) else {
                            continue;
                        };
                        let e = zone.entry(&base);
                        if !e.addrs.contains(&ip) {
                            e.addrs.push(ip);
                        }
                        let e = zone.entry(&ep_name);
                        if !e.addrs.contains(&ip) {
                            e.addrs.push(ip);
                        }
                        zone.ptrs.entry(ip).or_default().push(ep_name.clone());
                        for p in slice.ports.iter().flatten() {
                            let (Some(port_name), Some(port)) =
                                (p.name.as_deref().filter(|n| !n.is_empty()), p.port)
                            else {
                                continue;
                            };
                            let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                            if let Some(srv) = child(&format!("_{port_name}._{proto}"), &base) {
                                let e = zone.entry(&srv);
                                if !e.srv.contains(&(port as u16, ep_name.clone())) {
                                    e.srv.push((port as u16, ep_name.clone()));
                                }
                            }
                        }
                    }
                }
            }
        }
        // Always there, with or without names below them.
        zone.parents.insert(zone.pods.clone());
        zone.parents.insert(svc_domain);
        zone.parents.insert(zone.ns.base_name());
        for names in zone.ptrs.values_mut() {
            names.dedup();
        }
        let mut fast = super::fast::Answers::default();
        for (name, e) in &zone.names {
            if e.cname.is_none() && !e.addrs.is_empty() {
                fast.add(&name.to_ascii(), &e.addrs, zone.ttl);
            }
        }
        zone.fast = fast;
        zone
    }

    /// The entry of `name` (made if need be), its parents recorded up to the apex.
    fn entry(&mut self, name: &Name) -> &mut Entry {
        if !self.names.contains_key(name) {
            let mut parent = name.base_name();
            while self.domain.zone_of(&parent) && parent != self.domain {
                if !self.parents.insert(parent.clone()) {
                    break;
                }
                parent = parent.base_name();
            }
        }
        self.names.entry(name.clone()).or_default()
    }

    pub fn domain(&self) -> &Name {
        &self.domain
    }

    /// How many names the zone holds.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The hot path's answers.
    pub fn fast(&self) -> &super::fast::Answers {
        &self.fast
    }

    /// The cluster DNS's own service address (kube-dns's), once known.
    pub fn dns_ip(&self) -> Option<IpAddr> {
        self.dns_ip
    }

    fn is_reverse(&self, name: &Name) -> bool {
        self.in_addr.zone_of(name) || self.ip6.zone_of(name)
    }

    /// Whether the zone answers `q` itself (rather than the upstream).
    pub fn owns(&self, name: &Name) -> bool {
        if self.domain.zone_of(name) {
            return true;
        }
        // Reverse names: only those of addresses the zone knows.
        self.is_reverse(name) && reverse(name).is_some_and(|ip| self.ptrs.contains_key(&ip))
    }

    fn record(&self, name: &Name, data: RData) -> Record {
        Record::from_rdata(name.clone(), self.ttl, data)
    }

    fn soa(&self) -> Record {
        let mail = self.mail.clone();
        let soa = SOA::new(
            self.ns.clone(),
            mail,
            self.serial,
            7200,
            1800,
            86400,
            self.ttl,
        );
        self.record(&self.domain, RData::SOA(soa))
    }

    fn addresses(&self, owner: &Name, entry: &Entry, qtype: RecordType) -> Vec<Record> {
        entry
            .addrs
            .iter()
            .filter_map(|ip| match (ip, qtype) {
                (IpAddr::V4(v4), RecordType::A) => Some(RData::A(A(*v4))),
                (IpAddr::V6(v6), RecordType::AAAA) => Some(RData::AAAA(AAAA(*v6))),
                _ => None,
            })
            .map(|d| self.record(owner, d))
            .collect()
    }

    /// The zone's answer to `q` (a name it [owns](Zone::owns)).
    pub fn answer(&self, q: &Query) -> Answer {
        let owner = q.name.clone();
        // Names compare and hash without regard to case.
        let name = &q.name;
        let qtype = q.query_type;
        let mut out = Answer {
            rcode: ResponseCode::NoError,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
            chase: None,
        };
        if let Some(ip) = self.is_reverse(name).then(|| reverse(name)).flatten() {
            if matches!(qtype, RecordType::PTR | RecordType::ANY) {
                for target in self.ptrs.get(&ip).into_iter().flatten() {
                    let ptr = RData::PTR(PTR(target.clone()));
                    out.answers.push(self.record(&owner, ptr));
                }
            }
            if out.answers.is_empty() {
                out.authorities.push(self.soa());
            }
            return out;
        }
        if *name == self.domain {
            let mut soa = self.soa();
            soa.name = owner.clone();
            match qtype {
                RecordType::SOA => out.answers.push(soa),
                RecordType::ANY => {
                    out.answers.push(soa);
                    let ns = RData::NS(NS(self.ns.clone()));
                    out.answers.push(self.record(&owner, ns));
                }
                RecordType::NS => {
                    let ns = self.ns.clone();
                    out.answers
                        .push(self.record(&owner, RData::NS(NS(ns.clone()))));
                    if let Some(ip) = self.dns_ip {
                        let e = Entry {
                            addrs: vec![ip],
                            ..Default::default()
                        };
                        out.additionals
                            .extend(self.addresses(&ns, &e, RecordType::A));
                        out.additionals
                            .extend(self.addresses(&ns, &e, RecordType::AAAA));
                    }
                }
                _ => out.authorities.push(self.soa()),
            }
            return out;
        }
        // The version of Kubernetes' DNS specification served (its §2.2).
        if child("dns-version", &self.domain).as_ref() == Some(name) {
            if matches!(qtype, RecordType::TXT | RecordType::ANY) {
                let txt = RData::TXT(TXT::new(vec!["1.1.0".into()]));
                out.answers.push(self.record(&owner, txt));
            } else {
                out.authorities.push(self.soa());
            }
            return out;
        }
        if *name == self.ns {
            if let Some(ip) = self.dns_ip {
                let e = Entry {
                    addrs: vec![ip],
                    ..Default::default()
                };
                out.answers = self.addresses(&owner, &e, qtype);
            }
            if out.answers.is_empty() {
                out.authorities.push(self.soa());
            }
            return out;
        }
        let pod_entry;
        let entry = match self.names.get(name) {
            Some(e) => Some(e),
            None => {
                pod_entry = self.pod(name);
                pod_entry.as_ref()
            }
        };
        let Some(entry) = entry else {
            // `<ns>.pod.<domain>` has names below it (the pods'): it exists.
            let pod_namespace =
                name.num_labels() == self.pods.num_labels() + 1 && self.pods.zone_of(name);
            if !self.parents.contains(name) && !pod_namespace {
                out.rcode = ResponseCode::NXDomain;
            }
            out.authorities.push(self.soa());
            return out;
        };
        if let Some(target) = &entry.cname {
            out.answers
                .push(self.record(&owner, RData::CNAME(CNAME(target.clone()))));
            if qtype == RecordType::CNAME {
                return out;
            }
            // Chased: in the cluster here (ExternalName to ExternalName too, at most 8 links,
            // as CoreDNS), outside it by the caller.
            let mut target = target.clone();
            for _ in 0..8 {
                if !self.domain.zone_of(&target) {
                    out.chase = Some(target);
                    return out;
                }
                let Some(e) = self.names.get(&target) else {
                    // RFC 6604: the rcode is the last name's.
                    out.rcode = ResponseCode::NXDomain;
                    out.authorities.push(self.soa());
                    return out;
                };
                if let Some(next) = &e.cname {
                    let cname = RData::CNAME(CNAME(next.clone()));
                    out.answers.push(self.record(&target, cname));
                    target = next.clone();
                    continue;
                }
                let found = self.addresses(&target, e, qtype);
                if found.is_empty() {
                    out.authorities.push(self.soa());
                }
                out.answers.extend(found);
                return out;
            }
            return out;
        }
        match qtype {
            RecordType::A | RecordType::AAAA => {
                out.answers = self.addresses(&owner, entry, qtype);
            }
            RecordType::SRV => {
                let weight = (100 / entry.srv.len().max(1)) as u16;
                for (port, target) in &entry.srv {
                    let srv = SRV::new(0, weight, *port, target.clone());
                    out.answers.push(self.record(&owner, RData::SRV(srv)));
                    if let Some(e) = self.names.get(target) {
                        out.additionals
                            .extend(self.addresses(target, e, RecordType::A));
                        out.additionals
                            .extend(self.addresses(target, e, RecordType::AAAA));
                    }
                }
            }
            RecordType::ANY => {
                out.answers = self.addresses(&owner, entry, RecordType::A);
                out.answers
                    .extend(self.addresses(&owner, entry, RecordType::AAAA));
            }
            _ => {}
        }
        if out.answers.is_empty() {
            out.authorities.push(self.soa());
        }
        out
    }

    /// `<a-b-c-d>.<ns>.pod.<domain>`.
    fn pod(&self, name: &Name) -> Option<Entry> {
        let pods = &self.pods;
        if name.num_labels() != pods.num_labels() + 2 || !pods.zone_of(name) {
            return None;
        }
        let first = name.iter().next()?;
        let ip = undashed(std::str::from_utf8(first).ok()?)?;
        Some(Entry {
            addrs: vec![ip],
            ..Default::default()
        })
    }
}

/// A record's class is always IN here.
pub fn is_internet(q: &Query) -> bool {
    q.query_class == DNSClass::IN
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Arc<Service> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn slice(v: serde_json::Value) -> Arc<EndpointSlice> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn zone() -> Zone {
        let services = vec![
            svc(
                json!({"metadata": {"name": "hello", "namespace": "default"},
                "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                         "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}}),
            ),
            svc(
                json!({"metadata": {"name": "kube-dns", "namespace": "kube-system"},
                "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}}),
            ),
            svc(json!({"metadata": {"name": "db", "namespace": "prod"},
                "spec": {"clusterIP": "None", "ports": [{"name": "sql", "port": 5432}]}})),
            svc(json!({"metadata": {"name": "ext", "namespace": "default"},
                "spec": {"type": "ExternalName", "externalName": "my.database.example.com"}})),
            svc(
                json!({"metadata": {"name": "alias", "namespace": "default"},
                "spec": {"type": "ExternalName", "externalName": "hello.default.svc.cluster.local"}}),
            ),
            svc(
                json!({"metadata": {"name": "alias2", "namespace": "default"},
                "spec": {"type": "ExternalName", "externalName": "alias.default.svc.cluster.local"}}),
            ),
            svc(
                json!({"metadata": {"name": "dangling", "namespace": "default"},
                "spec": {"type": "ExternalName", "externalName": "gone.default.svc.cluster.local"}}),
            ),
        ];
        let slices = vec![slice(json!({
            "metadata": {"name": "db-x", "namespace": "prod",
                         "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.244.0.5"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.244.0.6"], "conditions": {"ready": true}},
                {"addresses": ["10.244.0.7"], "conditions": {"ready": false}}
            ],
            "ports": [{"name": "sql", "port": 5432, "protocol": "TCP"}]
        }))];
        Zone::build("cluster.local", 5, 7, &services, &slices)
    }

    fn ask(z: &Zone, name: &str, t: RecordType) -> Answer {
        let q = Query::query(Name::from_ascii(name).unwrap(), t);
        z.answer(&q)
    }

    fn data(a: &Answer) -> Vec<String> {
        a.answers.iter().map(|r| r.data.to_string()).collect()
    }

    #[test]
    fn services_resolve_to_their_cluster_ips() {
        let z = zone();
        let a = ask(&z, "hello.default.svc.cluster.local.", RecordType::A);
        assert_eq!(a.rcode, ResponseCode::NoError);
        assert_eq!(data(&a), ["10.96.0.20"]);
        assert_eq!(a.answers[0].ttl, 5);
        // Case is the asker's (0x20 randomisation), the answer the same.
        let a = ask(&z, "HeLLo.Default.SVC.cluster.local.", RecordType::A);
        assert_eq!(
            a.answers[0].name.to_ascii(),
            "HeLLo.Default.SVC.cluster.local."
        );
        // NODATA for a type the name lacks; NXDOMAIN for a name that is not there.
        let a = ask(&z, "hello.default.svc.cluster.local.", RecordType::AAAA);
        assert_eq!((a.rcode, a.answers.len()), (ResponseCode::NoError, 0));
        assert_eq!(a.authorities[0].record_type(), RecordType::SOA);
        let a = ask(&z, "nope.default.svc.cluster.local.", RecordType::A);
        assert_eq!(a.rcode, ResponseCode::NXDomain);
        assert_eq!(a.authorities[0].record_type(), RecordType::SOA);
        // Parents of names exist (NODATA), unrelated names do not.
        assert_eq!(
            ask(&z, "default.svc.cluster.local.", RecordType::A).rcode,
            ResponseCode::NoError
        );
        assert_eq!(
            ask(&z, "svc.cluster.local.", RecordType::A).rcode,
            ResponseCode::NoError
        );
        assert_eq!(
            ask(&z, "other.svc.cluster.local.", RecordType::A).rcode,
            ResponseCode::NXDomain
        );
    }

    #[test]
    fn srv_for_named_ports() {
        let z = zone();
        let a = ask(
            &z,
            "_http._tcp.hello.default.svc.cluster.local.",
            RecordType::SRV,
        );
        assert_eq!(data(&a), ["0 100 8080 hello.default.svc.cluster.local."]);
        assert_eq!(a.additionals[0].data.to_string(), "10.96.0.20");
        let a = ask(&z, "_sql._tcp.db.prod.svc.cluster.local.", RecordType::SRV);
        let mut got = data(&a);
        got.sort();
        assert_eq!(
            got,
            [
                "0 50 5432 10-244-0-6.db.prod.svc.cluster.local.",
                "0 50 5432 db-0.db.prod.svc.cluster.local."
            ]
        );
    }

    #[test]
    fn headless_services_answer_their_ready_endpoints() {
        let z = zone();
        let mut got = data(&ask(&z, "db.prod.svc.cluster.local.", RecordType::A));
        got.sort();
        assert_eq!(
            got,
            ["10.244.0.5", "10.244.0.6"],
            "the not-ready one is left out"
        );
        assert_eq!(
            data(&ask(&z, "db-0.db.prod.svc.cluster.local.", RecordType::A)),
            ["10.244.0.5"]
        );
        assert_eq!(
            data(&ask(
                &z,
                "10-244-0-6.db.prod.svc.cluster.local.",
                RecordType::A
            )),
            ["10.244.0.6"]
        );
        assert_eq!(
            ask(&z, "10-244-0-7.db.prod.svc.cluster.local.", RecordType::A).rcode,
            ResponseCode::NXDomain
        );
    }

    #[test]
    fn external_names_are_cnames() {
        let z = zone();
        let a = ask(&z, "ext.default.svc.cluster.local.", RecordType::A);
        assert_eq!(data(&a), ["my.database.example.com."]);
        assert_eq!(a.chase.unwrap().to_ascii(), "my.database.example.com.");
        let a = ask(&z, "alias.default.svc.cluster.local.", RecordType::A);
        assert_eq!(data(&a), ["hello.default.svc.cluster.local.", "10.96.0.20"]);
        assert!(a.chase.is_none());
        let a = ask(&z, "alias2.default.svc.cluster.local.", RecordType::A);
        assert_eq!(
            data(&a),
            [
                "alias.default.svc.cluster.local.",
                "hello.default.svc.cluster.local.",
                "10.96.0.20"
            ]
        );
        let a = ask(&z, "dangling.default.svc.cluster.local.", RecordType::A);
        assert_eq!(a.rcode, ResponseCode::NXDomain, "the target's rcode");
        assert_eq!(data(&a), ["gone.default.svc.cluster.local."]);
        assert_eq!(a.authorities[0].record_type(), RecordType::SOA);
    }

    #[test]
    fn pods_ptr_and_the_apex() {
        let z = zone();
        assert_eq!(
            data(&ask(
                &z,
                "10-244-0-9.default.pod.cluster.local.",
                RecordType::A
            )),
            ["10.244.0.9"]
        );
        assert_eq!(
            ask(&z, "pod.cluster.local.", RecordType::A).rcode,
            ResponseCode::NoError
        );
        assert_eq!(
            data(&ask(&z, "20.0.96.10.in-addr.arpa.", RecordType::PTR)),
            ["hello.default.svc.cluster.local."]
        );
        assert_eq!(
            data(&ask(&z, "5.0.244.10.in-addr.arpa.", RecordType::PTR)),
            ["db-0.db.prod.svc.cluster.local."]
        );
        assert!(z.owns(&Name::from_ascii("20.0.96.10.in-addr.arpa.").unwrap()));
        assert!(!z.owns(&Name::from_ascii("1.1.168.192.in-addr.arpa.").unwrap()));
        assert!(!z.owns(&Name::from_ascii("example.com.").unwrap()));
        let soa = ask(&z, "cluster.local.", RecordType::SOA);
        assert_eq!(
            data(&soa),
            ["ns.dns.cluster.local. hostmaster.cluster.local. 7 7200 1800 86400 5"]
        );
        let ns = ask(&z, "cluster.local.", RecordType::NS);
        assert_eq!(data(&ns), ["ns.dns.cluster.local."]);
        assert_eq!(ns.additionals[0].data.to_string(), "10.96.0.10");
        assert_eq!(
            reverse(
                &Name::from_ascii(
                    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa."
                )
                .unwrap()
            ),
            Some("fd00::1".parse().unwrap())
        );
    }
}
