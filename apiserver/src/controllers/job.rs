//! The Job controller, as Kubernetes' (pkg/controller/job) runs a Job:
//!
//! - **Pods**: as many active as `parallelism` allows and `completions` still needs (a work
//!   queue Job, without completions, makes no new pod once one has succeeded); Indexed Jobs
//!   give each pod its index (annotation and label `batch.kubernetes.io/job-completion-index`,
//!   `JOB_COMPLETION_INDEX` in every container, hostname `<job>-<index>`) and run one pod per
//!   index not yet completed. Pods carry the Job's labels, its controller reference and the
//!   `batch.kubernetes.io/job-tracking` finalizer. Replacements of failed pods wait out a
//!   back-off of 10 s doubled per failure in a row, at most 10 minutes.
//! - **Counting with the tracking finalizer**: a finished pod's UID goes to
//!   `status.uncountedTerminatedPods` first, then its finalizer is removed, then it is moved
//!   into `succeeded`/`failed` (and `completedIndexes`): a restart at any point counts no pod
//!   twice and loses none. A pod deleted before it succeeded counts as failed.
//! - **The end**: `failed > backoffLimit` (or, with restartPolicy OnFailure, as many container
//!   restarts), or `activeDeadlineSeconds` past, is a `FailureTarget` condition; enough
//!   successes is `SuccessCriteriaMet`. The remaining pods are deleted, and once none is left
//!   the terminal `Failed` or `Complete` condition follows (Kubernetes 1.32's order), with
//!   Kubernetes' reasons, messages and events. `ttlSecondsAfterFinished` then deletes the Job
//!   (its pods go with it through the garbage collector).
//! - **Suspend**: a suspended Job's active pods are deleted, `Suspended` is True (`JobSuspended`);
//!   on resume it is False (`JobResumed`) and `startTime` starts again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    DeleteOptions, ObjectMeta, Preconditions, Time,
};

use super::events::{reference, Recorder};
use super::informer::{revision as rev, split_key, Informer};
use super::podutil::{self, controller_ref};
use super::queue::{run_workers, Queue};
use crate::error::ApiError;
use crate::registry::kinds::job::{has_condition, JobKind};
use crate::registry::kinds::pod::PodKind;
use crate::registry::selector::Selector;
use crate::registry::{now_secs, time_secs, Part, WriteOptions};

/// The finalizer that keeps a Job's pod until the Job has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// The annotation (and label) with an Indexed Job's pod's index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The back-off before the first replacement of a failed pod, doubled per failure in a row.
const BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// At most this many pods are created in one sync (Kubernetes' MaxPodCreateDeletePerSync).
const BURST: usize = 500;

const SUCCESS_REASON: &str = "CompletionsReached";
const SUCCESS_MESSAGE: &str = "Reached expected number of succeeded pods";
const BACKOFF_REASON: &str = "BackoffLimitExceeded";
const BACKOFF_MESSAGE: &str = "Job has reached the specified backoff limit";
const DEADLINE_REASON: &str = "DeadlineExceeded";
const DEADLINE_MESSAGE: &str = "Job was active longer than specified deadline";

fn selector(job: &Job) -> Option<Selector> {
    let s = Selector::from_label_selector(job.spec.as_ref()?.selector.as_ref()?).ok()?;
    (!s.is_empty()).then_some(s)
}

/// The completion index of a pod of an Indexed Job.
pub fn index_of(pod: &Pod) -> Option<i32> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(COMPLETION_INDEX)?
        .parse()
        .ok()
        .filter(|i| *i >= 0)
}

/// `1,3-5,7` as Kubernetes writes `completedIndexes`.
pub fn format_indexes(set: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = set.iter().copied().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while it.peek() == Some(&(end + 1)) {
            end = it.next().unwrap_or(end);
        }
        out.push(if end == start {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    out.join(",")
}

pub fn parse_indexes(s: &str) -> BTreeSet<i32> {
    let mut set = BTreeSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.trim().parse::<i32>(), b.trim().parse::<i32>()) {
            set.extend(a..=b.min(a.saturating_add(1_000_000)));
        }
    }
    set
}

fn has_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == TRACKING_FINALIZER)
}

