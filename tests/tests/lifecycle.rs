//! Container lifecycle as the Kubernetes docs write it (issue 19), on a real node with the
//! installed kubectl: postStart and preStop hooks run (and a failing postStart is reported
//! and kills its container), termination messages come from the file or, on failure, the
//! log; a sidecar (an init container with `restartPolicy: Always`) starts before the app
//! (held by its startup probe), does not keep the pod from completing, and stops after the
//! app when the pod is deleted. And the securityContext (runAsNonRoot, users and groups,
//! sysctls), hostNetwork pods, `kubectl debug` with an ephemeral container, and subPaths
//! that cannot be led out of their volume, and a pod sharing one process namespace.

mod common;

use std::path::Path;

use common::{eventually, text};
use tinykube_e2e::node::{Node, NODE_IP};

const NS: &str = "lifecycle";

fn ok(node: &Node, args: &[&str]) -> String {
    common::ok_in(node, NS, args)
}

fn apply(node: &Node, manifest: &str) {
    common::apply_in(node, NS, manifest)
}

/// Waits until `f` holds for pod `name`; if it never does, fails with the pod's description.
fn eventually_pod(node: &Node, name: &str, what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !f() {
        if std::time::Instant::now() >= deadline {
            let described = common::kubectl_in(node, NS, &["describe", "pod", name]);
            panic!("never: {what}\n{}", text(&described.stdout));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Waits for pod `name` to be Ready; if it does not become so, fails with its description.
fn wait_ready(node: &Node, name: &str) {
    let out = common::kubectl_in(
        node,
        NS,
        &[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{name}"),
            "--timeout=60s",
        ],
    );
    if !out.status.success() {
        let described = common::kubectl_in(node, NS, &["describe", "pod", name]);
        panic!(
            "pod {name} is not ready: {}\n{}",
            text(&out.stderr),
            text(&described.stdout)
        );
    }
}

fn jsonpath(node: &Node, what: &str, path: &str) -> String {
    ok(node, &["get", what, "-o", &format!("jsonpath={path}")])
}

/// Whether `path` of object `what` has a value.
fn shows(node: &Node, what: &str, path: &str) -> bool {
    !jsonpath(node, what, path).is_empty()
}

/// The docs' lifecycle-events.yaml (busybox for nginx, which has /usr/share), with a preStop hook that leaves a
/// mark in a hostPath directory and an app that notes its SIGTERM there too.
fn hooks_manifest(dir: &Path) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: lifecycle-demo}}
spec:
  terminationGracePeriodSeconds: 20
  volumes:
  - name: host
    hostPath: {{path: {dir}}}
  containers:
  - name: lifecycle-demo-container
    image: busybox
    command: [sh, -c, "trap 'echo app-term >> /host/order; exit 0' TERM; while true; do sleep 1; done"]
    volumeMounts: [{{name: host, mountPath: /host}}]
    lifecycle:
      postStart:
        exec:
          command: ["/bin/sh", "-c", "mkdir -p /usr/share; echo Hello from the postStart handler > /usr/share/message"]
      preStop:
        exec:
          command: ["/bin/sh", "-c", "echo prestop >> /host/order"]
"#,
        dir = dir.display()
    )
}

fn hooks(node: &Node) {
    let dir = node.root.path().join("hooks");
    std::fs::create_dir_all(&dir).unwrap();
    apply(node, &hooks_manifest(&dir));
    wait_ready(node, "lifecycle-demo");
    // The postStart hook ran before the container was reported running.
    assert_eq!(
        ok(
            node,
            &["exec", "lifecycle-demo", "--", "cat", "/usr/share/message"]
        ),
        "Hello from the postStart handler\n"
    );
    // Deleted: the preStop hook runs first, then the app gets its SIGTERM.
    ok(node, &["delete", "pod", "lifecycle-demo", "--timeout=60s"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("order")).unwrap(),
        "prestop\napp-term\n"
    );
}

