//! Pods as applications write them (issue 19): ConfigMap, Secret and downward API volumes, the
//! service account's token mounted by default, and live ConfigMap updates that a reader sees
//! whole — on a real node, with the installed kubectl.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, text};
use tinykube_e2e::node::Node;

const NS: &str = "config";

fn kubectl(node: &Node, args: &[&str]) -> std::process::Output {
    common::kubectl_in(node, NS, args)
}

fn ok(node: &Node, args: &[&str]) -> String {
    common::ok_in(node, NS, args)
}

fn apply(node: &Node, manifest: &str) {
    common::apply_in(node, NS, manifest)
}

fn exec(node: &Node, pod: &str, script: &str) -> String {
    ok(node, &["exec", pod, "--", "sh", "-c", script])
}

const APP: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Pod
metadata:
  name: app
  labels: {app: web, tier: front}
spec:
  containers:
  - name: app
    image: busybox
    # Reads both keys through one resolution of ..data, as a reader of a consistent set does;
    # a read racing the removal of an old set fails and is skipped.
    resources:
      requests: {cpu: 125m, memory: 32Mi}
      limits: {cpu: 250m, memory: 64Mi}
    env:
    - {name: CPU_LIMIT_MILLIS, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}}
    - {name: MEM_REQUEST, valueFrom: {resourceFieldRef: {resource: requests.memory}}}
    command: ["sh", "-c", "while true; do if s=$(cd /cfg/..data 2>/dev/null && cat a b 2>/dev/null); then case \"$s\" in v1v1|v2v2|v3v3|v4v4|v5v5|v6v6) ;; *) echo \"$s\" >> /tmp/mixed ;; esac; fi; usleep 2000; done"]
    volumeMounts:
    - {name: cfg, mountPath: /cfg}
    - {name: creds, mountPath: /etc/creds}
    - {name: info, mountPath: /etc/podinfo}
    - {name: cfg, mountPath: /etc/greeting, subPath: greeting}
  volumes:
  - name: cfg
    configMap: {name: site}
  - name: creds
    secret:
      secretName: creds
      defaultMode: 0400
      items: [{key: password, path: db/password}]
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: name, fieldRef: {fieldPath: metadata.name}}
      - {path: mem_limit_mi, resourceFieldRef: {containerName: app, resource: limits.memory, divisor: 1Mi}}
"#;

fn site(version: u32) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: site}}\ndata: {{a: v{version}, b: v{version}, greeting: hello}}\n"
    )
}

