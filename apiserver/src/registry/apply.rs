//! Server-side apply (`application/apply-patch+yaml`), after structured-merge-diff: each
//! field manager owns the set of fields it applied (`metadata.managedFields`, FieldsV1); an
//! apply sets the fields of its configuration, removes the ones its manager applied before and
//! no longer does (unless another manager owns them), and fails with a conflict when it would
//! change a field another manager owns, unless forced, which takes the field over.
//!
//! The schema is Kubernetes' own, through the protobuf descriptors: objects by field,
//! `+listType=map` lists merged by their `+listMapKey`s (`k:{"name":"web"}`), `+listType=set`
//! lists as sets (`v:"a"`), every other list atomic.
//!
//! Writes that are not applies record what they changed too (operation `Update`,
//! [`record_update`]), when they name a field manager, as kubectl always does; so an apply
//! conflicts with `kubectl scale` or `edit` as it does on Kubernetes.

use std::collections::BTreeSet;

use prost_reflect::{Kind, MessageDescriptor};
use serde_json::{json, Map, Value};

use crate::protobuf;

/// A path to a field: `f:spec`, `k:{"name":"web"}`, `v:"a"`, and `.` for a list element itself.
type Path = Vec<String>;

/// How a value is merged and owned.
#[derive(Clone)]
enum Schema {
    /// An object of fields (None: no descriptor knows it; its fields are then atomic leaves).
    Struct(Option<MessageDescriptor>),
    /// A map (labels, resource lists): each key a field of its own.
    Map,
    /// A list of objects keyed by these fields.
    Keyed(Vec<String>, Option<MessageDescriptor>),
    Set,
    Atomic,
}

/// The fields apply leaves out of every set: identity and what the server owns.
const IGNORED: &[&[&str]] = &[
    &["f:apiVersion"],
    &["f:kind"],
    &["f:status"],
    &["f:metadata", "f:name"],
    &["f:metadata", "f:namespace"],
    &["f:metadata", "f:uid"],
    &["f:metadata", "f:resourceVersion"],
    &["f:metadata", "f:generation"],
    &["f:metadata", "f:creationTimestamp"],
    &["f:metadata", "f:deletionTimestamp"],
    &["f:metadata", "f:managedFields"],
    &["f:metadata", "f:selfLink"],
];

