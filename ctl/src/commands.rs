//! The verbs: each talks to the apiserver through kube-rs and prints what kubectl prints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, LogParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::resources::{self, Kind};
use crate::{Cli, Command};

/// The node's admin kubeconfig, used when the user has none (tinykube's `local-up`).
const NODE_KUBECONFIG: &str = "/var/lib/tinykube/apiserver/admin.kubeconfig";
pub(crate) const TABLE_ACCEPT: &str =
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

pub(crate) type Res<T> = Result<T, String>;

pub(crate) struct Ctx {
    pub client: Client,
    pub ns: String,
    /// Whether `-n` named the namespace (objects of a manifest must then be in it).
    pub ns_given: bool,
    pub server: String,
}

/// The kubeconfig files kubectl would read: `--kubeconfig`, else every file of `KUBECONFIG`,
/// else `~/.kube/config`; on a tinykube node without any of those, the node's admin kubeconfig.
pub(crate) fn kubeconfig_paths(flag: Option<&Path>) -> Vec<PathBuf> {
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

async fn connect(cli: &Cli) -> Res<Ctx> {
    let paths: Vec<PathBuf> = kubeconfig_paths(cli.kubeconfig.as_deref())
        .into_iter()
        .filter(|p| p.exists() || cli.kubeconfig.is_some())
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
    let ns = cli
        .namespace
        .clone()
        .unwrap_or_else(|| cfg.default_namespace.clone());
    let server = cfg.cluster_url.to_string();
    let client = if cli.verbosity >= 6 {
        crate::verbose::log(
            "loader.go:402",
            &format!("Config loaded from file:  {path}"),
        );
        kube::client::ClientBuilder::try_from(cfg)
            .map_err(|e| format!("error: {e}"))?
            .with_layer(&crate::verbose::Layer {
                level: cli.verbosity,
                base: server.clone(),
            })
            .build()
    } else {
        Client::try_from(cfg).map_err(|e| format!("error: {e}"))?
    };
    Ok(Ctx {
        client,
        ns,
        ns_given: cli.namespace.is_some(),
        server,
    })
}

/// An error from the server in kubectl's words.
pub(crate) fn server_error(ctx: &Ctx, e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("Error from server ({}): {}", s.reason, s.message),
        other => {
            let text = other.to_string();
            if text.contains("onnection refused") || text.contains("tcp connect") {
                let host = ctx
                    .server
                    .trim_start_matches("https://")
                    .trim_end_matches('/');
                format!("The connection to the server {host} was refused - did you specify the right host or port?")
            } else {
                format!("Unable to connect to the server: {text}")
            }
        }
    }
}

pub(crate) async fn request(
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
    let req = b.body(body).map_err(|e| e.to_string())?;
    let text = ctx
        .client
        .request_text(req)
        .await
        .map_err(|e| server_error(ctx, e))?;
    serde_json::from_str(&text).map_err(|e| format!("error: decoding the answer: {e}"))
}

pub(crate) async fn get_json(ctx: &Ctx, uri: &str) -> Res<Value> {
    request(ctx, "GET", uri, "application/json", None).await
}

pub(crate) async fn post(ctx: &Ctx, uri: &str, body: Value) -> Res<Value> {
    request(
        ctx,
        "POST",
        uri,
        "application/json",
        Some((body, "application/json")),
    )
    .await
}

/// How kubectl names an object's type before its name: `pod`, `deployment.apps`.
pub(crate) fn kind_prefix(kind: &Kind) -> String {
    if kind.group.is_empty() {
        kind.singular.to_string()
    } else {
        format!("{}.{}", kind.singular, kind.group)
    }
}

/// A server error about object `name` of `kind`: NotFound in kubectl's words.
pub(crate) fn about(e: String, kind: &Kind, name: &str) -> String {
    if e.contains("(NotFound)") {
        not_found(kind, name)
    } else {
        e
    }
}

