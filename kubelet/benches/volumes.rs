//! ConfigMap update → visible in the pods' volumes: 10 running pods mount one ConfigMap; the
//! ConfigMap is updated 50 times and each update is timed from the API's answer until every
//! pod's file holds it (read where the container reads it, the pod's volume directory, polled
//! every millisecond), once every pod is Ready. Prints p50/p99/max per pod beside Kubernetes' anchor (the kubelet's
//! sync period, 1 min, plus its cache's TTL). A whole node in its own network namespace.
//!
//! Run with `hack/bench/volumes.sh` (builds everything first).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tinykube_e2e::node::Node;

const PODS: usize = 10;
const UPDATES: usize = 50;

fn main() {
    let node = Node::start();
    let pods_dir = node.kubelet_dir().join("pods");
    node.net.block_on(async {
        let client = node.apiserver.client("admin").await;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let pods: Api<Pod> = Api::namespaced(client, "default");
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "site"}, "data": {"version": "v0"}
        }))
        .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
        let mut uids = Vec::new();
        for i in 0..PODS {
            let p: Pod = serde_json::from_value(json!({
                "metadata": {"name": format!("reader-{i}")},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "c", "image": "busybox:latest",
                        "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"],
                        "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]}],
                    "volumes": [{"name": "cfg", "configMap": {"name": "site"}}],
                }
            }))
            .unwrap();
            let made = pods.create(&PostParams::default(), &p).await.unwrap();
            uids.push(made.metadata.uid.unwrap());
        }
        let files: Vec<PathBuf> = uids
            .iter()
            .map(|u| pods_dir.join(u).join("volumes/cfg/version"))
            .collect();
        let wait_all = |want: String, limit: Duration| {
            let files = files.clone();
            async move {
                let t = Instant::now();
                let mut seen = vec![None; files.len()];
                while seen.iter().any(Option::is_none) {
                    for (f, s) in files.iter().zip(seen.iter_mut()) {
                        if s.is_none() && std::fs::read_to_string(f).ok().as_deref() == Some(&want)
                        {
                            *s = Some(t.elapsed());
                        }
                    }
                    assert!(
                        t.elapsed() < limit,
                        "{want} not in every pod within {limit:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                seen.into_iter().map(Option::unwrap).collect::<Vec<_>>()
            }
        };
        wait_all("v0".into(), Duration::from_secs(180)).await;
        // Timed from steady state: every pod running and Ready (not while workers still
        // start containers).
        let t = Instant::now();
        loop {
            let list = pods.list(&Default::default()).await.unwrap();
            let ready = list
                .items
                .iter()
                .filter(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        })
                })
                .count();
            if ready == PODS {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(180), "pods not Ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut delays = Vec::new();
        for v in 1..=UPDATES {
            let want = format!("v{v}");
            let patch = json!({"data": {"version": want}});
            cms.patch("site", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
            let these = wait_all(want, Duration::from_secs(120)).await;
            if std::env::var_os("VOLUMES_BENCH_EACH").is_some() {
                eprintln!("v{v}: {:?}", these);
            }
            delays.extend(these);
        }
        delays.sort();
        let at = |q: f64| delays[((delays.len() - 1) as f64 * q).round() as usize];
        println!(
            "configMap update → visible in the pod's volume ({PODS} pods, {UPDATES} updates): \
             p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms  (anchor: Kubernetes' kubelet, up to its \
             1-min sync period + cache TTL)",
            at(0.5).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
            delays[delays.len() - 1].as_secs_f64() * 1e3,
        );
    });
}
