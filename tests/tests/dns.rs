//! The cluster DNS (issue 20), from a busybox pod on a real node with the installed kubectl:
//! `kubernetes.default`, a service by short name and FQDN (and `wget` through it), an
//! ExternalName's CNAME chased to an outside name, a headless service's ready pods following
//! scaling and readiness, a pod's hostname under its subdomain, SRV for a named port, a name
//! outside the cluster through the node's upstream (dnsmasq on the node's loopback, as tests
//! have no internet), a deleted service stopping to resolve, answers while the apiserver is
//! down, and the DNS back after its proxy is killed. And an in-cluster client (kubectl inside a
//! pod, with only its service account's token) reaching the API at
//! `https://kubernetes.default.svc`: allowed what its Role grants, refused elsewhere.

mod common;

use std::process::{Command, Stdio};

use common::{eventually, text};
use tinykube_e2e::node::Node;
use tinykube_e2e::Killed;

const NS: &str = "dnstest";

fn ok(node: &Node, args: &[&str]) -> String {
    common::ok_in(node, NS, args)
}

/// `sh -c script` in the client pod: (success, stdout and stderr).
fn in_client(node: &Node, script: &str) -> (bool, String) {
    let out = common::kubectl_in(node, NS, &["exec", "client", "--", "sh", "-c", script]);
    (
        out.status.success(),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )
}

/// busybox's `nslookup` of `name` (with `type`, if any) from the client pod: whether it
/// found an answer, and what it printed. (It asks every search domain of a name without a
/// dot at once, and fails if any of them fails; an answer for one is what counts.)
fn lookup(node: &Node, name: &str, qtype: Option<&str>) -> (bool, String) {
    let t = qtype.map(|t| format!("-type={t} ")).unwrap_or_default();
    let (_, out) = in_client(node, &format!("nslookup {t}{name}"));
    let found = out.lines().any(|l| {
        l.starts_with("Name:") || l.contains("canonical name =") || l.contains("service =")
    });
    (found, out)
}

