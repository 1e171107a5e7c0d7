//! Kubernetes' protobuf wire (`application/vnd.kubernetes.protobuf`): the `k8s\0` magic, the
//! `runtime.Unknown` envelope, and objects read and written through the descriptors of
//! Kubernetes' own `generated.proto` files (compiled by build.rs), converted to and from the JSON
//! the rest of the apiserver works on. docs/apiserver.md ("Protobuf") tells the rules.

mod json;
pub mod schema;
pub mod transcode;

use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, Value as Pb};
use serde_json::Value;

pub use json::{field_by_json, is_object, json_name, message_to_json};

/// The media type, as clients send and accept it.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// Every encoded object starts with these four bytes.
const MAGIC: &[u8; 4] = b"k8s\0";

const UNKNOWN: &str = "apimachinery.pkg.runtime.Unknown";

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(&include_bytes!(concat!(env!("OUT_DIR"), "/kubernetes.pb"))[..])
        .expect("the descriptor set build.rs compiled")
});

/// Every message the descriptors define.
pub fn pool() -> &'static DescriptorPool {
    &POOL
}

/// The message of a kind in an API version (`apps/v1`, `Deployment`). The .proto packages are
/// named after a group's first label (`rbac.authorization.k8s.io` → `api.rbac.v1`); the legacy
/// group is `core`; kinds every group shares (Status, DeleteOptions, WatchEvent) live in
/// apimachinery's `meta`.
pub fn message_for(api_version: &str, kind: &str) -> Option<MessageDescriptor> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let label = match group.split('.').next().unwrap_or("") {
        "" => "core",
        "internal" => "apiserverinternal",
        label => label,
    };
    [
        format!("api.{label}.{version}.{kind}"),
        format!("apiextensions_apiserver.pkg.apis.{label}.{version}.{kind}"),
        format!("kube_aggregator.pkg.apis.{label}.{version}.{kind}"),
        format!("apimachinery.pkg.apis.meta.{version}.{kind}"),
    ]
    .iter()
    .find_map(|name| POOL.get_message_by_name(name))
}

/// How strategic merge patch treats a field: its Go type's `+patchStrategy` and
/// `+patchMergeKey` markers, as the .proto comments keep them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PatchMeta {
    /// `merge`, `retainKeys`, `replace`, or a comma-separated pair.
    pub strategy: String,
    pub merge_key: Option<String>,
}

impl PatchMeta {
    pub fn has(&self, strategy: &str) -> bool {
        self.strategy.split(',').any(|s| s == strategy)
    }
}

pub fn patch_meta(field: &prost_reflect::FieldDescriptor) -> PatchMeta {
    let markers = schema::markers(field);
    PatchMeta {
        strategy: markers["patchStrategy"].as_str().unwrap_or("").to_string(),
        merge_key: markers["patchMergeKey"].as_str().map(str::to_string),
    }
}

/// Whether a body is in the protobuf envelope.
pub fn is_envelope(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Reads an object in the envelope into the JSON a client would have sent for it, with its
/// `apiVersion` and `kind` from the envelope's typeMeta.
pub fn decode(bytes: &[u8]) -> Result<Value, String> {
    let raw = bytes.strip_prefix(MAGIC).ok_or(
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]",
    )?;
    let unknown = POOL
        .get_message_by_name(UNKNOWN)
        .expect("runtime.Unknown is defined");
    // Decoded from Bytes, the nested `raw` is a view of the body, not a copy.
    let envelope = DynamicMessage::decode(unknown, bytes::Bytes::copy_from_slice(raw))
        .map_err(|e| e.to_string())?;
    let text = |m: &DynamicMessage, f: &str| match m.get_field_by_name(f).as_deref() {
        Some(Pb::String(s)) => s.clone(),
        _ => String::new(),
    };
    let type_meta = match envelope.get_field_by_name("typeMeta").as_deref() {
        Some(Pb::Message(m)) => m.clone(),
        _ => return Err("the object has no typeMeta".into()),
    };
    let (api_version, kind) = (text(&type_meta, "apiVersion"), text(&type_meta, "kind"));
    let encoding = text(&envelope, "contentEncoding");
    if !encoding.is_empty() {
        return Err(format!("content encoding {encoding:?} is not supported"));
    }
    let content_type = text(&envelope, "contentType");
    if !content_type.is_empty() && content_type != MEDIA_TYPE {
        return Err(format!("content type {content_type:?} is not supported"));
    }
    let desc = message_for(&api_version, &kind)
        .ok_or_else(|| format!("no kind {kind:?} is registered for version {api_version:?}"))?;
    let body = match envelope.get_field_by_name("raw").as_deref() {
        Some(Pb::Bytes(b)) => b.clone(),
        _ => Default::default(),
    };
    let msg = DynamicMessage::decode(desc, body).map_err(|e| e.to_string())?;
    let mut obj = serde_json::Map::new();
    obj.insert("apiVersion".into(), api_version.into());
    obj.insert("kind".into(), kind.into());
    if let Some(Value::Object(fields)) = message_to_json(&msg) {
        obj.extend(
            fields
                .into_iter()
                .filter(|(k, _)| k != "apiVersion" && k != "kind"),
        );
    }
    Ok(Value::Object(obj))
}

