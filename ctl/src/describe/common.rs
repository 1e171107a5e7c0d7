//! What every describer shares: the events table, selectors and labels as Go formats them,
//! Go's `%v` of optional values.

use serde_json::Value;

use super::*;

/// The events section: `Events:  <none>`, or the table, oldest first.
pub fn events(w: &mut W, events: &[Value]) {
    if events.is_empty() {
        w.w(0, "Events:\t<none>\n");
        return;
    }
    w.flush();
    // Go's unstable sort by last timestamp: ties stay in the order kubectl gives them.
    let mut sorted: Vec<&Value> = events.iter().collect();
    let last = |e: &Value| super::writer::parse_time(&e["lastTimestamp"]);
    super::gosort::sort(&mut sorted, |a, b| last(a) < last(b));
    w.w(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n");
    w.w(1, "----\t------\t----\t----\t-------\n");
    for e in sorted {
        let first = if e["eventTime"].is_string() {
            since(&e["eventTime"])
        } else {
            since(&e["firstTimestamp"])
        };
        let count = int(&e["count"]);
        let interval = if e["series"].is_object() {
            format!(
                "{} (x{} over {first})",
                since(&e["series"]["lastObservedTime"]),
                int(&e["series"]["count"])
            )
        } else if count > 1 {
            format!("{} (x{count} over {first})", since(&e["lastTimestamp"]))
        } else {
            first
        };
        let mut source = st(&e["source"]["component"]);
        if source.is_empty() {
            source = st(&e["reportingComponent"]);
        }
        w!(
            w,
            1,
            "{}\t{}\t{interval}\t{source}\t{}\n",
            st(&e["type"]),
            st(&e["reason"]),
            st(&e["message"]).trim()
        );
    }
}

pub(super) fn maybe_events(w: &mut W, ev: Option<&[Value]>) {
    if let Some(ev) = ev {
        events(w, ev);
    }
}

/// `Kind/name` of the object's controller, if any.
pub(super) fn controller(obj: &Value) -> Option<String> {
    arr(&obj["metadata"]["ownerReferences"])
        .iter()
        .find(|r| r["controller"].as_bool() == Some(true))
        .map(|r| format!("{}/{}", st(&r["kind"]), st(&r["name"])))
}

/// metav1.FormatLabelSelector: `k=v,k2 in (a,b)`, sorted by key; `<none>` when empty.
pub fn format_selector(sel: &Value) -> String {
    let mut reqs: Vec<(String, String)> = string_map(&sel["matchLabels"])
        .into_iter()
        .map(|(k, v)| (k.clone(), format!("{k}={v}")))
        .collect();
    for e in arr(&sel["matchExpressions"]) {
        let key = st(&e["key"]).to_string();
        let mut values: Vec<&str> = arr(&e["values"]).iter().map(st).collect();
        values.sort();
        let text = match st(&e["operator"]) {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            op => format!("{key} {op} ({})", values.join(",")),
        };
        reqs.push((key, text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    let s: Vec<String> = reqs.into_iter().map(|(_, t)| t).collect();
    if s.is_empty() {
        "<none>".into()
    } else {
        s.join(",")
    }
}

/// labels.FormatLabels: `k=v,k2=v2` or `<none>`.
pub(super) fn format_labels(m: &Value) -> String {
    let m = string_map(m);
    if m.is_empty() {
        return "<none>".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) fn go_bool(v: &Value) -> &'static str {
    if v.as_bool() == Some(true) {
        "true"
    } else {
        "false"
    }
}

/// A Go `%v` of an optional bool pointer as kubectl prints it (`<nil>` when unset).
pub(super) fn opt_bool(v: &Value) -> String {
    match v.as_bool() {
        Some(b) => b.to_string(),
        None => "<nil>".into(),
    }
}

pub(super) fn int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => "<nil>".into(),
    }
}

pub(super) fn status_conditions(w: &mut W, conditions: &[Value]) {
    if conditions.is_empty() {
        return;
    }
    w.w(0, "Conditions:\n  Type\tStatus\tReason\n");
    w.w(1, "----\t------\t------\n");
    for c in conditions {
        w!(
            w,
            1,
            "{} \t{}\t{}\n",
            st(&c["type"]),
            st(&c["status"]),
            st(&c["reason"])
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::byte_count;
    use super::super::generic::smart_label;
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_and_labels() {
        let sel = json!({"matchLabels": {"run": "boot", "pod-template-hash": "abc"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]});
        assert_eq!(
            format_selector(&sel),
            "pod-template-hash=abc,run=boot,tier in (a,b)"
        );
        assert_eq!(format_selector(&json!({})), "<none>");
        assert_eq!(smart_label("apiVersion"), "API Version");
        assert_eq!(smart_label("creationTimestamp"), "Creation Timestamp");
        assert_eq!(smart_label("data"), "Data");
        assert_eq!(smart_label("ca.crt"), "ca.crt");
        assert_eq!(byte_count("aGVsbG8="), "5 bytes");
        assert_eq!(byte_count("aGVsbG8"), "<invalid base64: Invalid padding>");
        let p = json!({"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 5});
        assert_eq!(
            probe(&p),
            "http-get http://:8080/healthz delay=0s timeout=0s period=5s #success=0 #failure=0"
        );
        let p = json!({"httpGet": {"path": "/", "port": "web"}});
        assert!(probe(&p).starts_with("http-get //:web/ "));
    }
}