pub(crate) fn not_found(kind: &Kind, name: &str) -> String {
    format!(
        "Error from server (NotFound): {} \"{name}\" not found",
        kind.qualified()
    )
}

pub async fn run(cli: Cli) -> Res<u8> {
    let ctx = connect(&cli).await?;
    match cli.command {
        Command::Version => version(&ctx).await,
        Command::Ip => ip(&ctx).await,
        Command::Get(a) => crate::get::get(&ctx, a).await,
        Command::Run(a) => run_image(&ctx, a).await,
        Command::Expose(a) => expose(&ctx, a).await,
        Command::Label(a) => label(&ctx, a).await,
        Command::Scale(a) => scale(&ctx, a).await,
        Command::Delete(a) => delete(&ctx, a).await,
        Command::Logs(a) => logs(&ctx, a).await,
        Command::Exec(a) => exec(&ctx, a).await,
        Command::PortForward(a) => port_forward(&ctx, a).await,
        Command::Describe(a) => crate::describe::describe(&ctx, a).await,
        Command::Create(a) => crate::apply::create(&ctx, a).await,
        Command::Apply(a) => crate::apply::apply(&ctx, a).await,
        Command::Rollout(a) => crate::rollout::rollout(&ctx, a).await,
        Command::Set(a) => crate::rollout::set(&ctx, a).await,
        Command::Annotate(a) => update_metadata(&ctx, a, Meta::Annotations).await,
        Command::ClusterInfo => crate::cluster::cluster_info(&ctx).await,
        Command::ApiResources(a) => crate::cluster::api_resources(&ctx, a).await,
        Command::Image(a) => crate::cluster::image(a),
        Command::Config(_) | Command::Completion(_) => unreachable!("handled before connecting"),
    }
}

async fn version(ctx: &Ctx) -> Res<u8> {
    println!("Client Version: v{}", env!("CARGO_PKG_VERSION"));
    let v = get_json(ctx, "/version").await?;
    println!(
        "Server Version: {}",
        v["gitVersion"].as_str().unwrap_or("unknown")
    );
    Ok(0)
}

async fn ip(ctx: &Ctx) -> Res<u8> {
    let nodes = get_json(ctx, "/api/v1/nodes").await?;
    let addr = nodes["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|n| {
            n["status"]["addresses"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str().map(str::to_string))
        .ok_or("error: the node has not registered an address yet")?;
    println!("{addr}");
    Ok(0)
}

/// `TYPE/NAME`, `TYPE NAME...`, `TYPE1,TYPE2`, `all`: the kinds and names meant.
pub(crate) fn targets(args: &[String]) -> Res<Vec<(&'static Kind, Vec<String>)>> {
    let first = args.first().ok_or(
        "You must specify the type of resource to get. Use \"tkctl api-resources\" for a complete list of supported resources.",
    )?;
    let unknown = |w: &str| format!("error: the server doesn't have a resource type \"{w}\"");
    if first.contains('/') {
        let mut out: Vec<(&'static Kind, Vec<String>)> = Vec::new();
        for a in args {
            let (t, n) = a
                .split_once('/')
                .ok_or_else(|| "error: there is no need to specify a resource type as a separate argument when passing arguments in resource/name form".to_string())?;
            let k = resources::lookup(t).ok_or_else(|| unknown(t))?;
            match out.iter_mut().find(|(kk, _)| *kk == k) {
                Some((_, names)) => names.push(n.to_string()),
                None => out.push((k, vec![n.to_string()])),
            }
        }
        return Ok(out);
    }
    let mut kinds = Vec::new();
    for w in first.split(',') {
        if w == "all" {
            kinds.extend(resources::all());
        } else {
            kinds.push(resources::lookup(w).ok_or_else(|| unknown(w))?);
        }
    }
    let names: Vec<String> = args[1..].to_vec();
    Ok(kinds.into_iter().map(|k| (k, names.clone())).collect())
}

pub(crate) fn query(selector: &Option<String>, fields: &Option<String>) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let mut q = Vec::new();
    if let Some(s) = selector {
        q.push(format!("labelSelector={}", enc(s)));
    }
    if let Some(f) = fields {
        q.push(format!("fieldSelector={}", enc(f)));
    }
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

#[derive(clap::Args)]
pub struct RunArgs {
    name: String,
    #[arg(long)]
    image: String,
    /// The port the container exposes.
    #[arg(long)]
    port: Option<i32>,
    #[arg(long, default_value_t = 1)]
    replicas: i32,
    /// Labels, comma separated (default run=NAME).
    #[arg(short = 'l', long)]
    labels: Option<String>,
    #[arg(long)]
    env: Vec<String>,
    /// Always (a Deployment, the default) or Never/OnFailure (a bare Pod).
    #[arg(long, default_value = "Always")]
    restart: String,
    /// The arguments after -- are the command, not the image's arguments.
    #[arg(long)]
    command: bool,
    #[arg(last = true)]
    args: Vec<String>,
}

pub(crate) fn parse_pairs(s: &str) -> Res<BTreeMap<String, String>> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("error: invalid label spec: {p}"))
        })
        .collect()
}