/// A pod that is done as far as the Job is concerned: Succeeded or Failed, or deleted before
/// it succeeded (that counts as a failure).
fn finished(pod: &Pod) -> Option<bool> {
    match podutil::phase(pod) {
        "Succeeded" => Some(true),
        "Failed" => Some(false),
        _ if pod.metadata.deletion_timestamp.is_some() => Some(false),
        _ => None,
    }
}

/// A timestamp of `secs` since the epoch.
fn at(secs: i64) -> Time {
    Time(jiff::Timestamp::from_second(secs).unwrap_or_default())
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, now: i64) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(at(now)),
        last_transition_time: Some(at(now)),
    }
}

/// Sets condition `c` (a change of status moves its transition time; the same status keeps
/// it). Returns whether anything changed.
fn set_condition(status: &mut JobStatus, c: JobCondition) -> bool {
    let conds = status.conditions.get_or_insert_with(Vec::new);
    match conds.iter_mut().find(|x| x.type_ == c.type_) {
        Some(x) if x.status == c.status && x.reason == c.reason => false,
        Some(x) => {
            *x = c;
            true
        }
        None => {
            conds.push(c);
            true
        }
    }
}

/// The failures in a row since the last success, and when the last one was seen.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Backoff {
    pub failures: u32,
    pub last_failure: i64,
}

impl Backoff {
    /// How long after `now` a replacement may be made (zero: now).
    pub fn remaining(&self, now: i64) -> Duration {
        if self.failures == 0 {
            return Duration::ZERO;
        }
        let delay = (BACKOFF * 2u32.saturating_pow(self.failures - 1)).min(MAX_BACKOFF);
        let ready_at = self.last_failure + delay.as_secs() as i64;
        Duration::from_secs((ready_at - now).max(0) as u64)
    }
}

/// What one sync of a Job decided.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Pods to create: their completion index, if Indexed.
    pub create: Vec<Option<i32>>,
    /// Pods (names) to delete.
    pub delete: Vec<String>,
    /// Finished pods whose tracking finalizer is to go (their UIDs are in `uncounted`).
    pub release: Vec<String>,
    /// The status with the newly finished pods recorded as uncounted (written before the
    /// finalizers go).
    pub uncounted: Option<JobStatus>,
    /// The status once those pods are counted.
    pub status: JobStatus,
    /// Events: (warning, reason, message).
    pub events: Vec<(bool, &'static str, String)>,
    /// Come back after this long (a back-off, a deadline, a TTL).
    pub recheck_after: Option<Duration>,
    /// Delete the Job (its TTL after finishing has passed).
    pub delete_job: bool,
    /// The back-off record after this sync.
    pub backoff: Backoff,
}

fn soonest(a: Option<Duration>, b: Duration) -> Option<Duration> {
    Some(a.map_or(b, |a| a.min(b)))
}

