//! `tkctl port-forward`: local ports to a pod's ports.

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;

use crate::client::{Ctx, Res};

#[derive(clap::Args)]
pub struct PortForwardArgs {
    /// pod/NAME or NAME.
    pod: String,
    /// LOCAL:REMOTE (or PORT for the same on both sides), one or more.
    #[arg(required = true)]
    ports: Vec<String>,
    /// Addresses to listen on.
    #[arg(long, default_value = "127.0.0.1", value_delimiter = ',')]
    address: Vec<String>,
}

fn port_pair(spec: &str) -> Res<(u16, u16)> {
    let parse = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("error: invalid port {p:?} in {spec:?}"))
    };
    match spec.split_once(':') {
        Some(("", r)) => Ok((0, parse(r)?)),
        Some((l, r)) => Ok((parse(l)?, parse(r)?)),
        None => {
            let p = parse(spec)?;
            Ok((p, p))
        }
    }
}

/// Forwards each local connection over its own port-forward session (kube-rs's WebSocket
/// channels carry one connection per port per session).
pub async fn port_forward(ctx: &Ctx, a: PortForwardArgs) -> Res<u8> {
    use std::io::Write;
    let name = a.pod.strip_prefix("pod/").unwrap_or(&a.pod).to_string();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let pod = pods.get(&name).await.map_err(|e| ctx.error(e))?;
    if pod.status.and_then(|s| s.phase).as_deref() != Some("Running") {
        return Err("error: unable to forward port because pod is not running".into());
    }
    let mut tasks = Vec::new();
    for spec in &a.ports {
        let (local, remote) = port_pair(spec)?;
        for addr in &a.address {
            let listener = tokio::net::TcpListener::bind((addr.as_str(), local))
                .await
                .map_err(|e| format!("error: unable to listen on {addr}:{local}: {e}"))?;
            let port = listener.local_addr().map_err(|e| e.to_string())?.port();
            println!("Forwarding from {addr}:{port} -> {remote}");
            let pods = pods.clone();
            let name = name.clone();
            tasks.push(tokio::spawn(async move {
                while let Ok((mut conn, _)) = listener.accept().await {
                    // Nobody may be reading any more: never fail on it.
                    let _ = writeln!(std::io::stdout(), "Handling connection for {port}");
                    let pods = pods.clone();
                    let name = name.clone();
                    tokio::spawn(async move {
                        let mut pf = match pods.portforward(&name, &[remote]).await {
                            Ok(pf) => pf,
                            Err(e) => {
                                eprintln!(
                                    "error: an error occurred forwarding {port} -> {remote}: {e}"
                                );
                                return;
                            }
                        };
                        if let Some(mut upstream) = pf.take_stream(remote) {
                            let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
                        }
                        if let Some(err) = pf.take_error(remote) {
                            if let Some(msg) = err.await {
                                eprintln!(
                                    "error: an error occurred forwarding {port} -> {remote}: {msg}"
                                );
                            }
                        }
                        pf.abort();
                    });
                }
            }));
        }
    }
    futures::future::join_all(tasks).await;
    Ok(0)
}