/// Writes an object (JSON with `apiVersion` and `kind`) in the envelope. None when no message
/// describes its kind: the caller answers in JSON then.
pub fn encode(obj: &Value) -> Option<Vec<u8>> {
    let api_version = obj.get("apiVersion")?.as_str()?;
    let kind = obj.get("kind")?.as_str()?;
    let desc = message_for(api_version, kind)?;
    let mut raw = Vec::with_capacity(1024);
    json::write_message(&desc, obj, &mut raw);
    Some(envelope(api_version, kind, &raw))
}

/// The same as [`encode`] from the object's JSON bytes, without a `Value` in between (the
/// registry's answers are JSON bytes): None when no message describes the kind or the bytes
/// are not an object's JSON.
pub fn transcode(json: &[u8]) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct TypeMeta<'a> {
        #[serde(rename = "apiVersion", borrow)]
        api_version: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow)]
        kind: Option<std::borrow::Cow<'a, str>>,
    }
    let tm: TypeMeta = serde_json::from_slice(json).ok()?;
    let (api_version, kind) = (tm.api_version?, tm.kind?);
    let desc = message_for(&api_version, &kind)?;
    let mut raw = Vec::with_capacity(json.len() / 2 + 64);
    transcode::Plans::get().write(&desc, json, &mut raw)?;
    Some(envelope(&api_version, &kind, &raw))
}

/// A list of `list_kind` from its metadata and typed items, straight to protobuf (no JSON
/// in between). None when no message describes the kind.
pub fn encode_list<M: serde::Serialize, T: serde::Serialize>(
    api_version: &str,
    list_kind: &str,
    meta: &M,
    items: &[T],
) -> Option<Vec<u8>> {
    let desc = message_for(api_version, list_kind)?;
    let mut raw = Vec::with_capacity(items.len() * 640 + 64);
    transcode::Plans::get().write_list(&desc, meta, items, &mut raw)?;
    Some(envelope(api_version, list_kind, &raw))
}

/// `k8s\0` + runtime.Unknown{typeMeta, raw, contentEncoding: "", contentType: ""}, written
/// straight to bytes (a list's raw message is large: it is copied once).
fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let unknown = POOL
        .get_message_by_name(UNKNOWN)
        .expect("runtime.Unknown is defined");
    let type_meta = POOL
        .get_message_by_name("apimachinery.pkg.runtime.TypeMeta")
        .expect("runtime.TypeMeta is defined");
    let number = |m: &MessageDescriptor, name: &str| {
        m.get_field_by_name(name)
            .unwrap_or_else(|| panic!("{} has {name}", m.full_name()))
            .number()
    };
    let mut out = Vec::with_capacity(raw.len() + api_version.len() + kind.len() + 32);
    out.extend_from_slice(MAGIC);
    let at = json::open(number(&unknown, "typeMeta"), &mut out);
    json::write_string(
        number(&type_meta, "apiVersion"),
        api_version.as_bytes(),
        &mut out,
    );
    json::write_string(number(&type_meta, "kind"), kind.as_bytes(), &mut out);
    json::close(at, &mut out);
    json::write_string(number(&unknown, "raw"), raw, &mut out);
    json::write_string(number(&unknown, "contentEncoding"), b"", &mut out);
    json::write_string(number(&unknown, "contentType"), b"", &mut out);
    out
}

#[cfg(test)]
mod tests;
