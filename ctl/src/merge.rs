//! Client-side apply's three-way merge, sent as a JSON merge patch.
//!
//! kubectl computes a strategic merge patch from (last-applied, new manifest, live object).
//! tinykube's apiserver only takes JSON merge patches, under which a list is replaced whole; so
//! the merged object is computed here, lists with a merge key (containers by name, ports by
//! port and protocol, env by name, ...) merged item by item like the strategic merge would, and
//! the patch is the difference between the live object and that result.

use serde_json::{Map, Value};

/// The annotation holding what `apply` last applied.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

pub use crate::jsonpath::go_json;

/// The manifest as kubectl records and sends it: its annotations (an empty map when it had
/// none, as kubectl leaves it) gain the last-applied annotation, which is the manifest itself
/// without that annotation, as Go's JSON followed by a newline.
pub fn with_last_applied(manifest: &Value) -> Value {
    let mut obj = manifest.clone();
    let Some(o) = obj.as_object_mut() else {
        return obj;
    };
    let meta = o
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    let ann = meta
        .as_object_mut()
        .unwrap()
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !ann.is_object() {
        *ann = Value::Object(Map::new());
    }
    ann.as_object_mut().unwrap().remove(LAST_APPLIED);
    let recorded = format!("{}\n", go_json(&obj));
    obj["metadata"]["annotations"][LAST_APPLIED] = Value::String(recorded);
    obj
}

/// The object after applying `new` over `live`, `last` being what was applied before: fields
/// of `new` set, fields of `last` that `new` no longer has removed, everything else of `live`
/// (fields set by others, defaults, status) kept.
pub fn three_way(live: &Value, last: Option<&Value>, new: &Value) -> Value {
    merge(live, last, new, &[])
}

fn merge(live: &Value, last: Option<&Value>, new: &Value, path: &[&str]) -> Value {
    match (live, new) {
        (Value::Object(l), Value::Object(n)) => {
            let mut out = l.clone();
            let last_map = last.and_then(Value::as_object);
            if let Some(lm) = last_map {
                for k in lm.keys() {
                    if !n.contains_key(k) {
                        out.remove(k);
                    }
                }
            }
            for (k, nv) in n {
                if nv.is_null() {
                    out.remove(k);
                    continue;
                }
                let lastv = last_map.and_then(|m| m.get(k));
                let mut p = path.to_vec();
                p.push(k);
                let merged = match l.get(k) {
                    Some(lv) => merge(lv, lastv, nv, &p),
                    None => strip_nulls(nv),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(n)) => match merge_key(path) {
            Some(key) => merge_list(l, last.and_then(Value::as_array), n, key, path),
            None => strip_nulls(new),
        },
        _ => strip_nulls(new),
    }
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// How the items of a list are told apart: the fields of the key (a missing `protocol`
/// counting as its default TCP).
type MergeKey = &'static [&'static str];

/// The lists that strategic merge patch merges by key, by the field holding them (list
/// indices are not part of `path`).
fn merge_key(path: &[&str]) -> Option<MergeKey> {
    let field = *path.last()?;
    let in_container = path
        .iter()
        .any(|p| matches!(*p, "containers" | "initContainers" | "ephemeralContainers"));
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => &["name"],
        "volumeMounts" => &["mountPath"],
        "volumeDevices" => &["devicePath"],
        "hostAliases" => &["ip"],
        "ownerReferences" => &["uid"],
        "topologySpreadConstraints" => &["topologyKey", "whenUnsatisfiable"],
        "ports" if in_container => &["containerPort", "protocol"],
        "ports" if path.first() == Some(&"spec") => &["port", "protocol"],
        _ => return None,
    })
}

fn key_of(item: &Value, key: MergeKey) -> Option<Vec<Value>> {
    let o = item.as_object()?;
    let first = o.get(key[0]).filter(|v| !v.is_null())?.clone();
    let mut k = vec![first];
    for f in &key[1..] {
        k.push(match (o.get(*f), *f) {
            (Some(v), _) if !v.is_null() => v.clone(),
            (_, "protocol") => Value::from("TCP"),
            _ => Value::Null,
        });
    }
    Some(k)
}

