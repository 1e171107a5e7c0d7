//! `/openapi/v3`: the index of group-version documents and each OpenAPI 3.0 document, as
//! kube-apiserver serves them: paths for every served resource (with
//! `x-kubernetes-group-version-kind` and `x-kubernetes-action`, and the query parameters,
//! among them `fieldValidation`, which is how kubectl learns to leave validation to the server)
//! and the schemas of every kind, generated from Kubernetes' .proto definitions
//! (protobuf::schema). `kubectl apply|create -f` (validation), `edit` and `explain` read them.
//! `/openapi/v2`, which kubectl asks for only in protobuf, is not served.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

use super::discovery::served;
use crate::protobuf;
use crate::registry::catalog::Catalog;
use crate::registry::ResourceInfo;

/// The documents, rendered once (the catalog is fixed for the life of the process).
pub struct Documents {
    index: Vec<u8>,
    /// By path (`api/v1`, `apis/apps/v1`): the hash in the index's URL, and the document.
    by_path: HashMap<String, (String, Vec<u8>)>,
}

static DOCUMENTS: OnceLock<Documents> = OnceLock::new();

pub fn documents(c: &Catalog) -> &'static Documents {
    DOCUMENTS.get_or_init(|| render(c))
}

impl Documents {
    /// The document at `/openapi/<rest>`, with its ETag; None: 404.
    pub fn get(&self, rest: &str) -> Option<(&[u8], String)> {
        if rest == "v3" {
            let etag = format!("\"{}\"", hash(&self.index));
            return Some((&self.index, etag));
        }
        let (hash, doc) = self.by_path.get(rest.strip_prefix("v3/")?)?;
        Some((doc, format!("\"{hash}\"")))
    }
}

fn hash(bytes: &[u8]) -> String {
    hex::encode_upper(Sha512::digest(bytes))
}

fn render(c: &Catalog) -> Documents {
    let mut by_path = HashMap::new();
    let mut index = Map::new();
    for (group, version) in c.groups() {
        let path = if group.is_empty() {
            format!("api/{version}")
        } else {
            format!("apis/{group}/{version}")
        };
        let doc = serde_json::to_vec(&document(c, group, version)).expect("JSON");
        let h = hash(&doc);
        index.insert(
            path.clone(),
            json!({ "serverRelativeURL": format!("/openapi/v3/{path}?hash={h}") }),
        );
        by_path.insert(path, (h, doc));
    }
    Documents {
        index: serde_json::to_vec(&json!({ "paths": index })).expect("JSON"),
        by_path,
    }
}

fn query_parameter(name: &str, description: &str) -> Value {
    json!({
        "name": name, "in": "query", "description": description,
        "schema": { "type": "string", "uniqueItems": true }
    })
}

/// The parameters of a write, as kube-apiserver lists them.
fn write_parameters() -> Vec<Value> {
    vec![
        query_parameter("dryRun", "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed"),
        query_parameter("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint."),
        query_parameter("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. This is the default behavior prior to v1.23. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered."),
    ]
}

fn reference(group: &str, version: &str, kind: &str) -> Option<Value> {
    let api_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let desc = protobuf::message_for(&api_version, kind)?;
    Some(
        json!({ "$ref": format!("#/components/schemas/{}", protobuf::schema::schema_name(&desc)) }),
    )
}

