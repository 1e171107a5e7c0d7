//! `hack/local-up.sh` (the README's first command) and `hack/local-up.sh down --purge`, run for
//! real inside a network namespace of their own, with their own state and run dirs, HOME,
//! cgroup root, node name and tkctl link: the node comes up Ready, the tutorial's app answers
//! through its NodePort, the `tinykube` context is merged into the user's kubeconfig beside the
//! user's own, and after `down --purge` the machine is as it was: links, iptables chains, mounts,
//! cgroups, processes, pod namespaces, files and the kubeconfig, byte for byte. Needs root.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tinykube_e2e::node::{bootcamp, NodeNet};
use tinykube_e2e::{answer, built_binary};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The node: its namespace, its temporary dirs, and the environment `local-up.sh` runs with.
struct Setup {
    net: NodeNet,
    tmp: tempfile::TempDir,
    cgroup_root: String,
}

impl Setup {
    fn home(&self) -> PathBuf {
        self.tmp.path().join("home")
    }

    fn kubeconfig(&self) -> PathBuf {
        self.home().join(".kube/config")
    }

    fn link(&self) -> PathBuf {
        self.tmp.path().join("bin/tkctl")
    }

    fn run_dir(&self) -> PathBuf {
        self.tmp.path().join("run")
    }

    /// `cmd` with the node's settings: the user's HOME (no KUBECONFIG), and every path and name
    /// local-up.sh would otherwise share with a node on the host.
    fn env(&self, mut cmd: Command) -> Command {
        let target = built_binary("tkctl")
            .parent()
            .and_then(Path::parent)
            .expect("target dir")
            .to_path_buf();
        let t = self.tmp.path();
        cmd.env_remove("KUBECONFIG")
            .env("HOME", self.home())
            .env("TINYKUBE_STATE", t.join("state"))
            .env("TINYKUBE_RUN", self.run_dir())
            .env("TINYKUBE_POD_LOG_DIR", t.join("logs"))
            .env("TINYKUBE_CGROUP_ROOT", &self.cgroup_root)
            .env("TINYKUBE_NODE_NAME", &self.net.name)
            .env("TINYKUBE_TKCTL_LINK", self.link())
            // The binaries `cargo test` has just built (no cargo inside `cargo test`).
            .env("TINYKUBE_SKIP_BUILD", "1")
            .env("CARGO_TARGET_DIR", target)
            .env("TINYKUBE_BOOTCAMP_BIN", bootcamp());
        cmd
    }

    /// Runs `cmd` (with the node's settings) inside the node's namespace.
    fn output(&self, cmd: Command) -> Output {
        let mut cmd = self.env(cmd);
        self.net
            .run(move || cmd.output())
            .expect("running a command in the node")
    }

