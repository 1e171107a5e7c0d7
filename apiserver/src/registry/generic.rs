//! The store logic every kind shares: create, get, list, update, delete and watch on top of the
//! etcd-shaped store, with optimistic concurrency, graceful deletion, finalizers, generation,
//! selectors and paging. Typed: the HTTP layer and the built-in controllers both call it.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta, Time};
use k8s_openapi::Metadata;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::selector::{FieldSelector, Selector};
use super::{now, validation, Kind, Part, ResourceInfo, WriteOptions};
use crate::error::{ApiError, ApiResult, FieldError, FieldErrors};
use crate::store::{EventKind, KeyValue, RangeRequest, Store, StoreError, WatchStream};

/// Go's `omitempty` on metadata's lists: an empty list of finalizers or owner references is
/// stored (and answered) as no field, as kube-apiserver does, whoever removed the last one.
fn omit_empty(meta: &mut ObjectMeta) {
    if meta.finalizers.as_ref().is_some_and(Vec::is_empty) {
        meta.finalizers = None;
    }
    if meta.owner_references.as_ref().is_some_and(Vec::is_empty) {
        meta.owner_references = None;
    }
}

/// The finalizers that the garbage collector acts on.
pub const ORPHAN_FINALIZER: &str = "orphan";
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    pub labels: Selector,
    pub fields: FieldSelector,
    pub limit: usize,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

impl ListOptions {
    pub fn with_labels(labels: Selector) -> Self {
        ListOptions {
            labels,
            ..Default::default()
        }
    }
}

pub struct ListResult<T> {
    pub items: Vec<T>,
    pub rev: i64,
    pub continue_token: Option<String>,
}

/// What a delete did: removed the object, or marked it (graceful deletion, finalizers).
#[derive(Debug)]
pub enum DeleteOutcome<T> {
    Deleted(T),
    Pending(T),
}

impl<T> DeleteOutcome<T> {
    pub fn object(&self) -> &T {
        match self {
            DeleteOutcome::Deleted(o) | DeleteOutcome::Pending(o) => o,
        }
    }
}

/// A change seen by a watch, after selector filtering.
#[derive(Debug)]
pub enum Change<T> {
    Added(T),
    Modified(T),
    Deleted(T),
}

#[derive(Serialize, Deserialize)]
struct ContinueToken {
    v: String,
    rv: i64,
    start: String,
}

fn store_error(info: &ResourceInfo, name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::AlreadyExists(_) => ApiError::already_exists(&info.target(name)),
        StoreError::NotFound(_) => ApiError::not_found(&info.target(name)),
        StoreError::Conflict { .. } => ApiError::stale(&info.target(name)),
        StoreError::Compacted {
            requested,
            compacted,
        } => ApiError::gone(format!(
            "too old resource version: {requested} ({compacted})"
        )),
        StoreError::FutureRevision { requested, current } => ApiError::timeout(format!(
            "Too large resource version: {requested}, current: {current}"
        )),
        StoreError::Backend(m) => ApiError::internal(m),
        StoreError::Closed => ApiError::service_unavailable("the storage is shutting down"),
    }
}

pub fn random_suffix() -> String {
    // Kubernetes' alphabet: no vowels (no words), no confusable characters.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub struct Registry<K: Kind> {
    pub kind: Arc<K>,
    store: Arc<dyn Store>,
}

impl<K: Kind> Clone for Registry<K> {
    fn clone(&self) -> Self {
        Registry {
            kind: self.kind.clone(),
            store: self.store.clone(),
        }
    }
}

impl<K: Kind> Registry<K> {
    pub fn new(kind: K, store: Arc<dyn Store>) -> Self {
        Registry {
            kind: Arc::new(kind),
            store,
        }
    }