fn child_schema(parent: &Schema, key: &str) -> Schema {
    let Schema::Struct(Some(desc)) = parent else {
        return Schema::Atomic;
    };
    let Some(field) = protobuf::field_by_json(desc, key) else {
        return Schema::Atomic;
    };
    let message = match field.kind() {
        Kind::Message(m) if protobuf::is_object(&m) => Some(m),
        _ => None,
    };
    let markers = protobuf::schema::markers(&field);
    if field.is_map() {
        return match markers["mapType"].as_str() {
            Some("atomic") => Schema::Atomic,
            _ => Schema::Map,
        };
    }
    if field.is_list() {
        return match markers["listType"].as_str() {
            Some("map") => Schema::Keyed(
                markers["listMapKeys"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|k| k.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
                message,
            ),
            Some("set") => Schema::Set,
            _ => Schema::Atomic,
        };
    }
    match message {
        // `+structType=atomic` types (a LabelSelector) are owned and replaced whole.
        Some(m) if protobuf::schema::type_markers(&m)["structType"] == "atomic" => Schema::Atomic,
        Some(m) => Schema::Struct(Some(m)),
        None => Schema::Atomic,
    }
}

/// `k:{"name":"web"}` for a keyed list element (keys in name order, as FieldsV1 writes them).
fn key_of(item: &Value, keys: &[String]) -> String {
    let mut k = Map::new();
    let mut sorted = keys.to_vec();
    sorted.sort();
    for key in sorted {
        if let Some(v) = item.get(&key) {
            k.insert(key, v.clone());
        }
    }
    format!("k:{}", Value::Object(k))
}

/// The fields a value sets.
fn collect(v: &Value, schema: &Schema, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    match (schema, v) {
        (Schema::Struct(_) | Schema::Map, Value::Object(obj)) => {
            for (k, child) in obj {
                if child.is_null() {
                    continue;
                }
                prefix.push(format!("f:{k}"));
                if !IGNORED.iter().any(|p| p.iter().eq(prefix.iter())) {
                    let s = match schema {
                        Schema::Map => Schema::Atomic,
                        s => child_schema(s, k),
                    };
                    let leaf = matches!(s, Schema::Atomic)
                        || child.as_object().is_some_and(Map::is_empty)
                        || child.as_array().is_some_and(Vec::is_empty);
                    if leaf {
                        out.insert(prefix.clone());
                    } else {
                        collect(child, &s, prefix, out);
                    }
                }
                prefix.pop();
            }
        }
        (Schema::Keyed(keys, desc), Value::Array(items)) => {
            for item in items {
                prefix.push(key_of(item, keys));
                prefix.push(".".into());
                out.insert(prefix.clone());
                prefix.pop();
                collect(item, &Schema::Struct(desc.clone()), prefix, out);
                prefix.pop();
            }
        }
        (Schema::Set, Value::Array(items)) => {
            for item in items {
                prefix.push(format!("v:{item}"));
                out.insert(prefix.clone());
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// Whether a list element is the one a `k:{...}` or `v:...` step names.
fn is_element(step: &str, item: &Value) -> bool {
    if let Some(k) = step.strip_prefix("k:") {
        serde_json::from_str::<Map<String, Value>>(k)
            .is_ok_and(|want| want.iter().all(|(wk, wv)| item.get(wk) == Some(wv)))
    } else if let Some(x) = step.strip_prefix("v:") {
        serde_json::from_str::<Value>(x).is_ok_and(|want| *item == want)
    } else {
        false
    }
}

/// The value a path names in `v`.
fn lookup<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for step in path.iter().filter(|s| *s != ".") {
        cur = match step.strip_prefix("f:") {
            Some(k) => cur.get(k)?,
            None => cur.as_array()?.iter().find(|e| is_element(step, e))?,
        };
    }
    Some(cur)
}

fn lookup_mut<'a>(v: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut cur = v;
    for step in path.iter().filter(|s| *s != ".") {
        cur = match step.strip_prefix("f:") {
            Some(k) => cur.get_mut(k)?,
            None => cur
                .as_array_mut()?
                .iter_mut()
                .find(|e| is_element(step, e))?,
        };
    }
    Some(cur)
}

/// Removes what a path names from `v`: a field, or (`k:`/`v:`, with or without the trailing
/// `.`) a list element.
fn remove(v: &mut Value, path: &[String]) {
    let (parent, last) = match path {
        [p @ .., element, dot] if dot == "." => (p, element),
        [p @ .., last] => (p, last),
        [] => return,
    };
    let Some(container) = lookup_mut(v, parent) else {
        return;
    };
    match last.strip_prefix("f:") {
        Some(k) => {
            if let Some(o) = container.as_object_mut() {
                o.remove(k);
            }
        }
        None => {
            if let Some(list) = container.as_array_mut() {
                list.retain(|e| !is_element(last, e));
            }
        }
    }
}

/// Merges an applied configuration into the live object.
fn merge(live: &mut Value, applied: &Value, schema: &Schema) {
    if let (Schema::Struct(_) | Schema::Map, Some(obj), Value::Object(a)) =
        (schema, live.as_object_mut(), applied)
    {
        for (k, av) in a {
            if av.is_null() {
                continue;
            }
            let s = match schema {
                Schema::Map => Schema::Atomic,
                s => child_schema(s, k),
            };
            match obj.get_mut(k) {
                Some(lv) => merge(lv, av, &s),
                None => {
                    obj.insert(k.clone(), av.clone());
                }
            }
        }
        return;
    }
    match (schema, live.as_array_mut(), applied) {
        (Schema::Keyed(keys, desc), Some(list), Value::Array(items)) => {
            for item in items {
                match list.iter_mut().find(|e| same_element(e, item, keys)) {
                    Some(e) => merge(e, item, &Schema::Struct(desc.clone())),
                    None => list.push(item.clone()),
                }
            }
        }
        (Schema::Set, Some(list), Value::Array(items)) => {
            for item in items {
                if !list.contains(item) {
                    list.push(item.clone());
                }
            }
        }
        _ => *live = applied.clone(),
    }
}

/// Whether two elements of a keyed list are one: equal in every key both have (an applied
/// configuration may leave a key to its default, as a port its protocol).
fn same_element(a: &Value, b: &Value, keys: &[String]) -> bool {
    let mut shared = 0;
    for k in keys {
        match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x != y => return false,
            (Some(_), Some(_)) => shared += 1,
            _ => {}
        }
    }
    shared > 0
}

/// FieldsV1: the set as nested objects, `{}` at each member.
fn to_fields_v1(set: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for step in path {
            node = node
                .entry(step.clone())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("an object");
        }
    }
    Value::Object(root)
}

fn from_fields_v1(v: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    let Some(obj) = v.as_object() else { return };
    for (k, child) in obj {
        prefix.push(k.clone());
        if child.as_object().is_some_and(Map::is_empty) {
            out.insert(prefix.clone());
        } else {
            from_fields_v1(child, prefix, out);
        }
        prefix.pop();
    }
}

/// `.spec.template.spec.containers[name="web"].image`, as conflicts name fields.
fn display(path: &Path) -> String {
    let mut s = String::new();
    for step in path {
        if let Some(f) = step.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = step.strip_prefix("k:") {
            let keys: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let inner: Vec<String> = keys.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("[{}]", inner.join(",")));
        } else if let Some(v) = step.strip_prefix("v:") {
            s.push_str(&format!("[{v}]"));
        }
    }
    s
}

