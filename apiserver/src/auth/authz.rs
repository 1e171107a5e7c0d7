//! What a caller may do. Three roles, enforced: cluster admins (`system:masters`) may do
//! anything; a node (`system:node:<name>` in `system:nodes`) may read what a kubelet reads and
//! write its own Node, Lease, pod status and events; the proxy (`system:kube-proxy`) reads
//! services and endpoints and writes service status and events. Every authenticated user may read
//! discovery; nobody else may do anything.

use k8s_openapi::api::authorization::v1::{NonResourceRule, ResourceRule};

use super::authn::User;

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

fn proxy_may(a: &Attributes<'_>) -> bool {
    match (a.group, a.resource, a.subresource) {
        ("", "services" | "endpoints" | "nodes", "") => is_read(a.verb),
        ("discovery.k8s.io", "endpointslices", "") => is_read(a.verb),
        ("", "services", "status") => matches!(a.verb, "get" | "update" | "patch"),
        ("", "events", "") => matches!(a.verb, "create" | "update" | "patch"),
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

/// Ok, or the reason for a 403.
pub fn authorize(user: &User, a: &Attributes<'_>) -> Result<(), String> {
    if user.in_group("system:masters") {
        return Ok(());
    }
    // Kubernetes' system:basic-user: anyone authenticated may ask about itself.
    if user.in_group("system:authenticated") && super::review::is_self_review(a) {
        return Ok(());
    }
    if !a.path.is_empty() {
        if is_public(a.path) || (user.in_group("system:authenticated") && a.verb == "get") {
            return Ok(());
        }
        return Err(format!(
            "User {:?} cannot {} path {:?}",
            user.name, a.verb, a.path
        ));
    }
    let allowed = match user.node_name() {
        Some(node) => node_may(node, a),
        None if user.name == "system:kube-proxy" => proxy_may(a),
        None => false,
    };
    if allowed {
        return Ok(());
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

/// Why `user` may do `a` (which [`authorize`] allowed), for an access review's reason.
pub fn why_allowed(user: &User, a: &Attributes<'_>) -> String {
    if user.in_group("system:masters") {
        "allowed to do anything as a member of \"system:masters\"".into()
    } else if super::review::is_self_review(a) {
        "allowed to review itself as an authenticated user".into()
    } else if !a.path.is_empty() {
        format!(
            "allowed to {} {:?} as an authenticated user",
            a.verb, a.path
        )
    } else if user.node_name().is_some() {
        "allowed by the node authorizer".into()
    } else {
        format!("allowed by the built-in role of {:?}", user.name)
    }
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
pub fn rules_for(user: &User, ns: &str) -> Rules {
    let mut r = Rules::default();
    if user.in_group("system:masters") {
        r.resource.push(rule(&["*"], "*", &["*"], &[]));
        r.non_resource.push(NonResourceRule {
            verbs: vec!["*".into()],
            non_resource_urls: Some(vec!["*".into()]),
        });
    }
    if user.in_group("system:authenticated") {
        r.resource.push(rule(
            &["create"],
            "authorization.k8s.io",
            &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
            &[],
        ));
        r.resource.push(rule(
            &["create"],
            "authentication.k8s.io",
            &["selfsubjectreviews"],
            &[],
        ));
        r.non_resource.push(NonResourceRule {
            verbs: vec!["get".into()],
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
    } else if user.name == "system:kube-proxy" {
        r.resource
            .push(rule(read, "", &["services", "endpoints", "nodes"], &[]));
        r.resource
            .push(rule(read, "discovery.k8s.io", &["endpointslices"], &[]));
        r.resource.push(rule(
            &["get", "update", "patch"],
            "",
            &["services/status"],
            &[],
        ));
        r.resource
            .push(rule(&["create", "update", "patch"], "", &["events"], &[]));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
        }
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
            &admin,
            &attrs("delete", "apps", "deployments", "", "default", "x")
        )
        .is_ok());
    }

    #[test]
    fn node_writes_only_its_own_node_and_lease() {
        let n = user("system:node:n1", &["system:nodes", "system:authenticated"]);
        assert!(authorize(&n, &attrs("update", "", "nodes", "status", "", "n1")).is_ok());
        assert!(authorize(&n, &attrs("update", "", "nodes", "status", "", "n2")).is_err());
        assert!(authorize(
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
        assert!(authorize(&n, &attrs("list", "", "pods", "", "", "")).is_ok());
        assert!(authorize(
            &n,
            &attrs("create", "apps", "deployments", "", "default", "")
        )
        .is_err());
        assert!(authorize(&n, &attrs("update", "", "pods", "status", "default", "p")).is_ok());
    }

    #[test]
    fn others_are_refused_with_kubernetes_wording() {
        let bob = user("bob", &["system:authenticated"]);
        let err = authorize(&bob, &attrs("list", "", "pods", "", "default", "")).unwrap_err();
        assert_eq!(err, "User \"bob\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"");
        let discovery = Attributes {
            verb: "get",
            path: "/api",
            ..Default::default()
        };
        assert!(authorize(&bob, &discovery).is_ok());
        assert!(authorize(&User::anonymous(), &discovery).is_err());
    }
}
