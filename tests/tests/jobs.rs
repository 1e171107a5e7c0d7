//! Jobs as the Kubernetes docs write them (issue 21), on a real node with the installed
//! kubectl: a Job runs its completions with its parallelism and is Complete (`kubectl wait
//! --for=condition=complete`, `kubectl logs job/…`), leaving no tracking finalizer behind; an
//! Indexed Job gives each pod its JOB_COMPLETION_INDEX; a failing Job backs off and fails with
//! BackoffLimitExceeded; `kubectl create job` works; a finished Job with
//! ttlSecondsAfterFinished goes; deleting a Job takes its pods with it.

mod common;

use common::{eventually, text};
use tinykube_e2e::node::Node;

const NS: &str = "jobs";

fn ok(node: &Node, args: &[&str]) -> String {
    common::ok_in(node, NS, args)
}

fn apply(node: &Node, manifest: &str) {
    common::apply_in(node, NS, manifest)
}

fn jsonpath(node: &Node, what: &str, path: &str) -> String {
    ok(node, &["get", what, "-o", &format!("jsonpath={path}")])
}

/// The docs' pi Job, with busybox for perl: three completions, two at a time.
const PI: &str = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: pi
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      containers:
      - name: pi
        image: busybox
        command: ["sh", "-c", "echo 3.14159"]
      restartPolicy: Never
  backoffLimit: 4
"#;

const INDEXED: &str = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: indexed
spec:
  completions: 3
  parallelism: 3
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: worker
        image: busybox
        command: ["sh", "-c", "echo $JOB_COMPLETION_INDEX $(hostname)"]
"#;

const FAILING: &str = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: failing
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: fail
        image: busybox
        command: ["sh", "-c", "exit 3"]
"#;

const TTL: &str = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: short-lived
spec:
  ttlSecondsAfterFinished: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox
        command: ["true"]
"#;

fn pi(node: &Node) {
    apply(node, PI);
    ok(
        node,
        &[
            "wait",
            "--for=condition=complete",
            "job/pi",
            "--timeout=120s",
        ],
    );
    let table = ok(node, &["get", "job", "pi"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..3], ["pi", "Complete", "3/3"], "{table}");
    assert_eq!(ok(node, &["logs", "job/pi"]), "3.14159\n");
    assert_eq!(
        jsonpath(
            node,
            "job/pi",
            "{.status.succeeded} {.status.failed} {.status.active} {.status.conditions[*].type}"
        ),
        "3 0 0 SuccessCriteriaMet Complete"
    );
    let pods = "-lbatch.kubernetes.io/job-name=pi";
    assert_eq!(
        ok(
            node,
            &[
                "get",
                "pods",
                pods,
                "-o",
                "jsonpath={range .items[*]}{.status.phase} {.metadata.finalizers}{\"\\n\"}{end}"
            ]
        ),
        "Succeeded \n".repeat(3),
        "every pod succeeded and was counted (its tracking finalizer is gone)"
    );
    let created = ok(
        node,
        &[
            "get",
            "events",
            "--field-selector=involvedObject.name=pi,reason=SuccessfulCreate",
            "-o",
            "jsonpath={.items[*].count}",
        ],
    );
    let created: u32 = created
        .split_whitespace()
        .map(|c| c.parse::<u32>().unwrap())
        .sum();
    assert_eq!(created, 3, "one pod per completion");
}

fn indexed(node: &Node) {
    apply(node, INDEXED);
    ok(
        node,
        &[
            "wait",
            "--for=condition=complete",
            "job/indexed",
            "--timeout=120s",
        ],
    );
    assert_eq!(
        jsonpath(node, "job/indexed", "{.status.completedIndexes}"),
        "0-2"
    );
    let names = ok(
        node,
        &[
            "get",
            "pods",
            "-lbatch.kubernetes.io/job-name=indexed",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
    );
    let mut seen: Vec<String> = names
        .split_whitespace()
        .map(|p| ok(node, &["logs", p]).trim().to_string())
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        ["0 indexed-0", "1 indexed-1", "2 indexed-2"],
        "each pod knows its index and is named for it"
    );
}

fn failing(node: &Node) {
    apply(node, FAILING);
    ok(
        node,
        &[
            "wait",
            "--for=condition=failed",
            "job/failing",
            "--timeout=120s",
        ],
    );
    assert_eq!(
        jsonpath(
            node,
            "job/failing",
            "{.status.failed} {.status.conditions[?(@.type==\"Failed\")].reason}"
        ),
        "2 BackoffLimitExceeded"
    );
    let events = ok(
        node,
        &[
            "get",
            "events",
            "--field-selector=involvedObject.name=failing,reason=BackoffLimitExceeded",
            "-o",
            "jsonpath={.items[*].message}",
        ],
    );
    assert_eq!(events, "Job has reached the specified backoff limit");
    let table = ok(node, &["get", "job", "failing"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..3], ["failing", "Failed", "0/1"], "{table}");
}

fn create_and_delete(node: &Node) {
    ok(
        node,
        &[
            "create",
            "job",
            "hello",
            "--image=busybox",
            "--",
            "echo",
            "hello",
        ],
    );
    ok(
        node,
        &[
            "wait",
            "--for=condition=complete",
            "job/hello",
            "--timeout=120s",
        ],
    );
    assert_eq!(ok(node, &["logs", "job/hello"]), "hello\n");
    ok(node, &["delete", "job", "hello"]);
    eventually("the Job's pods are gone with it", 60, || {
        ok(
            node,
            &[
                "get",
                "pods",
                "-lbatch.kubernetes.io/job-name=hello",
                "-o",
                "name",
            ],
        )
        .is_empty()
    });

    apply(node, TTL);
    eventually("a finished Job past its TTL is deleted", 60, || {
        let out = common::kubectl_in(node, NS, &["get", "job", "short-lived"]);
        !out.status.success() && text(&out.stderr).contains("NotFound")
    });
}

#[test]
fn jobs_run_to_completion_fail_and_go() {
    let node = Node::start();
    node.wait_ready();
    node.net.run(|| {
        common::ok(&node, "kubectl", &["create", "namespace", NS]);
        pi(&node);
        indexed(&node);
        failing(&node);
        create_and_delete(&node);
        common::ok(
            &node,
            "kubectl",
            &["delete", "namespace", NS, "--timeout=90s"],
        );
    });
    node.kill_kubelet();
    let out = node.cleanup();
    assert!(out.status.success(), "{}", text(&out.stderr));
}
