//! The Deployment controller: one ReplicaSet per pod template (named by `pod-template-hash`),
//! rolled out with RollingUpdate (maxSurge/maxUnavailable) or Recreate, scaled proportionally,
//! revisions in `deployment.kubernetes.io/revision`, old ReplicaSets pruned to
//! revisionHistoryLimit, and the status and conditions `kubectl rollout status` reads.
//!
//! `plan` is the whole decision (Kubernetes' syncDeployment, one step per sync); `Controller`
//! carries it out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta, Preconditions};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::events::{reference, Recorder};
use super::informer::{revision as rev, split_key, Informer};
use super::podutil::{self, controller_ref};
use super::queue::{run_workers, Queue};
use crate::error::ApiError;
use crate::registry::kinds::{
    deployment::DeploymentKind, pod::PodKind, replicaset::ReplicaSetKind,
};
use crate::registry::selector::Selector;
use crate::registry::{now, now_secs, time_secs, Part, WriteOptions};

pub use tinykube_machinery::template::HASH_LABEL;
pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// FNV-1a, 32 bits: Kubernetes hashes pod templates with it.
fn fnv1a32(bytes: &[u8], mut h: u32) -> u32 {
    for b in bytes {
        h ^= *b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// `pod-template-hash`: FNV-1a of the template (its canonical JSON) and the collision count,
/// written in Kubernetes' vowel-free alphabet so it never spells a word.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let json = serde_json::to_vec(template).unwrap_or_default();
    let mut h = fnv1a32(&json, 0x811c_9dc5);
    if let Some(c) = collision_count {
        h = fnv1a32(&(c as u32).to_le_bytes(), h);
    }
    h.to_string()
        .bytes()
        .map(|b| ALPHABET[b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Whether two templates are the same but for `pod-template-hash` (compared as Kubernetes'
/// semantic equality compares: empty and absent alike, quantities by value).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let json = |t| serde_json::to_value(t).unwrap_or_default();
    tinykube_machinery::template::equal_ignore_hash(&json(a), &json(b))
}

fn scaled(v: &IntOrString, total: i32, round_up: bool) -> i32 {
    match v {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let x = pct * total as i64;
            (if round_up { (x + 99) / 100 } else { x / 100 }) as i32
        }
    }
}

/// (maxSurge, maxUnavailable) as numbers of pods; both zero would deadlock, so unavailable is 1.
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    let spec = d.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let strategy = spec.strategy.unwrap_or_default();
    if strategy.type_.as_deref() == Some("Recreate") {
        return (0, 0);
    }
    let ru = strategy.rolling_update.unwrap_or_default();
    let surge = scaled(
        &ru.max_surge.unwrap_or(IntOrString::String("25%".into())),
        replicas,
        true,
    );
    let mut unavailable = scaled(
        &ru.max_unavailable
            .unwrap_or(IntOrString::String("25%".into())),
        replicas,
        false,
    );
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

fn max_unavailable(d: &Deployment) -> i32 {
    let replicas = replicas_of(d);
    if replicas == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas)
}

fn replicas_of(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

fn revision(rs: &ReplicaSet) -> i64 {
    annotation(&rs.metadata, REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn created(rs: &ReplicaSet) -> (i64, String) {
    (
        rs.metadata
            .creation_timestamp
            .as_ref()
            .map(time_secs)
            .unwrap_or(0),
        rs.metadata.name.clone().unwrap_or_default(),
    )
}

/// One change to make.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    AdoptRs(String),
    ReleaseRs(String),
    Create(Box<ReplicaSet>),
    /// Sets spec.replicas and the replica annotations (and revision, when it changes).
    Scale {
        name: String,
        from: i32,
        to: i32,
        annotations: BTreeMap<String, String>,
    },
    Delete {
        name: String,
        uid: String,
    },
    /// The deployment's own revision annotation.
    SetRevision(String),
}

#[derive(Debug, Default)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub status: DeploymentStatus,
    pub requeue_after: Option<Duration>,
}

struct State<'a> {
    d: &'a Deployment,
    /// Owned ReplicaSets as they will be after the actions so far.
    rss: Vec<ReplicaSet>,
    actions: Vec<Action>,
}

impl State<'_> {
    fn replica_annotations(&self, rs: &ReplicaSet) -> BTreeMap<String, String> {
        let mut a = rs.metadata.annotations.clone().unwrap_or_default();
        let replicas = replicas_of(self.d);
        a.insert(DESIRED_REPLICAS.into(), replicas.to_string());
        a.insert(
            MAX_REPLICAS.into(),
            (replicas + fenceposts(self.d).0).to_string(),
        );
        a
    }

    fn scale(&mut self, idx: usize, to: i32) -> bool {
        let annotations = self.replica_annotations(&self.rss[idx]);
        let rs = &mut self.rss[idx];
        let from = rs_replicas(rs);
        if from == to && rs.metadata.annotations.as_ref() == Some(&annotations) {
            return false;
        }
        rs.spec.get_or_insert_with(Default::default).replicas = Some(to);
        rs.metadata.annotations = Some(annotations.clone());
        let name = rs.metadata.name.clone();
        // A ReplicaSet made in this same sync is simply made at its size.
        for a in self.actions.iter_mut() {
            if let Action::Create(created) = a {
                if created.metadata.name == name {
                    **created = rs.clone();
                    return from != to;
                }
            }
        }
        self.actions.push(Action::Scale {
            name: rs.metadata.name.clone().unwrap_or_default(),
            from,
            to,
            annotations,
        });
        from != to
    }

    fn total(&self) -> i32 {
        self.rss.iter().map(rs_replicas).sum()
    }

    fn available(&self) -> i32 {
        self.rss.iter().map(rs_available).sum()
    }
}

fn selector(d: &Deployment) -> Option<Selector> {
    let s = Selector::from_label_selector(&d.spec.as_ref()?.selector).ok()?;
    (!s.is_empty()).then_some(s)
}

/// The decision for one sync, from the deployment, the ReplicaSets and pods of its namespace.
pub fn plan(d: &Deployment, all_rss: &[Arc<ReplicaSet>], pods: &[Arc<Pod>], now: i64) -> Plan {
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let deleting = d.metadata.deletion_timestamp.is_some();
    let sel = selector(d);
    let mut st = State {
        d,
        rss: Vec::new(),
        actions: Vec::new(),
    };
    for rs in all_rss {
        let matches = sel
            .as_ref()
            .is_some_and(|s| s.matches_opt(rs.metadata.labels.as_ref()));
        let name = rs.metadata.name.clone().unwrap_or_default();
        match podutil::controller_of(&rs.metadata) {
            Some(r) if r.uid == uid => {
                if matches || deleting {
                    st.rss.push((**rs).clone());
                } else {
                    st.actions.push(Action::ReleaseRs(name));
                }
            }
            None if matches && !deleting && rs.metadata.deletion_timestamp.is_none() => {
                st.actions.push(Action::AdoptRs(name));
                st.rss.push((**rs).clone());
            }
            _ => {}
        }
    }
    let spec = d.spec.clone().unwrap_or_default();
    let template = spec.template.clone();
    // The new ReplicaSet runs the current template; if several do, the oldest.
    let mut new_idx = st
        .rss
        .iter()
        .enumerate()
        .filter(|(_, rs)| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| equal_ignore_hash(t, &template))
        })
        .min_by_key(|(_, rs)| created(rs))
        .map(|(i, _)| i);
    let max_old_revision = st
        .rss
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != new_idx)
        .map(|(_, rs)| revision(rs))
        .max()
        .unwrap_or(0);
    let mut collision = d.status.as_ref().and_then(|s| s.collision_count);
    let mut requeue = None;
    let paused = spec.paused == Some(true);
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");

    if !deleting {
        // Keep the new ReplicaSet's revision the newest.
        if let Some(i) = new_idx {
            let want = (max_old_revision + 1).max(revision(&st.rss[i]));
            if revision(&st.rss[i]) < want {
                let rs = &mut st.rss[i];
                let mut a = rs.metadata.annotations.clone().unwrap_or_default();
                a.insert(REVISION.into(), want.to_string());
                rs.metadata.annotations = Some(a.clone());
                let r = rs_replicas(rs);
                st.actions.push(Action::Scale {
                    name: rs.metadata.name.clone().unwrap_or_default(),
                    from: r,
                    to: r,
                    annotations: a,
                });
            }
        }
        // Rolling updates make the new ReplicaSet at once; Recreate once the old pods are gone.
        let old_pods_running = pods.iter().any(|p| {
            !podutil::is_terminal(p)
                && st.rss.iter().enumerate().any(|(i, rs)| {
                    Some(i) != new_idx
                        && podutil::is_controlled_by(
                            &p.metadata,
                            rs.metadata.uid.as_deref().unwrap_or_default(),
                        )
                })
        });
        let old_active = st
            .rss
            .iter()
            .enumerate()
            .any(|(i, rs)| Some(i) != new_idx && rs_replicas(rs) > 0);
        let may_create = !paused && (!recreate || (!old_active && !old_pods_running));
        if new_idx.is_none() && may_create {
            let hash = template_hash(&template, collision);
            let name = format!("{}-{hash}", d.metadata.name.as_deref().unwrap_or_default());
            let taken = all_rss
                .iter()
                .any(|rs| rs.metadata.name.as_deref() == Some(&name));
            if taken {
                // Another template hashed to the same name: count the collision and try again.
                collision = Some(collision.unwrap_or(0) + 1);
                requeue = Some(Duration::ZERO);
            } else {
                let mut labels = template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.labels.clone())
                    .unwrap_or_default();
                labels.insert(HASH_LABEL.into(), hash.clone());
                let mut rs_template = template.clone();
                rs_template
                    .metadata
                    .get_or_insert_with(Default::default)
                    .labels = Some(labels.clone());
                let mut rs_selector = spec.selector.clone();
                rs_selector
                    .match_labels
                    .get_or_insert_with(BTreeMap::new)
                    .insert(HASH_LABEL.into(), hash);
                let mut annotations: BTreeMap<String, String> = d
                    .metadata
                    .annotations
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(k, _)| {
                        k != LAST_APPLIED
                            && k != REVISION
                            && k != "deployment.kubernetes.io/revision-history"
                    })
                    .collect();
                annotations.insert(REVISION.into(), (max_old_revision + 1).to_string());
                let rs = ReplicaSet {
                    metadata: ObjectMeta {
                        name: Some(name),
                        namespace: d.metadata.namespace.clone(),
                        labels: Some(labels),
                        annotations: Some(annotations),
                        owner_references: Some(vec![controller_ref(d)]),
                        ..Default::default()
                    },
                    spec: Some(ReplicaSetSpec {
                        replicas: Some(0),
                        min_ready_seconds: spec.min_ready_seconds,
                        selector: rs_selector,
                        template: Some(rs_template),
                    }),
                    status: None,
                };
                st.rss.push(rs);
                let i = st.rss.len() - 1;
                let annotations = st.replica_annotations(&st.rss[i]);
                st.rss[i].metadata.annotations = Some(annotations);
                new_idx = Some(i);
                st.actions.push(Action::Create(Box::new(st.rss[i].clone())));
            }
        }
        if let Some(i) = new_idx {
            let rev = annotation(&st.rss[i].metadata, REVISION).map(str::to_string);
            if rev.is_some() && annotation(&d.metadata, REVISION) != rev.as_deref() {
                st.actions
                    .push(Action::SetRevision(rev.unwrap_or_default()));
            }
        }

        let desired = replicas_of(d);
        let scaling_event = st.rss.iter().any(|rs| {
            rs_replicas(rs) > 0
                && annotation(&rs.metadata, DESIRED_REPLICAS).and_then(|v| v.parse::<i32>().ok())
                    != Some(desired)
        });
        if paused || scaling_event {
            scale(&mut st, new_idx);
        } else if recreate {
            rollout_recreate(&mut st, new_idx);
        } else {
            rollout_rolling(&mut st, new_idx);
        }
    }

    let mut status = compute_status(d, &st, new_idx, collision, now);
    if !deleting {
        let complete = complete(d, &status);
        if complete {
            cleanup(&mut st, new_idx, spec.revision_history_limit.unwrap_or(10));
        }
        progress(d, &mut status, &st, new_idx, now, &mut requeue);
    }
    Plan {
        actions: st.actions,
        status,
        requeue_after: requeue,
    }
}

