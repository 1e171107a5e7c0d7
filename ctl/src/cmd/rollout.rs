//! `rollout status|history|undo|restart|pause|resume`, as kubectl 1.32 does them for
//! deployments (kubectl's polymorphichelpers: rollout_status.go, history.go, rollback.go,
//! objectrestarter.go).

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Subcommand;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, WatchEvent, WatchParams};
use serde_json::{json, Value};

use crate::builder::{name_of, objects};
use crate::client::{aggregate, get_json, query, request, Ctx, Res};
use crate::flags;
use crate::resources::{prefix, Kind};

const REVISION: &str = "deployment.kubernetes.io/revision";
const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
use tinykube_machinery::template::{equal_ignore_hash, HASH_LABEL};
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The deployment's own annotations a rollback keeps (kubectl's annotationsToSkip).
const ANNOTATIONS_TO_SKIP: &[&str] = &[
    LAST_APPLIED,
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

#[derive(clap::Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    cmd: RolloutCmd,
}

#[derive(Subcommand)]
enum RolloutCmd {
    /// Show the status of the rollout.
    Status {
        /// TYPE NAME or TYPE/NAME.
        args: Vec<String>,
        /// Watch the status of the rollout until it's done.
        #[arg(short = 'w', long, default_value_t = true, num_args = 0..=1,
              require_equals = true, default_missing_value = "true",
              action = clap::ArgAction::Set)]
        watch: bool,
        /// Pin to a specific revision for showing its status (0: the last).
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        revision: i64,
        /// How long to wait (e.g. 1s, 2m, 3h); 0 means never.
        #[arg(long, default_value = "0s")]
        timeout: String,
        #[arg(short = 'l', long)]
        selector: Option<String>,
    },
    /// View rollout history.
    History {
        args: Vec<String>,
        /// See the details, including podTemplate of the revision specified.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        revision: i64,
        #[arg(short = 'l', long)]
        selector: Option<String>,
    },
    /// Undo a previous rollout.
    Undo {
        args: Vec<String>,
        /// The revision to rollback to (0: the last but one).
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        to_revision: i64,
        #[arg(short = 'l', long)]
        selector: Option<String>,
    },
    /// Restart a resource.
    Restart {
        args: Vec<String>,
        #[arg(short = 'l', long)]
        selector: Option<String>,
    },
    /// Mark the provided resource as paused.
    Pause {
        args: Vec<String>,
        #[arg(short = 'l', long)]
        selector: Option<String>,
    },
    /// Resume a paused resource.
    Resume {
        args: Vec<String>,
        #[arg(short = 'l', long)]
        selector: Option<String>,
    },
}

