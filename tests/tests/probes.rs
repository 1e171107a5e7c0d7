//! Probes as the Kubernetes docs write them (issue 19), on a real node with the installed
//! kubectl: a readiness probe takes a pod out of its Service's endpoints and puts it back
//! while a NodePort request loop never reaches it unready; a failing liveness probe restarts
//! its container with Kubernetes' events (counted, not repeated); a startup probe holds the
//! other two until the app is up. And a pod past its activeDeadlineSeconds fails; an exec
//! probe past its timeout leaves nothing running; a redirect to another host is a success
//! with a ProbeWarning event; gRPC probes against etcd, as the docs' example.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, text, Outcome, Prober};
use tinykube_e2e::node::{Node, NODE_IP};

const NS: &str = "probes";

fn ok(node: &Node, args: &[&str]) -> String {
    common::ok_in(node, NS, args)
}

fn apply(node: &Node, manifest: &str) {
    common::apply_in(node, NS, manifest)
}

/// `path` (a jsonpath of the list) of the events about pod `name` (with `reason`, if any).
fn events(node: &Node, name: &str, reason: &str, path: &str) -> String {
    let mut selector = format!("--field-selector=involvedObject.name={name}");
    if !reason.is_empty() {
        selector.push_str(&format!(",reason={reason}"));
    }
    ok(
        node,
        &[
            "get",
            "events",
            &selector,
            "-o",
            &format!("jsonpath={path}"),
        ],
    )
}

fn jsonpath(node: &Node, what: &str, path: &str) -> String {
    ok(node, &["get", what, "-o", &format!("jsonpath={path}")])
}

const WEB: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-a, labels: {app: web}}
spec:
  containers:
  - name: web
    image: gcr.io/google-samples/kubernetes-bootcamp:v1
    readinessProbe:
      exec: {command: [sh, -c, "test ! -e /tmp/down"]}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata: {name: web-b, labels: {app: web}}
spec:
  containers:
  - name: web
    image: gcr.io/google-samples/kubernetes-bootcamp:v1
    readinessProbe:
      httpGet: {path: /, port: 8080}
      initialDelaySeconds: 1
      periodSeconds: 1
"#;

/// The pods that answered in `probes`, and whether any request failed or got a wrong answer.
fn answered(probes: &[common::Probe]) -> (Vec<String>, Vec<String>) {
    let mut pods = Vec::new();
    let mut bad = Vec::new();
    for p in probes {
        match &p.outcome {
            Outcome::Pod(name) => {
                if !pods.contains(name) {
                    pods.push(name.clone());
                }
            }
            other => bad.push(format!("{other:?}")),
        }
    }
    (pods, bad)
}

fn readiness(node: &Node) {
    apply(node, WEB);
    ok(
        node,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/web-a",
            "pod/web-b",
            "--timeout=60s",
        ],
    );
    let port = jsonpath(node, "service/web", "{.spec.ports[0].nodePort}");
    let prober = Prober::start(node, &format!("{NODE_IP}:{port}"));
    eventually("both pods answer through the NodePort", 30, || {
        answered(&prober.since(0)).0.len() == 2
    });
    let ip_a = jsonpath(node, "pod/web-a", "{.status.podIP}");
    let endpoints = || jsonpath(node, "endpoints/web", "{.subsets[*].addresses[*].ip}");
    assert!(endpoints().contains(&ip_a));

    // The probe fails: the pod is unready, leaves the endpoints, and gets no more requests.
    ok(node, &["exec", "web-a", "--", "touch", "/tmp/down"]);
    eventually("web-a turns unready", 20, || {
        jsonpath(
            node,
            "pod/web-a",
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        ) == "False"
    });
    assert_eq!(
        jsonpath(node, "pod/web-a", "{.status.containerStatuses[0].ready}"),
        "false"
    );
    assert_eq!(jsonpath(node, "pod/web-a", "{.status.phase}"), "Running");
    eventually("web-a leaves the endpoints", 20, || {
        !endpoints().contains(&ip_a)
    });
    let gone = prober.mark();
    // Once the proxy has its rules (a few ms), 40 requests in a row (2 s) all reach web-b.
    eventually("only web-b answers", 20, || {
        let seen = prober.since(gone);
        seen.len() >= 40
            && seen[seen.len() - 40..]
                .iter()
                .all(|p| matches!(&p.outcome, Outcome::Pod(n) if n == "web-b"))
    });
    let events = events(node, "web-a", "Unhealthy", "{.items[*].message}");
    assert!(events.contains("Readiness probe failed: "), "{events}");

    // It passes again: back in the endpoints, and answering.
    ok(node, &["exec", "web-a", "--", "rm", "/tmp/down"]);
    let back = prober.mark();
    eventually("web-a answers again", 30, || {
        answered(&prober.since(back))
            .0
            .contains(&"web-a".to_string())
    });
    assert!(endpoints().contains(&ip_a));
    let (_, bad) = answered(&prober.stop());
    assert!(bad.is_empty(), "requests failed: {bad:?}");
}

