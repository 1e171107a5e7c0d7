//! Faults: each daemon of the node (apiserver, kubelet, proxy) `kill -9`ed in turn while a
//! deployment behind a NodePort is asked every 50 ms. While a daemon is down the app keeps
//! answering; once it is back (same flags, data dir and port) everything converges: the node
//! Ready, as many pods as replicas and no more (in the API and on the node), the endpoints
//! holding them all, the NodePort reaching each, and a change made after the restart carried
//! out. The node runs in a network namespace of its own. Needs root.

mod common;

use std::collections::BTreeSet;

use common::{
    all_answer, bootcamp_processes, cli, endpoint_ips, eventually, ok, pod_cgroups, pods,
    pods_seen, remove_web, serve_web, summary, text, wait_listening, PodInfo, Prober,
};
use tinykube_e2e::node::Node;

const SELECTOR: &str = "run=web";

/// When the node's kubelet last renewed its Lease (None if it never did).
fn lease_renewed(node: &Node) -> Option<k8s_openapi::jiff::Timestamp> {
    use k8s_openapi::api::coordination::v1::Lease;
    node.net.block_on(async {
        let client = node.apiserver.client("admin").await;
        let leases: kube::Api<Lease> = kube::Api::namespaced(client, "kube-node-lease");
        let lease = leases.get(&node.name).await.ok()?;
        Some(lease.spec?.renew_time?.0)
    })
}

/// Waits until the node has converged on `replicas` pods of the deployment; returns them.
fn converged(node: &Node, replicas: usize, addr: &str) -> Vec<PodInfo> {
    let mut ps = Vec::new();
    eventually(&format!("{replicas} pods run"), 60, || {
        ps = pods(node, SELECTOR);
        ps.len() == replicas && ps.iter().all(|p| p.running_ready && !p.deleting)
    });
    for p in &ps {
        wait_listening(&p.ip);
    }
    let uids: BTreeSet<String> = ps.iter().map(|p| p.uid.clone()).collect();
    eventually("the node runs those pods and no others", 30, || {
        pod_cgroups(node) == uids
            && ps
                .iter()
                .all(|p| bootcamp_processes(node, &p.uid).len() == 1)
    });
    let mut ips: Vec<String> = ps.iter().map(|p| p.ip.clone()).collect();
    ips.sort();
    eventually("the endpoints hold every pod", 30, || {
        endpoint_ips(node, "web") == ips
    });
    let names: BTreeSet<String> = ps.iter().map(|p| p.name.clone()).collect();
    eventually("the NodePort reaches every pod", 30, || {
        all_answer(addr, &names)
    });
    let nodes = ok(node, "tkctl", &["get", "nodes"]);
    let row: Vec<&str> = nodes.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..2], [node.name.as_str(), "Ready"], "{nodes}");
    ps
}

#[test]
fn the_app_survives_each_daemon_killed_and_the_node_converges_after() {
    let node = Node::start();
    node.wait_ready();
    node.start_proxy();
    node.net.run(|| {
        let addr = serve_web(&node, 2);
        let mut replicas = 2;
        let mut known: BTreeSet<String> = converged(&node, replicas, &addr)
            .into_iter()
            .map(|p| p.name)
            .collect();
        let prober = Prober::start(&node, &addr);

        for daemon in ["apiserver", "kubelet", "proxy"] {
            let before = pods(&node, SELECTOR);
            let mark = prober.mark();
            match daemon {
                "apiserver" => node.kill_apiserver(),
                "kubelet" => node.kill_kubelet(),
                _ => node.kill_proxy(),
            }
            if daemon == "apiserver" {
                let out = cli(&node, "tkctl", &["get", "pods"]);
                assert!(!out.status.success(), "the apiserver still answers");
            }
            // Down for ~2 s (40 requests): every one answered.
            prober.wait_probes(40);
            let down = prober.since(mark);
            let (answered, failed, wrong, _) = summary(&down);
            assert!(wrong.is_empty(), "{daemon} down: wrong answers {wrong:?}");
            assert_eq!(
                (answered, failed),
                (down.len(), 0),
                "{daemon} down: requests failed"
            );
            let restarted = k8s_openapi::jiff::Timestamp::now();
            match daemon {
                "apiserver" => node.restart_apiserver(),
                "kubelet" => node.start_kubelet(),
                _ => node.start_proxy(),
            }
            // The kubelet's heartbeats go on (else the node would turn NotReady).
            if daemon != "proxy" {
                eventually("the node's Lease is renewed", 20, || {
                    lease_renewed(&node).is_some_and(|t| t > restarted)
                });
            }
            // The same pods, not restarted (a restarted kubelet adopts its containers).
            let after = converged(&node, replicas, &addr);
            assert_eq!(after, before, "after the {daemon}'s restart");
            // A change after the restart is carried out: the apiserver's controllers, the
            // kubelet and the proxy all follow it.
            replicas += 1;
            ok(
                &node,
                "tkctl",
                &["scale", "deployment/web", &format!("--replicas={replicas}")],
            );
            let after = converged(&node, replicas, &addr);
            assert!(before.iter().all(|p| after.contains(p)), "{after:?}");
            known.extend(after.into_iter().map(|p| p.name));
            let (answered, failed, _, gap) = summary(&prober.since(mark));
            eprintln!(
                "{daemon} killed and restarted: {answered} answers, {failed} failed, longest gap {gap:?}"
            );
        }

        let all = prober.stop();
        let (answered, failed, wrong, _) = summary(&all);
        eprintln!("in all: {answered} answers, {failed} failed");
        assert!(wrong.is_empty(), "wrong answers: {wrong:?}");
        let seen = pods_seen(&all);
        assert!(seen.is_subset(&known), "answers from {seen:?}, pods {known:?}");

        remove_web(&node);
    });
    node.kill_proxy();
    node.kill_kubelet();
    let out = node.cleanup();
    assert!(out.status.success(), "{}", text(&out.stderr));
}