    /// `hack/local-up.sh args...` in the node; its output, asserting it succeeded.
    fn local_up(&self, args: &[&str]) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/local-up.sh");
        let mut cmd = Command::new(script);
        cmd.args(args);
        let out = self.output(cmd);
        assert!(
            out.status.success(),
            "local-up.sh {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// tkctl (`prog`: the built one or the link) as the user, with the merged kubeconfig.
    fn tkctl_with(&self, prog: &Path, args: &[&str]) -> String {
        let mut cmd = Command::new(prog);
        cmd.args(args);
        let out = self.output(cmd);
        assert!(
            out.status.success(),
            "tkctl {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn tkctl(&self, args: &[&str]) -> String {
        self.tkctl_with(&built_binary("tkctl"), args)
    }

    fn pid(&self, daemon: &str) -> Option<i32> {
        std::fs::read_to_string(self.run_dir().join(format!("{daemon}.pid")))
            .ok()
            .and_then(|p| p.trim().parse().ok())
    }

    /// What the machine has that the node could have touched, one tagged line per thing.
    fn snapshot(&self, pod_uids: &[String]) -> BTreeSet<String> {
        let mut s = BTreeSet::new();
        let tmp = self.tmp.path().display().to_string();
        // Links of the node's namespace (names only: counters and indexes move).
        let links = self
            .net
            .run(|| Command::new("ip").args(["-o", "link"]).output());
        for l in text(&links.expect("ip link").stdout).lines() {
            let name = l.split(": ").nth(1).unwrap_or(l);
            s.insert(format!("link {}", name.split('@').next().unwrap_or(name)));
        }
        // Its iptables: every table's chains and rules.
        let save = self.net.run(|| Command::new("iptables-save").output());
        let mut table = String::new();
        for l in text(&save.expect("iptables-save").stdout).lines() {
            if let Some(t) = l.strip_prefix('*') {
                table = t.to_string();
            } else if let Some(c) = l.strip_prefix(':') {
                // A built-in chain counts only with a policy other than ACCEPT: the tables the
                // node's rules were in stay (empty, accepting everything) after its cleanup, as
                // after kube-proxy's; an absent table and an empty one filter the same.
                let mut f = c.split_whitespace();
                let (chain, policy) = (f.next().unwrap_or(""), f.next().unwrap_or("-"));
                let builtin = matches!(
                    chain,
                    "PREROUTING" | "INPUT" | "FORWARD" | "OUTPUT" | "POSTROUTING"
                );
                if !builtin || policy != "ACCEPT" {
                    s.insert(format!("iptables {table} :{chain} {policy}"));
                }
            } else if l.starts_with("-A ") {
                s.insert(format!("iptables {table} {l}"));
            }
        }
        // Network namespaces of the host named after the node or one of its pods.
        let netns = Command::new("ip").args(["netns", "list"]).output();
        for l in text(&netns.expect("ip netns list").stdout).lines() {
            let name = l.split_whitespace().next().unwrap_or("");
            if name == self.net.name || pod_uids.iter().any(|u| name.contains(u.as_str())) {
                s.insert(format!("netns {name}"));
            }
        }
        // Mounts under the temp dir or naming the node or its pods.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let mut cgroup_mounts = Vec::new();
        for l in mounts.lines() {
            let f: Vec<&str> = l.split(' ').collect();
            if let Some(dash) = f.iter().position(|x| *x == "-") {
                if matches!(f.get(dash + 1), Some(&"cgroup") | Some(&"cgroup2")) {
                    cgroup_mounts.push(PathBuf::from(f[4]));
                }
            }
            if l.contains(&tmp)
                || l.contains(&self.net.name)
                || pod_uids.iter().any(|u| l.contains(u.as_str()))
            {
                // Without the mount id and parent (renumbered on every mount).
                s.insert(format!("mount {}", f.get(2..).unwrap_or(&[]).join(" ")));
            }
        }
        // Cgroups under the node's cgroup root, in every hierarchy.
        for m in cgroup_mounts {
            let mut dirs = vec![m.join(&self.cgroup_root)];
            while let Some(d) = dirs.pop() {
                let Ok(entries) = std::fs::read_dir(&d) else {
                    continue;
                };
                s.insert(format!("cgroup {}", d.display()));
                dirs.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
        }
        // Processes: in the node's namespace, in its cgroups, working or running from the temp
        // dir, or named by its pid files.
        let node_ns_inode = std::fs::metadata(self.net.path())
            .ok()
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m));
        let pidfiles: Vec<i32> = ["apiserver", "kubelet", "proxy", "registry"]
            .iter()
            .filter_map(|d| self.pid(d))
            .collect();
        for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let p = e.path();
            let in_node_ns = std::fs::metadata(p.join("ns/net"))
                .ok()
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                .is_some_and(|i| Some(i) == node_ns_inode);
            let in_cgroup = std::fs::read_to_string(p.join("cgroup"))
                .is_ok_and(|c| c.contains(&format!("/{}/", self.cgroup_root)));
            let under_tmp = ["cwd", "exe"].iter().any(|l| {
                std::fs::read_link(p.join(l)).is_ok_and(|t| t.starts_with(self.tmp.path()))
            });
            let cmdline = std::fs::read(p.join("cmdline"))
                .map(|c| text(&c).replace('\0', " "))
                .unwrap_or_default();
            // The test's own threads entered the namespace only for a moment; the test process
            // itself is never the node's.
            if pid == std::process::id() as i32 {
                continue;
            }
            if in_node_ns || in_cgroup || under_tmp || pidfiles.contains(&pid) {
                s.insert(format!("process {pid} {}", cmdline.trim()));
            }
        }
        // Files in the temp dir (HOME's, the state and run dirs, the tkctl link).
        let mut dirs = vec![self.tmp.path().to_path_buf()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let path = e.path();
                let rel = path.strip_prefix(self.tmp.path()).unwrap().display();
                // kubectl's discovery cache is the user's, not the node's.
                if rel.to_string().starts_with("home/.kube/cache") {
                    continue;
                }
                s.insert(format!("file {rel}"));
                // The state and run dirs are listed, not walked (they are large and busy).
                if e.file_type().is_ok_and(|t| t.is_dir())
                    && !["state", "run", "logs"].contains(&rel.to_string().as_str())
                {
                    dirs.push(path);
                }
            }
        }
        s
    }
}