    pub fn info(&self) -> &'static ResourceInfo {
        self.kind.info()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn scope<'a>(&self, ns: Option<&'a str>) -> Option<&'a str> {
        if self.info().namespaced {
            ns
        } else {
            None
        }
    }

    fn key(&self, ns: Option<&str>, name: &str) -> String {
        self.info().key(self.scope(ns), name)
    }

    fn err(&self, name: &str, e: StoreError) -> ApiError {
        store_error(self.info(), name, e)
    }

    pub fn decode(&self, kv: &KeyValue) -> ApiResult<K::Obj> {
        let mut obj: K::Obj = serde_json::from_slice(&kv.value)
            .map_err(|e| ApiError::internal(format!("decoding {}: {e}", kv.key)))?;
        obj.metadata_mut().resource_version = Some(kv.mod_rev.to_string());
        Ok(obj)
    }

    fn encode(&self, obj: &K::Obj) -> ApiResult<Bytes> {
        // The revision is the store's business; it is put back on read.
        let mut obj = obj.clone();
        obj.metadata_mut().resource_version = None;
        serde_json::to_vec(&obj)
            .map(Bytes::from)
            .map_err(ApiError::internal)
    }

    fn validate_meta(&self, obj: &K::Obj, errs: &mut FieldErrors) {
        let info = self.info();
        validation::object_meta(obj.metadata(), info.namespaced, info.name_rule, errs);
    }

    fn invalid(&self, obj: &K::Obj, errs: &[FieldError]) -> ApiError {
        let name = obj.metadata().name.clone().unwrap_or_default();
        ApiError::invalid(self.info().kind, &self.info().target(&name), errs)
    }

    /// New objects may only go into namespaces that exist and are not being deleted.
    /// Forbidden unless `m`'s object exists (looked up `m.attempts` times, 100–200 ms apart).
    async fn check_exists(&self, m: &super::MustExist, name: &str) -> ApiResult<()> {
        let key = m.info.key(Some(&m.namespace), &m.name);
        for attempt in 0..m.attempts.max(1) {
            if attempt > 0 {
                let pause = 100 + rand::random::<u64>() % 100;
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            if self
                .store
                .get(&key)
                .await
                .map_err(|e| self.err(name, e))?
                .is_some()
            {
                return Ok(());
            }
        }
        Err(ApiError::forbidden(&self.info().target(name), &m.why))
    }

    async fn check_namespace(&self, ns: &str) -> ApiResult<()> {
        let key = super::kinds::namespace::INFO.key(None, ns);
        let kv = self
            .store
            .get(&key)
            .await
            .map_err(|e| self.err(ns, e))?
            .ok_or_else(|| ApiError::not_found(&super::kinds::namespace::INFO.target(ns)))?;
        let namespace: Namespace = serde_json::from_slice(&kv.value).map_err(ApiError::internal)?;
        if namespace.metadata.deletion_timestamp.is_some() {
            let t = self.info().target("");
            return Err(ApiError::forbidden(
                &t,
                &format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            ));
        }
        Ok(())
    }

    pub async fn get(&self, ns: Option<&str>, name: &str) -> ApiResult<K::Obj> {
        let key = self.key(ns, name);
        match self.store.get(&key).await.map_err(|e| self.err(name, e))? {
            Some(kv) => self.decode(&kv),
            None => Err(ApiError::not_found(&self.info().target(name))),
        }
    }

    /// Whether `obj` passes the selectors.
    pub fn matches(&self, obj: &K::Obj, labels: &Selector, fields: &FieldSelector) -> bool {
        labels.matches_opt(obj.metadata().labels.as_ref())
            && (fields.is_empty() || fields.matches(|f| self.field_value(obj, f)))
    }

    fn field_value(&self, obj: &K::Obj, field: &str) -> Option<String> {
        let meta = obj.metadata();
        match field {
            "metadata.name" => meta.name.clone(),
            "metadata.namespace" => Some(meta.namespace.clone().unwrap_or_default()),
            other => self.kind.field(obj, other),
        }
    }

    pub fn check_fields(&self, fields: &FieldSelector) -> ApiResult<()> {
        for r in &fields.requirements {
            if !self.kind.supports_field(&r.field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {}",
                    r.field
                )));
            }
        }
        Ok(())
    }

    pub async fn list(
        &self,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> ApiResult<ListResult<K::Obj>> {
        self.check_fields(&opts.fields)?;
        let ns = self.scope(ns);
        let prefix = self.info().prefix(ns);
        let mut rev = 0;
        let mut start: Option<String> = None;
        if let Some(token) = opts.continue_token.as_deref().filter(|t| !t.is_empty()) {
            if opts
                .resource_version
                .as_deref()
                .is_some_and(|v| !v.is_empty() && v != "0")
            {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            let t: ContinueToken = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token.trim_end_matches('='))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"))?;
            rev = t.rv;
            start = Some(format!("{prefix}{}", t.start));
        } else if let Some(v) = opts.resource_version.as_deref().filter(|v| !v.is_empty()) {
            let requested: i64 = v
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v:?}")))?;
            match opts.resource_version_match.as_deref() {
                Some("Exact") => rev = requested,
                Some("NotOlderThan") | None | Some("") => {
                    let current = self.store.current_revision();
                    if requested > current {
                        return Err(self.err("", StoreError::FutureRevision {
                            requested,
                            current,
                        }));
                    }
                }
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "unsupported resourceVersionMatch {other:?}: supported values are \"Exact\" and \"NotOlderThan\""
                    )))
                }
            }
        }
        // One named object: read its key instead of the whole range.
        if let (Some(name), true) = (
            opts.fields.exact("metadata.name"),
            ns.is_some() || !self.info().namespaced,
        ) {
            if start.is_none() && rev == 0 {
                let rev = self.store.current_revision();
                let items = match self.get(ns, name).await {
                    Ok(obj) if self.matches(&obj, &opts.labels, &opts.fields) => vec![obj],
                    Ok(_) => vec![],
                    Err(e) if e.code == 404 => vec![],
                    Err(e) => return Err(e),
                };
                return Ok(ListResult {
                    items,
                    rev,
                    continue_token: None,
                });
            }
        }
        let range = self
            .store
            .range(RangeRequest {
                prefix: &prefix,
                start_after: start.as_deref(),
                limit: 0,
                rev,
            })
            .await
            .map_err(|e| match e {
                StoreError::Compacted { .. } if opts.continue_token.is_some() => ApiError::gone(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                ),
                e => self.err("", e),
            })?;
        let mut items = Vec::new();
        let mut continue_token = None;
        let filtering = !opts.labels.is_empty() || !opts.fields.is_empty();
        for (i, kv) in range.kvs.iter().enumerate() {
            let obj = self.decode(kv)?;
            if filtering && !self.matches(&obj, &opts.labels, &opts.fields) {
                continue;
            }
            items.push(obj);
            if opts.limit > 0 && items.len() == opts.limit {
                if i + 1 < range.kvs.len() {
                    let t = ContinueToken {
                        v: "meta.k8s.io/v1".into(),
                        rv: range.rev,
                        start: kv.key[prefix.len()..].to_string(),
                    };
                    continue_token = Some(
                        base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .encode(serde_json::to_vec(&t).unwrap_or_default()),
                    );
                }
                break;
            }
        }
        Ok(ListResult {
            items,
            rev: range.rev,
            continue_token,
        })
    }

    pub async fn create(
        &self,
        ns: Option<&str>,
        mut obj: K::Obj,
        opts: &WriteOptions,
    ) -> ApiResult<K::Obj> {
        let info = self.info();
        let ns = self.scope(ns);
        {
            let meta = obj.metadata_mut();
            if info.namespaced {
                match (meta.namespace.as_deref(), ns) {
                    (Some(a), Some(b)) if !a.is_empty() && a != b => {
                        return Err(ApiError::bad_request(
                            "the namespace of the provided object does not match the namespace sent on the request",
                        ))
                    }
                    _ => meta.namespace = ns.map(str::to_string),
                }
            } else {
                meta.namespace = None;
            }
            if meta
                .resource_version
                .as_deref()
                .is_some_and(|v| !v.is_empty())
            {
                return Err(ApiError::bad_request(
                    "resourceVersion should not be set on objects to be created",
                ));
            }
        }
        if let Some(ns) = ns {
            self.check_namespace(ns).await?;
        }
        let generated = obj.metadata().name.as_deref().is_none_or(str::is_empty)
            && obj
                .metadata()
                .generate_name
                .as_deref()
                .is_some_and(|g| !g.is_empty());
        {
            let tracks_generation = self.kind.tracks_generation();
            let meta = obj.metadata_mut();
            meta.uid = Some(uuid::Uuid::new_v4().to_string());
            meta.creation_timestamp = Some(now());
            meta.deletion_timestamp = None;
            meta.deletion_grace_period_seconds = None;
            meta.generation = tracks_generation.then_some(1);
            meta.self_link = None;
        }
        self.kind.prepare_for_create(&mut obj);
        self.kind.apply_defaults(&mut obj);
        omit_empty(obj.metadata_mut());
        for attempt in 0.. {
            if generated {
                let meta = obj.metadata_mut();
                let prefix = meta.generate_name.clone().unwrap_or_default();
                meta.name = Some(format!("{prefix}{}", random_suffix()));
            }
            let mut errs = Vec::new();
            self.validate_meta(&obj, &mut errs);
            errs.extend(self.kind.validate(&obj));
            if !errs.is_empty() {
                return Err(self.invalid(&obj, &errs));
            }
            self.kind.admit(&obj, None, opts.user.as_deref())?;
            let name = obj.metadata().name.clone().unwrap_or_default();
            if attempt == 0 {
                if let Some(m) = self.kind.must_exist(&obj) {
                    self.check_exists(&m, &name).await?;
                }
            }
            let key = self.key(ns, &name);
            // Said before reserving, so a duplicate is "already exists", not "address taken".
            if !generated
                && self
                    .store
                    .get(&key)
                    .await
                    .map_err(|e| self.err(&name, e))?
                    .is_some()
            {
                return Err(ApiError::already_exists(&self.info().target(&name)));
            }
            record_update(None, &mut obj, opts);
            self.kind.reserve(&mut obj, None)?;
            if opts.dry_run {
                self.kind.release(&obj, None);
                return Ok(obj);
            }
            let value = self.encode(&obj)?;
            match self.store.create(&key, value).await {
                Ok(kv) => {
                    obj.metadata_mut().resource_version = Some(kv.mod_rev.to_string());
                    return Ok(obj);
                }
                Err(StoreError::AlreadyExists(_)) if generated && attempt < 8 => {
                    self.kind.release(&obj, None);
                }
                Err(e) => {
                    self.kind.release(&obj, None);
                    return Err(self.err(&name, e));
                }
            }
        }
        unreachable!()
    }

    /// Replaces an object (PUT). An empty resourceVersion means "whatever is current".
    pub async fn update(
        &self,
        ns: Option<&str>,
        name: &str,
        mut obj: K::Obj,
        part: Part,
        opts: &WriteOptions,
    ) -> ApiResult<(K::Obj, bool)> {
        let ns = self.scope(ns);
        {
            let meta = obj.metadata();
            if meta.name.as_deref().is_some_and(|n| n != name) {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    meta.name.as_deref().unwrap_or_default()
                )));
            }
            if self.info().namespaced
                && meta
                    .namespace
                    .as_deref()
                    .is_some_and(|n| !n.is_empty() && Some(n) != ns)
            {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        obj.metadata_mut().name = Some(name.to_string());
        if self.info().namespaced {
            obj.metadata_mut().namespace = ns.map(str::to_string);
        }
        let wanted: Option<i64> =
            match obj.metadata().resource_version.as_deref() {
                None | Some("") => None,
                Some(v) => Some(v.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version: {v:?}"))
                })?),
            };
        let key = self.key(ns, name);
        loop {
            let Some(kv) = self.store.get(&key).await.map_err(|e| self.err(name, e))? else {
                if self.kind.allow_create_on_update() && part == Part::Main {
                    obj.metadata_mut().resource_version = None;
                    return Ok((self.create(ns, obj, opts).await?, true));
                }
                return Err(ApiError::not_found(&self.info().target(name)));
            };
            match wanted {
                Some(w) if w != kv.mod_rev => {
                    return Err(ApiError::stale(&self.info().target(name)))
                }
                None if !self.kind.allow_unconditional_update() => {
                    return Err(self.invalid(
                        &obj,
                        &[FieldError::invalid(
                            "metadata.resourceVersion",
                            0,
                            "must be specified for an update",
                        )],
                    ))
                }
                _ => {}
            }
            let old = self.decode(&kv)?;
            match self
                .write_update(&key, &kv, old, obj.clone(), part, opts)
                .await?
            {
                Some(updated) => return Ok((updated, false)),
                None if wanted.is_some() => return Err(ApiError::stale(&self.info().target(name))),
                None => continue,
            }
        }
    }

    /// Read-modify-write with retries on conflicts: patches, scale, binding, and controllers.
    /// `f` gets the current object (with its resourceVersion) and changes it; if it sets a
    /// different resourceVersion, that is a precondition and a mismatch is a 409.
    pub async fn modify<F>(
        &self,
        ns: Option<&str>,
        name: &str,
        part: Part,
        opts: &WriteOptions,
        mut f: F,
    ) -> ApiResult<K::Obj>
    where
        F: FnMut(&K::Obj) -> ApiResult<K::Obj>,
    {
        let ns = self.scope(ns);
        let key = self.key(ns, name);
        for _ in 0..64 {
            let Some(kv) = self.store.get(&key).await.map_err(|e| self.err(name, e))? else {
                return Err(ApiError::not_found(&self.info().target(name)));
            };
            let old = self.decode(&kv)?;
            let mut new = f(&old)?;
            let current_rv = kv.mod_rev.to_string();
            let precondition = match new.metadata().resource_version.as_deref() {
                Some(rv) if !rv.is_empty() && rv != current_rv => {
                    return Err(ApiError::stale(&self.info().target(name)))
                }
                Some(rv) if !rv.is_empty() => {
                    old.metadata().resource_version.as_deref() != Some(rv)
                }
                _ => false,
            };
            if new.metadata().name.as_deref() != Some(name) {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    new.metadata().name.as_deref().unwrap_or_default()
                )));
            }
            new.metadata_mut().namespace = old.metadata().namespace.clone();
            match self.write_update(&key, &kv, old, new, part, opts).await? {
                Some(updated) => return Ok(updated),
                None if precondition => return Err(ApiError::stale(&self.info().target(name))),
                None => continue,
            }
        }
        Err(ApiError::conflict(
            &self.info().target(name),
            "too many concurrent updates; try again",
        ))
    }

    /// Writes `new` over `old` (read at `kv`). None when the compare-and-swap lost a race.
    async fn write_update(
        &self,
        key: &str,
        kv: &KeyValue,
        old: K::Obj,
        mut new: K::Obj,
        part: Part,
        opts: &WriteOptions,
    ) -> ApiResult<Option<K::Obj>> {
        {
            let om = old.metadata();
            let nm = new.metadata_mut();
            if nm.uid.as_deref().is_some_and(|u| !u.is_empty()) && nm.uid != om.uid {
                return Err(ApiError::conflict(
                    &self.info().target(om.name.as_deref().unwrap_or_default()),
                    &format!(
                        "Precondition failed: UID in precondition: {}, UID in object meta: {}",
                        nm.uid.as_deref().unwrap_or_default(),
                        om.uid.as_deref().unwrap_or_default()
                    ),
                ));
            }
            nm.uid = om.uid.clone();
            nm.creation_timestamp = om.creation_timestamp.clone();
            nm.deletion_timestamp = om.deletion_timestamp.clone();
            nm.deletion_grace_period_seconds = om.deletion_grace_period_seconds;
            nm.generation = om.generation;
            nm.self_link = None;
            // An update that does not say which fields whose they are keeps the record
            // (server-side apply writes it; registry/apply.rs).
            if nm.managed_fields.is_none() {
                nm.managed_fields = om.managed_fields.clone();
            }
            nm.resource_version = om.resource_version.clone();
            if nm.generate_name.is_none() {
                nm.generate_name = om.generate_name.clone();
            }
        }
        match part {
            Part::Main => self.kind.prepare_for_update(&mut new, &old),
            Part::Status => {
                *new.metadata_mut() = old.metadata().clone();
                self.kind.prepare_for_status_update(&mut new, &old);
            }
            Part::Internal => {}
            Part::Ephemeral => self.kind.prepare_for_ephemeral_update(&mut new, &old),
        }
        self.kind.apply_defaults(&mut new);
        omit_empty(new.metadata_mut());
        let mut errs = Vec::new();
        self.validate_meta(&new, &mut errs);
        validation::object_meta_update(new.metadata(), old.metadata(), &mut errs);
        if old.metadata().deletion_timestamp.is_some() {
            let before: Vec<&String> = old.metadata().finalizers.iter().flatten().collect();
            if new
                .metadata()
                .finalizers
                .iter()
                .flatten()
                .any(|f| !before.contains(&f))
            {
                errs.push(FieldError::forbidden(
                    "metadata.finalizers",
                    "no new finalizers can be added if the object is being deleted",
                ));
            }
        }
        errs.extend(match part {
            Part::Main => self.kind.validate_update(&new, &old),
            Part::Status => self.kind.validate_status_update(&new, &old),
            Part::Internal => self.kind.validate(&new),
            Part::Ephemeral => self.kind.validate_ephemeral_update(&new, &old),
        });
        if !errs.is_empty() {
            return Err(self.invalid(&new, &errs));
        }
        if part == Part::Main {
            self.kind.admit(&new, Some(&old), opts.user.as_deref())?;
        }
        if self.kind.tracks_generation() && part != Part::Status && spec_changed(&new, &old) {
            new.metadata_mut().generation = Some(old.metadata().generation.unwrap_or(0) + 1);
        }
        if part != Part::Status {
            record_update(Some(&old), &mut new, opts);
        }
        if new == old {
            // Nothing changed: no write, no new revision, as Kubernetes does.
            return Ok(Some(old));
        }
        self.kind.reserve(&mut new, Some(&old))?;
        let meta = new.metadata();
        let finished = meta.deletion_timestamp.is_some()
            && meta.finalizers.as_ref().is_none_or(Vec::is_empty)
            && meta.deletion_grace_period_seconds.unwrap_or(0) == 0
            && !self.kind.deletion_blocked(&new);
        if opts.dry_run {
            self.kind.release(&new, Some(&old));
            return Ok(Some(new));
        }
        let name = meta.name.clone().unwrap_or_default();
        // Without finalizers left, a deleted object goes; otherwise it is written back.
        let written = if finished {
            self.store.delete(key, Some(kv.mod_rev)).await
        } else {
            self.store.update(key, self.encode(&new)?, kv.mod_rev).await
        };
        match written {
            Ok(written) => {
                self.kind.release(&old, (!finished).then_some(&new));
                new.metadata_mut().resource_version = Some(written.mod_rev.to_string());
                Ok(Some(new))
            }
            Err(e) => {
                self.kind.release(&new, Some(&old));
                match e {
                    StoreError::Conflict { .. } => Ok(None),
                    e => Err(self.err(&name, e)),
                }
            }
        }
    }

    /// Removes `obj` (read at `kv`) from the store; None when the compare-and-swap lost a race.
    async fn remove(&self, key: &str, kv: &KeyValue, mut obj: K::Obj) -> ApiResult<Option<K::Obj>> {
        let name = obj.metadata().name.clone().unwrap_or_default();
        match self.store.delete(key, Some(kv.mod_rev)).await {
            Ok(deleted) => {
                self.kind.release(&obj, None);
                obj.metadata_mut().resource_version = Some(deleted.mod_rev.to_string());
                Ok(Some(obj))
            }
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(StoreError::NotFound(_)) => Err(ApiError::not_found(&self.info().target(&name))),
            Err(e) => Err(self.err(&name, e)),
        }
    }

    /// Deletes an object, or marks it for deletion when it is graceful (pods on a node) or has
    /// finalizers (including the garbage collector's, added per propagationPolicy).
    pub async fn delete(
        &self,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
        dry_run: bool,
    ) -> ApiResult<DeleteOutcome<K::Obj>> {
        let ns = self.scope(ns);
        let key = self.key(ns, name);
        let target = self.info().target(name);
        if let Some(g) = opts.grace_period_seconds.filter(|g| *g < 0) {
            return Err(ApiError::invalid(
                "DeleteOptions",
                &target,
                &[FieldError::invalid(
                    "gracePeriodSeconds",
                    g,
                    "must be greater than or equal to 0",
                )],
            ));
        }
        let policy = match (opts.propagation_policy.as_deref(), opts.orphan_dependents) {
            (Some(p @ ("Orphan" | "Background" | "Foreground")), None) => Some(p),
            (Some(p), None) => {
                return Err(ApiError::invalid(
                    "DeleteOptions",
                    &target,
                    &[FieldError::not_supported(
                        "propagationPolicy",
                        p,
                        &["Foreground", "Background", "Orphan", "nil"],
                    )],
                ))
            }
            (None, Some(true)) => Some("Orphan"),
            (None, Some(false)) => Some("Background"),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "DeleteOptions",
                    &target,
                    &[FieldError::invalid(
                        "propagationPolicy",
                        opts.propagation_policy.clone().unwrap_or_default(),
                        "orphanDependents and deletionPropagation cannot be both set",
                    )],
                ))
            }
        };
        for _ in 0..64 {
            let Some(kv) = self.store.get(&key).await.map_err(|e| self.err(name, e))? else {
                return Err(ApiError::not_found(&target));
            };
            let mut obj = self.decode(&kv)?;
            self.kind.check_delete(&obj)?;
            if let Some(pre) = &opts.preconditions {
                let meta = obj.metadata();
                if let Some(uid) = pre
                    .uid
                    .as_deref()
                    .filter(|u| Some(*u) != meta.uid.as_deref())
                {
                    return Err(ApiError::conflict(
                        &target,
                        &format!(
                            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                            meta.uid.as_deref().unwrap_or_default()
                        ),
                    ));
                }
                if let Some(rv) = pre
                    .resource_version
                    .as_deref()
                    .filter(|rv| Some(*rv) != meta.resource_version.as_deref())
                {
                    return Err(ApiError::conflict(
                        &target,
                        &format!(
                            "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                            meta.resource_version.as_deref().unwrap_or_default()
                        ),
                    ));
                }
            }
            let grace = self
                .kind
                .grace_period(&obj, opts.grace_period_seconds)
                .filter(|g| *g > 0);
            let old_meta = obj.metadata().clone();
            let blocked = self.kind.deletion_blocked(&obj);
            let meta = obj.metadata_mut();
            let mut finalizers = meta.finalizers.clone().unwrap_or_default();
            match policy {
                Some("Orphan") => {
                    finalizers.retain(|f| f != FOREGROUND_FINALIZER);
                    if !finalizers.iter().any(|f| f == ORPHAN_FINALIZER) {
                        finalizers.push(ORPHAN_FINALIZER.into());
                    }
                }
                Some("Foreground") => {
                    finalizers.retain(|f| f != ORPHAN_FINALIZER);
                    if !finalizers.iter().any(|f| f == FOREGROUND_FINALIZER) {
                        finalizers.push(FOREGROUND_FINALIZER.into());
                    }
                }
                Some(_) => {
                    finalizers.retain(|f| f != ORPHAN_FINALIZER && f != FOREGROUND_FINALIZER)
                }
                None => {}
            }
            // Orphan and Foreground leave the object (with their finalizer) until the garbage
            // collector has dealt with its dependents; Background deletes it now.
            let pending = grace.is_some() || !finalizers.is_empty() || blocked;
            if !pending {
                if dry_run {
                    return Ok(DeleteOutcome::Deleted(obj));
                }
                match self.remove(&key, &kv, obj).await? {
                    Some(deleted) => return Ok(DeleteOutcome::Deleted(deleted)),
                    None => continue,
                }
            }
            let now_t = now();
            match (&old_meta.deletion_timestamp, grace) {
                (None, Some(g)) => {
                    meta.deletion_timestamp = Some(Time(
                        now_t.0 + k8s_openapi::jiff::SignedDuration::from_secs(g),
                    ));
                    meta.deletion_grace_period_seconds = Some(g);
                }
                (None, None) => {
                    meta.deletion_timestamp = Some(now_t);
                    meta.deletion_grace_period_seconds = Some(0);
                }
                (Some(_), g) => {
                    // Already going: a shorter grace period brings the end forward.
                    let g = g.unwrap_or(0);
                    if old_meta
                        .deletion_grace_period_seconds
                        .is_some_and(|cur| g < cur)
                    {
                        meta.deletion_timestamp = Some(Time(
                            now_t.0 + k8s_openapi::jiff::SignedDuration::from_secs(g),
                        ));
                        meta.deletion_grace_period_seconds = Some(g);
                    }
                }
            }
            meta.finalizers = (!finalizers.is_empty()).then_some(finalizers);
            let before = obj.clone();
            self.kind.mark_deleting(&mut obj);
            if *obj.metadata() == old_meta && obj == before && old_meta.deletion_timestamp.is_some()
            {
                return Ok(DeleteOutcome::Pending(obj));
            }
            let meta = obj.metadata();
            if meta.finalizers.is_none()
                && meta.deletion_grace_period_seconds == Some(0)
                && !self.kind.deletion_blocked(&obj)
            {
                // Graceful period ended and nothing holds the object: delete now.
                match self.remove(&key, &kv, obj).await? {
                    Some(deleted) => return Ok(DeleteOutcome::Deleted(deleted)),
                    None => continue,
                }
            }
            if dry_run {
                return Ok(DeleteOutcome::Pending(obj));
            }
            let value = self.encode(&obj)?;
            match self.store.update(&key, value, kv.mod_rev).await {
                Ok(updated) => {
                    obj.metadata_mut().resource_version = Some(updated.mod_rev.to_string());
                    return Ok(DeleteOutcome::Pending(obj));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(self.err(name, e)),
            }
        }
        Err(ApiError::conflict(
            &target,
            "too many concurrent updates; try again",
        ))
    }

    /// Watches changes after revision `after`, filtered by the selectors.
    pub async fn watch(
        &self,
        ns: Option<&str>,
        labels: Selector,
        fields: FieldSelector,
        after: i64,
    ) -> ApiResult<TypedWatch<K>> {
        self.check_fields(&fields)?;
        let prefix = self.info().prefix(self.scope(ns));
        let stream = self
            .store
            .watch(&prefix, after)
            .await
            .map_err(|e| self.err("", e))?;
        Ok(TypedWatch {
            registry: self.clone(),
            stream,
            labels,
            fields,
        })
    }
}

