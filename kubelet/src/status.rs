//! The pod's status as the kubelet reports it: a pure function of the pod, what the runtime
//! has and why containers wait (tested by tables). The pod worker is its only writer.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{json, Value};

use crate::prober::Health;
use crate::runtime::plan::is_sidecar;
use crate::runtime::pods::{InstanceStatus, PodState, LOST_EXIT_CODE};

/// Why a container waits, as the worker last found (`ErrImagePull`, `CrashLoopBackOff`…).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

/// Everything the status depends on besides the pod.
pub struct Inputs<'a> {
    pub state: &'a PodState,
    pub waiting: &'a BTreeMap<String, Waiting>,
    /// The probes' standing of running containers, by name (absent: no probes, healthy).
    pub health: &'a BTreeMap<String, Health>,
    /// The pod has been active longer than its `activeDeadlineSeconds`: it failed.
    pub deadline_exceeded: bool,
    pub host_ip: &'a str,
    /// Now, as an RFC 3339 timestamp (seconds).
    pub now: &'a str,
}

fn should_restart(policy: &str, code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => code != 0,
        _ => true,
    }
}

/// Kubernetes shows times to the second.
fn seconds(t: &str) -> String {
    t.parse::<jiff::Timestamp>()
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| t.to_string())
}

fn terminated(i: &InstanceStatus) -> Value {
    let e = i.exit.as_ref().expect("an exited instance");
    let reason = if e.oom_killed {
        "OOMKilled"
    } else if e.exit_code == LOST_EXIT_CODE && e.signal.is_none() && e.finished_at.is_empty() {
        "ContainerStatusUnknown"
    } else if e.exit_code == 0 {
        "Completed"
    } else {
        "Error"
    };
    let mut t = json!({
        "exitCode": e.exit_code,
        "reason": reason,
        "startedAt": seconds(&e.started_at),
        "finishedAt": seconds(&e.finished_at),
        "containerID": format!("libcontainer://{}", i.record.id),
    });
    if let Some(s) = e.signal {
        t["signal"] = json!(s);
    }
    if let Some(m) = i.message.as_deref().filter(|m| !m.is_empty()) {
        t["message"] = json!(m);
    }
    json!({"terminated": t})
}

/// One entry of containerStatuses / initContainerStatuses (`init`: an init container that
/// runs to completion; a sidecar is not one).
fn container_status(
    c: &Container,
    policy: &str,
    init: bool,
    initializing: bool,
    inp: &Inputs<'_>,
) -> Value {
    let image = c.image.clone().unwrap_or_default();
    let list = inp.state.containers.get(&c.name);
    let latest = list.and_then(|l| l.last());
    let previous = list.and_then(|l| l.iter().rev().nth(1));
    let mut s = json!({
        "name": c.name,
        "image": image,
        "imageID": "",
        "ready": false,
        "restartCount": latest.map(|i| i.record.attempt).unwrap_or(0),
        "started": false,
        "lastState": {},
    });
    if let Some(i) = latest {
        s["imageID"] = json!(i.record.image_ref);
        s["image"] = json!(i.record.image);
        s["containerID"] = json!(format!("libcontainer://{}", i.record.id));
    }
    // An instance that ended for good shows as terminated, whatever its last wait said
    // (a failed postStart hook of a container that is not restarted).
    let restarts = |i: &InstanceStatus| {
        let code = i.exit.as_ref().map(|e| e.exit_code).unwrap_or(0);
        should_restart(policy, code) && !(init && code == 0)
    };
    let waiting = inp
        .waiting
        .get(&c.name)
        .filter(|_| latest.is_none_or(|i| i.exit.is_none() || restarts(i)));
    match (latest, waiting) {
        (Some(i), _) if i.exit.is_none() => {
            s["state"] = json!({"running": {"startedAt": seconds(i.record.started_at.as_deref().unwrap_or(inp.now))}});
            let health = inp.health.get(&c.name).copied().unwrap_or_default();
            s["started"] = json!(health.started);
            s["ready"] = json!(!init && health.ready);
            if let Some(p) = previous {
                s["lastState"] = terminated(p);
            }
        }
        (latest, Some(w)) => {
            s["state"] = json!({"waiting": {"reason": w.reason, "message": w.message}});
            if let Some(l) = latest {
                s["lastState"] = terminated(l);
            }
        }
        (Some(i), None) => {
            if restarts(i) {
                // About to be restarted.
                s["state"] = json!({"waiting": {"reason": "ContainerCreating"}});
                s["lastState"] = terminated(i);
            } else {
                s["state"] = terminated(i);
                if let Some(p) = previous {
                    s["lastState"] = terminated(p);
                }
            }
        }
        (None, None) => {
            let reason = if initializing {
                "PodInitializing"
            } else {
                "ContainerCreating"
            };
            s["state"] = json!({"waiting": {"reason": reason}});
        }
    }
    s
}