/// NewRSNewReplicas of a rolling update: grow the new ReplicaSet as far as maxSurge allows.
fn rollout_rolling(st: &mut State<'_>, new_idx: Option<usize>) {
    let Some(n) = new_idx else { return };
    let d = st.d;
    let desired = replicas_of(d);
    let new_replicas = rs_replicas(&st.rss[n]);
    // Scale up, if we can.
    if new_replicas > desired {
        st.scale(n, desired);
        return;
    }
    if new_replicas < desired {
        let max_total = desired + fenceposts(d).0;
        let current = st.total();
        if current < max_total {
            let up = (max_total - current).min(desired - new_replicas);
            if st.scale(n, new_replicas + up) {
                return;
            }
        }
    }
    // Scale down old ReplicaSets, if we can.
    let olds: Vec<usize> = {
        let mut v: Vec<usize> = (0..st.rss.len()).filter(|i| *i != n).collect();
        v.sort_by_key(|i| created(&st.rss[*i]));
        v
    };
    if olds.iter().map(|i| rs_replicas(&st.rss[*i])).sum::<i32>() == 0 {
        return;
    }
    let all_pods = st.total();
    let min_available = desired - max_unavailable(d);
    let new_unavailable = rs_replicas(&st.rss[n]) - rs_available(&st.rss[n]);
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return;
    }
    // First the old pods that are not available anyway.
    let mut cleaned = 0;
    for &i in &olds {
        if cleaned >= max_scaled_down {
            break;
        }
        let (r, a) = (rs_replicas(&st.rss[i]), rs_available(&st.rss[i]));
        if r == 0 || r <= a {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(r - a);
        st.scale(i, r - down);
        cleaned += down;
    }
    // Then available ones, as long as enough stay available.
    let available = st.available();
    if available <= min_available {
        return;
    }
    let total_down = available - min_available;
    let mut done = 0;
    for &i in &olds {
        if done >= total_down {
            break;
        }
        let r = rs_replicas(&st.rss[i]);
        if r == 0 {
            continue;
        }
        let down = r.min(total_down - done);
        st.scale(i, r - down);
        done += down;
    }
}

