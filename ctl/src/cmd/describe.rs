//! `describe`: objects in kubectl's describe layout, with their events at the bottom.
//!
//! What is fetched follows kubectl 1.32: the object, its events (by involvedObject name,
//! namespace, kind and uid), and what its describer shows beside it (a deployment's replica
//! sets, a replica set's pods, a service's endpoint slices, a node's pods and lease).

use serde_json::Value;

use crate::client::{encode, get_json, query, Ctx, Error, Res};
use crate::describe::{self, arr, st};
use crate::resources::{self, targets, Kind};

#[derive(clap::Args)]
pub struct DescribeArgs {
    /// TYPE [NAME_PREFIX...] | TYPE/NAME...
    args: Vec<String>,
    /// Label selector (e.g. -l key1=value1,key2=value2).
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Describe the objects across all namespaces.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Display the events related to the described object.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    show_events: bool,
    /// Return large lists in chunks (accepted for kubectl compatibility).
    #[arg(long, default_value_t = 500)]
    chunk_size: i64,
}

pub async fn describe(ctx: &Ctx, a: DescribeArgs) -> Res<u8> {
    if a.args.is_empty() {
        return Err("error: You must specify the type of resource to describe. Use \"tkctl api-resources\" for a complete list of supported resources.".into());
    }
    let work = targets(&a.args)?;
    let mut errors: Vec<Error> = Vec::new();
    let mut found: Vec<(&'static Kind, Value)> = Vec::new();
    for (kind, names) in &work {
        if names.is_empty() {
            let ns = (!a.all_namespaces).then_some(ctx.ns.as_str());
            let uri = format!("{}{}", kind.path(ns), query(&a.selector, &None));
            let list = list_all(ctx, &uri).await?;
            found.extend(list.into_iter().map(|o| (*kind, o)));
            continue;
        }
        for name in names {
            let uri = ctx.object_uri(kind, name);
            match get_json(ctx, &uri).await {
                Ok(o) => found.push((kind, o)),
                Err(e) if e.is_not_found() => {
                    let e = Error::not_found(kind, name);
                    // `describe TYPE NAME`: NAME may be a prefix of the names.
                    if a.args.len() == 2 && !a.args[0].contains('/') {
                        return by_prefix(ctx, &a, kind, name, e).await;
                    }
                    errors.push(e);
                }
                Err(e) => errors.push(e),
            }
        }
    }
    let mut first = true;
    for (kind, obj) in &found {
        match describe_one(ctx, kind, obj, a.show_events).await {
            Ok(text) => {
                if first {
                    print!("{text}");
                    first = false;
                } else {
                    print!("\n\n{text}");
                }
            }
            Err(e) => {
                if !errors.contains(&e) {
                    errors.push(e);
                }
            }
        }
    }
    if found.is_empty() && errors.is_empty() {
        if a.all_namespaces {
            eprintln!("No resources found");
        } else {
            eprintln!("No resources found in {} namespace.", ctx.ns);
        }
    }
    for e in &errors {
        eprintln!("{e}");
    }
    Ok(u8::from(!errors.is_empty()))
}

/// kubectl's DescribeMatchingResources: every object whose name starts with `prefix`, each
/// followed by a blank line; the original NotFound when none does.
async fn by_prefix(
    ctx: &Ctx,
    a: &DescribeArgs,
    kind: &'static Kind,
    prefix: &str,
    not_found: Error,
) -> Res<u8> {
    let list = list_all(ctx, &kind.path(Some(&ctx.ns))).await?;
    let mut any = false;
    for obj in &list {
        if st(&obj["metadata"]["name"]).starts_with(prefix) {
            any = true;
            println!("{}", describe_one(ctx, kind, obj, a.show_events).await?);
        }
    }
    if !any {
        return Err(not_found);
    }
    Ok(0)
}

/// The events about an object, fetched with kubectl's field selector (errors give none).
async fn events(ctx: &Ctx, ns: &str, name: &str, kind: Option<&str>, uid: &str) -> Vec<Value> {
    let mut fields = vec![
        format!("involvedObject.name={name}"),
        format!("involvedObject.namespace={ns}"),
    ];
    if let Some(k) = kind.filter(|k| !k.is_empty()) {
        fields.push(format!("involvedObject.kind={k}"));
    }
    if !uid.is_empty() {
        fields.push(format!("involvedObject.uid={uid}"));
    }
    let base = resources::lookup("events").unwrap().path(Some(ns));
    let base = if ns.is_empty() {
        "/api/v1/events".to_string()
    } else {
        base
    };
    let uri = format!(
        "{base}?fieldSelector={}&limit=500",
        encode(&fields.join(","))
    );
    list_all(ctx, &uri).await.unwrap_or_default()
}

/// A list in chunks, following the server's continue tokens as kubectl does.
async fn list_all(ctx: &Ctx, uri: &str) -> Res<Vec<Value>> {
    let mut items = Vec::new();
    let mut next = uri.to_string();
    loop {
        let list = get_json(ctx, &next).await?;
        items.extend(arr(&list["items"]).iter().cloned());
        match list["metadata"]["continue"]
            .as_str()
            .filter(|c| !c.is_empty())
        {
            Some(token) => {
                let sep = if uri.contains('?') { '&' } else { '?' };
                next = format!("{uri}{sep}continue={}", encode(token));
            }
            None => return Ok(items),
        }
    }
}

async fn describe_one(ctx: &Ctx, kind: &Kind, obj: &Value, show_events: bool) -> Res<String> {
    let m = &obj["metadata"];
    let (name, ns, uid) = (st(&m["name"]), st(&m["namespace"]), st(&m["uid"]));
    let ev = |kind: Option<&'static str>| async move {
        if show_events {
            Some(events(ctx, ns, name, kind, uid).await)
        } else {
            None
        }
    };
    Ok(match kind.kind {
        "Pod" => {
            // kubectl drops the kind from a pod's reference; a mirror pod's uid is its source's.
            let uid = match st(&m["annotations"]["kubernetes.io/config.mirror"]) {
                "" => uid,
                mirror => mirror,
            };
            let ev = if show_events {
                Some(events(ctx, ns, name, None, uid).await)
            } else {
                None
            };
            describe::pod(obj, ev.as_deref())
        }
        "Deployment" => {
            let ev = ev(Some("Deployment")).await;
            let (old, new) = replica_sets_of(ctx, obj).await.unwrap_or_default();
            describe::deployment(obj, &old, &new, ev.as_deref())
        }
        "ReplicaSet" => {
            let counts = pod_counts(ctx, obj).await;
            let ev = ev(Some("ReplicaSet")).await;
            describe::replicaset(obj, counts, ev.as_deref())
        }
        "Service" => {
            let uri = format!(
                "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices?labelSelector={}",
                encode(&format!("kubernetes.io/service-name={name}"))
            );
            let slices = get_json(ctx, &uri)
                .await
                .map(|l| arr(&l["items"]).to_vec())
                .unwrap_or_default();
            let ev = ev(Some("Service")).await;
            describe::service(obj, &slices, ev.as_deref())
        }
        "Endpoints" => {
            let ev = ev(Some("Endpoints")).await;
            describe::endpoints(obj, ev.as_deref())
        }
        "Namespace" => {
            let quotas =
                optional_list(ctx, &format!("/api/v1/namespaces/{name}/resourcequotas")).await?;
            let limits =
                optional_list(ctx, &format!("/api/v1/namespaces/{name}/limitranges")).await?;
            describe::namespace(obj, quotas.as_deref(), limits.as_deref())
        }
        "Node" => {
            let fields =
                format!("spec.nodeName={name},status.phase!=Succeeded,status.phase!=Failed");
            let pods = match list_all(
                ctx,
                &format!("/api/v1/pods?fieldSelector={}&limit=500", encode(&fields)),
            )
            .await
            {
                Ok(l) => Some(l),
                Err(e) if e.is_forbidden() => None,
                Err(e) => return Err(e),
            };
            let lease = get_json(
                ctx,
                &format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"),
            )
            .await
            .map_err(|e| e.bare());
            // Events about a node carry its uid (controllers) or its name (the kubelet).
            let ev = if show_events {
                let mut e = events(ctx, "", name, Some("Node"), uid).await;
                e.extend(events(ctx, "", name, Some("Node"), name).await);
                Some(e)
            } else {
                None
            };
            describe::node(obj, pods.as_deref(), lease, ev.as_deref())
        }
        "ConfigMap" => {
            let ev = ev(Some("ConfigMap")).await;
            describe::config_map(obj, ev.as_deref())
        }
        "Secret" => describe::secret(obj),
        "ServiceAccount" => {
            let secrets = list_all(ctx, &format!("/api/v1/namespaces/{ns}/secrets?limit=500"))
                .await
                .ok();
            let ev = ev(Some("ServiceAccount")).await;
            describe::service_account(obj, secrets.as_deref(), ev.as_deref())
        }
        k => {
            let kind_name = st(&obj["kind"]);
            let kind_name = if kind_name.is_empty() { k } else { kind_name };
            let ev = if show_events {
                Some(events(ctx, ns, name, Some(kind_name), uid).await)
            } else {
                None
            };
            describe::generic(obj, ev.as_deref())
        }
    })
}

