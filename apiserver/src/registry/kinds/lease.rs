//! coordination.k8s.io Leases: node heartbeats and leader election.

use k8s_openapi::api::coordination::v1::Lease;
use serde_json::{json, Value};
use tinykube_machinery::kinds;

use crate::error::{FieldError, FieldErrors};
use crate::registry::table::{age, Column};
use crate::registry::validation::NameRule;
use crate::registry::{Kind, ResourceInfo};

pub static INFO: ResourceInfo = ResourceInfo::of(&kinds::LEASE, &[], NameRule::Subdomain);

pub struct LeaseKind;

impl Kind for LeaseKind {
    type Obj = Lease;

    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn validate(&self, lease: &Lease) -> FieldErrors {
        let mut errs = Vec::new();
        if let Some(spec) = &lease.spec {
            if let Some(d) = spec.lease_duration_seconds.filter(|d| *d <= 0) {
                errs.push(FieldError::invalid(
                    "spec.leaseDurationSeconds",
                    d,
                    "must be greater than 0",
                ));
            }
            if let Some(t) = spec.lease_transitions.filter(|t| *t < 0) {
                errs.push(FieldError::invalid(
                    "spec.leaseTransitions",
                    t,
                    "must be greater than or equal to 0",
                ));
            }
        }
        errs
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Holder", "string", "The holder of the lease"),
            Column::age(),
        ]
    }

    fn row(&self, lease: &Lease, now: i64) -> Vec<Value> {
        vec![
            json!(lease.metadata.name.clone().unwrap_or_default()),
            json!(lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.clone())
                .unwrap_or_default()),
            age(lease.metadata.creation_timestamp.as_ref(), now),
        ]
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }
}
