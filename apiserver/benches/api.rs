//! API latency and throughput of tinykube-apiserver, printed beside the Kubernetes SLOs and etcd.
//!
//! Starts the release binary on a free port with a temporary data dir and drives it with kube-rs
//! clients (each concurrent client has its own connection), for 1, 8 and 32 concurrent clients:
//! pod create, get, list of a namespace holding 1000 pods, and watch event latency (from the
//! start of a create to the event arriving at a watcher). Run: `hack/bench/apiserver.sh`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::Client;
use serde_json::json;
use tinykube_e2e::{client, Apiserver};

const CONCURRENCY: [usize; 3] = [1, 8, 32];
const LIST_SIZE: usize = 1000;

/// A pod no scheduler picks up (schedulerName names none), so the figures are the API's alone.
fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"run": "bench", "app": "web"}},
        "spec": {"schedulerName": "tinykube-bench-unscheduled",
                 "containers": [{"name": "web", "image": "gcr.io/google-samples/kubernetes-bootcamp:v1",
                                 "ports": [{"containerPort": 8080}],
                                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}
    }))
    .unwrap()
}

#[derive(Default)]
struct Sample {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Sample {
    fn pct(&self, p: f64) -> Duration {
        let mut v = self.latencies.clone();
        v.sort();
        if v.is_empty() {
            return Duration::ZERO;
        }
        v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
    }
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn ensure_namespace(c: &Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    let _ = Api::<Namespace>::all(c.clone())
        .create(&PostParams::default(), &ns)
        .await;
}

/// Runs `per_client` operations on each of `clients`, timing each.
async fn run<F, Fut>(clients: &[Client], per_client: usize, op: F) -> Sample
where
    F: Fn(Client, usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .iter()
        .cloned()
        .enumerate()
        .map(|(w, c)| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let t = Instant::now();
                    op(c.clone(), w, i).await;
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    Sample {
        latencies,
        elapsed: start.elapsed(),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let server = Apiserver::start(Path::new(env!("CARGO_BIN_EXE_tinykube-apiserver")), &[]);
    let kubeconfig = server.kubeconfig("admin");
    let admin = client(&kubeconfig).await;
    // A namespace with exactly LIST_SIZE pods, for list latency.
    ensure_namespace(&admin, "bench-list").await;
    let list_api: Api<Pod> = Api::namespaced(admin.clone(), "bench-list");
    let fill: Vec<_> = (0..8)
        .map(|w| {
            let api = list_api.clone();
            tokio::spawn(async move {
                for i in (w..LIST_SIZE).step_by(8) {
                    api.create(&PostParams::default(), &pod(&format!("p{i:04}")))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for f in fill {
        f.await.unwrap();
    }

    println!(
        "tinykube-apiserver: API latency over HTTPS with kube-rs clients ({} CPUs)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!(
        "{:>7}  {:<26} {:>6} {:>10} {:>10} {:>10}   anchor",
        "clients", "operation", "count", "p50", "p99", "ops/s"
    );
    let mut results: HashMap<(usize, &str), Sample> = HashMap::new();
    for &n in &CONCURRENCY {
        let mut clients = Vec::new();
        for _ in 0..n {
            clients.push(client(&kubeconfig).await);
        }
        let ns = format!("bench-{n}");
        ensure_namespace(&admin, &ns).await;

        let creates_per_client = (2400 / n).max(60);
        let nsc = ns.clone();
        let create = run(&clients, creates_per_client, move |c, w, i| {
            let ns = nsc.clone();
            async move {
                Api::<Pod>::namespaced(c, &ns)
                    .create(&PostParams::default(), &pod(&format!("c{w}-{i}")))
                    .await
                    .unwrap();
            }
        })
        .await;

        let nsg = ns.clone();
        let get = run(&clients, (4000 / n).max(100), move |c, w, i| {
            let ns = nsg.clone();
            let name = format!("c{w}-{}", i % creates_per_client);
            async move {
                Api::<Pod>::namespaced(c, &ns).get(&name).await.unwrap();
            }
        })
        .await;

        let list = run(&clients, (64 / n).max(2), |c, _, _| async move {
            let pods = Api::<Pod>::namespaced(c, "bench-list")
                .list(&ListParams::default())
                .await
                .unwrap();
            assert_eq!(pods.items.len(), LIST_SIZE);
        })
        .await;

        // Watch latency: one watcher, the clients create; time from create start to the event.
        let wns = format!("{ns}-watch");
        ensure_namespace(&admin, &wns).await;
        let wapi: Api<Pod> = Api::namespaced(admin.clone(), &wns);
        let rv = wapi
            .list(&ListParams::default())
            .await
            .unwrap()
            .metadata
            .resource_version
            .unwrap();
        let sent: Arc<Mutex<HashMap<String, Instant>>> = Default::default();
        let events = (200 / n).max(20) * n;
        let watcher = {
            let sent = sent.clone();
            let stream = wapi.watch(&WatchParams::default(), &rv).await.unwrap();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut stream = stream.boxed();
                while lat.len() < events {
                    if let Some(WatchEvent::Added(p)) = stream.try_next().await.unwrap() {
                        let name = p.metadata.name.unwrap();
                        let t = sent.lock().unwrap().remove(&name).expect("sent");
                        lat.push(t.elapsed());
                    }
                }
                lat
            })
        };
        let start = Instant::now();
        let sent2 = sent.clone();
        run(&clients, events / n, move |c, w, i| {
            let ns = wns.clone();
            let sent = sent2.clone();
            async move {
                let name = format!("w{w}-{i}");
                sent.lock().unwrap().insert(name.clone(), Instant::now());
                Api::<Pod>::namespaced(c, &ns)
                    .create(&PostParams::default(), &pod(&name))
                    .await
                    .unwrap();
            }
        })
        .await;
        let watch = Sample {
            latencies: tokio::time::timeout(Duration::from_secs(60), watcher)
                .await
                .unwrap()
                .unwrap(),
            elapsed: start.elapsed(),
        };

        for (label, s, anchor) in [
            (
                "create pod",
                &create,
                "SLO: mutating p99 <= 1 s; etcd: 583 writes/s (1 client), 44k/s (1000 clients)",
            ),
            ("get pod", &get, "SLO: get p99 <= 1 s"),
            (
                "list 1000 pods (1 ns)",
                &list,
                "SLO: namespace list p99 <= 5 s",
            ),
            (
                "watch event latency",
                &watch,
                "(create start -> event at watcher)",
            ),
        ] {
            println!(
                "{:>7}  {:<26} {:>6} {:>10} {:>10} {:>10.0}   {anchor}",
                n,
                label,
                s.latencies.len(),
                ms(s.pct(0.5)),
                ms(s.pct(0.99)),
                s.rate()
            );
        }
        results.insert((n, "create"), create);
        results.insert((n, "get"), get);
    }
    println!();
    let create1 = results[&(1, "create")].pct(0.99);
    let get1 = results[&(1, "get")].pct(0.99);
    let rate32 = results[&(32, "create")].rate();
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "goal: 1-client create p99 <= 5 ms: {} ({})",
        ms(create1),
        verdict(create1 <= Duration::from_millis(5))
    );
    println!(
        "goal: 1-client get p99 <= 1 ms: {} ({})",
        ms(get1),
        verdict(get1 <= Duration::from_millis(1))
    );
    println!(
        "goal: >= 2000 creates/s with 32 clients: {rate32:.0}/s ({})",
        verdict(rate32 >= 2000.0)
    );
}
