//! Container probes, as the kubelet's prober runs them: liveness, readiness and startup, each
//! an exec, httpGet, tcpSocket or grpc check with its own timing and thresholds.
//!
//! One tokio task per (container instance, probe kind) — a timer and a connection, no thread
//! or process of its own except for exec probes, which go through the exec helper as
//! `kubectl exec` does. httpGet, tcpSocket and grpc connect from the kubelet to the pod's IP,
//! as Kubernetes' kubelet does. Results are kept per instance: a restarted container starts
//! over (not ready, not started), as Kubernetes' results managers key them by container ID.
//!
//! The pod worker reads the settled results: readiness drives the container's `ready` (and so
//! the pod's Ready condition and its endpoints); a startup probe holds `started` and the other
//! two probes until it succeeds; a liveness or startup probe that failed `failureThreshold`
//! times in a row has the worker kill the container ("Container c failed liveness probe, will
//! be restarted"). A settled change wakes the worker.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::runtime::pods::PodState;

/// The three probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Liveness,
    Readiness,
    Startup,
}

impl Kind {
    /// As Kubernetes' events name it ("Liveness probe failed: …").
    pub fn title(self) -> &'static str {
        match self {
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
            Kind::Startup => "Startup",
        }
    }

    fn of(self, c: &Container) -> Option<&Probe> {
        match self {
            Kind::Liveness => c.liveness_probe.as_ref(),
            Kind::Readiness => c.readiness_probe.as_ref(),
            Kind::Startup => c.startup_probe.as_ref(),
        }
    }
}

/// A probe's timing with Kubernetes' defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    pub fn of(p: &Probe) -> Timing {
        let secs = |v: Option<i32>, default: i32, min: i32| {
            Duration::from_secs(v.unwrap_or(default).max(min) as u64)
        };
        Timing {
            initial_delay: secs(p.initial_delay_seconds, 0, 0),
            period: secs(p.period_seconds, 10, 1),
            timeout: secs(p.timeout_seconds, 1, 1),
            success_threshold: p.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
        }
    }
}

/// One HTTP GET (of a probe or a lifecycle hook).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpGet {
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl HttpGet {
    /// Action `h` of container `c` in a pod at `pod_ip` (the default host).
    pub fn of(
        h: &k8s_openapi::api::core::v1::HTTPGetAction,
        c: &Container,
        pod_ip: &str,
    ) -> Result<HttpGet, String> {
        let mut path = h.path.clone().unwrap_or_default();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        Ok(HttpGet {
            https: h.scheme.as_deref() == Some("HTTPS"),
            host: h
                .host
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| pod_ip.to_string()),
            port: port(c, &h.port)?,
            path,
            headers: h
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
        })
    }
}

/// What one check does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    Exec(Vec<String>),
    Http(HttpGet),
    Tcp {
        host: String,
        port: u16,
    },
    Grpc {
        host: String,
        port: u16,
        service: String,
    },
}

/// A named or numbered port of container `c`.
pub fn port(c: &Container, p: &IntOrString) -> Result<u16, String> {
    match p {
        IntOrString::Int(n) if (1..=65535).contains(n) => Ok(*n as u16),
        IntOrString::Int(n) => Err(format!("invalid port number: {n}")),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<i32>() {
                return port(c, &IntOrString::Int(n));
            }
            c.ports
                .iter()
                .flatten()
                .find(|cp| cp.name.as_deref() == Some(name.as_str()))
                .map(|cp| cp.container_port as u16)
                .ok_or_else(|| format!("couldn't find port: {name} in {}", c.name))
        }
    }
}

impl Check {
    /// The check of probe `p` of container `c` in a pod at `pod_ip`.
    pub fn of(p: &Probe, c: &Container, pod_ip: &str) -> Result<Check, String> {
        if let Some(e) = &p.exec {
            return Ok(Check::Exec(e.command.clone().unwrap_or_default()));
        }
        if let Some(h) = &p.http_get {
            return Ok(Check::Http(HttpGet::of(h, c, pod_ip)?));
        }
        if let Some(t) = &p.tcp_socket {
            return Ok(Check::Tcp {
                host: t
                    .host
                    .clone()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| pod_ip.to_string()),
                port: port(c, &t.port)?,
            });
        }
        if let Some(g) = &p.grpc {
            return Ok(Check::Grpc {
                host: pod_ip.to_string(),
                port: u16::try_from(g.port).map_err(|_| format!("invalid port: {}", g.port))?,
                service: g.service.clone().unwrap_or_default(),
            });
        }
        Err("missing probe handler".into())
    }
}