const FAILING_HOOK: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: hook-fails}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: busybox
    command: [sleep, "600"]
    lifecycle:
      postStart:
        exec:
          command: [sh, -c, "echo oops; exit 3"]
"#;

/// A failing postStart hook: Kubernetes' event, and the container is killed.
fn failing_hook(node: &Node) {
    apply(node, FAILING_HOOK);
    eventually("the container is killed", 60, || {
        shows(
            node,
            "pod/hook-fails",
            "{.status.containerStatuses[0].state.terminated.exitCode}",
        )
    });
    let uid = jsonpath(node, "pod/hook-fails", "{.metadata.uid}");
    let events = |reason: &str| {
        ok(
            node,
            &[
                "get",
                "events",
                &format!("--field-selector=involvedObject.name=hook-fails,reason={reason}"),
                "-o",
                "jsonpath={.items[*].message}",
            ],
        )
    };
    assert_eq!(
        events("FailedPostStartHook"),
        format!(
            "Exec lifecycle hook ([sh -c echo oops; exit 3]) for Container \"app\" in Pod \"hook-fails_{NS}({uid})\" failed - error: command 'sh -c echo oops; exit 3' exited with 3: , message: \"oops\\n\""
        )
    );
    assert_eq!(events("Killing"), "FailedPostStartHook");
    assert_eq!(
        jsonpath(node, "pod/hook-fails", "{.status.phase}"),
        "Failed"
    );
}

const TERMINATION: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: termination-demo}
spec:
  containers:
  - name: termination-demo-container
    image: busybox
    command: ["/bin/sh"]
    args: ["-c", "sleep 1 && echo Sleep expired > /dev/termination-log"]
---
apiVersion: v1
kind: Pod
metadata: {name: crash-report}
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: busybox
    command: [sh, -c, "echo starting; echo 'fatal: no config' >&2; exit 1"]
    terminationMessagePolicy: FallbackToLogsOnError
"#;

/// Termination messages: the docs' termination-demo, and the log's tail on failure.
fn termination_messages(node: &Node) {
    apply(node, TERMINATION);
    // As the docs read it: the message of the last termination.
    eventually("the termination message shows", 60, || {
        ok(
            node,
            &[
                "get",
                "pod",
                "termination-demo",
                "-o",
                "go-template={{range .status.containerStatuses}}{{.lastState.terminated.message}}{{end}}",
            ],
        ) == "Sleep expired\n"
    });
    eventually("the crash is reported", 60, || {
        jsonpath(node, "pod/crash-report", "{.status.phase}") == "Failed"
    });
    assert_eq!(
        jsonpath(
            node,
            "pod/crash-report",
            "{.status.containerStatuses[0].state.terminated.message}"
        ),
        "starting\nfatal: no config\n"
    );
}

/// The docs' sidecar example as a pod that completes: the app writes to a shared volume,
/// the sidecar ships it; the sidecar's startup probe holds the app until the sidecar is up.
const SIDECAR_JOB: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: sidecar-job}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  containers:
  - name: myapp
    image: busybox
    command: ['sh', '-c', 'test -e /opt/shipper-up || exit 9; for i in 1 2 3; do echo "logging $i" >> /opt/logs.txt; sleep 1; done']
    volumeMounts:
    - {name: data, mountPath: /opt}
  initContainers:
  - name: logshipper
    image: busybox
    restartPolicy: Always
    command: ['sh', '-c', 'sleep 2; touch /opt/shipper-up; tail -F /opt/logs.txt']
    startupProbe:
      exec: {command: [test, -e, /opt/shipper-up]}
      periodSeconds: 1
      failureThreshold: 30
    volumeMounts:
    - {name: data, mountPath: /opt}
  volumes:
  - name: data
    emptyDir: {}
"#;

