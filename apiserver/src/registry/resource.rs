//! The untyped face of a registry, as the HTTP layer uses it: request bodies in, encoded
//! responses (objects, lists, tables, partial metadata, watch events) out.

use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::api::autoscaling::v1::{Scale, ScaleSpec, ScaleStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    DeleteOptions, ObjectMeta, Status, StatusCause, StatusDetails,
};
use k8s_openapi::Metadata;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::generic::{Change, DeleteOutcome, ListOptions, Registry};
use super::selector::{FieldSelector, Selector};
use super::{now_secs, FieldValidation, Kind, Part, ResourceInfo, WriteOptions};
use crate::error::{status_json, ApiError, ApiResult};
use crate::store::BoxFuture;

/// How the client asked to see objects (from its Accept header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Object,
    Table { beta: bool, include: Include },
    Metadata,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    /// Server-side apply.
    Apply,
}

/// A patch document and how to apply it.
#[derive(Clone, Copy, Debug)]
pub struct Patch<'a> {
    pub kind: PatchKind,
    pub body: &'a [u8],
    /// Server-side apply takes over conflicting fields (`force=true`).
    pub force: bool,
}

/// A watch as requested: filters, where to start, and what to send.
#[derive(Clone, Debug, Default)]
pub struct WatchRequest {
    pub labels: Selector,
    pub fields: FieldSelector,
    /// None or "0": begin with the current state as ADDED events.
    pub resource_version: Option<String>,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout: Option<Duration>,
}

/// How often an idle watch tells its client how far it has got.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);

pub trait Resource: Send + Sync {
    fn info(&self) -> &'static ResourceInfo;
    fn get<'a>(
        &'a self,
        ns: Option<&'a str>,
        name: &'a str,
        sub: Option<&'a str>,
        out: Output,
    ) -> BoxFuture<'a, ApiResult<Vec<u8>>>;
    fn list<'a>(
        &'a self,
        ns: Option<&'a str>,
        opts: &'a ListOptions,
        out: Output,
    ) -> BoxFuture<'a, ApiResult<Vec<u8>>>;
    fn create<'a>(
        &'a self,
        ns: Option<&'a str>,
        body: &'a [u8],
        opts: &'a WriteOptions,
        out: Output,
    ) -> BoxFuture<'a, ApiResult<Vec<u8>>>;
    /// POST to a subresource (pods/binding).
    fn create_sub<'a>(
        &'a self,
        ns: Option<&'a str>,
        name: &'a str,
        sub: &'a str,
        body: &'a [u8],
        opts: &'a WriteOptions,
    ) -> BoxFuture<'a, ApiResult<Vec<u8>>>;
    /// PUT; the code is 201 when the object was created.
    fn update<'a>(
        &'a self,
        ns: Option<&'a str>,
        name: &'a str,
        sub: Option<&'a str>,
        body: &'a [u8],
        opts: &'a WriteOptions,
        out: Output,
    ) -> BoxFuture<'a, ApiResult<(u16, Vec<u8>)>>;
    fn patch<'a>(
        &'a self,
        ns: Option<&'a str>,
        name: &'a str,
        sub: Option<&'a str>,
        patch: Patch<'a>,
        opts: &'a WriteOptions,
        out: Output,
    ) -> BoxFuture<'a, ApiResult<(u16, Vec<u8>)>>;
    fn delete<'a>(
        &'a self,
        ns: Option<&'a str>,
        name: &'a str,
        opts: &'a DeleteOptions,
        dry_run: bool,
    ) -> BoxFuture<'a, ApiResult<(u16, Vec<u8>)>>;
    fn delete_collection<'a>(
        &'a self,
        ns: Option<&'a str>,
        list: &'a ListOptions,
        opts: &'a DeleteOptions,
        dry_run: bool,
    ) -> BoxFuture<'a, ApiResult<Vec<u8>>>;
    /// A list in protobuf, written from the typed objects (None: the kind has no message, so
    /// the caller answers JSON).
    fn list_protobuf<'a>(
        &'a self,
        _ns: Option<&'a str>,
        _opts: &'a ListOptions,
    ) -> BoxFuture<'a, ApiResult<Option<Vec<u8>>>> {
        Box::pin(async { Ok(None) })
    }
    /// How many objects there are (in a namespace).
    fn count<'a>(&'a self, ns: Option<&'a str>) -> BoxFuture<'a, ApiResult<usize>>;
    /// Newline-delimited watch events, ending at the timeout or when the client goes away.
    fn watch<'a>(
        &'a self,
        ns: Option<&'a str>,
        req: WatchRequest,
        out: Output,
    ) -> BoxFuture<'a, ApiResult<mpsc::Receiver<Bytes>>>;
}

