//! `tkctl logs`: a container's log, of one pod, a controller's pod or pods by selector.

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::builder::names_by_selector;
use crate::client::{get_json, Ctx, Res};
use crate::flags;
use crate::resources;

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

pub async fn logs(ctx: &Ctx, a: LogsArgs) -> Res<u8> {
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
                let obj = get_json(ctx, &ctx.object_uri(kind, n))
                    .await
                    .map_err(|e| e.about(kind, n))?;
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
                    )
                    .into());
                }
            }
            Some((_, n)) => names.push(n.to_string()),
            None => names.push(p.clone()),
        },
    }
    let since_seconds = match a.since.as_deref() {
        Some(s) => Some(flags::duration("since", s)?.as_secs_f64().ceil() as i64),
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
        let pod = get_json(ctx, &ctx.object_uri(pods_kind, &name))
            .await
            .map_err(|e| e.about(pods_kind, &name))?;
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
            let stream = api.log_stream(&name, &lp).await.map_err(|e| ctx.error(e))?;
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
