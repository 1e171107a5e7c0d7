//! The connection to the apiserver: kubeconfig as kubectl reads it, the client, requests and
//! their errors. No verb lives here, and nothing here knows a verb.

mod error;

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use serde_json::Value;

pub use error::{aggregate, print_all, Error, Res};

use tinykube_machinery::kinds::Kind;

/// The node's admin kubeconfig, used when the user has none (tinykube's `local-up`).
const NODE_KUBECONFIG: &str = "/var/lib/tinykube/apiserver/admin.kubeconfig";
pub const TABLE_ACCEPT: &str =
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

/// A connected client and the namespace the command works in.
pub struct Ctx {
    pub client: Client,
    pub ns: String,
    /// Whether `-n` named the namespace (objects of a manifest must then be in it).
    pub ns_given: bool,
    pub server: String,
}

/// What the global flags say about the connection.
pub struct Options<'a> {
    pub kubeconfig: Option<&'a Path>,
    pub namespace: Option<&'a str>,
    /// `-v`: 6 and more log each request, as kubectl's `-v` does.
    pub verbosity: u8,
}

/// The kubeconfig files kubectl would read: `--kubeconfig`, else every file of `KUBECONFIG`,
/// else `~/.kube/config`; on a tinykube node without any of those, the node's admin kubeconfig.
pub fn kubeconfig_paths(flag: Option<&Path>) -> Vec<PathBuf> {
    if let Some(p) = flag {
        return vec![p.to_path_buf()];
    }
    if let Some(p) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        return std::env::split_paths(&p)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
    }
    let user = std::env::var_os("HOME")
        .map(PathBuf::from)
        .map(|h| h.join(".kube/config"));
    match user {
        Some(u) if u.exists() => vec![u],
        _ => vec![PathBuf::from(NODE_KUBECONFIG)],
    }
}

pub async fn connect(o: &Options<'_>) -> Res<Ctx> {
    let paths: Vec<PathBuf> = kubeconfig_paths(o.kubeconfig)
        .into_iter()
        .filter(|p| p.exists() || o.kubeconfig.is_some())
        .collect();
    if paths.is_empty() {
        return Err("error: no kubeconfig found (--kubeconfig, KUBECONFIG, ~/.kube/config): is the node up? Bring it up with hack/local-up.sh".into());
    }
    let mut kc: Option<Kubeconfig> = None;
    for p in &paths {
        let one =
            Kubeconfig::read_from(p).map_err(|e| format!("error: loading {}: {e}", p.display()))?;
        kc = Some(match kc {
            Some(k) => k.merge(one).map_err(|e| format!("error: {e}"))?,
            None => one,
        });
    }
    let kc = kc.expect("at least one file");
    let path = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("error: {path}: {e}"))?;
    let ns = o
        .namespace
        .map(str::to_string)
        .unwrap_or_else(|| cfg.default_namespace.clone());
    let server = cfg.cluster_url.to_string();
    let client = if o.verbosity >= 6 {
        crate::verbose::log(
            "loader.go:402",
            &format!("Config loaded from file:  {path}"),
        );
        kube::client::ClientBuilder::try_from(cfg)
            .map_err(|e| format!("error: {e}"))?
            .with_layer(&crate::verbose::Layer {
                level: o.verbosity,
                base: server.clone(),
            })
            .build()
    } else {
        Client::try_from(cfg).map_err(|e| format!("error: {e}"))?
    };
    Ok(Ctx {
        client,
        ns,
        ns_given: o.namespace.is_some(),
        server,
    })
}

impl Ctx {
    /// An error of kube-rs (a Status, or no answer) in kubectl's words.
    pub fn error(&self, e: kube::Error) -> Error {
        Error::from_kube(&self.server, e)
    }

    /// Where object `name` of `kind` lives in the command's namespace.
    pub fn object_uri(&self, kind: &Kind, name: &str) -> String {
        format!("{}/{name}", kind.path(Some(&self.ns)))
    }
}

/// One request with a JSON body (of content type `body.1`), its JSON answer.
pub async fn request(
    ctx: &Ctx,
    method: &str,
    uri: &str,
    accept: &str,
    body: Option<(Value, &str)>,
) -> Res<Value> {
    let mut b = http::Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::ACCEPT, accept);
    let body = match body {
        Some((v, ct)) => {
            b = b.header(http::header::CONTENT_TYPE, ct);
            serde_json::to_vec(&v).unwrap_or_default()
        }
        None => Vec::new(),
    };
    let req = b
        .body(body)
        .map_err(|e| Error::Client(format!("error: {e}")))?;
    let text = ctx
        .client
        .request_text(req)
        .await
        .map_err(|e| ctx.error(e))?;
    serde_json::from_str(&text).map_err(|e| format!("error: decoding the answer: {e}").into())
}

pub async fn get_json(ctx: &Ctx, uri: &str) -> Res<Value> {
    request(ctx, "GET", uri, "application/json", None).await
}

pub async fn post(ctx: &Ctx, uri: &str, body: Value) -> Res<Value> {
    request(
        ctx,
        "POST",
        uri,
        "application/json",
        Some((body, "application/json")),
    )
    .await
}

/// A merge patch (`application/merge-patch+json`).
pub async fn merge_patch(ctx: &Ctx, uri: &str, patch: Value) -> Res<Value> {
    request(
        ctx,
        "PATCH",
        uri,
        "application/json",
        Some((patch, "application/merge-patch+json")),
    )
    .await
}

/// The query string of a list with a label and a field selector (`?labelSelector=…`), or
/// nothing.
pub fn query(selector: &Option<String>, fields: &Option<String>) -> String {
    let mut q = Vec::new();
    if let Some(s) = selector {
        q.push(format!("labelSelector={}", encode(s)));
    }
    if let Some(f) = fields {
        q.push(format!("fieldSelector={}", encode(f)));
    }
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

/// Percent-encoding of a query value (everything but RFC 3986's unreserved characters).
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Waits until each of `uris` answers NotFound (`delete --wait`).
pub async fn wait_gone(ctx: &Ctx, uris: &[String]) {
    for uri in uris {
        while get_json(ctx, uri).await.is_ok() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}
