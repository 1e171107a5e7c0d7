//! RBAC (`rbac.authorization.k8s.io/v1`), enforced as Kubernetes' RBAC authorizer does it:
//! a request is allowed when a rule of a role bound to the caller allows it. ClusterRoleBindings
//! grant their ClusterRole everywhere; a RoleBinding grants its Role (or a ClusterRole) in its
//! namespace. Rules only allow; there is no deny.
//!
//! The bindings and roles are kept in memory, fed by informers on the four kinds, so an
//! authorization reads no store. Writes of roles and bindings are checked against escalation
//! ([`Rbac::check_role_escalation`], [`Rbac::check_binding_escalation`]): nobody grants what they
//! do not hold unless allowed to `escalate` or `bind`. ClusterRoles with an `aggregationRule`
//! are kept equal to the union of the rules of the ClusterRoles their selectors match.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::authorization::v1::{NonResourceRule, ResourceRule};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use tokio::sync::{watch, Notify};

use super::authn::User;
use super::authz::Attributes;
use crate::controllers::informer::{key_of, Informer};
use crate::error::{ApiError, ApiResult};
use crate::registry::catalog::Catalog;
use crate::registry::selector::Selector;

/// The prefix of a service account's user name: `system:serviceaccount:<ns>:<name>`.
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

#[derive(Default)]
struct State {
    /// By `namespace/name`.
    roles: HashMap<String, Arc<Role>>,
    cluster_roles: BTreeMap<String, Arc<ClusterRole>>,
    /// By namespace, then name.
    role_bindings: HashMap<String, BTreeMap<String, Arc<RoleBinding>>>,
    cluster_role_bindings: BTreeMap<String, Arc<ClusterRoleBinding>>,
}

/// Where a rule came from, for an access review's reason.
pub struct Source<'a> {
    binding_kind: &'static str,
    binding: String,
    role_ref: &'a RoleRef,
    subject: &'a Subject,
    namespace: &'a str,
}

impl std::fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.subject;
        let subject = if s.kind == "ServiceAccount" {
            let ns = s.namespace.as_deref().filter(|n| !n.is_empty());
            format!(
                "{} {:?}",
                s.kind,
                format!("{}/{}", ns.unwrap_or(self.namespace), s.name)
            )
        } else {
            format!("{} {:?}", s.kind, s.name)
        };
        write!(
            f,
            "{} {:?} of {} {:?} to {subject}",
            self.binding_kind, self.binding, self.role_ref.kind, self.role_ref.name
        )
    }
}

/// The RBAC authorizer's view of the roles and bindings.
pub struct Rbac {
    state: RwLock<State>,
    synced: watch::Sender<bool>,
    /// Woken when a ClusterRole changes, for the aggregation loop.
    cluster_roles_changed: Notify,
}

impl Default for Rbac {
    fn default() -> Self {
        Rbac {
            state: RwLock::default(),
            synced: watch::Sender::new(false),
            cluster_roles_changed: Notify::new(),
        }
    }
}

/// Whether `subject` (in a binding in `ns`, "" for a ClusterRoleBinding) names `user`.
fn applies_to(subject: &Subject, user: &User, ns: &str) -> bool {
    match subject.kind.as_str() {
        "User" => subject.name == user.name,
        "Group" => user.in_group(&subject.name),
        "ServiceAccount" => {
            let sa_ns = subject
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(ns);
            user.name
                .strip_prefix(SERVICE_ACCOUNT_PREFIX)
                .and_then(|rest| rest.split_once(':'))
                .is_some_and(|(n, name)| n == sa_ns && name == subject.name)
        }
        _ => false,
    }
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == "*" || x == want)
}

/// Kubernetes' ResourceMatches: `*`, the resource (`pods/log` with its subresource), or
/// `*/log` for a subresource of anything.
fn resource_matches(rule: &[String], resource: &str, sub: &str) -> bool {
    rule.iter().any(|r| {
        r == "*"
            || (sub.is_empty() && r == resource)
            || (!sub.is_empty()
                && (r
                    .strip_prefix(resource)
                    .and_then(|x| x.strip_prefix('/'))
                    .is_some_and(|x| x == sub)
                    || r.strip_prefix("*/").is_some_and(|x| x == sub)))
    })
}