pub async fn rollout(ctx: &Ctx, a: RolloutArgs) -> Res<u8> {
    match a.cmd {
        RolloutCmd::Status {
            args,
            watch,
            revision,
            timeout,
            selector,
        } => {
            if revision < 0 {
                return Err(
                    format!("error: revision must be a positive integer: {revision}").into(),
                );
            }
            let timeout = flags::duration("timeout", &timeout)?;
            let objs = objects(ctx, &args, selector.as_deref()).await?;
            if objs.is_empty() {
                eprintln!("No resources found in {} namespace.", ctx.ns);
            }
            for (kind, obj) in objs {
                if kind.kind != "Deployment" {
                    return Err(format!(
                        "error: no status viewer has been implemented for {}",
                        group_kind(kind)
                    )
                    .into());
                }
                status(ctx, kind, name_of(&obj), watch, revision, timeout).await?;
            }
            Ok(0)
        }
        RolloutCmd::History {
            args,
            revision,
            selector,
        } => {
            for (kind, obj) in objects(ctx, &args, selector.as_deref()).await? {
                deployment_only(kind, "history viewer")?;
                let rss = replica_sets(ctx, &obj).await?;
                let text = view_history(&rss, revision)?;
                let with = if revision > 0 {
                    format!("with revision #{revision}")
                } else {
                    String::new()
                };
                println!("{}/{} {with}\n{text}", prefix(kind), name_of(&obj));
            }
            Ok(0)
        }
        RolloutCmd::Undo {
            args,
            to_revision,
            selector,
        } => {
            for (kind, obj) in objects(ctx, &args, selector.as_deref()).await? {
                deployment_only(kind, "rollbacker")?;
                let result = undo(ctx, kind, &obj, to_revision).await?;
                println!("{}/{} {result}", prefix(kind), name_of(&obj));
            }
            Ok(0)
        }
        RolloutCmd::Restart { args, selector } => {
            let now = rfc3339_now();
            patch_each(ctx, &args, selector.as_deref(), |kind, obj| {
                if kind.kind != "Deployment" {
                    return Err("restarting is not supported".into());
                }
                if obj["spec"]["paused"] == json!(true) {
                    return Err("can't restart paused deployment (run rollout resume first)".into());
                }
                if obj["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == json!(now) {
                    return Ok(Err(format!("failed to create patch for {}: if restart has already been triggered within the past second, please wait before attempting to trigger another", name_of(obj))));
                }
                Ok(Ok((
                    json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}}),
                    "restarted",
                )))
            })
            .await
        }
        RolloutCmd::Pause { args, selector } => {
            patch_each(ctx, &args, selector.as_deref(), |kind, obj| {
                if kind.kind != "Deployment" {
                    return Err("pausing is not supported".into());
                }
                if obj["spec"]["paused"] == json!(true) {
                    return Err("is already paused".into());
                }
                Ok(Ok((json!({"spec": {"paused": true}}), "paused")))
            })
            .await
        }
        RolloutCmd::Resume { args, selector } => {
            patch_each(ctx, &args, selector.as_deref(), |kind, obj| {
                if kind.kind != "Deployment" {
                    return Err("resuming is not supported".into());
                }
                if obj["spec"]["paused"] != json!(true) {
                    return Err("is not paused".into());
                }
                Ok(Ok((json!({"spec": {"paused": null}}), "resumed")))
            })
            .await
        }
    }
}

/// A kind as Go prints a schema.GroupKind: `Deployment.apps`, `Pod`.
/// kubectl's error for a kind other than Deployment (`no history viewer has been
/// implemented for "apps/ReplicaSet"`).
fn deployment_only(kind: &Kind, what: &str) -> Res<()> {
    if kind.kind == "Deployment" {
        return Ok(());
    }
    Err(format!(
        "error: no {what} has been implemented for \"{}\"",
        group_kind(kind)
    )
    .into())
}

fn group_kind(kind: &Kind) -> String {
    if kind.group.is_empty() {
        kind.kind.to_string()
    } else {
        format!("{}.{}", kind.kind, kind.group)
    }
}

/// One step of `rollout status`: the message for the deployment as it is now and whether
/// the rollout is done (kubectl's DeploymentStatusViewer).
pub(crate) fn deployment_status(d: &Value, revision: i64) -> Res<(String, bool)> {
    let name = name_of(d);
    if revision > 0 {
        let current = d["metadata"]["annotations"][REVISION]
            .as_str()
            .unwrap_or("0")
            .parse::<i64>()
            .map_err(|e| format!("cannot get the revision of deployment \"{name}\": {e}"))?;
        if current != revision {
            return Err(format!(
                "desired revision ({revision}) is different from the running revision ({current})"
            )
            .into());
        }
    }
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    let st = &d["status"];
    if int(&d["metadata"]["generation"]) > int(&st["observedGeneration"]) {
        return Ok((
            "Waiting for deployment spec update to be observed...".into(),
            false,
        ));
    }
    let timed_out = st["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded");
    if timed_out {
        return Err(format!("deployment \"{name}\" exceeded its progress deadline").into());
    }
    let (updated, replicas, available) = (
        int(&st["updatedReplicas"]),
        int(&st["replicas"]),
        int(&st["availableReplicas"]),
    );
    let waiting = |what: String| {
        Ok((
            format!("Waiting for deployment \"{name}\" rollout to finish: {what}..."),
            false,
        ))
    };
    if let Some(want) = d["spec"]["replicas"].as_i64() {
        if updated < want {
            return waiting(format!(
                "{updated} out of {want} new replicas have been updated"
            ));
        }
    }
    if replicas > updated {
        return waiting(format!(
            "{} old replicas are pending termination",
            replicas - updated
        ));
    }
    if available < updated {
        return waiting(format!(
            "{available} of {updated} updated replicas are available"
        ));
    }
    Ok((
        format!("deployment \"{name}\" successfully rolled out"),
        true,
    ))
}

