//! What a pod worker does next: a pure function of the pod's spec, what the runtime has and
//! what the worker remembers of its own attempts, as the kubelet's `computePodActions` (tested
//! by tables; the worker only carries it out). Every decision lives here: when a failed sandbox
//! is tried again, how long a crashed container waits and the words its status and event show,
//! when a completed pod gives its network back.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use crate::image::policy::go_duration;
use crate::status::Waiting;

/// The latest instance of one container, as the runtime knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// Restart count: 0 for the first instance.
    pub attempt: u32,
    pub state: InstanceState,
    /// The image the instance was started from (a changed spec image restarts it).
    pub image: String,
    /// A running instance whose liveness or startup probe failed for good ("liveness",
    /// "startup"): it is killed.
    pub failed_probe: Option<&'static str>,
    /// Running, and no startup probe or it succeeded (a sidecar holds the next init
    /// container until then).
    pub started: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstanceState {
    Running,
    /// Exited with this code, this long ago, after running this long.
    Exited {
        code: i32,
        ago: Duration,
        ran: Duration,
    },
}

/// What the runtime has for a pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub sandbox_ready: bool,
    /// By container name (init and regular containers alike).
    pub instances: BTreeMap<String, Instance>,
}

/// What the worker remembers of its own attempts: the runtime keeps no trace of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// Failed sandbox creations in a row (0 once one succeeds).
    pub sandbox_failures: u32,
    /// How long ago the last of them failed.
    pub since_sandbox_failure: Duration,
    /// The pod has been active longer than its `activeDeadlineSeconds`.
    pub deadline_exceeded: bool,
    /// A pod being deleted: how long is left until its deletionTimestamp (the grace that
    /// remains for what still runs).
    pub deletion_left: Option<Duration>,
}

/// The pod's ephemeral containers (`kubectl debug`), read as containers (their common fields
/// are the same), each with the container whose processes it shares, if it names one.
pub fn ephemeral_containers(
    pod: &Pod,
) -> Vec<(k8s_openapi::api::core::v1::Container, Option<String>)> {
    pod.spec
        .iter()
        .flat_map(|s| s.ephemeral_containers.iter().flatten())
        .map(|ec| {
            let mut v = serde_json::to_value(ec).unwrap_or_default();
            if let Some(m) = v.as_object_mut() {
                m.remove("targetContainerName");
            }
            let target = ec.target_container_name.clone().filter(|t| !t.is_empty());
            (serde_json::from_value(v).unwrap_or_default(), target)
        })
        .collect()
}

/// Container `name` of the pod, whichever list declares it.
pub fn find_container(pod: &Pod, name: &str) -> Option<k8s_openapi::api::core::v1::Container> {
    let spec = pod.spec.as_ref()?;
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .find(|c| c.name == name)
        .cloned()
        .or_else(|| {
            ephemeral_containers(pod)
                .into_iter()
                .map(|(c, _)| c)
                .find(|c| c.name == name)
        })
}

/// The pod's own grace period (`terminationGracePeriodSeconds`, else 30 s), or
/// `overriding` when given (a probe's, a deletion's).
pub fn pod_grace(pod: &Pod, overriding: Option<i64>) -> Duration {
    let secs = overriding
        .or(pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30)
        .max(0);
    Duration::from_secs(secs as u64)
}

/// The grace period of a pod being deleted: the deletion's, else the pod's, else 30 s.
pub fn deletion_grace(pod: &Pod) -> Duration {
    pod_grace(pod, pod.metadata.deletion_grace_period_seconds)
}