/// A list the server may not serve at all (None on NotFound, as kubectl does).
async fn optional_list(ctx: &Ctx, uri: &str) -> Res<Option<Vec<Value>>> {
    match get_json(ctx, uri).await {
        Ok(l) => Ok(Some(arr(&l["items"]).to_vec())),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

fn controlled_by(obj: &Value, uid: &str) -> bool {
    arr(&obj["metadata"]["ownerReferences"])
        .iter()
        .any(|r| r["controller"].as_bool() == Some(true) && st(&r["uid"]) == uid)
}

/// The deployment's old and new replica sets: those its selector lists and it controls; the
/// new one is the oldest with the deployment's template.
async fn replica_sets_of(ctx: &Ctx, d: &Value) -> Res<(Vec<Value>, Vec<Value>)> {
    let m = &d["metadata"];
    let sel = describe::format_selector(&d["spec"]["selector"]);
    let mut uri = format!(
        "/apis/apps/v1/namespaces/{}/replicasets",
        st(&m["namespace"])
    );
    if sel != "<none>" {
        uri += &format!("?labelSelector={}&limit=500", encode(&sel));
    }
    let list = list_all(ctx, &uri).await?;
    let mut owned: Vec<Value> = list
        .iter()
        .filter(|rs| controlled_by(rs, st(&m["uid"])))
        .cloned()
        .collect();
    owned.sort_by(|a, b| {
        let t = |v: &Value| describe::parse_time(&v["metadata"]["creationTimestamp"]);
        t(a).cmp(&t(b))
            .then_with(|| st(&a["metadata"]["name"]).cmp(st(&b["metadata"]["name"])))
    });
    let new = owned.iter().position(|rs| {
        tinykube_machinery::template::equal_ignore_hash(
            &rs["spec"]["template"],
            &d["spec"]["template"],
        )
    });
    let new: Vec<Value> = new.map(|i| owned.remove(i)).into_iter().collect();
    Ok((owned, new))
}

/// A replica set's pods by phase (those its selector lists and it controls).
async fn pod_counts(ctx: &Ctx, rs: &Value) -> Result<describe::PodCounts, String> {
    let m = &rs["metadata"];
    let sel = describe::format_selector(&rs["spec"]["selector"]);
    let mut uri = format!("/api/v1/namespaces/{}/pods", st(&m["namespace"]));
    if sel != "<none>" {
        uri += &format!("?labelSelector={}&limit=500", encode(&sel));
    }
    let list = list_all(ctx, &uri).await.map_err(|e| e.bare())?;
    let mut c = (0, 0, 0, 0);
    for p in &list {
        if !controlled_by(p, st(&m["uid"])) {
            continue;
        }
        match st(&p["status"]["phase"]) {
            "Running" => c.0 += 1,
            "Pending" => c.1 += 1,
            "Succeeded" => c.2 += 1,
            "Failed" => c.3 += 1,
            _ => {}
        }
    }
    Ok(c)
}
