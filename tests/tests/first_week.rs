//! A user's first week with their own kubectl, on a real node (apiserver, kubelet, proxy and
//! registry in a network namespace of their own): the commands people type, each outcome
//! checked as the user would see it — with the installed kubectl 1.32, then with kubectl
//! 1.33.1 (each in a namespace of its own), then the official Python client's interactive
//! exec. Commands that succeed must say nothing on stderr that a real cluster would not
//! (`ok`); the few whose stderr a real cluster fills too are run with `run`. Needs root.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{answered_by, body, eventually, http_get, text};
use tinykube_e2e::node::Node;

/// kubectl 1.33.1 itself (the dispatcher runs it for servers that say minor 33); run
/// directly, it talks to this 1.32 server as a user one minor ahead would.
const KUBECTL_1_33: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";
const V1: &str = "gcr.io/google-samples/kubernetes-bootcamp:v1";
const V2: &str = "gcr.io/google-samples/kubernetes-bootcamp:v2";

/// kubectl as the node's admin, in namespace `ns`, with a home of its own (its caches).
struct Kubectl<'a> {
    node: &'a Node,
    bin: &'a str,
    ns: String,
    home: tempfile::TempDir,
    /// Whose credentials: `admin`, or a daemon's (`kubelet`).
    user: &'a str,
}

impl<'a> Kubectl<'a> {
    fn new(node: &'a Node, bin: &'a str, ns: &str) -> Self {
        assert!(
            bin == "kubectl" || std::path::Path::new(bin).exists(),
            "{bin} is not installed"
        );
        Kubectl {
            node,
            bin,
            ns: ns.to_string(),
            home: tempfile::tempdir().expect("temp dir"),
            user: "admin",
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.bin);
        c.arg(format!(
            "--kubeconfig={}",
            self.node.apiserver.kubeconfig(self.user).display()
        ))
        .arg(format!("--namespace={}", self.ns))
        .args(args)
        .env("HOME", self.home.path())
        .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.bin))
    }

    /// Runs `args`, which must succeed without a word on stderr; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{} {args:?}: exit {:?}\n{}{}",
            self.bin,
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Runs `args` with `input` on stdin.
    fn with_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Starts a long-running command (`-w`, `port-forward`, `attach`), its stdout read line by
    /// line.
    fn spawn(&self, args: &[&str]) -> Lines {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { child, rx }
    }

    /// `kubectl edit` with an editor that runs `sed -i <script>` on the file it is given.
    fn edit(&self, what: &[&str], script: &str) -> String {
        let editor = self.home.path().join("editor.sh");
        std::fs::write(&editor, format!("#!/bin/sh\nsed -i '{script}' \"$1\"\n")).unwrap();
        std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut args = vec!["edit"];
        args.extend_from_slice(what);
        let out = self
            .command(&args)
            .env("KUBE_EDITOR", &editor)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "edit: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// A file in kubectl's home.
    fn file(&self, name: &str, content: &str) -> String {
        let p = self.home.path().join(name);
        std::fs::write(&p, content).unwrap();
        p.display().to_string()
    }
}

/// A running command's stdout lines; the process (ours) is killed on drop.
struct Lines {
    child: Child,
    rx: mpsc::Receiver<String>,
}

impl Lines {
    /// The first line that `f` accepts, within `secs`.
    fn until(&mut self, what: &str, secs: u64, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) if f(&l) => return l,
                Ok(l) => seen.push(l),
                Err(_) => {
                    let _ = self.child.kill();
                    let err = self
                        .child
                        .stderr
                        .take()
                        .map(|mut e| {
                            let mut s = String::new();
                            let _ = std::io::Read::read_to_string(&mut e, &mut s);
                            s
                        })
                        .unwrap_or_default();
                    panic!("never: {what}; saw {seen:?}; stderr {err}");
                }
            }
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// The local port of a `port-forward`'s "Forwarding from 127.0.0.1:PORT -> …" line.
fn forwarded_port(line: &str) -> u16 {
    line.strip_prefix("Forwarding from 127.0.0.1:")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not a forwarding line: {line}"))
}

