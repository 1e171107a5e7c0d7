//! Kubernetes' default RBAC policy (its bootstrap policy): the ClusterRoles every cluster has
//! (`cluster-admin`, `admin`, `edit`, `view` and the roles they aggregate, the discovery and
//! self-review roles, the proxy's) and their ClusterRoleBindings. They carry
//! `rbac.authorization.kubernetes.io/autoupdate: "true"`; at every start the apiserver
//! creates the missing ones and, for those still marked so, adds back rules and subjects a user
//! removed, as kube-apiserver's RBAC post-start hook does.
//!
//! The node's identities: nodes are authorized by the node authorizer (auth/authz.rs), not by
//! a role, as in Kubernetes. The proxy (`system:kube-proxy`) is bound to `system:node-proxier`,
//! which here also lets it write `services/status` (tinykube's proxy reports load-balancer
//! addresses; kube-proxy does not) and the `kube-dns` endpoints (it serves the cluster DNS).

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{
    AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::registry::catalog::Catalog;
use crate::registry::kinds::rbac::GROUP;
use crate::registry::{Part, WriteOptions};

pub const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
const AGGREGATE_TO: &str = "rbac.authorization.k8s.io/aggregate-to-";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
/// get, list, watch, create, update, patch, delete, deletecollection: what discovery lists.
const READ_WRITE: &[&str] = crate::registry::VERBS_ALL;

fn strings(l: &[&str]) -> Vec<String> {
    l.iter().map(|s| s.to_string()).collect()
}

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        ..Default::default()
    }
}

fn urls(verbs: &[&str], urls: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        non_resource_urls: Some(strings(urls)),
        ..Default::default()
    }
}

fn meta(name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    let mut l: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.insert("kubernetes.io/bootstrapping".into(), "rbac-defaults".into());
    ObjectMeta {
        name: Some(name.into()),
        labels: Some(l),
        annotations: Some(BTreeMap::from([(AUTOUPDATE.into(), "true".into())])),
        ..Default::default()
    }
}

fn role(name: &str, labels: &[(&str, &str)], rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: meta(name, labels),
        rules: Some(rules),
        aggregation_rule: None,
    }
}

/// `admin`, `edit`, `view`: their rules are gathered from the roles labelled
/// `aggregate-to-<name>`.
fn aggregated(name: &str, labels: &[(&str, &str)]) -> ClusterRole {
    ClusterRole {
        metadata: meta(name, labels),
        rules: None,
        aggregation_rule: Some(AggregationRule {
            cluster_role_selectors: Some(vec![LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    format!("{AGGREGATE_TO}{name}"),
                    "true".into(),
                )])),
                ..Default::default()
            }]),
        }),
    }
}