/// The decision, from the Job, the pods it controls and its back-off record.
pub fn plan(job: &Job, pods: &[Arc<Pod>], backoff: Backoff, now: i64) -> Plan {
    let mut p = Plan {
        backoff,
        ..Default::default()
    };
    let spec = job.spec.clone().unwrap_or_default();
    let old = job.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let mine: Vec<&Arc<Pod>> = pods
        .iter()
        .filter(|pod| podutil::is_controlled_by(&pod.metadata, &uid))
        .collect();

    // 1. Newly finished pods become uncounted; their finalizers go.
    let mut uncounted = old.uncounted_terminated_pods.clone().unwrap_or_default();
    let mut succeeded_uids: BTreeSet<String> = uncounted
        .succeeded
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut failed_uids: BTreeSet<String> = uncounted
        .failed
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut new_failures = 0u32;
    let mut new_success = false;
    for pod in &mine {
        let Some(ok) = finished(pod) else { continue };
        if !has_finalizer(pod) {
            continue;
        }
        let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
        if !succeeded_uids.contains(&pod_uid) && !failed_uids.contains(&pod_uid) {
            if ok {
                succeeded_uids.insert(pod_uid);
                new_success = true;
            } else {
                failed_uids.insert(pod_uid);
                new_failures += 1;
            }
        }
        p.release
            .push(pod.metadata.name.clone().unwrap_or_default());
    }
    uncounted.succeeded = Some(succeeded_uids.iter().cloned().collect());
    uncounted.failed = Some(failed_uids.iter().cloned().collect());
    // An Indexed Job's succeeded indexes are recorded with them (the pods may be gone by
    // the time they are counted).
    let mut completed: BTreeSet<i32> =
        parse_indexes(old.completed_indexes.as_deref().unwrap_or(""));
    if indexed {
        for pod in &mine {
            let pod_uid = pod.metadata.uid.as_deref().unwrap_or_default();
            if succeeded_uids.contains(pod_uid) {
                if let Some(i) = index_of(pod) {
                    completed.insert(i);
                }
            }
        }
        let completions = spec.completions.unwrap_or(0);
        completed.retain(|i| *i < completions);
    }
    let completed_indexes = indexed.then(|| format_indexes(&completed));
    if uncounted != old.uncounted_terminated_pods.clone().unwrap_or_default()
        && !(succeeded_uids.is_empty() && failed_uids.is_empty())
    {
        let mut s = old.clone();
        s.uncounted_terminated_pods = Some(uncounted.clone());
        s.completed_indexes = completed_indexes.clone();
        p.uncounted = Some(s);
    }
    if new_success {
        p.backoff = Backoff::default();
    }
    if new_failures > 0 {
        p.backoff.failures += new_failures;
        p.backoff.last_failure = now;
    }

    // 2. The counts, once the finalizers are gone.
    let succeeded = old.succeeded.unwrap_or(0) + succeeded_uids.len() as i32;
    let failed = old.failed.unwrap_or(0) + failed_uids.len() as i32;
    status.succeeded = Some(succeeded);
    status.failed = Some(failed);
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
    if indexed {
        status.completed_indexes = completed_indexes;
    }

    let active: Vec<&Arc<Pod>> = mine
        .iter()
        .copied()
        .filter(|pod| finished(pod).is_none())
        .collect();
    let terminating = mine
        .iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_some() && !podutil::is_terminal(pod))
        .count() as i32;
    status.active = Some(active.len() as i32);
    status.ready = Some(active.iter().filter(|p| podutil::is_ready(p)).count() as i32);
    status.terminating = Some(terminating);

    let finished_already = has_condition(job, "Complete") || has_condition(job, "Failed");
    if finished_already || job.metadata.deletion_timestamp.is_some() {
        // Nothing more runs; a finished Job may be due for deletion.
        if finished_already {
            ttl(job, &spec, &status, now, &mut p);
        }
        p.status = status;
        return p;
    }

    // 3. Suspension.
    let suspended = spec.suspend == Some(true);
    if suspended {
        if set_condition(
            &mut status,
            condition("Suspended", "True", "JobSuspended", "Job suspended", now),
        ) {
            p.events
                .push((false, "Suspended", "Job suspended".to_string()));
        }
        p.delete = names(&active);
        status.start_time = None;
        p.status = status;
        return p;
    }
    if has_condition(job, "Suspended")
        && set_condition(
            &mut status,
            condition("Suspended", "False", "JobResumed", "Job resumed", now),
        )
    {
        p.events.push((false, "Resumed", "Job resumed".to_string()));
    }
    let start = match &status.start_time {
        Some(t) => time_secs(t),
        None => {
            status.start_time = Some(at(now));
            now
        }
    };

    // 4. Has it come to an end?
    let target = if has_condition(job, "FailureTarget") {
        Some(false)
    } else if has_condition(job, "SuccessCriteriaMet") {
        Some(true)
    } else {
        None
    };
    let target = target.or_else(|| {
        let backoff_limit = spec.backoff_limit.unwrap_or(6);
        let on_failure_restarts = restarts_on_failure(&spec, &active);
        let past_backoff = failed > backoff_limit
            || on_failure_restarts.is_some_and(|r| {
                if backoff_limit == 0 {
                    r > 0
                } else {
                    r >= backoff_limit
                }
            });
        let deadline = spec
            .active_deadline_seconds
            .map(|d| start.saturating_add(d));
        if past_backoff {
            set_condition(
                &mut status,
                condition(
                    "FailureTarget",
                    "True",
                    BACKOFF_REASON,
                    BACKOFF_MESSAGE,
                    now,
                ),
            );
            return Some(false);
        }
        if deadline.is_some_and(|d| now >= d) {
            set_condition(
                &mut status,
                condition(
                    "FailureTarget",
                    "True",
                    DEADLINE_REASON,
                    DEADLINE_MESSAGE,
                    now,
                ),
            );
            return Some(false);
        }
        if let Some(d) = deadline {
            p.recheck_after = soonest(p.recheck_after, Duration::from_secs((d - now) as u64));
        }
        let done = match (indexed, spec.completions) {
            (true, Some(c)) => completed.len() as i32 >= c,
            (false, Some(c)) => succeeded >= c,
            // A work queue: done once one has succeeded and the rest have finished.
            (_, None) => succeeded > 0 && active.is_empty(),
        };
        if done {
            set_condition(
                &mut status,
                condition(
                    "SuccessCriteriaMet",
                    "True",
                    SUCCESS_REASON,
                    SUCCESS_MESSAGE,
                    now,
                ),
            );
            return Some(true);
        }
        None
    });
    if let Some(success) = target {
        // The rest of the pods go; the terminal condition follows once none is left.
        p.delete = names(&active);
        if active.is_empty() && terminating == 0 {
            let (kind, reason, message) = if success {
                ("Complete", SUCCESS_REASON, SUCCESS_MESSAGE)
            } else {
                let c = status
                    .conditions
                    .iter()
                    .flatten()
                    .find(|c| c.type_ == "FailureTarget")
                    .cloned()
                    .unwrap_or_default();
                let reason = if c.reason.as_deref() == Some(DEADLINE_REASON) {
                    DEADLINE_REASON
                } else {
                    BACKOFF_REASON
                };
                let message = if reason == DEADLINE_REASON {
                    DEADLINE_MESSAGE
                } else {
                    BACKOFF_MESSAGE
                };
                ("Failed", reason, message)
            };
            set_condition(&mut status, condition(kind, "True", reason, message, now));
            if success {
                status.completion_time = Some(at(now));
                p.events.push((false, "Completed", "Job completed".into()));
            } else {
                p.events.push((true, reason, message.to_string()));
            }
            let mut finished_job = job.clone();
            finished_job.status = Some(status.clone());
            ttl(&finished_job, &spec, &status, now, &mut p);
        }
        p.status = status;
        return p;
    }

    // 5. The pods it should run.
    let parallelism = spec.parallelism.unwrap_or(1).max(0) as usize;
    let wait = p.backoff.remaining(now);
    if indexed {
        let completions = spec.completions.unwrap_or(0).max(0);
        let mut running: BTreeMap<i32, Vec<&Arc<Pod>>> = BTreeMap::new();
        for pod in &active {
            match index_of(pod) {
                Some(i) if i < completions && !completed.contains(&i) => {
                    running.entry(i).or_default().push(pod)
                }
                // No index, out of range, or its index already completed.
                _ => p.delete.push(pod.metadata.name.clone().unwrap_or_default()),
            }
        }
        // One pod per index: the newest duplicates go.
        for pods in running.values() {
            for dup in pods.iter().skip(1) {
                p.delete.push(dup.metadata.name.clone().unwrap_or_default());
            }
        }
        let busy = running.len();
        if busy > parallelism {
            for (_, pods) in running.iter().rev().take(busy - parallelism) {
                p.delete
                    .push(pods[0].metadata.name.clone().unwrap_or_default());
            }
        } else if wait.is_zero() {
            let missing = (0..completions)
                .filter(|i| !completed.contains(i) && !running.contains_key(i))
                .take((parallelism - busy).min(BURST));
            p.create = missing.map(Some).collect();
        }
    } else {
        let want = match spec.completions {
            Some(c) => parallelism.min((c - succeeded).max(0) as usize),
            None if succeeded > 0 => active.len().min(parallelism),
            None => parallelism,
        };
        if active.len() > want {
            let mut ranked = active.clone();
            let per_node = BTreeMap::new();
            ranked.sort_by(|a, b| podutil::deletion_order(a, b, &per_node));
            p.delete = names(&ranked[..active.len() - want]);
        } else if active.len() < want && wait.is_zero() {
            p.create = vec![None; (want - active.len()).min(BURST)];
        }
    }
    if !wait.is_zero() {
        p.recheck_after = soonest(p.recheck_after, wait);
    }
    p.status = status;
    p
}

