//! `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward`: checked here, then
//! proxied to the kubelet of the pod's node with the apiserver's kubelet-client certificate,
//! as kube-apiserver's UpgradeAwareHandler does. A log is a streamed body; the others are
//! HTTP upgrades (WebSocket or SPDY/3.1) whose bytes are piped both ways once the kubelet
//! answers 101, so the protocols are spoken end to end by the client and the kubelet.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderName, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Node, Pod};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tinykube_machinery::tls::AnyServerCert;
use tokio_rustls::TlsConnector;

use super::handler::Body;
use super::negotiate::Query;
use crate::error::{ApiError, ApiResult};
use crate::registry::catalog::Catalog;

/// The subresources of pods served by the kubelet.
pub const SUBRESOURCES: &[&str] = &["log", "exec", "attach", "portforward"];

/// How long connecting to a kubelet may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS the apiserver dials kubelets with: its kubelet-client certificate. The kubelet's
/// serving certificate is accepted without checking who signed it: kubelets make their own
/// (as kube-apiserver without `--kubelet-certificate-authority`); the kubelet checks *ours*.
pub fn kubelet_client_tls(
    cert_pem: &str,
    key_pem: &str,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs =
        CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider)))
        .with_client_auth_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Where a pod's kubelet listens.
fn kubelet_address(node: &Node) -> ApiResult<(String, u16)> {
    let status = node.status.as_ref();
    let port = status
        .and_then(|s| s.daemon_endpoints.as_ref())
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .map(|e| e.port)
        .filter(|p| *p > 0)
        .unwrap_or(10250);
    let addresses = status.and_then(|s| s.addresses.as_ref());
    let pick = |t: &str| {
        addresses
            .into_iter()
            .flatten()
            .find(|a| a.type_ == t)
            .map(|a| a.address.clone())
    };
    let host = pick("InternalIP")
        .or_else(|| pick("ExternalIP"))
        .or_else(|| pick("Hostname"))
        .ok_or_else(|| {
            ApiError::service_unavailable("no preferred addresses found for the pod's node")
        })?;
    Ok((host, port as u16))
}

/// The container a request means: the one named, or the pod's only one.
fn container(pod: &Pod, q: &Query) -> ApiResult<String> {
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let spec = pod.spec.as_ref();
    let containers: Vec<&str> = spec
        .map(|s| s.containers.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    let init: Vec<&str> = spec
        .and_then(|s| s.init_containers.as_ref())
        .map(|l| l.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    let ephemeral: Vec<&str> = spec
        .and_then(|s| s.ephemeral_containers.as_ref())
        .map(|l| l.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    match q.get("container").filter(|c| !c.is_empty()) {
        Some(c) if containers.contains(&c) || init.contains(&c) || ephemeral.contains(&c) => {
            Ok(c.to_string())
        }
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if containers.len() == 1 => Ok(containers[0].to_string()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            containers.join(" ")
        ))),
    }
}

/// The query passed on to the kubelet (the container is in the path there).
fn passed_query(raw: Option<&str>) -> String {
    raw.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("container="))
        .collect::<Vec<_>>()
        .join("&")
}

/// The kubelet's path for a pod subresource request.
fn kubelet_path(sub: &str, pod: &Pod, q: &Query, raw_query: Option<&str>) -> ApiResult<String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let query = passed_query(raw_query);
    let path = match sub {
        "log" => format!("/containerLogs/{ns}/{name}/{}", container(pod, q)?),
        "exec" | "attach" => {
            let phase = pod
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .unwrap_or("");
            if matches!(phase, "Succeeded" | "Failed") {
                return Err(ApiError::bad_request(format!(
                    "cannot {sub} into a container in a completed pod; current phase is {phase}"
                )));
            }
            format!("/{sub}/{ns}/{name}/{}", container(pod, q)?)
        }
        _ => format!("/portForward/{ns}/{name}"),
    };
    Ok(if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    })
}

/// Headers a protocol upgrade carries through the proxy.
const UPGRADE_HEADERS: &[HeaderName] = &[
    header::CONNECTION,
    header::UPGRADE,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_PROTOCOL,
    header::SEC_WEBSOCKET_EXTENSIONS,
];

fn passes(name: &HeaderName) -> bool {
    UPGRADE_HEADERS.contains(name)
        || name.as_str().starts_with("x-stream-protocol-")
        || name == header::ACCEPT
}

