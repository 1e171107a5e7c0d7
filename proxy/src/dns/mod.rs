//! The cluster DNS, served by tinykube-proxy beside the Services' rules (docs/dns.md says why
//! there): the names of [`zone`] answered from the proxy's own Service and EndpointSlice
//! informers, everything else [forwarded](forward) to the node's resolvers.
//!
//! It listens on the node's address (port 53, UDP and TCP) and writes itself as the endpoint
//! of the `kube-dns` Service (kube-system, 10.96.0.10), so pods reach it at the conventional
//! address through the proxy's rules. Only pods, the node and loopback are answered: the
//! node's address is reachable from its network, and a resolver open to it would be an open
//! resolver.
//!
//! The zone is rebuilt whole when an informer reports a change and swapped in at once; a
//! question is answered from the zone of that moment without waiting for anything. While the
//! apiserver is away the informers keep their last state, and so does the DNS.

pub mod fast;
pub mod forward;
pub mod metrics;
pub mod zone;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::Client;
use serde_json::json;
use tinykube_machinery::cidr::Cidr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use forward::Forwarder;
use metrics::Metrics;
use zone::Zone;

/// The largest UDP answer this server sends to an EDNS client (the DNS flag day's 1232).
const MAX_UDP: u16 = 1232;
/// Threads (each with its own socket) receiving UDP questions.
const UDP_THREADS: usize = 2;
/// How long a TCP client may stay idle between questions.
const TCP_IDLE: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct Settings {
    /// Where to listen (UDP and TCP): the node's address, port 53.
    pub bind: SocketAddr,
    /// The cluster domain (`cluster.local`).
    pub domain: String,
    /// The TTL of cluster records (5 s, as CoreDNS' default).
    pub ttl: u32,
    /// The node's resolv.conf: its nameservers are the upstreams.
    pub resolv_conf: PathBuf,
    /// Who is answered, besides loopback and the node itself: the pod network.
    pub clients: Vec<Cidr>,
    /// The port of the Prometheus metrics (kube-dns's `metrics`, 9153); 0: none.
    pub metrics_port: u16,
}

/// The server's state: the zone in force and the forwarder.
pub struct Dns {
    zone: RwLock<Arc<Zone>>,
    forwarder: Forwarder,
    clients: Vec<Cidr>,
    own: IpAddr,
    pub metrics: metrics::Metrics,
}

impl Dns {
    pub fn new(settings: &Settings, upstreams: &[IpAddr]) -> Dns {
        let own = settings.bind.ip();
        Dns {
            zone: RwLock::new(Arc::new(Zone::empty(&settings.domain, settings.ttl))),
            forwarder: Forwarder::new(upstreams, &[own]),
            clients: settings.clients.clone(),
            own,
            metrics: Default::default(),
        }
    }

    pub fn set_zone(&self, zone: Zone) {
        self.forwarder.exclude(zone.dns_ip());
        *self.zone.write().unwrap() = Arc::new(zone);
    }

    fn allowed(&self, peer: IpAddr) -> bool {
        peer.is_loopback() || peer == self.own || self.clients.iter().any(|c| c.contains(peer))
    }

    /// The answer to one message from `peer` (None: nothing is sent back), as long as the
    /// client's UDP buffer allows if it came over UDP.
    pub async fn handle(&self, wire: &[u8], peer: IpAddr, udp: bool) -> Option<Vec<u8>> {
        match self.answer_now(wire, peer, udp) {
            Ok(out) => out,
            Err(pending) => self.answer_later(*pending).await,
        }
    }

    /// Answers what needs no upstream (cluster names, malformed or refused questions, cached
    /// answers) at once; the rest is returned to be [forwarded](Dns::answer_later).
    fn answer_now(
        &self,
        wire: &[u8],
        peer: IpAddr,
        udp: bool,
    ) -> Result<Option<Vec<u8>>, Box<Pending>> {
        // Anyone else gets nothing at all (no error either: a spoofed source must not make
        // the node a reflector).
        if !self.allowed(peer) {
            Metrics::count(&self.metrics.dropped);
            return Ok(None);
        }
        let zone = self.zone.read().unwrap().clone();
        let limit = if udp {
            fast::udp_limit(wire)
        } else {
            u16::MAX as usize
        };
        if let Some(out) = zone.fast().answer(wire, self.forwarder.available(), limit) {
            Metrics::count(&self.metrics.hot_path);
            return Ok(Some(out));
        }
        self.answer_general(wire, udp, &zone)
    }

