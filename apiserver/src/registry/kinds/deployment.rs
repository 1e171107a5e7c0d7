//! apps/v1 Deployments: defaults (RollingUpdate 25%/25%, 10 revisions, 600 s deadline),
//! validation, generation, and the scale subresource.

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentStatus, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Value};

use super::{pod, workload};
use crate::error::{FieldError, FieldErrors};
use crate::registry::selector::Selector;
use crate::registry::table::{age, Column};
use crate::registry::validation::NameRule;
use crate::registry::{Kind, ResourceInfo};

pub static INFO: ResourceInfo = ResourceInfo::of(
    &kinds::DEPLOYMENT,
    &["status", "scale"],
    NameRule::Subdomain,
);

pub struct DeploymentKind;

impl Kind for DeploymentKind {
    type Obj = Deployment;

    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn prepare_for_create(&self, d: &mut Deployment) {
        d.status = Some(DeploymentStatus::default());
    }

    fn apply_defaults(&self, d: &mut Deployment) {
        let spec = d.spec.get_or_insert_with(Default::default);
        spec.replicas.get_or_insert(1);
        let strategy = spec
            .strategy
            .get_or_insert_with(DeploymentStrategy::default);
        let ty = strategy
            .type_
            .get_or_insert_with(|| "RollingUpdate".into())
            .clone();
        if ty == "RollingUpdate" {
            let ru = strategy
                .rolling_update
                .get_or_insert_with(RollingUpdateDeployment::default);
            ru.max_unavailable
                .get_or_insert_with(|| IntOrString::String("25%".into()));
            ru.max_surge
                .get_or_insert_with(|| IntOrString::String("25%".into()));
        }
        spec.revision_history_limit.get_or_insert(10);
        spec.progress_deadline_seconds.get_or_insert(600);
        pod::default_template(&mut spec.template);
    }

    fn validate(&self, d: &Deployment) -> FieldErrors {
        let mut errs = Vec::new();
        let Some(spec) = &d.spec else {
            errs.push(FieldError::required("spec", ""));
            return errs;
        };
        workload::validate_selector_and_template(&spec.selector, Some(&spec.template), &mut errs);
        workload::non_negative("spec.replicas", spec.replicas, &mut errs);
        workload::non_negative("spec.minReadySeconds", spec.min_ready_seconds, &mut errs);
        workload::non_negative(
            "spec.revisionHistoryLimit",
            spec.revision_history_limit,
            &mut errs,
        );
        if let Some(p) = spec.progress_deadline_seconds {
            if p <= spec.min_ready_seconds.unwrap_or(0) {
                errs.push(FieldError::invalid(
                    "spec.progressDeadlineSeconds",
                    p,
                    "must be greater than minReadySeconds",
                ));
            }
        }
        if let Some(s) = &spec.strategy {
            let ty = s.type_.as_deref().unwrap_or("RollingUpdate");
            match ty {
                "Recreate" if s.rolling_update.is_some() => errs.push(FieldError::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                )),
                "Recreate" => {}
                "RollingUpdate" => {
                    if let Some(ru) = &s.rolling_update {
                        let surge = ru.max_surge.as_ref().and_then(|v| {
                            workload::int_or_percent(
                                "spec.strategy.rollingUpdate.maxSurge",
                                v,
                                &mut errs,
                            )
                        });
                        let unavailable = ru.max_unavailable.as_ref().and_then(|v| {
                            workload::int_or_percent(
                                "spec.strategy.rollingUpdate.maxUnavailable",
                                v,
                                &mut errs,
                            )
                        });
                        if surge.is_some_and(|(n, _)| n == 0)
                            && unavailable.is_some_and(|(n, _)| n == 0)
                        {
                            errs.push(FieldError::invalid(
                                "spec.strategy.rollingUpdate.maxUnavailable",
                                0,
                                "may not be 0 when `maxSurge` is 0",
                            ));
                        }
                    }
                }
                other => errs.push(FieldError::not_supported(
                    "spec.strategy.type",
                    other,
                    &["Recreate", "RollingUpdate"],
                )),
            }
        }
        errs
    }

    fn prepare_for_update(&self, new: &mut Deployment, old: &Deployment) {
        new.status = old.status.clone();
    }

    fn validate_update(&self, new: &Deployment, old: &Deployment) -> FieldErrors {
        let mut errs = self.validate(new);
        if let (Some(n), Some(o)) = (&new.spec, &old.spec) {
            workload::selector_immutable(&n.selector, &o.selector, &mut errs);
        }
        errs
    }

    fn prepare_for_status_update(&self, new: &mut Deployment, old: &Deployment) {
        new.spec = old.spec.clone();
    }

    fn validate_status_update(&self, _new: &Deployment, _old: &Deployment) -> FieldErrors {
        Vec::new()
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        let [c, i, s] = workload::wide_columns();
        vec![
            Column::name(),
            Column::new("Ready", "string", "Number of the pod with ready state"),
            Column::new("Up-to-date", "string", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
            Column::new("Available", "string", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
            Column::age(),
            c,
            i,
            s,
        ]
    }

    fn row(&self, d: &Deployment, now: i64) -> Vec<Value> {
        let spec = d.spec.clone().unwrap_or_default();
        let status = d.status.clone().unwrap_or_default();
        let [c, i, s] = workload::wide_cells(Some(&spec.template), &spec.selector);
        vec![
            json!(d.metadata.name.clone().unwrap_or_default()),
            json!(format!(
                "{}/{}",
                status.ready_replicas.unwrap_or(0),
                spec.replicas.unwrap_or(0)
            )),
            json!(status.updated_replicas.unwrap_or(0)),
            json!(status.available_replicas.unwrap_or(0)),
            age(d.metadata.creation_timestamp.as_ref(), now),
            c,
            i,
            s,
        ]
    }

    fn scale(&self, d: &Deployment) -> Option<(i32, i32, String)> {
        let spec = d.spec.clone().unwrap_or_default();
        let selector = Selector::from_label_selector(&spec.selector)
            .map(|s| s.to_string())
            .unwrap_or_default();
        Some((
            spec.replicas.unwrap_or(0),
            d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0),
            selector,
        ))
    }

    fn set_replicas(&self, d: &mut Deployment, replicas: i32) {
        d.spec.get_or_insert_with(Default::default).replicas = Some(replicas);
    }
}
use tinykube_machinery::kinds;