/// Decodes a request body as the kind `T`, checking apiVersion/kind and, when asked for,
/// rejecting (or warning of) unknown and duplicate fields.
pub fn decode_body<T: DeserializeOwned + Serialize>(
    info: &ResourceInfo,
    expected_kind: &str,
    expected_api_version: &str,
    body: &[u8],
    validation: FieldValidation,
) -> ApiResult<T> {
    decode_body_as_sent(
        info,
        expected_kind,
        expected_api_version,
        body,
        validation,
        body,
    )
}

/// [`decode_body`] of `body` made from what the client `sent` (a patch): the field problems
/// are those of what was sent, in its order.
pub fn decode_body_as_sent<T: DeserializeOwned + Serialize>(
    info: &ResourceInfo,
    expected_kind: &str,
    expected_api_version: &str,
    body: &[u8],
    validation: FieldValidation,
    sent: &[u8],
) -> ApiResult<T> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "{expected_kind} in version {:?} cannot be handled as a {expected_kind}: {e}",
            info.version
        ))
    })?;
    if !value.is_object() {
        return Err(ApiError::bad_request(format!(
            "{expected_kind} in version {:?} cannot be handled as a {expected_kind}: the body must be a JSON object",
            info.version
        )));
    }
    if let Some(v) = value.get("apiVersion").and_then(Value::as_str) {
        if !v.is_empty() && v != expected_api_version {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected_api_version})"
            )));
        }
    }
    if let Some(k) = value.get("kind").and_then(Value::as_str) {
        if !k.is_empty() && k != expected_kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({expected_kind})"
            )));
        }
    }
    let obj: T = T::deserialize(&value).map_err(|e| {
        ApiError::bad_request(format!(
            "{expected_kind} in version {:?} cannot be handled as a {expected_kind}: {e}",
            info.version
        ))
    })?;
    if validation != FieldValidation::Ignore {
        let round = serde_json::to_value(&obj).unwrap_or_default();
        let mut unknown = Vec::new();
        unknown_fields("", &value, &round, &mut unknown);
        let list = super::strict::problems(sent, &unknown);
        if validation == FieldValidation::Warn {
            list.into_iter().for_each(crate::warnings::add);
        } else if !list.is_empty() {
            return Err(ApiError::bad_request(format!(
                "{expected_kind} in version {:?} cannot be handled as a {expected_kind}: strict decoding error: {}",
                info.version,
                list.join(", ")
            )));
        }
    }
    Ok(obj)
}

/// Fields present in what the client sent but gone after decoding: fields the type lacks.
fn unknown_fields(path: &str, sent: &Value, kept: &Value, out: &mut Vec<String>) {
    use super::strict::{MAX_PATH, MAX_PROBLEMS};
    match (sent, kept) {
        (Value::Object(s), Value::Object(k)) => {
            for (key, v) in s {
                // Bounded as the strict walk is: long paths are not followed.
                if path.len() + key.len() >= MAX_PATH || out.len() >= MAX_PROBLEMS {
                    continue;
                }
                let p = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match k.get(key) {
                    Some(kv) => unknown_fields(&p, v, kv, out),
                    // Every known field that was set survives decoding; only unknown ones vanish.
                    None if !v.is_null() => out.push(p),
                    None => {}
                }
            }
        }
        (Value::Array(s), Value::Array(k)) => {
            if path.len() + 24 >= MAX_PATH {
                return;
            }
            for (i, (sv, kv)) in s.iter().zip(k).enumerate() {
                unknown_fields(&format!("{path}[{i}]"), sv, kv, out);
            }
        }
        _ => {}
    }
}