/// One operation on a path.
fn operation(
    i: &ResourceInfo,
    action: &str,
    id: String,
    kind: (&str, &str, &str),
    response: Option<Value>,
    write: bool,
) -> Value {
    let mut op = json!({
        "operationId": id,
        "tags": [format!("{}_{}", match i.group { "" => "core", g => g.split('.').next().unwrap_or(g) }, i.version)],
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": { "group": kind.0, "version": kind.1, "kind": kind.2 },
        "responses": { "401": { "description": "Unauthorized" } },
    });
    if let Some(schema) = response {
        op["responses"]["200"] = json!({
            "description": "OK",
            "content": {
                "application/json": { "schema": schema.clone() },
                "application/vnd.kubernetes.protobuf": { "schema": schema },
            }
        });
    }
    if write {
        op["parameters"] = Value::Array(write_parameters());
    }
    op
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn document(c: &Catalog, group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    let mut roots = Vec::new();
    let gv_id = format!(
        "{}{}",
        if group.is_empty() {
            "Core".to_string()
        } else {
            capitalized(group.split('.').next().unwrap_or(""))
        },
        capitalized(version)
    );
    let api_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    for i in served(c, group, version) {
        for kind in [i.kind, i.list_kind] {
            if let Some(d) = protobuf::message_for(&api_version, kind) {
                roots.push(d);
            }
        }
        let gvk = (group, version, i.kind);
        let base = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let collection = if i.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", i.resource)
        } else {
            format!("{base}/{}", i.resource)
        };
        let scope = if i.namespaced { "Namespaced" } else { "" };
        let obj = reference(group, version, i.kind);
        let list = reference(group, version, i.list_kind);
        let status = Some(
            json!({"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Status"}),
        );
        let path_params = |named: bool| {
            let mut p = Vec::new();
            if named {
                p.push(json!({"name": "name", "in": "path", "required": true, "description": format!("name of the {}", i.kind), "schema": {"type": "string", "uniqueItems": true}}));
            }
            if i.namespaced {
                p.push(json!({"name": "namespace", "in": "path", "required": true, "description": "object name and auth scope, such as for teams and projects", "schema": {"type": "string", "uniqueItems": true}}));
            }
            p.push(json!({"name": "pretty", "in": "query", "description": "If 'true', then the output is pretty printed.", "schema": {"type": "string", "uniqueItems": true}}));
            Value::Array(p)
        };
        let k = &i.kind;
        if i.create_only_kind() {
            // A review: POST only, answered with the same kind.
            paths.insert(
                collection.clone(),
                json!({
                    "post": operation(i, "post", format!("create{gv_id}{scope}{k}"), gvk, obj.clone(), true),
                    "parameters": path_params(false),
                }),
            );
            continue;
        }
        paths.insert(
            collection.clone(),
            json!({
                "get": operation(i, "list", format!("list{gv_id}{scope}{k}"), gvk, list.clone(), false),
                "post": operation(i, "post", format!("create{gv_id}{scope}{k}"), gvk, obj.clone(), true),
                "delete": operation(i, "deletecollection", format!("deleteCollection{gv_id}{scope}{k}"), gvk, status.clone(), false),
                "parameters": path_params(false),
            }),
        );
        // get, put and patch of a named object or its subresource `cap`.
        let named = |cap: &str, kind, response: &Option<Value>| {
            let id = format!("{gv_id}{scope}{k}{cap}");
            json!({
                "get": operation(i, "get", format!("read{id}"), kind, response.clone(), false),
                "put": operation(i, "put", format!("replace{id}"), kind, response.clone(), true),
                "patch": operation(i, "patch", format!("patch{id}"), kind, response.clone(), true),
                "parameters": path_params(true),
            })
        };
        let mut object = named("", gvk, &obj);
        object["delete"] = operation(
            i,
            "delete",
            format!("delete{gv_id}{scope}{k}"),
            gvk,
            obj.clone(),
            false,
        );
        paths.insert(format!("{collection}/{{name}}"), object);
        if i.namespaced {
            paths.insert(
                format!("{base}/{}", i.resource),
                json!({
                    "get": operation(i, "list", format!("list{gv_id}{k}ForAllNamespaces"), gvk, list.clone(), false),
                }),
            );
        }
        for sub in i.subresources {
            let (sub_kind, response) = match *sub {
                "status" | "ephemeralcontainers" => (gvk, obj.clone()),
                "scale" => (
                    ("autoscaling", "v1", "Scale"),
                    reference("autoscaling", "v1", "Scale"),
                ),
                _ => continue,
            };
            if let Some(d) =
                protobuf::message_for(&format!("{}/{}", sub_kind.0, sub_kind.1), sub_kind.2)
            {
                roots.push(d);
            }
            paths.insert(
                format!("{collection}/{{name}}/{sub}"),
                named(&capitalized(sub), sub_kind, &response),
            );
        }
    }
    for shared in ["Status", "DeleteOptions", "WatchEvent"] {
        if let Some(d) = protobuf::message_for("meta.k8s.io/v1", shared) {
            roots.push(d);
        }
    }
    let mut schemas = protobuf::schema::schemas(&roots);
    // The kinds this group version serves say so, as kubectl explain looks them up by it.
    for i in served(c, group, version) {
        for kind in [i.kind, i.list_kind] {
            if let Some(d) = protobuf::message_for(&api_version, kind) {
                if let Some(s) = schemas.get_mut(&protobuf::schema::schema_name(&d)) {
                    s["x-kubernetes-group-version-kind"] =
                        json!([{ "group": group, "kind": kind, "version": version }]);
                }
            }
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": super::discovery::version()["gitVersion"] },
        "paths": paths,
        "components": { "schemas": schemas },
    })
}