/// An apply that would change fields other managers own.
#[derive(Debug, PartialEq)]
pub struct Conflicts(pub Vec<(String, String)>);

impl Conflicts {
    /// Kubernetes' words: `Apply failed with 1 conflict: conflict with "a": .spec.replicas`,
    /// or, for several, the fields under each manager in order.
    pub fn message(&self) -> String {
        if let [(manager, field)] = &self.0[..] {
            return format!("Apply failed with 1 conflict: conflict with {manager}: {field}");
        }
        let mut managers: Vec<&String> = self.0.iter().map(|(m, _)| m).collect();
        managers.sort();
        managers.dedup();
        let mut lines = Vec::new();
        for m in managers {
            lines.push(format!("conflicts with {m}:"));
            lines.extend(
                self.0
                    .iter()
                    .filter(|(o, _)| o == m)
                    .map(|(_, f)| format!("- {f}")),
            );
        }
        format!(
            "Apply failed with {} conflicts: {}",
            self.0.len(),
            lines.join("\n")
        )
    }
}

struct Entry {
    manager: String,
    operation: String,
    fields: BTreeSet<Path>,
    rest: Value,
}

impl Entry {
    /// How a conflict names the manager: `"a"`, or for an update
    /// `"kubectl-scale" using apps/v1 at 2026-12-07T09:00:00Z`.
    fn display(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if let Some(sub) = self.rest["subresource"].as_str().filter(|s| !s.is_empty()) {
            s.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == "Update" {
            s.push_str(&format!(
                " using {}",
                self.rest["apiVersion"].as_str().unwrap_or("")
            ));
            if let Some(t) = self.rest["time"].as_str() {
                s.push_str(&format!(" at {t}"));
            }
        }
        s
    }
}

fn entries(live: &Value) -> Vec<Entry> {
    live["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let mut fields = BTreeSet::new();
            from_fields_v1(&e["fieldsV1"], &mut Vec::new(), &mut fields);
            Entry {
                manager: e["manager"].as_str().unwrap_or("").to_string(),
                operation: e["operation"].as_str().unwrap_or("").to_string(),
                fields,
                rest: e.clone(),
            }
        })
        .collect()
}