fn condition(kind: &str, ok: bool, reason: Option<&str>, old: Option<&Value>, now: &str) -> Value {
    let status = if ok { "True" } else { "False" };
    let since = old
        .filter(|o| o["status"] == status)
        .and_then(|o| o["lastTransitionTime"].as_str())
        .unwrap_or(now);
    let mut c =
        json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
    if let Some(r) = reason.filter(|_| !ok) {
        c["reason"] = json!(r);
    }
    c
}

pub fn qos_class(pod: &Pod) -> &'static str {
    let containers: Vec<&Container> = pod
        .spec
        .iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .collect();
    let (mut any, mut all_guaranteed) = (false, true);
    for c in &containers {
        let r = c.resources.as_ref();
        let req = r.and_then(|r| r.requests.as_ref());
        let lim = r.and_then(|r| r.limits.as_ref());
        if req.is_some_and(|m| !m.is_empty()) || lim.is_some_and(|m| !m.is_empty()) {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let l = lim.and_then(|m| m.get(res));
            let q = req.and_then(|m| m.get(res)).or(l);
            if l.is_none() || q != l {
                all_guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if all_guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Kubernetes' words for a pod past its `activeDeadlineSeconds` (status and event).
pub const DEADLINE_MESSAGE: &str = "Pod was active on the node longer than the specified deadline";

/// The pod's whole status.
pub fn pod_status(pod: &Pod, inp: &Inputs<'_>) -> Value {
    let spec = pod.spec.clone().unwrap_or_default();
    // Past its deadline nothing restarts: stopped containers show as terminated.
    let policy = if inp.deadline_exceeded {
        "Never"
    } else {
        spec.restart_policy.as_deref().unwrap_or("Always")
    };
    let old = pod.status.as_ref();
    let old_conditions: Vec<Value> = old
        .and_then(|s| s.conditions.as_ref())
        .map(|c| {
            c.iter()
                .filter_map(|c| serde_json::to_value(c).ok())
                .collect()
        })
        .unwrap_or_default();
    let old_cond = |t: &str| old_conditions.iter().find(|c| c["type"] == t);

    let exit_of = |name: &str| {
        inp.state
            .latest(name)
            .and_then(|i| i.exit.as_ref())
            .map(|e| e.exit_code)
    };
    // A sidecar counts once it runs and has started; a regular init container once it
    // exited 0; and a pod whose app containers were made is initialized for good.
    let sidecar_started = |c: &Container| {
        inp.state.latest(&c.name).is_some_and(|i| i.exit.is_none())
            && inp.health.get(&c.name).copied().unwrap_or_default().started
    };
    let initialized = spec
        .containers
        .iter()
        .any(|c| inp.state.latest(&c.name).is_some())
        || spec.init_containers.iter().flatten().all(|c| {
            if is_sidecar(c) {
                sidecar_started(c)
            } else {
                exit_of(&c.name) == Some(0)
            }
        });
    let init_failed_for_good = policy == "Never"
        && spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| !is_sidecar(c))
            .any(|c| exit_of(&c.name).is_some_and(|code| code != 0));
    // A container finished for good: exited and its policy does not restart it.
    let finished = |c: &Container| {
        exit_of(&c.name).is_some_and(|code| !should_restart(policy, code))
            && inp.state.latest(&c.name).is_some_and(|i| i.exit.is_some())
    };
    let mains_finished = !spec.containers.is_empty() && spec.containers.iter().all(finished);
    // Sidecars restart whatever the pod's policy, until the pod is done.
    let sidecar_policy = if mains_finished || init_failed_for_good || inp.deadline_exceeded {
        "Never"
    } else {
        "Always"
    };
    let inits: Vec<Value> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| {
            if is_sidecar(c) {
                container_status(c, sidecar_policy, false, false, inp)
            } else {
                container_status(c, policy, true, false, inp)
            }
        })
        .collect();
    let mains: Vec<Value> = spec
        .containers
        .iter()
        .map(|c| container_status(c, policy, false, !initialized, inp))
        .collect();

    let sidecars_ready = spec
        .init_containers
        .iter()
        .flatten()
        .zip(&inits)
        .all(|(c, s)| !is_sidecar(c) || s["ready"] == true);
    let ready = initialized && sidecars_ready && mains.iter().all(|s| s["ready"] == true);
    let phase = if init_failed_for_good || inp.deadline_exceeded {
        "Failed"
    } else if mains_finished {
        if spec.containers.iter().all(|c| exit_of(&c.name) == Some(0)) {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if initialized
        && spec
            .containers
            .iter()
            .any(|c| inp.state.latest(&c.name).is_some())
    {
        "Running"
    } else {
        "Pending"
    };

    let now = inp.now;
    let scheduled = old_cond("PodScheduled")
        .cloned()
        .unwrap_or_else(|| condition("PodScheduled", true, None, None, now));
    let not_ready_reason = if phase == "Succeeded" || phase == "Failed" {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let conditions = json!([
        condition(
            "PodReadyToStartContainers",
            inp.state.sandbox_ready,
            None,
            old_cond("PodReadyToStartContainers"),
            now
        ),
        condition(
            "Initialized",
            initialized,
            Some("ContainersNotInitialized"),
            old_cond("Initialized"),
            now
        ),
        condition(
            "Ready",
            ready,
            Some(not_ready_reason),
            old_cond("Ready"),
            now
        ),
        condition(
            "ContainersReady",
            ready,
            Some(not_ready_reason),
            old_cond("ContainersReady"),
            now
        ),
        scheduled,
    ]);
    let start_time = old
        .and_then(|s| s.start_time.as_ref())
        .map(|t| json!(t))
        .unwrap_or_else(|| json!(now));
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": inp.host_ip,
        "hostIPs": [{"ip": inp.host_ip}],
        "startTime": start_time,
        "containerStatuses": mains,
        "qosClass": qos_class(pod),
    });
    if !inits.is_empty() {
        status["initContainerStatuses"] = json!(inits);
    }
    // Ephemeral containers never restart.
    let ephemeral: Vec<Value> = crate::runtime::plan::ephemeral_containers(pod)
        .iter()
        .map(|(c, _)| container_status(c, "Never", false, false, inp))
        .collect();
    if !ephemeral.is_empty() {
        status["ephemeralContainerStatuses"] = json!(ephemeral);
    }
    if inp.deadline_exceeded {
        status["reason"] = json!("DeadlineExceeded");
        status["message"] = json!(DEADLINE_MESSAGE);
    }
    if let Some(ip) = inp
        .state
        .pod_ip
        .as_ref()
        .filter(|_| inp.state.sandbox_ready)
    {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::pods::ContainerRecord;
    use crate::runtime::shim::ExitRecord;

    const NOW: &str = "2026-11-25T10:00:00Z";

    fn pod(policy: &str, init: bool) -> Pod {
        let mut spec = json!({
            "restartPolicy": policy,
            "containers": [{"name": "app", "image": "img:1"}],
        });
        if init {
            spec["initContainers"] = json!([{"name": "setup", "image": "img:1"}]);
        }
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": spec,
            "status": {"conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-25T09:00:00Z"}]},
        }))
        .unwrap()
    }

    fn instance(name: &str, attempt: u32, exit: Option<i32>) -> InstanceStatus {
        InstanceStatus {
            record: ContainerRecord {
                id: format!("{name}{attempt}"),
                name: name.into(),
                attempt,
                image: "img:1".into(),
                image_id: "sha256:c".into(),
                image_ref: "docker.io/library/img@sha256:m".into(),
                stop_signal: String::new(),
                pid: Some(10),
                pid_start: Some(1),
                shim_pid: Some(9),
                shim_start: Some(1),
                started_at: Some("2026-11-25T09:59:00.123456789Z".into()),
                termination_log: None,
                fallback_to_logs: false,
                log: None,
            },
            exit: exit.map(|code| ExitRecord {
                exit_code: code,
                signal: None,
                started_at: "2026-11-25T09:59:00.123Z".into(),
                finished_at: "2026-11-25T09:59:30.5Z".into(),
                oom_killed: false,
            }),
            message: None,
        }
    }

    fn state(items: Vec<InstanceStatus>) -> PodState {
        let mut s = PodState {
            sandbox_ready: true,
            pod_ip: Some("10.244.0.7".into()),
            ..Default::default()
        };
        for i in items {
            s.containers
                .entry(i.record.name.clone())
                .or_default()
                .push(i);
        }
        s
    }

    fn status(pod: &Pod, st: &PodState, waiting: &[(&str, &str)]) -> Value {
        let waiting = waiting
            .iter()
            .map(|(n, r)| {
                (
                    n.to_string(),
                    Waiting {
                        reason: r.to_string(),
                        message: "m".into(),
                    },
                )
            })
            .collect();
        pod_status(
            pod,
            &Inputs {
                state: st,
                waiting: &waiting,
                health: &BTreeMap::new(),
                deadline_exceeded: false,
                host_ip: "172.30.0.2",
                now: NOW,
            },
        )
    }

    fn cond(s: &Value, t: &str) -> String {
        s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .unwrap()["status"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn a_pod_without_a_sandbox_is_pending_and_creating() {
        let p = pod("Always", false);
        let s = status(&p, &PodState::default(), &[]);
        assert_eq!(s["phase"], "Pending");
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ContainerCreating"
        );
        assert_eq!(cond(&s, "PodReadyToStartContainers"), "False");
        assert!(s.get("podIP").is_none());
        // The scheduler's condition is kept as it was.
        let sched = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "PodScheduled")
            .unwrap();
        assert_eq!(sched["lastTransitionTime"], "2026-11-25T09:00:00Z");
    }

    #[test]
    fn a_running_container_makes_the_pod_running_and_ready() {
        let p = pod("Always", false);
        let s = status(&p, &state(vec![instance("app", 0, None)]), &[]);
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.244.0.7");
        assert_eq!(s["hostIP"], "172.30.0.2");
        let c = &s["containerStatuses"][0];
        assert_eq!(c["ready"], true);
        assert_eq!(c["started"], true);
        assert_eq!(c["containerID"], "libcontainer://app0");
        assert_eq!(c["imageID"], "docker.io/library/img@sha256:m");
        assert_eq!(c["state"]["running"]["startedAt"], "2026-11-25T09:59:00Z");
        assert_eq!(cond(&s, "Ready"), "True");
        assert_eq!(cond(&s, "ContainersReady"), "True");
        assert_eq!(s["qosClass"], "BestEffort");
    }

    #[test]
    fn a_container_not_yet_ready_or_started_by_its_probes_keeps_the_pod_unready() {
        let p = pod("Always", false);
        let st = state(vec![instance("app", 0, None)]);
        for (health, ready, started) in [
            (
                Health {
                    started: true,
                    ready: false,
                    failed: None,
                },
                false,
                true,
            ),
            (
                Health {
                    started: false,
                    ready: false,
                    failed: None,
                },
                false,
                false,
            ),
        ] {
            let s = pod_status(
                &p,
                &Inputs {
                    state: &st,
                    waiting: &BTreeMap::new(),
                    health: &BTreeMap::from([("app".to_string(), health)]),
                    deadline_exceeded: false,
                    host_ip: "172.30.0.2",
                    now: NOW,
                },
            );
            let c = &s["containerStatuses"][0];
            assert_eq!((c["ready"] == true, c["started"] == true), (ready, started));
            assert_eq!(s["phase"], "Running");
            assert_eq!(cond(&s, "Ready"), "False");
            assert_eq!(cond(&s, "ContainersReady"), "False");
        }
    }

    #[test]
    fn a_pod_past_its_deadline_failed_with_kubernetes_reason() {
        let p = pod("Always", false);
        let st = state(vec![instance("app", 0, Some(137))]);
        let s = pod_status(
            &p,
            &Inputs {
                state: &st,
                waiting: &BTreeMap::new(),
                health: &BTreeMap::new(),
                deadline_exceeded: true,
                host_ip: "172.30.0.2",
                now: NOW,
            },
        );
        assert_eq!(s["phase"], "Failed");
        assert_eq!(s["reason"], "DeadlineExceeded");
        assert_eq!(s["message"], DEADLINE_MESSAGE);
        assert_eq!(cond(&s, "Ready"), "False");
        let c = &s["containerStatuses"][0];
        assert_eq!(c["state"]["terminated"]["exitCode"], 137, "{c}");
    }

    #[test]
    fn a_crash_looping_container_waits_with_its_last_termination() {
        let p = pod("Always", false);
        let st = state(vec![
            instance("app", 0, Some(1)),
            instance("app", 1, Some(1)),
        ]);
        let s = status(&p, &st, &[("app", "CrashLoopBackOff")]);
        assert_eq!(s["phase"], "Running");
        let c = &s["containerStatuses"][0];
        assert_eq!(c["restartCount"], 1);
        assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(c["lastState"]["terminated"]["reason"], "Error");
        assert_eq!(cond(&s, "Ready"), "False");
    }

    #[test]
    fn restart_policies_decide_the_final_phase() {
        for (policy, code, phase) in [
            ("Never", 0, "Succeeded"),
            ("Never", 2, "Failed"),
            ("OnFailure", 0, "Succeeded"),
            ("OnFailure", 2, "Running"),
            ("Always", 0, "Running"),
        ] {
            let p = pod(policy, false);
            let s = status(&p, &state(vec![instance("app", 0, Some(code))]), &[]);
            assert_eq!(s["phase"], phase, "{policy} exit {code}");
            let c = &s["containerStatuses"][0];
            if phase == "Running" {
                assert_eq!(c["state"]["waiting"]["reason"], "ContainerCreating");
                assert_eq!(c["lastState"]["terminated"]["exitCode"], code);
            } else {
                assert_eq!(c["state"]["terminated"]["exitCode"], code);
                let reason = if code == 0 { "Completed" } else { "Error" };
                assert_eq!(c["state"]["terminated"]["reason"], reason);
                assert_eq!(cond(&s, "Ready"), "False");
            }
        }
    }

    #[test]
    fn oom_kills_are_reported_as_such() {
        let p = pod("Never", false);
        let mut i = instance("app", 0, Some(137));
        i.exit.as_mut().unwrap().oom_killed = true;
        i.exit.as_mut().unwrap().signal = Some(9);
        let s = status(&p, &state(vec![i]), &[]);
        let t = &s["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(t["reason"], "OOMKilled");
        assert_eq!(t["signal"], 9);
        assert_eq!(s["phase"], "Failed");
    }

    #[test]
    fn init_containers_gate_initialized_and_the_phase() {
        let p = pod("Always", true);
        let s = status(&p, &state(vec![instance("setup", 0, None)]), &[]);
        assert_eq!(s["phase"], "Pending");
        assert_eq!(cond(&s, "Initialized"), "False");
        assert_eq!(s["initContainerStatuses"][0]["ready"], false);
        let s = status(
            &p,
            &state(vec![
                instance("setup", 0, Some(0)),
                instance("app", 0, None),
            ]),
            &[],
        );
        assert_eq!(cond(&s, "Initialized"), "True");
        assert_eq!(s["phase"], "Running");
        assert_eq!(
            s["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        let never = pod("Never", true);
        let s = status(&never, &state(vec![instance("setup", 0, Some(1))]), &[]);
        assert_eq!(s["phase"], "Failed");
    }

    #[test]
    fn sidecars_gate_initialization_count_for_readiness_and_not_for_the_phase() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {
                "restartPolicy": "Never",
                "initContainers": [{"name": "log", "image": "img:1", "restartPolicy": "Always"}],
                "containers": [{"name": "app", "image": "img:1"}]
            }
        }))
        .unwrap();
        let with = |st: &PodState, log: Health| {
            pod_status(
                &p,
                &Inputs {
                    state: st,
                    waiting: &BTreeMap::new(),
                    health: &BTreeMap::from([("log".to_string(), log)]),
                    deadline_exceeded: false,
                    host_ip: "172.30.0.2",
                    now: NOW,
                },
            )
        };
        let unready = Health {
            started: true,
            ready: false,
            failed: None,
        };
        let not_started = Health {
            started: false,
            ..unready
        };
        // Running, not started: initialization waits.
        let st = state(vec![instance("log", 0, None)]);
        let s = with(&st, not_started);
        assert_eq!(cond(&s, "Initialized"), "False");
        assert_eq!(s["phase"], "Pending");
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "PodInitializing"
        );
        // Started: initialized; its readiness is the pod's too.
        let s = with(&st, unready);
        assert_eq!(cond(&s, "Initialized"), "True");
        let st = state(vec![instance("log", 0, None), instance("app", 0, None)]);
        let s = with(&st, unready);
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["initContainerStatuses"][0]["ready"], false);
        assert_eq!(s["initContainerStatuses"][0]["started"], true);
        assert_eq!(cond(&s, "Ready"), "False");
        let s = with(&st, Health::default());
        assert_eq!(s["initContainerStatuses"][0]["ready"], true);
        assert_eq!(cond(&s, "Ready"), "True");
        // A sidecar that ended restarts even with restartPolicy Never.
        let st = state(vec![instance("log", 0, Some(1)), instance("app", 0, None)]);
        let s = with(&st, Health::default());
        assert_eq!(
            s["initContainerStatuses"][0]["state"]["waiting"]["reason"],
            "ContainerCreating"
        );
        assert_eq!(s["phase"], "Running");
        // The app finished: the pod succeeded whatever the sidecar's exit.
        let st = state(vec![
            instance("log", 0, Some(143)),
            instance("app", 0, Some(0)),
        ]);
        let s = with(&st, Health::default());
        assert_eq!(s["phase"], "Succeeded");
        assert_eq!(
            s["initContainerStatuses"][0]["state"]["terminated"]["exitCode"],
            143
        );
    }

    #[test]
    fn a_termination_message_is_shown() {
        let p = pod("Never", false);
        let mut i = instance("app", 0, Some(1));
        i.message = Some("disk full\n".into());
        let s = status(&p, &state(vec![i]), &[]);
        assert_eq!(
            s["containerStatuses"][0]["state"]["terminated"]["message"],
            "disk full\n"
        );
        let mut i = instance("app", 0, Some(0));
        i.message = Some(String::new());
        let s = status(&p, &state(vec![i]), &[]);
        assert!(s["containerStatuses"][0]["state"]["terminated"]
            .get("message")
            .is_none());
    }

    #[test]
    fn image_waits_show_their_reason() {
        let p = pod("Always", false);
        let s = status(&p, &state(vec![]), &[("app", "ImagePullBackOff")]);
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ImagePullBackOff"
        );
        assert_eq!(s["phase"], "Pending");
    }

    #[test]
    fn transition_times_move_only_when_a_condition_changes() {
        let mut p = pod("Always", false);
        let s1 = status(&p, &state(vec![instance("app", 0, None)]), &[]);
        p.status = serde_json::from_value(s1.clone()).unwrap();
        let mut later = s1.clone();
        let st = state(vec![instance("app", 0, None)]);
        let w = BTreeMap::new();
        let s2 = pod_status(
            &p,
            &Inputs {
                state: &st,
                waiting: &w,
                health: &BTreeMap::new(),
                deadline_exceeded: false,
                host_ip: "172.30.0.2",
                now: "2026-11-25T11:00:00Z",
            },
        );
        assert_eq!(s2["conditions"], s1["conditions"]);
        later["phase"] = json!("x");
        assert_ne!(later, s2);
    }
}
