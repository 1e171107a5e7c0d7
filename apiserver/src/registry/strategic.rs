//! Strategic merge patch (`application/strategic-merge-patch+json`), applied as
//! k8s.io/apimachinery's strategicpatch applies it: a JSON merge patch in which lists whose Go
//! field says `+patchStrategy=merge` are merged (by `+patchMergeKey` for lists of objects, as a
//! set for lists of scalars) instead of replaced, with the directives `$patch`
//! (replace/merge/delete), `$retainKeys`, `$setElementOrder/<field>` and
//! `$deleteFromPrimitiveList/<field>`. The markers come from Kubernetes' own .proto comments
//! (see protobuf::patch_meta), and fields are found through the same descriptors as protobuf.

use std::collections::{HashMap, HashSet};

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value};

use crate::protobuf;

/// `patch` applied to `original` (an object with its apiVersion and kind).
pub fn apply(original: &Value, patch: &Value) -> Result<Value, String> {
    let Value::Object(patch) = patch else {
        return Err("a strategic merge patch must be a JSON object".into());
    };
    let schema = protobuf::message_for(
        original["apiVersion"].as_str().unwrap_or(""),
        original["kind"].as_str().unwrap_or(""),
    );
    let original = original.as_object().cloned().unwrap_or_default();
    Ok(Value::Object(
        merge_map(original, patch, schema.as_ref())?.unwrap_or_default(),
    ))
}

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// The patch without its directives.
fn without_directives(patch: &Map<String, Value>) -> Map<String, Value> {
    patch
        .iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Merges a patch object into an object whose fields `schema` describes (None: free-form).
/// None when the patch deletes the object (`$patch: delete`).
fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    schema: Option<&MessageDescriptor>,
) -> Result<Option<Map<String, Value>>, String> {
    match patch.get(PATCH).map(|v| v.as_str()) {
        None | Some(Some("merge")) => {}
        Some(Some("replace")) => return Ok(Some(without_directives(patch))),
        Some(Some("delete")) => return Ok(None),
        Some(other) => return Err(format!("Unknown patch type: {other:?}")),
    }
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let keep: Vec<&str> = retain
            .as_array()
            .ok_or("$retainKeys must be a list of field names")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        original.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (key, values) in patch {
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let gone: HashSet<String> =
                values.as_array().into_iter().flatten().map(ident).collect();
            if let Some(Value::Array(list)) = original.get_mut(field) {
                list.retain(|v| !gone.contains(&ident(v)));
            }
        }
    }
    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        if value.is_null() {
            original.remove(key);
            continue;
        }
        let field = schema.and_then(|d| protobuf::field_by_json(d, key));
        match merge_value(original.remove(key), value, field.as_ref())? {
            Some(v) => {
                original.insert(key.clone(), v);
            }
            None => {
                original.remove(key);
            }
        }
    }
    for (key, order) in patch {
        if let Some(name) = key.strip_prefix(SET_ELEMENT_ORDER) {
            let field = schema.and_then(|d| protobuf::field_by_json(d, name));
            let merge_key = field
                .as_ref()
                .and_then(|f| protobuf::patch_meta(f).merge_key);
            if let (Some(Value::Array(list)), Value::Array(order)) = (original.get_mut(name), order)
            {
                reorder(list, order, merge_key.as_deref());
            }
        }
    }
    Ok(Some(original))
}

/// The message type of a field's values, when they are objects of fields.
fn element_schema(field: Option<&FieldDescriptor>) -> Option<MessageDescriptor> {
    match field?.kind() {
        Kind::Message(m) if protobuf::is_object(&m) => Some(m),
        _ => None,
    }
}

fn merge_value(
    original: Option<Value>,
    patch: &Value,
    field: Option<&FieldDescriptor>,
) -> Result<Option<Value>, String> {
    match patch {
        Value::Object(p) => {
            let opaque = field.is_some_and(|f| {
                !f.is_map() && matches!(f.kind(), Kind::Message(ref m) if !protobuf::is_object(m))
            });
            if opaque {
                // A Quantity, a Time, embedded JSON: the patch's value is the value.
                return Ok(Some(patch.clone()));
            }
            // A proto map (labels, resource lists) merges key by key, free-form.
            let schema = match field {
                Some(f) if f.is_map() => None,
                f => element_schema(f),
            };
            let original = match original {
                Some(Value::Object(o)) => o,
                _ => Map::new(),
            };
            Ok(merge_map(original, p, schema.as_ref())?.map(Value::Object))
        }
        Value::Array(p) => {
            let original = match original {
                Some(Value::Array(a)) => a,
                _ => Vec::new(),
            };
            let meta = field.map(protobuf::patch_meta).unwrap_or_default();
            merge_list(original, p, &meta, element_schema(field).as_ref()).map(Some)
        }
        scalar => Ok(Some(scalar.clone())),
    }
}

