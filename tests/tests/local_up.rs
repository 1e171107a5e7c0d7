//! `hack/local-up.sh` (the README's first command) and `hack/local-up.sh down --purge`, run for
//! real inside a network namespace of their own, with their own state and run dirs, HOME,
//! cgroup root, node name and tkctl link: the node comes up Ready, the tutorial's app answers
//! through its NodePort, the `tinykube` context is merged into the user's kubeconfig beside the
//! user's own, and after `down --purge` the machine is as it was: links, iptables chains, mounts,
//! cgroups, processes, pod namespaces, files and the kubeconfig, byte for byte. Needs root.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tinykube_e2e::cli::eventually;
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

    /// The machine is as `before` (a snapshot without pods), else panics with the difference.
    fn assert_as_before(&self, before: &BTreeSet<String>, what: &str) {
        let after = self.snapshot(&[]);
        assert!(*before == after, "{what}{}", diff(before, &after));
    }

    /// A node in a namespace of its own (`prefix`), with temp dirs, and an empty `bin/` for the
    /// tkctl link.
    fn new(prefix: &str) -> Self {
        let net = NodeNet::create(prefix);
        let setup = Setup {
            cgroup_root: format!("tinykube-{}", net.name),
            net,
            tmp: tempfile::tempdir().expect("temp dir"),
        };
        std::fs::create_dir_all(setup.tmp.path().join("bin")).unwrap();
        std::fs::create_dir_all(setup.home()).unwrap();
        setup
    }

    /// `hack/local-up.sh args...` in the node with extra environment `env`; its output,
    /// whatever the outcome.
    fn try_local_up(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(script());
        cmd.args(args);
        cmd.envs(env.iter().copied());
        self.output(cmd)
    }

    /// `hack/local-up.sh args...` in the node; its output, asserting it succeeded.
    fn local_up(&self, args: &[&str]) -> String {
        self.local_up_with(args, &[])
    }

    fn local_up_with(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.try_local_up(args, env);
        assert!(
            out.status.success(),
            "local-up.sh {args:?} {env:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Each daemon's pidfile names a live process running that daemon's program (not a shell
    /// still on its way to the exec), and no second instance of it runs.
    fn assert_daemons_are_theirs(&self) {
        for (daemon, program) in [
            ("apiserver", "tinykube-apiserver"),
            ("kubelet", "tinykube-kubelet"),
            ("proxy", "tinykube-proxy"),
            ("registry", "docker-registry"),
        ] {
            let pid = self
                .pid(daemon)
                .unwrap_or_else(|| panic!("{daemon} has no pid file"));
            let argv = cmdline(pid);
            assert!(
                argv.first()
                    .is_some_and(|a| a.rsplit('/').next() == Some(program)),
                "{daemon}'s pid file names pid {pid}, which runs {argv:?}"
            );
            let instances = self.instances(program);
            assert_eq!(instances, [pid], "instances of {program}");
        }
    }

    /// The processes running `program` with a first argument under this node's temp dir (this
    /// node's, by their own dirs or config), sorted; not counting an instance's own children
    /// between their fork and their exec (the proxy starting iptables-restore, say).
    fn instances(&self, program: &str) -> Vec<i32> {
        let tmp = self.tmp.path().display().to_string();
        let found: Vec<i32> = std::fs::read_dir("/proc")
            .expect("/proc")
            .flatten()
            .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
            .filter(|pid| {
                let argv = cmdline(*pid);
                argv.first()
                    .is_some_and(|a| a.rsplit('/').next() == Some(program))
                    && argv.iter().skip(1).take(2).any(|a| a.starts_with(&tmp))
            })
            .collect();
        let mut own: Vec<i32> = found
            .iter()
            .copied()
            .filter(|pid| !parent(*pid).is_some_and(|p| found.contains(&p)))
            .collect();
        own.sort();
        own
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

    /// The pid in `daemon`'s pidfile (its first line; the second is the start time).
    fn pid(&self, daemon: &str) -> Option<i32> {
        std::fs::read_to_string(self.run_dir().join(format!("{daemon}.pid")))
            .ok()
            .and_then(|p| p.lines().next()?.trim().parse().ok())
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

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/local-up.sh")
}

/// A process's parent.
fn parent(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()
}

/// A process's arguments (empty once it is gone).
fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            c.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(text)
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `down --purge` if the test stops half-way, so a failure leaves nothing behind either.
struct Down<'a>(&'a Setup, bool);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        if !self.1 {
            let mut cmd = Command::new(script());
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
    let setup = Setup::new("tk-lu");
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

/// Drops the page cache, dentries and inodes (as root; where the kernel lets us), so that the
/// next programs start as on a machine that has never run them: slowly, from disk.
fn drop_caches() {
    let _ = Command::new("sync").status();
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

/// How many fresh starts [`fresh_starts_with_start_delays`] makes (TINYKUBE_LOCALUP_ROUNDS).
fn rounds() -> usize {
    std::env::var("TINYKUBE_LOCALUP_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10)
}

/// The README's first command the way a new machine runs it, several times in a row: no state,
/// no registry, caches dropped, and every daemon's start delayed between its fork and its exec
/// (TINYKUBE_START_DELAY), the window a cold machine opens. Each `up` succeeds with the pidfiles
/// naming the running programs, and each `down --purge` leaves the machine as it was.
#[test]
fn fresh_starts_with_start_delays() {
    let setup = Setup::new("tk-lr");
    let before = setup.snapshot(&[]);
    let mut down = Down(&setup, false);
    let delays = ["0.5", "0", "1.5", "0.2"];
    for round in 0..rounds() {
        let delay = delays[round % delays.len()];
        drop_caches();
        let out = setup.local_up_with(&[], &[("TINYKUBE_START_DELAY", delay)]);
        assert!(out.contains("is Ready"), "round {round}: {out}");
        assert!(
            out.contains("registry running (pid "),
            "round {round}: {out}"
        );
        setup.assert_daemons_are_theirs();
        let nodes = setup.tkctl(&["get", "nodes", "--no-headers"]);
        assert!(nodes.contains(" Ready "), "round {round}: {nodes}");
        setup.local_up(&["down", "--purge"]);
        setup.assert_as_before(&before, &format!("round {round}: "));
    }
    down.1 = true;
}

/// A `local-up` killed half-way (SIGKILL, by the pid we started) leaves nothing untracked: run
/// again, it finds the daemons started before the kill — by their pidfiles even when the kill
/// came between a fork and its exec, and by their own dirs when the pidfiles were lost — and
/// adopts them instead of starting second ones; `down --purge` then stops every one.
#[test]
fn a_killed_up_and_lost_pidfiles_are_recovered() {
    let setup = Setup::new("tk-lk");
    let before = setup.snapshot(&[]);
    let mut down = Down(&setup, false);
    let pidfile = |d: &str| setup.run_dir().join(format!("{d}.pid"));

    // Runs `up` (with `delay` between each daemon's fork and exec) and kills it (SIGKILL, by
    // the pid we started) once `ready(what it printed so far)`.
    let kill_up_when = |delay: &str, ready: &dyn Fn(&str) -> bool| {
        let mut cmd = setup.env(Command::new(script()));
        cmd.env("TINYKUBE_START_DELAY", delay)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        let mut up = setup.net.run(move || cmd.spawn()).expect("local-up");
        let mut stdout = up.stdout.take().unwrap();
        let printed = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let reader = {
            let printed = printed.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    printed.lock().unwrap().push_str(&text(&buf[..n]));
                }
            })
        };
        eventually("local-up got far enough", 60, || {
            ready(&printed.lock().unwrap())
        });
        up.kill().expect("kill -9 of local-up");
        up.wait().expect("reaping local-up");
        drop(reader);
    };
    let runs = |d: &str, program: &str| {
        setup
            .pid(d)
            .is_some_and(|p| cmdline(p).first().is_some_and(|a| a.ends_with(program)))
    };

    // Killed while the apiserver and the registry are still shells on their way to the exec:
    // their pidfiles (pid and start time) already name them.
    kill_up_when("2", &|_| {
        pidfile("apiserver").exists() && pidfile("registry").exists()
    });
    assert!(
        !runs("apiserver", "tinykube-apiserver") && !runs("registry", "docker-registry"),
        "the daemons exec'ed before the kill: the delay is too short to test the window"
    );
    let out = setup.local_up(&[]);
    assert!(out.contains("apiserver already running (pid "), "{out}");
    setup.assert_daemons_are_theirs();
    setup.local_up(&["down", "--purge"]);
    setup.assert_as_before(&before, "");

    // Killed once every daemon runs (no fork on its way to an exec), and then the pidfiles are
    // lost (/run wiped, say).
    kill_up_when("", &|printed| {
        printed.contains("proxy running (pid ") && runs("registry", "docker-registry")
    });
    let (apiserver, registry) = (
        setup.pid("apiserver").unwrap(),
        setup.pid("registry").unwrap(),
    );
    for d in ["apiserver", "kubelet", "proxy", "registry"] {
        let _ = std::fs::remove_file(pidfile(d));
    }
    let out = setup.local_up(&[]);
    assert!(
        out.contains(&format!(
            "apiserver already running (pid {apiserver}, adopted"
        )),
        "{out}"
    );
    assert!(
        out.contains("adopted the registry already running with"),
        "{out}"
    );
    assert_eq!(setup.pid("apiserver"), Some(apiserver));
    assert_eq!(setup.pid("registry"), Some(registry));
    setup.assert_daemons_are_theirs();
    // Lost again: `down` still finds and stops them.
    for d in ["apiserver", "kubelet", "proxy", "registry"] {
        std::fs::remove_file(pidfile(d)).unwrap();
    }
    setup.local_up(&["down", "--purge"]);
    down.1 = true;
    setup.assert_as_before(&before, "");
}

/// Every failure of `up` names what failed with the end of its log, and running `up` again
/// once the cause is gone succeeds: a kubelet that exits at start, a foreign process on the
/// registry's port (named with its pid).
#[test]
fn a_failed_up_says_why_and_a_second_up_succeeds() {
    let setup = Setup::new("tk-lf");
    let before = setup.snapshot(&[]);
    let mut down = Down(&setup, false);

    // Something else on the registry's port (this test, in the node's namespace).
    let squatter = setup
        .net
        .run(|| std::net::TcpListener::bind("127.0.0.1:5000"))
        .expect("binding the registry's port");
    let out = setup.try_local_up(&[], &[]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        err.contains("cannot start the registry: 127.0.0.1:5000 is already in use"),
        "{err}"
    );
    assert!(
        err.contains(&format!("by pid {}: ", std::process::id())),
        "{err}"
    );
    assert!(err.contains("TINYKUBE_REGISTRY_ADDR="), "what to do: {err}");
    drop(squatter);
    let out = setup.local_up(&[]);
    assert!(out.contains("kubelet already running"), "{out}");
    setup.assert_daemons_are_theirs();
    setup.local_up(&["down", "--purge"]);

    // A kubelet that exits at start: named, with the end of its log.
    let out = setup.try_local_up(&[], &[("TINYKUBE_POD_CIDR", "10.244.0.0/99")]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        err.contains("hack/local-up.sh: the kubelet exited"),
        "{err}"
    );
    assert!(err.contains("kubelet.log:"), "{err}");
    assert!(err.contains("10.244.0.0/99"), "the log's reason: {err}");
    let out = setup.local_up(&[]);
    assert!(out.contains("is Ready"), "{out}");
    setup.assert_daemons_are_theirs();
    setup.local_up(&["down", "--purge"]);
    // Twice: nothing left to do is not a failure.
    setup.local_up(&["down", "--purge"]);
    down.1 = true;
    setup.assert_as_before(&before, "");
}

/// `down --purge` finishes whatever it finds: a tinykube context that was already current at
/// `up` (a node whose state was removed by hand) is never given back, a context the user
/// deleted by hand is no error, and afterwards the next `up` starts with an empty store.
#[test]
fn down_purge_is_idempotent_and_the_next_up_is_empty() {
    let setup = Setup::new("tk-ld");
    let cfg = setup.kubeconfig();
    let kubectl = |args: &[&str]| {
        let out = Command::new("kubectl")
            .arg(format!("--kubeconfig={}", cfg.display()))
            .arg("config")
            .args(args)
            .output()
            .expect("kubectl");
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    users_kubeconfig(&setup);
    // A tinykube context left current by an earlier node whose state dir is gone.
    kubectl(&["set-cluster", "tinykube", "--server=https://127.0.0.1:6443"]);
    kubectl(&["set-credentials", "tinykube-admin", "--token=old"]);
    kubectl(&[
        "set-context",
        "tinykube",
        "--cluster=tinykube",
        "--user=tinykube-admin",
    ]);
    kubectl(&["use-context", "tinykube"]);
    let before = setup.snapshot(&[]);
    let mut down = Down(&setup, false);

    setup.local_up(&[]);
    assert_eq!(setup.tkctl(&["config", "current-context"]), "tinykube\n");
    let manifest = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        manifest.path(),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leftover\ndata:\n  a: b\n",
    )
    .unwrap();
    let path = manifest.path().display().to_string();
    assert_eq!(
        setup.tkctl(&["create", "-f", &path]),
        "configmap/leftover created\n"
    );
    let out = setup.local_up(&["down", "--purge"]);
    assert!(out.contains("removed the tinykube context"), "{out}");
    // The context that was current before is not known: none is current now.
    assert_eq!(kubectl(&["view", "-o", "jsonpath={.current-context}"]), "");
    assert_eq!(kubectl(&["get-contexts", "-o", "name"]), "mine\n");
    setup.local_up(&["down", "--purge"]);

    // The user deletes the context by hand before `down --purge`.
    setup.local_up(&[]);
    let cms = setup.tkctl(&["get", "configmaps", "-o", "name"]);
    assert!(!cms.contains("leftover"), "the store is not empty: {cms}");
    kubectl(&["delete-context", "tinykube"]);
    kubectl(&["use-context", "mine"]);
    let out = setup.local_up(&["down", "--purge"]);
    assert!(out.contains("removed the tinykube context"), "{out}");
    assert_eq!(kubectl(&["current-context"]), "mine\n");
    assert!(!setup.tmp.path().join("state").exists());
    setup.local_up(&["down", "--purge"]);
    down.1 = true;
    setup.assert_as_before(&before, "");
    // The stale tinykube entries are gone too; the user's stay.
    assert_eq!(kubectl(&["get-clusters"]), "NAME\nmine\n");
    assert_eq!(kubectl(&["get-users"]), "NAME\nme\n");
}