/// One check's outcome: `Err` is a prober error (the result is thrown away, as Kubernetes'
/// prober does), not a failure.
pub type Outcome = Result<Verdict, String>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Success,
    /// Succeeded with a warning (an httpGet answered with a redirect that was not followed):
    /// Kubernetes' words for it, recorded as a `ProbeWarning` event.
    Warning(String),
    /// Failed, with Kubernetes' words for why.
    Failure(String),
}

/// How exec checks reach the container.
#[derive(Clone)]
pub struct ExecEnv {
    pub exe: PathBuf,
    pub state_root: PathBuf,
}

/// The largest output of an exec check kept (Kubernetes keeps 10 KiB).
const MAX_OUTPUT: usize = 10 << 10;

fn addr(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        _ => format!("{host}:{port}"),
    }
}

/// Go's words for a failed dial, as Kubernetes' messages carry them.
fn dial_error(target: &str, e: &std::io::Error) -> String {
    let why = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
        std::io::ErrorKind::TimedOut => "i/o timeout".to_string(),
        _ => match e.raw_os_error() {
            Some(libc::EHOSTUNREACH) => "connect: no route to host".into(),
            Some(libc::ENETUNREACH) => "connect: network is unreachable".into(),
            _ => e.to_string(),
        },
    };
    format!("dial tcp {target}: {why}")
}

async fn connect(target: &str, timeout: Duration) -> Result<tokio::net::TcpStream, String> {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(target)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(dial_error(target, &e)),
        Err(_) => Err(format!("dial tcp {target}: i/o timeout")),
    }
}

/// Runs one check.
pub async fn run(check: &Check, timeout: Duration, exec: &ExecEnv, id: &str) -> Outcome {
    match check {
        Check::Tcp { host, port } => {
            let target = addr(host, *port);
            Ok(match connect(&target, timeout).await {
                Ok(_) => Verdict::Success,
                Err(e) => Verdict::Failure(e),
            })
        }
        Check::Http(get) => Ok(http(get, timeout).await),
        Check::Grpc {
            host,
            port,
            service,
        } => Ok(grpc(host, *port, service, timeout).await),
        Check::Exec(command) => exec_check(exec, id, command, timeout).await,
    }
}

/// The User-Agent of Kubernetes' probes.
const USER_AGENT: &str = "kube-probe/1.32";

async fn http(get: &HttpGet, timeout: Duration) -> Verdict {
    match http_get(get, timeout, USER_AGENT).await {
        // A redirect that was not followed (to another host, or without a Location) is a
        // success with a warning, as in Kubernetes.
        Ok(a) if (300..400).contains(&a.code) => Verdict::Warning(format!(
            "Probe terminated redirects, Response body: {}",
            a.body
        )),
        Ok(a) if (200..300).contains(&a.code) => Verdict::Success,
        Ok(a) => Verdict::Failure(format!("HTTP probe failed with statuscode: {}", a.code)),
        Err(e) => Verdict::Failure(e),
    }
}

/// The final answer to a GET.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub code: u16,
    /// The body of a redirect that was not followed (at most [`MAX_BODY`] bytes, lossily
    /// UTF-8), for the probe's warning; empty for other answers (never read).
    pub body: String,
}

/// How much of a body a probe reads, as Kubernetes' (10 KiB).
const MAX_BODY: usize = 10 << 10;

/// Redirects a probe follows before it gives up, as Go's client (`stopped after 10 redirects`).
const MAX_REDIRECTS: usize = 10;

/// A GET to `host:port` as Kubernetes' probes and lifecycle hooks send it: the final status
/// code, or Go's words for why there is none (`Get "url": …`). Redirects to the same host are
/// followed (at most 10, all within `timeout`); one to another host is not, and its 3xx is the
/// answer, as Kubernetes' probes do it (`followNonLocalRedirects` off).
pub async fn http_get(
    get: &HttpGet,
    timeout: Duration,
    user_agent: &str,
) -> Result<Answer, String> {
    let mut at = get.clone();
    let mut url = at.url();
    let chain = async {
        let mut hops = 0;
        loop {
            let reply = one_get(&at, timeout, user_agent)
                .await
                .map_err(|e| (url.clone(), e))?;
            let code = reply.answer.code;
            let Some(location) = reply.location.filter(|_| (300..400).contains(&code)) else {
                return Ok(reply.answer);
            };
            let Some(next) = at.redirected(&location) else {
                return Ok(reply.answer);
            };
            if next.host != get.host {
                return Ok(reply.answer);
            }
            hops += 1;
            if hops >= MAX_REDIRECTS {
                return Err((next.url(), "stopped after 10 redirects".to_string()));
            }
            at = next;
            url = at.url();
        }
    };
    match tokio::time::timeout(timeout, chain).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err((url, e))) => Err(format!("Get \"{url}\": {e}")),
        Err(_) => Err(format!(
            "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            url = get.url()
        )),
    }
}