fn eventually(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs `down --purge` if the test stops half-way, so a failure leaves nothing behind either.
struct Down<'a>(&'a Setup, bool);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        if !self.1 {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/local-up.sh");
            let mut cmd = Command::new(script);
            cmd.args(["down", "--purge"]);
            let out = self.0.output(cmd);
            if !out.status.success() {
                eprintln!("down --purge: {}", text(&out.stderr));
            }
        }
    }
}

/// The user's own kubeconfig before `up`: a cluster, user and context of theirs, written by
/// kubectl.
fn users_kubeconfig(setup: &Setup) -> Vec<u8> {
    let cfg = setup.kubeconfig();
    let kubectl = |args: &[&str]| {
        let out = Command::new("kubectl")
            .arg(format!("--kubeconfig={}", cfg.display()))
            .args(["config"])
            .args(args)
            .output()
            .expect("kubectl");
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    kubectl(&["set-cluster", "mine", "--server=https://10.1.2.3:6443"]);
    kubectl(&["set-credentials", "me", "--token=abc"]);
    kubectl(&["set-context", "mine", "--cluster=mine", "--user=me"]);
    kubectl(&["use-context", "mine"]);
    std::fs::read(&cfg).expect("the user's kubeconfig")
}

fn diff(a: &BTreeSet<String>, b: &BTreeSet<String>) -> String {
    let gone: Vec<_> = a.difference(b).collect();
    let new: Vec<_> = b.difference(a).collect();
    format!("gone: {gone:#?}\nnew: {new:#?}")
}

#[test]
fn local_up_then_down_purge_leaves_the_machine_as_it_was() {
    let net = NodeNet::create("tk-lu");
    let setup = Setup {
        cgroup_root: format!("tinykube-{}", net.name),
        net,
        tmp: tempfile::tempdir().expect("temp dir"),
    };
    std::fs::create_dir_all(setup.tmp.path().join("bin")).unwrap();
    let users = users_kubeconfig(&setup);
    let before = setup.snapshot(&[]);

    let mut down = Down(&setup, false);
    let out = setup.local_up(&[]);
    assert!(out.contains("is Ready"), "{out}");
    // The next steps name tkctl; no `export KUBECONFIG` is needed any more.
    assert!(out.contains("tkctl run kubernetes-first-app"), "{out}");
    assert!(!out.contains("export KUBECONFIG"), "{out}");

    // The merged kubeconfig: tinykube is current, the user's context is still there.
    assert_eq!(setup.tkctl(&["config", "current-context"]), "tinykube\n");
    let contexts = setup.tkctl(&["config", "get-contexts", "-o", "name"]);
    assert_eq!(contexts, "mine\ntinykube\n");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(setup.kubeconfig()).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    // tkctl is linked where asked (nothing was there).
    assert_eq!(
        std::fs::read_link(setup.link()).unwrap(),
        built_binary("tkctl")
    );

    eventually("the node is Ready", 30, || {
        setup.tkctl(&["get", "nodes"]).lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.first() == Some(&setup.net.name.as_str()) && f.get(1) == Some(&"Ready")
        })
    });
    // The tutorial, through the link.
    let link = setup.link();
    let tk = |args: &[&str]| setup.tkctl_with(&link, args);
    assert_eq!(
        tk(&[
            "run",
            "kubernetes-first-app",
            "--image=gcr.io/google-samples/kubernetes-bootcamp:v1",
            "--port=8080",
        ]),
        "deployment.apps/kubernetes-first-app created\n"
    );
    assert_eq!(
        tk(&[
            "expose",
            "deployment/kubernetes-first-app",
            "--type=NodePort",
            "--port",
            "8080",
        ]),
        "service/kubernetes-first-app exposed\n"
    );
    let port = tk(&[
        "get",
        "services/kubernetes-first-app",
        "-o",
        "go-template={{(index .spec.ports 0).nodePort}}",
    ]);
    eventually("the app's pod runs", 60, || {
        tk(&["get", "pods"])
            .lines()
            .skip(1)
            .any(|l| l.contains("1/1") && l.contains("Running"))
    });
    let reply = setup.net.block_on(answer(&format!("127.0.0.1:{port}")));
    assert!(
        reply.contains("Hello Kubernetes bootcamp! | Running on: kubernetes-first-app-"),
        "{reply}"
    );

    // `up` again is harmless: the same processes, still one tinykube context.
    let pids: Vec<_> = ["apiserver", "kubelet", "proxy", "registry"]
        .iter()
        .map(|d| {
            setup
                .pid(d)
                .unwrap_or_else(|| panic!("{d} has no pid file"))
        })
        .collect();
    let again = setup.local_up(&[]);
    assert!(again.contains("kubelet already running"), "{again}");
    assert_eq!(
        ["apiserver", "kubelet", "proxy", "registry"].map(|d| setup.pid(d).unwrap()),
        pids[..]
    );
    assert_eq!(
        setup.tkctl(&["config", "get-contexts", "-o", "name"]),
        "mine\ntinykube\n"
    );

    let uids: Vec<String> = setup
        .tkctl(&[
            "get",
            "pods",
            "-A",
            "-o",
            "jsonpath={.items[*].metadata.uid}",
        ])
        .split_whitespace()
        .map(String::from)
        .collect();
    assert!(!uids.is_empty());
    let during = setup.snapshot(&uids);
    // What the snapshot sees of a running node (so that its sameness below means something).
    for (what, thing) in [
        ("the pod's netns", "netns "),
        ("the pods' cgroups", "cgroup "),
        ("the proxy's chains", "iptables nat :KUBE-SERVICES"),
        ("the bridge", "link tinykube0"),
        ("the state dir", "file state"),
    ] {
        assert!(
            during.iter().any(|l| l.starts_with(thing)),
            "the snapshot misses {what}: {during:#?}"
        );
    }
    for pid in &pids {
        assert!(
            during
                .iter()
                .any(|l| l.starts_with(&format!("process {pid} "))),
            "the snapshot misses process {pid}"
        );
    }

    let out = setup.local_up(&["down", "--purge"]);
    down.1 = true;
    assert!(out.contains("removed the tinykube context"), "{out}");
    let after = setup.snapshot(&uids);
    assert!(before == after, "{}", diff(&before, &after));
    assert_eq!(
        text(&std::fs::read(setup.kubeconfig()).unwrap()),
        text(&users),
        "the user's kubeconfig is not as it was"
    );
}
