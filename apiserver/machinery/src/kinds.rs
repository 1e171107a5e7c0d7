//! The kinds tinykube serves, by every name kubectl accepts for them: one catalog for the
//! apiserver's discovery and routes and for tkctl's resource words.

/// One resource type, as discovery describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    /// The plural name used in URLs: `pods`.
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub list_kind: &'static str,
    pub short: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub namespaced: bool,
}

impl Kind {
    /// `v1`, `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods`, `deployments.apps`: how kubectl names the type in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The collection's path, in `ns` when the kind is namespaced (None: all namespaces).
    pub fn path(&self, ns: Option<&str>) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match ns {
            Some(ns) if self.namespaced => format!("{base}/namespaces/{ns}/{}", self.plural),
            _ => format!("{base}/{}", self.plural),
        }
    }
}

#[allow(clippy::too_many_arguments)]
const fn kind(
    group: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    list_kind: &'static str,
    short: &'static [&'static str],
    categories: &'static [&'static str],
    namespaced: bool,
) -> Kind {
    Kind {
        group,
        version: "v1",
        plural,
        singular,
        kind,
        list_kind,
        short,
        categories,
        namespaced,
    }
}

pub const POD: Kind = kind("", "pods", "pod", "Pod", "PodList", &["po"], &["all"], true);
pub const SERVICE: Kind = kind(
    "",
    "services",
    "service",
    "Service",
    "ServiceList",
    &["svc"],
    &["all"],
    true,
);
pub const ENDPOINTS: Kind = kind(
    "",
    "endpoints",
    "endpoints",
    "Endpoints",
    "EndpointsList",
    &["ep"],
    &[],
    true,
);
pub const EVENT: Kind = kind(
    "",
    "events",
    "event",
    "Event",
    "EventList",
    &["ev"],
    &[],
    true,
);
pub const CONFIG_MAP: Kind = kind(
    "",
    "configmaps",
    "configmap",
    "ConfigMap",
    "ConfigMapList",
    &["cm"],
    &[],
    true,
);
pub const SECRET: Kind = kind(
    "",
    "secrets",
    "secret",
    "Secret",
    "SecretList",
    &[],
    &[],
    true,
);
pub const SERVICE_ACCOUNT: Kind = kind(
    "",
    "serviceaccounts",
    "serviceaccount",
    "ServiceAccount",
    "ServiceAccountList",
    &["sa"],
    &[],
    true,
);
pub const NODE: Kind = kind("", "nodes", "node", "Node", "NodeList", &["no"], &[], false);
pub const NAMESPACE: Kind = kind(
    "",
    "namespaces",
    "namespace",
    "Namespace",
    "NamespaceList",
    &["ns"],
    &[],
    false,
);
pub const DEPLOYMENT: Kind = kind(
    "apps",
    "deployments",
    "deployment",
    "Deployment",
    "DeploymentList",
    &["deploy"],
    &["all"],
    true,
);
pub const REPLICA_SET: Kind = kind(
    "apps",
    "replicasets",
    "replicaset",
    "ReplicaSet",
    "ReplicaSetList",
    &["rs"],
    &["all"],
    true,
);
pub const JOB: Kind = kind(
    "batch",
    "jobs",
    "job",
    "Job",
    "JobList",
    &[],
    &["all"],
    true,
);
pub const LEASE: Kind = kind(
    "coordination.k8s.io",
    "leases",
    "lease",
    "Lease",
    "LeaseList",
    &[],
    &[],
    true,
);
pub const ENDPOINT_SLICE: Kind = kind(
    "discovery.k8s.io",
    "endpointslices",
    "endpointslice",
    "EndpointSlice",
    "EndpointSliceList",
    &[],
    &[],
    true,
);

/// The reviews: create-only questions about the caller, answered and never stored.
pub const SELF_SUBJECT_ACCESS_REVIEW: Kind = kind(
    "authorization.k8s.io",
    "selfsubjectaccessreviews",
    "selfsubjectaccessreview",
    "SelfSubjectAccessReview",
    "",
    &[],
    &[],
    false,
);
pub const SELF_SUBJECT_RULES_REVIEW: Kind = kind(
    "authorization.k8s.io",
    "selfsubjectrulesreviews",
    "selfsubjectrulesreview",
    "SelfSubjectRulesReview",
    "",
    &[],
    &[],
    false,
);
pub const SELF_SUBJECT_REVIEW: Kind = kind(
    "authentication.k8s.io",
    "selfsubjectreviews",
    "selfsubjectreview",
    "SelfSubjectReview",
    "",
    &[],
    &[],
    false,
);

