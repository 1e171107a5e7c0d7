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
    binary: String,
}

/// kubectl 1.33.1, which the dispatcher runs for servers that say minor 33; run directly, it
/// talks to this 1.32 server as a user one minor ahead would.
const KUBECTL_1_33: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";

impl Kubectl {
    fn new(s: &Server) -> Kubectl {
        Kubectl::of(s, "kubectl")
    }

    fn of(s: &Server, binary: &str) -> Kubectl {
        assert!(
            binary == "kubectl" || std::path::Path::new(binary).exists(),
            "{binary} is not installed"
        );
        Kubectl {
            home: tempfile::tempdir().unwrap(),
            kubeconfig: s.kubeconfig("admin"),
            binary: binary.to_string(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.binary);
        c.args(args)
            .env("HOME", self.home.path())
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("kubectl is installed")
    }

    /// `kubectl edit` with an editor that runs `sed -i <script>` on the file it is given.
    fn edit(&self, what: &[&str], script: &str) {
        let editor = self.home.path().join("editor.sh");
        std::fs::write(&editor, format!("#!/bin/sh\nsed -i '{script}' \"$1\"\n")).unwrap();
        std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut args = vec!["edit"];
        args.extend_from_slice(what);
        let out = self.command(&args).env("EDITOR", &editor).output().unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A kubeconfig for the same server that authenticates with `token` alone (a client
    /// certificate would win over a token, as in Kubernetes).
    fn token_kubeconfig(&self, token: &str) -> std::path::PathBuf {
        let admin = std::fs::read_to_string(&self.kubeconfig).unwrap();
        let field = |name: &str| {
            admin
                .lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .unwrap()
                .to_string()
        };
        let (ca, server) = (field("certificate-authority-data: "), field("server: "));
        let path = self.home.path().join("token.kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: t\n  context:\n    cluster: c\n    user: u\ncurrent-context: t\n"
            ),
        )
        .unwrap();
        path
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
    let unknown = k.token_kubeconfig("not-a-real-token");
    let out = k.run(&["get", "pods", "--kubeconfig", unknown.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("You must be logged in to the server (Unauthorized)"),
        "{err}"
    );
}

/// `kubectl create <generator>` posts protobuf bodies (client-go's typed clients), and describe
/// reads protobuf answers: every object comes out as kubectl meant it, with kubectl 1.32 and 1.33.
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_create_speaks_protobuf() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};

    let s = Server::start().await;
    let client = s.client().await;
    for (v, binary) in [("132", "kubectl"), ("133", KUBECTL_1_33)] {
        let k = Kubectl::of(&s, binary);
        let name = |what: &str| format!("{what}-{v}");
        let created = |args: &[&str]| {
            let mut all = vec!["create"];
            all.extend_from_slice(args);
            let out = k.ok(&all);
            assert!(out.contains("created"), "{binary} create {args:?}: {out}");
        };

        let web = name("web");
        created(&[
            "deployment",
            &web,
            "--image=registry.example/web:1",
            "--replicas=2",
        ]);
        let zero = name("zero");
        created(&[
            "deployment",
            &zero,
            "--image=registry.example/web:1",
            "--replicas=0",
        ]);
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let d = deployments.get(&web).await.unwrap();
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(2));
        assert_eq!(spec.selector.match_labels.unwrap().get("app"), Some(&web));
        let pod_spec = spec.template.spec.unwrap();
        let c = &pod_spec.containers[0];
        assert_eq!(c.image.as_deref(), Some("registry.example/web:1"));
        assert_eq!(c.name, "web");
        // Empty strings on the wire are unset, so the defaults apply.
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(pod_spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(pod_spec.node_name, None);
        assert!(d.metadata.creation_timestamp.is_some());
        // An explicit zero is kept: a pointer on the Go side.
        let z = deployments.get(&zero).await.unwrap();
        assert_eq!(z.spec.unwrap().replicas, Some(0));

        let svc = name("svc");
        created(&["service", "clusterip", &svc, "--tcp=80:8080"]);
        let np = name("np");
        created(&["service", "nodeport", &np, "--tcp=81:8081"]);
        let services: Api<Service> = Api::namespaced(client.clone(), "default");
        let spec = services.get(&svc).await.unwrap().spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        let port = &spec.ports.unwrap()[0];
        assert_eq!(port.port, 80);
        assert_eq!(
            port.target_port,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080))
        );
        assert!(spec.cluster_ip.is_some_and(|ip| ip.starts_with("10.")));
        let spec = services.get(&np).await.unwrap().spec.unwrap();
        let node_port = spec.ports.unwrap()[0].node_port.unwrap();
        assert!((30000..=32767).contains(&node_port), "{node_port}");

        let cm = name("cm");
        created(&[
            "configmap",
            &cm,
            "--from-literal=a=1",
            "--from-literal=empty=",
        ]);
        let data = Api::<ConfigMap>::namespaced(client.clone(), "default")
            .get(&cm)
            .await
            .unwrap()
            .data
            .unwrap();
        assert_eq!(data.get("a").map(String::as_str), Some("1"));
        assert_eq!(data.get("empty").map(String::as_str), Some(""));

        let secret = name("secret");
        created(&[
            "secret",
            "generic",
            &secret,
            "--from-literal=password=s3cr=t",
        ]);
        let data = Api::<Secret>::namespaced(client.clone(), "default")
            .get(&secret)
            .await
            .unwrap()
            .data
            .unwrap();
        assert_eq!(data["password"].0, b"s3cr=t");

        let ns = name("team");
        created(&["namespace", &ns]);
        let phase = Api::<Namespace>::all(client.clone())
            .get(&ns)
            .await
            .unwrap()
            .status
            .and_then(|s| s.phase);
        assert_eq!(phase.as_deref(), Some("Active"));
        let sa = name("robot");
        created(&["serviceaccount", &sa, "-n", &ns]);
        Api::<ServiceAccount>::namespaced(client.clone(), &ns)
            .get(&sa)
            .await
            .unwrap();

        // describe reads each object with the typed client, in protobuf.
        let out = k.ok(&["describe", "deployment", &web]);
        assert!(
            out.contains(&format!("Name:                   {web}")),
            "{out}"
        );
        assert!(
            out.contains("Image:         registry.example/web:1"),
            "{out}"
        );
        let out = k.ok(&["describe", "service", &np]);
        assert!(
            out.contains(&format!(
                "NodePort:                 81-8081  {node_port}/TCP"
            )),
            "{out}"
        );
    }
}