/// Lists the deployment by name, then watches it from the list's resourceVersion, printing
/// the status at every event until the rollout is done (or once with `-w=false`).
async fn status(
    ctx: &Ctx,
    _kind: &Kind,
    name: &str,
    watch: bool,
    revision: i64,
    timeout: Duration,
) -> Res<()> {
    let work = watch_status(ctx, name, watch, revision);
    if timeout.is_zero() {
        return work.await;
    }
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err("error: timed out waiting for the condition".into()),
    }
}

async fn watch_status(ctx: &Ctx, name: &str, watch: bool, revision: i64) -> Res<()> {
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let field = format!("metadata.name={name}");
    // Prints one event's status; Some(result) ends the wait.
    let show = |d: &Value| -> Option<Res<()>> {
        match deployment_status(d, revision) {
            Err(e) => Some(Err(format!("error: {e}").into())),
            Ok((msg, done)) => {
                println!("{msg}");
                (done || !watch).then_some(Ok(()))
            }
        }
    };
    'relist: loop {
        let list = get_json(
            ctx,
            &format!(
                "{}{}",
                crate::resources::lookup("deployments")
                    .expect("deployments")
                    .path(Some(&ctx.ns)),
                query(&None, &Some(field.clone()))
            ),
        )
        .await?;
        let mut rv = list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("0")
            .to_string();
        for d in list["items"].as_array().into_iter().flatten() {
            if let Some(r) = show(d) {
                return r;
            }
        }
        let wp = WatchParams::default().fields(&field);
        // A watch the server ends is resumed from the last version seen; an expired version
        // (an error event) or a broken connection starts over with a list, as a reflector does.
        loop {
            let mut stream = api.watch(&wp, &rv).await.map_err(|e| ctx.error(e))?.boxed();
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(WatchEvent::Added(d)) | Ok(WatchEvent::Modified(d)) => {
                        if let Some(v) = d.metadata.resource_version.clone() {
                            rv = v;
                        }
                        let v = serde_json::to_value(&d).map_err(|e| e.to_string())?;
                        if let Some(r) = show(&v) {
                            return r;
                        }
                    }
                    Ok(WatchEvent::Deleted(_)) => {
                        return Err("error: object has been deleted".into())
                    }
                    Ok(WatchEvent::Bookmark(b)) => rv = b.metadata.resource_version,
                    Ok(WatchEvent::Error(_)) | Err(_) => continue 'relist,
                }
            }
        }
    }
}

