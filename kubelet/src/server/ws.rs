//! Kubernetes' WebSocket channel protocol for exec: binary messages whose first byte is
//! the channel — 0 stdin, 1 stdout, 2 stderr, 3 status (a `Status` at the end), 4 resize
//! (`{"Width":W,"Height":H}`), and in `v5.channel.k8s.io` 255 close (`[255, 0]`: stdin is
//! done). The server ends with a normal close (1000). Pings are answered by tungstenite.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::exec::{outcome_status, Input, Options, Outcome, Output};
use super::{full, Body, Refused};

/// The channel protocols exec speaks over WebSocket, preferred first.
pub const CHANNEL_PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// A terminal's size, as clients send it on the resize channel or stream.
#[derive(Debug, serde::Deserialize)]
pub struct TerminalSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

/// The protocols a request offers in header `name` (one per line or comma-separated), in
/// its order.
pub fn offered_in(req: &Request<Incoming>, name: impl http::header::AsHeaderName) -> Vec<String> {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The subprotocols a WebSocket request offers.
pub fn offered(req: &Request<Incoming>) -> Vec<String> {
    offered_in(req, header::SEC_WEBSOCKET_PROTOCOL)
}

/// The first offered protocol we speak (the client's preference wins, as in Kubernetes).
pub fn pick(offered: &[String], supported: &[&str]) -> Option<String> {
    offered
        .iter()
        .find(|p| supported.contains(&p.as_str()))
        .cloned()
}

/// Ends a WebSocket with a normal close (1000): clients treat anything else as an error.
pub async fn close_normally<S>(sink: &mut S)
where
    S: futures::Sink<Message> + Unpin,
{
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
    let _ = sink.flush().await;
}

/// Answers a WebSocket upgrade with the first of the client's subprotocols we speak.
pub fn accept(
    req: &Request<Incoming>,
    supported: &[&str],
) -> Result<(Response<Body>, String), Refused> {
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return Err(Refused::new(400, "BadRequest", "missing Sec-WebSocket-Key"));
    };
    let offered = offered(req);
    let Some(protocol) = pick(&offered, supported) else {
        return Err(Refused::new(
            400,
            "BadRequest",
            format!(
                "none of the requested subprotocols {offered:?} is supported (supported: {supported:?})"
            ),
        ));
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header"),
    );
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_str(&protocol).expect("a protocol we named"),
    );
    Ok((r, protocol))
}

/// Reads one client message as exec input.
pub fn input(data: &[u8], v5: bool) -> Option<Input> {
    let (&channel, rest) = data.split_first()?;
    match channel {
        STDIN => Some(Input::Stdin(Bytes::copy_from_slice(rest))),
        RESIZE => {
            let s: TerminalSize = serde_json::from_slice(rest).ok()?;
            Some(Input::Resize {
                width: s.width,
                height: s.height,
            })
        }
        CLOSE if v5 && rest.first() == Some(&STDIN) => Some(Input::StdinEof),
        _ => None,
    }
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(v.into())
}

/// Runs an exec over an upgraded WebSocket connection.
pub async fn exec_session<F, Fut>(io: Upgraded, protocol: &str, opts: Options, run: F)
where
    F: FnOnce(mpsc::Receiver<Input>, mpsc::Sender<Output>) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let v5 = protocol.starts_with("v5.");
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
    let (mut sink, mut stream) = ws.split();
    let (in_tx, in_rx) = mpsc::channel(64);
    let (out_tx, mut out_rx) = mpsc::channel(64);
    // The reader runs apart from the writer, so a process that does not read its stdin
    // never stops its output from flowing.
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                // The official Python client sends what it was given as text as a text
                // message (the channel byte first, as in a binary one); kubelets take both.
                Message::Binary(_) | Message::Text(_) => {
                    if let Some(i) = input(&msg.into_data(), v5) {
                        if in_tx.send(i).await.is_err() {
                            break;
                        }
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    });
    let exec = run(in_rx, out_tx);
    tokio::pin!(exec);
    let mut client_gone = false;
    let outcome = loop {
        tokio::select! {
            biased;
            Some(o) = out_rx.recv() => {
                if !client_gone && send_output(&mut sink, o).await.is_err() {
                    client_gone = true;
                }
                // An attached client that left ends its session; an exec runs on.
                if client_gone && opts.attach {
                    break Ok(0);
                }
            }
            r = &mut exec => break r,
        }
    };
    while let Ok(o) = out_rx.try_recv() {
        if client_gone || send_output(&mut sink, o).await.is_err() {
            client_gone = true;
            break;
        }
    }
    if !client_gone {
        let st = outcome_status(&outcome, &opts.command);
        let _ = sink
            .send(frame(STATUS, &serde_json::to_vec(&st).unwrap_or_default()))
            .await;
        close_normally(&mut sink).await;
    }
    reader.abort();
}

/// A WebSocket whose binary messages carry a byte stream (SPDY tunnelled over WebSocket:
/// frames split across messages at any point): the other end of the returned pipe reads
/// and writes those bytes.
pub async fn byte_stream(io: Upgraded) -> tokio::io::DuplexStream {
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
    let (mut sink, mut stream) = ws.split();
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (mut rd, mut wr) = tokio::io::split(ours);
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Some(Ok(msg)) = stream.next().await {
            let more = match msg {
                Message::Binary(data) => wr.write_all(&data).await.is_ok(),
                Message::Close(_) => false,
                _ => true,
            };
            if !more {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 128 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink
                        .send(Message::Binary(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        close_normally(&mut sink).await;
    });
    theirs
}

async fn send_output<S>(sink: &mut S, o: Output) -> Result<(), S::Error>
where
    S: futures::Sink<Message> + Unpin,
{
    match o {
        Output::Stdout(b) => sink.send(frame(STDOUT, &b)).await,
        Output::Stderr(b) => sink.send(frame(STDERR, &b)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels() {
        assert_eq!(
            input(b"\x00hi", true),
            Some(Input::Stdin(Bytes::from_static(b"hi")))
        );
        assert_eq!(
            input(b"\x04{\"Width\":120,\"Height\":40}", true),
            Some(Input::Resize {
                width: 120,
                height: 40
            })
        );
        assert_eq!(input(&[255, 0], true), Some(Input::StdinEof));
        assert_eq!(input(&[255, 0], false), None, "v4 has no close channel");
        assert_eq!(input(&[], true), None);
    }
}
