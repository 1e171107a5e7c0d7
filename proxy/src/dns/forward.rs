//! Names outside the cluster: forwarded to the node's resolvers (from its resolv.conf), with a
//! cache, as CoreDNS's `forward . /etc/resolv.conf` and `cache 30` do.
//!
//! Each forwarded question goes out from a fresh socket with a random ID (so a spoofed answer
//! must guess both), over UDP, and again over TCP when the answer is truncated. Resolvers are
//! tried in order until one answers. Answers are cached by question for their smallest TTL, at
//! most 30 s (negative answers for the SOA's minimum, at most 30 s); a cached answer is served
//! with its TTLs counted down.
//!
//! Loops: an upstream that is this server itself (its own address, the cluster DNS address) is
//! left out, and a probe question is sent upstream at start; one that comes back is forwarded
//! again (so a loop keeps returning it), and the third time it is seen the upstream is marked
//! looping: forwarding then answers SERVFAIL rather than circle (CoreDNS' `loop`).
//!
//! At most [`MAX_IN_FLIGHT`] questions wait for upstreams at once; more are REFUSED (CoreDNS'
//! `max_concurrent`), so a pod asking random names cannot exhaust the proxy's descriptors.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one resolver gets to answer.
const TRY_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest a forwarded answer is cached (CoreDNS' `cache 30`).
const MAX_CACHE_TTL: u32 = 30;
const MAX_CACHE_ENTRIES: usize = 10_000;
/// Forwarded questions waiting for an upstream at once, at most.
pub const MAX_IN_FLIGHT: usize = 1000;
/// How often the loop probe may come back before forwarding is declared a loop.
const PROBE_RETURNS: u32 = 3;

/// The nameservers of a resolv.conf, as the node's resolver reads them.
pub fn nameservers(resolv_conf: &str) -> Vec<IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
                .and_then(|ip| ip.split('%').next())
                .and_then(|ip| ip.parse().ok())
        })
        .collect()
}

#[derive(Clone)]
struct Cached {
    message: Message,
    stored: Instant,
    ttl: u32,
}

/// The cache's key: the question, and whether DNSSEC records were asked for (DO).
type Key = (Name, RecordType, bool);

/// Why a question gets no upstream answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// No upstream answered (or forwarding loops): SERVFAIL.
    NoAnswer,
    /// Too many questions wait for upstreams already: REFUSED.
    Busy,
}

pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    /// The cluster DNS address (kube-dns's): never an upstream.
    excluded: std::sync::RwLock<Option<IpAddr>>,
    in_flight: std::sync::Arc<tokio::sync::Semaphore>,
    cache: Mutex<HashMap<Key, Cached>>,
    /// The loop probe's name, and how often it came back.
    probe: Name,
    probe_seen: AtomicU32,
    looping: AtomicBool,
}

impl Forwarder {
    /// Forwards to `upstreams` (port 53), leaving out `own` addresses (this server's).
    pub fn new(upstreams: &[IpAddr], own: &[IpAddr]) -> Forwarder {
        let probe = format!(
            "{}.{}.tinykube-loop-probe.",
            rand::random::<u32>(),
            rand::random::<u32>()
        );
        Forwarder {
            upstreams: upstreams
                .iter()
                .filter(|ip| !own.contains(ip))
                .map(|ip| SocketAddr::new(*ip, 53))
                .collect(),
            excluded: std::sync::RwLock::new(None),
            in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
            cache: Mutex::new(HashMap::new()),
            probe: Name::from_ascii(probe).expect("a name"),
            probe_seen: AtomicU32::new(0),
            looping: AtomicBool::new(false),
        }
    }

    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// Leaves `ip` (the cluster DNS's own service address) out of the upstreams.
    pub fn exclude(&self, ip: Option<IpAddr>) {
        *self.excluded.write().unwrap() = ip;
    }

    /// Sends the loop probe upstream (its answer does not matter: only whether it comes back).
    pub async fn send_probe(&self) {
        let q = Query::query(self.probe.clone(), RecordType::HINFO);
        let _ = self.exchange(&q, false, false).await;
    }

