//! The kubelet's HTTPS server (port 10250): `containerLogs`, `exec`, `attach` and
//! `portForward` for the apiserver, as the real kubelet serves them.
//!
//! Every request is authenticated: TLS client certificates signed by the cluster CA (the
//! one in the kubelet's kubeconfig). Only the apiserver's kubelet-client identity and
//! cluster admins (`system:masters`) are authorized; an anonymous caller gets 401 and
//! anyone else 403 — an open exec endpoint is a root shell for the whole network.
//! The serving certificate is the kubelet's own, self-signed, made on every start (as the
//! kubelet does without `--tls-cert-file`).

pub mod exec;
pub mod logs;
pub mod portforward;
pub mod spdy;
pub mod ws;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::kubelet::Kubelet;
use crate::runtime::pods::{InstanceStatus, PodRuntime};

pub type Body = BoxBody<Bytes, Infallible>;

/// The identity the apiserver presents to kubelets (kubeadm's name for it).
pub const APISERVER_CLIENT: &str = "kube-apiserver-kubelet-client";

/// Who called: the certificate's CN and O.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    pub groups: Vec<String>,
}

/// Whether `caller` may use the kubelet's API.
pub fn authorized(caller: &Caller) -> bool {
    caller.user == APISERVER_CLIENT || caller.groups.iter().any(|g| g == "system:masters")
}

fn caller_of(der: &[u8]) -> Option<Caller> {
    let (user, groups) = tinykube_machinery::cert::subject_of_der(der)?;
    Some(Caller { user, groups })
}

/// What the server needs from the rest of the kubelet.
pub struct State {
    pub kubelet: Arc<Kubelet>,
    pub rt: Arc<PodRuntime>,
    /// The kubelet binary (re-executed as the exec helper).
    pub exe: PathBuf,
    /// Where exec's console sockets are made.
    pub run_dir: PathBuf,
}

/// The server's TLS: its own self-signed certificate, client certificates verified against
/// `client_ca_pem` but not required at the TLS layer (so the anonymous get a 401).
pub fn tls_config(
    client_ca_pem: &[u8],
    node_name: &str,
    ips: &[IpAddr],
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(client_ca_pem) {
        roots.add(c?)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let mut params = rcgen::CertificateParams::new(vec![node_name.to_string()])?;
    for ip in ips {
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress(*ip));
    }
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, format!("{node_name}@kubelet"));
    params.distinguished_name = dn;
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())?,
        )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves on every listener until the process ends.
pub async fn serve(listeners: Vec<TcpListener>, tls: Arc<rustls::ServerConfig>, state: Arc<State>) {
    let acceptor = TlsAcceptor::from(tls);
    let mut tasks = Vec::new();
    for listener in listeners {
        let acceptor = acceptor.clone();
        let state = state.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "kubelet server: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                tokio::spawn(connection(acceptor.clone(), state.clone(), tcp, peer));
            }
        }));
    }
    futures::future::join_all(tasks).await;
}

async fn connection(
    acceptor: TlsAcceptor,
    state: Arc<State>,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
) {
    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        _ => {
            tracing::debug!(%peer, "kubelet server: TLS handshake failed");
            return;
        }
    };
    let caller = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|c| caller_of(c));
    let service = service_fn(move |req| {
        let state = state.clone();
        let caller = caller.clone();
        async move { Ok::<_, Infallible>(handle(state, caller, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .with_upgrades()
        .await;
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A request refused before it started: answered with a `Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

impl Refused {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
        }
    }

    pub fn response(&self) -> Response<Body> {
        status(self.code, self.reason, self.message.clone())
    }
}

/// An error as a `Status` (the apiserver passes it on to the client).
pub fn status(code: u16, reason: &str, message: impl Into<String>) -> Response<Body> {
    let message = message.into();
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    });
    let mut r = Response::new(full(serde_json::to_vec(&body).unwrap_or_default()));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn handle(
    state: Arc<State>,
    caller: Option<Caller>,
    req: Request<Incoming>,
) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let response = match &caller {
        None => status(401, "Unauthorized", "Unauthorized"),
        Some(c) if !authorized(c) => status(
            403,
            "Forbidden",
            format!(
                "Forbidden (user={}, verb={}, resource=nodes, subresource=proxy)",
                c.user,
                method.as_str().to_lowercase()
            ),
        ),
        Some(_) => route(&state, req).await,
    };
    tracing::debug!(target: "tinykube::kubelet::http", %method, %path,
        status = response.status().as_u16(),
        user = caller.as_ref().map(|c| c.user.as_str()).unwrap_or(""), "request");
    response
}

/// A percent-decoded path segment.
fn segment(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(b) = raw
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query's pairs, decoded (`+` is a space), in order.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (segment(&k.replace('+', " ")), segment(&v.replace('+', " ")))
        })
        .collect()
}

async fn route(state: &Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let parts: Vec<String> = path.split('/').skip(1).map(segment).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    match (req.method(), parts.as_slice()) {
        (&Method::GET, ["healthz"]) => Response::new(full("ok")),
        (&Method::GET, ["containerLogs", ns, pod, container]) => {
            logs::handle(state, ns, pod, container, req.uri().query()).await
        }
        (&Method::GET | &Method::POST, ["exec" | "attach", ns, pod, container]) => {
            let attach = parts[0] == "attach";
            exec::handle(state.clone(), ns, pod, container, attach, req).await
        }
        // CRI streaming form with the pod's UID: /exec/<ns>/<pod>/<uid>/<container>.
        (&Method::GET | &Method::POST, ["exec" | "attach", ns, pod, _uid, container]) => {
            let attach = parts[0] == "attach";
            exec::handle(state.clone(), ns, pod, container, attach, req).await
        }
        (&Method::GET | &Method::POST, ["portForward", ns, pod, ..]) => {
            portforward::handle(state.clone(), ns, pod, req).await
        }
        (_, ["healthz" | "containerLogs" | "exec" | "attach" | "portForward", ..]) => status(
            405,
            "MethodNotAllowed",
            "the server does not allow this method",
        ),
        _ => status(404, "NotFound", format!("no handler for {path}")),
    }
}

/// The pod named `ns/name` on this node, or a 404 as the kubelet words it.
pub fn find_pod(state: &State, ns: &str, name: &str) -> Result<Pod, Refused> {
    state
        .kubelet
        .find_pod(ns, name)
        .ok_or_else(|| Refused::new(404, "NotFound", format!("pod {ns}/{name} not found")))
}

/// The latest instance of `container` in `pod`, if it runs now.
pub fn running_instance(
    state: &State,
    pod: &Pod,
    container: &str,
) -> Result<InstanceStatus, Refused> {
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let declared = crate::runtime::plan::find_container(pod, container).is_some();
    if !declared {
        return Err(Refused::new(
            400,
            "BadRequest",
            format!("container {container} is not valid for pod {name}"),
        ));
    }
    match state.rt.observe(uid).latest(container) {
        Some(i) if i.exit.is_none() => Ok(i.clone()),
        _ => Err(Refused::new(
            404,
            "NotFound",
            format!("container not found (\"{container}\")"),
        )),
    }
}
