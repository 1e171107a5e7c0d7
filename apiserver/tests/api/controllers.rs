//! The built-in controllers, end to end through the API: a fake kubelet plays the node.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use serde_json::json;

use crate::fake_kubelet::FakeKubelet;
use crate::harness::Server;

use tinykube_e2e::eventually;

pub fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"terminationGracePeriodSeconds": 1,
                                       "containers": [{"name": "web", "image": image, "ports": [{"name": "http", "containerPort": 8080}]}]}}}
    }))
    .unwrap()
}

fn ready(p: &Pod) -> bool {
    p.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn live(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
}

/// Pods of the deployment's app that are not being deleted.
async fn pods_of(api: &Api<Pod>, app: &str) -> Vec<Pod> {
    api.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(live)
        .collect()
}

async fn ready_count(api: &Api<Pod>, app: &str) -> usize {
    pods_of(api, app).await.iter().filter(|p| ready(p)).count()
}

/// Follows the app's pods and records the fewest ready and the most live pods ever seen.
/// The third value is the last whole state the watch saw, for waiting until it caught up.
#[allow(clippy::type_complexity)]
fn observe(
    pods: &Api<Pod>,
    app: &str,
) -> (
    tokio::task::JoinHandle<()>,
    Arc<Mutex<(usize, usize)>>,
    Arc<Mutex<Vec<Pod>>>,
) {
    let observed: Arc<Mutex<(usize, usize)>> = Arc::new(Mutex::new((usize::MAX, 0)));
    let o = observed.clone();
    let seen: Arc<Mutex<Vec<Pod>>> = Default::default();
    let last = seen.clone();
    let stream = watcher::watcher(
        pods.clone(),
        watcher::Config::default().labels(&format!("app={app}")),
    )
    .default_backoff();
    let handle = tokio::spawn(async move {
        let mut state: std::collections::BTreeMap<String, Pod> = Default::default();
        let mut listing: std::collections::BTreeMap<String, Pod> = Default::default();
        let mut stream = stream.boxed();
        // Only whole states count: the pods of a (re)list are judged once it is complete.
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(Event::Apply(p)) => {
                    state.insert(p.metadata.name.clone().unwrap(), p);
                }
                Ok(Event::Delete(p)) => {
                    state.remove(&p.metadata.name.clone().unwrap());
                }
                Ok(Event::Init) => {
                    listing.clear();
                    continue;
                }
                Ok(Event::InitApply(p)) => {
                    listing.insert(p.metadata.name.clone().unwrap(), p);
                    continue;
                }
                Ok(Event::InitDone) => state = std::mem::take(&mut listing),
                _ => continue,
            }
            let available = state.values().filter(|p| live(p) && ready(p)).count();
            let total = state.values().filter(|p| live(p)).count();
            {
                let mut o = o.lock().unwrap();
                o.0 = o.0.min(available);
                o.1 = o.1.max(total);
            }
            *last.lock().unwrap() = state.values().cloned().collect();
        }
    });
    (handle, observed, seen)
}

/// Watches the ReplicaSets and records the largest sum of their `spec.replicas` over whole
/// states: the bound a rolling update keeps (replicas + maxSurge). Live pods may briefly
/// exceed it while an old ReplicaSet's deletions trail a new one's creations, in Kubernetes
/// too, so the pods are not what is bounded.
fn observe_replica_sets(rss: &Api<ReplicaSet>) -> (tokio::task::JoinHandle<()>, Arc<Mutex<i32>>) {
    let observed = Arc::new(Mutex::new(0));
    let o = observed.clone();
    let stream = watcher::watcher(rss.clone(), watcher::Config::default()).default_backoff();
    let handle = tokio::spawn(async move {
        let mut state: std::collections::BTreeMap<String, i32> = Default::default();
        let mut listing: std::collections::BTreeMap<String, i32> = Default::default();
        let size = |r: &ReplicaSet| r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let mut stream = stream.boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(Event::Apply(r)) => {
                    state.insert(r.metadata.name.clone().unwrap(), size(&r));
                }
                Ok(Event::Delete(r)) => {
                    state.remove(&r.metadata.name.clone().unwrap());
                }
                Ok(Event::Init) => {
                    listing.clear();
                    continue;
                }
                Ok(Event::InitApply(r)) => {
                    listing.insert(r.metadata.name.clone().unwrap(), size(&r));
                    continue;
                }
                Ok(Event::InitDone) => state = std::mem::take(&mut listing),
                _ => continue,
            }
            let mut o = o.lock().unwrap();
            *o = (*o).max(state.values().sum());
        }
    });
    (handle, observed)
}