/// Recreate: every old pod goes before the new ReplicaSet grows.
fn rollout_recreate(st: &mut State<'_>, new_idx: Option<usize>) {
    let mut scaled_down = false;
    for i in 0..st.rss.len() {
        if Some(i) != new_idx && rs_replicas(&st.rss[i]) > 0 {
            scaled_down |= st.scale(i, 0);
        }
    }
    if scaled_down {
        return;
    }
    if let Some(n) = new_idx {
        st.scale(n, replicas_of(st.d));
    }
}

/// A change of replicas (or a paused deployment): resize in proportion, as Kubernetes does.
fn scale(st: &mut State<'_>, new_idx: Option<usize>) {
    let d = st.d;
    let desired = replicas_of(d);
    let active: Vec<usize> = (0..st.rss.len())
        .filter(|i| rs_replicas(&st.rss[*i]) > 0)
        .collect();
    // One active (or none: the newest) ReplicaSet takes the whole size.
    let only = match active.as_slice() {
        [one] => Some(*one),
        [] => new_idx.or_else(|| (0..st.rss.len()).max_by_key(|i| created(&st.rss[*i]))),
        _ => None,
    };
    if let Some(i) = only {
        st.scale(i, desired);
        return;
    }
    // Saturated new ReplicaSet: old ones go to zero.
    if let Some(n) = new_idx {
        let rs = &st.rss[n];
        if rs_replicas(rs) == desired && rs_available(rs) == desired {
            for i in active.into_iter().filter(|i| *i != n) {
                st.scale(i, 0);
            }
            return;
        }
    }
    let allowed = if desired > 0 {
        desired + fenceposts(d).0
    } else {
        0
    };
    let to_add = allowed - st.total();
    let mut order: Vec<usize> = (0..st.rss.len()).collect();
    // Grow the bigger and newer first; shrink the bigger and older first.
    order.sort_by(|a, b| {
        let (ra, rb) = (rs_replicas(&st.rss[*a]), rs_replicas(&st.rss[*b]));
        let (ca, cb) = (created(&st.rss[*a]), created(&st.rss[*b]));
        rb.cmp(&ra)
            .then(if to_add > 0 { cb.cmp(&ca) } else { ca.cmp(&cb) })
    });
    let status_replicas = d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let mut added = 0;
    let mut sizes: BTreeMap<usize, i32> = BTreeMap::new();
    for &i in &order {
        let rs = &st.rss[i];
        let r = rs_replicas(rs);
        let mut proportion = 0;
        if to_add != 0 && r != 0 && to_add != added {
            let annotated = annotation(&rs.metadata, MAX_REPLICAS)
                .and_then(|v| v.parse::<i32>().ok())
                .unwrap_or(status_replicas)
                .max(1);
            let fraction = if desired == 0 {
                -r
            } else {
                ((r as f64 * allowed as f64) / annotated as f64).round() as i32 - r
            };
            let allowed_left = to_add - added;
            proportion = if to_add > 0 {
                fraction.min(allowed_left)
            } else {
                fraction.max(allowed_left)
            };
        }
        sizes.insert(i, r + proportion);
        added += proportion;
    }
    for (pos, &i) in order.iter().enumerate() {
        let mut size = sizes[&i];
        if pos == 0 && to_add != 0 {
            size = (size + to_add - added).max(0);
        }
        st.scale(i, size);
    }
}

