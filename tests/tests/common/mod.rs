//! What the end-to-end tests share: running a client (tkctl or kubectl) as the node's admin,
//! curl, waiting for a condition, reading a bootcamp answer, and a prober that keeps asking a
//! service while the test breaks things.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tinykube_e2e::node::Node;

pub use tinykube_e2e::cli::{cli, eventually, ok, text};

/// kubectl in namespace `ns`, as the node's admin.
pub fn kubectl_in(node: &Node, ns: &str, args: &[&str]) -> std::process::Output {
    let mut a = vec!["--namespace", ns];
    a.extend_from_slice(args);
    cli(node, "kubectl", &a)
}

/// kubectl in namespace `ns`, which must succeed: its output.
pub fn ok_in(node: &Node, ns: &str, args: &[&str]) -> String {
    let mut a = vec!["--namespace", ns];
    a.extend_from_slice(args);
    ok(node, "kubectl", &a)
}

/// `kubectl apply -f` of `manifest` in namespace `ns`.
pub fn apply_in(node: &Node, ns: &str, manifest: &str) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("m.yaml");
    std::fs::write(&f, manifest).unwrap();
    ok_in(node, ns, &["apply", "-f", f.to_str().unwrap()]);
}

/// `curl -s URL` (the real curl) from the calling thread's namespace: exit code and body.
pub fn curl(url: &str) -> (Option<i32>, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", url])
        .output()
        .expect("running curl (hack/test.sh installs it)");
    (out.status.code(), text(&out.stdout))
}

/// The pod named in a bootcamp v1 answer (`Hello Kubernetes bootcamp! | Running on: POD | v=1`),
/// or None if `body` is not one.
pub fn answered_by(body: &str) -> Option<String> {
    let line = body.lines().find(|l| !l.trim().is_empty())?;
    let rest = line.strip_prefix("Hello Kubernetes bootcamp! | Running on: ")?;
    let pod = rest.strip_suffix(" | v=1")?;
    (!pod.is_empty() && !pod.contains(' ')).then(|| pod.to_string())
}

