//! The Kubernetes tutorial end to end as a user types it, twice on one node (apiserver,
//! kubelet, proxy, registry in a network namespace of their own): once with tkctl, once with
//! the installed kubectl 1.32. kubectl cannot `create deployment` against tinykube (it sends
//! protobuf), so its run starts the app with `tkctl run` and does every other step itself.
//! The NodePort is asked on the node's address and 127.0.0.1 from the node's namespace, and
//! from the host (the test's own namespace) over a veth to the node. Needs root.

mod common;

use common::{answered_by, cli, curl, eventually, ok, text};
use tinykube_e2e::node::{Node, NODE_IP};

const APP: &str = "kubernetes-first-app";

/// The whitespace-separated cells of a table's lines.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// The values of `Name:`-style fields of a describe output (indented or not).
fn field(described: &str, name: &str) -> Vec<String> {
    described
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_string())
        .collect()
}

/// The labels block of a describe output (`Labels:` and its continuation lines).
fn labels(described: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = described.lines().skip_while(|l| !l.starts_with("Labels:"));
    if let Some(first) = lines.next() {
        out.push(first["Labels:".len()..].trim().to_string());
        out.extend(
            lines
                .take_while(|l| l.starts_with(' '))
                .map(|l| l.trim().to_string()),
        );
    }
    out
}

