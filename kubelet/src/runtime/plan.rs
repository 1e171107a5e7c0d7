//! What a pod worker does next: a pure function of the pod's spec and what the runtime has,
//! as the kubelet's `computePodActions` (tested by tables; the worker only carries it out).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

/// The latest instance of one container, as the runtime knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// Restart count: 0 for the first instance.
    pub attempt: u32,
    pub state: InstanceState,
    /// The image the instance was started from (a changed spec image restarts it).
    pub image: String,
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Make the pod's namespaces, network and files.
    CreateSandbox,
    /// Start (pulling the image as its policy says) container `name` as restart `attempt`.
    Start { name: String, attempt: u32 },
    /// Stop a running container (SIGTERM, then SIGKILL after `grace`).
    Stop { name: String, grace: Duration },
    /// The container waits out its restart back-off (status: CrashLoopBackOff).
    BackOff { name: String, remaining: Duration },
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

fn should_restart(policy: &str, code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => code != 0,
        _ => true,
    }
}

/// The next actions for `pod`, given what runs.
pub fn plan(pod: &Pod, seen: &Observed) -> Vec<Action> {
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
        let grace = Duration::from_secs(
            pod.metadata
                .deletion_grace_period_seconds
                .or(spec.termination_grace_period_seconds)
                .unwrap_or(30)
                .max(0) as u64,
        );
        let stops: Vec<Action> = seen
            .instances
            .iter()
            .filter(|(_, i)| i.state == InstanceState::Running)
            .map(|(n, _)| Action::Stop {
                name: n.clone(),
                grace,
            })
            .collect();
        if !stops.is_empty() {
            return stops;
        }
        return if seen.sandbox_ready {
            vec![Action::RemoveSandbox, Action::Finalize]
        } else {
            vec![Action::Finalize]
        };
    }
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
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
        if out.is_empty() && !finished {
            out.push(Action::CreateSandbox);
        }
        return out;
    }

    let mut out = Vec::new();
    // Init containers, in order: each must exit 0 before the next (and the app containers).
    for c in spec.init_containers.iter().flatten() {
        match seen.instances.get(&c.name) {
            None => {
                out.push(Action::Start {
                    name: c.name.clone(),
                    attempt: 0,
                });
                return out;
            }
            Some(i) => match &i.state {
                InstanceState::Running => return out,
                InstanceState::Exited { code: 0, .. } => continue,
                InstanceState::Exited { ago, ran, .. } => {
                    // A failed init container: the pod fails with Never, else it retries.
                    if policy == "Never" {
                        return out;
                    }
                    out.push(restart(&c.name, i.attempt + 1, *ago, *ran));
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
                let grace = Duration::from_secs(
                    spec.termination_grace_period_seconds.unwrap_or(30).max(0) as u64,
                );
                out.push(Action::Stop {
                    name: c.name.clone(),
                    grace,
                });
            }
            Some(Instance {
                state: InstanceState::Running,
                ..
            }) => {}
            Some(i) => {
                let InstanceState::Exited { code, ago, ran } = i.state else {
                    unreachable!()
                };
                if should_restart(policy, code) {
                    out.push(restart(&c.name, i.attempt + 1, ago, ran));
                }
            }
        }
    }
    out
}