fn image(p: &Pod) -> String {
    p.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

async fn rollout_done(deploys: &Api<Deployment>, name: &str, replicas: i32) -> Option<()> {
    let d = deploys.get(name).await.ok()?;
    let s = d.status?;
    (s.observed_generation >= d.metadata.generation
        && s.updated_replicas == Some(replicas)
        && s.available_replicas == Some(replicas)
        && s.replicas == Some(replicas))
    .then_some(())
}

#[tokio::test(flavor = "multi_thread")]
async fn deployments_converge_replace_pods_and_scale() {
    let s = Server::start().await;
    let c = s.client().await;
    let _kubelet = FakeKubelet::start(c.clone(), "node-1", 1).await;
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    deploys
        .create(&PostParams::default(), &deployment("web", 3, "bootcamp:v1"))
        .await
        .unwrap();
    eventually(20, "3 ready pods", || async {
        (ready_count(&pods, "web").await == 3).then_some(())
    })
    .await;
    eventually(10, "the rollout to complete", || {
        rollout_done(&deploys, "web", 3)
    })
    .await;

    // Pods belong to one ReplicaSet named by the template hash, and are spread by the scheduler.
    let rss: Api<ReplicaSet> = Api::namespaced(c.clone(), "default");
    let list = rss
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    assert_eq!(list.len(), 1);
    let rs = &list[0];
    let hash = rs.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    assert_eq!(
        rs.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
        "1"
    );
    for p in pods_of(&pods, "web").await {
        assert_eq!(
            p.metadata.labels.as_ref().unwrap()["pod-template-hash"],
            hash
        );
        assert_eq!(
            p.spec.as_ref().unwrap().node_name.as_deref(),
            Some("node-1")
        );
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("ReplicaSet", Some(true))
        );
        assert!(p
            .metadata
            .name
            .as_deref()
            .unwrap()
            .starts_with(&format!("web-{hash}-")));
    }

    // A deleted pod is replaced.
    let victim = pods_of(&pods, "web").await[0]
        .metadata
        .name
        .clone()
        .unwrap();
    pods.delete(&victim, &DeleteParams::default())
        .await
        .unwrap();
    eventually(20, "a replacement", || async {
        let now = pods_of(&pods, "web").await;
        (now.len() == 3
            && now.iter().all(ready)
            && !now
                .iter()
                .any(|p| p.metadata.name.as_deref() == Some(&victim)))
        .then_some(())
    })
    .await;

    // A pod relabelled out of the selector is released, kept running, and replaced.
    let relabelled = pods_of(&pods, "web").await[0]
        .metadata
        .name
        .clone()
        .unwrap();
    pods.patch(
        &relabelled,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "debug"}}})),
    )
    .await
    .unwrap();
    eventually(20, "the released pod's replacement", || async {
        (ready_count(&pods, "web").await == 3).then_some(())
    })
    .await;
    let kept = eventually(10, "the release", || async {
        let p = pods.get(&relabelled).await.ok()?;
        p.metadata
            .owner_references
            .as_ref()
            .is_none_or(|r| r.is_empty())
            .then_some(p)
    })
    .await;
    assert!(
        live(&kept) && ready(&kept),
        "the relabelled pod keeps running"
    );

    // Scale 3 -> 5 -> 1.
    for n in [5, 1] {
        deploys
            .patch_scale(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": n}})),
            )
            .await
            .unwrap();
        eventually(20, &format!("{n} ready pods"), || async {
            (pods_of(&pods, "web").await.len() == n as usize
                && ready_count(&pods, "web").await == n as usize)
                .then_some(())
        })
        .await;
        eventually(10, "the deployment status", || {
            rollout_done(&deploys, "web", n)
        })
        .await;
    }

    // Events tell the story, aggregated, as `kubectl describe` shows them.
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(c, "default");
    let reasons: BTreeSet<String> = eventually(10, "events", || async {
        let r: BTreeSet<String> = events
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .filter_map(|e| e.reason)
            .collect();
        r.is_superset(
            &[
                "ScalingReplicaSet",
                "SuccessfulCreate",
                "SuccessfulDelete",
                "Scheduled",
            ]
            .map(String::from)
            .into(),
        )
        .then_some(r)
    })
    .await;
    assert!(reasons.contains("ScalingReplicaSet"));
}