/// What a user does with manifests and a running Deployment, with validation left on (the
/// OpenAPI documents tell kubectl the server validates): apply, re-apply (strategic merge patch),
/// diff, edit, set image, rollout restart, annotate, explain; kubectl 1.32 and 1.33.
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_apply_edit_and_explain() {
    use k8s_openapi::api::apps::v1::Deployment;

    let s = Server::start().await;
    let deployments: Api<Deployment> = Api::namespaced(s.client().await, "default");
    let dir = tempfile::tempdir().unwrap();
    for (v, binary) in [("132", "kubectl"), ("133", KUBECTL_1_33)] {
        let k = Kubectl::of(&s, binary);
        let name = format!("app-{v}");
        let manifest = |replicas: u32, image: &str, env: &str| {
            let path = dir.path().join(format!("{name}-{replicas}.yaml"));
            std::fs::write(
                &path,
                format!(
                    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers:\n      - name: web\n        image: {image}\n        env: [{env}]\n      - name: log\n        image: registry.example/log:1\n"
                ),
            )
            .unwrap();
            path.to_string_lossy().into_owned()
        };
        let first = manifest(1, "registry.example/web:1", "{name: A, value: '1'}");
        assert!(k.ok(&["apply", "-f", &first]).contains("created"));
        let out = k.run(&["create", "-f", &first]);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!(
                "Error from server (AlreadyExists): error when creating \"{first}\": deployments.apps \"{name}\" already exists"
            )),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let second = manifest(2, "registry.example/web:2", "{name: B, value: '2'}");
        // diff: exit 1 with the change, and nothing changed by it.
        let diff = k.run(&["diff", "-f", &second]);
        assert_eq!(
            diff.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&diff.stderr)
        );
        assert!(String::from_utf8_lossy(&diff.stdout).contains("+  replicas: 2"));
        assert!(k.ok(&["apply", "-f", &second]).contains("configured"));
        let d = deployments.get(&name).await.unwrap();
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(2));
        let containers = spec.template.spec.unwrap().containers;
        assert_eq!(containers.len(), 2, "the second container is kept");
        assert_eq!(
            containers[0].image.as_deref(),
            Some("registry.example/web:2")
        );
        let env = containers[0].env.clone().unwrap();
        assert_eq!(env.len(), 1);
        assert_eq!(env[0].name, "B", "the env var the manifest dropped is gone");

        // set image merges the container by name.
        k.ok(&[
            "set",
            "image",
            &format!("deployment/{name}"),
            "log=registry.example/log:2",
        ]);
        k.ok(&["rollout", "restart", &format!("deployment/{name}")]);
        k.ok(&["annotate", "deployment", &name, "team=web"]);
        let d = deployments.get(&name).await.unwrap();
        assert_eq!(d.metadata.annotations.unwrap()["team"], "web");
        let template = d.spec.unwrap().template;
        assert!(template
            .metadata
            .unwrap()
            .annotations
            .unwrap()
            .contains_key("kubectl.kubernetes.io/restartedAt"));
        let images: Vec<_> = template
            .spec
            .unwrap()
            .containers
            .into_iter()
            .map(|c| c.image.unwrap())
            .collect();
        assert_eq!(images, ["registry.example/web:2", "registry.example/log:2"]);

        // edit with an editor that changes the replicas.
        k.edit(&["deployment", &name], "s/replicas: 2/replicas: 4/");
        assert_eq!(
            deployments.get(&name).await.unwrap().spec.unwrap().replicas,
            Some(4)
        );

        let out = k.ok(&["explain", "deployment.spec.strategy"]);
        assert!(
            out.contains("FIELD: strategy <DeploymentStrategy>"),
            "{out}"
        );
        assert!(
            out.contains("The deployment strategy to use to replace existing pods with new ones."),
            "{out}"
        );
        assert!(
            !out.contains("TODO"),
            "notes for the type's authors are left out: {out}"
        );
        let out = k.ok(&["explain", "pods.spec.containers", "--recursive"]);
        for field in [
            "livenessProbe\t<Probe>",
            "httpGet\t<HTTPGetAction>",
            "containerPort\t<integer>",
        ] {
            assert!(out.contains(field), "{field} in {out}");
        }
    }
}

