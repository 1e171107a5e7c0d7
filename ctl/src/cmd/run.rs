//! `tkctl run`: a Deployment of an image (pods labelled run=NAME), or a bare Pod.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::client::{post, Ctx, Res};
use crate::flags;
use crate::resources;

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

pub async fn run_image(ctx: &Ctx, a: RunArgs) -> Res<u8> {
    let labels = match &a.labels {
        Some(l) => flags::pairs(l)?,
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
        other => return Err(format!("error: invalid restart policy: {other}").into()),
    };
    post(ctx, &uri, body).await?;
    println!("{what} created");
    Ok(0)
}