async fn run_image(ctx: &Ctx, a: RunArgs) -> Res<u8> {
    let labels = match &a.labels {
        Some(l) => parse_pairs(l)?,
        None => BTreeMap::from([("run".to_string(), a.name.clone())]),
    };
    let mut container = json!({"name": a.name, "image": a.image});
    if let Some(p) = a.port {
        container["ports"] = json!([{"containerPort": p}]);
    }
    if !a.env.is_empty() {
        let env: Vec<Value> = a
            .env
            .iter()
            .map(|e| {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                json!({"name": k, "value": v})
            })
            .collect();
        container["env"] = json!(env);
    }
    if !a.args.is_empty() {
        container[if a.command { "command" } else { "args" }] = json!(a.args);
    }
    let (uri, body, what) = match a.restart.as_str() {
        "Always" => (
            format!(
                "{}?fieldManager=kubectl-run",
                resources::lookup("deployments")
                    .unwrap()
                    .path(Some(&ctx.ns))
            ),
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": a.name, "labels": labels},
                "spec": {"replicas": a.replicas, "selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}},
            }),
            format!("deployment.apps/{}", a.name),
        ),
        "Never" | "OnFailure" => (
            format!(
                "{}?fieldManager=kubectl-run",
                resources::lookup("pods").unwrap().path(Some(&ctx.ns))
            ),
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": a.name, "labels": labels},
                "spec": {"restartPolicy": a.restart, "containers": [container]},
            }),
            format!("pod/{}", a.name),
        ),
        other => return Err(format!("error: invalid restart policy: {other}")),
    };
    post(ctx, &uri, body).await?;
    println!("{what} created");
    Ok(0)
}

/// `TYPE/NAME` or `TYPE NAME`.
pub(crate) fn one(args: &[String]) -> Res<(&'static Kind, String)> {
    match args {
        [tn] if tn.contains('/') => {
            let (t, n) = tn.split_once('/').unwrap();
            let k = resources::lookup(t)
                .ok_or_else(|| format!("error: the server doesn't have a resource type \"{t}\""))?;
            Ok((k, n.to_string()))
        }
        [t, n] => {
            let k = resources::lookup(t)
                .ok_or_else(|| format!("error: the server doesn't have a resource type \"{t}\""))?;
            Ok((k, n.clone()))
        }
        _ => Err("error: you must specify a resource and a name (TYPE NAME or TYPE/NAME)".into()),
    }
}

#[derive(clap::Args)]
pub struct ExposeArgs {
    /// TYPE NAME or TYPE/NAME.
    args: Vec<String>,
    #[arg(long = "type")]
    type_: Option<String>,
    #[arg(long)]
    port: Option<i32>,
    #[arg(long)]
    target_port: Option<String>,
    #[arg(long)]
    name: Option<String>,
    #[arg(long, default_value = "TCP")]
    protocol: String,
}

