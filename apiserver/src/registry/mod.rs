//! The registry: what each kind of object is (its [`Kind`]: defaults, validation, status rules,
//! table columns) and the one generic store logic ([`generic::Registry`]) that every kind shares,
//! the way Kubernetes' `genericregistry.Store` plus a per-kind strategy works.

pub mod alloc;
pub mod apply;
pub mod catalog;
pub mod generic;
pub mod kinds;
pub mod quantity;
pub mod resource;
pub mod selector;
pub mod strategic;
pub mod strict;
pub mod table;
pub mod validation;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ApiResult, FieldErrors, Target};
use table::Column;
use validation::NameRule;

/// How a resource is named and served: its discovery entry and its place in the store.
#[derive(Debug)]
pub struct ResourceInfo {
    pub group: &'static str,
    pub version: &'static str,
    /// The plural name used in URLs: `pods`.
    pub resource: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub list_kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Subresources served besides the object itself: `status`, `scale`, `binding`.
    pub subresources: &'static [&'static str],
    pub name_rule: NameRule,
    /// What may be done with it: [`VERBS_ALL`], or [`VERBS_CREATE`] for the reviews.
    pub verbs: &'static [&'static str],
}

/// The verbs of a stored kind, as discovery lists them.
pub const VERBS_ALL: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// The verbs of a review (answered, never stored).
pub const VERBS_CREATE: &[&str] = &["create"];

impl ResourceInfo {
    /// A catalog kind served with `subresources`, its objects named by `name_rule`.
    pub const fn of(
        k: &'static tinykube_machinery::kinds::Kind,
        subresources: &'static [&'static str],
        name_rule: NameRule,
    ) -> ResourceInfo {
        ResourceInfo {
            group: k.group,
            version: k.version,
            resource: k.plural,
            singular: k.singular,
            kind: k.kind,
            list_kind: k.list_kind,
            namespaced: k.namespaced,
            short_names: k.short,
            categories: k.categories,
            subresources,
            name_rule,
            verbs: VERBS_ALL,
        }
    }

    /// A kind that is only ever created, and answered (the reviews).
    pub const fn create_only(k: &'static tinykube_machinery::kinds::Kind) -> ResourceInfo {
        let mut i = ResourceInfo::of(k, &[], NameRule::Subdomain);
        i.verbs = VERBS_CREATE;
        i
    }

    /// Whether it is only ever created (a review).
    pub fn create_only_kind(&self) -> bool {
        self.verbs == VERBS_CREATE
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn target<'a>(&'a self, name: &'a str) -> Target<'a> {
        Target {
            group: self.group,
            resource: self.resource,
            kind: self.kind,
            name,
        }
    }

    fn group_dir(&self) -> &'static str {
        if self.group.is_empty() {
            "core"
        } else {
            self.group
        }
    }

    /// Where objects live in the store; with no namespace, every namespace.
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => {
                format!("/registry/{}/{}/{}/", self.group_dir(), self.resource, ns)
            }
            _ => format!("/registry/{}/{}/", self.group_dir(), self.resource),
        }
    }

    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{}", self.prefix(namespace), name)
    }

    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }
}

/// Which part of an object a write addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The object; its status is kept as it was (for kinds with a status subresource).
    Main,
    /// The status subresource: only status changes.
    Status,
    /// A change the server makes itself through a subresource (binding, scale): no field is
    /// reset, and the object is validated as on create.
    Internal,
    /// pods/ephemeralcontainers: only the pod's ephemeral containers change.
    Ephemeral,
}

/// What [`Kind::must_exist`] names: the object (by its kind's info, namespace and name), how
/// many times to look (with a short pause between, for one a controller makes at once), and
/// why the create is forbidden if it is not there.
pub struct MustExist {
    pub info: &'static ResourceInfo,
    pub namespace: String,
    pub name: String,
    pub attempts: u32,
    pub why: String,
}