impl HttpGet {
    fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}", addr(&self.host, self.port), self.path)
    }

    /// Where a `Location` answer sends this request: an absolute URL (http or https), an
    /// absolute path, or a path relative to this one's directory.
    fn redirected(&self, location: &str) -> Option<HttpGet> {
        let mut next = self.clone();
        if let Some((scheme, rest)) = location.split_once("://") {
            next.https = match scheme.to_ascii_lowercase().as_str() {
                "http" => false,
                "https" => true,
                _ => return None,
            };
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            let uri: http::uri::Authority = authority.parse().ok()?;
            next.host = uri
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            next.port = uri.port_u16().unwrap_or(if next.https { 443 } else { 80 });
            next.path = path.to_string();
        } else if location.starts_with('/') {
            next.path = location.to_string();
        } else {
            let dir = self.path.rsplit_once('/').map_or("", |(d, _)| d);
            next.path = format!("{dir}/{location}");
        }
        Some(next)
    }
}

/// One request's answer and its `Location` header, if any.
struct Reply {
    answer: Answer,
    location: Option<String>,
}

/// One request.
async fn one_get(get: &HttpGet, timeout: Duration, user_agent: &str) -> Result<Reply, String> {
    let HttpGet {
        https,
        host,
        port,
        path,
        headers,
    } = get;
    let target = addr(host, *port);
    let tcp = connect(&target, timeout).await?;
    let mut req = http::Request::get(path.as_str()).header(http::header::HOST, &target);
    let mut agent = false;
    let mut accept = false;
    for (k, v) in headers {
        agent |= k.eq_ignore_ascii_case("user-agent");
        accept |= k.eq_ignore_ascii_case("accept");
        req = req.header(k.as_str(), v.as_str());
    }
    if !agent {
        req = req.header(http::header::USER_AGENT, user_agent);
    }
    if !accept {
        req = req.header(http::header::ACCEPT, "*/*");
    }
    let req = req
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    if *https {
        let tls = tokio_rustls::TlsConnector::from(insecure_tls());
        let name =
            rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
        let stream = tls.connect(name, tcp).await.map_err(|e| e.to_string())?;
        send(stream, req).await
    } else {
        send(tcp, req).await
    }
}

async fn send<S>(
    io: S,
    req: http::Request<http_body_util::Empty<bytes::Bytes>>,
) -> Result<Reply, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let reply = async {
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let code = resp.status().as_u16();
        let location = resp
            .headers()
            .get(http::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_string);
        // Only a redirect's body is wanted (for the warning); others are never read.
        let mut body = Vec::new();
        if (300..400).contains(&code) {
            use http_body_util::BodyExt;
            let mut incoming = resp.into_body();
            while body.len() < MAX_BODY {
                match incoming.frame().await {
                    Some(Ok(f)) => {
                        if let Some(d) = f.data_ref() {
                            body.extend_from_slice(d);
                        }
                    }
                    // A body cut short still gives the warning what came.
                    Some(Err(_)) | None => break,
                }
            }
            body.truncate(MAX_BODY);
        }
        Ok(Reply {
            answer: Answer {
                code,
                body: String::from_utf8_lossy(&body).into_owned(),
            },
            location,
        })
    }
    .await;
    conn.abort();
    reply
}

/// HTTPS probes skip verification, as Kubernetes' do.
fn insecure_tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            Arc::new(
                rustls::ClientConfig::builder_with_provider(provider.clone())
                    .with_safe_default_protocol_versions()
                    .expect("default protocol versions")
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(
                        tinykube_machinery::tls::AnyServerCert(provider),
                    ))
                    .with_no_client_auth(),
            )
        })
        .clone()
}

/// A whole number of seconds as Go prints a `time.Duration` (`1s`, `1m30s`, `1h0m0s`).
fn go_seconds(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}h{}m{}s", s / 3600, s % 3600 / 60, s % 60),
    }
}