    /// [`Dns::answer_now`] for any message, through hickory-proto's decoder and encoder.
    fn answer_general(
        &self,
        wire: &[u8],
        udp: bool,
        zone: &Zone,
    ) -> Result<Option<Vec<u8>>, Box<Pending>> {
        let query = match Message::from_vec(wire) {
            Ok(m) => m,
            Err(_) if wire.len() >= 12 && wire[2] & 0x80 == 0 => {
                // A question's header at least: FORMERR to its ID.
                let id = u16::from_be_bytes([wire[0], wire[1]]);
                let m = Message::error_msg(id, OpCode::Query, ResponseCode::FormErr);
                return Ok(m.to_vec().ok());
            }
            Err(_) => return Ok(None),
        };
        if query.metadata.message_type != MessageType::Query {
            return Ok(None);
        }
        let mut resp = Message::response(query.metadata.id, query.metadata.op_code);
        resp.metadata.recursion_desired = query.metadata.recursion_desired;
        resp.metadata.recursion_available = self.forwarder.available();
        resp.metadata.checking_disabled = query.metadata.checking_disabled;
        resp.queries = query.queries.clone();
        let limit = if udp {
            query
                .edns
                .as_ref()
                .map_or(512, |e| e.max_payload().clamp(512, MAX_UDP)) as usize
        } else {
            u16::MAX as usize
        };
        let dnssec_ok = query.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
        if query.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(MAX_UDP);
            edns.set_dnssec_ok(dnssec_ok);
            resp.set_edns(edns);
        }
        let rcode = if query.edns.as_ref().is_some_and(|e| e.version() > 0) {
            // RFC 6891: only EDNS version 0 is spoken here.
            Some(ResponseCode::BADVERS)
        } else if query.metadata.op_code != OpCode::Query {
            Some(ResponseCode::NotImp)
        } else if query.queries.len() != 1 {
            Some(ResponseCode::FormErr)
        } else if !zone::is_internet(&query.queries[0]) {
            Some(ResponseCode::Refused)
        } else {
            None
        };
        if let Some(rcode) = rcode {
            resp.metadata.response_code = rcode;
            return Ok(encode(resp, limit));
        }
        let q = &query.queries[0];
        self.forwarder.count_probe(q);
        let cd = query.metadata.checking_disabled;
        let ad = dnssec_ok || query.metadata.authentic_data;
        if zone.owns(&q.name) {
            let a = zone.answer(q);
            resp.metadata.authoritative = true;
            resp.metadata.response_code = a.rcode;
            resp.answers = a.answers;
            resp.authorities = a.authorities;
            resp.additionals = a.additionals;
            if let Some(target) = a.chase {
                // An ExternalName outside the cluster: its target resolved upstream.
                let mut chased = q.clone();
                chased.name = target;
                return Err(Box::new(Pending {
                    question: chased,
                    chase: true,
                    resp,
                    dnssec_ok,
                    cd,
                    ad,
                    limit,
                }));
            }
            return Ok(encode(resp, limit));
        }
        if let Some(m) = self.forwarder.cached(q, dnssec_ok).filter(|_| !cd) {
            Metrics::count(&self.metrics.cache_hits);
            relay(&mut resp, m, ad);
            return Ok(encode(resp, limit));
        }
        Err(Box::new(Pending {
            question: q.clone(),
            chase: false,
            resp,
            dnssec_ok,
            cd,
            ad,
            limit,
        }))
    }

    /// Finishes a question that waits for an upstream.
    async fn answer_later(&self, p: Pending) -> Option<Vec<u8>> {
        let Pending {
            question,
            chase,
            mut resp,
            dnssec_ok,
            cd,
            ad,
            limit,
        } = p;
        Metrics::count(&self.metrics.forwarded);
        let answer = self.forwarder.resolve(&question, dnssec_ok, cd).await;
        if answer.is_err() {
            Metrics::count(&self.metrics.forward_failures);
        }
        match answer {
            Ok(m) if chase => {
                resp.metadata.response_code = m.metadata.response_code;
                resp.answers.extend(m.answers);
                if resp.answers.len() == 1 {
                    resp.authorities = m.authorities;
                }
            }
            Ok(m) => relay(&mut resp, m, ad),
            // The CNAME alone: the client may chase it itself.
            Err(_) if chase => {}
            Err(forward::Failure::Busy) => resp.metadata.response_code = ResponseCode::Refused,
            Err(forward::Failure::NoAnswer) => resp.metadata.response_code = ResponseCode::ServFail,
        }
        encode(resp, limit)
    }
}