/// Per-kind behaviour, Kubernetes' "strategy".
pub trait Kind: Send + Sync + 'static {
    type Obj: k8s_openapi::Resource
        + k8s_openapi::Metadata<Ty = ObjectMeta>
        + Serialize
        + DeserializeOwned
        + Clone
        + PartialEq
        + Default
        + Send
        + Sync
        + 'static;

    fn info(&self) -> &'static ResourceInfo;

    /// Resets what clients may not set on create (status, mostly).
    fn prepare_for_create(&self, _obj: &mut Self::Obj) {}
    /// Fills in defaults, as Kubernetes' SetDefaults_* and defaulting admission do.
    fn apply_defaults(&self, _obj: &mut Self::Obj) {}
    fn validate(&self, obj: &Self::Obj) -> FieldErrors;
    /// Admission that depends on who writes (None: the server itself), after validation, on
    /// create (`old` None) and on updates of the object: RBAC's escalation checks.
    fn admit(
        &self,
        _obj: &Self::Obj,
        _old: Option<&Self::Obj>,
        _user: Option<&crate::auth::authn::User>,
    ) -> ApiResult<()> {
        Ok(())
    }
    /// An object that must exist for `obj` to be created (admission that reads the store, as
    /// the ServiceAccount admission plugin checks a pod's service account).
    fn must_exist(&self, _obj: &Self::Obj) -> Option<MustExist> {
        None
    }
    /// Main-resource update: keep what only the status subresource may change.
    fn prepare_for_update(&self, _new: &mut Self::Obj, _old: &Self::Obj) {}
    fn validate_update(&self, new: &Self::Obj, _old: &Self::Obj) -> FieldErrors {
        self.validate(new)
    }
    /// Status update: keep everything but the status.
    fn prepare_for_status_update(&self, _new: &mut Self::Obj, _old: &Self::Obj) {}
    fn validate_status_update(&self, new: &Self::Obj, _old: &Self::Obj) -> FieldErrors {
        self.validate(new)
    }
    /// Update through pods/ephemeralcontainers: keep everything but the ephemeral containers.
    fn prepare_for_ephemeral_update(&self, _new: &mut Self::Obj, _old: &Self::Obj) {}
    fn validate_ephemeral_update(&self, new: &Self::Obj, _old: &Self::Obj) -> FieldErrors {
        self.validate(new)
    }
    /// Kinds whose metadata.generation counts spec changes.
    fn tracks_generation(&self) -> bool {
        false
    }
    /// Field selector values; None for fields the kind does not support.
    fn field(&self, _obj: &Self::Obj, _field: &str) -> Option<String> {
        None
    }
    fn supports_field(&self, field: &str) -> bool {
        matches!(field, "metadata.name" | "metadata.namespace")
    }
    /// The server-side table for `kubectl get`.
    fn columns(&self) -> Vec<Column>;
    fn row(&self, obj: &Self::Obj, now: i64) -> Vec<serde_json::Value>;

    fn allow_create_on_update(&self) -> bool {
        false
    }
    fn allow_unconditional_update(&self) -> bool {
        true
    }
    /// Graceful deletion: how long the object stays (with deletionTimestamp) before it is gone,
    /// given the grace period the client asked for; None deletes at once.
    fn grace_period(&self, _obj: &Self::Obj, _requested: Option<i64>) -> Option<i64> {
        None
    }
    /// Whether a finished delete answers with the object (pods) or a Status.
    fn returns_deleted_object(&self) -> bool {
        false
    }

    /// Reserves what a new object needs outside itself (service IPs and ports).
    fn reserve(&self, _obj: &mut Self::Obj, _old: Option<&Self::Obj>) -> ApiResult<()> {
        Ok(())
    }
    /// Gives back what `drop` holds and `keep` does not: after a failed write (drop the new
    /// object, keep the old), a committed update (drop the old, keep the new) or a delete.
    fn release(&self, _drop: &Self::Obj, _keep: Option<&Self::Obj>) {}

    /// Refuses deletes the kind never allows (the system namespaces).
    fn check_delete(&self, _obj: &Self::Obj) -> ApiResult<()> {
        Ok(())
    }
    /// Whether something besides metadata.finalizers still holds a deleted object
    /// (a namespace's spec.finalizers).
    fn deletion_blocked(&self, _obj: &Self::Obj) -> bool {
        false
    }
    /// Changes an object gets when it is marked for deletion (namespaces turn Terminating).
    fn mark_deleting(&self, _obj: &mut Self::Obj) {}

    /// The scale subresource, for kinds that have one: (spec replicas, status replicas, selector).
    fn scale(&self, _obj: &Self::Obj) -> Option<(i32, i32, String)> {
        None
    }
    fn set_replicas(&self, _obj: &mut Self::Obj, _replicas: i32) {}

    /// Other subresources that change the object from a posted body (pods/binding).
    fn apply_subresource(&self, _sub: &str, _obj: &mut Self::Obj, _body: &[u8]) -> ApiResult<()> {
        Err(crate::error::ApiError::no_route())
    }
}

/// The current time, as object timestamps carry it (whole seconds).
pub fn now() -> Time {
    let ts = k8s_openapi::jiff::Timestamp::now();
    let secs = ts.as_second();
    Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap_or(ts))
}

/// [`now`] as JSON writes it (`2026-12-07T09:00:00Z`), for timestamps kept in JSON.
pub fn now_text() -> String {
    now().0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn now_secs() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_second()
}

pub fn time_secs(t: &Time) -> i64 {
    t.0.as_second()
}

/// Options common to writes.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub field_validation: FieldValidation,
    /// A server-side apply, which records its own managed fields (registry/apply.rs).
    pub apply: bool,
    /// Who writes; None for the server's own writes (controllers, bootstrap).
    pub user: Option<std::sync::Arc<crate::auth::authn::User>>,
}

impl WriteOptions {
    /// The same options for a write made by `user`.
    pub fn by(mut self, user: &crate::auth::authn::User) -> Self {
        self.user = Some(std::sync::Arc::new(user.clone()));
        self
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    #[default]
    Ignore,
    Warn,
    Strict,
}