fn pod_config(node: &Node) {
    ok(node, &["create", "namespace", NS]);
    // The pod waits for its ConfigMap, saying why, and starts once it exists.
    apply(node, APP);
    eventually("FailedMount for the missing ConfigMap", 30, || {
        text(
            &kubectl(
                node,
                &[
                    "get",
                    "events",
                    "--field-selector",
                    "involvedObject.name=app",
                ],
            )
            .stdout,
        )
        .contains("MountVolume.SetUp failed for volume \"cfg\" : configmap \"site\" not found")
    });
    assert_eq!(
        ok(
            node,
            &[
                "get",
                "pod",
                "app",
                "-o",
                "jsonpath={.status.containerStatuses[0].state.waiting.reason}"
            ]
        ),
        "ContainerCreating"
    );
    apply(node, &site(1));
    ok(
        node,
        &["wait", "--for=condition=Ready", "pod/app", "--timeout=60s"],
    );

    // The files, as the volumes say.
    assert_eq!(
        exec(node, "app", "cat /cfg/a /cfg/b /etc/greeting"),
        "v1v1hello"
    );
    assert_eq!(exec(node, "app", "cat /etc/creds/db/password"), "s3cret");
    assert_eq!(
        exec(node, "app", "stat -L -c %a /etc/creds/db/password"),
        "400\n"
    );
    assert_eq!(
        exec(
            node,
            "app",
            "awk '$2 == \"/etc/creds\" {print $3}' /proc/mounts"
        ),
        "tmpfs\n",
        "a secret volume is never on disk"
    );
    assert_eq!(
        exec(
            node,
            "app",
            "cat /etc/podinfo/labels; echo; cat /etc/podinfo/name"
        ),
        "app=\"web\"\ntier=\"front\"\napp"
    );
    // The container's own resources, through env and a file, in the divisor's units.
    assert_eq!(
        exec(
            node,
            "app",
            "echo $CPU_LIMIT_MILLIS $MEM_REQUEST $(cat /etc/podinfo/mem_limit_mi)"
        ),
        "250 33554432 64\n"
    );
    let refused = kubectl(node, &["exec", "app", "--", "sh", "-c", "echo x > /cfg/a"]);
    assert!(!refused.status.success(), "a configMap volume is read-only");

    // The service account's credentials, mounted by default: the token is the pod's service
    // account to the API, the CA is the cluster's.
    let sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
    assert_eq!(exec(node, "app", &format!("cat {sa_dir}/namespace")), NS);
    // Where the API is, as every in-cluster client looks for it.
    assert_eq!(
        exec(
            node,
            "app",
            "echo -n $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT $KUBERNETES_PORT_443_TCP"
        ),
        "10.96.0.1:443 tcp://10.96.0.1:443"
    );
    let ca = exec(node, "app", &format!("cat {sa_dir}/ca.crt"));
    let ca_file = node.apiserver.kubeconfig("admin").with_file_name("ca.crt");
    assert_eq!(ca, std::fs::read_to_string(&ca_file).unwrap());
    let token = exec(node, "app", &format!("cat {sa_dir}/token"));
    // The token alone, as an in-cluster client holds it (no client certificate).
    let admin = std::fs::read_to_string(node.apiserver.kubeconfig("admin")).unwrap();
    let server = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .unwrap();
    let empty = tempfile::NamedTempFile::new().unwrap();
    let me = std::process::Command::new("kubectl")
        .arg(format!("--kubeconfig={}", empty.path().display()))
        .arg(format!("--server={server}"))
        .arg(format!("--certificate-authority={}", ca_file.display()))
        .arg(format!("--token={token}"))
        .args([
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .output()
        .unwrap();
    assert_eq!(
        text(&me.stdout),
        format!("system:serviceaccount:{NS}:default"),
        "{}",
        text(&me.stderr)
    );

    // Live updates: each version appears, and the reader looping on a and b never sees them
    // differ. The delay from the write to the file is printed (kubelet: one sync period).
    let mut delays = Vec::new();
    for version in 2..=6 {
        let t = Instant::now();
        apply(node, &site(version));
        let want = format!("v{version}");
        eventually(&format!("the pod sees {want}"), 30, || {
            exec(node, "app", "cat /cfg/a") == want
        });
        delays.push(t.elapsed());
    }
    assert_eq!(
        exec(node, "app", "cat /tmp/mixed 2>/dev/null; true"),
        "",
        "a reader saw a half-written update"
    );
    assert_eq!(
        exec(node, "app", "cat /etc/greeting"),
        "hello",
        "a subPath mount keeps what it had"
    );
    delays.sort();
    eprintln!(
        "configMap update → visible in the pod: p50 {:?}, max {:?} over {} updates (anchor: kubelet sync period + cache TTL, up to ~60 s)",
        delays[delays.len() / 2],
        delays[delays.len() - 1],
        delays.len()
    );

    // A pod that opts out gets no token.
    apply(
        node,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: quiet}\nspec:\n  automountServiceAccountToken: false\n  containers: [{name: c, image: busybox, command: [sleep, '3600']}]\n",
    );
    ok(
        node,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/quiet",
            "--timeout=60s",
        ],
    );
    assert_eq!(
        exec(node, "quiet", &format!("ls {sa_dir} 2>&1 | head -1; true")),
        format!("ls: {sa_dir}: No such file or directory\n")
    );

    let t = Instant::now();
    ok(node, &["delete", "namespace", NS, "--timeout=90s"]);
    assert!(t.elapsed() < Duration::from_secs(90));
}

#[test]
fn config_secret_and_token_volumes() {
    let node = Node::start();
    node.wait_ready();
    node.net.run(|| pod_config(&node));
    node.kill_kubelet();
    let out = node.cleanup();
    assert!(out.status.success(), "{}", text(&out.stderr));
}
