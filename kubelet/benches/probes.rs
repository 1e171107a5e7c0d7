//! What probes cost the kubelet: its CPU (its own and its reaped children's, so exec probes'
//! helpers count) over 30 s with 100 running pods, first without probes, then with an
//! httpGet readiness probe each every second (100 checks/s), then with an httpGet readiness
//! and a tcpSocket liveness probe each every second (200 checks/s), then
//! with an exec readiness probe each every second (100 exec helpers/s). A whole node
//! (apiserver, registry, kubelet from the built binaries) in its own network namespace.
//!
//! Run with `hack/bench/probes.sh` (builds everything first).

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use serde_json::{json, Value};
use tinykube_e2e::node::Node;

const PODS: usize = 100;
const WINDOW: Duration = Duration::from_secs(30);

fn pod(name: &str, probes: &Value) -> Pod {
    let mut c = json!({"name": "web", "image": "busybox:latest", "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"]});
    for (k, v) in probes.as_object().unwrap() {
        c[k] = v.clone();
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"bench": "probes"}},
        "spec": {"terminationGracePeriodSeconds": 0, "containers": [c]},
    }))
    .unwrap()
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Creates the pods and waits until all are Ready.
async fn start(api: &Api<Pod>, probes: &Value) {
    let mut events = watcher::watcher(
        api.clone(),
        watcher::Config::default().labels("bench=probes"),
    )
    .boxed();
    while let Some(ev) = events.try_next().await.unwrap() {
        if matches!(ev, watcher::Event::InitDone) {
            break;
        }
    }
    let creates = (0..PODS).map(|i| {
        let api = api.clone();
        let p = pod(&format!("p-{i}"), probes);
        async move { api.create(&PostParams::default(), &p).await.unwrap() }
    });
    futures::future::join_all(creates).await;
    let mut ready_pods = std::collections::HashSet::new();
    while ready_pods.len() < PODS {
        let ev = tokio::time::timeout(Duration::from_secs(180), events.try_next())
            .await
            .expect("pods were not Ready within 3 minutes")
            .unwrap()
            .unwrap();
        if let watcher::Event::Apply(p) = ev {
            if ready(&p) {
                ready_pods.insert(p.metadata.name.clone().unwrap());
            }
        }
    }
}

async fn delete_all(api: &Api<Pod>) {
    let lp = ListParams::default().labels("bench=probes");
    api.delete_collection(&DeleteParams::default(), &lp)
        .await
        .unwrap();
    let t = Instant::now();
    while !api.list(&lp).await.unwrap().items.is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(180),
            "pods were not deleted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// CPU seconds of `pid` and its reaped children so far: (user, system).
fn cpu_seconds(pid: i32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the kubelet runs");
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = rest.split(' ').map(|v| v.parse().unwrap_or(0)).collect();
    // utime, stime, cutime, cstime are fields 14-17 (1-based), 12-15 here.
    // SAFETY: sysconf reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ((f[11] + f[13]) as f64 / hz, (f[12] + f[14]) as f64 / hz)
}

/// The kubelet's CPU use over [`WINDOW`], in percent of one core: (user, system).
async fn measure(pid: i32) -> (f64, f64) {
    // Let the first checks and status writes settle.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (u0, s0) = cpu_seconds(pid);
    let t = Instant::now();
    tokio::time::sleep(WINDOW).await;
    let (u1, s1) = cpu_seconds(pid);
    let secs = t.elapsed().as_secs_f64();
    ((u1 - u0) / secs * 100.0, (s1 - s0) / secs * 100.0)
}

fn main() {
    let node = Node::start();
    let kubelet_pid = node.kubelet_pid().expect("kubelet runs");
    node.net.block_on(async {
        let client = node.apiserver.client("admin").await;
        let api: Api<Pod> = Api::namespaced(client, "default");
        let phases = [
            ("no probes", json!({})),
            (
                "httpGet readiness, every 1 s",
                json!({
                    "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
                }),
            ),
            (
                "httpGet readiness + tcpSocket liveness, every 1 s",
                json!({
                    "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
                    "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                }),
            ),
            (
                "exec readiness (`test -e /www/index.html`), every 1 s",
                json!({
                    "readinessProbe": {"exec": {"command": ["test", "-e", "/www/index.html"]},
                                       "periodSeconds": 1, "timeoutSeconds": 5},
                }),
            ),
        ];
        let mut idle = 0.0;
        println!("kubelet CPU (its own + its exec helpers'), {PODS} running pods, over {WINDOW:?}:");
        for (i, (what, probes)) in phases.iter().enumerate() {
            start(&api, probes).await;
            let (user, system) = measure(kubelet_pid).await;
            let cpu = user + system;
            if i == 0 {
                idle = cpu;
                println!("  {what:<55} {cpu:5.1} % of a core ({user:.1} user, {system:.1} system)");
            } else {
                println!(
                    "  {what:<55} {cpu:5.1} % of a core ({user:.1} user, {system:.1} system; probes: {:+.1} %; goal: well under 5 % for 100 pods probed every second)",
                    cpu - idle
                );
            }
            delete_all(&api).await;
        }
        println!("  (Kubernetes' kubelet runs the same checks from goroutines; exec probes go through the CRI, a runc exec each)");
    });
}