/// The managed fields after a write by `manager` that is not an apply: the fields whose value
/// it set or changed become its own (operation `Update`) and no one else's; fields it removed
/// are no one's. None when it changed nothing.
pub fn record_update(old: Option<&Value>, new: &Value, manager: &str, now: &str) -> Option<Value> {
    let api_version = new["apiVersion"].as_str().unwrap_or("");
    let schema = Schema::Struct(protobuf::message_for(
        api_version,
        new["kind"].as_str().unwrap_or(""),
    ));
    let mut after = BTreeSet::new();
    collect(new, &schema, &mut Vec::new(), &mut after);
    let mut before = BTreeSet::new();
    if let Some(old) = old {
        collect(old, &schema, &mut Vec::new(), &mut before);
    }
    let changed: BTreeSet<Path> = after
        .iter()
        .filter(|p| !before.contains(*p) || old.and_then(|o| lookup(o, p)) != lookup(new, p))
        .cloned()
        .collect();
    let removed: BTreeSet<&Path> = before.difference(&after).collect();
    if changed.is_empty() && removed.is_empty() {
        return None;
    }
    let mut managers = entries(new);
    let mine = |e: &Entry| e.manager == manager && e.operation == "Update";
    if !managers.iter().any(mine) {
        managers.push(Entry {
            manager: manager.to_string(),
            operation: "Update".into(),
            fields: BTreeSet::new(),
            rest: json!({"manager": manager, "operation": "Update", "apiVersion": api_version,
                         "fieldsType": "FieldsV1"}),
        });
    }
    for e in &mut managers {
        e.fields.retain(|p| !removed.contains(p));
        if mine(e) {
            e.fields.extend(changed.iter().cloned());
            e.rest["time"] = now.into();
        } else {
            e.fields.retain(|p| !changed.contains(p));
        }
    }
    Some(Value::Array(
        managers
            .into_iter()
            .filter(|e| !e.fields.is_empty())
            .map(|e| {
                let mut v = e.rest;
                v["fieldsV1"] = to_fields_v1(&e.fields);
                v
            })
            .collect(),
    ))
}