/// Old ReplicaSets at zero, beyond revisionHistoryLimit, oldest first.
fn cleanup(st: &mut State<'_>, new_idx: Option<usize>, limit: i32) {
    let mut idle: Vec<&ReplicaSet> = st
        .rss
        .iter()
        .enumerate()
        .filter(|(i, rs)| {
            Some(*i) != new_idx
                && rs_replicas(rs) == 0
                && rs.status.as_ref().map_or(0, |s| s.replicas) == 0
                && rs.metadata.deletion_timestamp.is_none()
                && rs.metadata.uid.is_some()
        })
        .map(|(_, rs)| rs)
        .collect();
    let excess = idle.len() as i64 - limit.max(0) as i64;
    if excess <= 0 {
        return;
    }
    idle.sort_by_key(|rs| (revision(rs), created(rs)));
    let deletes: Vec<Action> = idle
        .iter()
        .take(excess as usize)
        .map(|rs| Action::Delete {
            name: rs.metadata.name.clone().unwrap_or_default(),
            uid: rs.metadata.uid.clone().unwrap_or_default(),
        })
        .collect();
    st.actions.extend(deletes);
}

fn condition<'a>(s: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    s.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

/// Sets a condition, keeping lastTransitionTime when the status does not change.
fn set_condition(s: &mut DeploymentStatus, mut c: DeploymentCondition) {
    let conditions = s.conditions.get_or_insert_with(Vec::new);
    if let Some(old) = conditions.iter().find(|o| o.type_ == c.type_) {
        if old.status == c.status && old.reason == c.reason {
            return;
        }
        if old.status == c.status {
            c.last_transition_time = old.last_transition_time.clone();
        }
    }
    conditions.retain(|o| o.type_ != c.type_);
    conditions.push(c);
}

fn new_condition(type_: &str, status: &str, reason: &str, message: String) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now()),
        last_transition_time: Some(now()),
    }
}

fn compute_status(
    d: &Deployment,
    st: &State<'_>,
    new_idx: Option<usize>,
    collision: Option<i32>,
    _now: i64,
) -> DeploymentStatus {
    let sum = |f: &dyn Fn(&ReplicaSet) -> i32| st.rss.iter().map(f).sum::<i32>();
    let available = sum(&rs_available);
    let total_spec = st.total();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(sum(&|rs| rs.status.as_ref().map_or(0, |s| s.replicas))),
        updated_replicas: Some(
            new_idx.map_or(0, |i| st.rss[i].status.as_ref().map_or(0, |s| s.replicas)),
        ),
        ready_replicas: Some(sum(&|rs| {
            rs.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
        })),
        available_replicas: Some(available),
        unavailable_replicas: Some((total_spec - available).max(0)),
        collision_count: collision,
        conditions: d.status.as_ref().and_then(|s| s.conditions.clone()),
        terminating_replicas: None,
    };
    if available >= replicas_of(d) - max_unavailable(d) {
        set_condition(
            &mut status,
            new_condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
            ),
        );
    } else {
        set_condition(
            &mut status,
            new_condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
            ),
        );
    }
    for field in [
        &mut status.ready_replicas,
        &mut status.available_replicas,
        &mut status.unavailable_replicas,
        &mut status.updated_replicas,
        &mut status.replicas,
    ] {
        if *field == Some(0) {
            *field = None;
        }
    }
    status
}

