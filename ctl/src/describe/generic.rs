//! The generic describer (kubectl's for kinds without their own): every field, labelled.

use serde_json::Value;

use super::*;

/// smartLabelFor: `creationTimestamp` → `Creation Timestamp`, `apiVersion` → `API Version`.
pub fn smart_label(field: &str) -> String {
    if field.chars().any(|c| !c.is_alphabetic() && c != '-') {
        return field.to_string();
    }
    const ACRONYMS: [&str; 5] = ["API", "URL", "UID", "OSB", "GUID"];
    camel_split(field)
        .into_iter()
        .filter(|p| p != "_")
        .map(|p| {
            if ACRONYMS.contains(&p.to_uppercase().as_str()) {
                p.to_uppercase()
            } else {
                let mut c = p.chars();
                match c.next() {
                    Some(f) => f.to_uppercase().chain(c).collect(),
                    None => String::new(),
                }
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// fatih/camelcase.Split: runs of one character class; an upper-case run followed by lower
/// case gives its last letter to the next word (`APIVersion` → `API`, `Version`).
pub(super) fn camel_split(s: &str) -> Vec<String> {
    let class = |c: char| {
        if c.is_lowercase() {
            1
        } else if c.is_uppercase() {
            2
        } else if c.is_numeric() {
            3
        } else {
            4
        }
    };
    let mut runs: Vec<Vec<char>> = Vec::new();
    let mut last = 0;
    for c in s.chars() {
        let k = class(c);
        if k == last {
            runs.last_mut().unwrap().push(c);
        } else {
            runs.push(vec![c]);
        }
        last = k;
    }
    for i in 0..runs.len().saturating_sub(1) {
        if runs[i][0].is_uppercase() && runs[i + 1][0].is_lowercase() {
            let c = runs[i].pop().unwrap();
            runs[i + 1].insert(0, c);
        }
    }
    runs.into_iter()
        .filter(|r| !r.is_empty())
        .map(|r| r.into_iter().collect())
        .collect()
}

pub(super) fn unstructured(w: &mut W, level: usize, content: &Value, prefix: &str, skip: &[&str]) {
    let Some(map) = content.as_object() else {
        return;
    };
    let mut fields: Vec<&String> = map.keys().collect();
    fields.sort();
    for f in fields {
        let value = &map[f];
        let expr = format!("{prefix}.{f}");
        if skip.contains(&expr.as_str()) {
            continue;
        }
        match value {
            Value::Object(_) => {
                w!(w, level, "{}:\n", smart_label(f));
                unstructured(w, level + 1, value, &expr, skip);
            }
            Value::Array(items) => {
                w!(w, level, "{}:\n", smart_label(f));
                for item in items {
                    if item.is_object() {
                        unstructured(w, level + 1, item, &expr, skip);
                    } else {
                        w!(w, level + 1, "{}\n", go_value(item));
                    }
                }
            }
            other => w!(w, level, "{}:\t{}\n", smart_label(f), go_value(other)),
        }
    }
}

/// Go's `%v` of a decoded JSON scalar.
pub(super) fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".into(),
        other => other.to_string(),
    }
}

/// The generic describer, for kinds kubectl has no describer of its own for here.
pub fn generic(obj: &Value, ev: Option<&[Value]>) -> String {
    let mut w = W::default();
    let m = &obj["metadata"];
    w!(w, 0, "Name:\t{}\n", st(&m["name"]));
    w!(w, 0, "Namespace:\t{}\n", st(&m["namespace"]));
    labels(&mut w, "Labels", &m["labels"]);
    annotations(&mut w, "Annotations", &m["annotations"]);
    unstructured(
        &mut w,
        0,
        obj,
        "",
        &[
            ".metadata.managedFields",
            ".metadata.name",
            ".metadata.namespace",
            ".metadata.labels",
            ".metadata.annotations",
        ],
    );
    maybe_events(&mut w, ev);
    w.finish()
}
