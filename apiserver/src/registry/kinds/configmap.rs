//! ConfigMaps: valid keys, a size limit, and `immutable`.

use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{json, Value};
use tinykube_machinery::kinds;

use crate::error::{FieldError, FieldErrors};
use crate::registry::table::{age, Column};
use crate::registry::validation::{self, push_all, NameRule};
use crate::registry::{Kind, ResourceInfo};

pub static INFO: ResourceInfo = ResourceInfo::of(&kinds::CONFIG_MAP, &[], NameRule::Subdomain);

/// The most data a ConfigMap or Secret may carry.
pub const MAX_DATA_SIZE: usize = 1024 * 1024;

pub struct ConfigMapKind;

impl Kind for ConfigMapKind {
    type Obj = ConfigMap;

    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn validate(&self, cm: &ConfigMap) -> FieldErrors {
        let mut errs = Vec::new();
        let mut total = 0;
        for (k, v) in cm.data.iter().flatten() {
            push_all(&mut errs, "data", k, validation::config_key(k));
            total += k.len() + v.len();
        }
        for (k, v) in cm.binary_data.iter().flatten() {
            push_all(&mut errs, "binaryData", k, validation::config_key(k));
            if cm.data.as_ref().is_some_and(|d| d.contains_key(k)) {
                errs.push(FieldError::invalid(
                    "data",
                    k.as_str(),
                    "duplicate of key present in binaryData",
                ));
            }
            total += k.len() + v.0.len();
        }
        if total > MAX_DATA_SIZE {
            errs.push(FieldError::too_long("", MAX_DATA_SIZE));
        }
        errs
    }

    fn validate_update(&self, new: &ConfigMap, old: &ConfigMap) -> FieldErrors {
        let mut errs = self.validate(new);
        if old.immutable == Some(true) {
            if new.immutable != Some(true) {
                errs.push(FieldError::forbidden(
                    "immutable",
                    "field is immutable when `immutable` is set",
                ));
            }
            if new.data != old.data {
                errs.push(FieldError::forbidden(
                    "data",
                    "field is immutable when `immutable` is set",
                ));
            }
            if new.binary_data != old.binary_data {
                errs.push(FieldError::forbidden(
                    "binaryData",
                    "field is immutable when `immutable` is set",
                ));
            }
        }
        errs
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Data", "string", "Data contains the configuration data."),
            Column::age(),
        ]
    }

    fn row(&self, cm: &ConfigMap, now: i64) -> Vec<Value> {
        let n = cm.data.as_ref().map_or(0, |d| d.len())
            + cm.binary_data.as_ref().map_or(0, |d| d.len());
        vec![
            json!(cm.metadata.name.clone().unwrap_or_default()),
            json!(n),
            age(cm.metadata.creation_timestamp.as_ref(), now),
        ]
    }
}