/// The ReplicaSets a deployment controls (its selector's, owned by it): kubectl's
/// deploymentutil.GetAllReplicaSets, old ones first and the one matching the template last.
async fn replica_sets(ctx: &Ctx, d: &Value) -> Res<Vec<Value>> {
    let rs_kind = crate::resources::lookup("replicasets").expect("replicasets");
    let sel = selector_string(&d["spec"]["selector"]);
    let uri = format!(
        "{}{}",
        rs_kind.path(Some(&ctx.ns)),
        query(&Some(sel).filter(|s| !s.is_empty()), &None)
    );
    let list = get_json(ctx, &uri).await.map_err(|e| {
        format!(
            "error: failed to retrieve replica sets from deployment {}: {e}",
            name_of(d)
        )
    })?;
    let uid = &d["metadata"]["uid"];
    let mut owned: Vec<Value> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|rs| {
            rs["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o["controller"] == json!(true) && &o["uid"] == uid)
        })
        .cloned()
        .collect();
    owned.sort_by(|a, b| {
        let key = |r: &Value| {
            (
                r["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                name_of(r).to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
    if let Some(i) = owned
        .iter()
        .position(|rs| equal_ignore_hash(&rs["spec"]["template"], &d["spec"]["template"]))
    {
        let new = owned.remove(i);
        owned.push(new);
    }
    Ok(owned)
}

/// A LabelSelector as a query string (`a=b,c in (d,e)`).
fn selector_string(sel: &Value) -> String {
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    parts.join(",")
}

fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(l) = t["metadata"]["labels"].as_object_mut() {
        l.remove(HASH_LABEL);
    }
    t
}

fn rs_revision(rs: &Value) -> Option<i64> {
    match rs["metadata"]["annotations"][REVISION].as_str() {
        None => Some(0),
        Some(s) => s.parse().ok(),
    }
}

/// What `rollout history` prints after the object's name: the revision table, or one
/// revision's pod template.
pub(crate) fn view_history(rss: &[Value], revision: i64) -> Res<String> {
    let mut history: BTreeMap<i64, Value> = BTreeMap::new();
    for rs in rss {
        let Some(v) = rs_revision(rs) else { continue };
        let mut template = rs["spec"]["template"].clone();
        if let Some(cause) = rs["metadata"]["annotations"][CHANGE_CAUSE]
            .as_str()
            .filter(|c| !c.is_empty())
        {
            template["metadata"]["annotations"][CHANGE_CAUSE] = json!(cause);
        }
        history.insert(v, template);
    }
    if history.is_empty() {
        return Ok("No rollout history found.".into());
    }
    if revision > 0 {
        let t = history
            .get(&revision)
            .ok_or("error: unable to find the specified revision")?;
        return Ok(pod_template(t));
    }
    let rows: Vec<(String, String)> = history
        .iter()
        .map(|(r, t)| {
            let cause = t["metadata"]["annotations"][CHANGE_CAUSE]
                .as_str()
                .filter(|c| !c.is_empty())
                .unwrap_or("<none>");
            (r.to_string(), cause.to_string())
        })
        .collect();
    let width = rows
        .iter()
        .map(|(r, _)| r.len())
        .chain(["REVISION".len()])
        .max()
        .unwrap_or(0)
        + 2;
    let mut out = format!("{:width$}CHANGE-CAUSE\n", "REVISION");
    for (r, c) in rows {
        out.push_str(&format!("{r:width$}{c}\n"));
    }
    Ok(out)
}

/// A pod template in kubectl's describe layout (DescribePodTemplate), tabs left as they are:
/// kubectl prints rollout history's template without a tabwriter.
fn pod_template(t: &Value) -> String {
    let mut w = crate::describe::W::default();
    crate::describe::pod_template(&mut w, t);
    w.raw()
}

/// The ReplicaSet to roll back to: the given revision's, or the newest but one.
fn rollback_target<'a>(rss: &'a [Value], name: &str, to_revision: i64) -> Res<&'a Value> {
    let not_found = |r: i64| format!("error: unable to find specified revision {r} in history");
    let mut latest: Option<(i64, &Value)> = None;
    let mut previous: Option<(i64, &Value)> = None;
    for rs in rss {
        let Some(v) = rs_revision(rs) else { continue };
        if to_revision > 0 {
            if v == to_revision {
                return Ok(rs);
            }
            continue;
        }
        if latest.is_none_or(|(l, _)| l < v) {
            previous = latest;
            latest = Some((v, rs));
        } else if previous.is_none_or(|(p, _)| p < v) {
            previous = Some((v, rs));
        }
    }
    if to_revision > 0 {
        return Err(not_found(to_revision).into());
    }
    previous
        .map(|(_, rs)| rs)
        .ok_or_else(|| format!("error: no rollout history found for deployment \"{name}\"").into())
}

/// The JSON patch (as kubectl's rollback sends) restoring `rs`'s template on deployment `d`.
pub(crate) fn rollback_patch(d: &Value, rs: &Value) -> Value {
    let mut annotations = serde_json::Map::new();
    for k in ANNOTATIONS_TO_SKIP {
        if let Some(v) = d["metadata"]["annotations"].get(*k) {
            annotations.insert(k.to_string(), v.clone());
        }
    }
    for (k, v) in rs["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if !ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    json!([
        {"op": "replace", "path": "/spec/template", "value": without_hash(&rs["spec"]["template"])},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ])
}

async fn undo(ctx: &Ctx, kind: &Kind, d: &Value, to_revision: i64) -> Res<String> {
    let name = name_of(d);
    if to_revision < 0 {
        return Err(
            format!("error: unable to find specified revision {to_revision} in history").into(),
        );
    }
    let rss = replica_sets(ctx, d).await?;
    let rs = rollback_target(&rss, name, to_revision)?;
    if d["spec"]["paused"] == json!(true) {
        return Err("error: you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again".into());
    }
    if equal_ignore_hash(&rs["spec"]["template"], &d["spec"]["template"]) {
        return Ok(format!(
            "skipped rollback (current template already matches revision {to_revision})"
        ));
    }
    request(
        ctx,
        "PATCH",
        &ctx.object_uri(kind, name),
        "application/json",
        Some((rollback_patch(d, rs), "application/json-patch+json")),
    )
    .await
    .map_err(|e| {
        format!(
            "error: failed restoring revision {to_revision}: {}",
            e.bare()
        )
    })?;
    Ok("rolled back".into())
}

/// Now in RFC 3339, local time, as Go's time.Now().Format(time.RFC3339).
fn rfc3339_now() -> String {
    let now = jiff::Zoned::now();
    let zone = if now.offset().seconds() == 0 {
        "Z".to_string()
    } else {
        now.strftime("%:z").to_string()
    };
    format!("{}{zone}", now.strftime("%Y-%m-%dT%H:%M:%S"))
}

/// What the patch function of restart/pause/resume decides for one object: an error about
/// the object (`Err`, printed as `error: deployments.apps "web" …`), an error of its own
/// (`Ok(Err)`), or a merge patch and the word to print on success.
type PatchPlan = Result<Result<(Value, &'static str), String>, String>;

async fn patch_each(
    ctx: &Ctx,
    args: &[String],
    selector: Option<&str>,
    plan: impl Fn(&Kind, &Value) -> PatchPlan,
) -> Res<u8> {
    let objs = objects(ctx, args, selector).await?;
    if objs.is_empty() {
        eprintln!("No resources found in {} namespace.", ctx.ns);
        return Ok(0);
    }
    let mut errors = Vec::new();
    for (kind, obj) in objs {
        let name = name_of(&obj);
        match plan(kind, &obj) {
            Err(e) => errors.push(format!("error: {} \"{name}\" {e}", kind.qualified()).into()),
            Ok(Err(e)) => errors.push(e.into()),
            Ok(Ok((patch, done))) => {
                let uri = format!(
                    "{}?fieldManager=kubectl-rollout",
                    ctx.object_uri(kind, name)
                );
                match request(
                    ctx,
                    "PATCH",
                    &uri,
                    "application/json",
                    Some((patch, "application/merge-patch+json")),
                )
                .await
                {
                    Ok(_) => println!("{}/{name} {done}", prefix(kind)),
                    Err(e) => errors.push(format!("failed to patch: {}", e.bare()).into()),
                }
            }
        }
    }
    aggregate(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(gen: i64, observed: i64, replicas: i64, st: Value) -> Value {
        let mut status = st;
        status["observedGeneration"] = json!(observed);
        json!({"metadata": {"name": "web", "generation": gen, "annotations": {REVISION: "2"}},
               "spec": {"replicas": replicas}, "status": status})
    }

    #[test]
    fn status_messages_follow_kubectl() {
        let d = deployment(2, 1, 3, json!({}));
        assert_eq!(
            deployment_status(&d, 0).unwrap(),
            (
                "Waiting for deployment spec update to be observed...".into(),
                false
            )
        );
        let d = deployment(2, 2, 3, json!({"updatedReplicas": 1, "replicas": 3}));
        assert_eq!(deployment_status(&d, 0).unwrap().0, "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...");
        let d = deployment(2, 2, 3, json!({"updatedReplicas": 3, "replicas": 4}));
        assert_eq!(deployment_status(&d, 0).unwrap().0, "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...");
        let d = deployment(
            2,
            2,
            3,
            json!({"updatedReplicas": 3, "replicas": 3, "availableReplicas": 1}),
        );
        assert_eq!(deployment_status(&d, 0).unwrap().0, "Waiting for deployment \"web\" rollout to finish: 1 of 3 updated replicas are available...");
        let d = deployment(
            2,
            2,
            3,
            json!({"updatedReplicas": 3, "replicas": 3, "availableReplicas": 3}),
        );
        assert_eq!(
            deployment_status(&d, 0).unwrap(),
            ("deployment \"web\" successfully rolled out".into(), true)
        );
        assert_eq!(
            deployment_status(&d, 5).unwrap_err(),
            "desired revision (5) is different from the running revision (2)".into()
        );
        let d = deployment(
            2,
            2,
            3,
            json!({"conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
        );
        assert_eq!(
            deployment_status(&d, 0).unwrap_err(),
            "deployment \"web\" exceeded its progress deadline".into()
        );
    }

    fn rs(rev: &str, image: &str, cause: Option<&str>) -> Value {
        let mut r = json!({"metadata": {"name": format!("web-{rev}"), "annotations": {REVISION: rev}},
            "spec": {"template": {"metadata": {"labels": {"run": "web", HASH_LABEL: format!("h{rev}")}},
                "spec": {"containers": [{"name": "web", "image": image, "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]}}}});
        if let Some(c) = cause {
            r["metadata"]["annotations"][CHANGE_CAUSE] = json!(c);
        }
        r
    }

    #[test]
    fn history_table_and_template() {
        let rss = [
            rs("10", "a:v2", Some("kubectl set image")),
            rs("2", "a:v1", None),
        ];
        assert_eq!(
            view_history(&rss, 0).unwrap(),
            "REVISION  CHANGE-CAUSE\n2         <none>\n10        kubectl set image\n"
        );
        assert_eq!(view_history(&[], 0).unwrap(), "No rollout history found.");
        assert_eq!(
            view_history(&rss, 3).unwrap_err(),
            "error: unable to find the specified revision".into()
        );
        assert_eq!(
            view_history(&rss, 2).unwrap(),
            "Pod Template:\n  Labels:\tpod-template-hash=h2\n\trun=web\n  Containers:\n   web:\n    Image:\ta:v1\n    Port:\t8080/TCP\n    Host Port:\t0/TCP\n    Environment:\t<none>\n    Mounts:\t<none>\n  Volumes:\t<none>\n  Node-Selectors:\t<none>\n  Tolerations:\t<none>\n"
        );
        assert!(view_history(&rss, 10)
            .unwrap()
            .contains("  Annotations:\tkubernetes.io/change-cause: kubectl set image\n"));
    }

    #[test]
    fn rollback_picks_the_previous_revision_and_keeps_deployment_annotations() {
        let rss = [
            rs("1", "a:v1", None),
            rs("3", "a:v3", None),
            rs("2", "a:v2", None),
        ];
        assert_eq!(name_of(rollback_target(&rss, "web", 0).unwrap()), "web-2");
        assert_eq!(name_of(rollback_target(&rss, "web", 1).unwrap()), "web-1");
        assert_eq!(
            rollback_target(&rss, "web", 9).unwrap_err(),
            "error: unable to find specified revision 9 in history".into()
        );
        assert_eq!(
            rollback_target(&rss[..1], "web", 0).unwrap_err(),
            "error: no rollout history found for deployment \"web\"".into()
        );
        let d = json!({"metadata": {"annotations": {REVISION: "3", "note": "mine"}},
                       "spec": {"template": rss[1]["spec"]["template"]}});
        let mut target = rs("1", "a:v1", Some("first"));
        target["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] = json!("2");
        let p = rollback_patch(&d, &target);
        assert_eq!(p[0]["path"], "/spec/template");
        assert_eq!(p[0]["value"]["metadata"]["labels"], json!({"run": "web"}));
        assert_eq!(p[1]["value"], json!({REVISION: "3", CHANGE_CAUSE: "first"}));
        assert!(equal_ignore_hash(
            &rss[1]["spec"]["template"],
            &json!({"metadata": {"labels": {"run": "web"}, "annotations": {}},
                    "spec": {"containers": [{"name": "web", "image": "a:v3", "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]}})
        ));
        assert!(!equal_ignore_hash(
            &rss[1]["spec"]["template"],
            &rss[0]["spec"]["template"]
        ));
    }

    #[test]
    fn template_details() {
        let t = json!({"metadata": {}, "spec": {"containers": [],
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"},
                            {"operator": "Exists"}, {"key": "a", "value": "b", "tolerationSeconds": 5}]}});
        let text = pod_template(&t);
        assert!(text.contains("  Containers: <none>\n"), "{text}");
        assert!(
            text.ends_with("  Tolerations:\top=Exists\n\ta=b for 5s\n\tk:NoSchedule op=Exists\n"),
            "{text}"
        );
    }
}