/// `kubectl apply --server-side`: created when absent, a second manager conflicts on a field
/// the first owns, `--force-conflicts` takes it over, and the field managers are recorded.
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_server_side_apply_with_two_managers() {
    use k8s_openapi::api::core::v1::ConfigMap;

    let s = Server::start().await;
    let configmaps: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let dir = tempfile::tempdir().unwrap();
    for (v, binary) in [("132", "kubectl"), ("133", KUBECTL_1_33)] {
        let k = Kubectl::of(&s, binary);
        let name = format!("settings-{v}");
        let file = |tag: &str, data: &str| {
            let path = dir.path().join(format!("{name}-{tag}.yaml"));
            std::fs::write(
                &path,
                format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n{data}"
                ),
            )
            .unwrap();
            path.to_string_lossy().into_owned()
        };
        let mine = file("mine", "  color: blue\n  size: large\n");
        let out = k.ok(&["apply", "--server-side", "-f", &mine]);
        assert!(
            out.contains(&format!("configmap/{name} serverside-applied")),
            "{out}"
        );
        let theirs = file("theirs", "  color: red\n");
        let out = k.run(&[
            "apply",
            "--server-side",
            "--field-manager=ops",
            "-f",
            &theirs,
        ]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("Apply failed with 1 conflict: conflict with \"kubectl\": .data.color"),
            "{err}"
        );
        assert_eq!(
            configmaps.get(&name).await.unwrap().data.unwrap()["color"],
            "blue",
            "a conflict changes nothing"
        );
        k.ok(&[
            "apply",
            "--server-side",
            "--field-manager=ops",
            "--force-conflicts",
            "-f",
            &theirs,
        ]);
        let cm = configmaps.get(&name).await.unwrap();
        assert_eq!(cm.data.clone().unwrap()["color"], "red");
        let managers: Vec<(String, String)> = cm
            .metadata
            .managed_fields
            .unwrap()
            .into_iter()
            .map(|m| (m.manager.unwrap(), m.operation.unwrap()))
            .collect();
        assert_eq!(
            managers,
            [
                ("kubectl".to_string(), "Apply".to_string()),
                ("ops".to_string(), "Apply".to_string())
            ]
        );
        // The first manager stops applying `size`: it goes; `color` is ops' and stays.
        let fewer = file("fewer", "  other: x\n");
        k.ok(&["apply", "--server-side", "-f", &fewer]);
        let data = configmaps.get(&name).await.unwrap().data.unwrap();
        assert_eq!(data.get("size"), None);
        assert_eq!(data["color"], "red");
        assert_eq!(data["other"], "x");

        // A write that is not an apply (kubectl edit here: operation Update) owns what it
        // changed, and the applier then conflicts with it.
        k.edit(&["configmap", &name], "s/other: x/other: changed/");
        let out = k.run(&["apply", "--server-side", "-f", &fewer]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(
                "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using v1 at "
            ),
            "{err}"
        );
        assert!(err.contains(": .data.other"), "{err}");
    }
}