fn count(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

/// The rollout finished: every replica updated and available, and the latest spec observed.
pub fn complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let want = replicas_of(d);
    count(s.updated_replicas) == want
        && count(s.replicas) == want
        && count(s.available_replicas) == want
        && s.observed_generation >= d.metadata.generation
}

/// The Progressing condition, as syncRolloutStatus sets it.
fn progress(
    d: &Deployment,
    status: &mut DeploymentStatus,
    st: &State<'_>,
    new_idx: Option<usize>,
    now: i64,
    requeue: &mut Option<Duration>,
) {
    let deadline = d.spec.as_ref().and_then(|s| s.progress_deadline_seconds);
    let Some(deadline) = deadline else { return };
    let name = d.metadata.name.clone().unwrap_or_default();
    let rs_name = new_idx.and_then(|i| st.rss[i].metadata.name.clone());
    let current = condition(status, "Progressing").cloned();
    let created_new = st.actions.iter().any(|a| matches!(a, Action::Create(_)));
    if created_new {
        let c = new_condition(
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            format!(
                "Created new replica set {:?}",
                rs_name.clone().unwrap_or_default()
            ),
        );
        set_condition(status, c);
        *requeue = Some(Duration::from_secs(deadline.max(1) as u64));
        return;
    }
    let complete_before = count(status.replicas) == count(status.updated_replicas)
        && current
            .as_ref()
            .is_some_and(|c| c.reason.as_deref() == Some("NewReplicaSetAvailable"));
    if complete_before {
        return;
    }
    let old = d.status.clone().unwrap_or_default();
    let old_olds = count(old.replicas) - count(old.updated_replicas);
    let new_olds = count(status.replicas) - count(status.updated_replicas);
    let progressing = count(status.updated_replicas) > count(old.updated_replicas)
        || new_olds < old_olds
        || count(status.ready_replicas) > count(old.ready_replicas)
        || count(status.available_replicas) > count(old.available_replicas);
    if complete(d, status) {
        let msg = match &rs_name {
            Some(rs) => format!("ReplicaSet {rs:?} has successfully progressed."),
            None => format!("Deployment {name:?} has successfully progressed."),
        };
        set_condition(
            status,
            new_condition("Progressing", "True", "NewReplicaSetAvailable", msg),
        );
    } else if progressing || current.is_none() {
        let msg = match &rs_name {
            Some(rs) => format!("ReplicaSet {rs:?} is progressing."),
            None => format!("Deployment {name:?} is progressing."),
        };
        let mut c = new_condition("Progressing", "True", "ReplicaSetUpdated", msg);
        if let Some(cur) = current.as_ref().filter(|c| c.status == "True") {
            c.last_transition_time = cur.last_transition_time.clone();
        }
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        conditions.retain(|o| o.type_ != "Progressing");
        conditions.push(c);
        *requeue = Some(Duration::from_secs(deadline.max(1) as u64));
    } else if let Some(cur) = &current {
        let last = cur.last_update_time.as_ref().map(time_secs).unwrap_or(now);
        if cur.reason.as_deref() == Some("ProgressDeadlineExceeded") {
            return;
        }
        if last + deadline as i64 <= now {
            let msg = match &rs_name {
                Some(rs) => format!("ReplicaSet {rs:?} has timed out progressing."),
                None => format!("Deployment {name:?} has timed out progressing."),
            };
            set_condition(
                status,
                new_condition("Progressing", "False", "ProgressDeadlineExceeded", msg),
            );
        } else {
            let left = (last + deadline as i64 - now).max(1) as u64;
            *requeue = Some(requeue.map_or(Duration::from_secs(left), |r: Duration| {
                r.min(Duration::from_secs(left))
            }));
        }
    }
}

/// A ReplicaSet whose availableReplicas is counted from its pods as they are now: its own
/// status may lag a sync behind, and a rollout must never trust more available pods than exist.
fn with_current_availability(rs: Arc<ReplicaSet>, pods: &[Arc<Pod>], now: i64) -> Arc<ReplicaSet> {
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let min_ready = rs
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let available = pods
        .iter()
        .filter(|p| {
            podutil::is_controlled_by(&p.metadata, &uid)
                && podutil::is_active(p)
                && podutil::is_available(p, min_ready, now)
        })
        .count() as i32;
    if rs_available(&rs) == available {
        return rs;
    }
    let mut fresh = (*rs).clone();
    fresh
        .status
        .get_or_insert_with(Default::default)
        .available_replicas = Some(available);
    Arc::new(fresh)
}

pub struct Controller {
    pub deployments: Arc<Informer<DeploymentKind>>,
    pub replicasets: Arc<Informer<ReplicaSetKind>>,
    pub pods: Arc<Informer<PodKind>>,
    pub recorder: Recorder,
    pub queue: Arc<Queue>,
}