/// The gRPC health protocol (grpc.health.v1.Health/Check) over HTTP/2 without TLS, as
/// Kubernetes' grpc probe speaks it; SERVING (1) is success. Outcomes are worded as
/// Kubernetes' gRPC prober words them. Its client dials with `WithBlock`, retrying until the
/// timeout, so any failure to connect reads as the timeout.
async fn grpc(host: &str, port: u16, service: &str, timeout: Duration) -> Verdict {
    let target = addr(host, port);
    let deadline = tokio::time::Instant::now() + timeout;
    let dial = async {
        let tcp = connect(&target, timeout).await?;
        hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .map_err(|e| e.to_string())
    };
    let dialed = tokio::time::timeout_at(deadline, dial).await;
    let Ok(Ok((mut sender, conn))) = dialed else {
        if let Ok(Err(e)) = &dialed {
            tracing::debug!(%target, error = %e, "gRPC probe: no connection");
        }
        return Verdict::Failure(format!(
            "timeout: failed to connect service {target:?} within {}: context deadline exceeded",
            go_seconds(timeout)
        ));
    };
    let attempt = async {
        let conn = tokio::spawn(conn);
        // HealthCheckRequest { string service = 1; } in a gRPC message frame.
        let mut msg = Vec::new();
        if !service.is_empty() {
            msg.push(0x0a);
            push_varint(&mut msg, service.len() as u64);
            msg.extend_from_slice(service.as_bytes());
        }
        let mut body = vec![0u8];
        body.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        body.extend_from_slice(&msg);
        let req = http::Request::post(format!("http://{target}/grpc.health.v1.Health/Check"))
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header("te", "trailers")
            .header(http::header::USER_AGENT, USER_AGENT)
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| {
            format!("error: health rpc probe failed: rpc error: code = Unavailable desc = {e}")
        });
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                conn.abort();
                return Err(e);
            }
        };
        let head_status = header_str(resp.headers(), "grpc-status");
        let head_message = header_str(resp.headers(), "grpc-message");
        let collected = http_body_util::BodyExt::collect(resp.into_body()).await;
        conn.abort();
        let collected = collected.map_err(|e| {
            format!("error: health rpc probe failed: rpc error: code = Unavailable desc = {e}")
        })?;
        let trailers = collected.trailers().cloned().unwrap_or_default();
        let code = header_str(&trailers, "grpc-status").or(head_status);
        let message = header_str(&trailers, "grpc-message")
            .or(head_message)
            .unwrap_or_default();
        if let Some(code) = code.filter(|c| c != "0") {
            return Err(match code.as_str() {
                "12" => format!(
                    "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {message}"
                ),
                "4" => format!(
                    "timeout: health rpc did not complete within {}",
                    go_seconds(timeout)
                ),
                _ => format!(
                    "error: health rpc probe failed: rpc error: code = {} desc = {message}",
                    grpc_code(&code)
                ),
            });
        }
        let data = collected.to_bytes();
        Ok(serving_status(data.get(5..).unwrap_or_default()))
    };
    match tokio::time::timeout_at(deadline, attempt).await {
        Ok(Ok(1)) => Verdict::Success,
        Ok(Ok(s)) => Verdict::Failure(format!(
            "service unhealthy (responded with \"{}\")",
            match s {
                2 => "NOT_SERVING",
                3 => "SERVICE_UNKNOWN",
                _ => "UNKNOWN",
            }
        )),
        Ok(Err(e)) => Verdict::Failure(e),
        Err(_) => Verdict::Failure(format!(
            "timeout: health rpc did not complete within {}",
            go_seconds(timeout)
        )),
    }
}

fn header_str(h: &http::HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_string())
}

