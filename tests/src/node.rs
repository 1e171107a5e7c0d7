//! A whole tinykube node for end-to-end tests, from the built binaries, inside a network
//! namespace of its own: the apiserver, a real registry (Debian's docker-registry) holding the
//! sample images, and the kubelet, all on that namespace's loopback, so the host's interfaces
//! and iptables rules are never touched and several nodes can run at once.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tinykube_images::TestRegistry;

use crate::{built_binary, sweep, Apiserver};

/// The node's address inside its namespace (on its `eth0`).
pub const NODE_IP: &str = "172.30.0.2";

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A named network namespace with loopback up and an `eth0` holding [`NODE_IP`];
/// deleted on drop.
pub struct NodeNet {
    pub name: String,
}

impl NodeNet {
    pub fn create(prefix: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &name]));
        let net = Self { name };
        let ip = |args: &[&str]| run(Command::new("ip").args(["-n", &net.name]).args(args));
        ip(&["link", "set", "lo", "up"]);
        // A veth pair with both ends inside (the `dummy` module may be missing).
        ip(&[
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0-peer",
        ]);
        ip(&["addr", "add", &format!("{NODE_IP}/24"), "dev", "eth0"]);
        ip(&["link", "set", "eth0-peer", "up"]);
        ip(&["link", "set", "eth0", "up"]);
        ip(&["route", "add", "default", "dev", "eth0"]);
        net
    }

    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// Links the namespace to the caller's (the host's) with a veth, so the host can play
    /// "outside the cluster": returns the namespace's address on that link. Each link gets a
    /// /30 of its own in 198.18.0.0/15 (RFC 2544's range for test networks), picked from the
    /// process id and a counter so that parallel tests do not collide; the pair goes with the
    /// namespace. Call it from the host's namespace.
    pub fn link_to_host(&self) -> String {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let block = (std::process::id().wrapping_mul(64) + seq) % (1 << 15);
        let base = (198u32 << 24) | (18 << 16) | (block << 2);
        let addr = |n: u32| std::net::Ipv4Addr::from(base + n).to_string();
        let host_if = format!("tkh{}x{seq}", std::process::id());
        run(Command::new("ip").args([
            "link", "add", &host_if, "type", "veth", "peer", "name", "eth1", "netns", &self.name,
        ]));
        run(Command::new("ip").args(["addr", "add", &format!("{}/30", addr(1)), "dev", &host_if]));
        run(Command::new("ip").args(["link", "set", &host_if, "up"]));
        let ip = |args: &[&str]| run(Command::new("ip").args(["-n", &self.name]).args(args));
        ip(&["addr", "add", &format!("{}/30", addr(2)), "dev", "eth1"]);
        ip(&["link", "set", "eth1", "up"]);
        addr(2)
    }

    /// Moves the calling thread into the namespace (processes it starts are born there).
    pub fn enter(&self) {
        let f = std::fs::File::open(self.path()).expect("node netns");
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
    }

    /// Runs `f` on a thread inside the namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.enter();
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Runs future `f` to completion on a runtime inside the namespace (every socket it opens
    /// is the node's).
    pub fn block_on<F: std::future::Future + Send>(&self, f: F) -> F::Output
    where
        F::Output: Send,
    {
        self.run(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(f)
        })
    }
}

impl Drop for NodeNet {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The busybox-static binary the sample images are made of.
pub fn busybox() -> PathBuf {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("busybox is missing: install Debian's busybox-static (hack/test.sh does)")
}

/// The static bootcamp binary (hack/test.sh builds it and sets TINYKUBE_BOOTCAMP_BIN).
pub fn bootcamp() -> PathBuf {
    let p = std::env::var_os("TINYKUBE_BOOTCAMP_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
            target.join("x86_64-unknown-linux-gnu/release/bootcamp")
        });
    assert!(
        p.exists(),
        "{} is missing: build the static bootcamp first (hack/test.sh does)",
        p.display()
    );
    p
}