/// A restartable init container (a sidecar): `restartPolicy: Always` on an init container.
pub fn is_sidecar(c: &k8s_openapi::api::core::v1::Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// How long pod `pod` has left before its `activeDeadlineSeconds`, counted from its status'
/// `startTime` as Kubernetes' kubelet counts it (None: no deadline, or not started).
pub fn deadline_left(pod: &Pod, now: k8s_openapi::jiff::Timestamp) -> Option<Duration> {
    let limit = pod.spec.as_ref()?.active_deadline_seconds?;
    let start = pod.status.as_ref()?.start_time.as_ref()?.0;
    let active = Duration::try_from(now.duration_since(start)).unwrap_or_default();
    Some(Duration::from_secs(limit.max(0) as u64).saturating_sub(active))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Make the pod's namespaces, network and files.
    CreateSandbox,
    /// The last sandbox creations failed: wait this long before the next (no event, no try).
    SandboxBackOff { remaining: Duration },
    /// Start (pulling the image as its policy says) container `name` as restart `attempt`.
    Start { name: String, attempt: u32 },
    /// Stop a running container (SIGTERM, then SIGKILL after `grace`).
    Stop { name: String, grace: Duration },
    /// Kill a running container that failed its liveness or startup probe, saying why in a
    /// Killing event (`Container c failed liveness probe, will be restarted`).
    Kill {
        name: String,
        grace: Duration,
        message: String,
    },
    /// Container `name` waits out its back-off before restart `attempt`: its status shows
    /// `waiting` (CrashLoopBackOff), and a BackOff event says `event` once per attempt.
    BackOff {
        name: String,
        attempt: u32,
        remaining: Duration,
        waiting: Waiting,
        event: String,
    },
    /// The pod completed for good: give its IP and network namespace back, keeping its
    /// records for the status and logs (as Kubernetes kills a completed pod's sandbox).
    ReleaseNetwork,
    /// Everything is stopped: tear the sandbox down.
    RemoveSandbox,
    /// The pod is gone from the node: let the API delete the object.
    Finalize,
}

/// Kubernetes' restart back-off before restart number `attempt`: the first restart is at
/// once, then 10 s doubling up to 5 min; a container that ran 10 minutes starts over.
pub fn back_off(attempt: u32, ran: Duration) -> Duration {
    if ran >= Duration::from_secs(600) || attempt <= 1 {
        return Duration::ZERO;
    }
    let secs = 10u64.saturating_mul(1 << (attempt - 2).min(5));
    Duration::from_secs(secs.min(300))
}

/// How long after `failures` failed sandbox creations in a row the next is tried: 2 s
/// doubling to 1 min.
pub fn sandbox_back_off(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    (Duration::from_secs(2) * (1 << (failures - 1).min(5))).min(Duration::from_secs(60))
}

/// Whether the pod's phase is final (Succeeded or Failed): nothing of it starts again.
pub fn completed(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn should_restart(policy: &str, code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => code != 0,
        _ => true,
    }
}

/// Stops of running containers in Kubernetes' termination order, with `grace`: every
/// running container that is not a sidecar at once; once none runs, the sidecars one at a
/// time, the last declared first.
fn stop_running(pod: &Pod, seen: &Observed, grace: Duration) -> Vec<Action> {
    let running = |name: &str| {
        seen.instances
            .get(name)
            .is_some_and(|i| i.state == InstanceState::Running)
    };
    let sidecars: Vec<&str> = pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .filter(|c| is_sidecar(c))
        .map(|c| c.name.as_str())
        .collect();
    let first: Vec<Action> = seen
        .instances
        .iter()
        .filter(|(n, i)| i.state == InstanceState::Running && !sidecars.contains(&n.as_str()))
        .map(|(n, _)| Action::Stop {
            name: n.clone(),
            grace,
        })
        .collect();
    if !first.is_empty() {
        return first;
    }
    sidecars
        .iter()
        .rev()
        .find(|n| running(n))
        .map(|n| Action::Stop {
            name: n.to_string(),
            grace,
        })
        .into_iter()
        .collect()
}

/// The next actions for `pod`, given what runs and what the worker tried before.
pub fn plan(pod: &Pod, seen: &Observed, past: &History) -> Vec<Action> {
    let Some(spec) = pod.spec.as_ref() else {
        return vec![];
    };
    let running = |name: &str| {
        seen.instances
            .get(name)
            .is_some_and(|i| i.state == InstanceState::Running)
    };
    // Deletion: stop everything (within the grace period), then the sandbox, then finalize.
    if pod.metadata.deletion_timestamp.is_some() {
        let mut grace = deletion_grace(pod);
        // Sidecars stopped after the others get what is left of the grace period.
        if let Some(left) = past.deletion_left {
            grace = grace.min(left);
        }
        let stops = stop_running(pod, seen, grace);
        if !stops.is_empty() {
            return stops;
        }
        return if seen.sandbox_ready {
            vec![Action::RemoveSandbox, Action::Finalize]
        } else {
            vec![Action::Finalize]
        };
    }
    // Past its active deadline the pod fails: everything stops (within the grace period),
    // nothing starts again, and the network goes back as for any completed pod.
    if past.deadline_exceeded {
        let stops = stop_running(pod, seen, pod_grace(pod, None));
        if !stops.is_empty() {
            return stops;
        }
        return if seen.sandbox_ready {
            vec![Action::ReleaseNetwork]
        } else {
            vec![]
        };
    }
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let completed = completed(pod);
    if completed && seen.sandbox_ready {
        // The sidecars of a completed pod stop (last declared first), then the network goes.
        let stops = stop_running(pod, seen, pod_grace(pod, None));
        if !stops.is_empty() {
            return stops;
        }
        return vec![Action::ReleaseNetwork];
    }
    if !seen.sandbox_ready {
        // A lost sandbox (network gone): whatever still runs belongs to the old one.
        let mut out: Vec<Action> = seen
            .instances
            .iter()
            .filter(|(_, i)| i.state == InstanceState::Running)
            .map(|(n, _)| Action::Stop {
                name: n.clone(),
                grace: Duration::ZERO,
            })
            .collect();
        // A pod whose containers all finished for good needs no new sandbox.
        let finished = spec.containers.iter().all(|c| {
            matches!(
                seen.instances.get(&c.name),
                Some(Instance { state: InstanceState::Exited { code, .. }, .. })
                    if !should_restart(policy, *code)
            )
        });
        // Nor does a completed one (its network was given back on purpose).
        if out.is_empty() && !finished && !completed {
            let wait = sandbox_back_off(past.sandbox_failures);
            out.push(if past.since_sandbox_failure < wait {
                Action::SandboxBackOff {
                    remaining: wait - past.since_sandbox_failure,
                }
            } else {
                Action::CreateSandbox
            });
        }
        return out;
    }

    let mut out = Vec::new();
    // Ephemeral containers start even before the pod is initialized, and never restart.
    for (c, _) in ephemeral_containers(pod) {
        if !seen.instances.contains_key(&c.name) {
            out.push(Action::Start {
                name: c.name,
                attempt: 0,
            });
        }
    }
    // Once an app container was made, the pod is initialized for good: sidecars that end
    // are restarted (with back-off) on their own, holding nothing up.
    let initialized = spec
        .containers
        .iter()
        .any(|c| seen.instances.contains_key(&c.name));
    // Init containers, in order: each must exit 0 before the next (and the app containers);
    // a sidecar must run and have started.
    for c in spec.init_containers.iter().flatten() {
        let sidecar = is_sidecar(c);
        if initialized && !sidecar {
            continue;
        }
        match seen.instances.get(&c.name) {
            None => {
                out.push(Action::Start {
                    name: c.name.clone(),
                    attempt: 0,
                });
                if !initialized {
                    return out;
                }
            }
            Some(i) => match &i.state {
                InstanceState::Running if sidecar => {
                    if let Some(kill) = probe_kill(pod, c, i, "Always") {
                        out.push(kill);
                    } else if i.started || initialized {
                        continue;
                    }
                    if !initialized {
                        return out;
                    }
                }
                InstanceState::Running => return out,
                InstanceState::Exited { ago, ran, .. } if sidecar => {
                    out.push(restart(pod, &c.name, i.attempt + 1, *ago, *ran));
                    if !initialized {
                        return out;
                    }
                }
                InstanceState::Exited { code: 0, .. } => continue,
                InstanceState::Exited { ago, ran, .. } => {
                    // A failed init container: the pod fails with Never, else it retries.
                    if policy == "Never" {
                        return out;
                    }
                    out.push(restart(pod, &c.name, i.attempt + 1, *ago, *ran));
                    return out;
                }
            },
        }
    }
    for c in &spec.containers {
        let image = c.image.clone().unwrap_or_default();
        match seen.instances.get(&c.name) {
            None => out.push(Action::Start {
                name: c.name.clone(),
                attempt: 0,
            }),
            Some(i) if running(&c.name) && i.image != image => {
                // The image changed (the one field of a running pod that may): restart.
                out.push(Action::Stop {
                    name: c.name.clone(),
                    grace: pod_grace(pod, None),
                });
            }
            Some(
                i @ Instance {
                    state: InstanceState::Running,
                    failed_probe: Some(_),
                    ..
                },
            ) => out.extend(probe_kill(pod, c, i, policy)),
            Some(Instance {
                state: InstanceState::Running,
                ..
            }) => {}
            Some(i) => {
                let InstanceState::Exited { code, ago, ran } = i.state else {
                    unreachable!()
                };
                if should_restart(policy, code) {
                    out.push(restart(pod, &c.name, i.attempt + 1, ago, ran));
                }
            }
        }
    }
    out
}

/// The Kill of a running instance `i` of container `c` whose liveness or startup probe
/// failed for good (None if none did): with the probe's own grace period, else the pod's,
/// and Kubernetes' words for the Killing event.
fn probe_kill(
    pod: &Pod,
    c: &k8s_openapi::api::core::v1::Container,
    i: &Instance,
    policy: &str,
) -> Option<Action> {
    let kind = i.failed_probe?;
    let probe = if kind == "startup" {
        c.startup_probe.as_ref()
    } else {
        c.liveness_probe.as_ref()
    };
    let grace = pod_grace(pod, probe.and_then(|p| p.termination_grace_period_seconds));
    let mut message = format!("Container {} failed {kind} probe", c.name);
    if policy != "Never" {
        message.push_str(", will be restarted");
    }
    Some(Action::Kill {
        name: c.name.clone(),
        grace,
        message,
    })
}

fn restart(pod: &Pod, name: &str, attempt: u32, ago: Duration, ran: Duration) -> Action {
    let wait = back_off(attempt, ran);
    if ago >= wait {
        return Action::Start {
            name: name.into(),
            attempt,
        };
    }
    // Kubernetes' words: `kubectl describe` and scripts match on them.
    let pod_desc = crate::lifecycle::pod_desc(pod);
    Action::BackOff {
        name: name.into(),
        attempt,
        remaining: wait - ago,
        waiting: Waiting {
            reason: "CrashLoopBackOff".into(),
            message: format!(
                "back-off {} restarting failed container={name} pod={pod_desc}",
                go_duration(wait)
            ),
        },
        event: format!("Back-off restarting failed container {name} in pod {pod_desc}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(extra: serde_json::Value) -> Pod {
        let mut spec = json!({"containers": [{"name": "app", "image": "img:1"}, {"name": "side", "image": "img:1"}]});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "default", "uid": "u1"}, "spec": spec}),
        )
        .unwrap()
    }

    fn running(attempt: u32) -> Instance {
        Instance {
            attempt,
            state: InstanceState::Running,
            image: "img:1".into(),
            failed_probe: None,
            started: true,
        }
    }

    fn exited(attempt: u32, code: i32, ago: u64) -> Instance {
        Instance {
            attempt,
            state: InstanceState::Exited {
                code,
                ago: Duration::from_secs(ago),
                ran: Duration::from_secs(1),
            },
            image: "img:1".into(),
            failed_probe: None,
            started: true,
        }
    }

    fn seen(items: &[(&str, Instance)]) -> Observed {
        Observed {
            sandbox_ready: true,
            instances: items
                .iter()
                .map(|(n, i)| (n.to_string(), i.clone()))
                .collect(),
        }
    }

    /// A worker that has tried nothing yet.
    const NOTHING_TRIED: History = History {
        sandbox_failures: 0,
        since_sandbox_failure: Duration::ZERO,
        deadline_exceeded: false,
        deletion_left: None,
    };

    /// Container `n` of pod `p` waits `remaining` of a `total` back-off before restart `a`.
    fn backing_off(n: &str, a: u32, total: &str, remaining: u64) -> Action {
        Action::BackOff {
            name: n.into(),
            attempt: a,
            remaining: Duration::from_secs(remaining),
            waiting: Waiting {
                reason: "CrashLoopBackOff".into(),
                message: format!(
                    "back-off {total} restarting failed container={n} pod=p_default(u1)"
                ),
            },
            event: format!("Back-off restarting failed container {n} in pod p_default(u1)"),
        }
    }

    fn start(n: &str, a: u32) -> Action {
        Action::Start {
            name: n.into(),
            attempt: a,
        }
    }

    #[test]
    fn a_new_pod_gets_a_sandbox_then_its_containers() {
        let p = pod(json!({}));
        assert_eq!(
            plan(&p, &Observed::default(), &NOTHING_TRIED),
            [Action::CreateSandbox]
        );
        assert_eq!(
            plan(&p, &seen(&[]), &NOTHING_TRIED),
            [start("app", 0), start("side", 0)]
        );
        assert_eq!(
            plan(
                &p,
                &seen(&[("app", running(0)), ("side", running(0))]),
                &NOTHING_TRIED
            ),
            []
        );
    }

    #[test]
    fn restart_policies_and_back_off() {
        let always = pod(json!({}));
        let on_failure = pod(json!({"restartPolicy": "OnFailure"}));
        let never = pod(json!({"restartPolicy": "Never"}));
        let s = |a: Instance| seen(&[("app", a), ("side", running(0))]);
        // The first crash restarts at once; then the back-off grows: 10, 20, 40 … 300 s.
        assert_eq!(
            plan(&always, &s(exited(0, 1, 0)), &NOTHING_TRIED),
            [start("app", 1)]
        );
        assert_eq!(
            plan(&always, &s(exited(1, 1, 3)), &NOTHING_TRIED),
            [backing_off("app", 2, "10s", 7)]
        );
        assert_eq!(
            plan(&always, &s(exited(1, 1, 10)), &NOTHING_TRIED),
            [start("app", 2)]
        );
        assert_eq!(
            plan(&always, &s(exited(2, 1, 5)), &NOTHING_TRIED),
            [backing_off("app", 3, "20s", 15)]
        );
        assert_eq!(
            back_off(9, Duration::from_secs(1)),
            Duration::from_secs(300)
        );
        // A container that ran 10 minutes starts over without waiting.
        assert_eq!(back_off(7, Duration::from_secs(600)), Duration::ZERO);
        // Exit 0: Always restarts, OnFailure and Never do not.
        assert_eq!(
            plan(&always, &s(exited(0, 0, 0)), &NOTHING_TRIED),
            [start("app", 1)]
        );
        assert_eq!(plan(&on_failure, &s(exited(0, 0, 99)), &NOTHING_TRIED), []);
        assert_eq!(
            plan(&on_failure, &s(exited(0, 2, 99)), &NOTHING_TRIED),
            [start("app", 1)]
        );
        assert_eq!(plan(&never, &s(exited(0, 2, 99)), &NOTHING_TRIED), []);
    }

    #[test]
    fn init_containers_run_in_order_first() {
        let p = pod(
            json!({"initContainers": [{"name": "i1", "image": "img:1"}, {"name": "i2", "image": "img:1"}]}),
        );
        assert_eq!(plan(&p, &seen(&[]), &NOTHING_TRIED), [start("i1", 0)]);
        assert_eq!(plan(&p, &seen(&[("i1", running(0))]), &NOTHING_TRIED), []);
        assert_eq!(
            plan(&p, &seen(&[("i1", exited(0, 0, 1))]), &NOTHING_TRIED),
            [start("i2", 0)]
        );
        assert_eq!(
            plan(
                &p,
                &seen(&[("i1", exited(0, 0, 1)), ("i2", exited(0, 0, 1))]),
                &NOTHING_TRIED
            ),
            [start("app", 0), start("side", 0)]
        );
        // A failed init container retries (with back-off) unless the policy is Never.
        assert_eq!(
            plan(&p, &seen(&[("i1", exited(0, 1, 60))]), &NOTHING_TRIED),
            [start("i1", 1)]
        );
        let never = pod(
            json!({"restartPolicy": "Never", "initContainers": [{"name": "i1", "image": "img:1"}]}),
        );
        assert_eq!(
            plan(&never, &seen(&[("i1", exited(0, 1, 60))]), &NOTHING_TRIED),
            []
        );
    }

    #[test]
    fn past_its_active_deadline_a_pod_stops_for_good() {
        let p = pod(json!({"terminationGracePeriodSeconds": 2, "activeDeadlineSeconds": 10}));
        let past = History {
            deadline_exceeded: true,
            ..NOTHING_TRIED
        };
        let two = Duration::from_secs(2);
        assert_eq!(
            plan(
                &p,
                &seen(&[("app", running(0)), ("side", exited(0, 1, 0))]),
                &past
            ),
            [Action::Stop {
                name: "app".into(),
                grace: two
            }]
        );
        assert_eq!(
            plan(&p, &seen(&[("app", exited(0, 143, 0))]), &past),
            [Action::ReleaseNetwork]
        );
        assert_eq!(plan(&p, &Observed::default(), &past), []);
        let mut started: Pod = p.clone();
        let at = k8s_openapi::jiff::Timestamp::from_second(1_000_000).unwrap();
        started.status = Some(k8s_openapi::api::core::v1::PodStatus {
            start_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at)),
            ..Default::default()
        });
        let later = |s: i64| k8s_openapi::jiff::Timestamp::from_second(1_000_000 + s).unwrap();
        assert_eq!(
            deadline_left(&started, later(4)),
            Some(Duration::from_secs(6))
        );
        assert_eq!(deadline_left(&started, later(11)), Some(Duration::ZERO));
        assert_eq!(deadline_left(&p, later(11)), None, "not started yet");
    }

    #[test]
    fn a_failed_liveness_or_startup_probe_kills_with_the_probes_grace() {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {
            "terminationGracePeriodSeconds": 20,
            "containers": [{"name": "app", "image": "img:1",
                "livenessProbe": {"exec": {"command": ["false"]}, "terminationGracePeriodSeconds": 3}},
                {"name": "side", "image": "img:1"}]}}))
        .unwrap();
        let mut app = running(0);
        app.failed_probe = Some("liveness");
        let mut side = running(0);
        side.failed_probe = Some("startup");
        assert_eq!(
            plan(&p, &seen(&[("app", app), ("side", side)]), &NOTHING_TRIED),
            [
                Action::Kill {
                    name: "app".into(),
                    grace: Duration::from_secs(3),
                    message: "Container app failed liveness probe, will be restarted".into(),
                },
                Action::Kill {
                    name: "side".into(),
                    grace: Duration::from_secs(20),
                    message: "Container side failed startup probe, will be restarted".into(),
                }
            ]
        );
    }

    #[test]
    fn deletion_stops_then_tears_down_then_finalizes() {
        let mut p = pod(json!({"terminationGracePeriodSeconds": 30}));
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        ));
        p.metadata.deletion_grace_period_seconds = Some(5);
        let five = Duration::from_secs(5);
        assert_eq!(
            plan(
                &p,
                &seen(&[("app", running(0)), ("side", exited(0, 0, 1))]),
                &NOTHING_TRIED
            ),
            [Action::Stop {
                name: "app".into(),
                grace: five
            }]
        );
        assert_eq!(
            plan(&p, &seen(&[("app", exited(0, 143, 0))]), &NOTHING_TRIED),
            [Action::RemoveSandbox, Action::Finalize]
        );
        assert_eq!(
            plan(&p, &Observed::default(), &NOTHING_TRIED),
            [Action::Finalize]
        );
    }

    #[test]
    fn a_new_image_restarts_the_container_and_a_lost_sandbox_is_remade() {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app", "image": "img:2"}]}})).unwrap();
        assert_eq!(
            plan(&p, &seen(&[("app", running(0))]), &NOTHING_TRIED),
            [Action::Stop {
                name: "app".into(),
                grace: Duration::from_secs(30)
            }]
        );
        let lost = Observed {
            sandbox_ready: false,
            ..seen(&[("app", running(0))])
        };
        assert_eq!(
            plan(&p, &lost, &NOTHING_TRIED),
            [Action::Stop {
                name: "app".into(),
                grace: Duration::ZERO
            }]
        );
        let gone = Observed {
            sandbox_ready: false,
            ..seen(&[("app", exited(0, 137, 0))])
        };
        assert_eq!(plan(&p, &gone, &NOTHING_TRIED), [Action::CreateSandbox]);
    }

    fn deleted(mut p: Pod) -> Pod {
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        ));
        p
    }

    #[test]
    fn a_failing_sandbox_is_retried_2s_doubling_to_a_minute() {
        let p = pod(json!({}));
        let wait = |s: u64| Action::SandboxBackOff {
            remaining: Duration::from_secs(s),
        };
        // (failures in a row, seconds since the last) → the worker's next step.
        let cases = [
            (0, 0, Action::CreateSandbox),
            (1, 0, wait(2)),
            (1, 1, wait(1)),
            (1, 2, Action::CreateSandbox),
            (2, 3, wait(1)),
            (3, 0, wait(8)),
            (4, 0, wait(16)),
            (5, 0, wait(32)),
            (6, 0, wait(60)),
            (20, 59, wait(1)),
            (20, 60, Action::CreateSandbox),
        ];
        for (failures, ago, want) in cases {
            let past = History {
                sandbox_failures: failures,
                since_sandbox_failure: Duration::from_secs(ago),
                ..NOTHING_TRIED
            };
            assert_eq!(
                plan(&p, &Observed::default(), &past),
                [want],
                "{failures} failures, the last {ago}s ago"
            );
        }
        // The back-off holds back only a new sandbox: not a ready pod, a lost sandbox's
        // stops or a deletion.
        let past = History {
            sandbox_failures: 3,
            ..NOTHING_TRIED
        };
        let ready = seen(&[("app", running(0)), ("side", running(0))]);
        assert_eq!(plan(&p, &ready, &past), []);
        let lost = Observed {
            sandbox_ready: false,
            ..seen(&[("app", running(0))])
        };
        assert_eq!(
            plan(&p, &lost, &past),
            [Action::Stop {
                name: "app".into(),
                grace: Duration::ZERO
            }]
        );
        assert_eq!(
            plan(&deleted(p), &Observed::default(), &past),
            [Action::Finalize]
        );
    }

    #[test]
    fn a_crash_loop_is_worded_as_kubernetes_does() {
        let p = pod(json!({}));
        let s = |attempt, ago| seen(&[("app", exited(attempt, 1, ago)), ("side", running(0))]);
        // (restarts so far, seconds since the exit) → the back-off shown and what remains.
        let cases = [
            (1, 0, backing_off("app", 2, "10s", 10)),
            (2, 19, backing_off("app", 3, "20s", 1)),
            (3, 0, backing_off("app", 4, "40s", 40)),
            (6, 100, backing_off("app", 7, "5m0s", 200)),
            (9, 0, backing_off("app", 10, "5m0s", 300)),
        ];
        for (attempt, ago, want) in cases {
            assert_eq!(
                plan(&p, &s(attempt, ago), &NOTHING_TRIED),
                [want],
                "restart {attempt}, {ago}s after the exit"
            );
        }
        // The words themselves (`kubectl describe` and scripts match on them).
        let [Action::BackOff { waiting, event, .. }] = &plan(&p, &s(1, 4), &NOTHING_TRIED)[..]
        else {
            panic!("no back-off")
        };
        assert_eq!(waiting.reason, "CrashLoopBackOff");
        assert_eq!(
            waiting.message,
            "back-off 10s restarting failed container=app pod=p_default(u1)"
        );
        assert_eq!(
            event,
            "Back-off restarting failed container app in pod p_default(u1)"
        );
        // A failing init container backs off in the same words.
        let init = pod(json!({"initContainers": [{"name": "i1", "image": "img:1"}]}));
        assert_eq!(
            plan(&init, &seen(&[("i1", exited(1, 1, 4))]), &NOTHING_TRIED),
            [backing_off("i1", 2, "10s", 6)]
        );
    }

    #[test]
    fn a_completed_pod_gives_its_network_back_and_gets_no_new_sandbox() {
        let phased = |phase: &str, policy: &str| {
            let mut p = pod(json!({"restartPolicy": policy}));
            p.status = Some(serde_json::from_value(json!({"phase": phase})).unwrap());
            p
        };
        let exited_all = seen(&[("app", exited(0, 0, 1)), ("side", exited(0, 1, 1))]);
        let succeeded_all = seen(&[("app", exited(0, 0, 1)), ("side", exited(0, 0, 1))]);
        let released = Observed {
            sandbox_ready: false,
            ..exited_all.clone()
        };
        let one_runs = seen(&[("app", running(0)), ("side", exited(0, 0, 1))]);
        // (phase, restart policy, runtime) → actions.
        let cases = [
            (
                "Succeeded",
                "Never",
                &exited_all,
                vec![Action::ReleaseNetwork],
            ),
            ("Failed", "Never", &exited_all, vec![Action::ReleaseNetwork]),
            (
                "Succeeded",
                "OnFailure",
                &succeeded_all,
                vec![Action::ReleaseNetwork],
            ),
            // Given back: nothing more, whatever the policy says.
            ("Succeeded", "Never", &released, vec![]),
            ("Failed", "Always", &released, vec![]),
            // A completed pod's containers stop (as Kubernetes terminates a pod in a final
            // phase), then the network goes.
            (
                "Succeeded",
                "Never",
                &one_runs,
                vec![Action::Stop {
                    name: "app".into(),
                    grace: Duration::from_secs(30),
                }],
            ),
            // Not done: the network stays.
            ("Running", "Never", &exited_all, vec![]),
            ("Running", "Always", &released, vec![Action::CreateSandbox]),
        ];
        for (phase, policy, runtime, want) in cases {
            assert_eq!(
                plan(&phased(phase, policy), runtime, &NOTHING_TRIED),
                want,
                "{phase} with restartPolicy {policy}"
            );
        }
        // Deleting a completed pod tears it down as any other.
        let done = deleted(phased("Succeeded", "Never"));
        assert_eq!(
            plan(&done, &exited_all, &NOTHING_TRIED),
            [Action::RemoveSandbox, Action::Finalize]
        );
        assert_eq!(plan(&done, &released, &NOTHING_TRIED), [Action::Finalize]);
    }

    fn sidecar_pod(policy: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {
                "restartPolicy": policy,
                "terminationGracePeriodSeconds": 30,
                "initContainers": [
                    {"name": "log", "image": "img:1", "restartPolicy": "Always"},
                    {"name": "setup", "image": "img:1"},
                    {"name": "proxy", "image": "img:1", "restartPolicy": "Always"}
                ],
                "containers": [{"name": "app", "image": "img:1"}]
            }
        }))
        .unwrap()
    }

    fn not_started(attempt: u32) -> Instance {
        Instance {
            started: false,
            ..running(attempt)
        }
    }

    #[test]
    fn sidecars_start_in_order_and_hold_what_follows_until_started() {
        let p = sidecar_pod("Never");
        assert_eq!(plan(&p, &seen(&[]), &NOTHING_TRIED), [start("log", 0)]);
        // Running but its startup probe has not succeeded: the next waits.
        assert_eq!(
            plan(&p, &seen(&[("log", not_started(0))]), &NOTHING_TRIED),
            []
        );
        assert_eq!(
            plan(&p, &seen(&[("log", running(0))]), &NOTHING_TRIED),
            [start("setup", 0)]
        );
        assert_eq!(
            plan(
                &p,
                &seen(&[("log", running(0)), ("setup", exited(0, 0, 1))]),
                &NOTHING_TRIED
            ),
            [start("proxy", 0)]
        );
        assert_eq!(
            plan(
                &p,
                &seen(&[
                    ("log", running(0)),
                    ("setup", exited(0, 0, 1)),
                    ("proxy", running(0))
                ]),
                &NOTHING_TRIED
            ),
            [start("app", 0)]
        );
        // A sidecar that ends during initialization restarts (whatever the pod's policy) and
        // holds what follows.
        assert_eq!(
            plan(&p, &seen(&[("log", exited(0, 1, 60))]), &NOTHING_TRIED),
            [start("log", 1)]
        );
    }

    #[test]
    fn once_initialized_sidecars_restart_on_their_own() {
        let p = sidecar_pod("Never");
        let s = seen(&[
            ("log", exited(0, 0, 60)),
            ("setup", exited(0, 0, 1)),
            ("proxy", running(0)),
            ("app", running(0)),
        ]);
        assert_eq!(plan(&p, &s, &NOTHING_TRIED), [start("log", 1)]);
        // With its back-off, and a failed liveness probe kills it as an app container's.
        let mut s = seen(&[
            ("log", exited(1, 1, 3)),
            ("setup", exited(0, 0, 1)),
            ("proxy", running(0)),
            ("app", running(0)),
        ]);
        s.instances.get_mut("proxy").unwrap().failed_probe = Some("liveness");
        assert_eq!(
            plan(&p, &s, &NOTHING_TRIED),
            [
                Action::BackOff {
                    name: "log".into(),
                    attempt: 2,
                    remaining: Duration::from_secs(7),
                    waiting: Waiting {
                        reason: "CrashLoopBackOff".into(),
                        message: "back-off 10s restarting failed container=log pod=p_default(u1)"
                            .into()
                    },
                    event: "Back-off restarting failed container log in pod p_default(u1)".into(),
                },
                Action::Kill {
                    name: "proxy".into(),
                    grace: Duration::from_secs(30),
                    message: "Container proxy failed liveness probe, will be restarted".into()
                }
            ]
        );
    }

    #[test]
    fn sidecars_stop_after_the_app_last_declared_first() {
        let mut p = sidecar_pod("Never");
        let all = seen(&[
            ("log", running(0)),
            ("setup", exited(0, 0, 1)),
            ("proxy", running(0)),
            ("app", running(0)),
        ]);
        let stop = |n: &str, secs: u64| Action::Stop {
            name: n.into(),
            grace: Duration::from_secs(secs),
        };
        // Deleted: the app first, then the sidecars one by one with what is left.
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        ));
        let past = History {
            deletion_left: Some(Duration::from_secs(12)),
            ..NOTHING_TRIED
        };
        assert_eq!(plan(&p, &all, &past), [stop("app", 12)]);
        let mut app_done = all.clone();
        app_done.instances.insert("app".into(), exited(0, 143, 0));
        assert_eq!(plan(&p, &app_done, &past), [stop("proxy", 12)]);
        app_done.instances.insert("proxy".into(), exited(0, 143, 0));
        assert_eq!(plan(&p, &app_done, &past), [stop("log", 12)]);
        // Completed (the app finished for good): the sidecars stop the same way, then the
        // network goes back.
        let mut done = sidecar_pod("Never");
        done.status = Some(serde_json::from_value(json!({"phase": "Succeeded"})).unwrap());
        let mut s = all.clone();
        s.instances.insert("app".into(), exited(0, 0, 0));
        assert_eq!(plan(&done, &s, &NOTHING_TRIED), [stop("proxy", 30)]);
        s.instances.insert("proxy".into(), exited(0, 143, 0));
        s.instances.insert("log".into(), exited(0, 143, 0));
        assert_eq!(plan(&done, &s, &NOTHING_TRIED), [Action::ReleaseNetwork]);
    }

    #[test]
    fn ephemeral_containers_start_at_once_and_never_restart() {
        let mut p = sidecar_pod("Always");
        p.spec.as_mut().unwrap().ephemeral_containers = Some(vec![serde_json::from_value(
            json!({"name": "dbg", "image": "img:1", "targetContainerName": "app"}),
        )
        .unwrap()]);
        // Even while the pod initializes.
        assert_eq!(
            plan(&p, &seen(&[("log", not_started(0))]), &NOTHING_TRIED),
            [start("dbg", 0)]
        );
        assert_eq!(
            plan(
                &p,
                &seen(&[("log", not_started(0)), ("dbg", exited(0, 1, 60))]),
                &NOTHING_TRIED
            ),
            []
        );
        assert_eq!(
            find_container(&p, "dbg").unwrap().image.as_deref(),
            Some("img:1")
        );
    }
}