impl Controller {
    pub fn new(
        deployments: Arc<Informer<DeploymentKind>>,
        replicasets: Arc<Informer<ReplicaSetKind>>,
        pods: Arc<Informer<PodKind>>,
        recorder: Recorder,
    ) -> Arc<Controller> {
        let c = Arc::new(Controller {
            deployments,
            replicasets,
            pods,
            recorder: recorder.for_component("deployment-controller"),
            queue: Queue::new("deployment"),
        });
        c.deployments.enqueue_to(c.queue.clone());
        c.replicasets.enqueue_owners(
            c.deployments.clone(),
            "Deployment",
            selector,
            c.queue.clone(),
        );
        // Recreate waits for old pods to go: their deletion wakes the deployment.
        let q = c.queue.clone();
        let rss = c.replicasets.clone();
        c.pods.on_change(move |old, new| {
            let Some(pod) = old.filter(|_| new.is_none()) else {
                return;
            };
            let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
            let deployment = podutil::controller_of(&pod.metadata)
                .filter(|r| r.kind == "ReplicaSet")
                .and_then(|r| rss.get(&format!("{ns}/{}", r.name)))
                .and_then(|rs| {
                    podutil::controller_of(&rs.metadata)
                        .filter(|r| r.kind == "Deployment")
                        .map(|d| d.name.clone())
                });
            if let Some(d) = deployment {
                q.add(format!("{ns}/{d}"));
            }
        });
        c
    }

    /// Starts the workers; call once the informers have synced.
    pub fn run(self: &Arc<Self>) {
        let this = self.clone();
        run_workers(self.queue.clone(), 4, move |key| {
            let this = this.clone();
            async move { this.sync(&key).await }
        });
    }