    /// Counts the loop probe when `q` is it come back (it is forwarded again like any
    /// question, so a loop brings it back again); the third time marks forwarding looping.
    pub fn count_probe(&self, q: &Query) {
        if q.name != self.probe {
            return;
        }
        if self.probe_seen.fetch_add(1, Ordering::Relaxed) + 1 >= PROBE_RETURNS
            && !self.looping.swap(true, Ordering::Relaxed)
        {
            tracing::error!(
                upstreams = ?self.upstreams,
                "DNS forwarding loop detected: the upstream resolvers send questions back \
                 to the cluster DNS; names outside the cluster will not resolve (fix the \
                 node's resolv.conf or pass --resolv-conf)"
            );
        }
    }

    /// Whether forwarding can answer at all (upstreams known, no loop).
    pub fn available(&self) -> bool {
        !self.looping.load(Ordering::Relaxed) && !self.upstreams.is_empty()
    }

    /// The answer to `q` (from the cache or an upstream). `dnssec_ok` and `checking_disabled`
    /// are the client's DO and CD bits, passed on.
    pub async fn resolve(
        &self,
        q: &Query,
        dnssec_ok: bool,
        checking_disabled: bool,
    ) -> Result<Message, Failure> {
        if !self.available() {
            return Err(Failure::NoAnswer);
        }
        if let Some(hit) = self.cached(q, dnssec_ok) {
            return Ok(hit);
        }
        let Ok(_permit) = self.in_flight.clone().try_acquire_owned() else {
            return Err(Failure::Busy);
        };
        let answer = self
            .exchange(q, dnssec_ok, checking_disabled)
            .await
            .ok_or(Failure::NoAnswer)?;
        if !checking_disabled {
            self.store((q.name.clone(), q.query_type, dnssec_ok), &answer);
        }
        Ok(answer)
    }

    /// A cached answer to `q`, its TTLs counted down and at most the time it has left in the
    /// cache (names compare without regard to case).
    pub fn cached(&self, q: &Query, dnssec_ok: bool) -> Option<Message> {
        let key = (q.name.clone(), q.query_type, dnssec_ok);
        let key = &key;
        let mut cache = self.cache.lock().unwrap();
        let hit = cache.get(key)?;
        let age = hit.stored.elapsed().as_secs() as u32;
        if age >= hit.ttl {
            cache.remove(key);
            return None;
        }
        let left = hit.ttl - age;
        let mut m = hit.message.clone();
        for r in m
            .answers
            .iter_mut()
            .chain(m.authorities.iter_mut())
            .chain(m.additionals.iter_mut())
        {
            r.ttl = r.ttl.saturating_sub(age).min(left);
        }
        Some(m)
    }

    fn store(&self, key: Key, m: &Message) {
        let rcode = m.metadata.response_code;
        if !matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain) || m.metadata.truncation
        {
            return;
        }
        let ttl = if m.answers.is_empty() {
            m.authorities
                .iter()
                .find_map(|r| match &r.data {
                    RData::SOA(soa) => Some(soa.minimum.min(r.ttl)),
                    _ => None,
                })
                .unwrap_or(0)
        } else {
            m.answers.iter().map(|r| r.ttl).min().unwrap_or(0)
        }
        .min(MAX_CACHE_TTL);
        if ttl == 0 {
            return;
        }
        let mut cache = self.cache.lock().unwrap();
        if cache.len() >= MAX_CACHE_ENTRIES {
            let now = Instant::now();
            cache.retain(|_, c| now.duration_since(c.stored).as_secs() < c.ttl as u64);
            if cache.len() >= MAX_CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Cached {
                message: m.clone(),
                stored: Instant::now(),
                ttl,
            },
        );
    }

    /// Asks each upstream in turn.
    async fn exchange(
        &self,
        q: &Query,
        dnssec_ok: bool,
        checking_disabled: bool,
    ) -> Option<Message> {
        let excluded = *self.excluded.read().unwrap();
        for upstream in &self.upstreams {
            if Some(upstream.ip()) == excluded {
                continue;
            }
            let mut m = Message::new(rand::random(), MessageType::Query, OpCode::Query);
            m.metadata.recursion_desired = true;
            m.metadata.checking_disabled = checking_disabled;
            m.add_query(q.clone());
            let mut edns = Edns::new();
            edns.set_max_payload(1232);
            edns.set_dnssec_ok(dnssec_ok);
            m.set_edns(edns);
            let Ok(wire) = m.to_vec() else { return None };
            match tokio::time::timeout(TRY_TIMEOUT, udp(*upstream, &wire, m.metadata.id, q)).await {
                Ok(Ok(answer)) if answer.metadata.truncation => {
                    // The whole answer over TCP; failing that, the truncated one (the client
                    // may retry over TCP itself).
                    match tokio::time::timeout(TRY_TIMEOUT, tcp(*upstream, &wire, m.metadata.id, q))
                        .await
                    {
                        Ok(Ok(a)) => return Some(a),
                        _ => return Some(answer),
                    }
                }
                Ok(Ok(answer)) => return Some(answer),
                Ok(Err(e)) => tracing::debug!(%upstream, error = %e, "upstream DNS failed"),
                Err(_) => tracing::debug!(%upstream, "upstream DNS timed out"),
            }
        }
        None
    }
}

