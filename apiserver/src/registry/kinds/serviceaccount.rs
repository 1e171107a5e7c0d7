//! ServiceAccounts; every namespace gets a `default` one.

use k8s_openapi::api::core::v1::ServiceAccount;
use serde_json::{json, Value};
use tinykube_machinery::kinds;

use crate::error::FieldErrors;
use crate::registry::table::{age, Column};
use crate::registry::validation::NameRule;
use crate::registry::{Kind, ResourceInfo};

pub static INFO: ResourceInfo =
    ResourceInfo::of(&kinds::SERVICE_ACCOUNT, &["token"], NameRule::Subdomain);

/// What `serviceaccounts/<name>/token` takes and answers (auth/serviceaccount.rs).
pub static TOKEN_REQUEST: ResourceInfo = ResourceInfo {
    group: "authentication.k8s.io",
    version: "v1",
    resource: "tokenrequests",
    singular: "tokenrequest",
    kind: "TokenRequest",
    list_kind: "",
    namespaced: true,
    short_names: &[],
    categories: &[],
    subresources: &[],
    name_rule: NameRule::Subdomain,
    verbs: crate::registry::VERBS_CREATE,
};

pub struct ServiceAccountKind;

impl Kind for ServiceAccountKind {
    type Obj = ServiceAccount;

    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn validate(&self, _sa: &ServiceAccount) -> FieldErrors {
        Vec::new()
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
            Column::age(),
        ]
    }

    fn row(&self, sa: &ServiceAccount, now: i64) -> Vec<Value> {
        vec![
            json!(sa.metadata.name.clone().unwrap_or_default()),
            json!(sa.secrets.as_ref().map_or(0, |s| s.len())),
            age(sa.metadata.creation_timestamp.as_ref(), now),
        ]
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }
}
