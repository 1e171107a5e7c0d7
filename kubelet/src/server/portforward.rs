//! `portForward`: each forwarded connection is a TCP connection to 127.0.0.1:<port> made
//! inside the pod's network namespace, carried over
//! - SPDY/3.1 (`portforward.k8s.io`): per connection the client opens an `error` and a
//!   `data` stream with the same `requestID` and `port` — as a plain upgrade, or tunnelled
//!   in WebSocket binary messages (`SPDY/3.1+portforward.k8s.io`, kubectl 1.31 and later);
//! - WebSocket channels (`v4.channel.k8s.io`, kube-rs): ports from the query, channel 2i
//!   carrying port i's data and 2i+1 its errors, each opened with the port (2 bytes, little
//!   endian).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::exec::is_upgrade;
use super::spdy::{self, Stream, Writer, CANCEL, PORTFORWARD_PROTOCOL};
use super::{find_pod, query_pairs, status, ws, Body, State};
use crate::network::netns;

/// The WebSocket subprotocol carrying SPDY.
pub const SPDY_OVER_WEBSOCKET: &str = "SPDY/3.1+portforward.k8s.io";
/// WebSocket channel protocols (kube-rs offers v5 and v4; both mean the same here).
const CHANNEL_PROTOCOLS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "portforward.k8s.io",
];

/// The pod connections go to.
struct Target {
    netns: PathBuf,
    pod: String,
    uid: String,
}

impl Target {
    /// Connects to 127.0.0.1:`port` in the pod's network namespace: a short-lived thread
    /// enters the namespace (setns changes only the calling thread), makes the connection
    /// and leaves; the socket stays in the pod's namespace.
    async fn dial(&self, port: u16) -> Result<TcpStream, String> {
        let netns = self.netns.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let r = (|| -> std::io::Result<std::net::TcpStream> {
                let f = std::fs::File::open(&netns)?;
                nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)?;
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
                s.set_nonblocking(true)?;
                let _ = s.set_nodelay(true);
                Ok(s)
            })();
            let _ = tx.send(r);
        });
        let s = rx
            .await
            .map_err(|_| "the dialer thread died".to_string())?
            .map_err(|e| format!("dial tcp4 127.0.0.1:{port}: {e}"))?;
        TcpStream::from_std(s).map_err(|e| e.to_string())
    }

    fn error(&self, port: u16, why: &str) -> String {
        format!(
            "error forwarding port {port} to pod {}, uid {}: {why}",
            self.pod, self.uid
        )
    }
}

pub async fn handle(
    state: Arc<State>,
    ns: &str,
    pod_name: &str,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let pod = match find_pod(&state, ns, pod_name) {
        Ok(p) => p,
        Err(r) => return r.response(),
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let netns = netns::path(&state.rt.netns_name(&uid));
    if !state.rt.observe(&uid).sandbox_ready {
        return status(
            400,
            "BadRequest",
            format!("pod {pod_name} is not running: it has no network"),
        );
    }
    let target = Arc::new(Target {
        netns,
        pod: pod_name.to_string(),
        uid,
    });
    if is_upgrade(&req, "websocket") {
        if ws::offered(&req).iter().any(|p| p == SPDY_OVER_WEBSOCKET) {
            return match ws::accept(&req, &[SPDY_OVER_WEBSOCKET]) {
                Ok((response, _)) => {
                    let upgrade = hyper::upgrade::on(&mut req);
                    tokio::spawn(async move {
                        if let Ok(io) = upgrade.await {
                            spdy_session(ws::byte_stream(io).await, target).await;
                        }
                    });
                    response
                }
                Err(r) => r.response(),
            };
        }
        let ports = match ports(req.uri().query()) {
            Ok(p) => p,
            Err(e) => return status(400, "BadRequest", e),
        };
        return match ws::accept(&req, CHANNEL_PROTOCOLS) {
            Ok((response, _)) => {
                let upgrade = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    if let Ok(io) = upgrade.await {
                        channel_session(io, ports, target).await;
                    }
                });
                response
            }
            Err(r) => r.response(),
        };
    }
    if is_upgrade(&req, "SPDY/3.1") {
        return match spdy::accept(&req, &[PORTFORWARD_PROTOCOL]) {
            Ok((response, _)) => {
                let upgrade = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    if let Ok(io) = upgrade.await {
                        spdy_session(TokioIo::new(io), target).await;
                    }
                });
                response
            }
            Err(r) => r.response(),
        };
    }
    status(400, "BadRequest", "Upgrade request required")
}

/// The ports of a WebSocket port-forward: `ports=` (kube-rs) or `port=`, repeated or
/// comma-separated.
fn ports(query: Option<&str>) -> Result<Vec<u16>, String> {
    let mut out = Vec::new();
    for (k, v) in query_pairs(query) {
        if k != "port" && k != "ports" {
            continue;
        }
        for p in v.split(',').filter(|p| !p.is_empty()) {
            let port: u16 = p
                .trim()
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("invalid port {p:?}"))?;
            out.push(port);
        }
    }
    if out.is_empty() {
        return Err("query parameter \"port\" is required".into());
    }
    Ok(out)
}