/// RBAC (rbac.authorization.k8s.io/v1): who may do what.
pub const ROLE: Kind = kind(
    "rbac.authorization.k8s.io",
    "roles",
    "role",
    "Role",
    "RoleList",
    &[],
    &[],
    true,
);
pub const CLUSTER_ROLE: Kind = kind(
    "rbac.authorization.k8s.io",
    "clusterroles",
    "clusterrole",
    "ClusterRole",
    "ClusterRoleList",
    &[],
    &[],
    false,
);
pub const ROLE_BINDING: Kind = kind(
    "rbac.authorization.k8s.io",
    "rolebindings",
    "rolebinding",
    "RoleBinding",
    "RoleBindingList",
    &[],
    &[],
    true,
);
pub const CLUSTER_ROLE_BINDING: Kind = kind(
    "rbac.authorization.k8s.io",
    "clusterrolebindings",
    "clusterrolebinding",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    &[],
    &[],
    false,
);
/// Questions about another subject (admins and delegated authorizers ask them).
pub const SUBJECT_ACCESS_REVIEW: Kind = kind(
    "authorization.k8s.io",
    "subjectaccessreviews",
    "subjectaccessreview",
    "SubjectAccessReview",
    "",
    &[],
    &[],
    false,
);
pub const LOCAL_SUBJECT_ACCESS_REVIEW: Kind = kind(
    "authorization.k8s.io",
    "localsubjectaccessreviews",
    "localsubjectaccessreview",
    "LocalSubjectAccessReview",
    "",
    &[],
    &[],
    true,
);

/// Every kind served.
pub const ALL: &[&Kind] = &[
    &POD,
    &SERVICE,
    &ENDPOINTS,
    &EVENT,
    &CONFIG_MAP,
    &SECRET,
    &SERVICE_ACCOUNT,
    &NODE,
    &NAMESPACE,
    &DEPLOYMENT,
    &REPLICA_SET,
    &JOB,
    &LEASE,
    &ENDPOINT_SLICE,
    &ROLE,
    &CLUSTER_ROLE,
    &ROLE_BINDING,
    &CLUSTER_ROLE_BINDING,
];

/// The kind a user's word names (`po`, `pod`, `pods`, `Pod`, `deployments.apps`), as
/// kubectl's RESTMapper resolves it.
pub fn lookup(word: &str) -> Option<&'static Kind> {
    let w = word.to_ascii_lowercase();
    let (name, group) = match w.split_once('.') {
        Some((n, g)) => (n, Some(g)),
        None => (w.as_str(), None),
    };
    ALL.iter().copied().find(|k| {
        (k.plural == name
            || k.singular == name
            || k.kind.eq_ignore_ascii_case(name)
            || k.short.contains(&name))
            && group.is_none_or(|g| g == k.group)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_kubectl_accepts() {
        for w in ["po", "pod", "pods", "Pod", "PODS"] {
            assert_eq!(lookup(w), Some(&POD), "{w}");
        }
        assert_eq!(lookup("deploy"), Some(&DEPLOYMENT));
        assert_eq!(lookup("deployments.apps"), Some(&DEPLOYMENT));
        assert_eq!(lookup("deployments.batch"), None);
        assert_eq!(
            lookup("endpointslices.discovery.k8s.io"),
            Some(&ENDPOINT_SLICE)
        );
        assert_eq!(lookup("ep"), Some(&ENDPOINTS));
        assert_eq!(lookup("widgets"), None);
        assert_eq!(
            SERVICE.path(Some("default")),
            "/api/v1/namespaces/default/services"
        );
        assert_eq!(NODE.path(Some("default")), "/api/v1/nodes");
        assert_eq!(DEPLOYMENT.path(None), "/apis/apps/v1/deployments");
        assert_eq!(DEPLOYMENT.api_version(), "apps/v1");
        assert_eq!(DEPLOYMENT.qualified(), "deployments.apps");
    }

    #[test]
    fn names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for k in ALL {
            for n in [k.plural, k.singular].iter().chain(k.short) {
                assert!(
                    seen.insert((k.group, *n)) || k.plural == k.singular,
                    "{n} twice"
                );
            }
        }
    }
}