/// Serves one pod subresource request: the caller is already authorized.
pub async fn handle(
    catalog: &Catalog,
    tls: &Arc<rustls::ClientConfig>,
    ns: &str,
    name: &str,
    sub: &str,
    mut req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    let upgrade = sub != "log";
    if !upgrade && req.method() != Method::GET {
        return Err(ApiError::method_not_allowed(
            req.method().as_str(),
            "pods/log",
        ));
    }
    let pod = catalog.pods.get(Some(ns), name).await?;
    let q = Query::parse(req.uri().query());
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!("pod {name} does not have a host assigned"))
        })?;
    let path = kubelet_path(sub, &pod, &q, req.uri().query())?;
    let node = catalog.nodes.get(None, &node_name).await?;
    let (host, port) = kubelet_address(&node)?;
    let tcp = tokio::time::timeout(
        DIAL_TIMEOUT,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| kubelet_down(&host, port, "timed out"))?
    .map_err(|e| kubelet_down(&host, port, &e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let server_name = ServerName::try_from(host.clone())
        .map_err(|e| ApiError::internal(format!("kubelet address {host}: {e}")))?;
    let stream = TlsConnector::from(tls.clone())
        .connect(server_name, tcp)
        .await
        .map_err(|e| kubelet_down(&host, port, &e.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| kubelet_down(&host, port, &e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut out = Request::builder()
        .method(req.method().clone())
        .uri(&path)
        .header(header::HOST, format!("{host}:{port}"));
    for (k, v) in req.headers() {
        if passes(k) {
            out = out.header(k, v);
        }
    }
    let out = out
        .body(Empty::<Bytes>::new())
        .map_err(|e| ApiError::internal(format!("building the kubelet request: {e}")))?;
    let mut resp = sender
        .send_request(out)
        .await
        .map_err(|e| kubelet_down(&host, port, &e.to_string()))?;
    let status = resp.status();
    if upgrade && status == StatusCode::SWITCHING_PROTOCOLS {
        let mut answer = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
        for (k, v) in resp.headers() {
            answer = answer.header(k, v);
        }
        let from_kubelet = hyper::upgrade::on(&mut resp);
        let from_client = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let (Ok(k), Ok(c)) = (from_kubelet.await, from_client.await) else {
                return;
            };
            let mut k = TokioIo::new(k);
            let mut c = TokioIo::new(c);
            let _ =
                tokio::io::copy_bidirectional_with_sizes(&mut c, &mut k, 64 << 10, 64 << 10).await;
        });
        return answer
            .body(Empty::new().map_err(|e: Infallible| match e {}).boxed())
            .map_err(|e| ApiError::internal(e.to_string()));
    }
    // A log, or the kubelet's refusal of an upgrade: its answer as it is, streamed.
    let mut answer = Response::builder().status(status);
    for k in [header::CONTENT_TYPE, header::CACHE_CONTROL] {
        if let Some(v) = resp.headers().get(&k) {
            answer = answer.header(k, v);
        }
    }
    let body = futures::stream::unfold(resp.into_body(), |mut b| async move {
        match b.frame().await {
            Some(Ok(f)) => Some((Ok::<Frame<Bytes>, Infallible>(f), b)),
            _ => None,
        }
    });
    answer
        .body(BodyExt::boxed(StreamBody::new(body)))
        .map_err(|e| ApiError::internal(e.to_string()))
}

fn kubelet_down(host: &str, port: u16, why: &str) -> ApiError {
    ApiError::new(
        500,
        "InternalError",
        format!("error dialing backend: dial tcp {host}:{port}: {why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: &[&str], phase: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": containers.iter().map(|c| serde_json::json!({"name": c})).collect::<Vec<_>>(), "nodeName": "n"},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn kubelet_paths() {
        let p = pod(&["app"], "Running");
        let raw = Some("command=sh&command=-c&container=app&stdout=true");
        assert_eq!(
            kubelet_path("exec", &p, &Query::parse(raw), raw).unwrap(),
            "/exec/default/web/app?command=sh&command=-c&stdout=true"
        );
        let raw = Some("follow=true");
        assert_eq!(
            kubelet_path("log", &p, &Query::parse(raw), raw).unwrap(),
            "/containerLogs/default/web/app?follow=true",
            "the only container is the default"
        );
        assert_eq!(
            kubelet_path("portforward", &p, &Query::parse(None), None).unwrap(),
            "/portForward/default/web"
        );
    }

    #[test]
    fn wrong_containers_and_finished_pods_are_refused() {
        let two = pod(&["a", "b"], "Running");
        let e = kubelet_path("log", &two, &Query::parse(None), None).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(e.message.contains("choose one of: [a b]"), "{}", e.message);
        let raw = Some("container=c");
        let e = kubelet_path("exec", &two, &Query::parse(raw), raw).unwrap_err();
        assert!(e.message.contains("container c is not valid for pod web"));
        let done = pod(&["a"], "Succeeded");
        let e = kubelet_path("exec", &done, &Query::parse(None), None).unwrap_err();
        assert!(e.message.contains("completed pod"), "{}", e.message);
        assert!(kubelet_path("log", &done, &Query::parse(None), None).is_ok());
    }
}
