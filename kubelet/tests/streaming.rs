//! Logs, exec and port-forward end to end: the installed kubectl (1.32) → the built apiserver
//! → the kubelet's HTTPS server → a container, on a whole node in its own network namespace
//! (tinykube-e2e's `Node`); kube-rs's WebSocket exec and port-forward too. Needs root.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, DeleteParams, PostParams};
use serde_json::{json, Value};
use tinykube_e2e::node::{Node, NODE_IP};
use tinykube_e2e::{answer, http_get};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BOOTCAMP: &str = "gcr.io/google-samples/kubernetes-bootcamp:v1";

fn pod(name: &str, spec: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }))
    .unwrap()
}

async fn wait_pod(api: &Api<Pod>, name: &str, secs: u64, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(Some(p)) = api.get_opt(name).await {
            let p = serde_json::to_value(&p).unwrap();
            if f(&p) {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "pod {name} never got there: {:#}",
                p["status"]
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `kubectl <args>` as the admin, from inside the node's namespace (the caller's thread is
/// in it), with `env` and `stdin`.
fn kubectl(node: &Node, env: &[(&str, &str)], args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new("kubectl");
    cmd.arg(format!(
        "--kubeconfig={}",
        node.apiserver.kubeconfig("admin").display()
    ))
    .args(args)
    .envs(env.iter().copied())
    .stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl");
    if let Some(data) = stdin {
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A `kubectl port-forward` running in the background until dropped.
struct Forward(std::process::Child);

impl Forward {
    fn start(node: &Node, env: &[(&str, &str)], local: u16) -> Forward {
        let mut child = Command::new("kubectl")
            .arg(format!(
                "--kubeconfig={}",
                node.apiserver.kubeconfig("admin").display()
            ))
            .args(["port-forward", "pod/web", &format!("{local}:8080")])
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // It says so once it listens.
        let mut out = child.stdout.take().unwrap();
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !text(&seen).contains("Forwarding from") {
            use std::io::Read;
            assert_eq!(out.read(&mut byte).unwrap(), 1, "port-forward ended");
            seen.push(byte[0]);
        }
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Forward(child)
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A tmux server of the test's own (its socket at `socket`, removed on drop), running a
/// command in a 100x30 terminal.
struct Tmux {
    socket: std::path::PathBuf,
}

impl Tmux {
    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux")
    }

    fn screen(&self) -> String {
        text(&self.tmux(&["capture-pane", "-p", "-t", "t"]).stdout)
    }

    fn wait_screen(&self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let s = self.screen();
            if s.contains(what) {
                return s;
            }
            assert!(Instant::now() < deadline, "never saw {what:?}:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
        let _ = std::fs::remove_file(&self.socket);
    }
}

#[test]
fn logs_exec_and_port_forward_through_the_apiserver() {
    let node = Node::start();
    node.wait_ready();
    node.net.block_on(async {
        let client = node.apiserver.client("admin").await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        pods.create(
            &PostParams::default(),
            &pod(
                "web",
                json!({"terminationGracePeriodSeconds": 1,
                       "containers": [{"name": "web", "image": BOOTCAMP}]}),
            ),
        )
        .await
        .unwrap();
        let p = wait_pod(&pods, "web", 60, |p| p["status"]["phase"] == "Running").await;
        let ip = p["status"]["podIP"].as_str().unwrap().to_string();
        answer(&format!("{ip}:8080")).await;

        // exec: output and exit code, over WebSocket (kubectl's first choice).
        let out = kubectl(&node, &[], &["exec", "web", "--", "curl", "-s", "localhost:8080"], None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("Hello Kubernetes bootcamp! | Running on: web"),
            "{}",
            text(&out.stdout)
        );
        let out = kubectl(&node, &[], &["exec", "web", "--", "sh", "-c", "exit 3"], None);
        assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
        let out = kubectl(&node, &[], &["exec", "-i", "web", "--", "cat"], Some(b"echo me\n"));
        assert_eq!(text(&out.stdout), "echo me\n", "{}", text(&out.stderr));
        // The same over SPDY (kubectl's fallback), stdout and stderr apart.
        let spdy = [("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")];
        let out = kubectl(
            &node,
            &spdy,
            &["exec", "web", "--", "sh", "-c", "echo out; echo err >&2; exit 5"],
            None,
        );
        assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "out\n");
        assert!(text(&out.stderr).starts_with("err\n"), "{}", text(&out.stderr));
        let out = kubectl(&node, &spdy, &["exec", "-i", "web", "--", "cat"], Some(b"spdy in\n"));
        assert_eq!(text(&out.stdout), "spdy in\n", "{}", text(&out.stderr));
        // Clear errors: a container the pod does not have, a command that does not exist.
        let out = kubectl(&node, &[], &["exec", "web", "-c", "nope", "--", "true"], None);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("container nope is not valid for pod web"),
            "{}",
            text(&out.stderr)
        );
        let out = kubectl(&node, &[], &["exec", "web", "--", "no-such-command"], None);
        assert_ne!(out.status.code(), Some(0));
        assert!(text(&out.stderr).contains("no-such-command"), "{}", text(&out.stderr));

        // 20 at once, each with its own answer.
        let outs: Vec<(usize, Output)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..20)
                .map(|i| {
                    let node = &node;
                    s.spawn(move || {
                        node.net.enter();
                        let cmd = format!("echo exec-$((6*{i}))");
                        (i, kubectl(node, &[], &["exec", "web", "--", "sh", "-c", &cmd], None))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, out) in outs {
            assert!(out.status.success(), "exec {i}: {}", text(&out.stderr));
            assert_eq!(text(&out.stdout), format!("exec-{}\n", 6 * i));
        }

        // kube-rs's WebSocket exec (what tkctl uses): output and the exit status.
        let mut ap = pods
            .exec(
                "web",
                ["sh", "-c", "echo kube-rs; exit 2"],
                &AttachParams::default().stderr(false),
            )
            .await
            .unwrap();
        let mut stdout = String::new();
        ap.stdout()
            .unwrap()
            .read_to_string(&mut stdout)
            .await
            .unwrap();
        let st = ap.take_status().unwrap().await.unwrap();
        assert_eq!(stdout, "kube-rs\n");
        assert_eq!(st.reason.as_deref(), Some("NonZeroExitCode"));
        assert_eq!(st.details.unwrap().causes.unwrap()[0].message.as_deref(), Some("2"));

        // A terminal: the command sees the client's size, and a resize.
        let tmux = Tmux {
            socket: std::env::temp_dir().join(format!("tk-stream-{}.tmux", std::process::id())),
        };
        let cmd = format!(
            "kubectl --kubeconfig={} exec -ti web -- sh",
            node.apiserver.kubeconfig("admin").display()
        );
        let started = tmux.tmux(&["new-session", "-d", "-s", "t", "-x", "100", "-y", "30", &cmd]);
        assert!(started.status.success(), "{}", text(&started.stderr));
        tmux.wait_screen("#");
        tmux.tmux(&["send-keys", "-t", "t", "stty size; tty", "Enter"]);
        tmux.wait_screen("30 100");
        tmux.wait_screen("/dev/pts/");
        tmux.tmux(&["resize-window", "-t", "t", "-x", "120", "-y", "40"]);
        tmux.tmux(&["send-keys", "-t", "t", "clear; stty size", "Enter"]);
        tmux.wait_screen("40 120");
        tmux.tmux(&["send-keys", "-t", "t", "exit", "Enter"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while tmux.tmux(&["has-session", "-t", "t"]).status.success() {
            assert!(Instant::now() < deadline, "the terminal session did not end");
            std::thread::sleep(Duration::from_millis(100));
        }

        // port-forward: WebSocket-tunnelled SPDY, then plain SPDY, two requests each.
        for (env, port) in [
            (vec![], 18080u16),
            (vec![("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")], 18081),
        ] {
            let _fw = Forward::start(&node, &env, port);
            for _ in 0..2 {
                let a = http_get(&format!("127.0.0.1:{port}")).await.unwrap();
                assert!(a.contains("Running on: web"), "through {port}: {a}");
            }
        }
        // kube-rs's port-forward (WebSocket channels).
        let mut pf = pods.portforward("web", &[8080]).await.unwrap();
        let mut s = pf.take_stream(8080).unwrap();
        s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").await.unwrap();
        let mut a = String::new();
        s.read_to_string(&mut a).await.unwrap();
        assert!(a.contains("Running on: web"), "{a}");
        drop(s);
        pf.abort();

        // logs: all, the tail, and following (a new line shows as it is written; the
        // stream ends when the pod goes).
        let out = kubectl(&node, &[], &["logs", "web"], None);
        assert!(
            text(&out.stdout).starts_with("Kubernetes Bootcamp App Started At"),
            "{}",
            text(&out.stdout)
        );
        let out = kubectl(&node, &[], &["logs", "web", "--tail=1"], None);
        assert_eq!(text(&out.stdout).lines().count(), 1);
        assert!(text(&out.stdout).contains("Total Requests"));
        let mut follow = Command::new("kubectl")
            .arg(format!(
                "--kubeconfig={}",
                node.apiserver.kubeconfig("admin").display()
            ))
            .args(["logs", "-f", "web"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut fout = follow.stdout.take().unwrap();
        let got: std::sync::Arc<std::sync::Mutex<Vec<u8>>> = Default::default();
        let seen = {
            let got = got.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match std::io::Read::read(&mut fout, &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.lock().unwrap().extend_from_slice(&buf[..n]),
                    }
                }
                text(&got.lock().unwrap())
            })
        };
        // The follower streams: it printed the log so far (requests were logged above).
        let deadline = Instant::now() + Duration::from_secs(20);
        while !text(&got.lock().unwrap()).contains("Total Requests") {
            assert!(Instant::now() < deadline, "logs -f printed nothing");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let before = Instant::now();
        http_get(&format!("{ip}:8080")).await.unwrap();
        // The request count went up by one: that line must reach the follower.
        let requests = kubectl(&node, &[], &["logs", "web", "--tail=1"], None);
        let last = text(&requests.stdout);
        pods.delete("web", &DeleteParams::default()).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = follow.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "logs -f did not end with the pod");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let followed = seen.join().unwrap();
        assert!(status.success());
        assert!(
            followed.contains(last.trim()),
            "logs -f missed {last:?} (written {:?} ago): {followed}",
            before.elapsed()
        );

        // --previous: the instance before a restart.
        pods.create(
            &PostParams::default(),
            &pod(
                "again",
                json!({"terminationGracePeriodSeconds": 0,
                       "containers": [{"name": "c", "image": "busybox:latest",
                         "command": ["sh", "-c", "n=$(cat /d/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /d/n; echo attempt-$n; sleep 1; exit 1"],
                         "volumeMounts": [{"name": "d", "mountPath": "/d"}]}],
                       "volumes": [{"name": "d", "emptyDir": {}}]}),
            ),
        )
        .await
        .unwrap();
        wait_pod(&pods, "again", 60, |p| {
            p["status"]["containerStatuses"][0]["restartCount"]
                .as_i64()
                .is_some_and(|n| n >= 1)
        })
        .await;
        let prev = kubectl(&node, &[], &["logs", "again", "--previous"], None);
        assert_eq!(text(&prev.stdout), "attempt-1\n", "{}", text(&prev.stderr));
        let cur = kubectl(&node, &[], &["logs", "again"], None);
        assert_eq!(text(&cur.stdout), "attempt-2\n", "{}", text(&cur.stderr));

        // Nobody but the apiserver (and admins) may use the kubelet: anonymous → 401, the
        // proxy's identity → 403.
        let url = format!("https://{NODE_IP}:10250/exec/default/again/c?command=id&output=1");
        let anon = Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", &url])
            .output()
            .unwrap();
        assert_eq!(text(&anon.stdout), "401");
        let dir = node.apiserver.kubeconfig("admin");
        let dir = dir.parent().unwrap();
        let proxy = Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
            .arg("--cert")
            .arg(dir.join("proxy.crt"))
            .arg("--key")
            .arg(dir.join("proxy.key"))
            .arg(&url)
            .output()
            .unwrap();
        assert_eq!(text(&proxy.stdout), "403");
        pods.delete("again", &DeleteParams::default()).await.unwrap();
    });
    let out = node.cleanup();
    assert!(out.status.success(), "{}", text(&out.stderr));
}