fn first_week(node: &Node, bin: &str, ns: &str) {
    let k = Kubectl::new(node, bin, ns);
    let t = Instant::now();

    // create: namespace, deployment, services, configmap, secret, service account.
    assert_eq!(
        k.ok(&["create", "namespace", ns]),
        format!("namespace/{ns} created\n")
    );
    assert_eq!(
        k.ok(&[
            "create",
            "deployment",
            "web",
            &format!("--image={V1}"),
            "--replicas=2"
        ]),
        "deployment.apps/web created\n"
    );
    assert_eq!(
        k.ok(&["create", "service", "clusterip", "web", "--tcp=8080:8080"]),
        "service/web created\n"
    );
    assert_eq!(
        k.ok(&["create", "service", "nodeport", "web-np", "--tcp=8080:8080"]),
        "service/web-np created\n"
    );
    let np = k.ok(&[
        "get",
        "service",
        "web-np",
        "-o",
        "jsonpath={.spec.type} {.spec.ports[0].nodePort}",
    ]);
    let (ty, port) = np.split_once(' ').unwrap();
    assert_eq!(ty, "NodePort");
    assert!(
        (30000..=32767).contains(&port.parse::<u16>().unwrap()),
        "{np}"
    );
    assert_eq!(
        k.ok(&[
            "create",
            "configmap",
            "cfg",
            "--from-literal=greeting=hello"
        ]),
        "configmap/cfg created\n"
    );
    assert_eq!(
        k.ok(&["get", "configmap", "cfg", "-o", "jsonpath={.data.greeting}"]),
        "hello"
    );
    assert_eq!(
        k.ok(&[
            "create",
            "secret",
            "generic",
            "sec",
            "--from-literal=password=s3cret"
        ]),
        "secret/sec created\n"
    );
    assert_eq!(
        k.ok(&["get", "secret", "sec", "-o", "jsonpath={.data.password}"]),
        "czNjcmV0"
    );
    assert_eq!(
        k.ok(&["create", "serviceaccount", "robot"]),
        "serviceaccount/robot created\n"
    );
    assert_eq!(
        k.ok(&[
            "create",
            "role",
            "pod-reader",
            "--verb=get,list,watch",
            "--resource=pods"
        ]),
        "role.rbac.authorization.k8s.io/pod-reader created\n"
    );
    let robot = format!("system:serviceaccount:{ns}:robot");
    assert_eq!(
        k.ok(&[
            "create",
            "rolebinding",
            "robot-reads",
            "--role=pod-reader",
            &format!("--serviceaccount={ns}:robot"),
        ]),
        "rolebinding.rbac.authorization.k8s.io/robot-reads created\n"
    );

    // wait, then get in every everyday shape.
    assert_eq!(
        k.ok(&[
            "wait",
            "--for=condition=Available",
            "deployment/web",
            "--timeout=120s"
        ]),
        "deployment.apps/web condition met\n"
    );
    let ready = k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod",
        "-l",
        "app=web",
        "--timeout=60s",
    ]);
    assert_eq!(ready.matches("condition met").count(), 2, "{ready}");
    let names = k.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    let mut pods: Vec<String> = names.split_whitespace().map(str::to_string).collect();
    pods.sort();
    assert_eq!(pods.len(), 2, "{names}");
    let p0 = pods[0].clone();
    let wide = rows(&k.ok(&["get", "pods", "-o", "wide"]));
    assert_eq!(
        wide[0][..7],
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    );
    for r in &wide[1..] {
        assert_eq!((r[1].as_str(), r[2].as_str()), ("1/1", "Running"), "{r:?}");
        assert!(r[5].starts_with("10.244."), "{r:?}");
        assert_eq!(r[6], node.name);
    }
    let sorted = rows(&k.ok(&["get", "pods", "--sort-by=.metadata.name", "--show-labels"]));
    assert_eq!(sorted[0].last().map(String::as_str), Some("LABELS"));
    let listed: Vec<&str> = sorted[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(listed, pods.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(sorted[1].last().unwrap().contains("app=web"), "{sorted:?}");
    let labelled = rows(&k.ok(&["get", "pods", "-L", "app"]));
    assert_eq!(labelled[0].last().map(String::as_str), Some("APP"));
    assert!(labelled[1..].iter().all(|r| r.last().unwrap() == "web"));
    let columns = rows(&k.ok(&[
        "get",
        "pods",
        "-o",
        "custom-columns=NAME:.metadata.name,IP:.status.podIP",
    ]));
    assert_eq!(columns[0], ["NAME", "IP"]);
    assert!(columns[1..].iter().all(|r| r[1].starts_with("10.244.")));
    let yaml = k.ok(&["get", "pod", &p0, "-o", "yaml"]);
    assert!(yaml.starts_with("apiVersion: v1\nkind: Pod\n"), "{yaml}");
    assert!(
        !yaml.contains("managedFields"),
        "kubectl hides managedFields"
    );
    let json: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "pods", "-o", "json"])).unwrap();
    assert_eq!(json["kind"], "List");
    assert_eq!(json["items"].as_array().unwrap().len(), 2);

    // get -w sees the pod that scale adds.
    let mut watch = k.spawn(&["get", "pods", "-l", "app=web", "-w"]);
    watch.until("the watch lists the pods", 20, |l| l.starts_with(&p0));
    assert_eq!(
        k.ok(&["scale", "deployment", "web", "--replicas=3"]),
        "deployment.apps/web scaled\n"
    );
    let added = watch.until("the watch shows the new pod", 30, |l| {
        l.starts_with("web-") && !pods.iter().any(|p| l.starts_with(p.as_str()))
    });
    drop(watch);
    assert!(
        added.contains("Pending")
            || added.contains("ContainerCreating")
            || added.contains("Running"),
        "{added}"
    );

    // label and annotate, --overwrite, key-.
    assert_eq!(
        k.ok(&["label", "deployment", "web", "tier=front"]),
        "deployment.apps/web labeled\n"
    );
    let again = k.run(&["label", "deployment", "web", "tier=back"]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr)
            .contains("'tier' already has a value (front), and --overwrite is false"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(
        k.ok(&["label", "--overwrite", "deployment", "web", "tier=back"]),
        "deployment.apps/web labeled\n"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.metadata.labels.tier}"
        ]),
        "back"
    );
    assert_eq!(
        k.ok(&["label", "deployment", "web", "tier-"]),
        "deployment.apps/web unlabeled\n"
    );
    assert_eq!(
        k.ok(&["annotate", "deployment", "web", "owner=team-a"]),
        "deployment.apps/web annotated\n"
    );
    assert_eq!(
        k.ok(&[
            "annotate",
            "--overwrite",
            "deployment",
            "web",
            "owner=team-b"
        ]),
        "deployment.apps/web annotated\n"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.metadata.annotations.owner}"
        ]),
        "team-b"
    );
    assert_eq!(
        k.ok(&["annotate", "deployment", "web", "owner-"]),
        "deployment.apps/web annotated\n"
    );

    // expose: its endpoints follow the three pods.
    assert_eq!(
        k.ok(&[
            "expose",
            "deployment",
            "web",
            "--name=web-exp",
            "--port=80",
            "--target-port=8080"
        ]),
        "service/web-exp exposed\n"
    );
    eventually("web-exp has three endpoints", 60, || {
        k.ok(&[
            "get",
            "endpoints",
            "web-exp",
            "-o",
            "jsonpath={.subsets[*].addresses[*].ip}",
        ])
        .split_whitespace()
        .count()
            == 3
    });

    // logs, exec, cp both ways.
    let logs = k.ok(&["logs", &p0]);
    assert!(
        logs.contains("Kubernetes Bootcamp App Started At") && logs.contains(&p0),
        "{logs}"
    );
    assert_eq!(
        k.ok(&["exec", &p0, "--", "sh", "-c", "echo $HOSTNAME"]),
        format!("{p0}\n")
    );
    let failed = k.run(&["exec", &p0, "--", "sh", "-c", "exit 3"]);
    assert_eq!(failed.status.code(), Some(3));
    let local = k.file("in.txt", "hello from the host\n");
    k.ok(&["cp", &local, &format!("{p0}:/tmp/in.txt")]);
    assert_eq!(
        k.ok(&["exec", &p0, "--", "cat", "/tmp/in.txt"]),
        "hello from the host\n"
    );
    let back = k.home.path().join("back.txt");
    let out = k.run(&[
        "cp",
        &format!("{p0}:/tmp/in.txt"),
        &back.display().to_string(),
    ]);
    // busybox's tar says "removing leading '/'" on a real cluster too.
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&back).unwrap(),
        "hello from the host\n"
    );

    // port-forward to a pod and to a service.
    for target in [format!("pod/{p0}"), "svc/web".to_string()] {
        let mut pf = k.spawn(&["port-forward", &target, ":8080"]);
        let line = pf.until("port-forward listens", 30, |l| {
            l.starts_with("Forwarding from 127.0.0.1:")
        });
        let port = forwarded_port(&line);
        let answer = http_get(&format!("127.0.0.1:{port}")).expect("forwarded connection");
        let by = answered_by(body(&answer)).unwrap_or_else(|| panic!("{answer}"));
        assert!(by.starts_with("web-"), "{target}: {answer}");
        if target.starts_with("pod/") {
            assert_eq!(by, p0);
        }
    }

    // attach to a running container; run -i --rm, with and without stdin.
    assert_eq!(
        k.ok(&[
            "run",
            "ticker",
            "--image=busybox",
            "--",
            "sh",
            "-c",
            "while true; do echo tick; sleep 0.2; done"
        ]),
        "pod/ticker created\n"
    );
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/ticker",
        "--timeout=60s",
    ]);
    let mut attached = k.spawn(&["attach", "ticker"]);
    attached.until("attach shows the container's output", 20, |l| l == "tick");
    drop(attached);
    k.ok(&["delete", "pod", "ticker", "--now"]);
    let out = k.run(&[
        "run",
        "tmp",
        "--rm",
        "-i",
        "--image=busybox",
        "--restart=Never",
        "--",
        "sh",
        "-c",
        "echo hi",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.starts_with("hi\n") && said.contains("pod \"tmp\" deleted"),
        "stdout: {said}\nstderr: {}",
        text(&out.stderr)
    );
    let out = k.with_stdin(
        &[
            "run",
            "tmp2",
            "--rm",
            "-i",
            "--image=busybox",
            "--restart=Never",
            "--",
            "sh",
        ],
        "echo typed-in; exit 4\n",
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("typed-in\n"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("pod ") && text(&out.stderr).contains("terminated (Error)"),
        "{}",
        text(&out.stderr)
    );

    // set image, rollout status/history/undo/restart.
    assert_eq!(
        k.ok(&[
            "set",
            "image",
            "deployment/web",
            &format!("kubernetes-bootcamp={V2}")
        ]),
        "deployment.apps/web image updated\n"
    );
    let rolled = k.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(
        rolled.ends_with("deployment \"web\" successfully rolled out\n"),
        "{rolled}"
    );
    let history = rows(&k.ok(&["rollout", "history", "deployment/web"]));
    assert_eq!(history[1], ["REVISION", "CHANGE-CAUSE"]);
    assert_eq!(history[2], ["1", "<none>"]);
    assert_eq!(history[3], ["2", "<none>"]);
    let images = || {
        k.ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ])
    };
    // The old pods may still be terminating when the rollout is reported done (as on
    // Kubernetes: the status counts active pods only); they go.
    eventually("only v2 pods remain", 60, || {
        images().split_whitespace().all(|i| i == V2)
    });
    assert_eq!(
        k.ok(&["rollout", "undo", "deployment/web"]),
        "deployment.apps/web rolled back\n"
    );
    k.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    eventually("the pods run v1 again", 60, || {
        let i = images();
        i.split_whitespace().count() == 3 && i.split_whitespace().all(|i| i == V1)
    });
    assert_eq!(
        k.ok(&["rollout", "restart", "deployment/web"]),
        "deployment.apps/web restarted\n"
    );
    k.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(!k
        .ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}"
        ])
        .is_empty());

    // edit with an editor script.
    assert_eq!(
        k.edit(&["deployment", "web"], "s/^  replicas: 3$/  replicas: 2/"),
        "deployment.apps/web edited\n"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "2"
    );

    // apply -f: create, re-apply unchanged, change replicas and image (diff says so), delete -f.
    let manifest = |replicas: u32, image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  labels: {{app: api}}\n\
             spec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: api}}\n  template:\n    \
             metadata:\n      labels: {{app: api}}\n    spec:\n      containers:\n      - name: api\n        \
             image: {image}\n        ports:\n        - containerPort: 8080\n---\n\
             apiVersion: v1\nkind: Service\nmetadata:\n  name: api\nspec:\n  selector: {{app: api}}\n  \
             ports:\n  - port: 8080\n"
        )
    };
    let file = k.file("api.yaml", &manifest(1, V1));
    assert_eq!(
        k.ok(&["apply", "-f", &file]),
        "deployment.apps/api created\nservice/api created\n"
    );
    assert_eq!(
        k.ok(&["apply", "-f", &file]),
        "deployment.apps/api unchanged\nservice/api unchanged\n"
    );
    assert_eq!(k.run(&["diff", "-f", &file]).status.code(), Some(0));
    let file = k.file("api.yaml", &manifest(2, V2));
    let diff = k.run(&["diff", "-f", &file]);
    assert_eq!(diff.status.code(), Some(1), "{}", text(&diff.stderr));
    let said = text(&diff.stdout);
    assert!(
        said.contains("-  replicas: 1") && said.contains("+  replicas: 2"),
        "{said}"
    );
    assert_eq!(
        k.ok(&["apply", "-f", &file]),
        "deployment.apps/api configured\nservice/api unchanged\n"
    );
    k.ok(&["rollout", "status", "deployment/api", "--timeout=120s"]);
    assert_eq!(
        k.ok(&[
            "get",
            "deployment",
            "api",
            "-o",
            "jsonpath={.status.readyReplicas} {.spec.template.spec.containers[0].image}"
        ]),
        format!("2 {V2}")
    );
    assert_eq!(
        k.ok(&["delete", "-f", &file]),
        "deployment.apps \"api\" deleted\nservice \"api\" deleted\n"
    );

    // server-side apply: two managers, a conflict, then --force-conflicts.
    let cm = |v: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: \"{v}\"\n")
    };
    let file = k.file("ssa.yaml", &cm("1"));
    assert_eq!(
        k.ok(&[
            "apply",
            "--server-side",
            "--field-manager=alice",
            "-f",
            &file
        ]),
        "configmap/ssa serverside-applied\n"
    );
    let file = k.file("ssa.yaml", &cm("2"));
    let conflict = k.run(&["apply", "--server-side", "--field-manager=bob", "-f", &file]);
    assert!(!conflict.status.success());
    let err = text(&conflict.stderr);
    assert!(
        err.contains("conflict with \"alice\"") && err.contains(".data.a"),
        "{err}"
    );
    assert_eq!(
        k.ok(&[
            "apply",
            "--server-side",
            "--field-manager=bob",
            "--force-conflicts",
            "-f",
            &file
        ]),
        "configmap/ssa serverside-applied\n"
    );
    assert_eq!(
        k.ok(&["get", "configmap", "ssa", "-o", "jsonpath={.data.a}"]),
        "2"
    );

    // describe each served kind.
    let node_name = node.name.as_str();
    let p0 = k.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    for what in [
        vec!["deployment", "web"],
        vec!["replicaset"],
        vec!["pod", &p0],
        vec!["service", "web"],
        vec!["endpoints", "web"],
        vec!["endpointslices"],
        vec!["configmap", "cfg"],
        vec!["secret", "sec"],
        vec!["serviceaccount", "robot"],
        vec!["namespace", ns],
        vec!["node", node_name],
        vec!["lease", "-n", "kube-node-lease", node_name],
    ] {
        let mut args = vec!["describe"];
        args.extend(what.iter().copied());
        let out = k.ok(&args);
        assert!(out.starts_with("Name:"), "describe {what:?}: {out}");
    }
    let described = k.ok(&["describe", "pod", &p0]);
    assert!(
        described.contains("Status:           Running"),
        "{described}"
    );
    assert!(described.contains("Events:"), "{described}");

    // explain, api-resources, api-versions, get all, events.
    let explained = k.ok(&["explain", "pods.spec.containers.ports", "--recursive"]);
    assert!(
        explained.contains("containerPort\t<integer> -required-")
            || explained.contains("containerPort"),
        "{explained}"
    );
    let resources = rows(&k.ok(&["api-resources"]));
    assert!(
        resources.contains(
            &["deployments", "deploy", "apps/v1", "true", "Deployment"]
                .map(String::from)
                .to_vec()
        ),
        "{resources:?}"
    );
    let versions = k.ok(&["api-versions"]);
    assert!(
        versions.lines().any(|l| l == "apps/v1") && versions.lines().any(|l| l == "v1"),
        "{versions}"
    );
    let all = k.ok(&["get", "all"]);
    for want in [
        "pod/web-",
        "service/web ",
        "deployment.apps/web ",
        "replicaset.apps/web-",
    ] {
        assert!(all.contains(want), "get all lacks {want}: {all}");
    }
    let events = k.ok(&["get", "events"]);
    for reason in ["Scheduled", "Pulled", "Started", "ScalingReplicaSet"] {
        assert!(events.contains(reason), "events lack {reason}: {events}");
    }
    assert!(k
        .ok(&["events", "--for", &format!("pod/{p0}")])
        .contains("Started"));

    // auth: the admin may do anything; the kubelet's identity only what a node may.
    assert_eq!(k.ok(&["auth", "can-i", "create", "pods"]), "yes\n");
    assert_eq!(k.ok(&["auth", "can-i", "*", "*"]), "yes\n");
    let list = rows(&k.ok(&["auth", "can-i", "--list"]));
    assert!(
        list.contains(&vec!["*.*".into(), "[]".into(), "[]".into(), "[*]".into()]),
        "{list:?}"
    );
    let me = rows(&k.ok(&["auth", "whoami"]));
    assert_eq!(me[0], ["ATTRIBUTE", "VALUE"]);
    assert_eq!(me[1][0], "Username");
    let mut as_node = Kubectl::new(node, bin, ns);
    as_node.user = "kubelet";
    let no = as_node.run(&["auth", "can-i", "create", "pods"]);
    assert_eq!(
        (no.status.code(), text(&no.stdout).as_str()),
        (Some(1), "no\n")
    );
    // (kubectl warns that nodes are not namespaced: the test names a namespace.)
    let own = as_node.run(&[
        "auth",
        "can-i",
        "update",
        &format!("nodes/{}", node.name),
        "--subresource=status",
    ]);
    assert_eq!(
        (own.status.code(), text(&own.stdout).as_str()),
        (Some(0), "yes\n")
    );

    // RBAC: the robot reads pods here (once the binding reaches the authorizer) and
    // nothing more.
    let as_robot = |args: &[&str]| {
        let mut a = args.to_vec();
        a.push("--as");
        a.push(&robot);
        k.run(&a)
    };
    eventually("the robot gets its role", 10, || {
        as_robot(&["auth", "can-i", "list", "pods"])
            .status
            .success()
    });
    assert!(text(&as_robot(&["get", "pods", "-o", "name"]).stdout).contains("pod/"));
    let denied = as_robot(&["delete", "pod", "any"]);
    assert!(
        text(&denied.stderr).contains(&format!(
            "User \"{robot}\" cannot delete resource \"pods\" in API group \"\" in the namespace \"{ns}\""
        )),
        "{}",
        text(&denied.stderr)
    );

    // tidy up.
    assert_eq!(
        k.ok(&["delete", "deployment", "web"]),
        "deployment.apps \"web\" deleted\n"
    );
    eprintln!("{bin}: a first week in {:?}", t.elapsed());
}