/// A question waiting for an upstream, with the answer made so far.
struct Pending {
    question: hickory_proto::op::Query,
    /// An ExternalName's target: the upstream's records are added to the CNAME.
    chase: bool,
    resp: Message,
    dnssec_ok: bool,
    /// The client's CD bit, and whether it may be told AD (it asked with DO or AD).
    cd: bool,
    ad: bool,
    limit: usize,
}

/// An upstream's answer, as ours (AD only to a client that may be told it, RFC 6840 §5.8).
fn relay(resp: &mut Message, m: Message, ad: bool) {
    resp.metadata.response_code = m.metadata.response_code;
    resp.metadata.authentic_data = ad && m.metadata.authentic_data;
    resp.answers = m.answers;
    resp.authorities = m.authorities;
    resp.additionals = m.additionals;
}

/// The wire form of `resp`, at most `limit` bytes: without the additional section if that
/// fits (RFC 2181 §9), else the question alone, truncated (the client asks over TCP).
fn encode(mut resp: Message, limit: usize) -> Option<Vec<u8>> {
    let out = resp.to_vec().ok()?;
    if out.len() <= limit {
        return Some(out);
    }
    if !resp.additionals.is_empty() {
        resp.additionals.clear();
        let out = resp.to_vec().ok()?;
        if out.len() <= limit {
            return Some(out);
        }
    }
    resp.truncate().to_vec().ok()
}

/// Answers UDP questions on `sock`, forever, on a thread of its own: what the DNS knows is
/// answered in line (one receive, one send); a question for an upstream goes on as a task of
/// `rt`.
fn serve_udp(dns: Arc<Dns>, sock: std::net::UdpSocket, rt: tokio::runtime::Handle) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "DNS receive");
                continue;
            }
        };
        Metrics::count(&dns.metrics.udp);
        match dns.answer_now(&buf[..n], peer.ip(), true) {
            Ok(Some(out)) => {
                dns.metrics.answered(&out);
                let _ = sock.send_to(&out, peer);
            }
            Ok(None) => Metrics::count(&dns.metrics.dropped),
            Err(pending) => {
                let (dns, sock) = (dns.clone(), sock.clone());
                rt.spawn(async move {
                    if let Some(out) = dns.answer_later(*pending).await {
                        dns.metrics.answered(&out);
                        let _ = sock.send_to(&out, peer);
                    }
                });
            }
        }
    }
}

/// A UDP socket bound to `addr` with SO_REUSEPORT.
fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    sock.set_reuse_port(true)?;
    sock.bind(&addr.into())?;
    Ok(sock.into())
}

/// TCP connections open at once, at most.
const MAX_TCP: usize = 256;

