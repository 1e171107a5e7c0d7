//! OpenAPI v3 schemas of the messages, as kube-apiserver's documents have them: named
//! `io.k8s.<package>.<Message>`, objects with described properties (`$ref`s in an `allOf`),
//! the apimachinery types in their JSON forms, inline embeddings flattened, and the
//! `x-kubernetes-patch-*` / `x-kubernetes-list-*` extensions from the Go markers.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{json, Map, Value};

use super::json::{inline, json_name, shape, Shape};

static DESCRIPTIONS: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(include_str!(concat!(env!("OUT_DIR"), "/descriptions.json")))
        .expect("the descriptions build.rs wrote")
});

static MARKERS: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(include_str!(concat!(env!("OUT_DIR"), "/patch-meta.json")))
        .expect("the patch metadata build.rs wrote")
});

/// The markers of a field (`patchStrategy`, `patchMergeKey`, `listType`, `listMapKeys`).
pub fn markers(field: &FieldDescriptor) -> &'static Value {
    &MARKERS[field.parent_message().full_name()][field.name()]
}

/// The markers of a message type (`structType`).
pub fn type_markers(desc: &MessageDescriptor) -> &'static Value {
    &MARKERS[desc.full_name()][""]
}

fn description(desc: &MessageDescriptor, field: &str) -> Option<&'static str> {
    DESCRIPTIONS[desc.full_name()][field].as_str()
}

/// `io.k8s.api.apps.v1.Deployment`, `io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta`.
pub fn schema_name(desc: &MessageDescriptor) -> String {
    let full = desc.full_name();
    let (root, rest) = full.split_once('.').unwrap_or((full, ""));
    format!("io.k8s.{}.{rest}", root.replace('_', "-"))
}

fn reference(desc: &MessageDescriptor) -> Value {
    json!({ "$ref": format!("#/components/schemas/{}", schema_name(desc)) })
}

/// A property's schema, with the message types it refers to pushed on `refs`.
fn field_schema(field: &FieldDescriptor, refs: &mut Vec<MessageDescriptor>) -> Value {
    let mut kind = field.kind();
    if field.is_map() {
        if let Kind::Message(entry) = &kind {
            kind = entry.map_entry_value_field().kind();
        }
    }
    let element = match &kind {
        Kind::Message(m) => {
            refs.push(m.clone());
            json!({ "allOf": [reference(m)], "default": {} })
        }
        Kind::String => json!({ "type": "string", "default": "" }),
        Kind::Bytes => json!({ "type": "string", "format": "byte" }),
        Kind::Bool => json!({ "type": "boolean", "default": false }),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 | Kind::Uint32 | Kind::Fixed32 => {
            json!({ "type": "integer", "format": "int32", "default": 0 })
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
            json!({ "type": "integer", "format": "int64", "default": 0 })
        }
        Kind::Double | Kind::Float => json!({ "type": "number", "format": "double", "default": 0 }),
        Kind::Enum(_) => json!({ "type": "integer" }),
    };
    let mut schema = if field.is_map() {
        json!({ "type": "object", "additionalProperties": element })
    } else if field.is_list() {
        json!({ "type": "array", "items": element })
    } else {
        // A single value: Kubernetes writes no default for it.
        let mut v = element;
        if let Some(o) = v.as_object_mut() {
            o.remove("default");
        }
        v
    };
    let o = schema.as_object_mut().expect("an object");
    if let Some(d) = description(field.parent_message(), field.name()) {
        o.insert("description".into(), d.into());
    }
    let m = markers(field);
    for (marker, extension) in [
        ("patchStrategy", "x-kubernetes-patch-strategy"),
        ("patchMergeKey", "x-kubernetes-patch-merge-key"),
        ("listType", "x-kubernetes-list-type"),
        ("listMapKeys", "x-kubernetes-list-map-keys"),
        ("mapType", "x-kubernetes-map-type"),
    ] {
        if let Some(v) = m.get(marker) {
            o.insert(extension.into(), v.clone());
        }
    }
    schema
}

/// The properties of an object message, inline embeddings flattened into it.
fn properties(desc: &MessageDescriptor, refs: &mut Vec<MessageDescriptor>) -> Map<String, Value> {
    let mut props = Map::new();
    for field in desc.fields() {
        match inline(&field) {
            Some(embedded) => props.extend(properties(&embedded, refs)),
            None => {
                props.insert(json_name(field.name()), field_schema(&field, refs));
            }
        }
    }
    props
}

/// A message's schema, and the messages it refers to.
pub fn message_schema(desc: &MessageDescriptor) -> (Value, Vec<MessageDescriptor>) {
    let mut refs = Vec::new();
    let mut schema = match shape(desc) {
        Shape::Time | Shape::MicroTime => json!({ "type": "string", "format": "date-time" }),
        Shape::Duration => json!({ "type": "string" }),
        Shape::IntOrString => json!({ "type": "string", "format": "int-or-string" }),
        Shape::Quantity => json!({ "type": "string" }),
        Shape::RawJson(_) => json!({ "type": "object" }),
        Shape::Slice(_) => json!({ "type": "array", "items": { "type": "string", "default": "" } }),
        Shape::Object => {
            let mut props = properties(desc, &mut refs);
            // Objects and lists carry their TypeMeta, which the .proto files leave out.
            let top = desc
                .get_field_by_name("metadata")
                .is_some_and(|f| matches!(f.kind(), Kind::Message(m) if m.name() == "ObjectMeta" || m.name() == "ListMeta"));
            if top {
                let mut typed = Map::new();
                typed.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"}));
                typed.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"}));
                typed.append(&mut props);
                props = typed;
            }
            json!({ "type": "object", "properties": props })
        }
    };
    if let Some(d) = description(desc, "") {
        schema["description"] = d.into();
    }
    if type_markers(desc)["structType"] == "atomic" {
        schema["x-kubernetes-map-type"] = "atomic".into();
    }
    (schema, refs)
}

/// Every schema `roots` need, by name.
pub fn schemas(roots: &[MessageDescriptor]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut todo: Vec<MessageDescriptor> = roots.to_vec();
    while let Some(desc) = todo.pop() {
        let name = schema_name(&desc);
        if out.contains_key(&name) {
            continue;
        }
        let (schema, refs) = message_schema(&desc);
        out.insert(name, schema);
        todo.extend(refs);
    }
    out
}
