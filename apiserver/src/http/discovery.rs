//! Discovery documents: the legacy format every client reads (`/api`, `/apis`,
//! `/apis/<group>`, `/api/v1`, `/apis/<group>/<version>`), the aggregated one
//! (apidiscovery.k8s.io/v2 and v2beta1: every group, version and resource of `/api` or `/apis`
//! in one answer, which kubectl and client-go ask for first and cache by ETag), and
//! `/version`. Both formats are rendered from the same description of each served resource.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta};
use kube_core::discovery::v2::{
    APIGroupDiscovery, APIGroupDiscoveryList, APIResourceDiscovery, APISubresourceDiscovery,
    APIVersionDiscovery, GroupVersionKind,
};
use serde_json::{json, Value};

use crate::registry::catalog::Catalog;
use crate::registry::ResourceInfo;

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

/// A subresource as discovery describes it: its name, the kind it answers with (group,
/// version, kind) and its verbs.
struct Sub {
    name: &'static str,
    kind: (&'static str, &'static str, &'static str),
    verbs: &'static [&'static str],
}

/// What discovery says of subresource `sub` of `i` (None for one it does not list).
fn subresource(i: &ResourceInfo, sub: &'static str) -> Option<Sub> {
    let own = (i.group, i.version, i.kind);
    let (kind, verbs): (_, &'static [&'static str]) = match sub {
        "status" | "ephemeralcontainers" => (own, &["get", "patch", "update"]),
        "scale" => (("autoscaling", "v1", "Scale"), &["get", "patch", "update"]),
        "binding" => (("", "v1", "Binding"), &["create"]),
        "log" => (("", "v1", "Pod"), &["get"]),
        "exec" => (("", "v1", "PodExecOptions"), &["create", "get"]),
        "attach" => (("", "v1", "PodAttachOptions"), &["create", "get"]),
        "portforward" => (("", "v1", "PodPortForwardOptions"), &["create", "get"]),
        "finalize" => (own, &["update"]),
        "token" => (("authentication.k8s.io", "v1", "TokenRequest"), &["create"]),
        _ => return None,
    };
    Some(Sub {
        name: sub,
        kind,
        verbs,
    })
}

/// The resources served in `group`/`version`, in the catalog's order.
pub(super) fn served<'a>(
    c: &'a Catalog,
    group: &'a str,
    version: &'a str,
) -> Vec<&'static ResourceInfo> {
    c.all()
        .iter()
        .map(|r| r.info())
        .filter(|i| i.group == group && i.version == version)
        .collect()
}