/// Answers TCP connections (length-prefixed messages, several per connection) from allowed
/// clients, at most [`MAX_TCP`] at once, each read and write within [`TCP_IDLE`].
async fn serve_tcp(dns: Arc<Dns>, listener: tokio::net::TcpListener) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_TCP));
    loop {
        let (mut conn, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: back off rather than spin.
                tracing::debug!(error = %e, "DNS accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !dns.allowed(peer.ip()) {
            continue;
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let dns = dns.clone();
        tokio::spawn(async move {
            let _slot = slot;
            loop {
                let len = match tokio::time::timeout(TCP_IDLE, conn.read_u16()).await {
                    Ok(Ok(len)) => len as usize,
                    _ => return,
                };
                let mut wire = vec![0u8; len];
                match tokio::time::timeout(TCP_IDLE, conn.read_exact(&mut wire)).await {
                    Ok(Ok(_)) => {}
                    _ => return,
                }
                Metrics::count(&dns.metrics.tcp);
                let Some(out) = dns.handle(&wire, peer.ip(), false).await else {
                    Metrics::count(&dns.metrics.dropped);
                    return;
                };
                dns.metrics.answered(&out);
                let mut framed = (out.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&out);
                match tokio::time::timeout(TCP_IDLE, conn.write_all(&framed)).await {
                    Ok(Ok(())) => {}
                    _ => return,
                }
            }
        });
    }
}

/// The upstreams from the node's resolv.conf.
pub fn upstreams(resolv_conf: &std::path::Path) -> Vec<IpAddr> {
    let text = std::fs::read_to_string(resolv_conf).unwrap_or_else(|e| {
        tracing::warn!(path = %resolv_conf.display(), error = %e, "cannot read resolv.conf; names outside the cluster will not resolve");
        String::new()
    });
    forward::nameservers(&text)
}

/// Runs the cluster DNS from listed stores: binds, registers as kube-dns's endpoint, then
/// serves, rebuilding the zone on every change, until the task is dropped.
pub async fn run(
    client: Client,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    changed: Arc<Notify>,
    settings: Settings,
) -> anyhow::Result<()> {
    let ups = upstreams(&settings.resolv_conf);
    let dns = Arc::new(Dns::new(&settings, &ups));
    let rebuild = |dns: &Dns| {
        let serial = jiff::Timestamp::now().as_second() as u32;
        let t = Instant::now();
        let zone = Zone::build(
            &settings.domain,
            settings.ttl,
            serial,
            &services.state(),
            &slices.state(),
        );
        dns.set_zone(zone);
        tracing::trace!(took_us = t.elapsed().as_micros() as u64, "DNS zone rebuilt");
    };
    rebuild(&dns);
    // One socket per receiving thread (SO_REUSEPORT: the kernel spreads the clients over
    // them): a question wakes one thread, never all of them.
    let udp = (0..UDP_THREADS)
        .map(|_| udp_socket(settings.bind))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| anyhow::anyhow!("cluster DNS: binding {} (UDP): {e}", settings.bind))?;
    let tcp = tokio::net::TcpListener::bind(settings.bind)
        .await
        .map_err(|e| anyhow::anyhow!("cluster DNS: binding {} (TCP): {e}", settings.bind))?;
    // Blocking calls, no task per question: a thread per socket.
    for (i, sock) in udp.into_iter().enumerate() {
        let (dns, rt) = (dns.clone(), tokio::runtime::Handle::current());
        std::thread::Builder::new()
            .name(format!("dns-udp-{i}"))
            .spawn(move || serve_udp(dns, sock, rt))?;
    }
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(serve_tcp(dns.clone(), tcp));
    let metrics_port = if settings.metrics_port == 0 {
        None
    } else {
        let addr = SocketAddr::new(settings.bind.ip(), settings.metrics_port);
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                let (d1, d2) = (dns.clone(), dns.clone());
                tasks.spawn(metrics::serve(
                    l,
                    Arc::new(move || d1.metrics.render(d1.zone.read().unwrap().len())),
                    Arc::new(move |ip| d2.allowed(ip)),
                ));
                Some(settings.metrics_port)
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "cannot serve the DNS's metrics");
                None
            }
        }
    };
    tracing::info!(bind = %settings.bind, upstreams = ?dns.forwarder.upstreams(), domain = %settings.domain, "cluster DNS serving");
    {
        let dns = dns.clone();
        tasks.spawn(async move { dns.forwarder.send_probe().await });
        // (The tasks live as long as this function, which serves until the proxy ends.)
    }
    register(&client, settings.bind, metrics_port).await;
    loop {
        changed.notified().await;
        rebuild(&dns);
    }
}