fn url_matches(rule: &[String], path: &str) -> bool {
    rule.iter().any(|u| {
        u == "*"
            || u == path
            || u.strip_suffix('*')
                .is_some_and(|prefix| path.starts_with(prefix))
    })
}

/// Whether `rule` allows the request.
pub fn rule_allows(rule: &PolicyRule, a: &Attributes<'_>) -> bool {
    if !has(&rule.verbs, a.verb) {
        return false;
    }
    if !a.path.is_empty() {
        return url_matches(
            rule.non_resource_urls.as_deref().unwrap_or_default(),
            a.path,
        );
    }
    has(rule.api_groups.as_deref().unwrap_or_default(), a.group)
        && resource_matches(
            rule.resources.as_deref().unwrap_or_default(),
            a.resource,
            a.subresource,
        )
        && match rule.resource_names.as_deref() {
            None | Some([]) => true,
            Some(names) => !a.name.is_empty() && names.iter().any(|n| n == a.name),
        }
}

impl Rbac {
    /// Calls `f` with every rule that applies to `user` in `ns` ("" for the cluster scope
    /// only) and where it came from, until `f` returns false.
    pub fn visit(
        &self,
        user: &User,
        ns: &str,
        f: &mut dyn FnMut(&Source<'_>, &PolicyRule) -> bool,
    ) {
        let st = self.state.read().unwrap();
        for b in st.cluster_role_bindings.values() {
            let Some(subject) = b
                .subjects
                .iter()
                .flatten()
                .find(|s| applies_to(s, user, ""))
            else {
                continue;
            };
            if b.role_ref.kind != "ClusterRole" {
                continue;
            }
            let Some(role) = st.cluster_roles.get(&b.role_ref.name) else {
                continue;
            };
            let source = Source {
                binding_kind: "ClusterRoleBinding",
                binding: b.metadata.name.clone().unwrap_or_default(),
                role_ref: &b.role_ref,
                subject,
                namespace: "",
            };
            for rule in role.rules.iter().flatten() {
                if !f(&source, rule) {
                    return;
                }
            }
        }
        if ns.is_empty() {
            return;
        }
        let Some(bindings) = st.role_bindings.get(ns) else {
            return;
        };
        for b in bindings.values() {
            let Some(subject) = b
                .subjects
                .iter()
                .flatten()
                .find(|s| applies_to(s, user, ns))
            else {
                continue;
            };
            let rules = match b.role_ref.kind.as_str() {
                "ClusterRole" => st
                    .cluster_roles
                    .get(&b.role_ref.name)
                    .and_then(|r| r.rules.as_ref()),
                "Role" => st
                    .roles
                    .get(&format!("{ns}/{}", b.role_ref.name))
                    .and_then(|r| r.rules.as_ref()),
                _ => None,
            };
            let source = Source {
                binding_kind: "RoleBinding",
                binding: format!("{}/{ns}", b.metadata.name.as_deref().unwrap_or_default()),
                role_ref: &b.role_ref,
                subject,
                namespace: ns,
            };
            for rule in rules.into_iter().flatten() {
                if !f(&source, rule) {
                    return;
                }
            }
        }
    }

    /// Some(reason) when a bound rule allows the request, in Kubernetes' words.
    pub fn allows(&self, user: &User, a: &Attributes<'_>) -> Option<String> {
        let mut reason = None;
        self.visit(user, a.namespace, &mut |source, rule| {
            if rule_allows(rule, a) {
                reason = Some(format!("RBAC: allowed by {source}"));
                false
            } else {
                true
            }
        });
        reason
    }

    /// Every rule bound to `user` in `ns`.
    pub fn rules(&self, user: &User, ns: &str) -> Vec<PolicyRule> {
        let mut out = Vec::new();
        self.visit(user, ns, &mut |_, rule| {
            out.push(rule.clone());
            true
        });
        out
    }

    /// The rules bound to `user` in `ns`, as a rules review lists them.
    pub fn review_rules(&self, user: &User, ns: &str) -> (Vec<ResourceRule>, Vec<NonResourceRule>) {
        let mut resource = Vec::new();
        let mut non_resource = Vec::new();
        for r in self.rules(user, ns) {
            if r.non_resource_urls.as_ref().is_some_and(|u| !u.is_empty()) {
                non_resource.push(NonResourceRule {
                    verbs: r.verbs,
                    non_resource_urls: r.non_resource_urls,
                });
            } else {
                resource.push(ResourceRule {
                    verbs: r.verbs,
                    api_groups: r.api_groups,
                    resources: r.resources,
                    resource_names: r.resource_names,
                });
            }
        }
        (resource, non_resource)
    }

    /// Whether `user` may grant `wanted` in `ns` ("" for cluster-wide): a system:masters member
    /// may; others only what their own rules cover (Kubernetes' ConfirmNoEscalation). Err names
    /// the rules not held, as Kubernetes lists them.
    fn confirm_no_escalation(
        &self,
        user: &User,
        ns: &str,
        wanted: &[PolicyRule],
    ) -> Result<(), String> {
        if user.in_group("system:masters") {
            return Ok(());
        }
        let held = self.rules(user, ns);
        let missing: Vec<&PolicyRule> = wanted.iter().filter(|w| !covers(&held, w)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut groups: Vec<String> = user.groups.iter().map(|g| format!("{g:?}")).collect();
        groups.dedup();
        let mut msg = format!(
            "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:",
            user.name,
            groups.join(" ")
        );
        for r in missing {
            let _ = write!(msg, "\n{}", compact(r));
        }
        Err(msg)
    }

    /// A Role or ClusterRole written by `user` (None: by the server itself).
    pub fn check_role_escalation(
        &self,
        user: Option<&User>,
        resource: &str,
        ns: &str,
        name: &str,
        rules: &[PolicyRule],
    ) -> ApiResult<()> {
        let Some(user) = user else { return Ok(()) };
        let escalate = Attributes {
            verb: "escalate",
            group: "rbac.authorization.k8s.io",
            resource,
            namespace: ns,
            name,
            ..Default::default()
        };
        if self.allows(user, &escalate).is_some() {
            return Ok(());
        }
        self.confirm_no_escalation(user, ns, rules)
            .map_err(|why| forbidden(resource, name, &why))
    }

    /// A ClusterRole written by `user` (None: by the server itself): its rules are checked as a
    /// role's; with `aggregation` (an aggregationRule set or changed) the user must hold
    /// everything, or may `escalate`.
    pub fn check_cluster_role_escalation(
        &self,
        user: Option<&User>,
        name: &str,
        rules: &[PolicyRule],
        aggregation: bool,
    ) -> ApiResult<()> {
        let Some(user) = user else { return Ok(()) };
        let escalate = Attributes {
            verb: "escalate",
            group: "rbac.authorization.k8s.io",
            resource: "clusterroles",
            name,
            ..Default::default()
        };
        if self.allows(user, &escalate).is_some() {
            return Ok(());
        }
        if aggregation {
            let everything = [
                PolicyRule {
                    verbs: vec!["*".into()],
                    api_groups: Some(vec!["*".into()]),
                    resources: Some(vec!["*".into()]),
                    ..Default::default()
                },
                PolicyRule {
                    verbs: vec!["*".into()],
                    non_resource_urls: Some(vec!["*".into()]),
                    ..Default::default()
                },
            ];
            if self.confirm_no_escalation(user, "", &everything).is_err() {
                return Err(forbidden(
                    "clusterroles",
                    name,
                    &format!(
                        "user {:?} must have cluster-admin privileges to use an aggregationRule",
                        user.name
                    ),
                ));
            }
        }
        self.confirm_no_escalation(user, "", rules)
            .map_err(|why| forbidden("clusterroles", name, &why))
    }

    /// A RoleBinding or ClusterRoleBinding written by `user` (None: by the server itself): the
    /// user may `bind` the role, or holds every rule of it.
    pub fn check_binding_escalation(
        &self,
        user: Option<&User>,
        resource: &str,
        ns: &str,
        name: &str,
        role_ref: &RoleRef,
    ) -> ApiResult<()> {
        let Some(user) = user else { return Ok(()) };
        if user.in_group("system:masters") {
            return Ok(());
        }
        let role_resource = if role_ref.kind == "ClusterRole" {
            "clusterroles"
        } else {
            "roles"
        };
        let bind = Attributes {
            verb: "bind",
            group: "rbac.authorization.k8s.io",
            resource: role_resource,
            namespace: if role_ref.kind == "ClusterRole" {
                ""
            } else {
                ns
            },
            name: &role_ref.name,
            ..Default::default()
        };
        // `bind` granted in the binding's namespace counts for a ClusterRole bound there too.
        let bind_here = Attributes {
            namespace: ns,
            ..bind
        };
        if self.allows(user, &bind_here).is_some() {
            return Ok(());
        }
        let rules = {
            let st = self.state.read().unwrap();
            match role_ref.kind.as_str() {
                "ClusterRole" => st
                    .cluster_roles
                    .get(&role_ref.name)
                    .map(|r| r.rules.clone()),
                _ => st
                    .roles
                    .get(&format!("{ns}/{}", role_ref.name))
                    .map(|r| r.rules.clone()),
            }
        };
        let Some(rules) = rules else {
            let t = crate::error::Target {
                group: "rbac.authorization.k8s.io",
                resource: role_resource,
                kind: &role_ref.kind,
                name: &role_ref.name,
            };
            return Err(ApiError::not_found(&t));
        };
        self.confirm_no_escalation(user, ns, rules.as_deref().unwrap_or_default())
            .map_err(|why| forbidden(resource, name, &why))
    }

    /// An authorizer holding Kubernetes' default policy (aggregated) and the given roles and
    /// bindings, for tests of pure logic.
    #[cfg(test)]
    pub fn with_defaults(roles: Vec<Role>, bindings: Vec<RoleBinding>) -> Rbac {
        let rbac = Rbac::default();
        {
            let mut st = rbac.state.write().unwrap();
            for r in super::policy::cluster_roles() {
                st.cluster_roles.insert(key_of(&r), Arc::new(r));
            }
            for b in super::policy::cluster_role_bindings() {
                st.cluster_role_bindings.insert(key_of(&b), Arc::new(b));
            }
            for r in roles {
                st.roles.insert(key_of(&r), Arc::new(r));
            }
            for b in bindings {
                let ns = b.metadata.namespace.clone().unwrap_or_default();
                let name = b.metadata.name.clone().unwrap_or_default();
                st.role_bindings
                    .entry(ns)
                    .or_default()
                    .insert(name, Arc::new(b));
            }
        }
        // Aggregation converges in a few rounds (admin gathers edit, which gathers view).
        for _ in 0..4 {
            for (name, rules) in rbac.aggregation_updates() {
                let mut st = rbac.state.write().unwrap();
                let mut role = (*st.cluster_roles[&name]).clone();
                role.rules = Some(rules);
                st.cluster_roles.insert(name, Arc::new(role));
            }
        }
        rbac
    }

    /// Waits until the four informers have listed.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    fn cluster_role_names_matching(st: &State, selectors: &[Selector]) -> Vec<Arc<ClusterRole>> {
        st.cluster_roles
            .values()
            .filter(|r| {
                let labels = r.metadata.labels.clone().unwrap_or_default();
                selectors.iter().any(|s| s.matches(&labels))
            })
            .cloned()
            .collect()
    }

    /// The rules each aggregated ClusterRole should have, where they differ from its own.
    fn aggregation_updates(&self) -> Vec<(String, Vec<PolicyRule>)> {
        let st = self.state.read().unwrap();
        let mut out = Vec::new();
        for role in st.cluster_roles.values() {
            let Some(agg) = &role.aggregation_rule else {
                continue;
            };
            let selectors: Vec<Selector> = agg
                .cluster_role_selectors
                .iter()
                .flatten()
                .filter_map(|s| Selector::from_label_selector(s).ok())
                .collect();
            let name = role.metadata.name.clone().unwrap_or_default();
            let mut rules: Vec<PolicyRule> = Vec::new();
            for source in Self::cluster_role_names_matching(&st, &selectors) {
                if source.metadata.name.as_deref() == Some(name.as_str()) {
                    continue;
                }
                for r in source.rules.iter().flatten() {
                    if !rules.contains(r) {
                        rules.push(r.clone());
                    }
                }
            }
            if role.rules.as_deref().unwrap_or_default() != rules.as_slice() {
                out.push((name, rules));
            }
        }
        out
    }
}

fn forbidden(resource: &str, name: &str, why: &str) -> ApiError {
    let t = crate::error::Target {
        group: "rbac.authorization.k8s.io",
        resource,
        kind: "",
        name,
    };
    ApiError::forbidden(&t, why)
}

/// `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`, as Kubernetes prints a rule.
fn compact(r: &PolicyRule) -> String {
    let q = |l: &[String]| {
        l.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut parts = Vec::new();
    if let Some(g) = r.api_groups.as_deref().filter(|g| !g.is_empty()) {
        parts.push(format!("APIGroups:[{}]", q(g)));
    }
    if let Some(x) = r.resources.as_deref().filter(|x| !x.is_empty()) {
        parts.push(format!("Resources:[{}]", q(x)));
    }
    if let Some(x) = r.resource_names.as_deref().filter(|x| !x.is_empty()) {
        parts.push(format!("ResourceNames:[{}]", q(x)));
    }
    if let Some(x) = r.non_resource_urls.as_deref().filter(|x| !x.is_empty()) {
        parts.push(format!("NonResourceURLs:[{}]", q(x)));
    }
    parts.push(format!("Verbs:[{}]", q(&r.verbs)));
    format!("{{{}}}", parts.join(", "))
}

/// Whether `held` covers every single permission `wanted` names (each verb × group ×
/// resource × name, or verb × URL), as Kubernetes' Covers does. A `*` in `wanted` is covered
/// only by a `*`.
pub fn covers(held: &[PolicyRule], wanted: &PolicyRule) -> bool {
    let one = |v: &str, f: &dyn Fn(&PolicyRule) -> bool| {
        held.iter()
            .any(|h| h.verbs.iter().any(|x| x == "*" || x == v) && f(h))
    };
    let urls = wanted.non_resource_urls.as_deref().unwrap_or_default();
    for v in &wanted.verbs {
        for u in urls {
            let ok = one(v, &|h| {
                h.non_resource_urls
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .any(|x| {
                        x == "*" || x == u || x.strip_suffix('*').is_some_and(|p| u.starts_with(p))
                    })
            });
            if !ok {
                return false;
            }
        }
        let groups = wanted.api_groups.as_deref().unwrap_or_default();
        let resources = wanted.resources.as_deref().unwrap_or_default();
        let names = wanted.resource_names.as_deref().unwrap_or_default();
        for g in groups {
            for r in resources {
                let resource_ok = |h: &PolicyRule| {
                    has(h.api_groups.as_deref().unwrap_or_default(), g)
                        && h.resources.as_deref().unwrap_or_default().iter().any(|x| {
                            x == "*"
                                || x == r
                                || (x.starts_with("*/")
                                    && r.split_once('/').is_some_and(|(_, s)| x[2..] == *s))
                        })
                };
                let held_names =
                    |h: &PolicyRule| h.resource_names.as_deref().unwrap_or_default().to_vec();
                if names.is_empty() {
                    if !one(v, &|h| resource_ok(h) && held_names(h).is_empty()) {
                        return false;
                    }
                } else {
                    for n in names {
                        let ok = one(v, &|h| {
                            resource_ok(h) && {
                                let hn = held_names(h);
                                hn.is_empty() || hn.contains(n)
                            }
                        });
                        if !ok {
                            return false;
                        }
                    }
                }
            }
        }
    }
    true
}

fn set<T>(map: &mut BTreeMap<String, Arc<T>>, key: String, new: Option<&Arc<T>>) {
    match new {
        Some(n) => {
            map.insert(key, n.clone());
        }
        None => {
            map.remove(&key);
        }
    }
}

/// Feeds `c.rbac` from informers on the four kinds and keeps aggregated ClusterRoles up to
/// date. Returns once the informers are running; [`Rbac::wait_synced`] says when they listed.
pub fn start(c: &Arc<Catalog>) {
    let rbac = c.rbac.clone();
    let roles = Informer::new(c.roles.clone());
    let cluster_roles = Informer::new(c.clusterroles.clone());
    let role_bindings = Informer::new(c.rolebindings.clone());
    let cluster_role_bindings = Informer::new(c.clusterrolebindings.clone());
    {
        let rbac = rbac.clone();
        roles.on_change(move |old, new| {
            let key = key_of(&**new.or(old).expect("a change has an object"));
            let mut st = rbac.state.write().unwrap();
            match new {
                Some(n) => st.roles.insert(key, n.clone()),
                None => st.roles.remove(&key),
            };
        });
    }
    {
        let rbac = rbac.clone();
        cluster_roles.on_change(move |old, new| {
            let key = key_of(&**new.or(old).expect("a change has an object"));
            set(&mut rbac.state.write().unwrap().cluster_roles, key, new);
            rbac.cluster_roles_changed.notify_one();
        });
    }
    {
        let rbac = rbac.clone();
        role_bindings.on_change(move |old, new| {
            let b = new.or(old).expect("a change has an object");
            let ns = b.metadata.namespace.clone().unwrap_or_default();
            let name = b.metadata.name.clone().unwrap_or_default();
            let mut st = rbac.state.write().unwrap();
            let in_ns = st.role_bindings.entry(ns.clone()).or_default();
            set(in_ns, name, new);
            if in_ns.is_empty() {
                st.role_bindings.remove(&ns);
            }
        });
    }
    {
        let rbac = rbac.clone();
        cluster_role_bindings.on_change(move |old, new| {
            let key = key_of(&**new.or(old).expect("a change has an object"));
            set(
                &mut rbac.state.write().unwrap().cluster_role_bindings,
                key,
                new,
            );
        });
    }
    tokio::spawn(roles.clone().run());
    tokio::spawn(cluster_roles.clone().run());
    tokio::spawn(role_bindings.clone().run());
    tokio::spawn(cluster_role_bindings.clone().run());
    let c = c.clone();
    tokio::spawn(async move {
        roles.wait_synced().await;
        cluster_roles.wait_synced().await;
        role_bindings.wait_synced().await;
        cluster_role_bindings.wait_synced().await;
        rbac.synced.send_replace(true);
        aggregate(&c, &cluster_roles).await;
    });
}

/// Kubernetes' ClusterRole aggregation controller: an aggregated ClusterRole's rules are the
/// union of the rules of the ClusterRoles its selectors match, in name order.
async fn aggregate(
    c: &Arc<Catalog>,
    cluster_roles: &Arc<Informer<crate::registry::kinds::rbac::ClusterRoleKind>>,
) {
    let rbac = c.rbac.clone();
    loop {
        let changed = rbac.cluster_roles_changed.notified();
        for (name, rules) in rbac.aggregation_updates() {
            let Some(current) = cluster_roles.get(&name) else {
                continue;
            };
            let mut role = (*current).clone();
            role.rules = Some(rules);
            match c
                .clusterroles
                .update(
                    None,
                    &name,
                    role,
                    crate::registry::Part::Main,
                    &Default::default(),
                )
                .await
            {
                Ok(_) => tracing::info!(clusterrole = %name, "aggregated"),
                Err(e) => {
                    tracing::debug!(clusterrole = %name, error = %e, "aggregating; will retry")
                }
            }
        }
        tokio::select! {
            _ = changed => {}
            // A lost race (a conflict) is retried after a while even with no change.
            _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        PolicyRule {
            verbs: v(verbs),
            api_groups: Some(v(groups)),
            resources: Some(v(resources)),
            ..Default::default()
        }
    }

    fn attrs<'a>(
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        subresource: &'a str,
        name: &'a str,
    ) -> Attributes<'a> {
        Attributes {
            verb,
            group,
            resource,
            subresource,
            name,
            ..Default::default()
        }
    }

    #[test]
    fn rules_match_as_kubernetes_matches_them() {
        let r = rule(&["get", "list"], &[""], &["pods", "pods/log"]);
        assert!(rule_allows(&r, &attrs("get", "", "pods", "", "x")));
        assert!(rule_allows(&r, &attrs("get", "", "pods", "log", "x")));
        assert!(!rule_allows(&r, &attrs("get", "", "pods", "exec", "x")));
        assert!(!rule_allows(&r, &attrs("delete", "", "pods", "", "x")));
        assert!(!rule_allows(&r, &attrs("get", "apps", "pods", "", "x")));
        let any_status = rule(&["*"], &["*"], &["*/status"]);
        assert!(rule_allows(
            &any_status,
            &attrs("update", "apps", "deployments", "status", "d")
        ));
        assert!(!rule_allows(
            &any_status,
            &attrs("update", "apps", "deployments", "", "d")
        ));
        let named = PolicyRule {
            resource_names: Some(vec!["cm1".into()]),
            ..rule(&["get"], &[""], &["configmaps"])
        };
        assert!(rule_allows(
            &named,
            &attrs("get", "", "configmaps", "", "cm1")
        ));
        assert!(!rule_allows(
            &named,
            &attrs("get", "", "configmaps", "", "cm2")
        ));
        assert!(!rule_allows(
            &named,
            &attrs("list", "", "configmaps", "", "")
        ));
        let urls = PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: Some(vec!["/apis/*".into(), "/version".into()]),
            ..Default::default()
        };
        let path = |p| Attributes {
            verb: "get",
            path: p,
            ..Default::default()
        };
        assert!(rule_allows(&urls, &path("/apis/apps/v1")));
        assert!(rule_allows(&urls, &path("/version")));
        assert!(!rule_allows(&urls, &path("/versions")));
    }