async fn expose(ctx: &Ctx, a: ExposeArgs) -> Res<u8> {
    let (kind, name) = one(&a.args)?;
    let obj = get_json(ctx, &format!("{}/{name}", kind.path(Some(&ctx.ns))))
        .await
        .map_err(|e| about(e, kind, &name))?;
    let (selector, template_ports) = match kind.kind {
        "Deployment" | "ReplicaSet" => (
            obj["spec"]["selector"]["matchLabels"].clone(),
            obj["spec"]["template"]["spec"]["containers"].clone(),
        ),
        "Pod" => (
            obj["metadata"]["labels"].clone(),
            obj["spec"]["containers"].clone(),
        ),
        "Service" => (obj["spec"]["selector"].clone(), Value::Null),
        other => return Err(format!("error: cannot expose a {other}")),
    };
    if selector.as_object().is_none_or(|m| m.is_empty()) {
        return Err(format!("error: couldn't retrieve selectors via --selector flag or introspection: the {} has no labels", kind.singular));
    }
    let port = a
        .port
        .or_else(|| {
            let first = if kind.kind == "Service" {
                obj["spec"]["ports"][0]["port"].as_i64()
            } else {
                template_ports[0]["ports"][0]["containerPort"].as_i64()
            };
            first.map(|p| p as i32)
        })
        .ok_or("error: couldn't find port via --port flag or introspection")?;
    let target: Value = match &a.target_port {
        Some(t) => t
            .parse::<i32>()
            .map(Value::from)
            .unwrap_or(Value::from(t.clone())),
        None => Value::from(port),
    };
    let svc_name = a.name.clone().unwrap_or(name.clone());
    let mut spec = json!({"selector": selector, "ports": [{"port": port, "protocol": a.protocol, "targetPort": target}]});
    if let Some(t) = &a.type_ {
        spec["type"] = json!(t);
    }
    let body = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": svc_name, "labels": obj["metadata"]["labels"].clone()},
        "spec": spec,
    });
    let uri = format!(
        "{}?fieldManager=kubectl-expose",
        resources::lookup("services").unwrap().path(Some(&ctx.ns))
    );
    post(ctx, &uri, body).await?;
    println!("service/{svc_name} exposed");
    Ok(0)
}

#[derive(clap::Args)]
pub struct LabelArgs {
    /// TYPE NAME... KEY=VAL... KEY-...
    args: Vec<String>,
    #[arg(long)]
    overwrite: bool,
    #[arg(short = 'l', long)]
    selector: Option<String>,
    #[arg(long)]
    all: bool,
}

pub(crate) async fn names_by_selector(
    ctx: &Ctx,
    kind: &Kind,
    selector: Option<&str>,
) -> Res<Vec<String>> {
    let sel = selector.map(str::to_string);
    let list = request(
        ctx,
        "GET",
        &format!("{}{}", kind.path(Some(&ctx.ns)), query(&sel, &None)),
        "application/json",
        None,
    )
    .await?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string))
        .collect())
}

async fn label(ctx: &Ctx, a: LabelArgs) -> Res<u8> {
    update_metadata(ctx, a, Meta::Labels).await
}

/// Which map of `metadata` `label` and `annotate` change.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Meta {
    Labels,
    Annotations,
}