/// Writes the DNS's address as the endpoint of `kube-dns` (kube-system), retrying until the
/// apiserver takes it.
async fn register(client: &Client, bind: SocketAddr, metrics_port: Option<u16>) {
    let ip = bind.ip().to_string();
    let port = bind.port() as i32;
    let mut ports = vec![
        json!({"name": "dns", "port": port, "protocol": "UDP"}),
        json!({"name": "dns-tcp", "port": port, "protocol": "TCP"}),
    ];
    if let Some(m) = metrics_port {
        ports.push(json!({"name": "metrics", "port": m, "protocol": "TCP"}));
    }
    let endpoints = json!({
        "subsets": [{"addresses": [{"ip": ip}], "ports": ports}]
    });
    let slice = json!({
        "addressType": if bind.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{"addresses": [ip], "conditions": {"ready": true, "serving": true, "terminating": false}}],
        "ports": ports
    });
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), "kube-system");
    let sls: Api<EndpointSlice> = Api::namespaced(client.clone(), "kube-system");
    loop {
        let a = eps
            .patch(
                "kube-dns",
                &PatchParams::default(),
                &Patch::Merge(&endpoints),
            )
            .await;
        let b = sls
            .patch("kube-dns", &PatchParams::default(), &Patch::Merge(&slice))
            .await;
        match (a, b) {
            (Ok(_), Ok(_)) => {
                tracing::info!(%bind, "registered as the kube-dns endpoint");
                return;
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "registering the kube-dns endpoint; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::{Name, RecordType};

    fn settings() -> Settings {
        Settings {
            bind: "127.0.0.1:53".parse().unwrap(),
            domain: "cluster.local".into(),
            ttl: 5,
            resolv_conf: PathBuf::new(),
            clients: vec![],
            metrics_port: 0,
        }
    }

    fn dns() -> Dns {
        let dns = Dns::new(&settings(), &[]);
        let services: Vec<Arc<Service>> = (0..1000)
            .map(|i| {
                Arc::new(
                    serde_json::from_value(json!({
                        "metadata": {"name": format!("svc-{i}"), "namespace": "default"},
                        "spec": {"clusterIP": format!("10.96.{}.{}", i / 250, i % 250 + 1),
                                 "ports": [{"name": "http", "port": 80}]}
                    }))
                    .unwrap(),
                )
            })
            .collect();
        dns.set_zone(Zone::build("cluster.local", 5, 1, &services, &[]));
        dns
    }

    fn question(name: &str, t: RecordType) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        m.to_vec().unwrap()
    }

    fn answer(dns: &Dns, wire: &[u8], peer: &str, udp: bool) -> Option<Message> {
        match dns.answer_now(wire, peer.parse().unwrap(), udp) {
            Ok(out) => out.map(|o| Message::from_vec(&o).unwrap()),
            Err(_) => panic!("a cluster question went to the upstream"),
        }
    }

    #[test]
    fn answers_as_the_rfcs_say() {
        let dns = dns();
        let q = question("svc-7.default.svc.cluster.local.", RecordType::A);
        let a = answer(&dns, &q, "127.0.0.1", true).unwrap();
        assert!(a.metadata.authoritative && a.metadata.recursion_desired);
        assert_eq!(a.answers[0].data.to_string(), "10.96.0.8");
        // Strangers get nothing at all (no reflection).
        assert!(answer(&dns, &q, "192.0.2.9", true).is_none());
        // Garbage with a header: FORMERR; without one: nothing.
        let mut bad = q[..14].to_vec();
        bad[5] = 3;
        let a = answer(&dns, &bad, "127.0.0.1", true).unwrap();
        assert_eq!(a.metadata.response_code, ResponseCode::FormErr);
        assert!(answer(&dns, &q[..5], "127.0.0.1", true).is_none());
        // CD is echoed; EDNS version 1 gets BADVERS, version 0 an OPT back.
        let mut m = Message::from_vec(&q).unwrap();
        m.metadata.checking_disabled = true;
        let mut edns = Edns::new();
        edns.set_version(1);
        m.set_edns(edns);
        let a = answer(&dns, &m.to_vec().unwrap(), "127.0.0.1", true).unwrap();
        assert!(a.metadata.checking_disabled);
        // 16 (BADVERS, which shares its number with TSIG's BADSIG), its high bits in the OPT.
        assert_eq!(u16::from(a.metadata.response_code), 16);
        m.edns.as_mut().unwrap().set_version(0);
        let a = answer(&dns, &m.to_vec().unwrap(), "127.0.0.1", true).unwrap();
        assert_eq!(a.edns.unwrap().max_payload(), MAX_UDP);
    }

    #[test]
    fn long_answers_are_truncated_for_udp_only() {
        let dns = Dns::new(&settings(), &[]);
        let services = vec![Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "big", "namespace": "default"},
                "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}
            }))
            .unwrap(),
        )];
        let endpoints: Vec<_> = (1..=60)
            .map(|i| json!({"addresses": [format!("10.244.0.{i}")]}))
            .collect();
        let slices = vec![Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "big-x", "namespace": "default",
                             "labels": {"kubernetes.io/service-name": "big"}},
                "addressType": "IPv4", "endpoints": endpoints,
                "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]
            }))
            .unwrap(),
        )];
        dns.set_zone(Zone::build("cluster.local", 5, 1, &services, &slices));
        let q = question("big.default.svc.cluster.local.", RecordType::A);
        let udp = answer(&dns, &q, "127.0.0.1", true).unwrap();
        assert!(udp.metadata.truncation && udp.answers.is_empty());
        let tcp = answer(&dns, &q, "127.0.0.1", false).unwrap();
        assert!(!tcp.metadata.truncation);
        assert_eq!(tcp.answers.len(), 60);
    }

    #[test]
    fn the_hot_path_answers_as_the_general_one() {
        let dns = dns();
        let zone = dns.zone.read().unwrap().clone();
        let mut served = 0;
        for name in [
            "svc-7.default.svc.cluster.local.",
            "SVC-7.Default.svc.CLUSTER.local.",
            "nope.default.svc.cluster.local.",
            "example.com.",
        ] {
            for t in [RecordType::A, RecordType::AAAA, RecordType::TXT] {
                for (edns, do_bit, cd) in [
                    (false, false, false),
                    (true, false, false),
                    (true, true, true),
                ] {
                    let mut m = Message::from_vec(&question(name, t)).unwrap();
                    m.metadata.checking_disabled = cd;
                    if edns {
                        let mut e = Edns::new();
                        e.set_max_payload(4096);
                        e.set_dnssec_ok(do_bit);
                        m.set_edns(e);
                    }
                    let wire = m.to_vec().unwrap();
                    let limit = fast::udp_limit(&wire);
                    let Some(hot) = zone.fast().answer(&wire, false, limit) else {
                        continue;
                    };
                    served += 1;
                    let general = match dns.answer_general(&wire, true, &zone) {
                        Ok(Some(out)) => out,
                        _ => panic!("{name} {t}: no general answer"),
                    };
                    assert_eq!(
                        Message::from_vec(&hot).unwrap(),
                        Message::from_vec(&general).unwrap(),
                        "{name} {t} edns={edns} do={do_bit} cd={cd}"
                    );
                }
            }
        }
        assert_eq!(
            served, 6,
            "A of the service's two spellings, three ways each"
        );
    }

    /// The CPU one cluster question costs, without the network (run with --ignored
    /// --nocapture, in release).
    #[test]
    #[ignore]
    fn cost_per_question() {
        let dns = dns();
        let wires: Vec<Vec<u8>> = (0..1000)
            .map(|i| {
                question(
                    &format!("svc-{i}.default.svc.cluster.local."),
                    RecordType::A,
                )
            })
            .collect();
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let n = 1_000_000;
        let t = Instant::now();
        for i in 0..n {
            let out = dns.answer_now(&wires[i % 1000], peer, true);
            assert!(matches!(out, Ok(Some(_))));
        }
        let per = t.elapsed() / n as u32;
        let zone = dns.zone.read().unwrap().clone();
        let t = Instant::now();
        for i in 0..n / 10 {
            let out = dns.answer_general(&wires[i % 1000], true, &zone);
            assert!(matches!(out, Ok(Some(_))));
        }
        let general = t.elapsed() / (n / 10) as u32;
        eprintln!("one cluster question: {per:?} of CPU (the general path: {general:?})");
    }
}