/// A keyed list: the new items in their order, each merged with its live and last-applied
/// counterparts; then live items nobody applied (added by others), kept; live items applied
/// before and now gone from the manifest are dropped.
fn merge_list(
    live: &[Value],
    last: Option<&Vec<Value>>,
    new: &[Value],
    key: MergeKey,
    path: &[&str],
) -> Value {
    let find = |list: &[Value], k: &Option<Vec<Value>>| -> Option<usize> {
        let k = k.as_ref()?;
        list.iter().position(|i| key_of(i, key).as_ref() == Some(k))
    };
    let last: &[Value] = last.map(Vec::as_slice).unwrap_or(&[]);
    let mut used = vec![false; live.len()];
    let mut out = Vec::new();
    for n in new {
        let k = key_of(n, key);
        let last_item = find(last, &k).map(|i| &last[i]);
        match find(live, &k) {
            Some(i) if !used[i] => {
                used[i] = true;
                out.push(merge(&live[i], last_item, n, path));
            }
            _ => out.push(strip_nulls(n)),
        }
    }
    for (i, l) in live.iter().enumerate() {
        if used[i] {
            continue;
        }
        let k = key_of(l, key);
        if k.is_some() && find(last, &k).is_some() {
            continue;
        }
        out.push(l.clone());
    }
    Value::Array(out)
}

