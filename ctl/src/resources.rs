//! The kinds tkctl knows, by every name kubectl accepts for them (plural, singular, short).

/// One resource type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub short: &'static [&'static str],
    pub namespaced: bool,
}

impl Kind {
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

const fn core(
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    short: &'static [&'static str],
    namespaced: bool,
) -> Kind {
    Kind {
        group: "",
        version: "v1",
        plural,
        singular,
        kind,
        short,
        namespaced,
    }
}

pub const KINDS: &[Kind] = &[
    core("pods", "pod", "Pod", &["po"], true),
    core("services", "service", "Service", &["svc"], true),
    core("endpoints", "endpoints", "Endpoints", &["ep"], true),
    core("events", "event", "Event", &["ev"], true),
    core("configmaps", "configmap", "ConfigMap", &["cm"], true),
    core("secrets", "secret", "Secret", &[], true),
    core(
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        &["sa"],
        true,
    ),
    core("nodes", "node", "Node", &["no"], false),
    core("namespaces", "namespace", "Namespace", &["ns"], false),
    Kind {
        group: "apps",
        version: "v1",
        plural: "deployments",
        singular: "deployment",
        kind: "Deployment",
        short: &["deploy"],
        namespaced: true,
    },
    Kind {
        group: "apps",
        version: "v1",
        plural: "replicasets",
        singular: "replicaset",
        kind: "ReplicaSet",
        short: &["rs"],
        namespaced: true,
    },
];

/// The kind a user's word names (`po`, `pod`, `pods`, `Pod`, `deployments.apps`).
pub fn lookup(word: &str) -> Option<&'static Kind> {
    let w = word.to_ascii_lowercase();
    let (name, group) = match w.split_once('.') {
        Some((n, g)) => (n.to_string(), Some(g.to_string())),
        None => (w.clone(), None),
    };
    KINDS.iter().find(|k| {
        (k.plural == name
            || k.singular == name
            || k.kind.eq_ignore_ascii_case(&name)
            || k.short.contains(&name.as_str()))
            && group.as_deref().is_none_or(|g| g == k.group)
    })
}

/// What `get all` lists, in kubectl's order.
pub fn all() -> Vec<&'static Kind> {
    ["pods", "services", "deployments", "replicasets"]
        .iter()
        .filter_map(|p| lookup(p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for w in ["po", "pod", "pods", "Pod"] {
            assert_eq!(lookup(w).unwrap().plural, "pods");
        }
        assert_eq!(lookup("deploy").unwrap().group, "apps");
        assert_eq!(lookup("deployments.apps").unwrap().kind, "Deployment");
        assert_eq!(
            lookup("svc").unwrap().path(Some("default")),
            "/api/v1/namespaces/default/services"
        );
        assert_eq!(lookup("no").unwrap().path(Some("default")), "/api/v1/nodes");
        assert!(lookup("widgets").is_none());
    }
}
