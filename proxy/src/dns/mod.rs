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

pub mod forward;
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
use zone::Zone;

/// The largest UDP answer this server sends to an EDNS client (the DNS flag day's 1232).
const MAX_UDP: u16 = 1232;
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
}

/// The server's state: the zone in force and the forwarder.
pub struct Dns {
    zone: RwLock<Arc<Zone>>,
    forwarder: Forwarder,
    clients: Vec<Cidr>,
    own: IpAddr,
}

impl Dns {
    pub fn new(settings: &Settings, upstreams: &[IpAddr]) -> Dns {
        let own = settings.bind.ip();
        Dns {
            zone: RwLock::new(Arc::new(Zone::empty(&settings.domain, settings.ttl))),
            forwarder: Forwarder::new(upstreams, &[own]),
            clients: settings.clients.clone(),
            own,
        }
    }

    pub fn set_zone(&self, zone: Zone) {
        *self.zone.write().unwrap() = Arc::new(zone);
    }

    fn allowed(&self, peer: IpAddr) -> bool {
        peer.is_loopback() || peer == self.own || self.clients.iter().any(|c| c.contains(peer))
    }

    /// The answer to one message from `peer` (None: nothing is sent back), as long as the
    /// client's UDP buffer allows if it came over UDP.
    pub async fn handle(&self, wire: &[u8], peer: IpAddr, udp: bool) -> Option<Vec<u8>> {
        let query = match Message::from_vec(wire) {
            Ok(m) => m,
            Err(_) if wire.len() >= 12 => {
                // A header at least: FORMERR to its ID.
                let id = u16::from_be_bytes([wire[0], wire[1]]);
                let m = Message::error_msg(id, OpCode::Query, ResponseCode::FormErr);
                return m.to_vec().ok();
            }
            Err(_) => return None,
        };
        if query.metadata.message_type != MessageType::Query {
            return None;
        }
        let mut resp = Message::response(query.metadata.id, query.metadata.op_code);
        resp.metadata.recursion_desired = query.metadata.recursion_desired;
        resp.metadata.recursion_available = true;
        resp.queries = query.queries.clone();
        let client_edns = query.edns.as_ref();
        if let Some(e) = client_edns {
            let mut edns = Edns::new();
            edns.set_max_payload(MAX_UDP);
            edns.set_dnssec_ok(e.flags().dnssec_ok);
            resp.set_edns(edns);
        }
        let rcode = if !self.allowed(peer) {
            Some(ResponseCode::Refused)
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
        } else {
            self.answer(&query, &mut resp).await;
        }
        let limit = if udp {
            client_edns.map_or(512, |e| e.max_payload().clamp(512, MAX_UDP)) as usize
        } else {
            u16::MAX as usize
        };
        let out = resp.to_vec().ok()?;
        if out.len() <= limit {
            return Some(out);
        }
        // Too long for the client's UDP: the question alone, truncated (it asks over TCP).
        resp.truncate().to_vec().ok()
    }

    async fn answer(&self, query: &Message, resp: &mut Message) {
        let q = &query.queries[0];
        let dnssec_ok = query.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
        if self.forwarder.is_probe(q) {
            resp.metadata.response_code = ResponseCode::NXDomain;
            return;
        }
        let zone = self.zone.read().unwrap().clone();
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
                if let Some(m) = self.forwarder.resolve(&chased, dnssec_ok).await {
                    resp.metadata.response_code = m.metadata.response_code;
                    resp.answers.extend(m.answers);
                    if resp.answers.len() == 1 {
                        resp.authorities = m.authorities;
                    }
                }
            }
            return;
        }
        match self.forwarder.resolve(q, dnssec_ok).await {
            Some(m) => {
                resp.metadata.response_code = m.metadata.response_code;
                resp.metadata.authentic_data = m.metadata.authentic_data;
                resp.answers = m.answers;
                resp.authorities = m.authorities;
                resp.additionals = m.additionals;
            }
            None => resp.metadata.response_code = ResponseCode::ServFail,
        }
    }
}