fn sidecar_completes(node: &Node) {
    apply(node, SIDECAR_JOB);
    // The app ran only once the sidecar was up (else it exits 9), and the pod completes
    // although the sidecar would run for ever.
    eventually("the pod succeeds", 90, || {
        jsonpath(node, "pod/sidecar-job", "{.status.phase}") == "Succeeded"
    });
    assert_eq!(
        jsonpath(
            node,
            "pod/sidecar-job",
            "{.status.containerStatuses[0].state.terminated.exitCode}"
        ),
        "0"
    );
    eventually("the sidecar is stopped", 30, || {
        shows(
            node,
            "pod/sidecar-job",
            "{.status.initContainerStatuses[0].state.terminated.finishedAt}",
        )
    });
    let logs = ok(node, &["logs", "sidecar-job", "-c", "logshipper"]);
    assert!(
        logs.contains("logging 1\n") && logs.contains("logging 3\n"),
        "{logs}"
    );
    // `kubectl get` counts the sidecar as one of the pod's containers.
    let row = ok(node, &["get", "pod", "sidecar-job", "--no-headers"]);
    assert!(row.split_whitespace().nth(1) == Some("0/2"), "{row}");
}

/// A long-running pod with a sidecar: ready only with the sidecar, and on deletion the app
/// stops first, the sidecar last.
fn sidecar_order_manifest(dir: &Path) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: with-sidecar}}
spec:
  terminationGracePeriodSeconds: 20
  volumes:
  - name: host
    hostPath: {{path: {dir}}}
  initContainers:
  - name: proxy
    image: busybox
    restartPolicy: Always
    command: [sh, -c, "trap 'echo sidecar-term >> /host/order; exit 0' TERM; while true; do sleep 1; done"]
    volumeMounts: [{{name: host, mountPath: /host}}]
  containers:
  - name: app
    image: busybox
    command: [sh, -c, "trap 'sleep 1; echo app-term >> /host/order; exit 0' TERM; while true; do sleep 1; done"]
    volumeMounts: [{{name: host, mountPath: /host}}]
"#,
        dir = dir.display()
    )
}

fn sidecar_stops_last(node: &Node) {
    let dir = node.root.path().join("sidecar");
    std::fs::create_dir_all(&dir).unwrap();
    apply(node, &sidecar_order_manifest(&dir));
    wait_ready(node, "with-sidecar");
    let row = ok(node, &["get", "pod", "with-sidecar", "--no-headers"]);
    assert!(row.split_whitespace().nth(1) == Some("2/2"), "{row}");
    assert_eq!(
        jsonpath(
            node,
            "pod/with-sidecar",
            "{.status.initContainerStatuses[0].ready}"
        ),
        "true"
    );
    ok(node, &["delete", "pod", "with-sidecar", "--timeout=60s"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("order")).unwrap(),
        "app-term\nsidecar-term\n"
    );
}

const SECURITY: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: as-root}
spec:
  securityContext: {runAsNonRoot: true}
  containers:
  - name: app
    image: busybox
    command: [sleep, "600"]
---
apiVersion: v1
kind: Pod
metadata: {name: security-context-demo}
spec:
  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    fsGroup: 2000
    supplementalGroups: [4000]
    runAsNonRoot: true
    sysctls:
    - {name: net.ipv4.ip_unprivileged_port_start, value: "80"}
  volumes:
  - name: sec-ctx-vol
    emptyDir: {}
  containers:
  - name: sec-ctx-demo
    image: busybox
    command: [sh, -c, "sleep 1h"]
    volumeMounts:
    - {name: sec-ctx-vol, mountPath: /data/demo}
    securityContext:
      allowPrivilegeEscalation: false
      seccompProfile: {type: RuntimeDefault}
---
apiVersion: v1
kind: Pod
metadata: {name: unsafe-sysctl}
spec:
  securityContext:
    sysctls:
    - {name: kernel.msgmax, value: "65536"}
  containers:
  - name: app
    image: busybox
    command: [sleep, "600"]
"#;

