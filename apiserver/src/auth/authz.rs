//! What a caller may do, decided as kube-apiserver's authorizer chain decides it: cluster
//! admins (`system:masters`) may do anything; a node (`system:node:<name>` in `system:nodes`)
//! may read what a kubelet reads and write its own Node, Lease, pod status and events (the node
//! authorizer); everything else is what RBAC grants (auth/rbac.rs), whose default roles give
//! every authenticated user discovery and the self reviews, and the proxy what it reads.

use k8s_openapi::api::authorization::v1::{NonResourceRule, ResourceRule};

use super::authn::User;
use super::rbac::Rbac;

/// A request in authorization terms.
#[derive(Debug, Default)]
pub struct Attributes<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    /// Set for non-resource requests (`/api`, `/version`...).
    pub path: &'a str,
}

const READ: [&str; 3] = ["get", "list", "watch"];

fn is_read(verb: &str) -> bool {
    READ.contains(&verb)
}

fn node_may(node: &str, a: &Attributes<'_>) -> bool {
    let write = matches!(a.verb, "create" | "update" | "patch");
    match (a.group, a.resource, a.subresource) {
        ("", "nodes", "" | "status") if is_read(a.verb) => true,
        // Which node a new Node object names is checked on its body (node_restriction).
        ("", "nodes", "") if a.verb == "create" => true,
        ("", "nodes", "" | "status") => write && a.name == node,
        ("", "pods", "") if is_read(a.verb) => true,
        ("", "pods", "") => a.verb == "delete",
        ("", "pods", "status") => write,
        // Which service account and pod is checked on the request (auth/serviceaccount.rs).
        ("", "serviceaccounts", "token") => a.verb == "create",
        ("", "events", "") => write || is_read(a.verb),
        ("coordination.k8s.io", "leases", "") if a.namespace == "kube-node-lease" => {
            (is_read(a.verb) || write || a.verb == "delete")
                && (a.name == node || a.name.is_empty())
        }
        (
            "",
            "services"
            | "endpoints"
            | "namespaces"
            | "configmaps"
            | "secrets"
            | "serviceaccounts"
            | "persistentvolumeclaims"
            | "persistentvolumes",
            "",
        ) => is_read(a.verb),
        ("discovery.k8s.io", "endpointslices", "") => is_read(a.verb),
        _ => false,
    }
}

/// Admission for node identities (Kubernetes' NodeRestriction): a node may only register
/// itself. `name` is the name in the object it creates.
pub fn node_restriction(
    user: &User,
    group: &str,
    resource: &str,
    name: &str,
) -> Result<(), String> {
    match user.node_name() {
        Some(node) if group.is_empty() && resource == "nodes" && name != node => Err(format!(
            "node {node:?} is not allowed to modify node {name:?}"
        )),
        _ => Ok(()),
    }
}

/// Paths anyone may read, as Kubernetes' system:public-info-viewer allows.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/version" | "/healthz" | "/livez" | "/readyz")
        || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

/// Ok(reason), or the reason for a 403: members of `system:masters` may do anything (as
/// kube-apiserver's privileged-group authorizer allows); nodes what the node authorizer
/// allows them; everyone what RBAC grants.
pub fn decide(rbac: &Rbac, user: &User, a: &Attributes<'_>) -> Result<String, String> {
    if user.in_group("system:masters") {
        return Ok("allowed to do anything as a member of \"system:masters\"".into());
    }
    if let Some(node) = user.node_name() {
        if a.path.is_empty() && node_may(node, a) {
            return Ok("allowed by the node authorizer".into());
        }
    }
    if let Some(reason) = rbac.allows(user, a) {
        return Ok(reason);
    }
    if !a.path.is_empty() {
        return Err(format!(
            "User {:?} cannot {} path {:?}",
            user.name, a.verb, a.path
        ));
    }
    let resource = if a.subresource.is_empty() {
        a.resource.to_string()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", a.namespace)
    };
    Err(format!(
        "User {:?} cannot {} resource {resource:?} in API group {:?} {scope}",
        user.name, a.verb, a.group
    ))
}

