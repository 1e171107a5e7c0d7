//! What a caller may do. Three roles, enforced: cluster admins (`system:masters`) may do
//! anything; a node (`system:node:<name>` in `system:nodes`) may read what a kubelet reads and
//! write its own Node, Lease, pod status and events; the proxy (`system:kube-proxy`) reads
//! services and endpoints and writes service status and events. Every authenticated user may read
//! discovery; nobody else may do anything.

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