/// `label` and `annotate`: KEY=VAL sets, KEY- removes, on named objects, `-l` or `--all`.
pub(crate) async fn update_metadata(ctx: &Ctx, a: LabelArgs, which: Meta) -> Res<u8> {
    let (field, noun) = match which {
        Meta::Labels => ("labels", "label"),
        Meta::Annotations => ("annotations", "annotation"),
    };
    let (targets, changes): (Vec<String>, Vec<String>) = a
        .args
        .iter()
        .cloned()
        .partition(|x| !(x.contains('=') || x.ends_with('-')));
    let (kind, mut names) = match targets.as_slice() {
        [tn] if tn.contains('/') => {
            let (k, n) = one(std::slice::from_ref(tn))?;
            (k, vec![n])
        }
        [t, rest @ ..] => (
            resources::lookup(t).ok_or_else(|| format!("error: the server doesn't have a resource type \"{t}\""))?,
            rest.to_vec(),
        ),
        [] => return Err("error: one or more resources must be specified as <resource> <name> or <resource>/<name>".into()),
    };
    if a.selector.is_some() || a.all {
        names = names_by_selector(ctx, kind, a.selector.as_deref()).await?;
    }
    if changes.is_empty() {
        return Err(format!("error: at least one {noun} update is required"));
    }
    let mut set = serde_json::Map::new();
    for c in &changes {
        match c.split_once('=') {
            Some((k, v)) => {
                set.insert(k.to_string(), json!(v));
            }
            None => {
                set.insert(c.trim_end_matches('-').to_string(), Value::Null);
            }
        }
    }
    let prefix = kind_prefix(kind);
    for n in names {
        let uri = format!("{}/{n}", kind.path(Some(&ctx.ns)));
        let obj = get_json(ctx, &uri).await.map_err(|e| about(e, kind, &n))?;
        let current = &obj["metadata"][field];
        let mut patch = serde_json::Map::new();
        let mut after = current.as_object().cloned().unwrap_or_default();
        for (k, v) in &set {
            match (current.get(k), v) {
                (Some(old), Value::String(new)) if old != new && !a.overwrite => {
                    let old = old.as_str().unwrap_or("");
                    return Err(match which {
                        Meta::Labels => format!(
                            "error: '{k}' already has a value ({old}), and --overwrite is false"
                        ),
                        Meta::Annotations => format!("error: --overwrite is false but found the following declared annotation(s): '{k}' already has a value ({old})"),
                    });
                }
                (None, Value::Null) => {
                    if which == Meta::Labels {
                        println!("label \"{k}\" not found.");
                    }
                }
                (_, Value::Null) => {
                    after.remove(k);
                    patch.insert(k.clone(), Value::Null);
                }
                (_, new) => {
                    after.insert(k.clone(), new.clone());
                    patch.insert(k.clone(), new.clone());
                }
            }
        }
        let before = current.as_object().cloned().unwrap_or_default();
        let changed = after != before;
        // kubectl's wording: a change that shrinks the map without --overwrite "unlabeled".
        let shrunk = !a.overwrite
            && Value::Object(after).to_string().len() < Value::Object(before).to_string().len();
        let verb = match which {
            // annotate says so even when nothing changed, as kubectl does.
            Meta::Annotations => "annotated",
            Meta::Labels if !changed => "not labeled",
            Meta::Labels if shrunk => "unlabeled",
            Meta::Labels => "labeled",
        };
        if changed {
            let patch = json!({"metadata": {field: patch}});
            request(
                ctx,
                "PATCH",
                &format!("{uri}?fieldManager=kubectl-{noun}"),
                "application/json",
                Some((patch, "application/merge-patch+json")),
            )
            .await?;
        }
        println!("{prefix}/{n} {verb}");
    }
    Ok(0)
}

#[derive(clap::Args)]
pub struct ScaleArgs {
    /// TYPE NAME or TYPE/NAME.
    args: Vec<String>,
    #[arg(long)]
    replicas: i32,
}

async fn scale(ctx: &Ctx, a: ScaleArgs) -> Res<u8> {
    let (kind, name) = one(&a.args)?;
    if !matches!(kind.kind, "Deployment" | "ReplicaSet") {
        return Err(format!("error: cannot scale a {}", kind.singular));
    }
    let uri = format!("{}/{name}/scale", kind.path(Some(&ctx.ns)));
    request(
        ctx,
        "PATCH",
        &uri,
        "application/json",
        Some((
            json!({"spec": {"replicas": a.replicas}}),
            "application/merge-patch+json",
        )),
    )
    .await
    .map_err(|e| about(e, kind, &name))?;
    println!("{}.{}/{name} scaled", kind.singular, kind.group);
    Ok(0)
}