/// Whether anything but metadata and status differs: the spec, or any other top-level field.
fn spec_changed<T: Serialize>(new: &T, old: &T) -> bool {
    let strip = |v: &T| {
        let mut v = serde_json::to_value(v).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        v
    };
    strip(new) != strip(old)
}

pub struct TypedWatch<K: Kind> {
    registry: Registry<K>,
    stream: WatchStream,
    labels: Selector,
    fields: FieldSelector,
}

impl<K: Kind> TypedWatch<K> {
    /// The revision up to which every change has been seen: what a bookmark may carry.
    pub fn progress(&self) -> i64 {
        self.stream.progress()
    }

    pub async fn next(&mut self) -> Option<ApiResult<Change<K::Obj>>> {
        loop {
            let event = match self.stream.next().await? {
                Ok(e) => e,
                Err(e) => return Some(Err(self.registry.err("", e))),
            };
            let obj = match self.registry.decode(&event.kv) {
                Ok(o) => o,
                Err(e) => return Some(Err(e)),
            };
            let filtering = !self.labels.is_empty() || !self.fields.is_empty();
            let now_matches = !filtering || self.registry.matches(&obj, &self.labels, &self.fields);
            match event.kind {
                EventKind::Delete => {
                    if now_matches {
                        return Some(Ok(Change::Deleted(obj)));
                    }
                }
                EventKind::Put => {
                    let was_matching = match &event.prev {
                        None => false,
                        Some(_) if !filtering => true,
                        Some(prev) => self
                            .registry
                            .decode(prev)
                            .map(|p| self.registry.matches(&p, &self.labels, &self.fields))
                            .unwrap_or(false),
                    };
                    match (was_matching, now_matches) {
                        (_, true) if event.is_create() => return Some(Ok(Change::Added(obj))),
                        (true, true) => return Some(Ok(Change::Modified(obj))),
                        (false, true) => return Some(Ok(Change::Added(obj))),
                        (true, false) => return Some(Ok(Change::Deleted(obj))),
                        (false, false) => {}
                    }
                }
            }
        }
    }
}

/// Records which fields a write by a named field manager (`?fieldManager=`, kubectl always
/// sends one) changed, as server-side apply's bookkeeping does for operation `Update`; writes
/// without a manager (the built-in controllers) and applies (which record themselves) do not.
fn record_update<O: Serialize + Metadata<Ty = ObjectMeta>>(
    old: Option<&O>,
    new: &mut O,
    opts: &WriteOptions,
) {
    let Some(manager) = opts
        .field_manager
        .as_deref()
        .filter(|m| !m.is_empty() && !opts.apply)
    else {
        return;
    };
    let (Ok(after), before) = (
        serde_json::to_value(&*new),
        old.and_then(|o| serde_json::to_value(o).ok()),
    ) else {
        return;
    };
    let now = super::now_text();
    if let Some(managed) = super::apply::record_update(before.as_ref(), &after, manager, &now) {
        new.metadata_mut().managed_fields = serde_json::from_value(managed).ok();
    }
}