fn grpc_code(code: &str) -> &str {
    match code {
        "1" => "Canceled",
        "2" => "Unknown",
        "4" => "DeadlineExceeded",
        "5" => "NotFound",
        "7" => "PermissionDenied",
        "12" => "Unimplemented",
        "13" => "Internal",
        "14" => "Unavailable",
        c => c,
    }
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// `status` (field 1, an enum) of a HealthCheckResponse; 0 (UNKNOWN) when absent.
fn serving_status(msg: &[u8]) -> u64 {
    let mut i = 0;
    while i < msg.len() {
        let key = msg[i];
        i += 1;
        let read_varint = |i: &mut usize| {
            let mut v = 0u64;
            let mut shift = 0;
            while *i < msg.len() {
                let b = msg[*i];
                *i += 1;
                v |= u64::from(b & 0x7f) << shift;
                if b & 0x80 == 0 {
                    break;
                }
                shift += 7;
            }
            v
        };
        match key & 7 {
            0 => {
                let v = read_varint(&mut i);
                if key >> 3 == 1 {
                    return v;
                }
            }
            2 => {
                let len = read_varint(&mut i) as usize;
                i += len;
            }
            _ => return 0,
        }
    }
    0
}

/// An exec check: the command in the container through the exec helper (as `kubectl exec`
/// runs one); exit 0 is success, its output (at most 10 KiB) the failure's message; past the
/// timeout it fails.
async fn exec_check(env: &ExecEnv, id: &str, command: &[String], timeout: Duration) -> Outcome {
    match tokio::time::timeout(timeout, exec_output(env, id, command)).await {
        Ok(Ok((0, _))) => Ok(Verdict::Success),
        Ok(Ok((_, output))) => Ok(Verdict::Failure(
            String::from_utf8_lossy(&output).into_owned(),
        )),
        Ok(Err(e)) => Err(e),
        Err(_) => Ok(Verdict::Failure(format!(
            "command {:?} timed out",
            command.join(" ")
        ))),
    }
}

/// Runs `command` in container `id` through the exec helper: its exit code and its stdout
/// and stderr together (at most 10 KiB, as Kubernetes keeps).
pub async fn exec_output(
    env: &ExecEnv,
    id: &str,
    command: &[String],
) -> Result<(i32, Vec<u8>), String> {
    use crate::server::exec::{run_with, Helper, Options, Output};
    let opts = Options {
        command: command.to_vec(),
        stdout: true,
        stderr: true,
        ..Options::default()
    };
    let (in_tx, in_rx) = tokio::sync::mpsc::channel(1);
    drop(in_tx);
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel(16);
    let collect = async {
        let mut output = Vec::new();
        while let Some(o) = out_rx.recv().await {
            let (Output::Stdout(b) | Output::Stderr(b)) = o;
            let room = MAX_OUTPUT.saturating_sub(output.len());
            output.extend_from_slice(&b[..b.len().min(room)]);
        }
        output
    };
    let helper = Helper {
        exe: &env.exe,
        state_root: &env.state_root,
        run_dir: std::path::Path::new(""),
    };
    let (code, output) = tokio::join!(run_with(&helper, id, &opts, in_rx, out_tx), collect);
    Ok((code?, output))
}

/// The containers of `pod` that are probed: the app containers and the sidecars (init
/// containers that run for the pod's life).
pub fn probed(pod: &Pod) -> impl Iterator<Item = &Container> {
    pod.spec.iter().flat_map(|s| {
        s.init_containers
            .iter()
            .flatten()
            .filter(|c| crate::runtime::plan::is_sidecar(c))
            .chain(s.containers.iter())
    })
}

/// Settled results of one pod's probes, per container instance.
#[derive(Default)]
struct Results {
    /// (instance ID, kind) → the settled result (absent: none yet).
    settled: HashMap<(String, Kind), bool>,
}

/// An event a probe wants recorded (a Warning about a container).
#[derive(Debug)]
pub struct Noted {
    pub container: String,
    /// `Unhealthy` or `ProbeWarning`.
    pub reason: &'static str,
    pub message: String,
}

/// Events the probes want recorded. The worker records them (it owns the pod object).
pub type Unhealthy = Arc<Mutex<Vec<Noted>>>;

/// One pod's probes.
#[derive(Default)]
pub struct Probes {
    tasks: HashMap<(String, Kind), JoinHandle<()>>,
    results: Arc<Mutex<Results>>,
    pub unhealthy: Unhealthy,
}

/// Where a container instance's probes report.
struct Reporter {
    instance: String,
    container: String,
    kind: Kind,
    results: Arc<Mutex<Results>>,
    unhealthy: Unhealthy,
    wake: Arc<Notify>,
}

impl Reporter {
    fn settled(&self, kind: Kind) -> Option<bool> {
        self.results
            .lock()
            .unwrap()
            .settled
            .get(&(self.instance.clone(), kind))
            .copied()
    }

    fn settle(&self, ok: bool) {
        let prev = self
            .results
            .lock()
            .unwrap()
            .settled
            .insert((self.instance.clone(), self.kind), ok);
        if prev != Some(ok) {
            self.wake.notify_one();
        }
    }
}

impl Probes {
    /// Starts the probes of running instances that have none yet and stops those of
    /// instances that ended.
    pub fn sync(&mut self, pod: &Pod, state: &PodState, exec: &ExecEnv, wake: &Arc<Notify>) {
        let mut live = HashSet::new();
        let pod_ip = state.pod_ip.clone().unwrap_or_default();
        for c in probed(pod) {
            let Some(i) = state.latest(&c.name).filter(|i| i.exit.is_none()) else {
                continue;
            };
            let has_startup = c.startup_probe.is_some();
            for kind in [Kind::Startup, Kind::Liveness, Kind::Readiness] {
                let Some(p) = kind.of(c) else { continue };
                let key = (i.record.id.clone(), kind);
                live.insert(key.clone());
                if self.tasks.contains_key(&key) {
                    continue;
                }
                let reporter = Reporter {
                    instance: i.record.id.clone(),
                    container: c.name.clone(),
                    kind,
                    results: self.results.clone(),
                    unhealthy: self.unhealthy.clone(),
                    wake: wake.clone(),
                };
                let started_at = i
                    .record
                    .started_at
                    .as_deref()
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok());
                let check = Check::of(p, c, &pod_ip);
                let timing = Timing::of(p);
                let exec = exec.clone();
                let id = i.record.id.clone();
                let task = tokio::spawn(async move {
                    prober(reporter, check, timing, started_at, has_startup, exec, id).await
                });
                self.tasks.insert(key, task);
            }
        }
        self.tasks.retain(|k, t| {
            let keep = live.contains(k);
            if !keep {
                t.abort();
            }
            keep
        });
        let instances: HashSet<&String> = live.iter().map(|(i, _)| i).collect();
        self.results
            .lock()
            .unwrap()
            .settled
            .retain(|(i, _), _| instances.contains(i));
    }

    /// Stops every probe.
    pub fn stop(&mut self) {
        for (_, t) in self.tasks.drain() {
            t.abort();
        }
        self.results.lock().unwrap().settled.clear();
    }

    /// What the status and the planner need of instance `id` of container `c`.
    /// `reported` is what the pod's status last said of this very instance (started, ready):
    /// until its own probes have settled (after a kubelet restart), that stands, so a
    /// restart does not flap a ready pod out of its endpoints.
    pub fn health(&self, c: &Container, id: &str, reported: Option<(bool, bool)>) -> Health {
        let r = self.results.lock().unwrap();
        let get = |k: Kind| r.settled.get(&(id.to_string(), k)).copied();
        let (was_started, was_ready) = reported.unwrap_or((false, false));
        let started = c.startup_probe.is_none() || get(Kind::Startup).unwrap_or(was_started);
        let ready = match get(Kind::Readiness) {
            _ if c.readiness_probe.is_none() => true,
            Some(ok) => ok,
            None => was_ready,
        };
        Health {
            started,
            ready: started && ready,
            failed: if get(Kind::Startup) == Some(false) {
                Some(Kind::Startup)
            } else if started && get(Kind::Liveness) == Some(false) {
                Some(Kind::Liveness)
            } else {
                None
            },
        }
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One running instance's standing with its probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    /// No startup probe, or it succeeded.
    pub started: bool,
    /// Started, and no readiness probe or it succeeded.
    pub ready: bool,
    /// A liveness or startup probe failed for good: the container is to be killed.
    pub failed: Option<Kind>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            started: true,
            ready: true,
            failed: None,
        }
    }
}