    #[test]
    fn subjects_match_users_groups_and_service_accounts() {
        let jane = User::of("jane", &["dev"]);
        let sa = User::of("system:serviceaccount:team:robot", &[]);
        let s = |kind: &str, name: &str, ns: Option<&str>| Subject {
            kind: kind.into(),
            name: name.into(),
            namespace: ns.map(str::to_string),
            ..Default::default()
        };
        assert!(applies_to(&s("User", "jane", None), &jane, "x"));
        assert!(applies_to(&s("Group", "dev", None), &jane, "x"));
        assert!(!applies_to(&s("Group", "ops", None), &jane, "x"));
        assert!(applies_to(&s("ServiceAccount", "robot", None), &sa, "team"));
        assert!(!applies_to(
            &s("ServiceAccount", "robot", None),
            &sa,
            "other"
        ));
        assert!(applies_to(
            &s("ServiceAccount", "robot", Some("team")),
            &sa,
            "other"
        ));
        assert!(!applies_to(&s("User", "robot", None), &sa, "team"));
    }

    #[test]
    fn coverage_breaks_rules_down() {
        let held = vec![
            rule(&["get", "list"], &[""], &["pods", "configmaps"]),
            rule(&["*"], &["apps"], &["deployments"]),
        ];
        assert!(covers(&held, &rule(&["get"], &[""], &["pods"])));
        assert!(covers(
            &held,
            &rule(&["list"], &[""], &["pods", "configmaps"])
        ));
        assert!(covers(
            &held,
            &rule(&["delete", "create"], &["apps"], &["deployments"])
        ));
        assert!(!covers(&held, &rule(&["delete"], &[""], &["pods"])));
        assert!(!covers(&held, &rule(&["*"], &[""], &["pods"])));
        assert!(!covers(&held, &rule(&["get"], &["", "apps"], &["pods"])));
        let named = PolicyRule {
            resource_names: Some(vec!["a".into()]),
            ..rule(&["get"], &[""], &["secrets"])
        };
        assert!(!covers(&held, &named));
        assert!(covers(std::slice::from_ref(&named), &named));
        assert!(!covers(&[named], &rule(&["get"], &[""], &["secrets"])));
        assert!(covers(
            &[rule(&["*"], &["*"], &["*"])],
            &rule(&["*"], &["x"], &["y/z"])
        ));
    }

    #[test]
    fn a_rule_prints_as_kubernetes_prints_it() {
        assert_eq!(
            compact(&rule(&["get", "list"], &[""], &["pods"])),
            r#"{APIGroups:[""], Resources:["pods"], Verbs:["get" "list"]}"#
        );
    }
}