/// Pipes one connection: the client's bytes to the pod until the client closes its side,
/// the pod's to the client until the pod closes; then both streams are closed.
async fn forward(writer: Writer, mut data: Stream, error: Stream, port: u16, target: Arc<Target>) {
    let sock = match target.dial(port).await {
        Ok(s) => s,
        Err(e) => {
            let msg = target.error(port, &e);
            tracing::debug!(error = %msg, "port-forward");
            writer.data(error.id, Bytes::from(msg)).await;
            writer.fin(error.id).await;
            writer.reset(data.id, CANCEL).await;
            return;
        }
    };
    let (mut rd, mut wr) = sock.into_split();
    let up = async {
        while let Some(b) = data.data.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !writer
                        .data(data.id, Bytes::copy_from_slice(&buf[..n]))
                        .await
                    {
                        break;
                    }
                }
            }
        }
        writer.fin(data.id).await;
    };
    tokio::join!(up, down);
    writer.fin(error.id).await;
}

/// Serves a SPDY port-forward session until the client goes.
async fn spdy_session<IO>(io: IO, target: Arc<Target>)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (writer, mut incoming) = spdy::start(io);
    // Half-made pairs by request ID: (data, error).
    let mut pending: HashMap<String, (Option<Stream>, Option<Stream>)> = HashMap::new();
    let mut tasks = JoinSet::new();
    while let Some(s) = incoming.recv().await {
        let port = s
            .headers
            .get("port")
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p > 0);
        let kind = s.kind().to_string();
        let Some(port) = port.filter(|_| kind == "data" || kind == "error") else {
            writer.reset(s.id, CANCEL).await;
            continue;
        };
        writer.reply(s.id).await;
        let request = s.headers.get("requestid").cloned().unwrap_or_else(|| {
            // Clients before requestID: the error stream's ID names the pair.
            let id = if kind == "error" { s.id } else { s.id - 2 };
            id.to_string()
        });
        let pair = pending.entry(request.clone()).or_default();
        if kind == "data" {
            pair.0 = Some(s);
        } else {
            pair.1 = Some(s);
        }
        if let (Some(_), Some(_)) = pair {
            if let Some((Some(data), Some(error))) = pending.remove(&request) {
                tasks.spawn(forward(writer.clone(), data, error, port, target.clone()));
            }
        }
        // Reap what finished.
        while tasks.try_join_next().is_some() {}
    }
    // The client is gone: so are its connections.
    tasks.abort_all();
}

/// Serves kube-rs's WebSocket port-forward: one connection per port.
async fn channel_session(io: hyper::upgrade::Upgraded, ports: Vec<u16>, target: Arc<Target>) {
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
    let (mut sink, mut stream) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if sink.send(Message::Binary(m.into())).await.is_err() {
                return;
            }
        }
        ws::close_normally(&mut sink).await;
    });
    // Each channel opens with its port.
    for (i, port) in ports.iter().enumerate() {
        let [lo, hi] = port.to_le_bytes();
        for ch in [2 * i as u8, 2 * i as u8 + 1] {
            let _ = out_tx.send(vec![ch, lo, hi]).await;
        }
    }
    let mut inputs = Vec::new();
    let mut tasks = JoinSet::new();
    for (i, &port) in ports.iter().enumerate() {
        let (tx, mut rx) = mpsc::channel::<Bytes>(64);
        inputs.push(tx);
        let out = out_tx.clone();
        let target = target.clone();
        tasks.spawn(async move {
            let (data_ch, err_ch) = (2 * i as u8, 2 * i as u8 + 1);
            let sock = match target.dial(port).await {
                Ok(s) => s,
                Err(e) => {
                    let mut m = vec![err_ch];
                    m.extend_from_slice(target.error(port, &e).as_bytes());
                    let _ = out.send(m).await;
                    return;
                }
            };
            let (mut rd, mut wr) = sock.into_split();
            let up = async {
                while let Some(b) = rx.recv().await {
                    if wr.write_all(&b).await.is_err() {
                        break;
                    }
                }
                let _ = wr.shutdown().await;
                std::future::pending::<()>().await
            };
            let down = async {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = rd.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let mut m = Vec::with_capacity(n + 1);
                    m.push(data_ch);
                    m.extend_from_slice(&buf[..n]);
                    if out.send(m).await.is_err() {
                        break;
                    }
                }
            };
            // The port is done when the pod closes its side (as the kubelet's); once every
            // port is, the WebSocket closes and the client sees the end of its streams.
            tokio::select! {
                _ = up => {}
                _ = down => {}
            }
        });
    }
    drop(out_tx);
    let reader = async {
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                Message::Binary(_) | Message::Text(_) if msg.len() > 1 => {
                    let data = msg.into_data();
                    let ch = data[0] as usize;
                    if ch % 2 == 0 {
                        if let Some(tx) = inputs.get(ch / 2) {
                            let _ = tx.send(data.slice(1..)).await;
                        }
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        inputs.clear();
    };
    let all_done = async { while tasks.join_next().await.is_some() {} };
    tokio::select! {
        _ = reader => {}
        _ = all_done => {}
    }
    tasks.abort_all();
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_from_either_query() {
        assert_eq!(ports(Some("ports=80%2C1234")).unwrap(), [80, 1234]);
        assert_eq!(ports(Some("port=80&port=81")).unwrap(), [80, 81]);
        assert!(ports(Some("ports=0")).is_err());
        assert!(ports(None).is_err());
    }
}