/// The addresses an nslookup printed (after the server's own lines).
fn addresses(out: &str) -> Vec<String> {
    let mut v: Vec<String> = out
        .lines()
        .skip_while(|l| !l.starts_with("Name:"))
        .filter_map(|l| l.strip_prefix("Address:"))
        .map(|a| a.trim().to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}

fn pod_ips(node: &Node, selector: &str) -> Vec<String> {
    let out = ok(
        node,
        &[
            "get",
            "pods",
            "-l",
            selector,
            "-o",
            "jsonpath={range .items[*]}{.status.podIP}{\"\\n\"}{end}",
        ],
    );
    let mut v: Vec<String> = out
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    v.sort();
    v
}

const APPS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello}
spec:
  replicas: 2
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      containers:
      - name: bootcamp
        image: gcr.io/google-samples/kubernetes-bootcamp:v1
        ports: [{containerPort: 8080, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: hello}
spec:
  selector: {app: hello}
  ports: [{name: http, port: 8080, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: hello-headless}
spec:
  clusterIP: None
  selector: {app: hello}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  type: ExternalName
  externalName: db.outside.example
---
apiVersion: v1
kind: Service
metadata: {name: flip}
spec:
  clusterIP: None
  selector: {app: flip}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: flip-0, labels: {app: flip}}
spec:
  hostname: flip-0
  subdomain: flip
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: ["sh", "-c", "touch /tmp/ready; exec sleep 3600"]
    readinessProbe:
      exec: {command: ["test", "-f", "/tmp/ready"]}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: busybox
    command: ["sleep", "3600"]
"#;

/// dnsmasq on the node's loopback: the upstream resolver of the node (its resolv.conf names
/// 127.0.0.1), knowing `outside.example` and its subdomains.
fn upstream(node: &Node) -> Killed {
    let dnsmasq = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("dnsmasq is not installed (hack/test.sh installs dnsmasq-base)");
    let child = node.net.run(|| {
        Command::new(dnsmasq)
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--port=53",
                "--user=root",
                "--pid-file=",
                "--address=/outside.example/192.0.2.44",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(Killed)
            .expect("starting dnsmasq")
    });
    node.net.run(|| {
        eventually("dnsmasq answers", 10, || {
            std::net::UdpSocket::bind("127.0.0.1:0")
                .and_then(|s| {
                    s.set_read_timeout(Some(std::time::Duration::from_millis(200)))?;
                    // A query for outside.example A.
                    let q = [
                        0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, b'o', b'u', b't', b's', b'i',
                        b'd', b'e', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0, 0, 1, 0, 1,
                    ];
                    s.send_to(&q, "127.0.0.1:53")?;
                    let mut buf = [0u8; 512];
                    s.recv(&mut buf).map(|_| ())
                })
                .is_ok()
        })
    });
    child
}

fn dns(node: &Node) {
    ok(node, &["create", "namespace", NS]);
    common::apply_in(node, NS, APPS);
    ok(
        node,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/client",
            "pod/flip-0",
            "--timeout=90s",
        ],
    );
    ok(
        node,
        &["rollout", "status", "deployment/hello", "--timeout=90s"],
    );

    // The pod's resolver is the cluster's, with Kubernetes' search path.
    let (_, conf) = in_client(node, "cat /etc/resolv.conf");
    assert!(conf.contains("nameserver 10.96.0.10"), "{conf}");
    assert!(
        conf.contains(&format!(
            "search {NS}.svc.cluster.local svc.cluster.local cluster.local"
        )),
        "{conf}"
    );
    assert!(conf.contains("options ndots:5"), "{conf}");

    // kubernetes.default through the search path, by the C library's resolver (busybox's
    // nslookup applies the search path only to names without a dot, so it asks the FQDN).
    let (_, out) = in_client(
        node,
        "timeout 10 wget -O /dev/null http://kubernetes.default:443/ 2>&1",
    );
    assert!(
        out.contains("Connecting to kubernetes.default:443 (10.96.0.1:443)"),
        "{out}"
    );
    let (good, out) = lookup(node, "kubernetes.default.svc.cluster.local", None);
    assert!(good, "{out}");
    assert_eq!(addresses(&out), ["10.96.0.1"], "{out}");

    // A service by short name and FQDN; wget through the name.
    let cluster_ip = ok(
        node,
        &["get", "svc", "hello", "-o", "jsonpath={.spec.clusterIP}"],
    );
    let (good, out) = lookup(node, "hello", None);
    assert!(good, "{out}");
    assert_eq!(addresses(&out), std::slice::from_ref(&cluster_ip), "{out}");
    let fqdn = format!("hello.{NS}.svc.cluster.local");
    let (good, out) = lookup(node, &fqdn, None);
    assert!(good, "{out}");
    assert_eq!(addresses(&out), std::slice::from_ref(&cluster_ip), "{out}");
    for url in ["http://hello:8080", &format!("http://{fqdn}:8080/")] {
        let (good, out) = in_client(node, &format!("timeout 10 wget -qO- {url}"));
        assert!(
            good && out.starts_with("Hello Kubernetes bootcamp!"),
            "{url}: {out}"
        );
    }

    // SRV for the named port.
    let (good, out) = lookup(
        node,
        &format!("_http._tcp.hello.{NS}.svc.cluster.local"),
        Some("srv"),
    );
    assert!(good, "{out}");
    assert!(out.contains(&format!("0 100 8080 {fqdn}")), "{out}");

    // A name outside the cluster, through the node's upstream; an ExternalName as a CNAME
    // to it, chased.
    let (good, out) = lookup(node, "www.outside.example", None);
    assert!(good, "{out}");
    assert_eq!(addresses(&out), ["192.0.2.44"], "{out}");
    let (good, out) = lookup(node, "db", Some("a"));
    assert!(good, "{out}");
    assert!(
        out.contains(&format!(
            "db.{NS}.svc.cluster.local\tcanonical name = db.outside.example"
        )),
        "{out}"
    );
    assert!(out.contains("192.0.2.44"), "{out}");

    // The headless service: the ready pods, following scaling.
    let (good, out) = lookup(node, "hello-headless", None);
    assert!(good, "{out}");
    assert_eq!(addresses(&out), pod_ips(node, "app=hello"), "{out}");
    ok(node, &["scale", "deployment/hello", "--replicas=3"]);
    ok(
        node,
        &["rollout", "status", "deployment/hello", "--timeout=90s"],
    );
    let ips = pod_ips(node, "app=hello");
    assert_eq!(ips.len(), 3);
    eventually("the headless service lists the third pod", 10, || {
        addresses(&lookup(node, "hello-headless", None).1) == ips
    });

    // A pod's hostname under its subdomain, leaving with its readiness and coming back.
    let flip_ip = pod_ips(node, "app=flip");
    let flip = format!("flip-0.flip.{NS}.svc.cluster.local");
    let (good, out) = lookup(node, &flip, None);
    assert!(good, "{out}");
    assert_eq!(addresses(&out), flip_ip, "{out}");
    ok(node, &["exec", "flip-0", "--", "rm", "/tmp/ready"]);
    eventually("an unready pod leaves the headless service", 20, || {
        !lookup(node, &flip, None).0
    });
    assert!(addresses(&lookup(node, "flip", None).1).is_empty());
    ok(node, &["exec", "flip-0", "--", "touch", "/tmp/ready"]);
    eventually("a ready pod comes back", 20, || {
        addresses(&lookup(node, &flip, None).1) == flip_ip
    });

    // The DNS's metrics, through kube-dns's `metrics` port.
    let (good, out) = in_client(
        node,
        "timeout 10 wget -qO- http://kube-dns.kube-system.svc.cluster.local:9153/metrics",
    );
    assert!(good, "{out}");
    let counted = |name: &str| -> u64 {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(
        counted("tinykube_dns_requests_total{proto=\"udp\"}") > 10,
        "{out}"
    );
    assert!(
        counted("tinykube_dns_responses_total{rcode=\"NXDOMAIN\"}") > 0,
        "{out}"
    );
    assert!(counted("tinykube_dns_forward_requests_total") > 0, "{out}");

    // A reverse lookup of the service's address names it.
    let (_, out) = lookup(node, &cluster_ip, None);
    assert!(out.contains(&fqdn), "{out}");

    // A deleted service stops resolving: NXDOMAIN.
    ok(node, &["delete", "service", "hello"]);
    eventually("a deleted service stops resolving", 10, || {
        let (good, out) = lookup(node, &fqdn, None);
        !good && out.contains("NXDOMAIN")
    });
}

/// kubectl 1.32 (static), for a pod to run.
const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.32";

fn in_cluster_client(node: &Node) {
    assert!(
        std::path::Path::new(KUBECTL).exists(),
        "{KUBECTL} is missing (the machine's kubectl dispatcher runs it)"
    );
    let manifest = format!(
        r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{name: reader}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: pod-reader}}
rules: [{{apiGroups: [""], resources: [pods], verbs: [get, list, watch]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: read-pods}}
subjects: [{{kind: ServiceAccount, name: reader, namespace: {NS}}}]
roleRef: {{kind: Role, name: pod-reader, apiGroup: rbac.authorization.k8s.io}}
---
apiVersion: v1
kind: Pod
metadata: {{name: operator}}
spec:
  serviceAccountName: reader
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    volumeMounts: [{{name: kubectl, mountPath: /usr/local/bin/kubectl, readOnly: true}}]
  volumes:
  - name: kubectl
    hostPath: {{path: {KUBECTL}, type: File}}
"#
    );
    common::apply_in(node, NS, &manifest);
    ok(
        node,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/operator",
            "--timeout=60s",
        ],
    );
    let sa = "/var/run/secrets/kubernetes.io/serviceaccount";
    let client = |args: &str| {
        let script = format!(
            "HOME=/tmp /usr/local/bin/kubectl --server=https://kubernetes.default.svc \
             --token=\"$(cat {sa}/token)\" --certificate-authority={sa}/ca.crt {args} 2>&1"
        );
        let out = common::kubectl_in(node, NS, &["exec", "operator", "--", "sh", "-c", &script]);
        (out.status.success(), text(&out.stdout))
    };
    let (good, out) = client("get pods -o name");
    assert!(good, "{out}");
    assert!(out.lines().any(|l| l == "pod/operator"), "{out}");
    assert!(out.lines().any(|l| l == "pod/client"), "{out}");
    let (good, out) = client("get pods -n default");
    assert!(!good, "{out}");
    assert!(
        out.contains(&format!(
            "pods is forbidden: User \"system:serviceaccount:{NS}:reader\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        )),
        "{out}"
    );
}

/// The DNS answers from what it knows while the apiserver is down, and comes back after its
/// proxy is killed.
fn survives(node: &Node) {
    let want = pod_ips(node, "app=hello");
    // The client pod's exec goes through the apiserver: ask from the node instead, as the
    // pods' resolver is reached (the kube-dns address, through the proxy's rules).
    let ask = |name: &str| -> String {
        node.net.run(|| {
            let out = Command::new("busybox")
                .args(["nslookup", name, "10.96.0.10"])
                .output()
                .expect("busybox (busybox-static) on the node");
            text(&out.stdout)
        })
    };
    let name = format!("hello-headless.{NS}.svc.cluster.local");
    assert_eq!(addresses(&ask(&name)), want);
    node.kill_apiserver();
    assert_eq!(
        addresses(&ask(&name)),
        want,
        "answers while the apiserver is down"
    );
    node.restart_apiserver();
    node.kill_proxy();
    node.start_proxy();
    eventually("the DNS is back after a kill -9 of its proxy", 30, || {
        addresses(&ask(&name)) == want
    });
}

#[test]
fn cluster_dns() {
    let node = Node::start();
    node.wait_ready();
    let dnsmasq = upstream(&node);
    node.start_proxy();
    node.net.run(|| {
        dns(&node);
        in_cluster_client(&node);
        survives(&node);
        common::ok(
            &node,
            "kubectl",
            &["delete", "namespace", NS, "--timeout=90s"],
        );
    });
    drop(dnsmasq);
    node.kill_proxy();
    node.kill_kubelet();
    let out = node.cleanup();
    assert!(out.status.success(), "{}", text(&out.stderr));
}
