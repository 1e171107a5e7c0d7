//! Namespaces: `Active` until deleted, then `Terminating` while the namespace controller empties
//! them; the `kubernetes` finalizer in spec holds them until then.

use k8s_openapi::api::core::v1::{Namespace, NamespaceSpec, NamespaceStatus};
use serde_json::{json, Value};
use tinykube_machinery::kinds;

use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::registry::resource::decode_body;
use crate::registry::table::{age, Column};
use crate::registry::validation::NameRule;
use crate::registry::{FieldValidation, Kind, ResourceInfo};

pub static INFO: ResourceInfo =
    ResourceInfo::of(&kinds::NAMESPACE, &["status", "finalize"], NameRule::Label);

/// The namespaces that always exist and can never be deleted.
pub const SYSTEM: [&str; 3] = ["default", "kube-system", "kube-public"];
pub const FINALIZER: &str = "kubernetes";

pub struct NamespaceKind;

/// Every namespace carries `kubernetes.io/metadata.name=<name>` (set on create and kept on
/// update, as Kubernetes does), so namespace selectors can name one.
fn name_label(ns: &mut Namespace) {
    if let Some(name) = ns.metadata.name.clone().filter(|n| !n.is_empty()) {
        ns.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(METADATA_NAME.into(), name);
    }
}

pub const METADATA_NAME: &str = "kubernetes.io/metadata.name";

impl Kind for NamespaceKind {
    type Obj = Namespace;

    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn prepare_for_create(&self, ns: &mut Namespace) {
        name_label(ns);
        ns.status = Some(NamespaceStatus {
            phase: Some("Active".into()),
            ..Default::default()
        });
        let spec = ns.spec.get_or_insert_with(NamespaceSpec::default);
        let finalizers = spec.finalizers.get_or_insert_with(Vec::new);
        if !finalizers.iter().any(|f| f == FINALIZER) {
            finalizers.push(FINALIZER.into());
        }
    }

    fn validate(&self, _ns: &Namespace) -> FieldErrors {
        Vec::new()
    }

    fn prepare_for_update(&self, new: &mut Namespace, old: &Namespace) {
        new.status = old.status.clone();
        // Only the finalize subresource changes spec.finalizers.
        new.spec = old.spec.clone();
        name_label(new);
    }

    fn prepare_for_status_update(&self, new: &mut Namespace, old: &Namespace) {
        new.spec = old.spec.clone();
    }

    fn field(&self, ns: &Namespace, field: &str) -> Option<String> {
        (field == "status.phase").then(|| {
            ns.status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default()
        })
    }

    fn supports_field(&self, field: &str) -> bool {
        matches!(field, "metadata.name" | "status.phase")
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Status", "string", "The status of the namespace"),
            Column::age(),
        ]
    }

    fn row(&self, ns: &Namespace, now: i64) -> Vec<Value> {
        vec![
            json!(ns.metadata.name.clone().unwrap_or_default()),
            json!(ns
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default()),
            age(ns.metadata.creation_timestamp.as_ref(), now),
        ]
    }

    fn check_delete(&self, ns: &Namespace) -> ApiResult<()> {
        let name = ns.metadata.name.as_deref().unwrap_or_default();
        if SYSTEM.contains(&name) {
            return Err(ApiError::forbidden(
                &INFO.target(name),
                "this namespace may not be deleted",
            ));
        }
        Ok(())
    }

    fn deletion_blocked(&self, ns: &Namespace) -> bool {
        ns.spec
            .as_ref()
            .and_then(|s| s.finalizers.as_ref())
            .is_some_and(|f| !f.is_empty())
    }

    fn mark_deleting(&self, ns: &mut Namespace) {
        ns.status.get_or_insert_with(Default::default).phase = Some("Terminating".into());
    }

    fn apply_subresource(&self, sub: &str, ns: &mut Namespace, body: &[u8]) -> ApiResult<()> {
        if sub != "finalize" {
            return Err(ApiError::no_route());
        }
        let wanted: Namespace =
            decode_body(&INFO, "Namespace", "v1", body, FieldValidation::Ignore)?;
        ns.spec.get_or_insert_with(Default::default).finalizers = wanted
            .spec
            .and_then(|s| s.finalizers)
            .filter(|f| !f.is_empty());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str, labels: &[(&str, &str)]) -> Namespace {
        let mut ns = Namespace::default();
        ns.metadata.name = Some(name.into());
        if !labels.is_empty() {
            ns.metadata.labels = Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
        }
        ns
    }

    #[test]
    fn the_name_label_is_set_and_cannot_be_changed() {
        let mut ns = named("web", &[("team", "a")]);
        NamespaceKind.prepare_for_create(&mut ns);
        let labels = ns.metadata.labels.clone().unwrap();
        assert_eq!(labels[METADATA_NAME], "web");
        assert_eq!(labels["team"], "a");
        let mut changed = named("web", &[(METADATA_NAME, "other")]);
        NamespaceKind.prepare_for_update(&mut changed, &ns);
        assert_eq!(changed.metadata.labels.unwrap()[METADATA_NAME], "web");
    }
}