#[tokio::test(flavor = "multi_thread")]
async fn rolling_update_keeps_enough_pods_ready_and_rollback_restores_the_old_replicaset() {
    let s = Server::start_with(&["--node-name", "node-1"]).await;
    let c = s.client().await;
    let _kubelet = FakeKubelet::start(c.clone(), "node-1", 1).await;
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    deploys
        .create(&PostParams::default(), &deployment("web", 4, "bootcamp:v1"))
        .await
        .unwrap();
    eventually(20, "v1 rolled out", || rollout_done(&deploys, "web", 4)).await;

    // Watch every pod change during the rollout and check the floor each time, and the
    // ReplicaSets' sizes for the ceiling: what a rolling update bounds (live pods may briefly
    // exceed replicas + maxSurge while an old pod's deletion trails a new one's creation, in
    // Kubernetes too).
    let (watch, observed, seen) = observe(&pods, "web");
    let (rs_watch, rs_sizes) =
        observe_replica_sets(&Api::<ReplicaSet>::namespaced(c.clone(), "default"));
    // The watch has judged its first whole state (the floor is no longer usize::MAX).
    eventually(10, "the watch to list the pods", || async {
        (observed.lock().unwrap().0 != usize::MAX).then_some(())
    })
    .await;
    deploys
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "bootcamp:v2"}]}}}})))
        .await
        .unwrap();
    eventually(30, "v2 rolled out", || async {
        rollout_done(&deploys, "web", 4).await?;
        let now = pods_of(&pods, "web").await;
        (now.len() == 4 && now.iter().all(|p| image(p) == "bootcamp:v2")).then_some(())
    })
    .await;
    // The watch has seen the rolled-out state too: 4 live v2 pods, all ready.
    eventually(10, "the watch to see the rollout's end", || async {
        let now = seen.lock().unwrap();
        let live: Vec<&Pod> = now.iter().filter(|p| live(p)).collect();
        (live.len() == 4 && live.iter().all(|p| ready(p) && image(p) == "bootcamp:v2"))
            .then_some(())
    })
    .await;
    watch.abort();
    rs_watch.abort();
    let (floor, _) = *observed.lock().unwrap();
    assert!(
        floor >= 3,
        "ready pods fell to {floor}, below replicas - maxUnavailable = 3"
    );
    let ceiling = *rs_sizes.lock().unwrap();
    assert!(
        ceiling <= 5,
        "ReplicaSets sized {ceiling} in all at once, above replicas + maxSurge = 5"
    );
    let rss: Api<ReplicaSet> = Api::namespaced(c.clone(), "default");
    let sizes = |list: Vec<ReplicaSet>| -> Vec<(String, i32)> {
        let mut v: Vec<(String, i32)> = list
            .into_iter()
            .map(|r| {
                (
                    r.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"].clone(),
                    r.spec.unwrap().replicas.unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        sizes(rss.list(&ListParams::default()).await.unwrap().items),
        [("1".to_string(), 0), ("2".to_string(), 4)]
    );

    // kubectl rollout undo puts the old template back; the old ReplicaSet returns as revision 3.
    let home = tempfile::tempdir().unwrap();
    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new("kubectl")
            .args(args)
            .env("HOME", home.path())
            .env("KUBECONFIG", s.kubeconfig("admin"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(kubectl(&["rollout", "undo", "deployment/web"]).contains("rolled back"));
    let status = kubectl(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    eventually(20, "v1 back", || async {
        let now = pods_of(&pods, "web").await;
        (now.len() == 4 && now.iter().all(|p| image(p) == "bootcamp:v1" && ready(p))).then_some(())
    })
    .await;
    assert_eq!(
        sizes(rss.list(&ListParams::default()).await.unwrap().items),
        [("2".to_string(), 0), ("3".to_string(), 4)]
    );
    let history = kubectl(&["rollout", "history", "deployment/web"]);
    assert!(history.contains('2') && history.contains('3'), "{history}");
    let described = kubectl(&["describe", "deployment", "web"]);
    for needle in [
        "4 desired | 4 updated | 4 total | 4 available | 0 unavailable",
        "NewReplicaSetAvailable",
        "ScalingReplicaSet",
    ] {
        assert!(described.contains(needle), "{needle} missing:\n{described}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_deployment_follows_the_propagation_policy() {
    let s = Server::start().await;
    let c = s.client().await;
    let _kubelet = FakeKubelet::start(c.clone(), "node-1", 1).await;
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let rss: Api<ReplicaSet> = Api::namespaced(c.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    for (name, policy) in [
        ("bg", "Background"),
        ("fg", "Foreground"),
        ("orphan", "Orphan"),
    ] {
        deploys
            .create(&PostParams::default(), &deployment(name, 2, "bootcamp:v1"))
            .await
            .unwrap();
        eventually(20, &format!("{name} rolled out"), || {
            rollout_done(&deploys, name, 2)
        })
        .await;
        let dp = DeleteParams {
            propagation_policy: Some(match policy {
                "Background" => kube::api::PropagationPolicy::Background,
                "Foreground" => kube::api::PropagationPolicy::Foreground,
                _ => kube::api::PropagationPolicy::Orphan,
            }),
            ..Default::default()
        };
        deploys.delete(name, &dp).await.unwrap();
        let sel = format!("app={name}");
        match policy {
            "Orphan" => {
                eventually(20, "the deployment to go", || async {
                    deploys.get_opt(name).await.unwrap().is_none().then_some(())
                })
                .await;
                // Orphaning is a write the garbage collector makes: the ReplicaSet loses its
                // owner reference. Once that is seen, nothing owns it any more, and it stays.
                eventually(20, "the ReplicaSet to be orphaned", || async {
                    let list = rss
                        .list(&ListParams::default().labels(&sel))
                        .await
                        .ok()?
                        .items;
                    list.iter()
                        .all(|r| {
                            r.metadata
                                .owner_references
                                .as_ref()
                                .is_none_or(|o| o.is_empty())
                        })
                        .then_some(())
                })
                .await;
                let left = rss
                    .list(&ListParams::default().labels(&sel))
                    .await
                    .unwrap()
                    .items;
                assert_eq!(left.len(), 1, "the ReplicaSet stays");
                assert!(
                    left[0]
                        .metadata
                        .owner_references
                        .as_ref()
                        .is_none_or(|r| r.is_empty()),
                    "and is no longer owned"
                );
                assert_eq!(ready_count(&pods, name).await, 2, "its pods keep running");
            }
            _ => {
                if policy == "Foreground" {
                    // The deployment waits for its dependents.
                    let d = deploys.get(name).await.unwrap();
                    assert!(d.metadata.deletion_timestamp.is_some());
                    assert!(d
                        .metadata
                        .finalizers
                        .unwrap()
                        .contains(&"foregroundDeletion".to_string()));
                }
                eventually(20, "everything to go", || async {
                    let gone = deploys.get_opt(name).await.unwrap().is_none()
                        && rss
                            .list(&ListParams::default().labels(&sel))
                            .await
                            .unwrap()
                            .items
                            .is_empty()
                        && pods
                            .list(&ListParams::default().labels(&sel))
                            .await
                            .unwrap()
                            .items
                            .is_empty();
                    gone.then_some(())
                })
                .await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_follow_pod_readiness() {
    let s = Server::start().await;
    let c = s.client().await;
    let kubelet = FakeKubelet::start(c.clone(), "node-1", 1).await;
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    deploys
        .create(&PostParams::default(), &deployment("web", 3, "bootcamp:v1"))
        .await
        .unwrap();
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}})).unwrap();
    Api::<Service>::namespaced(c.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    let eps: Api<Endpoints> = Api::namespaced(c.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(c.clone(), "default");
    let addresses = |e: &Endpoints, ready: bool| -> BTreeSet<String> {
        e.subsets
            .iter()
            .flatten()
            .flat_map(|s| {
                if ready {
                    s.addresses.clone()
                } else {
                    s.not_ready_addresses.clone()
                }
            })
            .flatten()
            .map(|a| a.ip)
            .collect()
    };
    let ips: BTreeSet<String> = eventually(20, "3 ready endpoints", || async {
        let e = eps.get("web").await.ok()?;
        let a = addresses(&e, true);
        (a.len() == 3).then_some(a)
    })
    .await;
    let e = eps.get("web").await.unwrap();
    assert_eq!(
        e.subsets.as_ref().unwrap()[0].ports.as_ref().unwrap()[0].port,
        8080,
        "the named targetPort resolved"
    );
    // A pod that stops being ready moves to notReadyAddresses, and back.
    let pod = pods_of(&pods, "web").await.into_iter().next().unwrap();
    let (name, ip) = (
        pod.metadata.name.clone().unwrap(),
        pod.status.unwrap().pod_ip.unwrap(),
    );
    assert!(ips.contains(&ip));
    kubelet.set_ready(&name, false);
    eventually(10, "the unready address", || async {
        let e = eps.get("web").await.ok()?;
        (addresses(&e, false).contains(&ip) && !addresses(&e, true).contains(&ip)).then_some(())
    })
    .await;
    let slice_ready = |s: &EndpointSlice| -> BTreeSet<String> {
        s.endpoints
            .iter()
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .flat_map(|e| e.addresses.clone())
            .collect()
    };
    eventually(10, "the slice to agree", || async {
        let list = slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
            .await
            .ok()?
            .items;
        (list.len() == 1
            && slice_ready(&list[0]).len() == 2
            && !slice_ready(&list[0]).contains(&ip))
        .then_some(())
    })
    .await;
    kubelet.set_ready(&name, true);
    eventually(10, "the address back", || async {
        (addresses(&eps.get("web").await.ok()?, true).len() == 3).then_some(())
    })
    .await;
    // Deleting the service takes its endpoints and slices with it.
    Api::<Service>::namespaced(c.clone(), "default")
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    eventually(10, "endpoints and slices to go", || async {
        let none = eps.get_opt("web").await.unwrap().is_none()
            && slices
                .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
                .await
                .unwrap()
                .items
                .is_empty();
        none.then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_node_is_marked_unknown_and_its_pods_are_replaced_elsewhere() {
    let s = Server::start_with(&[
        "--node-monitor-grace-period",
        "2s",
        "--node-monitor-period",
        "200ms",
        "--default-unreachable-toleration-seconds",
        "2",
    ])
    .await;
    let c = s.client().await;
    let doomed = FakeKubelet::start(c.clone(), "node-1", 1).await;
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let nodes: Api<Node> = Api::all(c.clone());
    deploys
        .create(&PostParams::default(), &deployment("web", 2, "bootcamp:v1"))
        .await
        .unwrap();
    eventually(20, "2 ready pods on node-1", || async {
        (ready_count(&pods, "web").await == 2).then_some(())
    })
    .await;
    // A second node joins, then the first one dies.
    let _survivor = FakeKubelet::start(c.clone(), "node-2", 2).await;
    doomed.kill();
    eventually(
        15,
        "node-1 to become Unknown and tainted unreachable",
        || async {
            let n = nodes.get("node-1").await.ok()?;
            let ready = n
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "Ready")?
                .status
                .clone();
            let tainted = n
                .spec
                .as_ref()?
                .taints
                .as_ref()?
                .iter()
                .any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute");
            (ready == "Unknown" && tainted).then_some(())
        },
    )
    .await;
    // After the toleration runs out the pods are evicted and replaced on node-2.
    eventually(20, "replacements on node-2", || async {
        let live = pods_of(&pods, "web").await;
        (live.len() == 2
            && live.iter().all(|p| {
                ready(p) && p.spec.as_ref().unwrap().node_name.as_deref() == Some("node-2")
            }))
        .then_some(())
    })
    .await;
    let stuck: Vec<Pod> = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| !live(p))
        .collect();
    assert!(
        stuck
            .iter()
            .all(|p| p.spec.as_ref().unwrap().node_name.as_deref() == Some("node-1")),
        "only node-1's pods are terminating"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_during_a_rolling_update_converges_without_duplicates() {
    let mut s = Server::start().await;
    let c = s.client().await;
    let _kubelet = FakeKubelet::start(c.clone(), "node-1", 1).await;
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    deploys
        .create(&PostParams::default(), &deployment("web", 6, "bootcamp:v1"))
        .await
        .unwrap();
    eventually(20, "v1 rolled out", || rollout_done(&deploys, "web", 6)).await;
    let (watch, observed) =
        observe_replica_sets(&Api::<ReplicaSet>::namespaced(c.clone(), "default"));
    deploys
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "bootcamp:v2"}]}}}})))
        .await
        .unwrap();
    // Kill the apiserver (and its controllers) in the middle of the rollout.
    eventually(10, "the rollout to start", || async {
        pods_of(&pods, "web")
            .await
            .iter()
            .any(|p| image(p) == "bootcamp:v2")
            .then_some(())
    })
    .await;
    s.crash_and_restart().await;
    eventually(30, "v2 rolled out after the restart", || async {
        rollout_done(&deploys, "web", 6).await?;
        let now = pods_of(&pods, "web").await;
        (now.len() == 6 && now.iter().all(|p| image(p) == "bootcamp:v2" && ready(p))).then_some(())
    })
    .await;
    let rss = Api::<ReplicaSet>::namespaced(c.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(rss.len(), 2, "one ReplicaSet per template, no duplicates");
    let mut sizes: Vec<i32> = rss
        .iter()
        .map(|r| r.spec.as_ref().unwrap().replicas.unwrap())
        .collect();
    sizes.sort();
    assert_eq!(sizes, [0, 6]);
    watch.abort();
    let ceiling = *observed.lock().unwrap();
    assert!(
        ceiling <= 7,
        "ReplicaSets sized {ceiling} in all at once, above replicas + maxSurge = 7"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_that_fits_nowhere_says_why() {
    let s = Server::start().await;
    let c = s.client().await;
    let _kubelet = FakeKubelet::start(c.clone(), "node-1", 1).await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let greedy: Pod = serde_json::from_value(json!({
        "metadata": {"name": "greedy"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "64"}}}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &greedy).await.unwrap();
    let cond = eventually(10, "PodScheduled=False", || async {
        let p = pods.get("greedy").await.ok()?;
        p.status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
    })
    .await;
    assert_eq!(cond.reason.as_deref(), Some("Unschedulable"));
    assert_eq!(
        cond.message.as_deref(),
        Some("0/1 nodes are available: 1 Insufficient cpu.")
    );
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(c.clone(), "default");
    let ev = eventually(10, "a FailedScheduling event", || async {
        events
            .list(
                &ListParams::default().fields("involvedObject.name=greedy,reason=FailedScheduling"),
            )
            .await
            .ok()?
            .items
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    // Room appears (a bigger node): the pod is scheduled there.
    let big: Node = serde_json::from_value(json!({
        "metadata": {"name": "big"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": {"cpu": "128", "memory": "64Gi", "pods": "110"}}
    }))
    .unwrap();
    Api::<Node>::all(c)
        .create(&PostParams::default(), &big)
        .await
        .unwrap();
    eventually(10, "greedy bound to big", || async {
        (pods.get("greedy").await.ok()?.spec?.node_name.as_deref() == Some("big")).then_some(())
    })
    .await;
}