fn encode<T: Serialize>(v: &T) -> ApiResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(ApiError::internal)
}

fn partial_metadata(meta: &ObjectMeta) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
    })
}

impl<K: Kind> Registry<K> {
    fn table(
        &self,
        items: &[K::Obj],
        meta: Value,
        include: Include,
        beta: bool,
        headers: bool,
    ) -> ApiResult<Vec<u8>> {
        let now = now_secs();
        let rows: Vec<Value> = items
            .iter()
            .map(|obj| {
                let mut row = json!({ "cells": self.kind.row(obj, now) });
                match include {
                    Include::None => {}
                    Include::Metadata => row["object"] = partial_metadata(obj.metadata()),
                    Include::Object => {
                        row["object"] = serde_json::to_value(obj).unwrap_or_default()
                    }
                }
                row
            })
            .collect();
        let columns = if headers {
            serde_json::to_value(self.kind.columns()).unwrap_or_default()
        } else {
            json!([])
        };
        encode(&json!({
            "kind": "Table",
            "apiVersion": if beta { "meta.k8s.io/v1beta1" } else { "meta.k8s.io/v1" },
            "metadata": meta,
            "columnDefinitions": columns,
            "rows": rows,
        }))
    }

    fn render_one(&self, obj: &K::Obj, out: Output) -> ApiResult<Vec<u8>> {
        match out {
            Output::Object => encode(obj),
            Output::Metadata => encode(&partial_metadata(obj.metadata())),
            Output::Table { beta, include } => self.table(
                std::slice::from_ref(obj),
                json!({ "resourceVersion": obj.metadata().resource_version }),
                include,
                beta,
                true,
            ),
        }
    }