fn names(pods: &[&Arc<Pod>]) -> Vec<String> {
    pods.iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect()
}

/// With restartPolicy OnFailure, the container restarts of the running pods (they count
/// against the back-off limit); None for Never.
fn restarts_on_failure(
    spec: &k8s_openapi::api::batch::v1::JobSpec,
    active: &[&Arc<Pod>],
) -> Option<i32> {
    let policy = spec.template.spec.as_ref()?.restart_policy.as_deref();
    (policy == Some("OnFailure")).then(|| {
        active
            .iter()
            .filter(|p| matches!(podutil::phase(p), "Running" | "Pending"))
            .flat_map(|p| {
                let s = p.status.as_ref();
                s.into_iter()
                    .flat_map(|s| s.container_statuses.iter().flatten())
                    .chain(
                        s.into_iter()
                            .flat_map(|s| s.init_container_statuses.iter().flatten()),
                    )
                    .map(|c| c.restart_count)
            })
            .sum()
    })
}

/// `ttlSecondsAfterFinished`: delete the finished Job once it has passed, or come back then.
fn ttl(
    job: &Job,
    spec: &k8s_openapi::api::batch::v1::JobSpec,
    status: &JobStatus,
    now: i64,
    p: &mut Plan,
) {
    let Some(ttl) = spec.ttl_seconds_after_finished else {
        return;
    };
    let finished_at = status
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(time_secs)
        .or_else(|| job.metadata.creation_timestamp.as_ref().map(time_secs))
        .unwrap_or(now);
    let due = finished_at + ttl as i64;
    if now >= due {
        p.delete_job = true;
    } else {
        p.recheck_after = soonest(p.recheck_after, Duration::from_secs((due - now) as u64));
    }
}