#[derive(clap::Args)]
pub struct DeleteArgs {
    /// TYPE NAME... or TYPE/NAME...
    args: Vec<String>,
    #[arg(short = 'l', long)]
    selector: Option<String>,
    #[arg(long)]
    all: bool,
    /// Seconds the pods get to stop (-1: their own).
    #[arg(long, default_value_t = -1)]
    grace_period: i64,
    /// Delete at once (grace period 1).
    #[arg(long)]
    now: bool,
    /// Wait until the objects are gone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    wait: bool,
    /// Files, directories or `-` (stdin) naming the objects to delete.
    #[arg(short = 'f', long = "filename")]
    files: Vec<String>,
    /// Read the directories given with -f recursively.
    #[arg(short = 'R', long)]
    recursive: bool,
    /// Treat objects that are not there as deleted.
    #[arg(long)]
    ignore_not_found: bool,
}

async fn delete(ctx: &Ctx, a: DeleteArgs) -> Res<u8> {
    let mut body = json!({"propagationPolicy": "Background"});
    if a.now {
        body["gracePeriodSeconds"] = json!(1);
    } else if a.grace_period >= 0 {
        body["gracePeriodSeconds"] = json!(a.grace_period);
    }
    if !a.files.is_empty() {
        if !a.args.is_empty() {
            return Err("error: when paths, URLs, or stdin is provided as input, you may not specify resource arguments as well".into());
        }
        return crate::apply::delete_files(
            ctx,
            &a.files,
            a.recursive,
            a.ignore_not_found,
            body,
            a.wait,
        )
        .await;
    }
    let mut work: Vec<(&'static Kind, Vec<String>)> = targets(&a.args)?;
    if a.selector.is_some() || a.all {
        for (k, names) in work.iter_mut() {
            *names = names_by_selector(ctx, k, a.selector.as_deref()).await?;
        }
        if work.iter().all(|(_, n)| n.is_empty()) {
            eprintln!("No resources found");
            return Ok(0);
        }
    } else if work.iter().all(|(_, n)| n.is_empty()) {
        return Err("error: resource(s) were provided, but no name was specified".into());
    }
    let mut failed = false;
    let mut deleted = Vec::new();
    for (kind, names) in &work {
        for n in names {
            let uri = format!("{}/{n}", kind.path(Some(&ctx.ns)));
            match request(
                ctx,
                "DELETE",
                &uri,
                "application/json",
                Some((body.clone(), "application/json")),
            )
            .await
            {
                Ok(_) => {
                    println!("{} \"{n}\" deleted", kind_prefix(kind));
                    deleted.push(uri);
                }
                Err(e) if a.ignore_not_found && e.contains("(NotFound)") => {}
                Err(e) => {
                    eprintln!(
                        "{}",
                        if e.contains("(NotFound)") {
                            not_found(kind, n)
                        } else {
                            e
                        }
                    );
                    failed = true;
                }
            }
        }
    }
    if a.wait {
        for uri in deleted {
            while get_json(ctx, &uri).await.is_ok() {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    Ok(u8::from(failed))
}

#[derive(clap::Args)]
pub struct LogsArgs {
    /// POD, TYPE/NAME (a deployment's or replica set's pod), or nothing with -l.
    pod: Option<String>,
    /// The container (default: the pod's default or only container).
    #[arg(short = 'c', long)]
    container: Option<String>,
    /// Every pod that matches this label selector.
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Every container of the pod.
    #[arg(long)]
    all_containers: bool,
    /// Each line starts with [pod/NAME/CONTAINER].
    #[arg(long)]
    prefix: bool,
    #[arg(short = 'f', long)]
    follow: bool,
    #[arg(short = 'p', long)]
    previous: bool,
    /// Lines from the end (-1: all; 10 with -l).
    #[arg(long)]
    tail: Option<i64>,
    /// Only lines newer than this duration (5s, 2m, 3h).
    #[arg(long)]
    since: Option<String>,
    #[arg(long)]
    timestamps: bool,
}

/// The container kubectl picks when none is named: the default-container annotation, else
/// the first (saying so when there are several).
fn default_container(pod: &Value) -> Option<String> {
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()?
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let chosen = pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"]
        .as_str()
        .filter(|d| names.contains(d))
        .or(names.first().copied())?;
    if names.len() > 1 {
        eprintln!(
            "Defaulted container \"{chosen}\" out of: {}",
            names.join(", ")
        );
    }
    Some(chosen.to_string())
}

async fn logs(ctx: &Ctx, a: LogsArgs) -> Res<u8> {
    let pods_kind = resources::lookup("pods").unwrap();
    // The pods meant: one by name, the first of a controller's, or all by selector.
    let mut names: Vec<String> = Vec::new();
    match (&a.pod, &a.selector) {
        (Some(_), Some(_)) => {
            return Err("error: only one of a pod name or -l selector may be given".into())
        }
        (None, None) => {
            return Err(
                "error: expected POD or TYPE/NAME is a required argument for the logs command"
                    .into(),
            )
        }
        (None, Some(sel)) => {
            names = names_by_selector(ctx, pods_kind, Some(sel)).await?;
            if names.is_empty() {
                eprintln!("No resources found in {} namespace.", ctx.ns);
            }
        }
        (Some(p), None) => match p.split_once('/') {
            Some((t, n)) if resources::lookup(t).is_some_and(|k| k.kind != "Pod") => {
                let kind = resources::lookup(t).unwrap();
                let obj = get_json(ctx, &format!("{}/{n}", kind.path(Some(&ctx.ns))))
                    .await
                    .map_err(|e| about(e, kind, n))?;
                let sel = obj["spec"]["selector"]["matchLabels"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                let found = names_by_selector(ctx, pods_kind, Some(&sel)).await?;
                if found.len() > 1 {
                    eprintln!("Found {} pods, using pod/{}", found.len(), found[0]);
                }
                names = found.into_iter().take(1).collect();
                if names.is_empty() {
                    return Err(format!(
                        "error: timed out waiting for the condition (no pods of {t}/{n})"
                    ));
                }
            }
            Some((_, n)) => names.push(n.to_string()),
            None => names.push(p.clone()),
        },
    }
    let since_seconds = match a.since.as_deref() {
        Some(s) => Some(
            crate::rollout::duration_flag("since", s)?
                .as_secs_f64()
                .ceil() as i64,
        ),
        None => None,
    };
    let tail = match a.tail {
        Some(t) if t >= 0 => Some(t),
        Some(_) => None,
        None if a.selector.is_some() => Some(10),
        None => None,
    };
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let mut out = tokio::io::stdout();
    for name in names {
        let pod = get_json(ctx, &format!("{}/{name}", pods_kind.path(Some(&ctx.ns))))
            .await
            .map_err(|e| about(e, pods_kind, &name))?;
        let containers: Vec<String> = if a.all_containers {
            pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        } else {
            a.container
                .clone()
                .or_else(|| default_container(&pod))
                .into_iter()
                .collect()
        };
        for c in containers {
            let lp = LogParams {
                container: Some(c.clone()),
                follow: a.follow,
                previous: a.previous,
                tail_lines: tail,
                since_seconds,
                timestamps: a.timestamps,
                ..Default::default()
            };
            let stream = api
                .log_stream(&name, &lp)
                .await
                .map_err(|e| server_error(ctx, e))?;
            let prefix = if a.prefix {
                format!("[pod/{name}/{c}] ")
            } else {
                String::new()
            };
            let mut lines = stream.lines();
            while let Some(l) = lines.next().await {
                let l = l.map_err(|e| format!("error: {e}"))?;
                let line = format!("{prefix}{l}\n");
                out.write_all(line.as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                out.flush().await.map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(0)
}

#[derive(clap::Args)]
pub struct ExecArgs {
    /// Pass stdin to the container.
    #[arg(short = 'i', long)]
    stdin: bool,
    /// Stdin is a TTY.
    #[arg(short = 't', long)]
    tty: bool,
    #[arg(short = 'c', long)]
    container: Option<String>,
    pod: String,
    /// The command (after `--`, or directly after the pod as older kubectl accepted).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

/// The terminal's size (columns, rows), if stdout is one.
fn terminal_size() -> Option<(u16, u16)> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into the pointer, which outlives the call.
    let r = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 0).then_some((ws.ws_col, ws.ws_row))
}

/// Puts the local terminal in raw mode until dropped.
struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    fn enter() -> Self {
        let stdin = std::io::stdin();
        let Ok(saved) = nix::sys::termios::tcgetattr(&stdin) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &raw);
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                t,
            );
        }
    }
}

async fn exec(ctx: &Ctx, a: ExecArgs) -> Res<u8> {
    use std::io::IsTerminal;
    let tty = a.tty && std::io::stdin().is_terminal();
    if a.tty && !tty {
        eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let name = a.pod.strip_prefix("pod/").unwrap_or(&a.pod).to_string();
    let mut ap = AttachParams::default()
        .stdin(a.stdin)
        .stdout(true)
        .stderr(!tty)
        .tty(tty);
    if let Some(c) = &a.container {
        ap = ap.container(c.clone());
    }
    let mut proc = pods
        .exec(&name, a.command.clone(), &ap)
        .await
        .map_err(|e| server_error(ctx, e))?;
    let _raw = tty.then(RawMode::enter);
    if tty {
        if let (Some(mut sizes), Some((w, h))) = (proc.terminal_size(), terminal_size()) {
            let _ = futures::SinkExt::send(
                &mut sizes,
                kube::api::TerminalSize {
                    width: w,
                    height: h,
                },
            )
            .await;
            tokio::spawn(async move {
                let Ok(mut winch) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
                else {
                    return;
                };
                while winch.recv().await.is_some() {
                    if let Some((w, h)) = terminal_size() {
                        if futures::SinkExt::send(
                            &mut sizes,
                            kube::api::TerminalSize {
                                width: w,
                                height: h,
                            },
                        )
                        .await
                        .is_err()
                        {
                            return;
                        }
                    }
                }
            });
        }
    }
    if let Some(mut input) = proc.stdin() {
        tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let mut buf = vec![0u8; 8192];
            while let Ok(n) = stdin.read(&mut buf).await {
                if n == 0 || input.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                let _ = input.flush().await;
            }
            let _ = input.shutdown().await;
        });
    }
    let out = proc.stdout().map(|mut s| {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut s, &mut tokio::io::stdout()).await;
        })
    });
    let err = proc.stderr().map(|mut s| {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut s, &mut tokio::io::stderr()).await;
        })
    });
    let status = proc.take_status().ok_or("error: no status channel")?.await;
    for h in [out, err].into_iter().flatten() {
        let _ = h.await;
    }
    drop(_raw);
    let Some(st) = status else {
        return Ok(0);
    };
    match st.status.as_deref() {
        Some("Success") => Ok(0),
        _ if st.reason.as_deref() == Some("NonZeroExitCode") => {
            let code = st
                .details
                .and_then(|d| d.causes)
                .into_iter()
                .flatten()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
                .and_then(|c| c.message.and_then(|m| m.parse::<u8>().ok()))
                .unwrap_or(1);
            eprintln!("command terminated with exit code {code}");
            Ok(code)
        }
        _ => Err(format!("error: {}", st.message.unwrap_or_default())),
    }
}

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
async fn port_forward(ctx: &Ctx, a: PortForwardArgs) -> Res<u8> {
    use std::io::Write;
    let name = a.pod.strip_prefix("pod/").unwrap_or(&a.pod).to_string();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let pod = pods.get(&name).await.map_err(|e| server_error(ctx, e))?;
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
