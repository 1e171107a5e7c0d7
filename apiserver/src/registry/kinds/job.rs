//! batch/v1 Jobs: Kubernetes' defaults (parallelism and completions 1, backoffLimit 6,
//! NonIndexed), the selector generated from the Job's UID (unless `manualSelector`), the
//! template labels it selects, validation with kube-apiserver's words, and `kubectl get jobs`'
//! columns.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{json, Value};

use super::{pod, workload};
use crate::error::{FieldError, FieldErrors};
use crate::registry::table::{age, human_duration, Column};
use crate::registry::validation::NameRule;
use crate::registry::{time_secs, Kind, ResourceInfo};
use tinykube_machinery::kinds;

pub static INFO: ResourceInfo = ResourceInfo::of(&kinds::JOB, &["status"], NameRule::Subdomain);

/// The labels a Job's pods carry and its generated selector selects (the `batch.kubernetes.io/`
/// ones and, as Kubernetes still writes them, the legacy unprefixed ones).
pub const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";
const LEGACY_CONTROLLER_UID: &str = "controller-uid";
const LEGACY_JOB_NAME: &str = "job-name";

pub struct JobKind;

/// Whether the Job has a condition of `type_` that is True.
pub fn has_condition(job: &Job, type_: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// What `kubectl get jobs` shows as STATUS (its printJob).
pub fn status_word(job: &Job) -> &'static str {
    if has_condition(job, "Complete") {
        "Complete"
    } else if has_condition(job, "Failed") {
        "Failed"
    } else if job.metadata.deletion_timestamp.is_some() {
        "Terminating"
    } else if has_condition(job, "Suspended") {
        "Suspended"
    } else if has_condition(job, "FailureTarget") {
        "FailureTarget"
    } else if has_condition(job, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

impl Kind for JobKind {
    type Obj = Job;

    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    /// The status starts empty; unless the user picks their own (`manualSelector`), the
    /// selector is the Job's UID and the template gets the labels it selects (Kubernetes'
    /// generateSelector).
    fn prepare_for_create(&self, job: &mut Job) {
        job.status = Some(JobStatus::default());
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let name = job.metadata.name.clone().unwrap_or_default();
        let spec = job.spec.get_or_insert_with(Default::default);
        if spec.manual_selector == Some(true) {
            return;
        }
        let labels = spec
            .template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new);
        labels.insert(CONTROLLER_UID.into(), uid.clone());
        labels.insert(LEGACY_CONTROLLER_UID.into(), uid.clone());
        if !name.is_empty() {
            labels.insert(JOB_NAME.into(), name.clone());
            labels.insert(LEGACY_JOB_NAME.into(), name);
        }
        if spec.selector.is_none() {
            spec.selector = Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(CONTROLLER_UID.to_string(), uid)])),
                ..Default::default()
            });
        }
    }

    fn apply_defaults(&self, job: &mut Job) {
        let template_labels = job
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.clone());
        if job.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
            job.metadata.labels = template_labels;
        }
        let spec = job.spec.get_or_insert_with(Default::default);
        if spec.completions.is_none() && spec.parallelism.is_none() {
            spec.completions = Some(1);
        }
        spec.parallelism.get_or_insert(1);
        let mode = spec
            .completion_mode
            .get_or_insert_with(|| "NonIndexed".into())
            .clone();
        if spec.backoff_limit.is_none() {
            spec.backoff_limit = Some(
                if mode == "Indexed" && spec.backoff_limit_per_index.is_some() {
                    i32::MAX
                } else {
                    6
                },
            );
        }
        spec.suspend.get_or_insert(false);
        spec.pod_replacement_policy.get_or_insert_with(|| {
            if spec.pod_failure_policy.is_some() {
                "Failed".into()
            } else {
                "TerminatingOrFailed".into()
            }
        });
        pod::default_template(&mut spec.template);
    }

    fn validate(&self, job: &Job) -> FieldErrors {
        let mut errs = Vec::new();
        let Some(spec) = &job.spec else {
            errs.push(FieldError::required("spec", ""));
            return errs;
        };
        workload::non_negative("spec.parallelism", spec.parallelism, &mut errs);
        workload::non_negative("spec.completions", spec.completions, &mut errs);
        workload::non_negative("spec.backoffLimit", spec.backoff_limit, &mut errs);
        workload::non_negative(
            "spec.ttlSecondsAfterFinished",
            spec.ttl_seconds_after_finished,
            &mut errs,
        );
        if let Some(d) = spec.active_deadline_seconds.filter(|d| *d <= 0) {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                d,
                "must be greater than 0",
            ));
        }
        match spec.completion_mode.as_deref() {
            None | Some("NonIndexed") => {}
            Some("Indexed") => {
                if spec.completions.is_none() {
                    errs.push(FieldError::required(
                        "spec.completions",
                        "when completion mode is Indexed",
                    ));
                }
            }
            Some(m) => errs.push(FieldError::not_supported(
                "spec.completionMode",
                m,
                &["NonIndexed", "Indexed"],
            )),
        }
        match &spec.selector {
            None => errs.push(FieldError::required("spec.selector", "")),
            Some(sel) => workload::validate_selector_and_template_with(
                sel,
                Some(&spec.template),
                &["OnFailure", "Never"],
                &mut errs,
            ),
        }
        errs
    }

    fn prepare_for_update(&self, new: &mut Job, old: &Job) {
        new.status = old.status.clone();
    }

    fn validate_update(&self, new: &Job, old: &Job) -> FieldErrors {
        let mut errs = self.validate(new);
        if let (Some(n), Some(o)) = (&new.spec, &old.spec) {
            let immutable = |field: &str, a: Value, b: Value, errs: &mut FieldErrors| {
                if a != b {
                    errs.push(FieldError::invalid(field, a, "field is immutable"));
                }
            };
            immutable(
                "spec.selector",
                json!(n.selector),
                json!(o.selector),
                &mut errs,
            );
            immutable(
                "spec.completionMode",
                json!(n.completion_mode),
                json!(o.completion_mode),
                &mut errs,
            );
            immutable(
                "spec.completions",
                json!(n.completions),
                json!(o.completions),
                &mut errs,
            );
            // The template may change only while the Job is suspended (Kubernetes lets a
            // suspended Job that never started have its scheduling directives changed).
            if o.suspend != Some(true) && json!(n.template) != json!(o.template) {
                errs.push(FieldError::invalid(
                    "spec.template",
                    json!(n.template),
                    "field is immutable",
                ));
            }
        }
        errs
    }

    fn prepare_for_status_update(&self, new: &mut Job, old: &Job) {
        new.spec = old.spec.clone();
    }

    fn validate_status_update(&self, new: &Job, _old: &Job) -> FieldErrors {
        let mut errs = Vec::new();
        if let Some(s) = &new.status {
            workload::non_negative("status.active", s.active, &mut errs);
            workload::non_negative("status.succeeded", s.succeeded, &mut errs);
            workload::non_negative("status.failed", s.failed, &mut errs);
            workload::non_negative("status.ready", s.ready, &mut errs);
            workload::non_negative("status.terminating", s.terminating, &mut errs);
        }
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn field(&self, job: &Job, field: &str) -> Option<String> {
        (field == "status.successful").then(|| {
            job.status
                .as_ref()
                .and_then(|s| s.succeeded)
                .unwrap_or(0)
                .to_string()
        })
    }

    fn supports_field(&self, field: &str) -> bool {
        matches!(
            field,
            "metadata.name" | "metadata.namespace" | "status.successful"
        )
    }

    fn columns(&self) -> Vec<Column> {
        let [c, i, s] = workload::wide_columns();
        vec![
            Column::name(),
            Column::new("Status", "string", "Status of the job."),
            Column::new(
                "Completions",
                "string",
                "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.",
            ),
            Column::new("Duration", "string", "Time required to complete the job."),
            Column::age(),
            c,
            i,
            s,
        ]
    }

    fn row(&self, job: &Job, now: i64) -> Vec<Value> {
        let spec = job.spec.clone().unwrap_or_default();
        let status = job.status.clone().unwrap_or_default();
        let succeeded = status.succeeded.unwrap_or(0);
        let completions = match (spec.completions, spec.parallelism.unwrap_or(0)) {
            (Some(c), _) => format!("{succeeded}/{c}"),
            (None, p) if p > 1 => format!("{succeeded}/1 of {p}"),
            (None, _) => format!("{succeeded}/1"),
        };
        let duration = match (&status.start_time, &status.completion_time) {
            (None, _) => String::new(),
            (Some(start), None) => human_duration(now - time_secs(start)),
            (Some(start), Some(end)) => human_duration(time_secs(end) - time_secs(start)),
        };
        let selector = spec.selector.clone().unwrap_or_default();
        let [c, i, s] = workload::wide_cells(Some(&spec.template), &selector);
        vec![
            json!(job.metadata.name.clone().unwrap_or_default()),
            json!(status_word(job)),
            json!(completions),
            json!(duration),
            age(job.metadata.creation_timestamp.as_ref(), now),
            c,
            i,
            s,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(v: Value) -> Job {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn defaults_and_the_generated_selector_as_kubernetes() {
        let mut j = job(json!({
            "metadata": {"name": "pi", "uid": "u-1"},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "pi", "image": "busybox"}]}}}
        }));
        JobKind.prepare_for_create(&mut j);
        JobKind.apply_defaults(&mut j);
        let spec = j.spec.as_ref().unwrap();
        assert_eq!((spec.completions, spec.parallelism), (Some(1), Some(1)));
        assert_eq!(spec.backoff_limit, Some(6));
        assert_eq!(spec.completion_mode.as_deref(), Some("NonIndexed"));
        assert_eq!(spec.suspend, Some(false));
        assert_eq!(
            spec.pod_replacement_policy.as_deref(),
            Some("TerminatingOrFailed")
        );
        assert_eq!(
            json!(spec.selector),
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
        );
        let labels = json!(spec.template.metadata.as_ref().unwrap().labels);
        assert_eq!(
            labels,
            json!({"batch.kubernetes.io/controller-uid": "u-1", "batch.kubernetes.io/job-name": "pi",
                   "controller-uid": "u-1", "job-name": "pi"})
        );
        assert_eq!(
            json!(j.metadata.labels),
            labels,
            "the Job takes its template's labels"
        );
        assert!(
            JobKind.validate(&j).is_empty(),
            "{:?}",
            JobKind.validate(&j)
        );

        // Parallel with a work queue: completions stay unset.
        let mut q = job(json!({"spec": {"parallelism": 3, "template": {}}}));
        JobKind.apply_defaults(&mut q);
        assert_eq!(q.spec.as_ref().unwrap().completions, None);
    }

    #[test]
    fn validation_in_kubernetes_words() {
        let mut j = job(json!({
            "metadata": {"name": "bad", "uid": "u-2"},
            "spec": {"completionMode": "Indexed", "parallelism": -1,
                     "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
        }));
        JobKind.prepare_for_create(&mut j);
        JobKind.apply_defaults(&mut j);
        j.spec.as_mut().unwrap().completions = None;
        let errs: Vec<String> = JobKind
            .validate(&j)
            .iter()
            .map(|e| format!("{}: {}", e.field, e.detail))
            .collect();
        assert!(
            errs.iter()
                .any(|e| e == "spec.completions: when completion mode is Indexed"),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.parallelism: must be greater than or equal to 0")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.template.spec.restartPolicy")),
            "the default Always is refused: {errs:?}"
        );
    }

    #[test]
    fn the_status_column_as_kubectl_prints_it() {
        let mut j = job(json!({"status": {"conditions": [
            {"type": "SuccessCriteriaMet", "status": "True"}]}}));
        assert_eq!(status_word(&j), "SuccessCriteriaMet");
        j.status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()
            .push(serde_json::from_value(json!({"type": "Complete", "status": "True"})).unwrap());
        assert_eq!(status_word(&j), "Complete");
        assert_eq!(status_word(&job(json!({}))), "Running");
    }
}