/// A list value as it is written when it replaces: elements lose their directives.
fn replaced(patch: &[Value]) -> Value {
    Value::Array(
        patch
            .iter()
            .filter(|e| e.get(PATCH).is_none())
            .map(|e| match e {
                Value::Object(m) => Value::Object(without_directives(m)),
                other => other.clone(),
            })
            .collect(),
    )
}

/// A JSON value as a map key (merge keys and set elements are compared by value).
fn ident(v: &Value) -> String {
    v.to_string()
}

fn merge_list(
    original: Vec<Value>,
    patch: &[Value],
    meta: &protobuf::PatchMeta,
    schema: Option<&MessageDescriptor>,
) -> Result<Value, String> {
    if !meta.has("merge")
        || patch
            .iter()
            .any(|e| e.get(PATCH) == Some(&"replace".into()))
    {
        return Ok(replaced(patch));
    }
    let Some(key) = meta.merge_key.as_deref() else {
        // A set of scalars.
        let mut out = original;
        let mut seen: HashSet<String> = out.iter().map(ident).collect();
        for v in patch {
            if seen.insert(ident(v)) {
                out.push(v.clone());
            }
        }
        return Ok(Value::Array(out));
    };
    // Indexed by merge key, so a long list costs one pass, not one pass per element.
    let mut slots: Vec<Option<Value>> = original.into_iter().map(Some).collect();
    let mut index: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, e) in slots.iter().enumerate() {
        if let Some(k) = e.as_ref().and_then(|e| e.get(key)) {
            index.entry(ident(k)).or_default().push(i);
        }
    }
    for element in patch {
        let Value::Object(p) = element else {
            return Err(format!(
                "the list merged by {key:?} can only hold objects, got {element}"
            ));
        };
        let id =
            ident(p.get(key).ok_or_else(|| {
                format!("map: {element} does not contain declared merge key: {key}")
            })?);
        if p.get(PATCH) == Some(&"delete".into()) {
            for i in index.remove(&id).unwrap_or_default() {
                slots[i] = None;
            }
            continue;
        }
        match index.get(&id).and_then(|at| at.first()).copied() {
            Some(i) => {
                let current = match slots[i].take() {
                    Some(Value::Object(o)) => o,
                    _ => Map::new(),
                };
                slots[i] = merge_map(current, p, schema)?.map(Value::Object);
            }
            None => {
                if let Some(m) = merge_map(Map::new(), p, schema)? {
                    index.entry(id).or_default().push(slots.len());
                    slots.push(Some(Value::Object(m)));
                }
            }
        }
    }
    Ok(Value::Array(slots.into_iter().flatten().collect()))
}

