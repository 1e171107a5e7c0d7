//! The DNS's counters, served in Prometheus' text format on the `metrics` port of kube-dns
//! (9153, as CoreDNS serves its own), to the same clients the DNS answers.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the DNS has done since it started.
#[derive(Default)]
pub struct Metrics {
    pub udp: AtomicU64,
    pub tcp: AtomicU64,
    /// Answers by response code (0 NOERROR … 5 REFUSED, 6 anything else).
    pub rcodes: [AtomicU64; 7],
    pub hot_path: AtomicU64,
    pub cache_hits: AtomicU64,
    pub forwarded: AtomicU64,
    pub forward_failures: AtomicU64,
    pub dropped: AtomicU64,
}

const RCODES: [&str; 7] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "other",
];

impl Metrics {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an answer by the response code in its header.
    pub fn answered(&self, wire: &[u8]) {
        let rcode = wire.get(3).map_or(6, |b| (b & 0x0f) as usize).min(6);
        Self::count(&self.rcodes[rcode]);
    }

    /// The text exposition.
    pub fn render(&self, zone_names: usize) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            &mut out,
            "tinykube_dns_requests_total",
            "counter",
            "Questions received, by transport.",
        );
        let _ = writeln!(
            out,
            "tinykube_dns_requests_total{{proto=\"udp\"}} {}\ntinykube_dns_requests_total{{proto=\"tcp\"}} {}",
            get(&self.udp),
            get(&self.tcp)
        );
        family(
            &mut out,
            "tinykube_dns_responses_total",
            "counter",
            "Answers sent, by response code.",
        );
        for (i, name) in RCODES.iter().enumerate() {
            let _ = writeln!(
                out,
                "tinykube_dns_responses_total{{rcode=\"{name}\"}} {}",
                get(&self.rcodes[i])
            );
        }
        for (name, help, c) in [
            (
                "tinykube_dns_hot_path_total",
                "Answers made from the zone's wire bytes.",
                &self.hot_path,
            ),
            (
                "tinykube_dns_cache_hits_total",
                "Forwarded questions answered from the cache.",
                &self.cache_hits,
            ),
            (
                "tinykube_dns_forward_requests_total",
                "Questions sent to the upstream resolvers.",
                &self.forwarded,
            ),
            (
                "tinykube_dns_forward_failures_total",
                "Forwarded questions no upstream answered (SERVFAIL) or refused for load.",
                &self.forward_failures,
            ),
            (
                "tinykube_dns_dropped_total",
                "Messages not answered (not a question, unreadable, or from a client not served).",
                &self.dropped,
            ),
        ] {
            family(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", get(c));
        }
        family(
            &mut out,
            "tinykube_dns_zone_names",
            "gauge",
            "Names in the cluster zone.",
        );
        let _ = writeln!(out, "tinykube_dns_zone_names {zone_names}");
        out
    }
}

/// Serves `GET /metrics` (HTTP/1.1, one request a connection) to clients `allowed` admits.
pub async fn serve(
    listener: tokio::net::TcpListener,
    render: Arc<dyn Fn() -> String + Send + Sync>,
    allowed: Arc<dyn Fn(std::net::IpAddr) -> bool + Send + Sync>,
) {
    loop {
        let Ok((mut conn, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if !allowed(peer.ip()) {
            continue;
        }
        let render = render.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut have = 0;
            // The request head, within 10 s.
            let head = tokio::time::timeout(Duration::from_secs(10), async {
                while have < buf.len() {
                    let n = conn.read(&mut buf[have..]).await.ok()?;
                    if n == 0 {
                        return None;
                    }
                    have += n;
                    if buf[..have].windows(4).any(|w| w == b"\r\n\r\n") {
                        return Some(());
                    }
                }
                None
            })
            .await;
            if !matches!(head, Ok(Some(()))) {
                return;
            }
            let line = String::from_utf8_lossy(&buf[..have]);
            let (status, body) = if line.starts_with("GET /metrics ") {
                ("200 OK", render())
            } else {
                ("404 Not Found", "404 page not found\n".to_string())
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tokio::time::timeout(Duration::from_secs(10), conn.write_all(resp.as_bytes()))
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_counts_by_rcode() {
        let m = Metrics::default();
        Metrics::count(&m.udp);
        m.answered(&[0, 1, 0x84, 0x03]);
        let text = m.render(12);
        assert!(
            text.contains("tinykube_dns_requests_total{proto=\"udp\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("tinykube_dns_responses_total{rcode=\"NXDOMAIN\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE tinykube_dns_zone_names gauge\ntinykube_dns_zone_names 12\n"),
            "{text}"
        );
    }
}