/// Every step of the tutorial with client `prog` (but creating the deployment: tkctl's run).
fn tutorial(node: &Node, prog: &str, outside: &Outside) {
    // kubectl run kubernetes-first-app --image=... --port=8080
    let out = ok(
        node,
        "tkctl",
        &[
            "run",
            APP,
            "--image=gcr.io/google-samples/kubernetes-bootcamp:v1",
            "--port=8080",
        ],
    );
    assert_eq!(out, format!("deployment.apps/{APP} created\n"));

    // kubectl get pods: one pod of the app, 1/1 Running.
    eventually(&format!("{prog}: the app's pod runs"), 60, || {
        rows(&ok(node, prog, &["get", "pods"]))
            .iter()
            .skip(1)
            .any(|r| r.len() == 5 && r[1] == "1/1" && r[2] == "Running")
    });
    let pods = rows(&ok(node, prog, &["get", "pods"]));
    assert_eq!(pods[0], ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(pods.len(), 2, "{prog}: {pods:?}");
    let pod = pods[1][0].clone();
    assert!(pod.starts_with(&format!("{APP}-")), "{pod}");
    assert_eq!(pods[1][3], "0", "RESTARTS");

    // kubectl get services: the kubernetes service alone.
    let services = rows(&ok(node, prog, &["get", "services"]));
    assert_eq!(
        services[0],
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    assert_eq!(services.len(), 2, "{services:?}");
    assert_eq!(
        services[1][..5],
        ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"]
    );

    // kubectl expose deployment/kubernetes-first-app --type="NodePort" --port 8080
    let out = ok(
        node,
        prog,
        &[
            "expose",
            &format!("deployment/{APP}"),
            "--type=NodePort",
            "--port",
            "8080",
        ],
    );
    assert_eq!(out, format!("service/{APP} exposed\n"));
    // export NODE_PORT=$(kubectl get services/kubernetes-first-app -o go-template='{{(index .spec.ports 0).nodePort}}')
    let node_port = ok(
        node,
        prog,
        &[
            "get",
            &format!("services/{APP}"),
            "-o",
            "go-template={{(index .spec.ports 0).nodePort}}",
        ],
    );
    let port: u16 = node_port
        .parse()
        .unwrap_or_else(|_| panic!("{node_port:?}"));
    assert!((30000..=32767).contains(&port), "{port}");
    let services = rows(&ok(node, prog, &["get", "services"]));
    let svc = services.iter().find(|r| r[0] == APP).expect("the service");
    assert_eq!(svc[1], "NodePort");
    assert_eq!(svc[3], "<none>");
    assert_eq!(svc[4], format!("8080:{port}/TCP"));

    // curl $(minikube ip):$NODE_PORT, and on the loopback address (the node is the host).
    let hello = format!("Hello Kubernetes bootcamp! | Running on: {pod} | v=1\n");
    for host in [NODE_IP, "127.0.0.1"] {
        let url = format!("http://{host}:{port}");
        // Ready without a readiness probe means running, a moment before the app listens.
        eventually(&format!("{url} answers"), 20, || curl(&url).0 == Some(0));
        let (code, said) = curl(&url);
        assert_eq!((code, said.as_str()), (Some(0), hello.as_str()), "{url}");
    }
    // And from outside the node: the host, over its link to the node.
    let url = format!("http://{}:{port}", outside.addr);
    eventually(&format!("{url} answers the host"), 20, || {
        outside.curl(&url).0 == Some(0)
    });
    assert_eq!(
        outside.curl(&url),
        (Some(0), hello.clone()),
        "{url} from the host"
    );

    // kubectl describe deployment
    let described = ok(node, prog, &["describe", "deployment"]);
    assert_eq!(field(&described, "Name"), [APP]);
    assert_eq!(field(&described, "Selector"), [format!("run={APP}")]);
    assert_eq!(
        field(&described, "Image"),
        ["gcr.io/google-samples/kubernetes-bootcamp:v1"]
    );
    assert_eq!(
        field(&described, "Replicas"),
        ["1 desired | 1 updated | 1 total | 1 available | 0 unavailable"]
    );

    // kubectl get pods -l run=kubernetes-first-app; get services -l run=...
    let by_run = rows(&ok(
        node,
        prog,
        &["get", "pods", "-l", &format!("run={APP}")],
    ));
    assert_eq!(by_run.len(), 2, "{by_run:?}");
    assert_eq!(by_run[1][0], pod);
    let svc_by_run = rows(&ok(
        node,
        prog,
        &["get", "services", "-l", &format!("run={APP}")],
    ));
    assert_eq!(svc_by_run.len(), 2, "{svc_by_run:?}");
    assert_eq!(svc_by_run[1][0], APP);

    // kubectl label pod $POD_NAME app=v1; describe pods $POD_NAME; get pods -l app=v1
    assert_eq!(
        ok(node, prog, &["label", "pod", &pod, "app=v1"]),
        format!("pod/{pod} labeled\n")
    );
    let described = ok(node, prog, &["describe", "pods", &pod]);
    assert_eq!(field(&described, "Name"), [pod.as_str()]);
    assert_eq!(field(&described, "Status"), ["Running"]);
    let mut l = labels(&described);
    l.sort();
    assert_eq!(l.len(), 3, "{described}");
    assert_eq!(l[0], "app=v1");
    assert!(l[1].starts_with("pod-template-hash="), "{l:?}");
    assert_eq!(l[2], format!("run={APP}"));
    let v1 = rows(&ok(node, prog, &["get", "pods", "-l", "app=v1"]));
    assert_eq!(v1.len(), 2, "{v1:?}");
    assert_eq!(v1[1][0], pod);
    let none = cli(node, prog, &["get", "pods", "-l", "app=v2"]);
    assert!(none.status.success());
    assert_eq!(text(&none.stdout), "");
    assert_eq!(
        text(&none.stderr),
        "No resources found in default namespace.\n"
    );

    // kubectl delete service -l run=kubernetes-first-app: gone, its NodePort refuses.
    assert_eq!(
        ok(
            node,
            prog,
            &["delete", "service", "-l", &format!("run={APP}")]
        ),
        format!("service \"{APP}\" deleted\n")
    );
    let services = rows(&ok(node, prog, &["get", "services"]));
    assert_eq!(services.len(), 2, "{services:?}");
    assert_eq!(services[1][0], "kubernetes");
    for host in [NODE_IP, "127.0.0.1"] {
        let url = format!("http://{host}:{port}");
        // curl's 7: could not connect.
        eventually(&format!("{url} refuses"), 10, || curl(&url).0 == Some(7));
    }
    let url = format!("http://{}:{port}", outside.addr);
    eventually(&format!("{url} refuses the host"), 10, || {
        outside.curl(&url).0 == Some(7)
    });

    // kubectl exec -ti $POD_NAME curl localhost:8080: the app still runs. kubectl wants `--`
    // and, with no terminal here, no -t.
    let args: &[&str] = if prog == "tkctl" {
        &["exec", "-ti", &pod, "curl", "localhost:8080"]
    } else {
        &["exec", "-i", &pod, "--", "curl", "localhost:8080"]
    };
    let out = cli(node, prog, args);
    assert!(out.status.success(), "{prog} exec: {}", text(&out.stderr));
    let said = text(&out.stdout);
    assert_eq!(answered_by(&said).as_deref(), Some(pod.as_str()), "{said}");

    // Tidy up: the deployment, and its pod gone from the node.
    assert_eq!(
        ok(node, prog, &["delete", "deployment", APP]),
        format!("deployment.apps \"{APP}\" deleted\n")
    );
    eventually(&format!("{prog}: the pods are gone"), 60, || {
        let out = cli(node, prog, &["get", "pods"]);
        text(&out.stdout).is_empty() && text(&out.stderr).starts_with("No resources found")
    });
}

/// The host, outside the cluster: its network namespace (the test's own) and the node's
/// address on the host's link to it.
struct Outside {
    ns: std::fs::File,
    addr: String,
}

impl Outside {
    /// The real curl, run from the host's namespace.
    fn curl(&self, url: &str) -> (Option<i32>, String) {
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(
                    std::os::fd::AsFd::as_fd(&self.ns),
                    nix::sched::CloneFlags::CLONE_NEWNET,
                )
                .expect("back to the host's netns");
                curl(url)
            })
            .join()
            .expect("curl from the host")
        })
    }
}

#[test]
fn the_tutorial_with_tkctl_then_kubectl() {
    let node = Node::start();
    node.wait_ready();
    node.start_proxy();
    let outside = Outside {
        ns: std::fs::File::open("/proc/thread-self/ns/net").expect("the host's netns"),
        addr: node.net.link_to_host(),
    };
    node.net.run(|| {
        tutorial(&node, "tkctl", &outside);
        tutorial(&node, "kubectl", &outside);
    });
    node.kill_proxy();
    node.kill_kubelet();
    let out = node.cleanup();
    assert!(out.status.success(), "{}", text(&out.stderr));
}
