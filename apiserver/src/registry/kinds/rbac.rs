//! rbac.authorization.k8s.io/v1: Role, ClusterRole, RoleBinding, ClusterRoleBinding. Validated
//! as Kubernetes validates them; a write by a user is refused when it would grant what the
//! user does not hold (auth/rbac.rs).

use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{json, Value};
use tinykube_machinery::kinds;

use crate::auth::authn::User;
use crate::auth::rbac::Rbac;
use crate::error::{ApiResult, FieldError, FieldErrors};
use crate::registry::table::{age, Column};
use crate::registry::validation::NameRule;
use crate::registry::{Kind, ResourceInfo};

pub const GROUP: &str = "rbac.authorization.k8s.io";

pub static ROLE: ResourceInfo = ResourceInfo::of(&kinds::ROLE, &[], NameRule::PathSegment);
pub static CLUSTER_ROLE: ResourceInfo =
    ResourceInfo::of(&kinds::CLUSTER_ROLE, &[], NameRule::PathSegment);
pub static ROLE_BINDING: ResourceInfo =
    ResourceInfo::of(&kinds::ROLE_BINDING, &[], NameRule::PathSegment);
pub static CLUSTER_ROLE_BINDING: ResourceInfo =
    ResourceInfo::of(&kinds::CLUSTER_ROLE_BINDING, &[], NameRule::PathSegment);