/// Probe ticks fall on a common grid of this step, so that the checks of many containers
/// share their wake-ups: with 100 pods probed every second the kubelet wakes 10 times a second
/// for them, not 100 (each wake-up of the runtime's threads costs more than a check's own
/// work). A first check comes at most this much later than Kubernetes would run it.
const GRID: Duration = Duration::from_millis(100);

/// The first instant on the probe grid at or after `at`.
fn on_grid(at: tokio::time::Instant) -> tokio::time::Instant {
    static ORIGIN: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(tokio::time::Instant::now);
    let since = at.saturating_duration_since(origin).as_nanos();
    let step = GRID.as_nanos();
    origin + Duration::from_nanos((since.div_ceil(step) * step) as u64)
}

/// Runs one probe of one instance until it is aborted (or, for a startup probe, settled).
async fn prober(
    r: Reporter,
    check: Result<Check, String>,
    timing: Timing,
    started_at: Option<jiff::Timestamp>,
    has_startup: bool,
    exec: ExecEnv,
    id: String,
) {
    let check = match check {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(container = %r.container, error = %e, "a probe that cannot run");
            return;
        }
    };
    // The first check comes initialDelaySeconds after the container started.
    let ran = started_at
        .and_then(|t| std::time::Duration::try_from(jiff::Timestamp::now().duration_since(t)).ok())
        .unwrap_or_default();
    let first = on_grid(tokio::time::Instant::now() + timing.initial_delay.saturating_sub(ran));
    let mut ticks = tokio::time::interval_at(first, timing.period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut successes, mut failures) = (0u32, 0u32);
    loop {
        ticks.tick().await;
        // Liveness and readiness wait for the startup probe; a settled one is done.
        if r.kind != Kind::Startup && has_startup && r.settled(Kind::Startup) != Some(true) {
            continue;
        }
        let verdict = match run(&check, timing.timeout, &exec, &id).await {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(container = %r.container, error = %e, "probe errored");
                continue;
            }
        };
        if let Verdict::Warning(why) = &verdict {
            r.unhealthy.lock().unwrap().push(Noted {
                container: r.container.clone(),
                reason: "ProbeWarning",
                message: format!("{} probe warning: {why}", r.kind.title()),
            });
        }
        match verdict {
            Verdict::Success | Verdict::Warning(_) => {
                successes += 1;
                failures = 0;
                // Liveness and startup settle on one success.
                let needed = if r.kind == Kind::Readiness {
                    timing.success_threshold
                } else {
                    1
                };
                if successes >= needed {
                    r.settle(true);
                    if r.kind == Kind::Startup {
                        return;
                    }
                }
            }
            Verdict::Failure(why) => {
                failures += 1;
                successes = 0;
                r.unhealthy.lock().unwrap().push(Noted {
                    container: r.container.clone(),
                    reason: "Unhealthy",
                    message: format!("{} probe failed: {why}", r.kind.title()),
                });
                // Recorded at the worker's next sync (a settled change wakes it at once).
                if failures >= timing.failure_threshold {
                    r.settle(false);
                    // A failed liveness or startup probe gets its container killed; the
                    // next instance has probes of its own.
                    if r.kind != Kind::Readiness {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn timing_defaults_as_kubernetes() {
        let p: Probe = serde_json::from_value(json!({"exec": {"command": ["true"]}})).unwrap();
        assert_eq!(
            Timing::of(&p),
            Timing {
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: 3,
            }
        );
    }

    #[test]
    fn checks_resolve_named_ports_and_default_to_the_pod_ip() {
        let c = container(
            json!({"name": "web", "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"port": "http", "path": "healthz",
                "httpHeaders": [{"name": "X-A", "value": "b"}]}}}),
        );
        let check = Check::of(c.readiness_probe.as_ref().unwrap(), &c, "10.244.0.5").unwrap();
        assert_eq!(
            check,
            Check::Http(HttpGet {
                https: false,
                host: "10.244.0.5".into(),
                port: 8080,
                path: "/healthz".into(),
                headers: vec![("X-A".into(), "b".into())],
            })
        );
        let bad =
            container(json!({"name": "web", "livenessProbe": {"tcpSocket": {"port": "nope"}}}));
        assert_eq!(
            Check::of(bad.liveness_probe.as_ref().unwrap(), &bad, "10.0.0.1").unwrap_err(),
            "couldn't find port: nope in web"
        );
    }

    #[test]
    fn health_waits_for_the_probes_and_keeps_what_a_restarted_kubelet_reported() {
        let c = container(json!({"name": "web",
            "readinessProbe": {"tcpSocket": {"port": 80}},
            "livenessProbe": {"tcpSocket": {"port": 80}}}));
        let probes = Probes::default();
        let h = probes.health(&c, "id1", None);
        assert_eq!((h.started, h.ready, h.failed), (true, false, None));
        // Reported ready before a kubelet restart: it stands until the probes settle.
        assert!(probes.health(&c, "id1", Some((true, true))).ready);
        let settle = |kind: Kind, ok: bool| {
            probes
                .results
                .lock()
                .unwrap()
                .settled
                .insert(("id1".into(), kind), ok)
        };
        settle(Kind::Readiness, false);
        assert!(!probes.health(&c, "id1", Some((true, true))).ready);
        settle(Kind::Liveness, false);
        assert_eq!(probes.health(&c, "id1", None).failed, Some(Kind::Liveness));
        // A startup probe holds everything until it succeeds.
        let slow = container(json!({"name": "web",
            "startupProbe": {"tcpSocket": {"port": 80}},
            "livenessProbe": {"tcpSocket": {"port": 80}}}));
        let h = probes.health(&slow, "id1", None);
        assert_eq!((h.started, h.ready, h.failed), (false, false, None));
    }

    #[tokio::test]
    async fn probe_ticks_share_a_grid() {
        let now = tokio::time::Instant::now();
        let a = on_grid(now);
        let b = on_grid(now + Duration::from_millis(30));
        let c = on_grid(now + GRID + Duration::from_millis(1));
        assert!(a >= now && a - now < GRID);
        assert!(b >= now + Duration::from_millis(30));
        assert_eq!(on_grid(a), a, "a point on the grid stays");
        assert_eq!(c - on_grid(now + GRID), GRID);
        assert_eq!(((b - a).as_nanos() % GRID.as_nanos()), 0);
    }

    #[test]
    fn durations_as_go_prints_them() {
        assert_eq!(go_seconds(Duration::from_secs(1)), "1s");
        assert_eq!(go_seconds(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_seconds(Duration::from_secs(3600)), "1h0m0s");
    }

    #[test]
    fn grpc_health_responses_decode() {
        assert_eq!(serving_status(&[0x08, 0x01]), 1);
        assert_eq!(serving_status(&[0x08, 0x02]), 2);
        assert_eq!(serving_status(&[]), 0);
        let mut v = Vec::new();
        push_varint(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
    }

    /// A server answering each request by its path: `/to/<path>` redirects there, `/away`
    /// redirects to another host, `/loop` to itself, `/bad` is a 500, the rest 200.
    async fn redirecting_server() -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = req.split(' ').nth(1).unwrap_or("").to_string();
                let resp = if let Some(to) = path.strip_prefix("/to") {
                    format!("HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\n\r\n")
                } else if path == "/away" {
                    "HTTP/1.1 301 Moved\r\nlocation: http://example.invalid/\r\ncontent-length: 5\r\n\r\nthere".into()
                } else if path.starts_with("/loop") {
                    "HTTP/1.1 307 Again\r\nlocation: loop\r\ncontent-length: 0\r\n\r\n".into()
                } else if path == "/bad" {
                    "HTTP/1.1 500 X\r\ncontent-length: 0\r\n\r\n".into()
                } else {
                    "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".into()
                };
                s.write_all(resp.as_bytes()).await.unwrap();
            }
        });
        port
    }

    #[tokio::test]
    async fn http_probes_follow_redirects_on_the_same_host_only() {
        let port = redirecting_server().await;
        let get = |path: &str| HttpGet {
            https: false,
            host: "127.0.0.1".into(),
            port,
            path: path.into(),
            headers: vec![],
        };
        let t = Duration::from_secs(2);
        let code = |code| {
            Ok(Answer {
                code,
                body: String::new(),
            })
        };
        assert_eq!(http_get(&get("/to/ok"), t, USER_AGENT).await, code(200));
        assert_eq!(http_get(&get("/to/bad"), t, USER_AGENT).await, code(500));
        assert_eq!(
            http_get(
                &get(&format!("/tohttp://127.0.0.1:{port}/bad")),
                t,
                USER_AGENT
            )
            .await,
            code(500),
            "an absolute URL on the same host is followed"
        );
        assert_eq!(
            http_get(&get("/away"), t, USER_AGENT).await,
            Ok(Answer {
                code: 301,
                body: "there".into()
            }),
            "another host: the redirect itself is the answer"
        );
        assert_eq!(
            http(&get("/away"), t).await,
            Verdict::Warning("Probe terminated redirects, Response body: there".into()),
            "a redirect not followed is a success with Kubernetes' warning"
        );
        assert_eq!(
            http_get(&get("/loop"), t, USER_AGENT).await,
            Err(format!(
                "Get \"http://127.0.0.1:{port}/loop\": stopped after 10 redirects"
            ))
        );
        assert_eq!(
            http(&get("/to/bad"), t).await,
            Verdict::Failure("HTTP probe failed with statuscode: 500".into())
        );
    }

    #[tokio::test]
    async fn tcp_and_http_checks_against_real_sockets() {
        let env = ExecEnv {
            exe: PathBuf::new(),
            state_root: PathBuf::new(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            for code in [200, 500] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                assert!(req.starts_with("GET /healthz HTTP/1.1\r\n"), "{req}");
                assert!(
                    req.to_ascii_lowercase()
                        .contains("user-agent: kube-probe/1.32"),
                    "{req}"
                );
                let resp = format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\n\r\n");
                s.write_all(resp.as_bytes()).await.unwrap();
            }
        });
        let http = |_: ()| {
            Check::Http(HttpGet {
                https: false,
                host: "127.0.0.1".into(),
                port,
                path: "/healthz".into(),
                headers: vec![],
            })
        };
        let t = Duration::from_secs(2);
        assert_eq!(run(&http(()), t, &env, "").await, Ok(Verdict::Success));
        assert_eq!(
            run(&http(()), t, &env, "").await,
            Ok(Verdict::Failure(
                "HTTP probe failed with statuscode: 500".into()
            ))
        );
        server.await.unwrap();
        // Nothing listens there any more.
        let tcp = Check::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        assert_eq!(
            run(&tcp, t, &env, "").await,
            Ok(Verdict::Failure(format!(
                "dial tcp 127.0.0.1:{port}: connect: connection refused"
            )))
        );
    }
}