/// runAsNonRoot refuses root with Kubernetes' reason; users, groups and safe sysctls apply;
/// an unsafe sysctl gets the pod rejected.
fn security_context(node: &Node) {
    apply(node, SECURITY);
    let uid = jsonpath(node, "pod/as-root", "{.metadata.uid}");
    eventually("the root pod is refused", 60, || {
        jsonpath(
            node,
            "pod/as-root",
            "{.status.containerStatuses[0].state.waiting.reason}",
        ) == "CreateContainerConfigError"
    });
    assert_eq!(
        jsonpath(
            node,
            "pod/as-root",
            "{.status.containerStatuses[0].state.waiting.message}"
        ),
        format!("container has runAsNonRoot and image will run as root (pod: \"as-root_{NS}({uid})\", container: app)")
    );
    wait_ready(node, "security-context-demo");
    let exec = |cmd: &[&str]| {
        let mut a = vec!["exec", "security-context-demo", "--"];
        a.extend_from_slice(cmd);
        ok(node, &a)
    };
    assert_eq!(exec(&["id", "-u"]).trim(), "1000");
    assert_eq!(exec(&["id", "-g"]).trim(), "3000");
    let groups = exec(&["id", "-G"]);
    let groups: Vec<&str> = groups.split_whitespace().collect();
    assert!(
        groups.contains(&"2000") && groups.contains(&"4000"),
        "{groups:?}"
    );
    assert_eq!(
        exec(&["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"]).trim(),
        "80"
    );
    // The docs' fsGroup check: the volume is the group's, and so is what the user makes.
    assert_eq!(exec(&["stat", "-c", "%g", "/data/demo"]).trim(), "2000");
    assert_eq!(
        exec(&[
            "sh",
            "-c",
            "echo hello > /data/demo/testfile && stat -c '%u %g' /data/demo/testfile"
        ])
        .trim(),
        "1000 2000"
    );
    eventually("the unsafe sysctl is rejected", 60, || {
        jsonpath(node, "pod/unsafe-sysctl", "{.status.phase}") == "Failed"
    });
    assert_eq!(
        jsonpath(
            node,
            "pod/unsafe-sysctl",
            "{.status.reason}|{.status.message}"
        ),
        "SysctlForbidden|Pod was rejected: forbidden sysctl: \"kernel.msgmax\" not allowlisted"
    );
}

const HOST_NETWORK: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: on-the-host}
spec:
  hostNetwork: true
  containers:
  - name: web
    image: gcr.io/google-samples/kubernetes-bootcamp:v1
    ports: [{containerPort: 8080}]
    readinessProbe:
      httpGet: {path: /, port: 8080}
      periodSeconds: 1
"#;

/// A hostNetwork pod has the node's IP and hostname and serves on the node's address.
fn host_network(node: &Node) {
    apply(node, HOST_NETWORK);
    wait_ready(node, "on-the-host");
    assert_eq!(
        jsonpath(node, "pod/on-the-host", "{.status.podIP}"),
        NODE_IP
    );
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        ok(node, &["exec", "on-the-host", "--", "hostname"]).trim(),
        hostname.trim()
    );
    let answer = common::http_get(&format!("{NODE_IP}:8080")).unwrap();
    assert!(common::body(&answer).contains("Running on:"), "{answer}");
    ok(node, &["delete", "pod", "on-the-host", "--timeout=60s"]);
}

const DEBUGGEE: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: debuggee}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: [sleep, "601"]
"#;