/// Runs kubectl until it succeeds (an RBAC change reaches the authorizer through a watch),
/// for 10 s; its stdout.
async fn ok_eventually(k: &Kubectl, args: &[&str]) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = k.run(args);
        if out.status.success() {
            return String::from_utf8(out.stdout).unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_rbac_create_bind_and_can_i() {
    for binary in ["kubectl", KUBECTL_1_33] {
        let s = Server::start().await;
        let k = Kubectl::of(&s, binary);
        k.ok(&["create", "namespace", "team"]);
        let out = k.ok(&[
            "create",
            "role",
            "pod-reader",
            "--verb=get,list,watch",
            "--resource=pods,pods/log",
            "-n",
            "team",
        ]);
        assert_eq!(
            out.trim(),
            "role.rbac.authorization.k8s.io/pod-reader created"
        );
        let out = k.ok(&[
            "create",
            "rolebinding",
            "jane-reads",
            "--role=pod-reader",
            "--user=jane",
            "--serviceaccount=team:robot",
            "-n",
            "team",
        ]);
        assert_eq!(
            out.trim(),
            "rolebinding.rbac.authorization.k8s.io/jane-reads created"
        );
        k.ok(&[
            "create",
            "clusterrole",
            "node-reader",
            "--verb=get,list",
            "--resource=nodes",
        ]);
        k.ok(&[
            "create",
            "clusterrolebinding",
            "ops-nodes",
            "--clusterrole=node-reader",
            "--group=ops",
        ]);

        // The columns kubectl prints for each.
        let out = k.ok(&["get", "rolebinding", "-n", "team", "-o", "wide"]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            columns(lines[0]),
            ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
        );
        let row = columns(lines[1]);
        assert_eq!(
            (row[0], row[1], row[3], row[4]),
            ("jane-reads", "Role/pod-reader", "jane", "team/robot")
        );
        let out = k.ok(&["get", "roles", "-n", "team"]);
        assert!(
            out.starts_with("NAME") && out.contains("CREATED AT") && out.contains("pod-reader"),
            "{out}"
        );
        let out = k.ok(&["get", "clusterrolebinding", "ops-nodes"]);
        assert!(out.contains("ClusterRole/node-reader"), "{out}");
        let out = k.ok(&["describe", "role", "pod-reader", "-n", "team"]);
        assert!(
            out.contains("PolicyRule:") && out.contains("pods/log"),
            "{out}"
        );
        let out = k.ok(&["describe", "rolebinding", "jane-reads", "-n", "team"]);
        assert!(
            out.contains("Role:") && out.contains("ServiceAccount  robot"),
            "{out}"
        );

        // Questions about others, answered as the authorizer decides.
        let yes = ok_eventually(
            &k,
            &["auth", "can-i", "list", "pods", "-n", "team", "--as=jane"],
        )
        .await;
        assert_eq!(yes.trim(), "yes");
        let out = k.run(&[
            "auth",
            "can-i",
            "list",
            "pods",
            "-n",
            "default",
            "--as=jane",
        ]);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no");
        assert_eq!(out.status.code(), Some(1));
        let yes = ok_eventually(
            &k,
            &[
                "auth",
                "can-i",
                "get",
                "pods/log",
                "-n",
                "team",
                "--as=system:serviceaccount:team:robot",
            ],
        )
        .await;
        assert_eq!(yes.trim(), "yes");
        let yes = ok_eventually(
            &k,
            &[
                "auth",
                "can-i",
                "list",
                "nodes",
                "--as=someone",
                "--as-group=ops",
            ],
        )
        .await;
        assert_eq!(yes.trim(), "yes");
        let list = k.ok(&["auth", "can-i", "--list", "-n", "team", "--as=jane"]);
        assert!(
            list.lines()
                .any(|l| l.starts_with("pods ") && l.contains("[get list watch]")),
            "{list}"
        );
        assert!(
            list.contains("selfsubjectaccessreviews.authorization.k8s.io"),
            "{list}"
        );
        let out = k.run(&["get", "pods", "-n", "default", "--as=jane"]);
        assert!(!out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim(),
            "Error from server (Forbidden): pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        k.ok(&["get", "pods", "-n", "team", "--as=jane"]);
        let out = k.run(&[
            "create",
            "role",
            "x",
            "--verb=get",
            "--resource=pods",
            "-n",
            "team",
            "--as=jane",
        ]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("User \"jane\" cannot create resource \"roles\" in API group \"rbac.authorization.k8s.io\" in the namespace \"team\""), "{out:?}");
        // Deleting a namespace takes its roles and bindings with it.
        k.ok(&[
            "delete",
            "namespace",
            "team",
            "--wait=true",
            "--timeout=30s",
        ]);
        let out = k.ok(&["get", "rolebindings", "-A", "-o", "name"]);
        assert!(!out.contains("jane-reads"), "{out}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_create_token_and_use_it() {
    for binary in ["kubectl", KUBECTL_1_33] {
        let s = Server::start_with(&["--node-name", "node-1"]).await;
        let k = Kubectl::of(&s, binary);
        k.ok(&["create", "serviceaccount", "robot"]);
        let token = k.ok(&["create", "token", "robot", "--duration=15m"]);
        let token = token.trim();
        assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
        let too_short = k.run(&["create", "token", "robot", "--duration=1m"]);
        assert!(
            String::from_utf8_lossy(&too_short.stderr)
                .contains("may not specify a duration less than 10 minutes"),
            "{too_short:?}"
        );
        let missing = k.run(&["create", "token", "ghost"]);
        assert!(
            String::from_utf8_lossy(&missing.stderr)
                .contains("serviceaccounts \"ghost\" not found"),
            "{missing:?}"
        );

        // The token is the service account, to kubectl as to RBAC: a kubeconfig with the
        // token and no client certificate.
        let robot_config = k.token_kubeconfig(token);
        let with_token = |args: &[&str]| {
            let mut a = vec!["--kubeconfig", robot_config.to_str().unwrap()];
            a.extend_from_slice(args);
            k.run(&a)
        };
        let me = with_token(&[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
        ]);
        assert_eq!(
            String::from_utf8_lossy(&me.stdout),
            "system:serviceaccount:default:robot [\"system:serviceaccounts\",\"system:serviceaccounts:default\",\"system:authenticated\"]",
            "{me:?}"
        );
        let denied = with_token(&["get", "pods"]);
        assert!(
            String::from_utf8_lossy(&denied.stderr).contains(
                "User \"system:serviceaccount:default:robot\" cannot list resource \"pods\""
            ),
            "{denied:?}"
        );
        k.ok(&[
            "create",
            "rolebinding",
            "robot-views",
            "--clusterrole=view",
            "--serviceaccount=default:robot",
        ]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !with_token(&["get", "pods"]).status.success() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the robot never got view"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Deleting the service account revokes its tokens at once.
        k.ok(&["delete", "serviceaccount", "robot"]);
        let gone = with_token(&["get", "pods"]);
        assert!(
            String::from_utf8_lossy(&gone.stderr)
                .contains("You must be logged in to the server (Unauthorized)"),
            "{gone:?}"
        );
    }
}