const LIVENESS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: liveness-exec
  labels: {test: liveness}
spec:
  containers:
  - name: liveness
    image: busybox
    args: [/bin/sh, -c, "touch /tmp/healthy; sleep 2; rm -f /tmp/healthy; sleep 600"]
    livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
      initialDelaySeconds: 1
      periodSeconds: 1
      failureThreshold: 2
      # sh as PID 1 ignores SIGTERM: the kill comes after the probe's own grace period.
      terminationGracePeriodSeconds: 1
"#;

fn liveness(node: &Node) {
    apply(node, LIVENESS);
    let t = Instant::now();
    eventually("the container is restarted twice", 60, || {
        jsonpath(
            node,
            "pod/liveness-exec",
            "{.status.containerStatuses[0].restartCount}",
        )
        .parse::<u32>()
        .unwrap_or(0)
            >= 2
    });
    // Two instances of 2 s + 2 failed probes + 1 s grace each, well under the pod's 30 s.
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    let events = events(
        node,
        "liveness-exec",
        "",
        "{range .items[*]}{.reason}|{.count}|{.message}{\"\\n\"}{end}",
    );
    // One Killing event, counted once per kill.
    let killing: Vec<&str> = events
        .lines()
        .filter(|l| l.starts_with("Killing|"))
        .collect();
    assert_eq!(killing.len(), 1, "{events}");
    let (count, message) = killing[0]["Killing|".len()..].split_once('|').unwrap();
    assert!(count.parse::<u32>().unwrap() >= 2, "{events}");
    assert_eq!(
        message,
        "Container liveness failed liveness probe, will be restarted"
    );
    let unhealthy: Vec<&str> = events
        .lines()
        .filter(|l| l.starts_with("Unhealthy|"))
        .collect();
    assert_eq!(unhealthy.len(), 1, "one event, counted: {events}");
    // The probe's output is the message (its newline included, as Kubernetes keeps it).
    assert!(
        unhealthy[0].ends_with(
            "|Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory"
        ),
        "{events}"
    );
    let count: u32 = unhealthy[0].split('|').nth(1).unwrap().parse().unwrap();
    assert!(count >= 4, "{events}");
    let described = ok(node, &["describe", "pod", "liveness-exec"]);
    assert!(described.contains("Liveness:"), "{described}");
    assert!(
        described
            .lines()
            .any(|l| l.contains("Unhealthy") && l.contains(" (x") && l.contains(" over ")),
        "{described}"
    );
    assert_eq!(
        jsonpath(
            node,
            "pod/liveness-exec",
            "{.status.containerStatuses[0].lastState.terminated.exitCode}"
        ),
        "137"
    );
}

const STARTUP: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: slow-start}
spec:
  containers:
  - name: slow
    image: busybox
    command: [sh, -c, "sleep 3; mkdir -p /www; echo ok > /www/index.html; exec httpd -f -p 8080 -h /www"]
    ports: [{name: http, containerPort: 8080}]
    startupProbe:
      httpGet: {path: /, port: http}
      periodSeconds: 1
      failureThreshold: 30
    livenessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
      failureThreshold: 1
    readinessProbe:
      httpGet: {path: /index.html, port: 8080}
      periodSeconds: 1
"#;

