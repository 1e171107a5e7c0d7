//! A stand-in for a kubelet, for tests of the control plane before the real kubelet exists: it
//! registers a Node, renews its Lease, and for every pod bound to it writes the status a kubelet
//! would (Running, a pod IP, Ready), confirms graceful deletions, and can make pods unready or
//! go silent like a dead node. It talks to the apiserver only through its API.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use serde_json::json;
use tokio::sync::Notify;

pub struct FakeKubelet {
    stopped: Arc<AtomicBool>,
    unready: Arc<Mutex<HashSet<String>>>,
    poke: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn now_micro() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

impl FakeKubelet {
    /// Registers `node` (Ready, 4 cpu, 8 GiB, 250 pods) and starts serving it. Pod IPs come from
    /// 10.(200+`subnet`).0.0/16.
    pub async fn start(client: Client, node: &str, subnet: u8) -> FakeKubelet {
        let nodes: Api<Node> = Api::all(client.clone());
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node}},
            "status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": now(), "lastTransitionTime": now()}],
                "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "250"},
                "capacity": {"cpu": "4", "memory": "8Gi", "pods": "250"},
                "addresses": [{"type": "InternalIP", "address": format!("192.0.2.{subnet}")}]
            }
        }))
        .unwrap();
        match nodes.create(&PostParams::default(), &n).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("registering {node}: {e}"),
        }
        let stopped = Arc::new(AtomicBool::new(false));
        let unready: Arc<Mutex<HashSet<String>>> = Default::default();
        let poke = Arc::new(Notify::new());
        let task = tokio::spawn(run(
            client,
            node.to_string(),
            subnet,
            stopped.clone(),
            unready.clone(),
            poke.clone(),
        ));
        FakeKubelet {
            stopped,
            unready,
            poke,
            task,
        }
    }

    /// Marks a pod (by name) ready or not, as a failing or recovering readiness probe would.
    pub fn set_ready(&self, pod: &str, ready: bool) {
        {
            let mut u = self.unready.lock().unwrap();
            if ready {
                u.remove(pod);
            } else {
                u.insert(pod.to_string());
            }
        }
        self.poke.notify_one();
    }

    /// The node dies: no more lease renewals, status updates or deletions.
    pub fn kill(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    client: Client,
    node: String,
    subnet: u8,
    stopped: Arc<AtomicBool>,
    unready: Arc<Mutex<HashSet<String>>>,
    poke: Arc<Notify>,
) {
    let pods: Api<Pod> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let next_ip = AtomicU32::new(0);
    let mut known: BTreeMap<String, Pod> = BTreeMap::new();
    let mut stream = watcher::watcher(
        pods.clone(),
        watcher::Config::default().fields(&format!("spec.nodeName={node}")),
    )
    .default_backoff()
    .boxed();
    let mut lease_tick = tokio::time::interval(Duration::from_millis(500));
    // Like a kubelet's periodic sync: a write that failed (say, while the apiserver restarted)
    // is made again.
    let mut resync = tokio::time::interval(Duration::from_secs(1));
    loop {
        if stopped.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            continue;
        }
        let mut changed: Vec<String> = Vec::new();
        tokio::select! {
            ev = stream.next() => match ev {
                Some(Ok(Event::Apply(p) | Event::InitApply(p))) => {
                    let key = format!("{}/{}", p.metadata.namespace.clone().unwrap_or_default(), p.metadata.name.clone().unwrap_or_default());
                    known.insert(key.clone(), p);
                    changed.push(key);
                }
                Some(Ok(Event::Delete(p))) => {
                    known.remove(&format!("{}/{}", p.metadata.namespace.clone().unwrap_or_default(), p.metadata.name.clone().unwrap_or_default()));
                }
                Some(Ok(_)) | Some(Err(_)) => {}
                None => return,
            },
            _ = poke.notified() => changed.extend(known.keys().cloned()),
            _ = resync.tick() => changed.extend(known.keys().cloned()),
            _ = lease_tick.tick() => {
                renew(&leases, &node).await;
                continue;
            }
        }
        for key in changed {
            let Some(p) = known.get(&key).cloned() else {
                continue;
            };
            let ns = p.metadata.namespace.clone().unwrap_or_default();
            let name = p.metadata.name.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            if p.metadata.deletion_timestamp.is_some() {
                // The containers are stopped: confirm the deletion.
                let _ = api
                    .delete(
                        &name,
                        &DeleteParams {
                            grace_period_seconds: Some(0),
                            ..Default::default()
                        },
                    )
                    .await;
                continue;
            }
            let want_ready = !unready.lock().unwrap().contains(&name);
            let status = p.status.clone().unwrap_or_default();
            let is_ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let has_ip = status.pod_ip.is_some();
            if has_ip && is_ready == want_ready && status.phase.as_deref() == Some("Running") {
                continue;
            }
            let ip = status.pod_ip.clone().unwrap_or_else(|| {
                let n = next_ip.fetch_add(1, Ordering::SeqCst);
                format!("10.{}.{}.{}", 200 + subnet as u32, n / 250, n % 250 + 1)
            });
            let r = if want_ready { "True" } else { "False" };
            let containers: Vec<serde_json::Value> = p
                .spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .map(|c| json!({"name": c.name, "image": c.image, "imageID": "", "ready": want_ready, "restartCount": 0,
                                "started": true, "state": {"running": {"startedAt": now()}}}))
                .collect();
            let patch = json!({"status": {
                "phase": "Running",
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "hostIP": format!("192.0.2.{subnet}"),
                "startTime": status.start_time.map(|t| serde_json::to_value(t).unwrap()).unwrap_or_else(|| json!(now())),
                "conditions": [
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Initialized", "status": "True"},
                    {"type": "ContainersReady", "status": r, "lastTransitionTime": now()},
                    {"type": "Ready", "status": r, "lastTransitionTime": now()},
                ],
                "containerStatuses": containers,
            }});
            let _ = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await;
        }
    }
}

async fn renew(leases: &Api<Lease>, node: &str) {
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": node},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": now_micro()}
    }))
    .unwrap();
    if leases
        .replace(node, &PostParams::default(), &lease)
        .await
        .is_err()
    {
        let _ = leases.create(&PostParams::default(), &lease).await;
    }
}
