//! Control-plane speed: from `create deployment replicas=100` to 100 pods bound (and to 100 pods
//! ready, with status written by a fake kubelet), and from a pod turning ready (the moment its
//! readiness flips; the fake kubelet then writes the status) to its address in the service's
//! Endpoints, as a watcher sees it. Printed beside the anchors. Run: `hack/bench/controllers.sh`.

// Shared with the integration tests; the benchmark uses only part of it.
#[allow(dead_code)]
#[path = "../tests/api/fake_kubelet.rs"]
mod fake_kubelet;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use tinykube_e2e::Apiserver;

const RUNS: usize = 10;
const REPLICAS: usize = 100;
const FLIPS: usize = 200;

fn deployment(name: &str, replicas: usize) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"terminationGracePeriodSeconds": 0,
                                       "containers": [{"name": "web", "image": "gcr.io/google-samples/kubernetes-bootcamp:v1",
                                                       "ports": [{"name": "http", "containerPort": 8080}]}]}}}
    }))
    .unwrap()
}

fn pct(v: &[Duration], p: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn ready(p: &Pod) -> bool {
    p.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let server = Apiserver::start(Path::new(env!("CARGO_BIN_EXE_tinykube-apiserver")), &[]);
    let c = server.client("admin").await;
    let kubelet = fake_kubelet::FakeKubelet::start(c.clone(), "node-1", 1).await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), "default");

    let mut bound_times = Vec::new();
    let mut ready_times = Vec::new();
    for run in 0..RUNS {
        let name = format!("bench{run}");
        let rv = pods
            .list(&ListParams::default())
            .await
            .unwrap()
            .metadata
            .resource_version
            .unwrap();
        let mut stream = pods
            .watch(&WatchParams::default().labels(&format!("app={name}")), &rv)
            .await
            .unwrap()
            .boxed();
        let start = Instant::now();
        deploys
            .create(&PostParams::default(), &deployment(&name, REPLICAS))
            .await
            .unwrap();
        let mut bound: HashMap<String, bool> = HashMap::new();
        let mut readiness: HashMap<String, bool> = HashMap::new();
        let (mut t_bound, mut t_ready) = (None, None);
        while t_ready.is_none() {
            let ev = tokio::time::timeout(Duration::from_secs(30), stream.try_next())
                .await
                .expect("pods in time")
                .unwrap()
                .expect("the pod watch ended");
            if let WatchEvent::Added(p) | WatchEvent::Modified(p) = ev {
                let n = p.metadata.name.clone().unwrap();
                bound.insert(
                    n.clone(),
                    p.spec.as_ref().and_then(|s| s.node_name.clone()).is_some(),
                );
                readiness.insert(n, ready(&p));
            }
            if t_bound.is_none() && bound.values().filter(|b| **b).count() == REPLICAS {
                t_bound = Some(start.elapsed());
            }
            if readiness.values().filter(|r| **r).count() == REPLICAS {
                t_ready = Some(start.elapsed());
            }
        }
        eprintln!(
            "run {run}: bound {:?}, ready {:?}",
            t_bound.unwrap(),
            t_ready.unwrap()
        );
        bound_times.push(t_bound.unwrap());
        ready_times.push(t_ready.unwrap());
        deploys
            .delete(&name, &DeleteParams::default())
            .await
            .unwrap();
        // Wait for the pods to go, so runs do not overlap.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !pods
            .list(&ListParams::default().labels(&format!("app={name}")))
            .await
            .unwrap()
            .items
            .is_empty()
        {
            assert!(Instant::now() < deadline, "pods of {name} did not go");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Endpoints latency: a pod's Ready=True committed -> its address in Endpoints.
    deploys
        .create(&PostParams::default(), &deployment("ep", 20))
        .await
        .unwrap();
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "ep"}, "spec": {"selector": {"app": "ep"}, "ports": [{"port": 80, "targetPort": "http"}]}})).unwrap();
    Api::<Service>::namespaced(c.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    let eps: Api<Endpoints> = Api::namespaced(c.clone(), "default");
    let ready_ips = |e: &Endpoints| -> Vec<String> {
        e.subsets
            .iter()
            .flatten()
            .flat_map(|s| s.addresses.iter().flatten())
            .map(|a| a.ip.clone())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if eps
            .get("ep")
            .await
            .map(|e| ready_ips(&e).len() == 20)
            .unwrap_or(false)
        {
            break;
        }
        assert!(Instant::now() < deadline, "endpoints did not fill");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // From the moment a pod's readiness flips to true (the kubelet then writes its status) to
    // the Endpoints event that lists its address, seen through a watch.
    let flipped: Arc<Mutex<HashMap<String, Instant>>> = Default::default();
    let latencies: Arc<Mutex<Vec<Duration>>> = Default::default();
    let ep_watch = {
        let rv = eps
            .list(&ListParams::default())
            .await
            .unwrap()
            .metadata
            .resource_version
            .unwrap();
        let mut s = eps
            .watch(&WatchParams::default().fields("metadata.name=ep"), &rv)
            .await
            .unwrap()
            .boxed();
        let flipped = flipped.clone();
        let latencies = latencies.clone();
        tokio::spawn(async move {
            while let Ok(Some(ev)) = s.try_next().await {
                if let WatchEvent::Modified(e) = ev {
                    let t = Instant::now();
                    for ip in ready_ips(&e) {
                        if let Some(since) = flipped.lock().unwrap().remove(&ip) {
                            latencies.lock().unwrap().push(t - since);
                        }
                    }
                }
            }
        })
    };
    let names: Vec<(String, String)> = pods
        .list(&ListParams::default().labels("app=ep"))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| (p.metadata.name.unwrap(), p.status.unwrap().pod_ip.unwrap()))
        .collect();
    for i in 0..FLIPS {
        let (name, ip) = &names[i % names.len()];
        kubelet.set_ready(name, false);
        let deadline = Instant::now() + Duration::from_secs(10);
        while eps
            .get("ep")
            .await
            .map(|e| ready_ips(&e).contains(ip))
            .unwrap_or(true)
        {
            assert!(Instant::now() < deadline, "address did not leave");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let before = latencies.lock().unwrap().len();
        flipped.lock().unwrap().insert(ip.clone(), Instant::now());
        kubelet.set_ready(name, true);
        while latencies.lock().unwrap().len() == before {
            assert!(Instant::now() < deadline, "address did not come back");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    ep_watch.abort();
    let lat = latencies.lock().unwrap().clone();

    println!(
        "tinykube controllers ({} CPUs, fake kubelet on one node)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!(
        "{:<48} {:>6} {:>10} {:>10}   anchor",
        "measurement", "count", "p50", "p99"
    );
    println!(
        "{:<48} {:>6} {:>10} {:>10}   goal < 1 s",
        format!("create deployment -> {REPLICAS} pods bound"),
        RUNS,
        ms(pct(&bound_times, 0.5)),
        ms(pct(&bound_times, 0.99))
    );
    println!(
        "{:<48} {:>6} {:>10} {:>10}   pod startup SLO: p99 <= 5 s per pod; ~2 s on idle kubeadm",
        format!("create deployment -> {REPLICAS} pods ready"),
        RUNS,
        ms(pct(&ready_times, 0.5)),
        ms(pct(&ready_times, 0.99))
    );
    println!(
        "{:<48} {:>6} {:>10} {:>10}   goal p99 < 20 ms; kube-proxy min-sync-period 1 s",
        "pod turns ready -> address in Endpoints",
        lat.len(),
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99))
    );
    println!();
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "goal: {REPLICAS} pods bound in < 1 s: p99 {} ({})",
        ms(pct(&bound_times, 0.99)),
        verdict(pct(&bound_times, 0.99) < Duration::from_secs(1))
    );
    println!(
        "goal: endpoints update p99 < 20 ms: {} ({})",
        ms(pct(&lat, 0.99)),
        verdict(pct(&lat, 0.99) < Duration::from_millis(20))
    );
}