fn startup(node: &Node) {
    apply(node, STARTUP);
    let state = || {
        jsonpath(
            node,
            "pod/slow-start",
            "{.status.containerStatuses[0].state.running.startedAt}|{.status.containerStatuses[0].started}|{.status.containerStatuses[0].ready}",
        )
    };
    // Running, not started, not ready: the app is still sleeping.
    eventually("the container runs, not yet started", 60, || {
        let s = state();
        !s.starts_with('|') && s.ends_with("|false|false")
    });
    ok(
        node,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/slow-start",
            "--timeout=60s",
        ],
    );
    assert!(state().ends_with("|true|true"), "{}", state());
    // The liveness probe (one failure kills) waited for the startup probe.
    assert_eq!(
        jsonpath(
            node,
            "pod/slow-start",
            "{.status.containerStatuses[0].restartCount}"
        ),
        "0"
    );
}

const DEADLINE: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: deadline}
spec:
  activeDeadlineSeconds: 3
  terminationGracePeriodSeconds: 1
  containers:
  - name: sleeper
    image: busybox
    command: [sleep, "600"]
"#;

/// A pod past its activeDeadlineSeconds fails with Kubernetes' reason and stops.
fn deadline(node: &Node) {
    apply(node, DEADLINE);
    let t = Instant::now();
    eventually("the pod fails past its deadline", 30, || {
        jsonpath(node, "pod/deadline", "{.status.phase}") == "Failed"
    });
    // 3 s of deadline, 1 s of grace, and the kubelet's wake-up at the deadline.
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    assert_eq!(
        jsonpath(node, "pod/deadline", "{.status.reason}|{.status.message}"),
        "DeadlineExceeded|Pod was active on the node longer than the specified deadline"
    );
    eventually("its container is stopped", 20, || {
        !jsonpath(
            node,
            "pod/deadline",
            "{.status.containerStatuses[0].state.terminated.exitCode}",
        )
        .is_empty()
    });
    let events = events(node, "deadline", "DeadlineExceeded", "{.items[*].message}");
    assert_eq!(
        events,
        "Pod was active on the node longer than the specified deadline"
    );
}

const SLOW_PROBE: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: slow-probe}
spec:
  containers:
  - name: app
    image: busybox
    command: [sleep, "600"]
    readinessProbe:
      exec: {command: [sleep, "30"]}
      periodSeconds: 1
      timeoutSeconds: 1
"#;

/// An exec probe past its timeout fails, and its command does not stay behind: a probe
/// every second that would run 30 s leaves at most the one in flight.
fn exec_timeout(node: &Node) {
    apply(node, SLOW_PROBE);
    eventually("the probe times out again and again", 60, || {
        let counts = events(node, "slow-probe", "Unhealthy", "{.items[*].count}");
        counts
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
            .sum::<u32>()
            >= 5
    });
    let message = events(node, "slow-probe", "Unhealthy", "{.items[0].message}");
    assert!(message.contains("timed out"), "{message}");
    let ps = ok(node, &["exec", "slow-probe", "--", "ps"]);
    let left = ps.lines().filter(|l| l.contains("sleep 30")).count();
    assert!(left <= 1, "probe commands left running:\n{ps}");
    assert_eq!(
        jsonpath(
            node,
            "pod/slow-probe",
            "{.status.containerStatuses[0].ready}"
        ),
        "false"
    );
}

const REDIRECTED: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: redirected}
spec:
  containers:
  - name: web
    image: busybox
    command: [sh, -c, 'while true; do printf "HTTP/1.1 302 Found\r\nLocation: http://example.invalid/login\r\nContent-Length: 5\r\n\r\nmoved" | nc -l -p 8080; done']
    readinessProbe:
      httpGet: {path: /, port: 8080}
      initialDelaySeconds: 1
      periodSeconds: 1
"#;