/// The JSON merge patch turning `from` into `to` (an empty object when they are equal).
pub fn merge_patch(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(f), Value::Object(t)) => {
            let mut p = Map::new();
            for k in f.keys() {
                if !t.contains_key(k) {
                    p.insert(k.clone(), Value::Null);
                }
            }
            for (k, tv) in t {
                match f.get(k) {
                    Some(fv) if fv == tv => {}
                    Some(fv @ Value::Object(_)) if tv.is_object() => {
                        let sub = merge_patch(fv, tv);
                        if sub.as_object().is_some_and(|m| !m.is_empty()) {
                            p.insert(k.clone(), sub);
                        }
                    }
                    _ => {
                        p.insert(k.clone(), tv.clone());
                    }
                }
            }
            Value::Object(p)
        }
        _ => to.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(image: &str, labels: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns", "labels": labels},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [
                {"name": "web", "image": image, "ports": [{"containerPort": 8080}]}
            ]}}}
        })
    }

    /// The live object: what was applied plus what the server and others added.
    fn live_of(applied: &Value) -> Value {
        let mut live = with_last_applied(applied);
        live["metadata"]["uid"] = json!("u-1");
        live["metadata"]["labels"]["added-by"] = json!("someone");
        live["metadata"]["annotations"]["note"] = json!("kept");
        let c = &mut live["spec"]["template"]["spec"]["containers"][0];
        c["terminationMessagePath"] = json!("/dev/termination-log");
        c["ports"][0]["protocol"] = json!("TCP");
        live["status"] = json!({"replicas": 1});
        live
    }

    fn apply(live: &Value, new: &Value) -> (Value, Value) {
        let last: Option<Value> = live["metadata"]["annotations"][LAST_APPLIED]
            .as_str()
            .map(|s| serde_json::from_str(s).unwrap());
        let result = three_way(live, last.as_ref(), &with_last_applied(new));
        (merge_patch(live, &result), result)
    }

    #[test]
    fn last_applied_is_the_manifest_as_kubectl_writes_it() {
        let m = json!({"kind": "Service", "apiVersion": "v1", "metadata": {"name": "a<b>&"}});
        let out = with_last_applied(&m);
        assert_eq!(
            out["metadata"]["annotations"][LAST_APPLIED],
            "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"annotations\":{},\"name\":\"a\\u003cb\\u003e\\u0026\"}}\n"
        );
        // Recording it again gives the same (the old annotation is not recorded in itself).
        assert_eq!(with_last_applied(&out), out);
    }

    #[test]
    fn unchanged_manifest_gives_an_empty_patch() {
        let m = deployment("v1", json!({"app": "web"}));
        let (patch, _) = apply(&live_of(&m), &m);
        assert_eq!(patch, json!({}));
    }

    #[test]
    fn changed_field_set_and_removed_field_deleted_others_kept() {
        let old = deployment("v1", json!({"app": "web", "tier": "front"}));
        let live = live_of(&old);
        let new = deployment("v2", json!({"app": "web"}));
        let (patch, result) = apply(&live, &new);
        // The label removed from the manifest goes; the one someone else added stays.
        assert_eq!(
            result["metadata"]["labels"],
            json!({"app": "web", "added-by": "someone"})
        );
        assert_eq!(patch["metadata"]["labels"], json!({"tier": null}));
        assert_eq!(result["metadata"]["annotations"]["note"], "kept");
        assert_eq!(result["metadata"]["uid"], "u-1");
        assert_eq!(result["status"], json!({"replicas": 1}));
        // The container is merged by name: its image changes, the defaulted field stays.
        let c = &result["spec"]["template"]["spec"]["containers"];
        assert_eq!(c.as_array().unwrap().len(), 1);
        assert_eq!(c[0]["image"], "v2");
        assert_eq!(c[0]["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(
            c[0]["ports"],
            json!([{"containerPort": 8080, "protocol": "TCP"}])
        );
        assert_eq!(
            patch["spec"]["template"]["spec"]["containers"],
            result["spec"]["template"]["spec"]["containers"]
        );
        assert_eq!(
            patch["metadata"]["annotations"][LAST_APPLIED],
            with_last_applied(&new)["metadata"]["annotations"][LAST_APPLIED]
        );
        assert!(patch.get("status").is_none() && patch["spec"].get("replicas").is_none());
    }

    #[test]
    fn containers_merge_by_name() {
        let two = |second: &str| {
            json!({"spec": {"containers": [
                {"name": "a", "image": "a:1"},
                {"name": second, "image": "x:1"}
            ]}})
        };
        let last = two("b");
        let mut live = last.clone();
        live["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
        live["spec"]["containers"][1]["imagePullPolicy"] = json!("IfNotPresent");
        // Someone else added a sidecar: it is kept; "b" was applied and is replaced by "c".
        live["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "sidecar", "image": "s:1"}));
        let result = three_way(&live, Some(&last), &two("c"));
        assert_eq!(
            result["spec"]["containers"],
            json!([
                {"name": "a", "image": "a:1", "imagePullPolicy": "IfNotPresent"},
                {"name": "c", "image": "x:1"},
                {"name": "sidecar", "image": "s:1"}
            ])
        );
    }

    #[test]
    fn fields_removed_inside_list_items_and_plain_lists_replaced() {
        let last = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "args": ["x", "y"], "env": [{"name": "E", "value": "1"}, {"name": "F", "value": "2"}]}
        ]}});
        let new = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "args": ["z"], "env": [{"name": "F", "value": "3"}]}
        ]}});
        let mut live = last.clone();
        live["spec"]["containers"][0]["env"][1]["extra"] = json!(true);
        let result = three_way(&live, Some(&last), &new);
        let c = &result["spec"]["containers"][0];
        assert_eq!(c["args"], json!(["z"]));
        assert_eq!(
            c["env"],
            json!([{"name": "F", "value": "3", "extra": true}])
        );
    }

    #[test]
    fn service_ports_by_port_and_nulls_delete() {
        let last =
            json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}], "type": "NodePort"}});
        let new = json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}], "type": null}});
        let live = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30001}], "type": "NodePort", "clusterIP": "10.0.0.1"}});
        let result = three_way(&live, Some(&last), &new);
        assert_eq!(
            result,
            json!({"spec": {"ports": [{"port": 80, "targetPort": 9090, "protocol": "TCP", "nodePort": 30001}], "clusterIP": "10.0.0.1"}})
        );
        assert_eq!(
            merge_patch(&live, &result),
            json!({"spec": {"type": null, "ports": result["spec"]["ports"]}})
        );
    }
}
