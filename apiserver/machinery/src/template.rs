//! Pod-template equality as the Deployment controller and `kubectl rollout` decide it
//! (`deploymentutil.EqualIgnoreHash`): two templates are the same when they differ only in
//! the `pod-template-hash` label, compared as `apiequality.Semantic.DeepEqual` compares —
//! an absent field, a null, an empty list and an empty map are alike, and resource
//! quantities are compared by value (`1Gi` is `1024Mi`, `0.5` is `500m`).

use serde_json::Value;

use crate::quantity::Quantity;

/// The label the Deployment controller adds to a ReplicaSet's template and selector.
pub const HASH_LABEL: &str = "pod-template-hash";

/// Fields whose values are maps of resource quantities.
const QUANTITY_MAPS: &[&str] = &["limits", "requests", "overhead", "capacity", "allocatable"];
/// Fields whose value is one quantity.
const QUANTITY_FIELDS: &[&str] = &["sizeLimit"];

/// `v` as Semantic.DeepEqual sees it: no nulls, no empty lists or maps, quantities canonical.
fn normal(v: &Value, key: Option<&str>) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Object(m) => {
            let quantities = key.is_some_and(|k| QUANTITY_MAPS.contains(&k));
            let out: serde_json::Map<String, Value> = m
                .iter()
                .filter_map(|(k, v)| {
                    let v = if quantities {
                        canonical_quantity(v)
                    } else {
                        normal(v, Some(k))?
                    };
                    Some((k.clone(), v))
                })
                .collect();
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(a) => (!a.is_empty()).then(|| {
            Value::Array(
                a.iter()
                    .map(|v| normal(v, None).unwrap_or(Value::Null))
                    .collect(),
            )
        }),
        other if key.is_some_and(|k| QUANTITY_FIELDS.contains(&k)) => {
            Some(canonical_quantity(other))
        }
        other => Some(other.clone()),
    }
}

fn canonical_quantity(v: &Value) -> Value {
    let parsed = match v {
        Value::String(s) => Quantity::parse(s).ok(),
        Value::Number(n) => Quantity::parse(&n.to_string()).ok(),
        _ => None,
    };
    match parsed {
        // By value: the nano-units, whatever the format.
        Some(q) => Value::String(format!("{}n", q.nanos())),
        None => v.clone(),
    }
}

fn without_hash(template: &Value) -> Option<Value> {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
    }
    normal(&t, None)
}

/// Whether pod templates `a` and `b` (as JSON) are the same but for `pod-template-hash`.
pub fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    without_hash(a) == without_hash(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(labels: Value, container: Value) -> Value {
        json!({"metadata": {"labels": labels}, "spec": {"containers": [container]}})
    }

    #[test]
    fn the_hash_label_and_empty_fields_do_not_count() {
        let web = json!({"name": "web", "image": "nginx"});
        let a = template(json!({"app": "web", HASH_LABEL: "abc"}), web.clone());
        let b = template(json!({"app": "web"}), web.clone());
        assert!(equal_ignore_hash(&a, &b));
        // Only the hash label: no labels at all.
        let only_hash = json!({"metadata": {"labels": {HASH_LABEL: "x"}}, "spec": {}});
        assert!(equal_ignore_hash(&only_hash, &json!({"spec": {}})));
        // Null, absent, [] and {} are alike.
        let c = template(
            json!({"app": "web"}),
            json!({"name": "web", "image": "nginx", "env": [], "resources": {}, "args": null}),
        );
        assert!(equal_ignore_hash(&b, &c));
        // Anything else counts.
        let d = template(json!({"app": "web", "tier": "x"}), web.clone());
        assert!(!equal_ignore_hash(&b, &d));
        let e = template(
            json!({"app": "web"}),
            json!({"name": "web", "image": "nginx:1.27"}),
        );
        assert!(!equal_ignore_hash(&b, &e));
    }

    #[test]
    fn quantities_compare_by_value_and_nothing_else_does() {
        let with = |limits: Value, env: &str| {
            template(
                json!({"app": "web"}),
                json!({"name": "web", "image": "nginx",
                "resources": {"limits": limits}, "env": [{"name": "N", "value": env}]}),
            )
        };
        assert!(equal_ignore_hash(
            &with(json!({"memory": "1Gi", "cpu": "0.5"}), "1"),
            &with(json!({"memory": "1024Mi", "cpu": "500m"}), "1"),
        ));
        assert!(!equal_ignore_hash(
            &with(json!({"memory": "1Gi"}), "1"),
            &with(json!({"memory": "1G"}), "1"),
        ));
        // Strings elsewhere are strings: "1" and "1.0" differ in an env var.
        assert!(!equal_ignore_hash(
            &with(json!({"cpu": "1"}), "1"),
            &with(json!({"cpu": "1"}), "1.0"),
        ));
    }
}