/// A readiness probe answered with a redirect to another host is not followed: the pod is
/// Ready, with Kubernetes' ProbeWarning event carrying the answer's body.
fn redirect_warning(node: &Node) {
    apply(node, REDIRECTED);
    ok(
        node,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/redirected",
            "--timeout=60s",
        ],
    );
    eventually("a ProbeWarning event", 30, || {
        !events(node, "redirected", "ProbeWarning", "{.items[*].message}").is_empty()
    });
    assert_eq!(
        events(
            node,
            "redirected",
            "ProbeWarning",
            "{.items[0].type} {.items[0].message}"
        ),
        "Warning Readiness probe warning: Probe terminated redirects, Response body: moved"
    );
    assert_eq!(
        events(node, "redirected", "Unhealthy", "{.items[*].message}"),
        "",
        "a redirect is no failure"
    );
}

/// The Kubernetes docs' gRPC liveness example (etcd serves the gRPC health protocol on its
/// client port), with a readiness probe of the same kind so that Ready shows the check
/// passing; and the same etcd asked for a service it does not know, which fails its liveness
/// probe with Kubernetes' words and is restarted.
const ETCD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: etcd-with-grpc
spec:
  containers:
  - name: etcd
    image: registry.k8s.io/etcd:3.4
    command: [ "/usr/local/bin/etcd", "--data-dir",  "/var/lib/etcd", "--listen-client-urls", "http://0.0.0.0:2379", "--advertise-client-urls", "http://127.0.0.1:2379", "--log-level", "debug"]
    ports:
    - containerPort: 2379
    livenessProbe:
      grpc:
        port: 2379
      initialDelaySeconds: 10
    readinessProbe:
      grpc:
        port: 2379
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata:
  name: etcd-unknown-service
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: etcd
    image: registry.k8s.io/etcd:3.4
    command: [ "/usr/local/bin/etcd", "--data-dir",  "/var/lib/etcd", "--listen-client-urls", "http://0.0.0.0:2379", "--advertise-client-urls", "http://127.0.0.1:2379"]
    livenessProbe:
      grpc:
        port: 2379
        service: nope
      initialDelaySeconds: 5
      periodSeconds: 1
      failureThreshold: 2
"#;

fn grpc(node: &Node) {
    let base = tinykube_images::busybox_layer(&tinykube_e2e::node::busybox()).unwrap();
    let image = tinykube_images::etcd_image(&base, &tinykube_e2e::node::etcd()).unwrap();
    node.push("etcd", "3.4", &image);
    apply(node, ETCD);
    ok(
        node,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/etcd-with-grpc",
            "--timeout=90s",
        ],
    );
    eventually("the unknown service's pod restarted", 90, || {
        jsonpath(
            node,
            "pod/etcd-unknown-service",
            "{.status.containerStatuses[0].restartCount}",
        )
        .parse::<u32>()
        .is_ok_and(|n| n >= 1)
    });
    // Under load etcd may still be starting at the first checks (those fail to connect);
    // once it serves, the unknown service is Kubernetes' NotFound.
    eventually("the unknown service's NotFound", 90, || {
        events(node, "etcd-unknown-service", "Unhealthy", "{.items[*].message}").contains(
            "Liveness probe failed: error: health rpc probe failed: rpc error: code = NotFound desc = unknown service",
        )
    });
    assert_eq!(
        jsonpath(
            node,
            "pod/etcd-with-grpc",
            "{.status.containerStatuses[0].ready} {.status.containerStatuses[0].restartCount}"
        ),
        "true 0",
        "the served health check keeps its pod ready and running"
    );
    ok(
        node,
        &[
            "delete",
            "pod",
            "etcd-with-grpc",
            "etcd-unknown-service",
            "--timeout=60s",
        ],
    );
}

#[test]
fn readiness_liveness_and_startup_probes() {
    let node = Node::start();
    node.wait_ready();
    node.start_proxy();
    node.net.run(|| {
        common::ok(&node, "kubectl", &["create", "namespace", NS]);
        readiness(&node);
        liveness(&node);
        startup(&node);
        deadline(&node);
        exec_timeout(&node);
        redirect_warning(&node);
        grpc(&node);
        common::ok(
            &node,
            "kubectl",
            &["delete", "namespace", NS, "--timeout=90s"],
        );
    });
    node.kill_proxy();
    node.kill_kubelet();
    let out = node.cleanup();
    assert!(out.status.success(), "{}", text(&out.stderr));
}