/// Applies `config` for `manager` to `live` (None: the object does not exist yet), at `now`.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, Conflicts> {
    let api_version = config["apiVersion"].as_str().unwrap_or("");
    let desc = protobuf::message_for(api_version, config["kind"].as_str().unwrap_or(""));
    let schema = Schema::Struct(desc);
    let mut applied = BTreeSet::new();
    collect(config, &schema, &mut Vec::new(), &mut applied);

    let mut object = live.cloned().unwrap_or_else(|| json!({}));
    let mut managers = entries(&object);
    let mine = |e: &Entry| e.manager == manager && e.operation == "Apply";
    let previous = managers
        .iter()
        .find(|e| mine(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();

    let mut conflicts = Vec::new();
    for e in managers.iter_mut().filter(|e| !mine(e)) {
        let clashing: Vec<Path> = applied
            .iter()
            .filter(|p| e.fields.contains(*p) && p.last().is_some_and(|s| s != "."))
            .filter(|p| lookup(&object, p) != lookup(config, p))
            .cloned()
            .collect();
        if force {
            for p in &clashing {
                e.fields.remove(p);
            }
        } else {
            let who = e.display();
            conflicts.extend(clashing.iter().map(|p| (who.clone(), display(p))));
        }
    }
    if !conflicts.is_empty() {
        return Err(Conflicts(conflicts));
    }

    // What this manager applied before and no longer does goes, unless someone else owns it.
    let others: BTreeSet<&Path> = managers
        .iter()
        .filter(|e| !mine(e))
        .flat_map(|e| e.fields.iter())
        .collect();
    let mut gone: Vec<&Path> = previous
        .iter()
        .filter(|p| !applied.contains(*p))
        .filter(|p| {
            let owned_below = |o: &&Path| {
                o.starts_with(&p[..p.len() - usize::from(p.last().is_some_and(|s| s == "."))])
            };
            !others.iter().any(owned_below)
        })
        .collect();
    gone.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in gone {
        remove(&mut object, p);
    }
    merge(&mut object, config, &schema);

    let mut managed: Vec<Value> = managers
        .into_iter()
        .filter(|e| !mine(e) && !e.fields.is_empty())
        .map(|e| {
            let mut v = e.rest;
            v["fieldsV1"] = to_fields_v1(&e.fields);
            v
        })
        .collect();
    if !applied.is_empty() {
        managed.push(json!({
            "manager": manager,
            "operation": "Apply",
            "apiVersion": api_version,
            "time": now,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(&applied),
        }));
    }
    object["metadata"]["managedFields"] = Value::Array(managed);
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-12-07T09:00:00Z";

    fn config(replicas: u32, image: &str, extra_label: bool) -> Value {
        let mut labels = json!({"app": "web"});
        if extra_label {
            labels["tier"] = json!("front");
        }
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": image,
                                                           "ports": [{"containerPort": 80}]}]}}}
        })
    }

    #[test]
    fn the_field_set_is_what_kubernetes_records() {
        let obj = apply(None, &config(1, "web:1", false), "a", false, NOW).unwrap();
        let entry = &obj["metadata"]["managedFields"][0];
        assert_eq!(entry["manager"], "a");
        assert_eq!(entry["operation"], "Apply");
        assert_eq!(entry["fieldsType"], "FieldsV1");
        assert_eq!(
            entry["fieldsV1"],
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:replicas": {}, "f:selector": {},
                           "f:template": {"f:metadata": {"f:labels": {"f:app": {}}},
                                          "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                                              ".": {}, "f:image": {}, "f:name": {},
                                              "f:ports": {"k:{\"containerPort\":80}": {".": {}, "f:containerPort": {}}}}}}}}
            })
        );
    }

    #[test]
    fn an_update_owns_what_it_changed_and_an_apply_then_conflicts() {
        let live = apply(None, &config(1, "web:1", false), "a", false, NOW).unwrap();
        // `kubectl scale` (an Update by kubectl-scale) changes replicas.
        let mut scaled = live.clone();
        scaled["spec"]["replicas"] = json!(5);
        let managed = record_update(Some(&live), &scaled, "kubectl-scale", NOW).unwrap();
        let by = |m: &str| {
            managed
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["manager"] == m)
                .cloned()
        };
        assert_eq!(
            by("kubectl-scale").unwrap()["fieldsV1"],
            json!({"f:spec": {"f:replicas": {}}})
        );
        assert_eq!(by("kubectl-scale").unwrap()["operation"], "Update");
        assert!(by("a").unwrap()["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_none());
        scaled["metadata"]["managedFields"] = managed;
        let err = apply(Some(&scaled), &config(1, "web:1", false), "a", false, NOW).unwrap_err();
        assert_eq!(
            err.message(),
            "Apply failed with 1 conflict: conflict with \"kubectl-scale\" using apps/v1 at 2026-12-07T09:00:00Z: .spec.replicas"
        );
        // Nothing changed: nothing recorded.
        assert_eq!(record_update(Some(&scaled), &scaled, "x", NOW), None);
    }

    #[test]
    fn conflicts_force_and_removal() {
        let live = apply(None, &config(1, "web:1", true), "a", false, NOW).unwrap();
        // b sets the same replicas: no conflict, both own it.
        let live = apply(
            Some(&live),
            &json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}, "spec": {"replicas": 1}}),
            "b",
            false,
            NOW,
        )
        .unwrap();
        // b changes it: a conflict with a.
        let change = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}, "spec": {"replicas": 3}});
        let err = apply(Some(&live), &change, "b", false, NOW).unwrap_err();
        assert_eq!(
            err.message(),
            "Apply failed with 1 conflict: conflict with \"a\": .spec.replicas"
        );
        let forced = apply(Some(&live), &change, "b", true, NOW).unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        let a = &forced["metadata"]["managedFields"][0];
        assert_eq!(a["manager"], "a");
        assert!(
            a["fieldsV1"]["f:spec"].get("f:replicas").is_none(),
            "b took it over"
        );
        // a applies without its label and without replicas: the label goes, the replicas
        // (b's now) stay, the image changes.
        let mut next = config(1, "web:2", false);
        next["spec"].as_object_mut().unwrap().remove("replicas");
        let out = apply(Some(&forced), &next, "a", false, NOW).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(out["spec"]["replicas"], 3);
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"],
            "web:2"
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
            80
        );
    }
}
