//! `rollout status|history|undo|restart` and `set image` on a whole node: the bootcamp app
//! rolled from v1 to v2, back, and restarted, its pods answering the version expected, and
//! every `rollout history` and error compared with the installed kubectl's. Needs root.

mod common;

use std::collections::BTreeSet;

use common::{block_on, cli, eventually, text, tk};
use serde_json::Value;
use tinykube_e2e::http_get;
use tinykube_e2e::node::Node;

const V1: &str = "gcr.io/google-samples/kubernetes-bootcamp:v1";
const V2: &str = "gcr.io/google-samples/kubernetes-bootcamp:v2";

/// The deployment's live pods (not terminating): name and IP.
fn pods(node: &Node) -> Vec<(String, String)> {
    let list: Value =
        serde_json::from_str(&tk(node, &["get", "pods", "-l", "run=web", "-o", "json"])).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                p["status"]["podIP"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Waits until the deployment has `n` live pods that all answer with version `v`.
fn all_answer(node: &Node, n: usize, v: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    eventually(&format!("{n} pods answer v={v}"), 60, || {
        let now = pods(node);
        names = now.iter().map(|(n, _)| n.clone()).collect();
        now.len() == n
            && now.iter().all(|(_, ip)| {
                !ip.is_empty()
                    && block_on(http_get(&format!("{ip}:8080")))
                        .is_ok_and(|a| a.contains(&format!("| v={v}")))
            })
    });
    names
}

/// `rollout status` until the end: only kubectl's waiting lines, then the success line.
fn rolled_out(node: &Node) {
    let out = tk(
        node,
        &["rollout", "status", "deployment/web", "--timeout=120s"],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.last(),
        Some(&"deployment \"web\" successfully rolled out"),
        "{out}"
    );
    for l in &lines[..lines.len() - 1] {
        assert!(
            l.starts_with("Waiting for deployment \"web\" rollout to finish: ")
                && l.ends_with("..."),
            "{out}"
        );
    }
}

/// tkctl's and kubectl's output and exit code for the same arguments.
fn both(node: &Node, args: &[&str]) -> (String, String) {
    let ours = cli(node, "tkctl", args);
    let theirs = cli(node, "kubectl", args);
    let show = |o: &std::process::Output| {
        format!(
            "{}{}exit {:?}",
            text(&o.stdout),
            text(&o.stderr),
            o.status.code()
        )
    };
    (show(&ours), show(&theirs))
}

/// The same output from both clients, and both succeeded.
fn same(node: &Node, args: &[&str]) -> String {
    same_exit(node, args, 0)
}

/// The same output from both clients, and both exited with `code`.
fn same_exit(node: &Node, args: &[&str], code: i32) -> String {
    let (ours, theirs) = both(node, args);
    assert_eq!(ours, theirs, "{args:?}");
    assert!(
        ours.ends_with(&format!("exit Some({code})")),
        "{args:?}: {ours}"
    );
    ours
}

#[test]
fn rollouts_like_kubectl() {
    let node = Node::start();
    node.wait_ready();
    node.net.run(|| {
        let out = tk(
            &node,
            &[
                "run",
                "web",
                &format!("--image={V1}"),
                "--port=8080",
                "--replicas=2",
            ],
        );
        assert_eq!(out, "deployment.apps/web created\n");
        rolled_out(&node);
        let first = all_answer(&node, 2, "1");
        assert_eq!(
            same(&node, &["rollout", "history", "deployment/web"]),
            "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n\nexit Some(0)"
        );

        // set image: a new revision, the pods answer v=2.
        assert_eq!(
            tk(&node, &["set", "image", "deployment/web", &format!("web={V2}")]),
            "deployment.apps/web image updated\n"
        );
        rolled_out(&node);
        let second = all_answer(&node, 2, "2");
        assert!(first.is_disjoint(&second), "{first:?} {second:?}");
        assert_eq!(
            same(&node, &["rollout", "history", "deploy/web"]),
            "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n\nexit Some(0)"
        );
        let rev2 = same(&node, &["rollout", "history", "deployment", "web", "--revision=2"]);
        assert!(
            rev2.starts_with("deployment.apps/web with revision #2\nPod Template:\n  Labels:\tpod-template-hash="),
            "{rev2}"
        );
        assert!(rev2.contains(&format!("    Image:\t{V2}\n")), "{rev2}");
        // The same image again changes nothing and prints nothing, as kubectl.
        assert_eq!(
            same(&node, &["set", "image", "deployment/web", &format!("web={V2}")]),
            "exit Some(0)"
        );
        for (args, code) in [
            (&["set", "image", "deployment/web", "nope=busybox"][..], 1),
            (&["set", "image", "deployment/nope", "web=busybox"], 1),
            (&["rollout", "status", "deployment/web", "--revision=1"], 1),
            (&["rollout", "history", "deployment/web", "--revision=7"], 1),
            (&["rollout", "undo", "deployment/web", "--to-revision=9"], 1),
            (&["rollout", "undo", "deployment/web", "--to-revision=2"], 0),
            (&["rollout", "status", "replicaset/nope"], 1),
        ] {
            same_exit(&node, args, code);
        }

        // undo: back to v1's template as revision 3.
        assert_eq!(
            tk(&node, &["rollout", "undo", "deployment/web"]),
            "deployment.apps/web rolled back\n"
        );
        rolled_out(&node);
        let third = all_answer(&node, 2, "1");
        assert!(second.is_disjoint(&third));
        assert_eq!(
            same(&node, &["rollout", "history", "deployment/web"]),
            "deployment.apps/web \nREVISION  CHANGE-CAUSE\n2         <none>\n3         <none>\n\nexit Some(0)"
        );

        // restart: new pods, a new revision, the same image.
        assert_eq!(
            tk(&node, &["rollout", "restart", "deployment/web"]),
            "deployment.apps/web restarted\n"
        );
        rolled_out(&node);
        let fourth = all_answer(&node, 2, "1");
        assert!(third.is_disjoint(&fourth), "{third:?} {fourth:?}");
        assert_eq!(
            same(&node, &["rollout", "history", "deployment/web"]),
            "deployment.apps/web \nREVISION  CHANGE-CAUSE\n2         <none>\n3         <none>\n4         <none>\n\nexit Some(0)"
        );
        let rev4 = same(&node, &["rollout", "history", "deployment/web", "--revision=4"]);
        assert!(
            rev4.contains("  Annotations:\tkubectl.kubernetes.io/restartedAt: "),
            "{rev4}"
        );

        // kubectl's own undo (a JSON patch) to revision 2, read back by tkctl.
        let out = cli(
            &node,
            "kubectl",
            &["rollout", "undo", "deployment/web", "--to-revision=2"],
        );
        assert_eq!(text(&out.stdout), "deployment.apps/web rolled back\n");
        rolled_out(&node);
        all_answer(&node, 2, "2");
        same(&node, &["rollout", "history", "deployment/web"]);

        // A rollout that cannot progress: kubectl's waiting line, then its deadline error.
        tk(
            &node,
            &["run", "stuck", "--image=localhost:5000/nothing-here:v0"],
        );
        let out = cli(
            &node,
            "kubectl",
            &[
                "patch",
                "deployment",
                "stuck",
                "--type=merge",
                "-p",
                r#"{"spec":{"progressDeadlineSeconds":1}}"#,
            ],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        eventually("the deadline passes", 30, || {
            let (ours, theirs) = both(&node, &["rollout", "status", "deployment/stuck"]);
            ours == theirs
                && ours.ends_with(
                    "error: deployment \"stuck\" exceeded its progress deadline\nexit Some(1)",
                )
        });
        tk(&node, &["delete", "deployment", "web", "stuck"]);
    });
    let out = node.cleanup();
    assert!(out.status.success(), "{}", text(&out.stderr));
}
