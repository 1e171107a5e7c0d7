//! Streaming benchmark, through the apiserver to the kubelet and the container, on a whole
//! node (apiserver, registry, kubelet from the built binaries) in its own network namespace:
//!
//! - exec round trip of `true`: kube-rs's WebSocket exec (client made once, one TLS
//!   connection per exec, as kubectl makes), p50 / p99 of 200; and the installed kubectl's
//!   wall time (process start included), p50 of 20;
//! - port-forward throughput: 100 MB from 127.0.0.1:9000 in the pod's network namespace
//!   (a sender of the benchmark's own) read through kubectl
//!   port-forward (SPDY tunnelled in WebSocket, then plain SPDY) and kube-rs's port-forward.
//!
//! Run with `hack/bench/streaming.sh` (builds everything first).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, PostParams};
use serde_json::json;
use tinykube_e2e::node::Node;
use tokio::io::AsyncReadExt;

const MB: usize = 100;
const BOOTCAMP: &str = "gcr.io/google-samples/kubernetes-bootcamp:v1";

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn exec_true(pods: &Api<Pod>) -> Duration {
    let t = Instant::now();
    let mut ap = pods
        .exec("web", ["true"], &AttachParams::default().stderr(false))
        .await
        .expect("exec");
    let st = ap.take_status().unwrap().await.expect("status");
    let took = t.elapsed();
    assert_eq!(st.status.as_deref(), Some("Success"));
    let _ = ap.join().await;
    took
}

/// A sender of `MB` megabytes to every connection on 127.0.0.1:9000 in the pod's network
/// namespace (busybox's `nc` tops out near 250 MB/s, below what is measured here).
fn serve_zeros(netns: &std::path::Path) {
    let path = netns.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path).expect("pod netns");
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let l = std::net::TcpListener::bind("127.0.0.1:9000").expect("listening in the pod");
        tx.send(()).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for c in l.incoming() {
            let mut c = c.unwrap();
            for _ in 0..MB {
                use std::io::Write;
                if c.write_all(&zeros).is_err() {
                    break;
                }
            }
        }
    });
    rx.recv().unwrap();
}

/// Reads everything from `r`, returning MB/s.
async fn drain(mut r: impl tokio::io::AsyncRead + Unpin) -> f64 {
    let t = Instant::now();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0usize;
    loop {
        let k = r
            .read(&mut buf)
            .await
            .expect("reading the forwarded stream");
        if k == 0 {
            break;
        }
        n += k;
    }
    assert_eq!(n, MB << 20, "the whole transfer arrived");
    (n as f64 / 1e6) / t.elapsed().as_secs_f64()
}

async fn through_kubectl(node: &Node, env: &[(&str, &str)], port: u16) -> f64 {
    let mut pf = Command::new("kubectl")
        .arg(format!(
            "--kubeconfig={}",
            node.apiserver.kubeconfig("admin").display()
        ))
        .args(["port-forward", "pod/web", &format!("{port}:9000")])
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = pf.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains("Forwarding from") {
        use std::io::Read;
        assert_eq!(out.read(&mut byte).unwrap(), 1, "port-forward ended");
        seen.push(byte[0]);
    }
    let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let rate = drain(s).await;
    let _ = pf.kill();
    let _ = pf.wait();
    rate
}

fn main() {
    let node = Node::start();
    node.wait_ready();
    let kubeconfig = node.apiserver.kubeconfig("admin");
    node.net.block_on(async {
        let client = node.apiserver.client("admin").await;
        let pods: Api<Pod> = Api::namespaced(client, "default");
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "web", "image": BOOTCAMP}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let running = |p: Option<Pod>| {
            p.and_then(|p| p.status)
                .is_some_and(|s| s.phase.as_deref() == Some("Running"))
        };
        while !running(pods.get("web").await.ok()) {
            assert!(Instant::now() < deadline, "the pod never ran");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        for _ in 0..10 {
            exec_true(&pods).await;
        }
        let mut rt = Vec::new();
        for _ in 0..200 {
            rt.push(exec_true(&pods).await);
        }
        let (p50, p99) = (pct(&mut rt, 0.5), pct(&mut rt, 0.99));
        let mut kubectl = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let st = Command::new("kubectl")
                .arg(format!("--kubeconfig={}", kubeconfig.display()))
                .args(["exec", "web", "--", "true"])
                .status()
                .unwrap();
            assert!(st.success());
            kubectl.push(t.elapsed());
        }
        let kubectl_p50 = pct(&mut kubectl, 0.5);

        let uid = pods.get("web").await.unwrap().metadata.uid.unwrap();
        serve_zeros(&node.pod_netns(&uid));
        let ws = through_kubectl(&node, &[], 19000).await;
        let spdy =
            through_kubectl(&node, &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")], 19001).await;
        let mut pf = pods.portforward("web", &[9000]).await.unwrap();
        let kube_rs = drain(pf.take_stream(9000).unwrap()).await;
        pf.abort();

        println!("streaming through the apiserver to the kubelet (2 cores, one node in a netns)");
        println!(
            "  exec `true` round trip (kube-rs WebSocket v5): p50 {} / p99 {}   goal p50 <= 30 ms",
            ms(p50),
            ms(p99)
        );
        println!(
            "  kubectl exec POD -- true, whole command:       p50 {}   (kubectl's own start included)",
            ms(kubectl_p50)
        );
        println!(
            "  port-forward {MB} MB: kubectl (SPDY in WebSocket) {ws:.0} MB/s, kubectl (plain SPDY) {spdy:.0} MB/s, kube-rs (WebSocket channels) {kube_rs:.0} MB/s   goal >= 200 MB/s"
        );
    });
}