fn matches(answer: &Message, id: u16, q: &Query) -> bool {
    answer.metadata.id == id
        && answer.metadata.message_type == MessageType::Response
        && answer.queries.len() == 1
        // Names compare without regard to case.
        && answer.queries[0].name == q.name
        && answer.queries[0].query_type == q.query_type
}

async fn udp(upstream: SocketAddr, wire: &[u8], id: u16, q: &Query) -> std::io::Result<Message> {
    let bind: SocketAddr = if upstream.is_ipv4() {
        "0.0.0.0:0".parse().expect("an address")
    } else {
        "[::]:0".parse().expect("an address")
    };
    let sock = tokio::net::UdpSocket::bind(bind).await?;
    sock.connect(upstream).await?;
    sock.send(wire).await?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).await?;
        // Anything else (a late or forged answer) is ignored.
        if let Ok(m) = Message::from_vec(&buf[..n]) {
            if matches(&m, id, q) {
                return Ok(m);
            }
        }
    }
}

async fn tcp(upstream: SocketAddr, wire: &[u8], id: u16, q: &Query) -> std::io::Result<Message> {
    let mut s = tokio::net::TcpStream::connect(upstream).await?;
    let mut out = (wire.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(wire);
    s.write_all(&out).await?;
    let len = s.read_u16().await? as usize;
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await?;
    let m = Message::from_vec(&buf)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    if !matches(&m, id, q) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "an answer to another question",
        ));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_as_resolv_conf_lists_them() {
        let conf = "# comment\nsearch lan\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nnameserver bogus\noptions edns0\n";
        assert_eq!(
            nameservers(conf),
            vec![
                "127.0.0.53".parse::<IpAddr>().unwrap(),
                "fe80::1".parse().unwrap()
            ]
        );
    }

    #[test]
    fn own_addresses_are_not_upstreams_and_the_probe_marks_a_loop() {
        let f = Forwarder::new(
            &["10.96.0.10".parse().unwrap(), "192.0.2.1".parse().unwrap()],
            &["10.96.0.10".parse().unwrap()],
        );
        assert_eq!(f.upstreams(), &["192.0.2.1:53".parse().unwrap()]);
        let probe = Query::query(f.probe.clone(), RecordType::HINFO);
        f.count_probe(&probe);
        f.count_probe(&probe);
        assert!(f.available(), "twice may be a fluke");
        f.count_probe(&probe);
        assert!(!f.available(), "the third time is a loop");
    }

    #[test]
    fn the_cache_counts_ttls_down_and_keeps_negative_answers_briefly() {
        let f = Forwarder::new(&[], &[]);
        let q = Query::query(Name::from_ascii("example.com.").unwrap(), RecordType::A);
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_query(q.clone());
        m.add_answer(hickory_proto::rr::Record::from_rdata(
            q.name.clone(),
            300,
            RData::A("192.0.2.7".parse().unwrap()),
        ));
        let key = (q.name.clone(), RecordType::A, false);
        f.store(key.clone(), &m);
        let hit = f.cached(&q, false).unwrap();
        assert_eq!(
            hit.answers[0].ttl, MAX_CACHE_TTL,
            "no longer than it stays cached"
        );
        assert_eq!(f.cache.lock().unwrap()[&key].ttl, MAX_CACHE_TTL);
        assert!(
            f.cached(&q, true).is_none(),
            "DNSSEC answers are cached apart"
        );
        let mut servfail = m.clone();
        servfail.metadata.response_code = ResponseCode::ServFail;
        let other = Query::query(Name::from_ascii("x.example.com.").unwrap(), RecordType::A);
        f.store((other.name.clone(), RecordType::A, false), &servfail);
        assert!(f.cached(&other, false).is_none(), "failures are not cached");
    }
}