/// Ok, or the reason for a 403 ([`decide`]).
pub fn authorize(rbac: &Rbac, user: &User, a: &Attributes<'_>) -> Result<(), String> {
    decide(rbac, user, a).map(|_| ())
}

/// What a user may do in a namespace, as a rules review lists it.
#[derive(Debug, Default)]
pub struct Rules {
    pub resource: Vec<ResourceRule>,
    pub non_resource: Vec<NonResourceRule>,
    /// Some of what the user may do is decided request by request (a node's own objects)
    /// and not listed, as with Kubernetes' node authorizer.
    pub incomplete: bool,
}

fn rule(verbs: &[&str], group: &str, resources: &[&str], names: &[&str]) -> ResourceRule {
    let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    ResourceRule {
        verbs: v(verbs),
        api_groups: Some(v(&[group])),
        resources: Some(v(resources)),
        resource_names: (!names.is_empty()).then(|| v(names)),
    }
}

/// The rules [`authorize`] applies to `user` in namespace `ns`, as a list.
pub fn rules_for(rbac: &Rbac, user: &User, ns: &str) -> Rules {
    let mut r = Rules::default();
    if user.in_group("system:masters") {
        r.resource.push(rule(&["*"], "*", &["*"], &[]));
        r.non_resource.push(NonResourceRule {
            verbs: vec!["*".into()],
            non_resource_urls: Some(vec!["*".into()]),
        });
    }
    let read = &READ[..];
    if let Some(node) = user.node_name() {
        r.resource.push(rule(
            read,
            "",
            &[
                "nodes",
                "nodes/status",
                "pods",
                "services",
                "endpoints",
                "namespaces",
                "configmaps",
                "secrets",
                "serviceaccounts",
                "persistentvolumeclaims",
                "persistentvolumes",
            ],
            &[],
        ));
        r.resource
            .push(rule(read, "discovery.k8s.io", &["endpointslices"], &[]));
        r.resource.push(rule(&["create"], "", &["nodes"], &[]));
        r.resource.push(rule(
            &["update", "patch"],
            "",
            &["nodes", "nodes/status"],
            &[node],
        ));
        r.resource.push(rule(&["delete"], "", &["pods"], &[]));
        r.resource.push(rule(
            &["create", "update", "patch"],
            "",
            &["pods/status"],
            &[],
        ));
        r.resource.push(rule(
            &["create", "update", "patch", "get", "list", "watch"],
            "",
            &["events"],
            &[],
        ));
        if ns == "kube-node-lease" {
            r.resource.push(rule(
                &["list", "watch"],
                "coordination.k8s.io",
                &["leases"],
                &[],
            ));
            r.resource.push(rule(
                &[
                    "get", "list", "watch", "create", "update", "patch", "delete",
                ],
                "coordination.k8s.io",
                &["leases"],
                &[node],
            ));
        }
        r.incomplete = true;
    }
    let (resource, non_resource) = rbac.review_rules(user, ns);
    r.resource.extend(resource);
    r.non_resource.extend(non_resource);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn rbac() -> Rbac {
        Rbac::with_defaults(Vec::new(), Vec::new())
    }

    fn user(name: &str, groups: &[&str]) -> User {
        User::of(name, groups)
    }

    fn attrs<'a>(
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        sub: &'a str,
        ns: &'a str,
        name: &'a str,
    ) -> Attributes<'a> {
        Attributes {
            verb,
            group,
            resource,
            subresource: sub,
            namespace: ns,
            name,
            path: "",
        }
    }

    #[test]
    fn admin_may_do_anything() {
        let admin = user(
            "tinykube-admin",
            &["system:masters", "system:authenticated"],
        );
        assert!(authorize(
            &rbac(),
            &admin,
            &attrs("delete", "apps", "deployments", "", "default", "x")
        )
        .is_ok());
    }

    #[test]
    fn node_writes_only_its_own_node_and_lease() {
        let n = user("system:node:n1", &["system:nodes", "system:authenticated"]);
        assert!(authorize(
            &rbac(),
            &n,
            &attrs("update", "", "nodes", "status", "", "n1")
        )
        .is_ok());
        assert!(authorize(
            &rbac(),
            &n,
            &attrs("update", "", "nodes", "status", "", "n2")
        )
        .is_err());
        assert!(authorize(
            &rbac(),
            &n,
            &attrs(
                "update",
                "coordination.k8s.io",
                "leases",
                "",
                "kube-node-lease",
                "n1"
            )
        )
        .is_ok());
        assert!(authorize(
            &rbac(),
            &n,
            &attrs(
                "update",
                "coordination.k8s.io",
                "leases",
                "",
                "kube-node-lease",
                "n2"
            )
        )
        .is_err());
        assert!(authorize(&rbac(), &n, &attrs("list", "", "pods", "", "", "")).is_ok());
        assert!(authorize(
            &rbac(),
            &n,
            &attrs("create", "apps", "deployments", "", "default", "")
        )
        .is_err());
        assert!(authorize(
            &rbac(),
            &n,
            &attrs("update", "", "pods", "status", "default", "p")
        )
        .is_ok());
    }

    #[test]
    fn others_are_refused_with_kubernetes_wording() {
        let bob = user("bob", &["system:authenticated"]);
        let err =
            authorize(&rbac(), &bob, &attrs("list", "", "pods", "", "default", "")).unwrap_err();
        assert_eq!(err, "User \"bob\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"");
        let discovery = Attributes {
            verb: "get",
            path: "/api",
            ..Default::default()
        };
        assert!(authorize(&rbac(), &bob, &discovery).is_ok());
        assert!(authorize(&rbac(), &User::anonymous(), &discovery).is_err());
    }

    fn binding(ns: &str, name: &str, kind: &str, role: &str, subject: &str) -> RoleBinding {
        RoleBinding {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: kind.into(),
                name: role.into(),
            },
            subjects: Some(vec![Subject {
                kind: "User".into(),
                name: subject.into(),
                api_group: Some("rbac.authorization.k8s.io".into()),
                namespace: None,
            }]),
        }
    }

    #[test]
    fn rbac_grants_what_bindings_say_where_they_say_it() {
        let pod_reader = Role {
            metadata: ObjectMeta {
                name: Some("pod-reader".into()),
                namespace: Some("team".into()),
                ..Default::default()
            },
            rules: Some(vec![PolicyRule {
                verbs: vec!["get".into(), "list".into()],
                api_groups: Some(vec!["".into()]),
                resources: Some(vec!["pods".into()]),
                ..Default::default()
            }]),
        };
        let rbac = Rbac::with_defaults(
            vec![pod_reader],
            vec![
                binding("team", "jane-reads", "Role", "pod-reader", "jane"),
                binding("team", "joe-edits", "ClusterRole", "edit", "joe"),
            ],
        );
        let jane = user("jane", &["system:authenticated"]);
        let joe = user("joe", &["system:authenticated"]);
        let list = |ns| attrs("list", "", "pods", "", ns, "");
        assert!(authorize(&rbac, &jane, &list("team")).is_ok());
        assert!(authorize(&rbac, &jane, &list("default")).is_err());
        assert!(authorize(&rbac, &jane, &attrs("delete", "", "pods", "", "team", "p")).is_err());
        assert_eq!(
            decide(&rbac, &jane, &list("team")).unwrap(),
            "RBAC: allowed by RoleBinding \"jane-reads/team\" of Role \"pod-reader\" to User \"jane\""
        );
        // edit, gathered from system:aggregate-to-edit and -view, in one namespace only.
        assert!(authorize(
            &rbac,
            &joe,
            &attrs("create", "apps", "deployments", "", "team", "")
        )
        .is_ok());
        assert!(authorize(
            &rbac,
            &joe,
            &attrs("create", "", "pods", "exec", "team", "p")
        )
        .is_ok());
        assert!(authorize(&rbac, &joe, &attrs("get", "", "secrets", "", "team", "s")).is_ok());
        assert!(authorize(
            &rbac,
            &joe,
            &attrs(
                "create",
                "rbac.authorization.k8s.io",
                "roles",
                "",
                "team",
                ""
            )
        )
        .is_err());
        assert!(authorize(
            &rbac,
            &joe,
            &attrs("list", "apps", "deployments", "", "default", "")
        )
        .is_err());
        // The proxy reads what it needs through system:node-proxier, and no more.
        let proxy = user(
            "system:kube-proxy",
            &["system:node-proxier", "system:authenticated"],
        );
        assert!(authorize(
            &rbac,
            &proxy,
            &attrs("watch", "discovery.k8s.io", "endpointslices", "", "", "")
        )
        .is_ok());
        assert!(authorize(&rbac, &proxy, &attrs("list", "", "secrets", "", "", "")).is_err());
        // Anyone may ask about itself.
        assert!(authorize(
            &rbac,
            &jane,
            &attrs(
                "create",
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
                "",
                "",
                ""
            )
        )
        .is_ok());
    }

    #[test]
    fn nobody_grants_what_they_do_not_hold() {
        let admin_in_team = binding("team", "jane-admin", "ClusterRole", "admin", "jane");
        let rbac = Rbac::with_defaults(Vec::new(), vec![admin_in_team]);
        let jane = user("jane", &["system:authenticated"]);
        let rule = |verbs: &[&str], resource: &str| PolicyRule {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            api_groups: Some(vec!["".into()]),
            resources: Some(vec![resource.into()]),
            ..Default::default()
        };
        assert!(rbac
            .check_role_escalation(
                Some(&jane),
                "roles",
                "team",
                "r",
                &[rule(&["get", "delete"], "pods")]
            )
            .is_ok());
        let e = rbac
            .check_role_escalation(
                Some(&jane),
                "roles",
                "team",
                "r",
                &[rule(&["get"], "nodes")],
            )
            .unwrap_err();
        assert_eq!(e.code, 403);
        assert!(
            e.message.contains("is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\"]}"),
            "{}",
            e.message
        );
        // Binding a role: only one whose rules the user holds, unless it may `bind` it.
        let view = RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "view".into(),
        };
        assert!(rbac
            .check_binding_escalation(Some(&jane), "rolebindings", "team", "b", &view)
            .is_ok());
        let cluster_admin = RoleRef {
            name: "cluster-admin".into(),
            ..view.clone()
        };
        assert_eq!(
            rbac.check_binding_escalation(Some(&jane), "rolebindings", "team", "b", &cluster_admin)
                .unwrap_err()
                .code,
            403
        );
        assert!(rbac
            .check_binding_escalation(Some(&jane), "rolebindings", "other", "b", &view)
            .is_err());
        let missing = RoleRef {
            name: "nope".into(),
            ..view
        };
        assert_eq!(
            rbac.check_binding_escalation(Some(&jane), "rolebindings", "team", "b", &missing)
                .unwrap_err()
                .code,
            404
        );
        // An aggregationRule can gather any role's rules: only who holds everything sets one.
        let e = rbac
            .check_cluster_role_escalation(Some(&jane), "x", &[], true)
            .unwrap_err();
        assert_eq!(e.code, 403);
        assert!(
            e.message.ends_with(
                "user \"jane\" must have cluster-admin privileges to use an aggregationRule"
            ),
            "{}",
            e.message
        );
        assert!(rbac
            .check_cluster_role_escalation(Some(&jane), "x", &[], false)
            .is_ok());
        let admin = user("admin", &["system:masters"]);
        assert!(rbac
            .check_cluster_role_escalation(Some(&admin), "x", &[], true)
            .is_ok());
        // The server's own writes are not checked.
        assert!(rbac
            .check_role_escalation(None, "roles", "team", "r", &[rule(&["*"], "*")])
            .is_ok());
    }
}