/// The default ClusterRoles.
pub fn cluster_roles() -> Vec<ClusterRole> {
    let to = |n: &str| format!("{AGGREGATE_TO}{n}");
    let (to_admin, to_edit, to_view) = (to("admin"), to("edit"), to("view"));
    vec![
        role(
            "cluster-admin",
            &[],
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        aggregated("admin", &[]),
        aggregated("edit", &[(&to_admin, "true")]),
        aggregated("view", &[(&to_edit, "true")]),
        role(
            "system:aggregate-to-admin",
            &[(&to_admin, "true")],
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                ),
                rule(READ_WRITE, &[GROUP], &["rolebindings", "roles"]),
            ],
        ),
        role(
            "system:aggregate-to-edit",
            &[(&to_edit, "true")],
            vec![
                rule(
                    READ,
                    &[""],
                    &[
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                        "secrets",
                        "services/proxy",
                    ],
                ),
                rule(&["impersonate"], &[""], &["serviceaccounts"]),
                rule(
                    WRITE,
                    &[""],
                    &[
                        "pods",
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                    ],
                ),
                rule(&["create"], &[""], &["pods/eviction"]),
                rule(
                    WRITE,
                    &[""],
                    &[
                        "configmaps",
                        "events",
                        "persistentvolumeclaims",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "secrets",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                    ],
                ),
                rule(&["create"], &[""], &["serviceaccounts/token"]),
                rule(
                    WRITE,
                    &["apps"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/scale",
                        "statefulsets",
                        "statefulsets/scale",
                    ],
                ),
                rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
                rule(WRITE, &["batch"], &["cronjobs", "jobs"]),
                rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
                rule(
                    WRITE,
                    &["networking.k8s.io"],
                    &["ingresses", "networkpolicies"],
                ),
                rule(READ_WRITE, &["coordination.k8s.io"], &["leases"]),
            ],
        ),
        role(
            "system:aggregate-to-view",
            &[(&to_view, "true")],
            vec![
                rule(
                    READ,
                    &[""],
                    &[
                        "configmaps",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                    ],
                ),
                rule(
                    READ,
                    &[""],
                    &[
                        "bindings",
                        "events",
                        "limitranges",
                        "namespaces/status",
                        "pods/log",
                        "pods/status",
                        "replicationcontrollers/status",
                        "resourcequotas",
                        "resourcequotas/status",
                    ],
                ),
                rule(READ, &[""], &["namespaces"]),
                rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
                rule(
                    READ,
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status",
                    ],
                ),
                rule(
                    READ,
                    &["autoscaling"],
                    &[
                        "horizontalpodautoscalers",
                        "horizontalpodautoscalers/status",
                    ],
                ),
                rule(
                    READ,
                    &["batch"],
                    &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                ),
                rule(
                    READ,
                    &["policy"],
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                ),
                rule(
                    READ,
                    &["networking.k8s.io"],
                    &["ingresses", "ingresses/status", "networkpolicies"],
                ),
            ],
        ),
        role(
            "system:auth-delegator",
            &[],
            vec![
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
            ],
        ),
        role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        role(
            "system:discovery",
            &[],
            vec![urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        role(
            "system:public-info-viewer",
            &[],
            vec![urls(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
        ),
        role(
            "system:node-proxier",
            &[],
            vec![
                rule(&["list", "watch"], &[""], &["endpoints", "services"]),
                rule(&["get", "list", "watch"], &[""], &["nodes"]),
                rule(
                    &["create", "patch", "update"],
                    &["", "events.k8s.io"],
                    &["events"],
                ),
                rule(
                    &["list", "watch"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
                rule(&["get", "patch", "update"], &[""], &["services/status"]),
                // tinykube's proxy serves the cluster DNS and names itself kube-dns's
                // endpoint (kube-proxy does neither).
                PolicyRule {
                    resource_names: Some(strings(&["kube-dns"])),
                    ..rule(&["get", "patch", "update"], &[""], &["endpoints"])
                },
                PolicyRule {
                    resource_names: Some(strings(&["kube-dns"])),
                    ..rule(
                        &["get", "patch", "update"],
                        &["discovery.k8s.io"],
                        &["endpointslices"],
                    )
                },
            ],
        ),
    ]
}

fn subject(kind: &str, name: &str) -> Subject {
    Subject {
        kind: kind.into(),
        name: name.into(),
        api_group: Some(GROUP.into()),
        namespace: None,
    }
}

fn binding(name: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(name, &[]),
        role_ref: RoleRef {
            api_group: GROUP.into(),
            kind: "ClusterRole".into(),
            name: name.into(),
        },
        subjects: Some(subjects),
    }
}

/// The default ClusterRoleBindings.
pub fn cluster_role_bindings() -> Vec<ClusterRoleBinding> {
    vec![
        binding("cluster-admin", vec![subject("Group", "system:masters")]),
        binding(
            "system:basic-user",
            vec![subject("Group", "system:authenticated")],
        ),
        binding(
            "system:discovery",
            vec![subject("Group", "system:authenticated")],
        ),
        binding(
            "system:public-info-viewer",
            vec![
                subject("Group", "system:authenticated"),
                subject("Group", "system:unauthenticated"),
            ],
        ),
        binding(
            "system:node-proxier",
            vec![subject("User", "system:kube-proxy")],
        ),
    ]
}

fn autoupdate(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(AUTOUPDATE))
        .is_none_or(|v| v == "true")
}

/// Creates the default roles and bindings that are missing and, where still marked for
/// auto-update, adds back the rules, labels, annotations and subjects they lost.
pub async fn reconcile(c: &Catalog) -> anyhow::Result<()> {
    let opts = WriteOptions::default();
    for want in cluster_roles() {
        let name = want.metadata.name.clone().unwrap_or_default();
        let current = match c.clusterroles.get(None, &name).await {
            Ok(r) => Some(r),
            Err(e) if e.code == 404 => None,
            Err(e) => anyhow::bail!("reading clusterrole {name}: {e}"),
        };
        match current {
            None => {
                c.clusterroles
                    .create(None, want, &opts)
                    .await
                    .map_err(|e| anyhow::anyhow!("creating clusterrole {name}: {e}"))?;
            }
            Some(mut have) if autoupdate(&have.metadata) => {
                let before = have.clone();
                merge_meta(&mut have.metadata, &want.metadata);
                if want.aggregation_rule.is_some() {
                    have.aggregation_rule = want.aggregation_rule;
                } else {
                    let rules = have.rules.get_or_insert_with(Vec::new);
                    for r in want.rules.into_iter().flatten() {
                        if !rules.contains(&r) {
                            rules.push(r);
                        }
                    }
                }
                if have != before {
                    c.clusterroles
                        .update(None, &name, have, Part::Main, &opts)
                        .await
                        .map_err(|e| anyhow::anyhow!("reconciling clusterrole {name}: {e}"))?;
                }
            }
            Some(_) => {}
        }
    }
    for want in cluster_role_bindings() {
        let name = want.metadata.name.clone().unwrap_or_default();
        let current = match c.clusterrolebindings.get(None, &name).await {
            Ok(b) => Some(b),
            Err(e) if e.code == 404 => None,
            Err(e) => anyhow::bail!("reading clusterrolebinding {name}: {e}"),
        };
        match current {
            None => {
                c.clusterrolebindings
                    .create(None, want, &opts)
                    .await
                    .map_err(|e| anyhow::anyhow!("creating clusterrolebinding {name}: {e}"))?;
            }
            // roleRef cannot change; a binding whose roleRef a user replaced is left alone.
            Some(mut have) if autoupdate(&have.metadata) && have.role_ref == want.role_ref => {
                let before = have.clone();
                merge_meta(&mut have.metadata, &want.metadata);
                let subjects = have.subjects.get_or_insert_with(Vec::new);
                for s in want.subjects.into_iter().flatten() {
                    if !subjects.contains(&s) {
                        subjects.push(s);
                    }
                }
                if have != before {
                    c.clusterrolebindings
                        .update(None, &name, have, Part::Main, &opts)
                        .await
                        .map_err(|e| {
                            anyhow::anyhow!("reconciling clusterrolebinding {name}: {e}")
                        })?;
                }
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn merge_meta(have: &mut ObjectMeta, want: &ObjectMeta) {
    for (k, v) in want.labels.iter().flatten() {
        have.labels
            .get_or_insert_with(Default::default)
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
    for (k, v) in want.annotations.iter().flatten() {
        have.annotations
            .get_or_insert_with(Default::default)
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
}
