//! apps/v1 ReplicaSets: like Deployments without the rollout, with the scale subresource.

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use serde_json::{json, Value};

use super::{pod, workload};
use crate::error::{FieldError, FieldErrors};
use crate::registry::selector::Selector;
use crate::registry::table::{age, Column};
use crate::registry::validation::NameRule;
use crate::registry::{Kind, ResourceInfo};

pub static INFO: ResourceInfo = ResourceInfo::of(
    &kinds::REPLICA_SET,
    &["status", "scale"],
    NameRule::Subdomain,
);

pub struct ReplicaSetKind;

impl Kind for ReplicaSetKind {
    type Obj = ReplicaSet;

    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn prepare_for_create(&self, rs: &mut ReplicaSet) {
        rs.status = Some(ReplicaSetStatus::default());
    }

    fn apply_defaults(&self, rs: &mut ReplicaSet) {
        let spec = rs.spec.get_or_insert_with(Default::default);
        spec.replicas.get_or_insert(1);
        if let Some(t) = spec.template.as_mut() {
            pod::default_template(t);
        }
    }

    fn validate(&self, rs: &ReplicaSet) -> FieldErrors {
        let mut errs = Vec::new();
        let Some(spec) = &rs.spec else {
            errs.push(FieldError::required("spec", ""));
            return errs;
        };
        workload::validate_selector_and_template(&spec.selector, spec.template.as_ref(), &mut errs);
        workload::non_negative("spec.replicas", spec.replicas, &mut errs);
        workload::non_negative("spec.minReadySeconds", spec.min_ready_seconds, &mut errs);
        errs
    }

    fn prepare_for_update(&self, new: &mut ReplicaSet, old: &ReplicaSet) {
        new.status = old.status.clone();
    }

    fn validate_update(&self, new: &ReplicaSet, old: &ReplicaSet) -> FieldErrors {
        let mut errs = self.validate(new);
        if let (Some(n), Some(o)) = (&new.spec, &old.spec) {
            workload::selector_immutable(&n.selector, &o.selector, &mut errs);
        }
        errs
    }

    fn prepare_for_status_update(&self, new: &mut ReplicaSet, old: &ReplicaSet) {
        new.spec = old.spec.clone();
    }

    fn validate_status_update(&self, new: &ReplicaSet, _old: &ReplicaSet) -> FieldErrors {
        let mut errs = Vec::new();
        if let Some(s) = &new.status {
            workload::non_negative("status.replicas", Some(s.replicas), &mut errs);
            workload::non_negative("status.readyReplicas", s.ready_replicas, &mut errs);
            workload::non_negative("status.availableReplicas", s.available_replicas, &mut errs);
        }
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn field(&self, rs: &ReplicaSet, field: &str) -> Option<String> {
        (field == "status.replicas")
            .then(|| rs.status.as_ref().map_or(0, |s| s.replicas).to_string())
    }

    fn supports_field(&self, field: &str) -> bool {
        matches!(
            field,
            "metadata.name" | "metadata.namespace" | "status.replicas"
        )
    }

    fn columns(&self) -> Vec<Column> {
        let [c, i, s] = workload::wide_columns();
        vec![
            Column::name(),
            Column::new(
                "Desired",
                "integer",
                "Replicas is the number of desired replicas.",
            ),
            Column::new(
                "Current",
                "integer",
                "Replicas is the most recently observed number of replicas.",
            ),
            Column::new(
                "Ready",
                "integer",
                "The number of ready replicas for this replica set.",
            ),
            Column::age(),
            c,
            i,
            s,
        ]
    }

    fn row(&self, rs: &ReplicaSet, now: i64) -> Vec<Value> {
        let spec = rs.spec.clone().unwrap_or_default();
        let status = rs.status.clone().unwrap_or_default();
        let [c, i, s] = workload::wide_cells(spec.template.as_ref(), &spec.selector);
        vec![
            json!(rs.metadata.name.clone().unwrap_or_default()),
            json!(spec.replicas.unwrap_or(0)),
            json!(status.replicas),
            json!(status.ready_replicas.unwrap_or(0)),
            age(rs.metadata.creation_timestamp.as_ref(), now),
            c,
            i,
            s,
        ]
    }

    fn scale(&self, rs: &ReplicaSet) -> Option<(i32, i32, String)> {
        let spec = rs.spec.clone().unwrap_or_default();
        let selector = Selector::from_label_selector(&spec.selector)
            .map(|s| s.to_string())
            .unwrap_or_default();
        Some((
            spec.replicas.unwrap_or(0),
            rs.status.as_ref().map_or(0, |s| s.replicas),
            selector,
        ))
    }

    fn set_replicas(&self, rs: &mut ReplicaSet, replicas: i32) {
        rs.spec.get_or_insert_with(Default::default).replicas = Some(replicas);
    }
}
use tinykube_machinery::kinds;