/// `kubectl debug --target`: an ephemeral container joins the pod and sees the target's
/// processes.
fn debug(node: &Node) {
    apply(node, DEBUGGEE);
    wait_ready(node, "debuggee");
    ok(
        node,
        &[
            "debug",
            "debuggee",
            "--image=busybox",
            "--target=app",
            "--container=dbg",
            "--",
            "sleep",
            "600",
        ],
    );
    assert_eq!(
        jsonpath(
            node,
            "pod/debuggee",
            "{.spec.ephemeralContainers[0].targetContainerName}"
        ),
        "app"
    );
    eventually_pod(node, "debuggee", "the debug container runs", 60, || {
        shows(
            node,
            "pod/debuggee",
            "{.status.ephemeralContainerStatuses[0].state.running.startedAt}",
        )
    });
    let ps = ok(node, &["exec", "debuggee", "-c", "dbg", "--", "ps"]);
    assert!(ps.contains("sleep 601"), "{ps}");
    // Ephemeral containers are only ever added.
    let out = common::kubectl_in(
        node,
        NS,
        &[
            "patch",
            "pod",
            "debuggee",
            "--subresource=ephemeralcontainers",
            "--type=json",
            "-p",
            r#"[{"op": "remove", "path": "/spec/ephemeralContainers/0"}]"#,
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("existing ephemeral containers \"dbg\" may not be removed"),
        "{}",
        text(&out.stderr)
    );
    ok(node, &["delete", "pod", "debuggee", "--timeout=60s"]);
}

const SUBPATHS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: subpaths}
spec:
  restartPolicy: Never
  initContainers:
  - name: prepare
    image: busybox
    command: [sh, -c, "mkdir -p /data/logs && echo kept > /data/logs/a && ln -s / /data/escape"]
    volumeMounts: [{name: data, mountPath: /data}]
  containers:
  - name: app
    image: busybox
    command: [sh, -c, "cat /logs/a && test -d /new && sleep 600"]
    volumeMounts:
    - {name: data, mountPath: /logs, subPath: logs}
    - {name: data, mountPath: /new, subPath: made/here}
  volumes: [{name: data, emptyDir: {}}]
---
apiVersion: v1
kind: Pod
metadata: {name: escape}
spec:
  restartPolicy: Never
  initContainers:
  - name: prepare
    image: busybox
    command: [sh, -c, "ln -s / /data/escape"]
    volumeMounts: [{name: data, mountPath: /data}]
  containers:
  - name: app
    image: busybox
    command: [sh, -c, "ls /host; sleep 600"]
    volumeMounts:
    - {name: data, mountPath: /host, subPath: escape}
  volumes: [{name: data, emptyDir: {}}]
"#;

/// emptyDir subPaths: made when missing, and a symlink a container left cannot lead a
/// subPath out of the volume (the host's root here).
fn subpaths(node: &Node) {
    apply(node, SUBPATHS);
    wait_ready(node, "subpaths");
    assert_eq!(ok(node, &["logs", "subpaths", "-c", "app"]), "kept\n");
    eventually_pod(
        node,
        "escape",
        "the escaping subPath is refused",
        60,
        || {
            jsonpath(
                node,
                "pod/escape",
                "{.status.containerStatuses[0].state.waiting.reason}",
            ) == "CreateContainerConfigError"
        },
    );
    assert_eq!(
        jsonpath(
            node,
            "pod/escape",
            "{.status.containerStatuses[0].state.waiting.message}"
        ),
        "failed to prepare subPath for volumeMount \"data\" of container \"app\""
    );
    ok(
        node,
        &["delete", "pod", "subpaths", "escape", "--timeout=60s"],
    );
}

const SHARED_PIDS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: shared}
spec:
  shareProcessNamespace: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: [sleep, "3601"]
  - name: shell
    image: busybox
    command: [sleep, "3600"]
"#;

/// The docs' shareProcessNamespace pod: each container sees the others' processes, under
/// the pod's holder as PID 1.
fn shared_process_namespace(node: &Node) {
    apply(node, SHARED_PIDS);
    wait_ready(node, "shared");
    let ps = ok(node, &["exec", "shared", "-c", "shell", "--", "ps"]);
    assert!(ps.contains("sleep 3601"), "{ps}");
    let first = ps
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .unwrap_or_default();
    assert!(first.contains("pause"), "{ps}");
    ok(node, &["delete", "pod", "shared", "--timeout=60s"]);
}

#[test]
fn hooks_messages_sidecars_security_and_host_network() {
    let node = Node::start();
    node.wait_ready();
    node.net.run(|| {
        common::ok(&node, "kubectl", &["create", "namespace", NS]);
        hooks(&node);
        failing_hook(&node);
        termination_messages(&node);
        sidecar_completes(&node);
        sidecar_stops_last(&node);
        security_context(&node);
        host_network(&node);
        debug(&node);
        subpaths(&node);
        shared_process_namespace(&node);
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