/// `$setElementOrder`: the elements it names in its order; the others (which only the server
/// had) after them, in their own order.
fn reorder(list: &mut [Value], order: &[Value], key: Option<&str>) {
    let id = |e: &Value| match key {
        Some(k) => e.get(k).map(ident),
        None => Some(ident(e)),
    };
    let positions: HashMap<String, usize> = order
        .iter()
        .enumerate()
        .filter_map(|(i, o)| id(o).map(|k| (k, i)))
        .collect();
    list.sort_by_key(|e| {
        id(e)
            .and_then(|k| positions.get(&k).copied())
            .unwrap_or(usize::MAX)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"},
                         "finalizers": ["a", "b"]},
            "spec": {"replicas": 1,
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [
                                      {"name": "web", "image": "web:1",
                                       "ports": [{"containerPort": 80}, {"containerPort": 81}],
                                       "env": [{"name": "A", "value": "1"}]},
                                      {"name": "log", "image": "log:1"}],
                                           "volumes": [{"name": "data", "emptyDir": {}}]}}}
        })
    }

    #[test]
    fn set_image_merges_the_container_by_name() {
        // What `kubectl set image deployment/web web=web:2` sends.
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}});
        let out = apply(&deployment(), &patch).unwrap();
        let containers = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers.as_array().unwrap().len(), 2);
        assert_eq!(containers[0]["image"], "web:2");
        assert_eq!(
            containers[0]["env"][0]["value"], "1",
            "the rest of the container stays"
        );
        assert_eq!(containers[1]["image"], "log:1");
        // A merge patch would have replaced the list.
        let mut merged = deployment();
        json_patch::merge(&mut merged, &patch);
        assert_eq!(
            merged["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn directives() {
        let patch = json!({
            "metadata": {"labels": {"tier": null}, "$deleteFromPrimitiveList/finalizers": ["a"]},
            "spec": {
                "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
                "template": {"spec": {
                    "$setElementOrder/containers": [{"name": "log"}, {"name": "web"}],
                    "containers": [
                        {"name": "web", "ports": [{"containerPort": 82}],
                         "env": [{"name": "A", "$patch": "delete"}, {"name": "B", "value": "2"}]}],
                    "volumes": [{"$patch": "replace"}, {"name": "cache", "emptyDir": {}}]}}}
        });
        let out = apply(&deployment(), &patch).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        let spec = &out["spec"]["template"]["spec"];
        assert_eq!(spec["containers"][0]["name"], "log");
        let web = &spec["containers"][1];
        assert_eq!(
            web["ports"],
            json!([{"containerPort": 80}, {"containerPort": 81}, {"containerPort": 82}])
        );
        assert_eq!(web["env"], json!([{"name": "B", "value": "2"}]));
        assert_eq!(spec["volumes"], json!([{"name": "cache", "emptyDir": {}}]));
    }

    #[test]
    fn lists_without_a_strategy_are_replaced_and_opaque_values_set() {
        let original = json!({"apiVersion": "v1", "kind": "Pod",
            "spec": {"containers": [{"name": "c", "args": ["a", "b"],
                                     "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}],
                     "tolerations": [{"key": "x"}]}});
        let patch = json!({"spec": {"containers": [{"name": "c", "args": ["z"],
                                                    "resources": {"limits": {"cpu": "2"}}}],
                                    "tolerations": [{"key": "y"}]}});
        let out = apply(&original, &patch).unwrap();
        assert_eq!(out["spec"]["containers"][0]["args"], json!(["z"]));
        assert_eq!(
            out["spec"]["containers"][0]["resources"]["limits"],
            json!({"cpu": "2", "memory": "1Gi"})
        );
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "y"}]));
    }

    #[test]
    fn delete_removes_every_element_with_the_key_and_long_lists_are_cheap() {
        let original = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [
            {"name": "c", "env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"},
                                  {"name": "B", "value": "3"}]}]}});
        let patch = json!({"spec": {"containers": [{"name": "c", "env": [{"name": "A", "$patch": "delete"}]}]}});
        let out = apply(&original, &patch).unwrap();
        assert_eq!(
            out["spec"]["containers"][0]["env"],
            json!([{"name": "B", "value": "3"}])
        );

        let env: Vec<Value> = (0..50_000)
            .map(|i| json!({"name": format!("V{i}"), "value": "x"}))
            .collect();
        let order: Vec<Value> = (0..50_000)
            .rev()
            .map(|i| json!({"name": format!("V{i}")}))
            .collect();
        let big = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "c", "env": env}]}});
        let patch = json!({"spec": {"containers": [{"name": "c", "$setElementOrder/env": order, "env": env}]}});
        let out = apply(&big, &patch).unwrap();
        assert_eq!(out["spec"]["containers"][0]["env"][0]["name"], "V49999");
        assert_eq!(out["spec"]["containers"][0]["env"][49_999]["name"], "V0");
    }

    #[test]
    fn inline_fields_and_bad_patches() {
        // A volume's source is an inline embedding: its keys are the volume's own.
        let original = json!({"apiVersion": "v1", "kind": "Pod",
            "spec": {"volumes": [{"name": "v", "configMap": {"name": "a", "defaultMode": 420}}]}});
        let patch = json!({"spec": {"volumes": [{"name": "v", "configMap": {"name": "b"}}]}});
        let out = apply(&original, &patch).unwrap();
        assert_eq!(
            out["spec"]["volumes"][0]["configMap"],
            json!({"name": "b", "defaultMode": 420})
        );
        let missing_key = json!({"spec": {"volumes": [{"configMap": {"name": "b"}}]}});
        assert!(apply(&original, &missing_key)
            .unwrap_err()
            .contains("does not contain declared merge key: name"));
        assert!(apply(&original, &json!([1])).is_err());
        assert!(apply(&original, &json!({"$patch": "explode"})).is_err());
    }
}