    fn render_list(
        &self,
        items: &[K::Obj],
        rev: i64,
        cont: Option<String>,
        out: Output,
    ) -> ApiResult<Vec<u8>> {
        let mut meta = json!({ "resourceVersion": rev.to_string() });
        if let Some(c) = cont {
            meta["continue"] = c.into();
        }
        match out {
            Output::Table { beta, include } => self.table(items, meta, include, beta, true),
            Output::Metadata => encode(&json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": meta,
                "items": items.iter().map(|o| partial_metadata(o.metadata())).collect::<Vec<_>>(),
            })),
            Output::Object => {
                // Items are written as they are, not re-parsed into a Value.
                let mut buf = Vec::with_capacity(items.len() * 1024 + 128);
                buf.extend_from_slice(b"{\"kind\":");
                buf.extend(encode(&self.info().list_kind)?);
                buf.extend_from_slice(b",\"apiVersion\":");
                buf.extend(encode(&self.info().api_version())?);
                buf.extend_from_slice(b",\"metadata\":");
                buf.extend(encode(&meta)?);
                buf.extend_from_slice(b",\"items\":[");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        buf.push(b',');
                    }
                    serde_json::to_writer(&mut buf, item).map_err(ApiError::internal)?;
                }
                buf.extend_from_slice(b"]}");
                Ok(buf)
            }
        }
    }

    fn decode_obj(&self, body: &[u8], validation: FieldValidation) -> ApiResult<K::Obj> {
        let info = self.info();
        decode_body(info, info.kind, &info.api_version(), body, validation)
    }

    /// The object a patch made: its field problems are the patch's.
    fn decode_patched(
        &self,
        body: &[u8],
        validation: FieldValidation,
        patch: &[u8],
    ) -> ApiResult<K::Obj> {
        let info = self.info();
        decode_body_as_sent(
            info,
            info.kind,
            &info.api_version(),
            body,
            validation,
            patch,
        )
    }

    /// Server-side apply: the object is created when absent (201), else the configuration is
    /// applied for the field manager (registry/apply.rs).
    #[allow(clippy::too_many_arguments)]
    async fn server_side_apply(
        &self,
        ns: Option<&str>,
        name: &str,
        sub: Option<&str>,
        body: &[u8],
        force: bool,
        opts: &WriteOptions,
        out: Output,
    ) -> ApiResult<(u16, Vec<u8>)> {
        if sub.is_some() {
            return Err(ApiError::unsupported_media_type(
                "application/apply-patch+yaml",
                &[
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/strategic-merge-patch+json",
                ],
            ));
        }
        let manager = opts
            .field_manager
            .as_deref()
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "PATCH is not allowed: fieldManager is required for apply requests",
                )
            })?;
        let config: Value = serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        if !config.is_object() {
            return Err(ApiError::bad_request(
                "error decoding YAML: the configuration must be an object",
            ));
        }
        match config["metadata"]["name"].as_str() {
            Some(n) if n == name => {}
            Some(n) => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )))
            }
            None => {
                return Err(ApiError::bad_request(
                    "metadata.name: Required value: name is required",
                ))
            }
        }
        let now = super::now_text();
        let conflict = |c: super::apply::Conflicts| {
            let causes =
                c.0.iter()
                    .map(|(m, f)| StatusCause {
                        reason: Some("FieldManagerConflict".into()),
                        message: Some(format!("conflict with {m}")),
                        field: Some(f.clone()),
                    })
                    .collect();
            ApiError::new(409, "Conflict", c.message()).with_details(StatusDetails {
                causes: Some(causes),
                ..Default::default()
            })
        };
        let opts = &WriteOptions {
            apply: true,
            ..opts.clone()
        };
        let updated = self
            .modify(ns, name, Part::Main, opts, |old| {
                let live = serde_json::to_value(old).map_err(ApiError::internal)?;
                let doc = super::apply::apply(Some(&live), &config, manager, force, &now)
                    .map_err(conflict)?;
                let bytes = serde_json::to_vec(&doc).map_err(ApiError::internal)?;
                self.decode_obj(&bytes, opts.field_validation)
            })
            .await;
        match updated {
            Ok(obj) => Ok((200, self.render_one(&obj, out)?)),
            Err(e) if e.code == 404 => {
                let doc =
                    super::apply::apply(None, &config, manager, force, &now).map_err(conflict)?;
                let bytes = serde_json::to_vec(&doc).map_err(ApiError::internal)?;
                let obj = self.decode_obj(&bytes, opts.field_validation)?;
                let created = Registry::create(self, ns, obj, opts).await?;
                Ok((201, self.render_one(&created, out)?))
            }
            Err(e) => Err(e),
        }
    }

    fn to_scale(&self, obj: &K::Obj) -> ApiResult<Scale> {
        let (spec, status, selector) = self.kind.scale(obj).ok_or_else(ApiError::no_route)?;
        let m = obj.metadata();
        Ok(Scale {
            metadata: ObjectMeta {
                name: m.name.clone(),
                namespace: m.namespace.clone(),
                uid: m.uid.clone(),
                resource_version: m.resource_version.clone(),
                creation_timestamp: m.creation_timestamp.clone(),
                ..Default::default()
            },
            spec: Some(ScaleSpec {
                replicas: Some(spec),
            }),
            status: Some(ScaleStatus {
                replicas: status,
                selector: Some(selector),
            }),
        })
    }

    fn deleted_status(&self, obj: &K::Obj) -> ApiResult<Vec<u8>> {
        let info = self.info();
        Ok(status_json(&Status {
            status: Some("Success".into()),
            details: Some(StatusDetails {
                name: obj.metadata().name.clone(),
                group: (!info.group.is_empty()).then(|| info.group.to_string()),
                kind: Some(info.resource.to_string()),
                uid: obj.metadata().uid.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    fn check_sub(&self, sub: Option<&str>) -> ApiResult<Part> {
        match sub {
            None => Ok(Part::Main),
            Some("status") if self.info().has_subresource("status") => Ok(Part::Status),
            Some("scale") if self.info().has_subresource("scale") => Ok(Part::Internal),
            Some("ephemeralcontainers") if self.info().has_subresource("ephemeralcontainers") => {
                Ok(Part::Ephemeral)
            }
            Some(_) => Err(ApiError::no_route()),
        }
    }
}

fn apply_patch(doc: &mut Value, kind: PatchKind, body: &[u8]) -> ApiResult<()> {
    match kind {
        PatchKind::Merge => {
            let patch: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "error decoding patch: a merge patch must be a JSON object",
                ));
            }
            json_patch::merge(doc, &patch);
        }
        // Applies are served by server_side_apply, on objects only.
        PatchKind::Apply => {
            return Err(ApiError::unsupported_media_type(
                "application/apply-patch+yaml",
                &[
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/strategic-merge-patch+json",
                ],
            ))
        }
        PatchKind::Strategic => {
            let patch: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            *doc = super::strategic::apply(doc, &patch).map_err(ApiError::bad_request)?;
        }
        PatchKind::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            json_patch::patch(doc, &patch.0).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the JSON patch could not be applied: {e}"),
                )
            })?;
        }
    }
    Ok(())
}