/// `GET /` over HTTP/1.0 on a fresh connection, blocking, from the calling thread's namespace:
/// the whole answer (headers and body).
pub fn http_get(addr: &str) -> std::io::Result<String> {
    let sa = addr
        .to_socket_addrs()?
        .next()
        .ok_or(std::io::ErrorKind::InvalidInput)?;
    let mut s = TcpStream::connect_timeout(&sa, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// The body of an HTTP answer.
pub fn body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// What one request of the [`Prober`] got.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// A bootcamp 200 answer from this pod.
    Pod(String),
    /// No answer: refused, reset, timed out or closed before a byte came.
    Failed(String),
    /// An answer that is not the bootcamp's: never allowed.
    Wrong(String),
}

#[derive(Clone, Debug)]
pub struct Probe {
    pub at: Instant,
    pub outcome: Outcome,
}

/// A thread in the node's namespace doing `GET /` on `addr` every 50 ms, each on a fresh
/// connection, recording every outcome.
pub struct Prober {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Probe>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prober {
    pub fn start(node: &Node, addr: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let ns = std::fs::File::open(node.net.path()).expect("the node's netns");
        let thread = {
            let (stop, log, addr) = (stop.clone(), log.clone(), addr.to_string());
            std::thread::spawn(move || {
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                while !stop.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    let outcome = match http_get(&addr) {
                        Err(e) => Outcome::Failed(e.to_string()),
                        Ok(a) if a.is_empty() => Outcome::Failed("empty answer".into()),
                        Ok(a) => match answered_by(body(&a)) {
                            Some(pod) if a.starts_with("HTTP/1.1 200 ") => Outcome::Pod(pod),
                            _ => Outcome::Wrong(a),
                        },
                    };
                    log.lock().unwrap().push(Probe { at, outcome });
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        Self {
            stop,
            log,
            thread: Some(thread),
        }
    }

    /// How many probes so far (a mark for [`Prober::since`]).
    pub fn mark(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// The probes after `mark`.
    pub fn since(&self, mark: usize) -> Vec<Probe> {
        self.log.lock().unwrap()[mark..].to_vec()
    }

    /// Waits until `n` more probes are made.
    pub fn wait_probes(&self, n: usize) {
        let target = self.mark() + n;
        eventually("the prober makes its requests", 30, || {
            self.mark() >= target
        });
    }

    /// Stops the thread; every probe made.
    pub fn stop(mut self) -> Vec<Probe> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("the prober");
        }
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Probe counts: (answered, failed, wrong) and the longest run of failures in time.
pub fn summary(probes: &[Probe]) -> (usize, usize, Vec<String>, Duration) {
    let mut answered = 0;
    let mut failed = 0;
    let mut wrong = Vec::new();
    let mut longest = Duration::ZERO;
    let mut gap_start: Option<Instant> = None;
    for p in probes {
        match &p.outcome {
            Outcome::Pod(_) => {
                answered += 1;
                if let Some(s) = gap_start.take() {
                    longest = longest.max(p.at - s);
                }
            }
            Outcome::Failed(_) => {
                failed += 1;
                gap_start.get_or_insert(p.at);
            }
            Outcome::Wrong(a) => wrong.push(a.clone()),
        }
    }
    if let (Some(s), Some(last)) = (gap_start, probes.last()) {
        longest = longest.max(last.at - s);
    }
    (answered, failed, wrong, longest)
}

/// The pods that answered these probes.
pub fn pods_seen(probes: &[Probe]) -> std::collections::BTreeSet<String> {
    probes
        .iter()
        .filter_map(|p| match &p.outcome {
            Outcome::Pod(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

/// A pod as the tests look at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    pub name: String,
    pub uid: String,
    pub ip: String,
    pub running_ready: bool,
    pub restarts: i64,
    pub deleting: bool,
}

/// The pods with `selector`, from `tkctl get pods -l SELECTOR -o json`.
pub fn pods(node: &Node, selector: &str) -> Vec<PodInfo> {
    let list: serde_json::Value = serde_json::from_str(&ok(
        node,
        "tkctl",
        &["get", "pods", "-l", selector, "-o", "json"],
    ))
    .expect("a pod list");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| {
            let status = &p["status"];
            let cs = &status["containerStatuses"][0];
            PodInfo {
                name: p["metadata"]["name"].as_str().unwrap_or_default().into(),
                uid: p["metadata"]["uid"].as_str().unwrap_or_default().into(),
                ip: status["podIP"].as_str().unwrap_or_default().into(),
                running_ready: status["phase"] == "Running" && cs["ready"] == true,
                restarts: cs["restartCount"].as_i64().unwrap_or(0),
                deleting: !p["metadata"]["deletionTimestamp"].is_null(),
            }
        })
        .collect()
}

/// The addresses of endpoints `name` (ready ones), sorted.
pub fn endpoint_ips(node: &Node, name: &str) -> Vec<String> {
    let out = cli(node, "tkctl", &["get", "endpoints", name, "-o", "json"]);
    let ep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let mut ips: Vec<String> = ep["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["ip"].as_str().map(str::to_string))
        .collect();
    ips.sort();
    ips
}

/// The bootcamp processes of pod `uid` on `node`: in the pod's cgroups, `/bootcamp` by their
/// command line, and in the pod's network namespace.
pub fn bootcamp_processes(node: &Node, uid: &str) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(pod_net) = std::fs::metadata(node.pod_netns(uid)) else {
        return vec![];
    };
    node.pod_processes(uid)
        .into_iter()
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
            argv0 == b"/bootcamp"
                && std::fs::metadata(format!("/proc/{pid}/ns/net"))
                    .is_ok_and(|m| (m.dev(), m.ino()) == (pod_net.dev(), pod_net.ino()))
        })
        .collect()
}

/// Waits until pod `ip` answers on 8080 itself (running comes a moment before listening).
pub fn wait_listening(ip: &str) {
    eventually(&format!("pod {ip} answers"), 20, || {
        http_get(&format!("{ip}:8080")).is_ok_and(|a| answered_by(body(&a)).is_some())
    });
}

/// The pods answering `n` fresh requests on `addr`.
pub fn answering(addr: &str, n: usize) -> std::collections::BTreeSet<String> {
    (0..n)
        .map(|_| {
            let a = http_get(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
            answered_by(body(&a)).unwrap_or_else(|| panic!("not a bootcamp answer: {a:?}"))
        })
        .collect()
}

/// The pod UIDs that have cgroups on `node` (under its cgroup root, in any hierarchy).
pub fn pod_cgroups(node: &Node) -> BTreeSet<String> {
    let fs = std::path::Path::new("/sys/fs/cgroup");
    let mut roots = vec![fs.join(&node.cgroup_root)];
    for e in std::fs::read_dir(fs).into_iter().flatten().flatten() {
        roots.push(e.path().join(&node.cgroup_root));
    }
    roots
        .iter()
        .flat_map(|r| std::fs::read_dir(r).into_iter().flatten().flatten())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("pod"))
                .map(str::to_string)
        })
        .collect()
}

/// Whether requests on `addr` (fresh connections, up to 200) reach every pod of `names`
/// and no other.
pub fn all_answer(addr: &str, names: &BTreeSet<String>) -> bool {
    let mut seen = BTreeSet::new();
    for _ in 0..200 {
        match http_get(addr).ok().and_then(|a| answered_by(body(&a))) {
            Some(p) if names.contains(&p) => {
                seen.insert(p);
            }
            _ => return false,
        }
        if &seen == names {
            return true;
        }
    }
    false
}

/// `tkctl run web` (bootcamp v1, `replicas` pods) exposed as a NodePort service: the address
/// to ask it at (the node's IP and the node port). Call it from the node's namespace.
pub fn serve_web(node: &Node, replicas: u32) -> String {
    ok(
        node,
        "tkctl",
        &[
            "run",
            "web",
            "--image=gcr.io/google-samples/kubernetes-bootcamp:v1",
            "--port=8080",
            &format!("--replicas={replicas}"),
        ],
    );
    ok(
        node,
        "tkctl",
        &["expose", "deployment/web", "--type=NodePort", "--port=8080"],
    );
    let port = ok(
        node,
        "tkctl",
        &[
            "get",
            "service/web",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ],
    );
    format!("{}:{port}", tinykube_e2e::node::NODE_IP)
}

/// Deletes what [`serve_web`] made and waits until its pods are gone (the node's cleanup
/// needs them gone).
pub fn remove_web(node: &Node) {
    ok(node, "tkctl", &["delete", "service", "web"]);
    ok(node, "tkctl", &["delete", "deployment", "web"]);
    eventually("the pods are gone", 60, || pods(node, "run=web").is_empty());
}