fn restart(name: &str, attempt: u32, ago: Duration, ran: Duration) -> Action {
    let wait = back_off(attempt, ran);
    if ago >= wait {
        Action::Start {
            name: name.into(),
            attempt,
        }
    } else {
        Action::BackOff {
            name: name.into(),
            remaining: wait - ago,
        }
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
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    fn running(attempt: u32) -> Instance {
        Instance {
            attempt,
            state: InstanceState::Running,
            image: "img:1".into(),
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

    fn start(n: &str, a: u32) -> Action {
        Action::Start {
            name: n.into(),
            attempt: a,
        }
    }

    #[test]
    fn a_new_pod_gets_a_sandbox_then_its_containers() {
        let p = pod(json!({}));
        assert_eq!(plan(&p, &Observed::default()), [Action::CreateSandbox]);
        assert_eq!(plan(&p, &seen(&[])), [start("app", 0), start("side", 0)]);
        assert_eq!(
            plan(&p, &seen(&[("app", running(0)), ("side", running(0))])),
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
        assert_eq!(plan(&always, &s(exited(0, 1, 0))), [start("app", 1)]);
        assert_eq!(
            plan(&always, &s(exited(1, 1, 3))),
            [Action::BackOff {
                name: "app".into(),
                remaining: Duration::from_secs(7)
            }]
        );
        assert_eq!(plan(&always, &s(exited(1, 1, 10))), [start("app", 2)]);
        assert_eq!(
            plan(&always, &s(exited(2, 1, 5))),
            [Action::BackOff {
                name: "app".into(),
                remaining: Duration::from_secs(15)
            }]
        );
        assert_eq!(
            back_off(9, Duration::from_secs(1)),
            Duration::from_secs(300)
        );
        // A container that ran 10 minutes starts over without waiting.
        assert_eq!(back_off(7, Duration::from_secs(600)), Duration::ZERO);
        // Exit 0: Always restarts, OnFailure and Never do not.
        assert_eq!(plan(&always, &s(exited(0, 0, 0))), [start("app", 1)]);
        assert_eq!(plan(&on_failure, &s(exited(0, 0, 99))), []);
        assert_eq!(plan(&on_failure, &s(exited(0, 2, 99))), [start("app", 1)]);
        assert_eq!(plan(&never, &s(exited(0, 2, 99))), []);
    }

    #[test]
    fn init_containers_run_in_order_first() {
        let p = pod(
            json!({"initContainers": [{"name": "i1", "image": "img:1"}, {"name": "i2", "image": "img:1"}]}),
        );
        assert_eq!(plan(&p, &seen(&[])), [start("i1", 0)]);
        assert_eq!(plan(&p, &seen(&[("i1", running(0))])), []);
        assert_eq!(
            plan(&p, &seen(&[("i1", exited(0, 0, 1))])),
            [start("i2", 0)]
        );
        assert_eq!(
            plan(
                &p,
                &seen(&[("i1", exited(0, 0, 1)), ("i2", exited(0, 0, 1))])
            ),
            [start("app", 0), start("side", 0)]
        );
        // A failed init container retries (with back-off) unless the policy is Never.
        assert_eq!(
            plan(&p, &seen(&[("i1", exited(0, 1, 60))])),
            [start("i1", 1)]
        );
        let never = pod(
            json!({"restartPolicy": "Never", "initContainers": [{"name": "i1", "image": "img:1"}]}),
        );
        assert_eq!(plan(&never, &seen(&[("i1", exited(0, 1, 60))])), []);
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
            plan(&p, &seen(&[("app", running(0)), ("side", exited(0, 0, 1))])),
            [Action::Stop {
                name: "app".into(),
                grace: five
            }]
        );
        assert_eq!(
            plan(&p, &seen(&[("app", exited(0, 143, 0))])),
            [Action::RemoveSandbox, Action::Finalize]
        );
        assert_eq!(plan(&p, &Observed::default()), [Action::Finalize]);
    }

    #[test]
    fn a_new_image_restarts_the_container_and_a_lost_sandbox_is_remade() {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app", "image": "img:2"}]}})).unwrap();
        assert_eq!(
            plan(&p, &seen(&[("app", running(0))])),
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
            plan(&p, &lost),
            [Action::Stop {
                name: "app".into(),
                grace: Duration::ZERO
            }]
        );
        let gone = Observed {
            sandbox_ready: false,
            ..seen(&[("app", exited(0, 137, 0))])
        };
        assert_eq!(plan(&p, &gone), [Action::CreateSandbox]);
    }
}