impl<K: Kind> Resource for Registry<K> {
    fn info(&self) -> &'static ResourceInfo {
        self.kind.info()
    }

    fn get<'a>(
        &'a self,
        ns: Option<&'a str>,
        name: &'a str,
        sub: Option<&'a str>,
        out: Output,
    ) -> BoxFuture<'a, ApiResult<Vec<u8>>> {
        Box::pin(async move {
            let obj = Registry::get(self, ns, name).await?;
            match sub {
                None | Some("status" | "ephemeralcontainers") => {
                    self.check_sub(sub)?;
                    self.render_one(&obj, out)
                }
                Some("scale") if self.info().has_subresource("scale") => {
                    encode(&self.to_scale(&obj)?)
                }
                Some(_) => Err(ApiError::no_route()),
            }
        })
    }

    fn list<'a>(
        &'a self,
        ns: Option<&'a str>,
        opts: &'a ListOptions,
        out: Output,
    ) -> BoxFuture<'a, ApiResult<Vec<u8>>> {
        Box::pin(async move {
            let result = Registry::list(self, ns, opts).await?;
            self.render_list(&result.items, result.rev, result.continue_token, out)
        })
    }

    fn list_protobuf<'a>(
        &'a self,
        ns: Option<&'a str>,
        opts: &'a ListOptions,
    ) -> BoxFuture<'a, ApiResult<Option<Vec<u8>>>> {
        Box::pin(async move {
            let info = self.info();
            let api_version = info.api_version();
            if crate::protobuf::message_for(&api_version, info.list_kind).is_none() {
                return Ok(None);
            }
            let result = Registry::list(self, ns, opts).await?;
            let meta = k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta {
                resource_version: Some(result.rev.to_string()),
                continue_: result.continue_token,
                ..Default::default()
            };
            Ok(crate::protobuf::encode_list(
                &api_version,
                info.list_kind,
                &meta,
                &result.items,
            ))
        })
    }

    fn create<'a>(
        &'a self,
        ns: Option<&'a str>,
        body: &'a [u8],
        opts: &'a WriteOptions,
        out: Output,
    ) -> BoxFuture<'a, ApiResult<Vec<u8>>> {
        Box::pin(async move {
            let obj = self.decode_obj(body, opts.field_validation)?;
            let created = Registry::create(self, ns, obj, opts).await?;
            self.render_one(&created, out)
        })
    }

    fn create_sub<'a>(
        &'a self,
        ns: Option<&'a str>,
        name: &'a str,
        sub: &'a str,
        body: &'a [u8],
        opts: &'a WriteOptions,
    ) -> BoxFuture<'a, ApiResult<Vec<u8>>> {
        Box::pin(async move {
            if !self.info().has_subresource(sub) {
                return Err(ApiError::no_route());
            }
            self.modify(ns, name, Part::Internal, opts, |old| {
                let mut new = old.clone();
                self.kind.apply_subresource(sub, &mut new, body)?;
                Ok(new)
            })
            .await?;
            Ok(status_json(&Status {
                status: Some("Success".into()),
                code: Some(201),
                ..Default::default()
            }))
        })
    }

    fn update<'a>(
        &'a self,
        ns: Option<&'a str>,
        name: &'a str,
        sub: Option<&'a str>,
        body: &'a [u8],
        opts: &'a WriteOptions,
        out: Output,
    ) -> BoxFuture<'a, ApiResult<(u16, Vec<u8>)>> {
        Box::pin(async move {
            let part = self.check_sub(sub)?;
            if sub == Some("scale") {
                let info = self.info();
                let scale: Scale =
                    decode_body(info, "Scale", "autoscaling/v1", body, opts.field_validation)?;
                let replicas = scale.spec.and_then(|s| s.replicas).unwrap_or(0);
                let wanted_rv = scale.metadata.resource_version.filter(|v| !v.is_empty());
                let updated = self
                    .modify(ns, name, part, opts, |old| {
                        let mut new = old.clone();
                        self.kind.set_replicas(&mut new, replicas);
                        if wanted_rv.is_some() {
                            new.metadata_mut().resource_version = wanted_rv.clone();
                        }
                        Ok(new)
                    })
                    .await?;
                return Ok((200, encode(&self.to_scale(&updated)?)?));
            }
            let obj = self.decode_obj(body, opts.field_validation)?;
            let (updated, created) = Registry::update(self, ns, name, obj, part, opts).await?;
            Ok((
                if created { 201 } else { 200 },
                self.render_one(&updated, out)?,
            ))
        })
    }

    fn patch<'a>(
        &'a self,
        ns: Option<&'a str>,
        name: &'a str,
        sub: Option<&'a str>,
        patch: Patch<'a>,
        opts: &'a WriteOptions,
        out: Output,
    ) -> BoxFuture<'a, ApiResult<(u16, Vec<u8>)>> {
        let Patch { kind, body, force } = patch;
        Box::pin(async move {
            let part = self.check_sub(sub)?;
            if kind == PatchKind::Apply {
                return self
                    .server_side_apply(ns, name, sub, body, force, opts, out)
                    .await;
            }
            if sub == Some("scale") {
                let updated = self
                    .modify(ns, name, part, opts, |old| {
                        let mut doc = serde_json::to_value(self.to_scale(old)?)
                            .map_err(ApiError::internal)?;
                        apply_patch(&mut doc, kind, body)?;
                        let scale: Scale = serde_json::from_value(doc).map_err(|e| {
                            ApiError::bad_request(format!("patched Scale is not valid: {e}"))
                        })?;
                        let mut new = old.clone();
                        self.kind.set_replicas(
                            &mut new,
                            scale.spec.and_then(|s| s.replicas).unwrap_or(0),
                        );
                        new.metadata_mut().resource_version = scale.metadata.resource_version;
                        Ok(new)
                    })
                    .await?;
                return Ok((200, encode(&self.to_scale(&updated)?)?));
            }
            let updated = self
                .modify(ns, name, part, opts, |old| {
                    let mut doc = serde_json::to_value(old).map_err(ApiError::internal)?;
                    apply_patch(&mut doc, kind, body)?;
                    let bytes = serde_json::to_vec(&doc).map_err(ApiError::internal)?;
                    // A JSON patch names fields in its operations, not as keys.
                    let sent: &[u8] = if kind == PatchKind::Json { b"{}" } else { body };
                    self.decode_patched(&bytes, opts.field_validation, sent)
                })
                .await?;
            Ok((200, self.render_one(&updated, out)?))
        })
    }

    fn delete<'a>(
        &'a self,
        ns: Option<&'a str>,
        name: &'a str,
        opts: &'a DeleteOptions,
        dry_run: bool,
    ) -> BoxFuture<'a, ApiResult<(u16, Vec<u8>)>> {
        Box::pin(async move {
            match Registry::delete(self, ns, name, opts, dry_run).await? {
                DeleteOutcome::Deleted(obj) if !self.kind.returns_deleted_object() => {
                    Ok((200, self.deleted_status(&obj)?))
                }
                DeleteOutcome::Deleted(obj) => Ok((200, encode(&obj)?)),
                DeleteOutcome::Pending(obj) => {
                    let code = if opts.orphan_dependents == Some(false) {
                        202
                    } else {
                        200
                    };
                    Ok((code, encode(&obj)?))
                }
            }
        })
    }

    fn delete_collection<'a>(
        &'a self,
        ns: Option<&'a str>,
        list: &'a ListOptions,
        opts: &'a DeleteOptions,
        dry_run: bool,
    ) -> BoxFuture<'a, ApiResult<Vec<u8>>> {
        Box::pin(async move {
            let result = Registry::list(self, ns, list).await?;
            let mut deleted = Vec::with_capacity(result.items.len());
            for obj in &result.items {
                let meta = obj.metadata();
                let name = meta.name.as_deref().unwrap_or_default();
                match Registry::delete(self, meta.namespace.as_deref(), name, opts, dry_run).await {
                    Ok(outcome) => deleted.push(outcome.object().clone()),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            self.render_list(
                &deleted,
                self.store().current_revision(),
                None,
                Output::Object,
            )
        })
    }

    fn count<'a>(&'a self, ns: Option<&'a str>) -> BoxFuture<'a, ApiResult<usize>> {
        Box::pin(async move {
            let prefix = self.info().prefix(ns);
            let range = self
                .store()
                .range(crate::store::RangeRequest {
                    prefix: &prefix,
                    ..Default::default()
                })
                .await
                .map_err(ApiError::internal)?;
            Ok(range.kvs.len())
        })
    }

    fn watch<'a>(
        &'a self,
        ns: Option<&'a str>,
        req: WatchRequest,
        out: Output,
    ) -> BoxFuture<'a, ApiResult<mpsc::Receiver<Bytes>>> {
        Box::pin(async move {
            let from_state = matches!(req.resource_version.as_deref(), None | Some("") | Some("0"))
                || req.send_initial_events;
            let (initial, after) = if from_state {
                let opts = ListOptions {
                    labels: req.labels.clone(),
                    fields: req.fields.clone(),
                    ..Default::default()
                };
                let listed = Registry::list(self, ns, &opts).await?;
                (listed.items, listed.rev)
            } else {
                let v = req.resource_version.as_deref().unwrap_or("0");
                let rev = v.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version: {v:?}"))
                })?;
                (Vec::new(), rev)
            };
            let (tx, rx) = mpsc::channel::<Bytes>(64);
            let watch = match Registry::watch(
                self,
                ns,
                req.labels.clone(),
                req.fields.clone(),
                after,
            )
            .await
            {
                Ok(w) => w,
                Err(e) if e.code == 410 => {
                    // Kubernetes reports a too-old revision inside the stream.
                    let _ = tx.try_send(event_line("ERROR", &e.to_status()));
                    return Ok(rx);
                }
                Err(e) => return Err(e),
            };
            let this = self.clone();
            tokio::spawn(async move { this.stream(watch, initial, after, req, out, tx).await });
            Ok(rx)
        })
    }
}