/// The official Python client's interactive exec: a line written to stdin comes back.
fn python_interactive_exec(node: &Node, ns: &str) {
    let python = std::env::var("TINYKUBE_PYTHON").expect(
        "TINYKUBE_PYTHON names the Python with the kubernetes client (hack/test.sh sets it)",
    );
    let script = r#"
import sys, time
from kubernetes import client, config
from kubernetes.stream import stream
config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()
ns = sys.argv[2]
name = v1.list_namespaced_pod(ns, label_selector="app=web").items[0].metadata.name
resp = stream(v1.connect_get_namespaced_pod_exec, name, ns, command=["/bin/sh"],
              stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
resp.write_stdin("echo hello-from-python\n")
print(resp.readline_stdout(timeout=5))
resp.write_stdin("echo $HOSTNAME\n")
print(resp.readline_stdout(timeout=5) == name)
resp.close()
"#;
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(node.apiserver.kubeconfig("admin"))
        .arg(ns)
        .output()
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello-from-python\nTrue\n");
}

#[test]
fn a_first_week_with_kubectl_1_32_and_1_33_and_the_python_client() {
    let node = Node::start();
    node.wait_ready();
    node.start_proxy();
    node.net.run(|| {
        first_week(&node, "kubectl", "week-132");
        first_week(&node, KUBECTL_1_33, "week-133");
        // A deployment for the Python client to exec into.
        let k = Kubectl::new(&node, "kubectl", "week-132");
        k.ok(&["create", "deployment", "web", &format!("--image={V1}")]);
        k.ok(&[
            "wait",
            "--for=condition=Available",
            "deployment/web",
            "--timeout=120s",
        ]);
        python_interactive_exec(&node, "week-132");
    });
    node.kill_proxy();
    node.kill_kubelet();
    let out = node.cleanup();
    assert!(out.status.success(), "{}", text(&out.stderr));
}