/// Debian's etcd binary, unpacked from its package (hack/test.sh fetches it and sets
/// TINYKUBE_ETCD_BIN; installing the package would start a service).
pub fn etcd() -> PathBuf {
    let p = std::env::var_os("TINYKUBE_ETCD_BIN")
        .map(PathBuf::from)
        .expect(
            "TINYKUBE_ETCD_BIN is not set: hack/test.sh unpacks Debian's etcd-server and sets it",
        );
    assert!(
        p.exists(),
        "{} is missing: hack/test.sh unpacks Debian's etcd-server",
        p.display()
    );
    p
}

/// Kills (SIGKILL) and reaps the process in `slot`, if any.
fn kill(slot: &std::sync::Mutex<Option<Child>>) {
    if let Some(mut c) = slot.lock().unwrap().take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// A node: apiserver, registry with the sample images, a kubelet and (on demand) the proxy,
/// in a [`NodeNet`].
pub struct Node {
    kubelet: std::sync::Mutex<Option<Child>>,
    proxy: std::sync::Mutex<Option<Child>>,
    pub registry: TestRegistry,
    pub apiserver: Apiserver,
    pub root: tempfile::TempDir,
    pub name: String,
    pub cgroup_root: String,
    // Dropped last: everything above lives in it.
    pub net: NodeNet,
}

impl Node {
    /// Starts apiserver, registry (with busybox and bootcamp v1/v2 pushed) and kubelet.
    /// First (once per test process) sweeps what killed test processes left ([`sweep`]).
    pub fn start() -> Self {
        static SWEEP: std::sync::Once = std::sync::Once::new();
        SWEEP.call_once(|| {
            sweep::sweep();
        });
        let net = NodeNet::create(sweep::PREFIX);
        // Recorded at once: a kill from here on leaves what the sweep needs to know.
        sweep::record(&net.name, &[]);
        let root = tempfile::tempdir().expect("temp dir");
        sweep::record(&net.name, &[root.path()]);
        let apiserver = net.run(|| {
            Apiserver::start(
                &built_binary("tinykube-apiserver"),
                &["--node-name", &net.name],
            )
        });
        let registry = net.run(|| TestRegistry::start().expect("registry"));
        let images =
            tinykube_images::sample_images(&busybox(), &bootcamp()).expect("sample images");
        net.block_on(async {
            for (repo, tag, image) in &images {
                tinykube_images::push(registry.addr(), repo, tag, image)
                    .await
                    .expect("pushing a sample image");
            }
        });
        let name = net.name.clone();
        let registry_dir = registry.data_dir();
        let registry_dir = registry_dir.parent().expect("the registry's dir");
        sweep::record(&name, &[root.path(), apiserver.dir.path(), registry_dir]);
        let node = Self {
            kubelet: Default::default(),
            proxy: Default::default(),
            registry,
            apiserver,
            root,
            cgroup_root: format!("tinykube-{name}"),
            name,
            net,
        };
        node.start_kubelet();
        node
    }

    fn flags(&self) -> Vec<String> {
        let reg = format!("http://{}", self.registry.addr());
        let root = self.root.path();
        vec![
            format!("--root-dir={}", root.join("kubelet").display()),
            format!("--pod-log-dir={}", root.join("logs").display()),
            format!("--cgroup-root={}", self.cgroup_root),
            format!("--pod-netns-prefix={}", self.name),
            format!("--registry-mirror=docker.io={reg}"),
            format!("--registry-mirror=gcr.io={reg}"),
            format!("--registry-mirror=registry.k8s.io={reg}"),
            format!("--resolv-conf={}", self.resolv_conf().display()),
        ]
    }

    /// Starts daemon `component` (`kubelet`, `proxy`) of the node with its own credentials and
    /// `extra` flags, logging to `<root>/<component>.log`.
    fn spawn_daemon(&self, component: &str, extra: &[String]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join(format!("{component}.log")))
            .expect("daemon log");
        self.net.run(|| {
            Command::new(built_binary(&format!("tinykube-{component}")))
                .args(extra)
                .arg(format!(
                    "--kubeconfig={}",
                    self.apiserver.kubeconfig(component).display()
                ))
                .arg(format!("--hostname-override={}", self.name))
                .arg(format!("--node-ip={NODE_IP}"))
                .env(
                    "TINYKUBE_LOG",
                    std::env::var("TINYKUBE_E2E_LOG").unwrap_or_else(|_| "info".into()),
                )
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("starting the {component}: {e}"))
        })
    }

    /// Pushes `image` as `repo:tag` to the node's registry (which mirrors docker.io, gcr.io
    /// and registry.k8s.io).
    pub fn push(&self, repo: &str, tag: &str, image: &tinykube_images::Image) {
        self.net.block_on(async {
            tinykube_images::push(self.registry.addr(), repo, tag, image)
                .await
                .expect("pushing an image")
        });
    }

    /// Starts (or restarts) the kubelet.
    pub fn start_kubelet(&self) {
        let child = self.spawn_daemon("kubelet", &self.flags());
        *self.kubelet.lock().unwrap() = Some(child);
    }

    /// `kill -9` of the kubelet.
    pub fn kill_kubelet(&self) {
        kill(&self.kubelet);
    }

    /// Waits until the kubelet has registered the Node and reports it Ready.
    pub fn wait_ready(&self) {
        self.net.block_on(async {
            let client = self.apiserver.client("admin").await;
            let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let ready = nodes.get(&self.name).await.ok().is_some_and(|n| {
                    n.status
                        .and_then(|s| s.conditions)
                        .into_iter()
                        .flatten()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                });
                if ready {
                    return;
                }
                assert!(Instant::now() < deadline, "node {} never Ready", self.name);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    }

    /// Starts (or restarts) tinykube-proxy (and so the cluster DNS, whose upstream is
    /// [`Node::resolv_conf`]).
    pub fn start_proxy(&self) {
        let resolv = format!("--resolv-conf={}", self.resolv_conf().display());
        let child = self.spawn_daemon("proxy", &[self.proxy_state_flag(), resolv]);
        *self.proxy.lock().unwrap() = Some(child);
    }

    /// The node's resolv.conf (for the DNS's upstream and pods with dnsPolicy Default): a
    /// resolver on the node's loopback (127.0.0.1:53), which a test may start; the host's
    /// resolvers are not the node's.
    pub fn resolv_conf(&self) -> PathBuf {
        let path = self.root.path().join("resolv.conf");
        if !path.exists() {
            std::fs::write(&path, "nameserver 127.0.0.1\n")
                .expect("writing the node's resolv.conf");
        }
        path
    }

    fn proxy_state_flag(&self) -> String {
        format!("--state-dir={}", self.root.path().join("proxy").display())
    }

    /// The proxy's process id, while it runs.
    pub fn proxy_pid(&self) -> Option<u32> {
        self.proxy.lock().unwrap().as_ref().map(|c| c.id())
    }

    /// `kill -9` of the proxy.
    pub fn kill_proxy(&self) {
        kill(&self.proxy);
    }

    /// Runs `tinykube-proxy cleanup` in the node.
    pub fn proxy_cleanup(&self) -> std::process::Output {
        self.net.run(|| {
            Command::new(built_binary("tinykube-proxy"))
                .arg("cleanup")
                .arg(self.proxy_state_flag())
                .output()
                .expect("running proxy cleanup")
        })
    }

    /// The values of sysctls `paths` inside the node.
    pub fn sysctls(&self, paths: &[&str]) -> Vec<String> {
        self.net.run(|| {
            paths
                .iter()
                .map(|p| {
                    std::fs::read_to_string(p)
                        .unwrap_or_default()
                        .trim()
                        .to_string()
                })
                .collect()
        })
    }

    /// The node's iptables rules (`iptables-save`, without comments and counters).
    pub fn iptables_rules(&self) -> Vec<String> {
        let out = self.net.run(|| {
            Command::new("iptables-save")
                .output()
                .expect("iptables-save")
        });
        let mut table = String::new();
        let mut rules = Vec::new();
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(t) = l.strip_prefix('*') {
                table = t.to_string();
            } else if l.starts_with("-A ") {
                rules.push(format!("{table} {l}"));
            } else if let Some(c) = l.strip_prefix(':') {
                let name = c.split_whitespace().next().unwrap_or("");
                if !matches!(
                    name,
                    "PREROUTING" | "INPUT" | "FORWARD" | "OUTPUT" | "POSTROUTING"
                ) {
                    rules.push(format!("{table} :{name}"));
                }
            }
        }
        rules
    }

    /// `kill -9` of the apiserver (its data dir stays for [`Node::restart_apiserver`]).
    pub fn kill_apiserver(&self) {
        self.apiserver.kill();
    }

    /// Starts the apiserver again inside the node, on the same port with the same data dir
    /// and flags (the kubelet's and proxy's kubeconfigs stay valid); returns once it serves.
    pub fn restart_apiserver(&self) {
        self.net.run(|| self.apiserver.restart());
    }

    /// The processes in the cgroups of pod `uid` on this node (its containers' processes),
    /// from whichever cgroup hierarchies the machine has; sorted, without duplicates.
    pub fn pod_processes(&self, uid: &str) -> Vec<i32> {
        let rel = Path::new(&self.cgroup_root).join(format!("pod{uid}"));
        let fs = Path::new("/sys/fs/cgroup");
        let mut roots = vec![fs.join(&rel)];
        for e in std::fs::read_dir(fs).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                roots.push(e.path().join(&rel));
            }
        }
        let mut pids = Vec::new();
        for root in roots {
            let leaves = std::fs::read_dir(&root).into_iter().flatten().flatten();
            for dir in std::iter::once(root.clone()).chain(leaves.map(|e| e.path())) {
                let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                pids.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Pod `uid`'s network namespace (`/run/netns/<node name>-<uid>`: the kubelet's
    /// `--pod-netns-prefix` is the node's name, so whatever a node leaves is known to be its).
    pub fn pod_netns(&self, uid: &str) -> PathBuf {
        Path::new("/run/netns").join(format!("{}-{uid}", self.name))
    }

    /// The running kubelet's pid.
    pub fn kubelet_pid(&self) -> Option<i32> {
        self.kubelet.lock().unwrap().as_ref().map(|c| c.id() as i32)
    }

    /// The kubelet's log so far.
    pub fn kubelet_log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("kubelet.log")).unwrap_or_default()
    }

    /// The proxy's log so far.
    pub fn proxy_log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("proxy.log")).unwrap_or_default()
    }

    /// Stops the kubelet (`kill -9`), then runs `tinykube-kubelet cleanup`. A kubelet left
    /// running would restart the containers cleanup stops, behind its back, and they would
    /// outlive the test.
    pub fn cleanup(&self) -> std::process::Output {
        self.kill_kubelet();
        self.net.run(|| {
            Command::new(built_binary("tinykube-kubelet"))
                .arg("cleanup")
                .args(self.flags())
                .output()
                .expect("running cleanup")
        })
    }

    /// The kubelet's root dir.
    pub fn kubelet_dir(&self) -> PathBuf {
        self.root.path().join("kubelet")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill_proxy();
        self.kill_kubelet();
        let out = self.cleanup();
        if !out.status.success() {
            eprintln!(
                "cleanup of node {} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if std::thread::panicking() {
            eprintln!(
                "--- kubelet log of {} ---\n{}\n--- proxy log ---\n{}",
                self.name,
                self.kubelet_log(),
                self.proxy_log()
            );
        }
        sweep::forget(&self.name);
    }
}