/// The pod a Job creates: its template, the Job's controller reference and tracking
/// finalizer, and for an Indexed Job its index.
pub fn pod_for(job: &Job, index: Option<i32>) -> Pod {
    let spec = job.spec.clone().unwrap_or_default();
    let template = spec.template;
    let meta = template.metadata.unwrap_or_default();
    let job_name = job.metadata.name.clone().unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    let mut pod_spec = template.spec.unwrap_or_default();
    let generate_name = match index {
        Some(i) => {
            labels.insert(COMPLETION_INDEX.into(), i.to_string());
            annotations.insert(COMPLETION_INDEX.into(), i.to_string());
            if pod_spec.hostname.is_none() {
                pod_spec.hostname = Some(format!("{job_name}-{i}"));
            }
            let env = EnvVar {
                name: "JOB_COMPLETION_INDEX".into(),
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                        api_version: Some("v1".into()),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            for c in pod_spec
                .containers
                .iter_mut()
                .chain(pod_spec.init_containers.iter_mut().flatten())
            {
                let vars = c.env.get_or_insert_with(Vec::new);
                if !vars.iter().any(|v| v.name == env.name) {
                    vars.push(env.clone());
                }
            }
            format!("{job_name}-{i}-")
        }
        None => format!("{job_name}-"),
    };
    let mut finalizers = meta.finalizers.unwrap_or_default();
    finalizers.push(TRACKING_FINALIZER.into());
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: Some(finalizers),
            owner_references: Some(vec![controller_ref(job)]),
            ..Default::default()
        },
        spec: Some(pod_spec),
        status: None,
    }
}

pub struct Controller {
    pub jobs: Arc<Informer<JobKind>>,
    pub pods: Arc<Informer<PodKind>>,
    pub recorder: Recorder,
    pub queue: Arc<Queue>,
    backoffs: Mutex<HashMap<String, Backoff>>,
}

impl Controller {
    pub fn new(
        jobs: Arc<Informer<JobKind>>,
        pods: Arc<Informer<PodKind>>,
        recorder: Recorder,
    ) -> Arc<Controller> {
        let c = Arc::new(Controller {
            jobs,
            pods,
            recorder: recorder.for_component("job-controller"),
            queue: Queue::new("job"),
            backoffs: Mutex::new(HashMap::new()),
        });
        c.jobs.enqueue_to(c.queue.clone());
        c.pods
            .enqueue_owners(c.jobs.clone(), "Job", selector, c.queue.clone());
        c
    }

