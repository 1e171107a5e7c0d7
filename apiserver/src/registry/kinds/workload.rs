//! What Deployments and ReplicaSets share: a selector that must select their own template, the
//! pod template rules, and the wide columns.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Value};

use super::pod;
use crate::error::{FieldError, FieldErrors};
use crate::registry::selector::{format_label_selector, Selector};
use crate::registry::table::{join_or, Column};
use crate::registry::validation;

pub fn validate_selector_and_template(
    selector: &LabelSelector,
    template: Option<&PodTemplateSpec>,
    errs: &mut FieldErrors,
) {
    validate_selector_and_template_with(selector, template, &["Always"], errs)
}

/// As [`validate_selector_and_template`], for pods that restart as `restart_policies` allow.
pub fn validate_selector_and_template_with(
    selector: &LabelSelector,
    template: Option<&PodTemplateSpec>,
    restart_policies: &[&str],
    errs: &mut FieldErrors,
) {
    let empty = selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|m| m.is_empty());
    if empty {
        errs.push(FieldError::invalid(
            "spec.selector",
            serde_json::to_value(selector).unwrap_or_default(),
            "empty selector is invalid for deployment",
        ));
    }
    validation::labels(
        "spec.selector.matchLabels",
        selector.match_labels.as_ref(),
        errs,
    );
    for (i, e) in selector.match_expressions.iter().flatten().enumerate() {
        validation::push_all(
            errs,
            &format!("spec.selector.matchExpressions[{i}].key"),
            &e.key,
            validation::qualified_name(&e.key),
        );
    }
    let parsed = Selector::from_label_selector(selector);
    if let Err(e) = &parsed {
        errs.push(FieldError::invalid(
            "spec.selector",
            serde_json::to_value(selector).unwrap_or_default(),
            e.clone(),
        ));
    }
    match template {
        None => errs.push(FieldError::required("spec.template", "")),
        Some(t) => {
            let labels = t
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            if let Ok(sel) = parsed {
                if !empty && !sel.matches(&labels) {
                    errs.push(FieldError::invalid(
                        "spec.template.metadata.labels",
                        serde_json::to_value(&labels).unwrap_or_default(),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
            pod::validate_template_with(t, "spec.template", restart_policies, errs);
        }
    }
}

pub fn non_negative(field: &str, v: Option<i32>, errs: &mut FieldErrors) {
    if let Some(v) = v.filter(|v| *v < 0) {
        errs.push(FieldError::invalid(
            field,
            v,
            "must be greater than or equal to 0",
        ));
    }
}

/// An int-or-percent (`25%`, `1`) for maxSurge/maxUnavailable; returns the percent or count.
pub fn int_or_percent(field: &str, v: &IntOrString, errs: &mut FieldErrors) -> Option<(i32, bool)> {
    match v {
        IntOrString::Int(n) => {
            non_negative(field, Some(*n), errs);
            Some((*n, false))
        }
        IntOrString::String(s) => match s.strip_suffix('%').and_then(|n| n.parse::<i32>().ok()) {
            Some(p) if (0..=100).contains(&p) => Some((p, true)),
            Some(p) => {
                errs.push(FieldError::invalid(
                    field,
                    s.as_str(),
                    "must not be greater than 100%",
                ));
                Some((p, true))
            }
            None => {
                errs.push(FieldError::invalid(
                    field,
                    s.as_str(),
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                ));
                None
            }
        },
    }
}

pub fn selector_immutable(new: &LabelSelector, old: &LabelSelector, errs: &mut FieldErrors) {
    if new != old {
        errs.push(FieldError::invalid(
            "spec.selector",
            serde_json::to_value(new).unwrap_or_default(),
            "field is immutable",
        ));
    }
}

pub fn wide_columns() -> [Column; 3] {
    [
        Column::new("Containers", "string", "Names of each container in the template.").wide(),
        Column::new("Images", "string", "Images referenced by each container in the template.").wide(),
        Column::new("Selector", "string", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.").wide(),
    ]
}

pub fn wide_cells(template: Option<&PodTemplateSpec>, selector: &LabelSelector) -> [Value; 3] {
    let containers = template
        .and_then(|t| t.spec.as_ref())
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    [
        json!(join_or(containers.iter().map(|c| c.name.clone()), "")),
        json!(join_or(
            containers
                .iter()
                .map(|c| c.image.clone().unwrap_or_default()),
            ""
        )),
        json!(format_label_selector(Some(selector))),
    ]
}