/// Answers UDP questions on `sock` until the task is dropped.
async fn serve_udp(dns: Arc<Dns>, sock: Arc<tokio::net::UdpSocket>) {
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "DNS receive");
                continue;
            }
        };
        // Answered in line when nothing has to wait (cluster names, cached answers); a
        // question that waits for an upstream goes on in a task of its own.
        let mut reply = Box::pin(reply_udp(
            dns.clone(),
            sock.clone(),
            buf[..n].to_vec(),
            peer,
        ));
        if futures::poll!(&mut reply).is_pending() {
            tokio::spawn(reply);
        }
    }
}

async fn reply_udp(
    dns: Arc<Dns>,
    sock: Arc<tokio::net::UdpSocket>,
    wire: Vec<u8>,
    peer: SocketAddr,
) {
    if let Some(out) = dns.handle(&wire, peer.ip(), true).await {
        let _ = sock.send_to(&out, peer).await;
    }
}

/// Answers TCP connections (length-prefixed messages, several per connection).
async fn serve_tcp(dns: Arc<Dns>, listener: tokio::net::TcpListener) {
    loop {
        let Ok((mut conn, peer)) = listener.accept().await else {
            continue;
        };
        let dns = dns.clone();
        tokio::spawn(async move {
            loop {
                let len = match tokio::time::timeout(TCP_IDLE, conn.read_u16()).await {
                    Ok(Ok(len)) => len as usize,
                    _ => return,
                };
                let mut wire = vec![0u8; len];
                if conn.read_exact(&mut wire).await.is_err() {
                    return;
                }
                let Some(out) = dns.handle(&wire, peer.ip(), false).await else {
                    return;
                };
                let mut framed = (out.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&out);
                if conn.write_all(&framed).await.is_err() {
                    return;
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
    let udp = tokio::net::UdpSocket::bind(settings.bind)
        .await
        .map_err(|e| anyhow::anyhow!("cluster DNS: binding {} (UDP): {e}", settings.bind))?;
    let tcp = tokio::net::TcpListener::bind(settings.bind)
        .await
        .map_err(|e| anyhow::anyhow!("cluster DNS: binding {} (TCP): {e}", settings.bind))?;
    let udp = Arc::new(udp);
    let mut tasks = tokio::task::JoinSet::new();
    // Two receivers on the one socket: a slow send never holds up the next question.
    for _ in 0..2 {
        tasks.spawn(serve_udp(dns.clone(), udp.clone()));
    }
    tasks.spawn(serve_tcp(dns.clone(), tcp));
    tracing::info!(bind = %settings.bind, upstreams = ?dns.forwarder.upstreams(), domain = %settings.domain, "cluster DNS serving");
    {
        let dns = dns.clone();
        tasks.spawn(async move { dns.forwarder.send_probe().await });
    }
    register(&client, settings.bind).await;
    loop {
        changed.notified().await;
        rebuild(&dns);
    }
}

/// Writes the DNS's address as the endpoint of `kube-dns` (kube-system), retrying until the
/// apiserver takes it.
async fn register(client: &Client, bind: SocketAddr) {
    let ip = bind.ip().to_string();
    let port = bind.port() as i32;
    let endpoints = json!({
        "subsets": [{
            "addresses": [{"ip": ip}],
            "ports": [
                {"name": "dns", "port": port, "protocol": "UDP"},
                {"name": "dns-tcp", "port": port, "protocol": "TCP"}
            ]
        }]
    });
    let slice = json!({
        "addressType": if bind.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{"addresses": [ip], "conditions": {"ready": true, "serving": true, "terminating": false}}],
        "ports": [
            {"name": "dns", "port": port, "protocol": "UDP"},
            {"name": "dns-tcp", "port": port, "protocol": "TCP"}
        ]
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
