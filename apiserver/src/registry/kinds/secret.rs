//! Secrets: `stringData` folded into `data`, per-type required keys, immutable type.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use serde_json::{json, Value};

use super::configmap::MAX_DATA_SIZE;
use crate::error::{FieldError, FieldErrors};
use crate::registry::table::{age, Column};
use crate::registry::validation::{self, push_all, NameRule};
use crate::registry::{Kind, ResourceInfo};

pub static INFO: ResourceInfo = ResourceInfo::of(&kinds::SECRET, &[], NameRule::Subdomain);

fn secret_type(s: &Secret) -> &str {
    s.type_.as_deref().unwrap_or("Opaque")
}

pub struct SecretKind;

impl Kind for SecretKind {
    type Obj = Secret;

    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn apply_defaults(&self, s: &mut Secret) {
        if s.type_.as_deref().is_none_or(str::is_empty) {
            s.type_ = Some("Opaque".into());
        }
        // stringData is write-only: it lands in data and is never stored itself.
        if let Some(strings) = s.string_data.take() {
            let data = s.data.get_or_insert_with(Default::default);
            for (k, v) in strings {
                data.insert(k, ByteString(v.into_bytes()));
            }
        }
    }

    fn validate(&self, s: &Secret) -> FieldErrors {
        let mut errs = Vec::new();
        let mut total = 0;
        let data = s.data.clone().unwrap_or_default();
        for (k, v) in &data {
            push_all(
                &mut errs,
                &format!("data[{k}]"),
                k,
                validation::config_key(k),
            );
            total += v.0.len();
        }
        if total > MAX_DATA_SIZE {
            errs.push(FieldError::too_long("data", MAX_DATA_SIZE));
        }
        let require = |key: &str, errs: &mut FieldErrors| {
            if !data.contains_key(key) {
                errs.push(FieldError::required(format!("data[{key}]"), ""));
            }
        };
        match secret_type(s) {
            "kubernetes.io/dockerconfigjson" => {
                require(".dockerconfigjson", &mut errs);
                if let Some(v) = data.get(".dockerconfigjson") {
                    if serde_json::from_slice::<Value>(&v.0).is_err() {
                        errs.push(FieldError::invalid(
                            "data[.dockerconfigjson]",
                            "<secret contents redacted>",
                            "invalid JSON",
                        ));
                    }
                }
            }
            "kubernetes.io/dockercfg" => require(".dockercfg", &mut errs),
            "kubernetes.io/tls" => {
                require("tls.crt", &mut errs);
                require("tls.key", &mut errs);
            }
            "kubernetes.io/basic-auth"
                if !data.contains_key("username") && !data.contains_key("password") =>
            {
                errs.push(FieldError::required("data[username]", ""));
            }
            "kubernetes.io/ssh-auth" => require("ssh-privatekey", &mut errs),
            "kubernetes.io/service-account-token" => {
                let name = s
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("kubernetes.io/service-account.name"));
                if name.is_none_or(String::is_empty) {
                    errs.push(FieldError::required(
                        "metadata.annotations[kubernetes.io/service-account.name]",
                        "",
                    ));
                }
            }
            _ => {}
        }
        errs
    }

    fn validate_update(&self, new: &Secret, old: &Secret) -> FieldErrors {
        let mut errs = self.validate(new);
        if secret_type(new) != secret_type(old) {
            errs.push(FieldError::invalid(
                "type",
                secret_type(new),
                "field is immutable",
            ));
        }
        if old.immutable == Some(true) && (new.immutable != Some(true) || new.data != old.data) {
            errs.push(FieldError::forbidden(
                "data",
                "field is immutable when `immutable` is set",
            ));
        }
        errs
    }

    fn field(&self, s: &Secret, field: &str) -> Option<String> {
        (field == "type").then(|| secret_type(s).to_string())
    }

    fn supports_field(&self, field: &str) -> bool {
        matches!(field, "metadata.name" | "metadata.namespace" | "type")
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Type", "string", "The type of the secret"),
            Column::new("Data", "string", "The number of entries in the secret"),
            Column::age(),
        ]
    }

    fn row(&self, s: &Secret, now: i64) -> Vec<Value> {
        vec![
            json!(s.metadata.name.clone().unwrap_or_default()),
            json!(secret_type(s)),
            json!(s.data.as_ref().map_or(0, |d| d.len())),
            age(s.metadata.creation_timestamp.as_ref(), now),
        ]
    }
}
use tinykube_machinery::kinds;
