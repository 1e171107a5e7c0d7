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

/// The lines a child prints, read on a thread of their own as they come.
struct Streamed {
    rx: tokio::sync::mpsc::UnboundedReceiver<String>,
    lines: Vec<String>,
}

impl Streamed {
    fn read(out: impl std::io::Read + Send + 'static) -> Streamed {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Streamed {
            rx,
            lines: Vec::new(),
        }
    }

    /// Waits (20 s at most) for a line that satisfies `want`.
    async fn until(&mut self, what: &str, want: impl Fn(&str) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(line)) => {
                    let found = want(&line);
                    self.lines.push(line);
                    if found {
                        return;
                    }
                }
                Ok(None) => panic!("the output ended before {what}:\n{}", self.text()),
                Err(_) => panic!("timed out waiting for {what}:\n{}", self.text()),
            }
        }
    }

    /// Everything printed so far.
    fn text(&mut self) -> String {
        while let Ok(line) = self.rx.try_recv() {
            self.lines.push(line);
        }
        self.lines.join("\n")
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

    // `get -w` streams the changes made while it watches. Each change is made once the
    // previous one was streamed: no fixed pauses, the test waits on what kubectl prints.
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
    let mut watched = Streamed::read(watch.stdout.take().unwrap());
    // The listed pod (kubectl watches from the list's resourceVersion on).
    watched
        .until("the listed pod", |l| l.starts_with("ADDED"))
        .await;
    k.ok(&["label", "pod", "web", "tier=front"]);
    watched
        .until("the label change", |l| {
            l.starts_with("MODIFIED") && l.contains("tier=front")
        })
        .await;
    // A pod on a node is deleted gracefully: it turns Terminating until its node confirms...
    assert!(k
        .ok(&["delete", "pod", "web", "--wait=false"])
        .contains("pod \"web\" deleted"));
    watched
        .until("Terminating", |l| {
            l.starts_with("MODIFIED") && l.contains("Terminating")
        })
        .await;
    // ...or until it is forced.
    let forced = k.run(&["delete", "pod", "web", "--grace-period=0", "--force"]);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    watched
        .until("the deletion", |l| l.starts_with("DELETED"))
        .await;
    let _ = watch.kill();
    let _ = watch.wait();
    let streamed = watched.text();
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
