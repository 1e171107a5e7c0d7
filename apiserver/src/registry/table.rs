//! Server-side tables (`meta.k8s.io/v1 Table`): the columns kubectl prints, computed here as the
//! apiserver does, plus the small formatting helpers Kubernetes' printers share.

use serde::Serialize;
use serde_json::Value;

#[derive(Clone, Debug, Serialize)]
pub struct Column {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub format: &'static str,
    pub description: &'static str,
    pub priority: i32,
}

impl Column {
    pub const fn new(name: &'static str, type_: &'static str, description: &'static str) -> Self {
        Column {
            name,
            type_,
            format: "",
            description,
            priority: 0,
        }
    }
    /// The Name column: `format: name` makes kubectl prefix `kind/` in `get all`.
    pub const fn name() -> Self {
        Column {
            name: "Name",
            type_: "string",
            format: "name",
            description: "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
            priority: 0,
        }
    }
    pub const fn age() -> Self {
        Column::new(
            "Age",
            "string",
            "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.",
        )
    }
    pub const fn wide(mut self) -> Self {
        self.priority = 1;
        self
    }
}

/// Kubernetes' duration.HumanDuration (`5s`, `3m20s`, `2d3h`).
pub use tinykube_machinery::duration::human as human_duration;

/// The age of a timestamp at `now`, or `<unknown>` without one.
pub fn age(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>, now: i64) -> Value {
    match t {
        Some(t) => human_duration(now - super::time_secs(t)).into(),
        None => "<unknown>".into(),
    }
}

/// `a,b,c` or the placeholder when empty.
pub fn join_or(items: impl IntoIterator<Item = String>, empty: &str) -> String {
    let v: Vec<String> = items.into_iter().collect();
    if v.is_empty() {
        empty.to_string()
    } else {
        v.join(",")
    }
}