fn event_line<T: Serialize>(kind: &str, object: &T) -> Bytes {
    let mut line =
        serde_json::to_vec(&json!({ "type": kind, "object": object })).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

impl<K: Kind> Registry<K> {
    fn event(&self, kind: &str, obj: &K::Obj, out: Output, headers: bool) -> Bytes {
        let object: Value = match out {
            Output::Object => serde_json::to_value(obj).unwrap_or_default(),
            Output::Metadata => partial_metadata(obj.metadata()),
            Output::Table { beta, include } => self
                .table(
                    std::slice::from_ref(obj),
                    json!({ "resourceVersion": obj.metadata().resource_version }),
                    include,
                    beta,
                    headers,
                )
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default(),
        };
        event_line(kind, &object)
    }

    fn bookmark(&self, rev: i64, initial_end: bool) -> Bytes {
        let mut meta = json!({ "resourceVersion": rev.to_string() });
        if initial_end {
            meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        event_line(
            "BOOKMARK",
            &json!({ "kind": self.info().kind, "apiVersion": self.info().api_version(), "metadata": meta }),
        )
    }

    async fn stream(
        self,
        mut watch: super::generic::TypedWatch<K>,
        initial: Vec<K::Obj>,
        after: i64,
        req: WatchRequest,
        out: Output,
        tx: mpsc::Sender<Bytes>,
    ) {
        let mut headers = true;
        for obj in &initial {
            if tx
                .send(self.event("ADDED", obj, out, headers))
                .await
                .is_err()
            {
                return;
            }
            headers = false;
        }
        if req.send_initial_events
            && req.bookmarks
            && tx.send(self.bookmark(after, true)).await.is_err()
        {
            return;
        }
        let deadline = req.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
        ticker.tick().await;
        loop {
            let timeout = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tx.closed() => return,
                _ = timeout => return,
                _ = ticker.tick(), if req.bookmarks => {
                    if tx.send(self.bookmark(watch.progress(), false)).await.is_err() {
                        return;
                    }
                }
                change = watch.next() => {
                    let line = match change {
                        None => return,
                        Some(Err(e)) => {
                            let _ = tx.send(event_line("ERROR", &e.to_status())).await;
                            return;
                        }
                        Some(Ok(Change::Added(o))) => self.event("ADDED", &o, out, headers),
                        Some(Ok(Change::Modified(o))) => self.event("MODIFIED", &o, out, headers),
                        Some(Ok(Change::Deleted(o))) => self.event("DELETED", &o, out, headers),
                    };
                    headers = false;
                    if tx.send(line).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    #[test]
    fn strict_decoding_names_unknown_fields() {
        let info = &crate::registry::kinds::pod::INFO;
        let body = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x","labelz":{}},"spec":{"containers":[{"name":"c","image":"i","imagePullPolicy":"","bogus":1}]}}"#;
        let err = decode_body::<Pod>(info, "Pod", "v1", body, FieldValidation::Strict).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message
                .contains("unknown field \"spec.containers[0].bogus\""),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("unknown field \"metadata.labelz\""),
            "{}",
            err.message
        );
        assert!(decode_body::<Pod>(info, "Pod", "v1", body, FieldValidation::Ignore).is_ok());
    }

    #[test]
    fn wrong_kind_or_version_is_a_bad_request() {
        let info = &crate::registry::kinds::pod::INFO;
        let err = decode_body::<Pod>(
            info,
            "Pod",
            "v1",
            br#"{"apiVersion":"v1","kind":"Service"}"#,
            FieldValidation::Ignore,
        )
        .unwrap_err();
        assert_eq!(err.code, 400);
        let err = decode_body::<Pod>(info, "Pod", "v1", b"{not json", FieldValidation::Ignore)
            .unwrap_err();
        assert_eq!(err.code, 400);
        assert!(err
            .message
            .starts_with("Pod in version \"v1\" cannot be handled as a Pod"));
    }
}