pub fn resources(c: &Catalog, group: &str, version: &str) -> Option<Value> {
    let mut list = Vec::new();
    for i in served(c, group, version) {
        let mut main = json!({
            "name": i.resource,
            "singularName": i.singular,
            "namespaced": i.namespaced,
            "kind": i.kind,
            "verbs": i.verbs,
        });
        if !i.short_names.is_empty() {
            main["shortNames"] = json!(i.short_names);
        }
        if !i.categories.is_empty() {
            main["categories"] = json!(i.categories);
        }
        list.push(main);
        for sub in i.subresources.iter().filter_map(|s| subresource(i, s)) {
            let mut doc = json!({
                "name": format!("{}/{}", i.resource, sub.name),
                "singularName": "",
                "namespaced": i.namespaced,
                "kind": sub.kind.2,
                "verbs": sub.verbs,
            });
            // The group and version are said only where they are not the resource's own.
            if (sub.kind.0, sub.kind.1) != (i.group, i.version) {
                doc["group"] = sub.kind.0.into();
                doc["version"] = sub.kind.1.into();
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

/// The versions of the aggregated discovery format a client may ask for in `Accept`:
/// `application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList` (and `v2beta1`).
/// The first acceptable entry wins; a plain `application/json` or `*/*` before any aggregated
/// one means the legacy documents.
pub fn aggregated_version(accept: Option<&str>) -> Option<&'static str> {
    for entry in accept?.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let essence = parts.next().unwrap_or("").to_ascii_lowercase();
        let params: Vec<(String, String)> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let param = |k: &str| {
            params
                .iter()
                .find(|(pk, _)| pk == k)
                .map(|(_, v)| v.as_str())
        };
        if param("q") == Some("0") {
            continue;
        }
        match essence.as_str() {
            "application/json"
                if param("g") == Some("apidiscovery.k8s.io")
                    && param("as") == Some("APIGroupDiscoveryList") =>
            {
                match param("v") {
                    Some("v2") => return Some("v2"),
                    Some("v2beta1") => return Some("v2beta1"),
                    _ => continue,
                }
            }
            "application/json" | "*/*" | "application/*" => return None,
            _ => continue,
        }
    }
    None
}

/// The Content-Type of an aggregated discovery answer, which clients check before reading it.
pub fn aggregated_content_type(version: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList")
}

fn gvk((group, version, kind): (&str, &str, &str)) -> GroupVersionKind {
    GroupVersionKind {
        group: Some(group.into()),
        version: Some(version.into()),
        kind: Some(kind.into()),
    }
}

fn version_discovery(c: &Catalog, group: &str, version: &str) -> APIVersionDiscovery {
    let resources = served(c, group, version)
        .into_iter()
        .map(|i| APIResourceDiscovery {
            resource: Some(i.resource.into()),
            response_kind: Some(gvk((i.group, i.version, i.kind))),
            scope: Some(
                if i.namespaced {
                    "Namespaced"
                } else {
                    "Cluster"
                }
                .into(),
            ),
            singular_resource: Some(i.singular.into()),
            verbs: i.verbs.iter().map(|v| v.to_string()).collect(),
            short_names: i.short_names.iter().map(|s| s.to_string()).collect(),
            categories: i.categories.iter().map(|s| s.to_string()).collect(),
            subresources: i
                .subresources
                .iter()
                .filter_map(|s| subresource(i, s))
                .map(|sub| APISubresourceDiscovery {
                    subresource: Some(sub.name.into()),
                    response_kind: Some(gvk(sub.kind)),
                    accepted_types: Vec::new(),
                    verbs: sub.verbs.iter().map(|v| v.to_string()).collect(),
                })
                .collect(),
        })
        .collect();
    APIVersionDiscovery {
        version: Some(version.into()),
        resources,
        freshness: Some("Current".into()),
    }
}

/// The aggregated discovery document of `/api` (`core`: the legacy group, unnamed) or of
/// `/apis` (every named group, versions in order of preference), as JSON bytes with the kind
/// and apiVersion of format `version`.
pub fn aggregated(c: &Catalog, core: bool, version: &str) -> Vec<u8> {
    let items = if core {
        vec![APIGroupDiscovery {
            metadata: Some(ObjectMeta::default()),
            versions: vec![version_discovery(c, "", "v1")],
        }]
    } else {
        named_groups(c)
            .into_iter()
            .map(|(g, versions)| APIGroupDiscovery {
                metadata: Some(ObjectMeta {
                    name: Some(g.into()),
                    ..Default::default()
                }),
                versions: versions
                    .iter()
                    .map(|v| version_discovery(c, g, v))
                    .collect(),
            })
            .collect()
    };
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Wire {
        kind: &'static str,
        api_version: String,
        #[serde(flatten)]
        list: APIGroupDiscoveryList,
    }
    serde_json::to_vec(&Wire {
        kind: "APIGroupDiscoveryList",
        api_version: format!("apidiscovery.k8s.io/{version}"),
        list: APIGroupDiscoveryList {
            metadata: Some(ListMeta::default()),
            items,
        },
    })
    .unwrap_or_default()
}

/// A strong validator of a discovery document: the hex SHA-256 of its bytes, quoted.
pub fn etag(body: &[u8]) -> String {
    use sha2::Digest;
    format!("\"{}\"", hex::encode_upper(sha2::Sha256::digest(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECTL: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

    #[test]
    fn aggregated_when_asked_first() {
        assert_eq!(aggregated_version(Some(KUBECTL)), Some("v2"));
        assert_eq!(
            aggregated_version(Some(
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
            )),
            Some("v2beta1")
        );
        assert_eq!(aggregated_version(Some("application/json")), None);
        assert_eq!(aggregated_version(None), None);
        assert_eq!(
            aggregated_version(Some(
                "application/json, application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
            )),
            None,
            "plain JSON preferred"
        );
        assert_eq!(
            aggregated_version(Some(
                "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList, application/json; g=apidiscovery.k8s.io; v=v2; as=APIGroupDiscoveryList"
            )),
            Some("v2"),
            "protobuf is skipped, spaces allowed"
        );
        assert_eq!(
            aggregated_version(Some(
                "application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList"
            )),
            None
        );
    }

    #[test]
    fn etags_follow_the_bytes() {
        assert_eq!(etag(b"a"), etag(b"a"));
        assert_ne!(etag(b"a"), etag(b"b"));
        assert!(etag(b"a").starts_with('"') && etag(b"a").ends_with('"'));
    }
}