    async fn sync(&self, key: &str) -> Result<Option<Duration>, ApiError> {
        let Some(d) = self.deployments.get(key) else {
            return Ok(None);
        };
        let (ns, name) = split_key(key);
        let span = tracing::debug_span!("deployment", key);
        let _enter = span.enter();
        let pods = self.pods.list(ns);
        let now_s = now_secs();
        let rss: Vec<Arc<ReplicaSet>> = self
            .replicasets
            .list(ns)
            .into_iter()
            .map(|rs| with_current_availability(rs, &pods, now_s))
            .collect();
        let p = plan(&d, &rss, &pods, now_s);
        let opts = WriteOptions::default();
        let registry = &self.replicasets.registry;
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let mut newest = 0;
        for action in &p.actions {
            match action {
                Action::AdoptRs(rs_name) => {
                    let owner = controller_ref(d.as_ref());
                    let r = registry
                        .modify(ns, rs_name, Part::Main, &opts, |old| {
                            let mut rs = old.clone();
                            if podutil::controller_of(&rs.metadata).is_none() {
                                rs.metadata
                                    .owner_references
                                    .get_or_insert_with(Vec::new)
                                    .push(owner.clone());
                            }
                            Ok(rs)
                        })
                        .await?;
                    newest = newest.max(rev(&r.metadata));
                }
                Action::ReleaseRs(rs_name) => {
                    let r = registry
                        .modify(ns, rs_name, Part::Main, &opts, |old| {
                            let mut rs = old.clone();
                            if let Some(refs) = rs.metadata.owner_references.as_mut() {
                                refs.retain(|r| r.uid != uid);
                            }
                            Ok(rs)
                        })
                        .await?;
                    newest = newest.max(rev(&r.metadata));
                }
                Action::Create(rs) => {
                    let to = rs_replicas(rs);
                    match registry.create(ns, (**rs).clone(), &opts).await {
                        Ok(created) => {
                            newest = newest.max(rev(&created.metadata));
                            if to > 0 {
                                self.recorder.normal(
                                    reference(d.as_ref()),
                                    "ScalingReplicaSet",
                                    format!(
                                        "Scaled up replica set {} from 0 to {to}",
                                        created.metadata.name.unwrap_or_default()
                                    ),
                                );
                            }
                        }
                        // The informer had not seen it yet; the next sync will.
                        Err(e) if e.code == 409 => return Err(e),
                        Err(e) => return Err(e),
                    }
                }
                Action::Scale {
                    name: rs_name,
                    from,
                    to,
                    annotations,
                } => {
                    let r = registry
                        .modify(ns, rs_name, Part::Main, &opts, |old| {
                            let mut rs = old.clone();
                            rs.spec.get_or_insert_with(Default::default).replicas = Some(*to);
                            rs.metadata.annotations = Some(annotations.clone());
                            Ok(rs)
                        })
                        .await?;
                    newest = newest.max(rev(&r.metadata));
                    if from != to {
                        let verb = if to > from { "up" } else { "down" };
                        self.recorder.normal(
                            reference(d.as_ref()),
                            "ScalingReplicaSet",
                            format!("Scaled {verb} replica set {rs_name} from {from} to {to}"),
                        );
                    }
                }
                Action::Delete { name: rs_name, uid } => {
                    let del = DeleteOptions {
                        preconditions: Some(Preconditions {
                            uid: Some(uid.clone()),
                            resource_version: None,
                        }),
                        propagation_policy: Some("Background".into()),
                        ..Default::default()
                    };
                    match registry.delete(ns, rs_name, &del, false).await {
                        Ok(out) => newest = newest.max(rev(&out.object().metadata)),
                        Err(e) if e.code == 404 || e.code == 409 => {}
                        Err(e) => return Err(e),
                    }
                }
                Action::SetRevision(revision) => {
                    self.deployments
                        .registry
                        .modify(ns, name, Part::Main, &opts, |old| {
                            let mut dep = old.clone();
                            dep.metadata
                                .annotations
                                .get_or_insert_with(BTreeMap::new)
                                .insert(REVISION.into(), revision.clone());
                            Ok(dep)
                        })
                        .await?;
                }
            }
        }
        if newest > 0 {
            self.replicasets.wait_for(newest).await;
        }
        // Status is written against the latest object; a conflict just syncs again.
        let current = self.deployments.registry.get(ns, name).await?;
        if current.status.as_ref() != Some(&p.status) {
            let status = p.status.clone();
            self.deployments
                .registry
                .modify(ns, name, Part::Status, &opts, |old| {
                    let mut dep = old.clone();
                    dep.status = Some(status.clone());
                    Ok(dep)
                })
                .await?;
        }
        // After a step of the rollout, look again at once: the next step may be possible.
        let stepped = p.actions.iter().any(|a| {
            matches!(a, Action::Scale { from, to, .. } if from != to)
                || matches!(a, Action::Create(_))
        });
        Ok(if stepped {
            Some(Duration::from_millis(1))
        } else {
            p.requeue_after
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i32, image: &str, strategy: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 1},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "strategy": strategy,
                     "progressDeadlineSeconds": 600, "revisionHistoryLimit": 2,
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}}}
        }))
        .unwrap()
    }

    fn rolling() -> serde_json::Value {
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    }

    /// A ReplicaSet as the controller would have made it for `d`, with replicas and status.
    fn rs_for(
        d: &Deployment,
        replicas: i32,
        available: i32,
        created: &str,
        revision: i64,
    ) -> Arc<ReplicaSet> {
        let hash = template_hash(&d.spec.as_ref().unwrap().template, None);
        let mut template = d.spec.as_ref().unwrap().template.clone();
        template
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(HASH_LABEL.into(), hash.clone());
        let replicas_ann = replicas_of(d).to_string();
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": format!("web-{hash}"), "namespace": "default", "uid": format!("rs-{hash}"),
                              "creationTimestamp": created,
                              "labels": {"app": "web", HASH_LABEL: hash},
                              "annotations": {REVISION: revision.to_string(), DESIRED_REPLICAS: replicas_ann},
                              "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-uid", "controller": true}]},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web", HASH_LABEL: hash}}, "template": template},
                "status": {"replicas": replicas, "readyReplicas": available, "availableReplicas": available}
            }))
            .unwrap(),
        )
    }

    fn scales(p: &Plan) -> Vec<(String, i32)> {
        p.actions
            .iter()
            .filter_map(|a| match a {
                Action::Scale { name, from, to, .. } if from != to => Some((name.clone(), *to)),
                Action::Create(rs) => Some((rs.metadata.name.clone().unwrap(), rs_replicas(rs))),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn hashes_are_stable_and_safe() {
        let d = deployment(3, "web:v1", rolling());
        let t = &d.spec.as_ref().unwrap().template;
        let h = template_hash(t, None);
        assert_eq!(h, template_hash(t, None));
        assert_ne!(h, template_hash(t, Some(1)));
        assert_ne!(
            h,
            template_hash(
                &deployment(3, "web:v2", rolling()).spec.unwrap().template,
                None
            )
        );
        assert!(
            h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
            "{h}"
        );
    }

    #[test]
    fn a_new_deployment_creates_its_replicaset_at_full_size() {
        let d = deployment(3, "web:v1", rolling());
        let p = plan(&d, &[], &[], 0);
        let Action::Create(rs) = &p.actions[0] else {
            panic!("{:?}", p.actions)
        };
        assert_eq!(rs_replicas(rs), 3);
        assert_eq!(annotation(&rs.metadata, REVISION), Some("1"));
        assert!(rs.metadata.name.as_deref().unwrap().starts_with("web-"));
        let hash = rs.metadata.labels.as_ref().unwrap()[HASH_LABEL].clone();
        assert_eq!(
            rs.spec
                .as_ref()
                .unwrap()
                .selector
                .match_labels
                .as_ref()
                .unwrap()[HASH_LABEL],
            hash
        );
        assert_eq!(podutil::controller_of(&rs.metadata).unwrap().uid, "d-uid");
    }

    /// Drives a rolling update to its end with an ideal ReplicaSet controller (every pod at
    /// once available), checking availability never drops below replicas - maxUnavailable and
    /// the total never exceeds replicas + maxSurge.
    #[test]
    fn rolling_update_respects_surge_and_unavailability() {
        let v1 = deployment(4, "web:v1", rolling());
        let v2 = deployment(4, "web:v2", rolling());
        let mut rss: BTreeMap<String, (Arc<ReplicaSet>, i32)> = BTreeMap::new();
        let old = rs_for(&v1, 4, 4, "2026-01-01T00:00:00Z", 1);
        rss.insert(old.metadata.name.clone().unwrap(), (old, 4));
        for step in 0..20 {
            let list: Vec<Arc<ReplicaSet>> = rss.values().map(|(rs, _)| rs.clone()).collect();
            let p = plan(&v2, &list, &[], 0);
            if let Some(Action::Create(rs)) =
                p.actions.iter().find(|a| matches!(a, Action::Create(_)))
            {
                let mut rs = (**rs).clone();
                rs.metadata.uid = Some("new".into());
                rs.metadata.creation_timestamp =
                    Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap(),
                    ));
                rss.insert(rs.metadata.name.clone().unwrap(), (Arc::new(rs), 0));
            }
            for (name, to) in scales(&p) {
                let (rs, _) = rss.get(&name).unwrap().clone();
                let mut rs = (*rs).clone();
                rs.spec.as_mut().unwrap().replicas = Some(to);
                rss.insert(name, (Arc::new(rs), to));
            }
            // The ReplicaSet controller catches up: every pod available.
            for (rs, n) in rss.values_mut() {
                let mut r = (**rs).clone();
                r.status = Some(k8s_openapi::api::apps::v1::ReplicaSetStatus {
                    replicas: *n,
                    available_replicas: Some(*n),
                    ready_replicas: Some(*n),
                    ..Default::default()
                });
                *rs = Arc::new(r);
            }
            let total: i32 = rss.values().map(|(_, n)| n).sum();
            assert!(
                total <= 5,
                "step {step}: {total} pods exceeds replicas + maxSurge"
            );
            assert!(
                total >= 3,
                "step {step}: {total} pods is below replicas - maxUnavailable"
            );
            if p.actions.is_empty() || scales(&p).is_empty() && step > 0 {
                break;
            }
        }
        let sizes: Vec<i32> = rss.values().map(|(_, n)| *n).collect();
        assert!(sizes.contains(&4) && sizes.contains(&0), "{sizes:?}");
    }

    #[test]
    fn recreate_scales_down_before_up() {
        let v1 = deployment(2, "web:v1", json!({"type": "Recreate"}));
        let v2 = deployment(2, "web:v2", json!({"type": "Recreate"}));
        let old = rs_for(&v1, 2, 2, "2026-01-01T00:00:00Z", 1);
        let p = plan(&v2, std::slice::from_ref(&old), &[], 0);
        assert_eq!(scales(&p), [(old.metadata.name.clone().unwrap(), 0)]);
        assert!(
            !p.actions.iter().any(|a| matches!(a, Action::Create(_))),
            "no new pods while old ones run"
        );
    }

    #[test]
    fn scaling_resizes_the_active_replicaset() {
        let d = deployment(5, "web:v1", rolling());
        let rs = rs_for(
            &deployment(3, "web:v1", rolling()),
            3,
            3,
            "2026-01-01T00:00:00Z",
            1,
        );
        let p = plan(&d, std::slice::from_ref(&rs), &[], 0);
        assert_eq!(scales(&p), [(rs.metadata.name.clone().unwrap(), 5)]);
    }

    #[test]
    fn rollback_reuses_the_old_replicaset_with_a_new_revision() {
        let v1 = deployment(2, "web:v1", rolling());
        let v2 = deployment(2, "web:v2", rolling());
        let old = rs_for(&v1, 0, 0, "2026-01-01T00:00:00Z", 1);
        let cur = rs_for(&v2, 2, 2, "2026-01-02T00:00:00Z", 2);
        let p = plan(&v1, &[old.clone(), cur], &[], 0);
        let revised = p.actions.iter().find_map(|a| match a {
            Action::Scale {
                name, annotations, ..
            } if Some(name) == old.metadata.name.as_ref() => annotations.get(REVISION).cloned(),
            _ => None,
        });
        assert_eq!(revised.as_deref(), Some("3"));
        assert!(!p.actions.iter().any(|a| matches!(a, Action::Create(_))));
    }

    #[test]
    fn complete_rollout_has_conditions_and_prunes_history() {
        let d = deployment(2, "web:v4", rolling());
        let mut list = vec![rs_for(&d, 2, 2, "2026-01-04T00:00:00Z", 4)];
        for (i, img) in ["web:v1", "web:v2", "web:v3"].iter().enumerate() {
            list.push(rs_for(
                &deployment(2, img, rolling()),
                0,
                0,
                &format!("2026-01-0{}T00:00:00Z", i + 1),
                i as i64 + 1,
            ));
        }
        let mut d2 = d.clone();
        d2.metadata.annotations = Some([(REVISION.to_string(), "4".to_string())].into());
        let p = plan(&d2, &list, &[], 0);
        let deleted: Vec<&str> = p
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            deleted.len(),
            1,
            "history limit 2 keeps two idle ReplicaSets"
        );
        assert_eq!(
            Some(deleted[0]),
            list[1].metadata.name.as_deref(),
            "the oldest goes"
        );
        assert!(complete(&d2, &p.status));
        let available = condition(&p.status, "Available").unwrap();
        assert_eq!(available.status, "True");
        let progressing = condition(&p.status, "Progressing").unwrap();
        assert_eq!(
            progressing.reason.as_deref(),
            Some("NewReplicaSetAvailable")
        );
    }

    #[test]
    fn no_progress_past_the_deadline_is_reported() {
        let mut d = deployment(2, "web:v2", rolling());
        let stuck_since = 1_700_000_000;
        d.status = Some(DeploymentStatus {
            replicas: Some(3),
            updated_replicas: Some(1),
            available_replicas: Some(2),
            ready_replicas: Some(2),
            conditions: Some(vec![DeploymentCondition {
                type_: "Progressing".into(),
                status: "True".into(),
                reason: Some("ReplicaSetUpdated".into()),
                last_update_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::from_second(stuck_since).unwrap(),
                )),
                ..Default::default()
            }]),
            ..Default::default()
        });
        // The new pod never becomes available; the old ones stay (maxUnavailable 0).
        let new = rs_for(&d, 1, 0, "2026-01-02T00:00:00Z", 2);
        let old = rs_for(
            &deployment(2, "web:v1", rolling()),
            2,
            2,
            "2026-01-01T00:00:00Z",
            1,
        );
        let p = plan(&d, &[old, new], &[], stuck_since + 601);
        let c = condition(&p.status, "Progressing").unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref()),
            ("False", Some("ProgressDeadlineExceeded"))
        );
    }
}
