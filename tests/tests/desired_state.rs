//! Desired state, as a user sees it: a deployment of the bootcamp behind a NodePort, asked
//! every 50 ms the whole time, while its container is killed from the host, its pod is deleted
//! and it is scaled to three. The node (apiserver, kubelet, proxy, registry) runs in a network
//! namespace of its own. Needs root.

mod common;

use std::collections::BTreeSet;

use common::{
    answering, bootcamp_processes, eventually, ok, pods, pods_seen, remove_web, serve_web, summary,
    text, wait_listening, Outcome, PodInfo, Prober,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tinykube_e2e::node::Node;

const SELECTOR: &str = "run=web";

/// The one running pod of the deployment (waits for it, and for it to listen).
fn the_pod(node: &Node, what: &str) -> PodInfo {
    let mut found = None;
    eventually(what, 60, || {
        let ps = pods(node, SELECTOR);
        found = (ps.len() == 1 && ps[0].running_ready).then(|| ps[0].clone());
        found.is_some()
    });
    let pod = found.unwrap();
    wait_listening(&pod.ip);
    pod
}

#[test]
fn a_deployment_heals_itself_and_scales_behind_its_node_port() {
    let node = Node::start();
    node.wait_ready();
    node.start_proxy();
    node.net.run(|| {
        let addr = serve_web(&node, 1);
        let first = the_pod(&node, "the first pod runs");
        let mut known: BTreeSet<String> = BTreeSet::from([first.name.clone()]);
        eventually("the NodePort answers", 20, || {
            common::http_get(&addr).is_ok_and(|a| a.contains("Running on: web-"))
        });
        let prober = Prober::start(&node, &addr);
        prober.wait_probes(10);

        // (a) The container's process killed from the host: the kubelet starts it again in
        // the same pod (RESTARTS 1), and it answers again.
        let procs = bootcamp_processes(&node, &first.uid);
        assert_eq!(procs.len(), 1, "the bootcamp of {}: {procs:?}", first.name);
        let mark = prober.mark();
        kill(Pid::from_raw(procs[0]), Signal::SIGKILL).expect("kill -9 of the container");
        eventually("RESTARTS becomes 1", 30, || {
            pods(&node, SELECTOR)
                .first()
                .is_some_and(|p| p.name == first.name && p.restarts == 1 && p.running_ready)
        });
        let restarted = bootcamp_processes(&node, &first.uid);
        assert_eq!(restarted.len(), 1, "{restarted:?}");
        assert_ne!(restarted, procs, "a new process");
        let table = ok(&node, "tkctl", &["get", "pods", "-l", SELECTOR]);
        let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            row[..4],
            [first.name.as_str(), "1/1", "Running", "1"],
            "{table}"
        );
        eventually("the restarted container answers", 30, || {
            pods_seen(&prober.since(mark)).contains(&first.name)
                && matches!(
                    prober.since(mark).last().map(|p| &p.outcome),
                    Some(Outcome::Pod(_))
                )
        });
        let (_, failed, wrong, gap) = summary(&prober.since(mark));
        assert!(wrong.is_empty(), "wrong answers: {wrong:?}");
        eprintln!("container killed: {failed} failed requests, longest gap {gap:?}");

        // (b) The pod deleted: the ReplicaSet makes another, which answers.
        let mark = prober.mark();
        let out = ok(&node, "tkctl", &["delete", "pod", &first.name]);
        assert_eq!(out, format!("pod \"{}\" deleted\n", first.name));
        let second = the_pod(&node, "a new pod replaces the deleted one");
        assert_ne!(second.name, first.name);
        assert!(second.name.starts_with("web-"), "{}", second.name);
        known.insert(second.name.clone());
        eventually("the new pod answers through the NodePort", 30, || {
            pods_seen(&prober.since(mark)).contains(&second.name)
        });
        let (_, failed, wrong, gap) = summary(&prober.since(mark));
        assert!(wrong.is_empty(), "wrong answers: {wrong:?}");
        eprintln!("pod deleted: {failed} failed requests, longest gap {gap:?}");

        // (c) Scaled to 3: three pods answer, on fresh connections.
        assert_eq!(
            ok(&node, "tkctl", &["scale", "deployment/web", "--replicas=3"]),
            "deployment.apps/web scaled\n"
        );
        let mut three = Vec::new();
        eventually("3 pods run", 60, || {
            three = pods(&node, SELECTOR);
            three.len() == 3 && three.iter().all(|p| p.running_ready)
        });
        for p in &three {
            wait_listening(&p.ip);
            known.insert(p.name.clone());
        }
        assert!(three.iter().any(|p| p.name == second.name));
        let names: BTreeSet<String> = three.iter().map(|p| p.name.clone()).collect();
        eventually("the service's endpoints hold the 3 pods", 20, || {
            common::endpoint_ips(&node, "web").len() == 3
        });
        assert_eq!(answering(&addr, 60), names);

        // Throughout: never a wrong answer, and every answer from a pod of the deployment.
        let all = prober.stop();
        let (answered, failed, wrong, gap) = summary(&all);
        eprintln!("in all: {answered} answers, {failed} failed, longest gap {gap:?}");
        assert!(wrong.is_empty(), "wrong answers: {wrong:?}");
        let seen = pods_seen(&all);
        assert!(
            seen.is_subset(&known),
            "answers from {seen:?}, pods {known:?}"
        );

        remove_web(&node);
    });
    node.kill_proxy();
    node.kill_kubelet();
    let out = node.cleanup();
    assert!(out.status.success(), "{}", text(&out.stderr));
}
