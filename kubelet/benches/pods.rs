//! Pod startup benchmark, as Kubernetes defines pod startup latency: from the pod's creation
//! to all its containers Running, image already on the node, seen through a watch. A whole
//! node (apiserver, registry, kubelet from the built binaries) in its own network namespace.
//!
//! - 50 pods one at a time, then 50 at once: p50 / p99;
//! - memory per running pod: the shims' proportional set size, and the kubelet's growth;
//! - 110 pods (the node's max) created at once: time until all are Running.
//!
//! Run with `hack/bench/pods.sh` (builds everything first).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use tinykube_e2e::node::Node;

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"bench": "pods"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "busybox:latest", "imagePullPolicy": "IfNotPresent",
                            "command": ["sleep", "3600"]}],
        },
    }))
    .unwrap()
}

fn is_running(p: &Pod) -> bool {
    p.status.as_ref().is_some_and(|s| {
        s.phase.as_deref() == Some("Running")
            && s.container_statuses.as_ref().is_some_and(|cs| {
                cs.iter()
                    .all(|c| c.state.as_ref().is_some_and(|st| st.running.is_some()))
            })
    })
}

/// Creates `names` (all at once) and returns each one's create → Running latency, as a watch
/// sees it.
async fn start(api: &Api<Pod>, names: &[String]) -> Vec<Duration> {
    let mut events =
        watcher::watcher(api.clone(), watcher::Config::default().labels("bench=pods")).boxed();
    // The watch is established once its initial list is done.
    while let Some(ev) = events.try_next().await.unwrap() {
        if matches!(ev, watcher::Event::InitDone) {
            break;
        }
    }
    let mut started: HashMap<String, Instant> = HashMap::new();
    let creates = names.iter().map(|n| {
        let api = api.clone();
        let p = pod(n);
        async move {
            let t = Instant::now();
            api.create(&PostParams::default(), &p).await.unwrap();
            (p.metadata.name.unwrap(), t)
        }
    });
    for (n, t) in futures::future::join_all(creates).await {
        started.insert(n, t);
    }
    let mut out: HashMap<String, Duration> = HashMap::new();
    while out.len() < names.len() {
        let ev = tokio::time::timeout(Duration::from_secs(120), events.try_next())
            .await
            .expect("pods did not start within 2 minutes")
            .unwrap()
            .unwrap();
        if let watcher::Event::Apply(p) = ev {
            let n = p.metadata.name.clone().unwrap();
            if is_running(&p) && !out.contains_key(&n) {
                if let Some(t) = started.get(&n) {
                    out.insert(n, t.elapsed());
                }
            }
        }
    }
    out.into_values().collect()
}

async fn delete_all(api: &Api<Pod>) {
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("bench=pods"),
    )
    .await
    .unwrap();
    let t = Instant::now();
    while !api
        .list(&ListParams::default().labels("bench=pods"))
        .await
        .unwrap()
        .items
        .is_empty()
    {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "pods were not deleted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Proportional set size of process `pid` in KiB.
fn pss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The pids of this node's shims (`tinykube-kubelet shim` with a state root under `root`).
fn shim_pids(root: &str) -> Vec<i32> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        if args.len() > 1
            && args[0].ends_with(b"tinykube-kubelet")
            && args[1] == b"shim"
            && String::from_utf8_lossy(&cmd).contains(root)
        {
            out.push(pid);
        }
    }
    out
}

fn main() {
    let node = Node::start();
    let kubelet_pid = node.kubelet_pid().expect("kubelet runs");
    node.net.block_on(async {
        let client = node.apiserver.client("admin").await;
        let api: Api<Pod> = Api::namespaced(client, "default");
        // Warm up: the image comes to the node, the first sandbox makes the bridge.
        start(&api, &["warmup".to_string()]).await;
        delete_all(&api).await;

        let mut serial = Vec::new();
        for i in 0..50 {
            serial.extend(start(&api, &[format!("one-{i}")]).await);
        }
        delete_all(&api).await;
        let names: Vec<String> = (0..50).map(|i| format!("many-{i}")).collect();
        let kubelet_before = pss_kib(kubelet_pid);
        let mut burst = start(&api, &names).await;
        let shims = shim_pids(&node.root.path().display().to_string());
        let shim_pss: u64 = shims.iter().map(|p| pss_kib(*p)).sum();
        let kubelet_after = pss_kib(kubelet_pid);
        delete_all(&api).await;

        let names: Vec<String> = (0..110).map(|i| format!("max-{i}")).collect();
        let t = Instant::now();
        let all = start(&api, &names).await;
        let all_running = t.elapsed();
        delete_all(&api).await;

        println!("pod startup (create → Running through a watch, image present), busybox pods:");
        println!(
            "  50 one at a time: p50 {}  p99 {}   (goal p50 ≤ 100 ms, p99 ≤ 250 ms; Kubernetes SLO p99 ≤ 5 s, ~2 s on an idle kubeadm cluster)",
            ms(pct(&mut serial, 0.5)),
            ms(pct(&mut serial, 0.99))
        );
        println!(
            "  50 at once:       p50 {}  p99 {}",
            ms(pct(&mut burst, 0.5)),
            ms(pct(&mut burst, 0.99))
        );
        let n = shims.len().max(1) as f64;
        println!(
            "memory per running pod: shim PSS {:.2} MiB, kubelet growth {:.2} MiB ({} shims; goal ≤ 2 MiB)",
            shim_pss as f64 / 1024.0 / n,
            (kubelet_after.saturating_sub(kubelet_before)) as f64 / 1024.0 / 50.0,
            shims.len()
        );
        println!(
            "110 pods at once: all Running in {} (goal < 30 s; Kubernetes supports 110 pods per node), slowest {}",
            ms(all_running),
            ms(*all.iter().max().unwrap())
        );
    });
}