    /// Starts the workers; call once the informers have synced.
    pub fn run(self: &Arc<Self>) {
        let this = self.clone();
        run_workers(self.queue.clone(), 4, move |key| {
            let this = this.clone();
            async move { this.sync(&key).await }
        });
        // After a restart: pods of Jobs that are gone still hold the finalizer.
        for pod in self.pods.list(None) {
            if let Some(r) = podutil::controller_of(&pod.metadata).filter(|r| r.kind == "Job") {
                let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
                self.queue.add(format!("{ns}/{}", r.name));
            }
        }
    }

    async fn remove_finalizer(&self, ns: Option<&str>, name: &str) -> Result<i64, ApiError> {
        let opts = WriteOptions::default();
        let r = self
            .pods
            .registry
            .modify(ns, name, Part::Main, &opts, |old| {
                let mut pod = old.clone();
                if let Some(f) = pod.metadata.finalizers.as_mut() {
                    f.retain(|f| f != TRACKING_FINALIZER);
                }
                Ok(pod)
            })
            .await;
        match r {
            Ok(pod) => Ok(rev(&pod.metadata)),
            Err(e) if e.code == 404 => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// The pods of a Job that is gone (or another Job of the same name): their finalizers go.
    async fn release_orphans(
        &self,
        ns: Option<&str>,
        pods: &[Arc<Pod>],
        name: &str,
        uid: Option<&str>,
    ) -> Result<(), ApiError> {
        for pod in pods {
            let orphan = podutil::controller_of(&pod.metadata)
                .is_some_and(|r| r.kind == "Job" && r.name == name && Some(r.uid.as_str()) != uid);
            if orphan && has_finalizer(pod) {
                self.remove_finalizer(ns, pod.metadata.name.as_deref().unwrap_or_default())
                    .await?;
            }
        }
        Ok(())
    }

    async fn write_status(
        &self,
        ns: Option<&str>,
        name: &str,
        status: &JobStatus,
    ) -> Result<(), ApiError> {
        let opts = WriteOptions::default();
        let updated = self
            .jobs
            .registry
            .modify(ns, name, Part::Status, &opts, |old| {
                let mut j = old.clone();
                j.status = Some(status.clone());
                Ok(j)
            })
            .await;
        match updated {
            Ok(j) => {
                self.jobs.wait_for(rev(&j.metadata)).await;
                Ok(())
            }
            Err(e) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn sync(&self, key: &str) -> Result<Option<Duration>, ApiError> {
        let (ns, name) = split_key(key);
        let pods = self.pods.list(ns);
        let Some(job) = self.jobs.get(key) else {
            self.backoffs.lock().unwrap().remove(key);
            self.release_orphans(ns, &pods, name, None).await?;
            return Ok(None);
        };
        let span = tracing::debug_span!("job", key);
        let _enter = span.enter();
        self.release_orphans(ns, &pods, name, job.metadata.uid.as_deref())
            .await?;
        let backoff = self
            .backoffs
            .lock()
            .unwrap()
            .get(key)
            .copied()
            .unwrap_or_default();
        let p = plan(&job, &pods, backoff, now_secs());
        self.backoffs
            .lock()
            .unwrap()
            .insert(key.to_string(), p.backoff);
        let opts = WriteOptions::default();
        let registry = &self.pods.registry;

        // The newly finished pods are recorded before their finalizers go.
        if let Some(s) = &p.uncounted {
            self.write_status(ns, name, s).await?;
        }
        let mut newest = 0;
        let released = join_all(p.release.iter().map(|n| self.remove_finalizer(ns, n))).await;
        for r in released {
            newest = newest.max(r?);
        }
        let mut failure: Option<ApiError> = None;
        if !p.create.is_empty() {
            let results = join_all(
                p.create
                    .iter()
                    .map(|index| registry.create(ns, pod_for(&job, *index), &opts)),
            )
            .await;
            let (written, failed) =
                podutil::record_creates(results, &self.recorder, &reference(job.as_ref()));
            newest = newest.max(written);
            failure = failed.or(failure);
        }
        if !p.delete.is_empty() {
            let (written, failed) = podutil::delete_pods(
                &self.pods,
                ns,
                &p.delete,
                &self.recorder,
                reference(job.as_ref()),
            )
            .await;
            newest = newest.max(written);
            failure = failed.or(failure);
        }
        let mut status = p.status.clone();
        if newest > 0 {
            // The next sync must not see a pod whose finalizer went (and which the status
            // below counts) still holding it: that would count it twice (Kubernetes'
            // finalizer expectations). The status counts the pods as they are now.
            self.pods.wait_for(newest).await;
            let mut counted = (*job).clone();
            counted.status = Some(status.clone());
            let again = plan(&counted, &self.pods.list(ns), p.backoff, now_secs());
            status.active = again.status.active;
            status.ready = again.status.ready;
            status.terminating = again.status.terminating;
        }
        if Some(&status) != job.status.as_ref() {
            self.write_status(ns, name, &status).await?;
        }
        for (warning, reason, message) in p.events {
            if warning {
                self.recorder
                    .warning(reference(job.as_ref()), reason, message);
            } else {
                self.recorder
                    .normal(reference(job.as_ref()), reason, message);
            }
        }
        if p.delete_job {
            let del = DeleteOptions {
                propagation_policy: Some("Background".into()),
                preconditions: Some(Preconditions {
                    uid: job.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match self.jobs.registry.delete(ns, name, &del, false).await {
                Ok(_) => {}
                Err(e) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(p.recheck_after),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn job(v: Value) -> Job {
        let mut j: Job = serde_json::from_value(v).unwrap();
        j.metadata.name.get_or_insert("pi".into());
        j.metadata.namespace.get_or_insert("default".into());
        j.metadata.uid.get_or_insert("job-uid".into());
        let spec = j.spec.get_or_insert_with(Default::default);
        spec.parallelism.get_or_insert(1);
        spec.template
            .spec
            .get_or_insert_with(Default::default)
            .restart_policy = Some("Never".into());
        j
    }

    fn pod(name: &str, phase: &str, finalizer: bool, index: Option<i32>) -> Arc<Pod> {
        let mut p = pod_for(&job(json!({})), index);
        p.metadata.name = Some(name.into());
        p.metadata.uid = Some(format!("uid-{name}"));
        if !finalizer {
            p.metadata.finalizers = Some(vec![]);
        }
        p.status = Some(serde_json::from_value(json!({"phase": phase})).unwrap());
        Arc::new(p)
    }

    #[test]
    fn indexes_as_kubernetes_writes_them() {
        let set: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into_iter().collect();
        assert_eq!(format_indexes(&set), "0-2,4,6-7");
        assert_eq!(parse_indexes("0-2,4,6-7"), set);
        assert_eq!(format_indexes(&BTreeSet::new()), "");
    }

    #[test]
    fn runs_parallelism_pods_until_completions_succeed() {
        let j = job(json!({"spec": {"completions": 3, "parallelism": 2}}));
        let p = plan(&j, &[], Backoff::default(), 100);
        assert_eq!(p.create.len(), 2);
        assert_eq!(p.status.active, Some(0));
        assert!(p.status.start_time.is_some());

        // One succeeded (finalizer still on): recorded as uncounted, released, counted.
        let pods = [
            pod("a", "Succeeded", true, None),
            pod("b", "Running", true, None),
        ];
        let p = plan(&j, &pods, Backoff::default(), 100);
        assert_eq!(p.release, ["a"]);
        assert_eq!(
            p.uncounted
                .unwrap()
                .uncounted_terminated_pods
                .unwrap()
                .succeeded,
            Some(vec!["uid-a".to_string()])
        );
        assert_eq!(p.status.succeeded, Some(1));
        assert_eq!(p.create.len(), 1, "one more for the 3rd completion");

        // Counted before (finalizer gone): not counted again.
        let mut counted = j.clone();
        counted.status = Some(JobStatus {
            succeeded: Some(1),
            ..Default::default()
        });
        let pods = [
            pod("a", "Succeeded", false, None),
            pod("b", "Running", true, None),
        ];
        let p = plan(&counted, &pods, Backoff::default(), 100);
        assert_eq!(p.status.succeeded, Some(1));
        assert!(p.release.is_empty() && p.uncounted.is_none());
    }

    #[test]
    fn completes_in_two_steps() {
        let mut j = job(json!({"spec": {"completions": 1}}));
        j.status = Some(JobStatus {
            succeeded: Some(0),
            start_time: Some(at(now_secs())),
            ..Default::default()
        });
        let pods = [pod("a", "Succeeded", true, None)];
        let p = plan(&j, &pods, Backoff::default(), now_secs());
        let types: Vec<_> = p
            .status
            .conditions
            .iter()
            .flatten()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(
            types,
            ["SuccessCriteriaMet", "Complete"],
            "no pod left: both at once"
        );
        assert!(p.status.completion_time.is_some());
        assert!(p.events.iter().any(|e| e.1 == "Completed"));
    }

    #[test]
    fn fails_past_the_backoff_limit_and_backs_off_before() {
        let j = job(json!({"spec": {"completions": 1, "backoffLimit": 1}}));
        let pods = [pod("a", "Failed", true, None)];
        let p = plan(&j, &pods, Backoff::default(), 1000);
        assert!(
            p.create.is_empty(),
            "the replacement waits out the back-off"
        );
        assert_eq!(p.recheck_after, Some(Duration::from_secs(10)));
        assert_eq!(p.backoff.failures, 1);
        // Next syncs, with the failure counted: the replacement comes once 10 s have passed.
        let mut counted = j.clone();
        counted.status = Some(p.status.clone());
        let pods = [pod("a", "Failed", false, None)];
        assert!(plan(&counted, &pods, p.backoff, 1009).create.is_empty());
        let p = plan(&counted, &pods, p.backoff, 1010);
        assert_eq!(p.create.len(), 1);

        let mut failed_twice = j.clone();
        failed_twice.status = Some(JobStatus {
            failed: Some(2),
            start_time: Some(at(now_secs())),
            ..Default::default()
        });
        let p = plan(
            &failed_twice,
            &[pod("b", "Running", true, None)],
            Backoff::default(),
            1000,
        );
        assert_eq!(p.delete, ["b"], "what still runs goes");
        let target = p
            .status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "FailureTarget")
            .unwrap();
        assert_eq!(target.reason.as_deref(), Some(BACKOFF_REASON));
        assert!(
            !p.status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Failed"),
            "not before the pods are gone"
        );
    }

    #[test]
    fn indexed_jobs_run_one_pod_per_missing_index() {
        let j =
            job(json!({"spec": {"completions": 4, "parallelism": 2, "completionMode": "Indexed"}}));
        let pods = [
            pod("a", "Succeeded", true, Some(0)),
            pod("b", "Running", true, Some(1)),
        ];
        let p = plan(&j, &pods, Backoff::default(), 100);
        assert_eq!(p.create, [Some(2)]);
        assert_eq!(p.status.completed_indexes.as_deref(), Some("0"));
        let made = pod_for(&j, Some(2));
        assert_eq!(made.metadata.generate_name.as_deref(), Some("pi-2-"));
        let spec = made.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("pi-2"));
        assert_eq!(spec.containers.len(), 0);
        assert_eq!(made.metadata.annotations.unwrap()[COMPLETION_INDEX], "2");
    }

    #[test]
    fn suspended_jobs_run_nothing() {
        let j = job(json!({"spec": {"completions": 2, "suspend": true}}));
        let p = plan(
            &j,
            &[pod("a", "Running", true, None)],
            Backoff::default(),
            100,
        );
        assert_eq!(p.delete, ["a"]);
        assert!(p.create.is_empty());
        assert!(p.status.start_time.is_none());
        assert_eq!(p.events[0].1, "Suspended");
    }

    #[test]
    fn finished_jobs_go_after_their_ttl() {
        let mut j = job(json!({"spec": {"ttlSecondsAfterFinished": 30}}));
        let mut s = JobStatus::default();
        let mut c = condition("Complete", "True", SUCCESS_REASON, SUCCESS_MESSAGE, 1000);
        c.last_transition_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::from_second(1000).unwrap(),
        ));
        s.conditions = Some(vec![c]);
        j.status = Some(s);
        let p = plan(&j, &[], Backoff::default(), 1010);
        assert_eq!(p.recheck_after, Some(Duration::from_secs(20)));
        assert!(!p.delete_job);
        assert!(plan(&j, &[], Backoff::default(), 1030).delete_job);
    }
}