fn validate_rules(rules: Option<&Vec<PolicyRule>>, namespaced: bool) -> FieldErrors {
    let mut errs = Vec::new();
    for (i, r) in rules.into_iter().flatten().enumerate() {
        let at = |f: &str| format!("rules[{i}].{f}");
        if r.verbs.is_empty() {
            errs.push(FieldError::required(
                at("verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = r.non_resource_urls.as_deref().unwrap_or_default();
        let groups = r.api_groups.as_deref().unwrap_or_default();
        let resources = r.resources.as_deref().unwrap_or_default();
        if !urls.is_empty() {
            if namespaced {
                errs.push(FieldError::invalid(
                    at("nonResourceURLs"),
                    json!(urls),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !groups.is_empty() || !resources.is_empty() {
                errs.push(FieldError::invalid(
                    at("nonResourceURLs"),
                    json!(urls),
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if groups.is_empty() {
            errs.push(FieldError::required(
                at("apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if resources.is_empty() {
            errs.push(FieldError::required(
                at("resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
    errs
}

fn validate_binding(
    role_ref: &RoleRef,
    subjects: Option<&Vec<Subject>>,
    namespaced: bool,
) -> FieldErrors {
    let mut errs = Vec::new();
    if role_ref.api_group != GROUP {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            role_ref.api_group.clone(),
            &[GROUP],
        ));
    }
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&role_ref.kind.as_str()) {
        errs.push(FieldError::not_supported(
            "roleRef.kind",
            role_ref.kind.clone(),
            kinds,
        ));
    }
    if role_ref.name.is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    } else {
        for msg in crate::registry::validation::name(NameRule::PathSegment, &role_ref.name) {
            errs.push(FieldError::invalid(
                "roleRef.name",
                role_ref.name.clone(),
                msg,
            ));
        }
    }
    for (i, s) in subjects.into_iter().flatten().enumerate() {
        let at = |f: &str| format!("subjects[{i}].{f}");
        if s.name.is_empty() {
            errs.push(FieldError::required(at("name"), ""));
        }
        let group = s.api_group.as_deref().unwrap_or_default();
        match s.kind.as_str() {
            "ServiceAccount" => {
                if !group.is_empty() {
                    errs.push(FieldError::not_supported(at("apiGroup"), group, &[""]));
                }
                if !namespaced && s.namespace.as_deref().is_none_or(str::is_empty) {
                    errs.push(FieldError::required(at("namespace"), ""));
                }
            }
            "User" | "Group" => {
                if group != GROUP {
                    errs.push(FieldError::not_supported(at("apiGroup"), group, &[GROUP]));
                }
            }
            other => errs.push(FieldError::not_supported(
                at("kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
    errs
}

/// Kubernetes' defaults: roleRef in the RBAC group, users and groups too.
fn default_binding(role_ref: &mut RoleRef, subjects: Option<&mut Vec<Subject>>) {
    if role_ref.api_group.is_empty() {
        role_ref.api_group = GROUP.into();
    }
    for s in subjects.into_iter().flatten() {
        if s.api_group.is_none() && matches!(s.kind.as_str(), "User" | "Group") {
            s.api_group = Some(GROUP.into());
        }
    }
}

fn role_ref_immutable(new: &RoleRef, old: &RoleRef, errs: &mut FieldErrors) {
    if new != old {
        errs.push(FieldError::invalid(
            "roleRef",
            serde_json::to_value(new).unwrap_or_default(),
            "cannot change roleRef",
        ));
    }
}

/// `2026-12-07T09:00:00Z`, the "Created At" column.
fn created_at(meta: &ObjectMeta) -> Value {
    meta.creation_timestamp
        .as_ref()
        .map(|t| json!(t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
        .unwrap_or(Value::Null)
}

fn role_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new(
            "Created At",
            "date",
            "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.",
        ),
    ]
}

fn binding_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Role", "string", "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable."),
        Column::age(),
        Column::new("Users", "string", "Users in the roleBinding").wide(),
        Column::new("Groups", "string", "Groups in the roleBinding").wide(),
        Column::new("ServiceAccounts", "string", "ServiceAccounts in the roleBinding").wide(),
    ]
}

fn binding_row(
    meta: &ObjectMeta,
    role_ref: &RoleRef,
    subjects: Option<&Vec<Subject>>,
    now: i64,
) -> Vec<Value> {
    let of = |kind: &str| {
        subjects
            .into_iter()
            .flatten()
            .filter(|s| s.kind == kind)
            .map(|s| {
                match s
                    .namespace
                    .as_deref()
                    .filter(|n| !n.is_empty() && kind == "ServiceAccount")
                {
                    Some(ns) => format!("{ns}/{}", s.name),
                    None => s.name.clone(),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        json!(meta.name.clone().unwrap_or_default()),
        json!(format!("{}/{}", role_ref.kind, role_ref.name)),
        age(meta.creation_timestamp.as_ref(), now),
        json!(of("User")),
        json!(of("Group")),
        json!(of("ServiceAccount")),
    ]
}

pub struct RoleKind(pub Arc<Rbac>);
pub struct ClusterRoleKind(pub Arc<Rbac>);
pub struct RoleBindingKind(pub Arc<Rbac>);
pub struct ClusterRoleBindingKind(pub Arc<Rbac>);

fn name_of(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

impl Kind for RoleKind {
    type Obj = Role;
    fn info(&self) -> &'static ResourceInfo {
        &ROLE
    }
    fn validate(&self, r: &Role) -> FieldErrors {
        validate_rules(r.rules.as_ref(), true)
    }
    fn admit(&self, r: &Role, _old: Option<&Role>, user: Option<&User>) -> ApiResult<()> {
        self.0.check_role_escalation(
            user,
            "roles",
            r.metadata.namespace.as_deref().unwrap_or_default(),
            name_of(&r.metadata),
            r.rules.as_deref().unwrap_or_default(),
        )
    }
    fn columns(&self) -> Vec<Column> {
        role_columns()
    }
    fn row(&self, r: &Role, _now: i64) -> Vec<Value> {
        vec![json!(name_of(&r.metadata)), created_at(&r.metadata)]
    }
}

impl Kind for ClusterRoleKind {
    type Obj = ClusterRole;
    fn info(&self) -> &'static ResourceInfo {
        &CLUSTER_ROLE
    }
    fn validate(&self, r: &ClusterRole) -> FieldErrors {
        let mut errs = validate_rules(r.rules.as_ref(), false);
        if let Some(agg) = &r.aggregation_rule {
            if agg
                .cluster_role_selectors
                .as_ref()
                .is_none_or(Vec::is_empty)
            {
                errs.push(FieldError::required(
                    "aggregationRule.clusterRoleSelectors",
                    "at least one clusterRoleSelector required if aggregationRule is non-nil",
                ));
            }
        }
        errs
    }
    fn admit(
        &self,
        r: &ClusterRole,
        old: Option<&ClusterRole>,
        user: Option<&User>,
    ) -> ApiResult<()> {
        // An aggregationRule gathers any role's rules, so setting or changing one takes full
        // authority (Kubernetes: "must have cluster-admin privileges to use an
        // aggregationRule"); the rules themselves are checked either way.
        let aggregating =
            r.aggregation_rule.is_some() || old.is_some_and(|o| o.aggregation_rule.is_some());
        let changed_rule = old.is_none_or(|o| o.aggregation_rule != r.aggregation_rule);
        self.0.check_cluster_role_escalation(
            user,
            name_of(&r.metadata),
            r.rules.as_deref().unwrap_or_default(),
            aggregating && changed_rule,
        )
    }
    fn columns(&self) -> Vec<Column> {
        role_columns()
    }
    fn row(&self, r: &ClusterRole, _now: i64) -> Vec<Value> {
        vec![json!(name_of(&r.metadata)), created_at(&r.metadata)]
    }
    fn allow_create_on_update(&self) -> bool {
        true
    }
}

impl Kind for RoleBindingKind {
    type Obj = RoleBinding;
    fn info(&self) -> &'static ResourceInfo {
        &ROLE_BINDING
    }
    fn apply_defaults(&self, b: &mut RoleBinding) {
        default_binding(&mut b.role_ref, b.subjects.as_mut());
    }
    fn validate(&self, b: &RoleBinding) -> FieldErrors {
        validate_binding(&b.role_ref, b.subjects.as_ref(), true)
    }
    fn validate_update(&self, new: &RoleBinding, old: &RoleBinding) -> FieldErrors {
        let mut errs = self.validate(new);
        role_ref_immutable(&new.role_ref, &old.role_ref, &mut errs);
        errs
    }
    fn admit(
        &self,
        b: &RoleBinding,
        _old: Option<&RoleBinding>,
        user: Option<&User>,
    ) -> ApiResult<()> {
        self.0.check_binding_escalation(
            user,
            "rolebindings",
            b.metadata.namespace.as_deref().unwrap_or_default(),
            name_of(&b.metadata),
            &b.role_ref,
        )
    }
    fn columns(&self) -> Vec<Column> {
        binding_columns()
    }
    fn row(&self, b: &RoleBinding, now: i64) -> Vec<Value> {
        binding_row(&b.metadata, &b.role_ref, b.subjects.as_ref(), now)
    }
}

impl Kind for ClusterRoleBindingKind {
    type Obj = ClusterRoleBinding;
    fn info(&self) -> &'static ResourceInfo {
        &CLUSTER_ROLE_BINDING
    }
    fn apply_defaults(&self, b: &mut ClusterRoleBinding) {
        default_binding(&mut b.role_ref, b.subjects.as_mut());
    }
    fn validate(&self, b: &ClusterRoleBinding) -> FieldErrors {
        validate_binding(&b.role_ref, b.subjects.as_ref(), false)
    }
    fn validate_update(&self, new: &ClusterRoleBinding, old: &ClusterRoleBinding) -> FieldErrors {
        let mut errs = self.validate(new);
        role_ref_immutable(&new.role_ref, &old.role_ref, &mut errs);
        errs
    }
    fn admit(
        &self,
        b: &ClusterRoleBinding,
        _old: Option<&ClusterRoleBinding>,
        user: Option<&User>,
    ) -> ApiResult<()> {
        self.0.check_binding_escalation(
            user,
            "clusterrolebindings",
            "",
            name_of(&b.metadata),
            &b.role_ref,
        )
    }
    fn columns(&self) -> Vec<Column> {
        binding_columns()
    }
    fn row(&self, b: &ClusterRoleBinding, now: i64) -> Vec<Value> {
        binding_row(&b.metadata, &b.role_ref, b.subjects.as_ref(), now)
    }
    fn allow_create_on_update(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_and_bindings_are_validated_as_kubernetes_does() {
        let rule = |verbs: &[&str], groups: Option<&[&str]>, urls: Option<&[&str]>| PolicyRule {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            api_groups: groups.map(|g| g.iter().map(|s| s.to_string()).collect()),
            resources: groups.map(|_| vec!["pods".to_string()]),
            non_resource_urls: urls.map(|u| u.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        assert!(validate_rules(Some(&vec![rule(&["get"], Some(&[""]), None)]), true).is_empty());
        let e = validate_rules(Some(&vec![rule(&[], Some(&[""]), None)]), true);
        assert_eq!(e[0].field, "rules[0].verbs");
        let e = validate_rules(Some(&vec![rule(&["get"], None, Some(&["/x"]))]), true);
        assert_eq!(
            e[0].detail,
            "namespaced rules cannot apply to non-resource URLs"
        );
        assert!(validate_rules(Some(&vec![rule(&["get"], None, Some(&["/x"]))]), false).is_empty());

        let role_ref = RoleRef {
            api_group: GROUP.into(),
            kind: "Role".into(),
            name: "r".into(),
        };
        let sa = Subject {
            kind: "ServiceAccount".into(),
            name: "robot".into(),
            ..Default::default()
        };
        assert!(validate_binding(&role_ref, Some(&vec![sa.clone()]), true).is_empty());
        let e = validate_binding(&role_ref, Some(&vec![sa]), false);
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["roleRef.kind", "subjects[0].namespace"]);
        let user = Subject {
            kind: "User".into(),
            name: "jane".into(),
            ..Default::default()
        };
        let e = validate_binding(&role_ref, Some(&vec![user]), true);
        assert_eq!(e[0].field, "subjects[0].apiGroup");
    }
}
