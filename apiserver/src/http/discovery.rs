//! Discovery documents (legacy format, which every client reads): `/api`, `/apis`,
//! `/apis/<group>`, `/api/v1`, `/apis/<group>/<version>`, and `/version`.

use serde_json::{json, Value};

use crate::registry::catalog::Catalog;

pub const MAJOR: &str = "1";
/// The kubectl dispatcher picks kubectl 1.<minor> from this.
pub const MINOR: &str = "32";
pub const GIT_VERSION: &str = "v1.32.0+tinykube";

pub fn version() -> Value {
    json!({
        "major": MAJOR,
        "minor": MINOR,
        "gitVersion": GIT_VERSION,
        "gitCommit": env!("CARGO_PKG_VERSION"),
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "n/a (tinykube is written in Rust)",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a }),
    })
}

pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_doc(group: &str, versions: &[&str]) -> Value {
    let gv = |v: &str| json!({"groupVersion": format!("{group}/{v}"), "version": v});
    json!({
        "name": group,
        "versions": versions.iter().map(|v| gv(v)).collect::<Vec<_>>(),
        "preferredVersion": gv(versions[0]),
    })
}

fn named_groups(c: &Catalog) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for (g, v) in c.groups() {
        if g.is_empty() {
            continue;
        }
        match out.iter_mut().find(|(name, _)| *name == g) {
            Some((_, vs)) => vs.push(v),
            None => out.push((g, vec![v])),
        }
    }
    out
}

pub fn groups(c: &Catalog) -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": named_groups(c).iter().map(|(g, vs)| group_doc(g, vs)).collect::<Vec<_>>(),
    })
}

pub fn group(c: &Catalog, name: &str) -> Option<Value> {
    named_groups(c)
        .into_iter()
        .find(|(g, _)| *g == name)
        .map(|(g, vs)| {
            let mut doc = group_doc(g, &vs);
            doc["kind"] = "APIGroup".into();
            doc["apiVersion"] = "v1".into();
            doc
        })
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub fn resources(c: &Catalog, group: &str, version: &str) -> Option<Value> {
    let mut list = Vec::new();
    for r in c.all() {
        let i = r.info();
        if i.group != group || i.version != version {
            continue;
        }
        let mut main = json!({
            "name": i.resource,
            "singularName": i.singular,
            "namespaced": i.namespaced,
            "kind": i.kind,
            "verbs": VERBS,
        });
        if !i.short_names.is_empty() {
            main["shortNames"] = json!(i.short_names);
        }
        if !i.categories.is_empty() {
            main["categories"] = json!(i.categories);
        }
        list.push(main);
        for sub in i.subresources {
            let mut doc = json!({
                "name": format!("{}/{sub}", i.resource),
                "singularName": "",
                "namespaced": i.namespaced,
            });
            match *sub {
                "status" => {
                    doc["kind"] = i.kind.into();
                    doc["verbs"] = json!(["get", "patch", "update"]);
                }
                "scale" => {
                    doc["group"] = "autoscaling".into();
                    doc["version"] = "v1".into();
                    doc["kind"] = "Scale".into();
                    doc["verbs"] = json!(["get", "patch", "update"]);
                }
                "binding" => {
                    doc["kind"] = "Binding".into();
                    doc["verbs"] = json!(["create"]);
                }
                "log" => {
                    doc["kind"] = "Pod".into();
                    doc["verbs"] = json!(["get"]);
                }
                "exec" | "attach" | "portforward" => {
                    let kind = match *sub {
                        "exec" => "PodExecOptions",
                        "attach" => "PodAttachOptions",
                        _ => "PodPortForwardOptions",
                    };
                    doc["kind"] = kind.into();
                    doc["verbs"] = json!(["create", "get"]);
                }
                "finalize" => {
                    doc["kind"] = i.kind.into();
                    doc["verbs"] = json!(["update"]);
                }
                _ => continue,
            }
            list.push(doc);
        }
    }
    if list.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": list,
    }))
}
