//! The installed kubectl (the dispatcher picks 1.32 from our /version) against the apiserver,
//! with the kubeconfig the apiserver wrote.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::harness::Server;

struct Kubectl {
    home: tempfile::TempDir,
    kubeconfig: std::path::PathBuf,
}

impl Kubectl {
    fn new(s: &Server) -> Kubectl {
        Kubectl {
            home: tempfile::tempdir().unwrap(),
            kubeconfig: s.kubeconfig("admin"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.args(args)
            .env("HOME", self.home.path())
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("kubectl is installed")
    }

    /// Runs and returns stdout; fails the test with stderr when kubectl fails.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn columns(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_works_unchanged() {
    let s = Server::start_with(&["--node-name", "node-1"]).await;
    let k = Kubectl::new(&s);

    let version = k.ok(&["version"]);
    assert!(version.contains("Server Version: v1.32.0"), "{version}");
    let resources = k.ok(&["api-resources"]);
    for line in [
        "pods   ",
        "po ",
        "deployments",
        "deploy",
        "apps/v1",
        "replicasets",
        "endpointslices",
    ] {
        assert!(resources.contains(line), "{line} missing in\n{resources}");
    }

    // A node as a kubelet registers it, to see the server-side columns.
    let nodes: Api<Node> = Api::all(s.client_as("kubelet").await);
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": "node-1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "192.0.2.10"}],
            "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian GNU/Linux 12", "kernelVersion": "6.1.0",
                          "containerRuntimeVersion": "libcontainer://0.7.0", "architecture": "amd64", "bootID": "",
                          "kubeProxyVersion": "", "machineID": "", "operatingSystem": "linux", "systemUUID": ""}
        }
    })).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let out = k.ok(&["get", "nodes", "-o", "wide"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        columns(lines[0]),
        [
            "NAME",
            "STATUS",
            "ROLES",
            "AGE",
            "VERSION",
            "INTERNAL-IP",
            "EXTERNAL-IP",
            "OS-IMAGE",
            "KERNEL-VERSION",
            "CONTAINER-RUNTIME"
        ]
    );
    let row = columns(lines[1]);
    assert_eq!(&row[..3], ["node-1", "Ready", "control-plane"]);
    assert_eq!(row[4], "v1.32.0");
    assert_eq!(row[5], "192.0.2.10");
    assert!(out.contains("libcontainer://0.7.0"));

    assert!(k
        .ok(&["run", "web", "--image=busybox"])
        .contains("pod/web created"));
    let out = k.ok(&["get", "pods", "-l", "run=web", "-o", "wide"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        columns(lines[0]),
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ]
    );
    assert_eq!(&columns(lines[1])[..4], ["web", "0/1", "Pending", "0"]);
    let out = k.ok(&["get", "services", "-o", "wide"]);
    assert!(
        out.lines()
            .nth(1)
            .is_some_and(|l| columns(l)[..5]
                == ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"]),
        "{out}"
    );
    let out = k.ok(&["get", "deployments", "-o", "wide"]);
    assert!(out.is_empty(), "no deployments yet: {out}");

    let yaml = k.ok(&["get", "pod", "web", "-o", "yaml"]);
    for needle in [
        "kind: Pod",
        "name: web",
        "run: web",
        "image: busybox",
        "imagePullPolicy: Always",
        "phase: Pending",
        "uid: ",
    ] {
        assert!(yaml.contains(needle), "{needle} missing in\n{yaml}");
    }

    assert!(k
        .ok(&["label", "pod", "web", "app=v1"])
        .contains("pod/web labeled"));
    let out = k.ok(&["get", "pods", "-l", "app=v1", "--show-labels"]);
    assert!(out.contains("app=v1,run=web"), "{out}");

    let all = k.ok(&["get", "all"]);
    assert!(
        all.contains("pod/web") && all.contains("service/kubernetes"),
        "{all}"
    );

    // The scheduler places the pod on the Ready node.
    let mut node = String::new();
    for _ in 0..100 {
        node = k.ok(&["get", "pod", "web", "-o", "jsonpath={.spec.nodeName}"]);
        if !node.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(node, "node-1");

    // `get -w` streams the changes made while it watches.
    let mut watch = k
        .command(&[
            "get",
            "pods",
            "-w",
            "--output-watch-events",
            "--show-labels",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    k.ok(&["label", "pod", "web", "tier=front"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A pod on a node is deleted gracefully: it turns Terminating until its node confirms...
    assert!(k
        .ok(&["delete", "pod", "web", "--wait=false"])
        .contains("pod \"web\" deleted"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // ...or until it is forced.
    let forced = k.run(&["delete", "pod", "web", "--grace-period=0", "--force"]);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let _ = watch.kill();
    let streamed = String::from_utf8(watch.wait_with_output().unwrap().stdout).unwrap();
    let lines: Vec<&str> = streamed.lines().skip(1).collect();
    assert!(
        lines.first().is_some_and(|l| l.starts_with("ADDED")),
        "{streamed}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("MODIFIED") && l.contains("tier=front")),
        "{streamed}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("MODIFIED") && l.contains("Terminating")),
        "{streamed}"
    );
    assert!(
        lines.last().is_some_and(|l| l.starts_with("DELETED")),
        "{streamed}"
    );

    let out = k.run(&["get", "pod", "web"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pods \"web\" not found"));

    // Credentials the server does not know are refused (the kube-rs tests cover none at all:
    // kubectl itself prompts for a password when a kubeconfig has no user).
    let out = k.run(&["get", "pods", "--token=not-a-real-token"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("You must be logged in to the server (Unauthorized)"),
        "{err}"
    );
}
