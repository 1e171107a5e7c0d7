//! Proxy benchmark.
//!
//! 1. Sync time for 1 … 10,000 services with 2 endpoints each, in a scratch network namespace
//!    with the real iptables: render time and `iptables-restore` time, for the first (full)
//!    sync and for a sync after a one-service change.
//! 2. Network programming latency on a real node (apiserver, kubelet, registry, proxy from the
//!    built binaries): NodePort service created → first successful connect through it, p50/p99.
//!
//! Run with `hack/bench/proxy.sh`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use tinykube_e2e::node::{Node, NodeNet, NODE_IP};
use tinykube_proxy::iptables::Iptables;
use tinykube_proxy::model::{Endpoint, ServicePort};
use tinykube_proxy::render::{render, Config};

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ports(n: usize, generation: u8) -> Vec<ServicePort> {
    (0..n)
        .map(|i| {
            let (a, b) = ((i >> 8) as u8, (i & 0xff) as u8);
            // Service 0's endpoints move with `generation` (the one-service change).
            let g = if i == 0 { generation } else { 0 };
            ServicePort {
                namespace: "bench".into(),
                name: format!("svc-{i}"),
                port_name: String::new(),
                protocol: "tcp".into(),
                cluster_ip: Some(format!("10.96.{a}.{b}")),
                port: 80,
                node_port: Some(30000 + (i % 2768) as u16),
                external_ips: vec![],
                load_balancer_ips: vec![],
                affinity_seconds: None,
                external_local: false,
                internal_local: false,
                endpoints: (0..2u8)
                    .map(|k| Endpoint {
                        ip: format!("10.{}.{a}.{}", 100 + k + g, b),
                        port: 8080,
                        ready: true,
                        serving_terminating: false,
                        local: true,
                    })
                    .collect(),
            }
        })
        .collect()
}

fn sync_times() {
    let ipt = Iptables::detect();
    let cfg = Config {
        cluster_cidr: Some("10.244.0.0/24".into()),
    };
    println!(
        "sync time ({}), services with 2 endpoints each:",
        ipt.restore
    );
    println!(
        "  services   render(full)  restore(full)  render(1 change)  restore(1 change)  rules"
    );
    for n in [1usize, 100, 1000, 5000, 10000] {
        let net = NodeNet::create("tk-bench-proxy");
        let row = net.run(|| {
            let t = Instant::now();
            let full = render(&ports(n, 0), &cfg);
            let full_text = full.restore_text(None, &BTreeSet::new());
            let render_full = t.elapsed();
            let t = Instant::now();
            ipt.restore(&full_text).expect("full restore");
            let restore_full = t.elapsed();
            // A partial sync: only the changed service's chains and the top-level ones.
            let t = Instant::now();
            let changed = render(&ports(n, 1), &cfg);
            let text = changed.restore_text(Some(&full), &BTreeSet::new());
            let render_one = t.elapsed();
            let t = Instant::now();
            ipt.restore(&text).expect("restore after one change");
            let restore_one = t.elapsed();
            let rules = full_text.lines().filter(|l| l.starts_with("-A")).count();
            (render_full, restore_full, render_one, restore_one, rules)
        });
        println!(
            "  {n:>8}   {:>12}  {:>13}  {:>16}  {:>17}  {:>5}",
            ms(row.0),
            ms(row.1),
            ms(row.2),
            ms(row.3),
            row.4
        );
    }
    println!(
        "  goals: one-service change in force < 50 ms at 1,000 services; full sync of 10,000 < 2 s \
         (kube-proxy: min-sync-period 1 s; one rule add took 11 min at 5k services before restore batching)"
    );
}

fn programming_latency() {
    let node = Node::start();
    node.wait_ready();
    node.start_proxy();
    node.net.block_on(async {
        let client = node.apiserver.client("admin").await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let services: Api<Service> = Api::namespaced(client.clone(), "default");
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "backend", "labels": {"app": "backend"}},
            "spec": {"containers": [{"name": "web", "image": "gcr.io/google-samples/kubernetes-bootcamp:v1"}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let p = pods.get("backend").await.unwrap();
            let ready = p
                .status
                .and_then(|s| s.conditions)
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "backend never ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut lat = Vec::new();
        for i in 0..30 {
            let port = 31000 + i;
            let svc: Service = serde_json::from_value(json!({
                "metadata": {"name": format!("np-{i}")},
                "spec": {"type": "NodePort", "selector": {"app": "backend"},
                         "ports": [{"port": 80, "targetPort": 8080, "nodePort": port}]},
            }))
            .unwrap();
            let t = Instant::now();
            services.create(&PostParams::default(), &svc).await.unwrap();
            loop {
                if tokio::net::TcpStream::connect(format!("{NODE_IP}:{port}"))
                    .await
                    .is_ok()
                {
                    break;
                }
                assert!(t.elapsed() < Duration::from_secs(30), "service {i} never answered");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            lat.push(t.elapsed());
            services
                .delete(&format!("np-{i}"), &DeleteParams::default())
                .await
                .unwrap();
        }
        println!(
            "network programming latency (NodePort service created → first connect through it, 30 services): p50 {}  p99 {}",
            ms(pct(&mut lat, 0.5)),
            ms(pct(&mut lat, 0.99))
        );
        println!("  anchor: kube-proxy min-sync-period 1 s; p50 ≈ 5 s at 5000 nodes with partial sync (KEP-3453)");
    });
}

fn main() {
    sync_times();
    programming_latency();
}
