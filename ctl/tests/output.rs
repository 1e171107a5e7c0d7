//! `tkctl get` output formats on a whole node, compared with the installed kubectl's on the
//! same objects: `-o yaml`, `-o jsonpath`, `-o custom-columns`, `--sort-by` and `-w`.
//! Needs root.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{cli, eventually, text, tk, without_age};
use tinykube_e2e::built_binary;
use tinykube_e2e::node::Node;

/// stdout, stderr and exit code of one client.
fn outcome(node: &Node, prog: &str, args: &[&str]) -> (String, String, Option<i32>) {
    let o = cli(node, prog, args);
    (text(&o.stdout), text(&o.stderr), o.status.code())
}

#[test]
fn get_output_formats_as_kubectl() {
    let node = Node::start();
    node.wait_ready();
    node.net.run(|| {
        assert_eq!(
            tk(
                &node,
                &[
                    "run",
                    "web",
                    "--image=gcr.io/google-samples/kubernetes-bootcamp:v1",
                    "--port=8080",
                    "--replicas=2",
                ],
            ),
            "deployment.apps/web created\n"
        );
        assert_eq!(
            tk(
                &node,
                &["expose", "deployment/web", "--type=NodePort", "--port", "8080"]
            ),
            "service/web exposed\n"
        );
        eventually("the deployment is available", 90, || {
            tk(&node, &["get", "deployment", "web"]).contains(" 2/2 ")
        });

        // Everything printed the same way by both clients (retried while the objects move:
        // a status update between the two reads changes the resourceVersion). `succeeds`:
        // whether the case is about output (both must succeed) or about an error (both must
        // fail, with the same words): two clients failing alike is no pass for an output case.
        let compare = |args: &[&str], succeeds: bool| {
            let mut last = None;
            for _ in 0..10 {
                let ours = outcome(&node, "tkctl", args);
                let theirs = outcome(&node, "kubectl", args);
                if ours == theirs {
                    assert_eq!(
                        ours.2 == Some(0),
                        succeeds,
                        "{args:?}: both clients {} (a case that should {}): {ours:?}",
                        if ours.2 == Some(0) { "succeed" } else { "fail" },
                        if succeeds { "succeed" } else { "fail" },
                    );
                    return ours.0;
                }
                last = Some((ours, theirs));
                std::thread::sleep(Duration::from_millis(500));
            }
            let (ours, theirs) = last.unwrap();
            assert_eq!(ours, theirs, "{args:?}");
            unreachable!()
        };
        let same = |args: &[&str]| compare(args, true);
        let same_error = |args: &[&str]| compare(args, false);
        let svc = same(&["get", "service", "web", "-o", "yaml"]);
        assert!(svc.starts_with("apiVersion: v1\nkind: Service\nmetadata:\n"), "{svc}");
        assert!(svc.contains("\n  creationTimestamp: \""), "{svc}");
        assert!(svc.contains("\n  ports:\n  - nodePort: "), "{svc}");
        same(&["get", "deployment", "web", "-o", "yaml"]);
        let pods = same(&["get", "pods", "-o", "yaml"]);
        assert!(pods.starts_with("apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: Pod\n"));
        assert!(pods.ends_with("kind: List\nmetadata:\n  resourceVersion: \"\"\n"));
        same(&["get", "deployments,services", "-o", "yaml"]);
        same(&["get", "service", "web", "-o", "json"]);

        // -o jsonpath: paths, lists, range, filters, recursion, slices, escapes, errors.
        let names = same(&["get", "pods", "-o", "jsonpath={.items[*].metadata.name}"]);
        assert_eq!(names.split(' ').count(), 2, "{names}");
        assert!(names.split(' ').all(|n| n.starts_with("web-")), "{names}");
        let port = same(&[
            "get",
            "services",
            "-o",
            r#"jsonpath={.items[?(@.metadata.name=="web")].spec.ports[0].nodePort}"#,
        ]);
        assert!(port.parse::<u16>().is_ok_and(|p| p >= 30000), "{port}");
        let range = same(&[
            "get",
            "pods",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}{"\t"}{.status.podIP}{"\n"}{end}"#,
        ]);
        assert_eq!(range.lines().count(), 2, "{range}");
        assert!(range.lines().all(|l| l.contains("\t10.")), "{range}");
        let ready = same(&[
            "get",
            "pods",
            "-o",
            r#"jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}"#,
        ]);
        assert_eq!(ready, "True True");
        // (template, whether it prints or is an error)
        for (template, succeeds) in [
            ("jsonpath={.metadata.name} {.spec.selector} {.spec.ports}", true),
            ("jsonpath={..containerPort}", true),
            ("jsonpath={.items[0:1].metadata.name}|{.items[-1:].kind}", true),
            (r"jsonpath={.items[0].metadata.labels.pod-template-hash}", true),
            (r"jsonpath={.items[0].metadata.annotations.deployment\.kubernetes\.io/revision}", true),
            ("jsonpath={.items[0].spec.containers[0].ports[?(@.containerPort>8000)].protocol}", true),
            // Out of range, and an unclosed action: errors.
            ("jsonpath={.items[5].metadata.name}", false),
            ("jsonpath={.items[0].metadata.name", false),
            ("jsonpath-as-json={.items[*].metadata.name}", true),
        ] {
            let kind = if template.contains("selector") {
                "service/web"
            } else if template.contains("revision") {
                "replicasets"
            } else {
                "pods"
            };
            compare(&["get", kind, "-o", template], succeeds);
        }
        // A missing key prints nothing, unless missing keys are errors.
        assert_eq!(same(&["get", "service", "web", "-o", "jsonpath={.nope}"]), "");
        let strict = outcome(
            &node,
            "tkctl",
            &[
                "get",
                "service",
                "web",
                "-o",
                "jsonpath={.spec.nope}",
                "--allow-missing-template-keys=false",
            ],
        );
        assert_eq!(strict.2, Some(1));
        assert!(
            strict.1.starts_with(
                "error: error executing jsonpath \"{.spec.nope}\": Error executing template: nope is not found."
            ),
            "{}",
            strict.1
        );
        same_error(&[
            "get",
            "service",
            "web",
            "-o",
            "jsonpath={.spec.nope}",
            "--allow-missing-template-keys=false",
        ]);

        // -o custom-columns: tabwriter alignment, <none>, several values, errors.
        let cols = same(&[
            "get",
            "pods",
            "-o",
            r#"custom-columns=NAME:.metadata.name,IP:.status.podIP,X:.nope,PORTS:.spec.containers[*].ports[*].containerPort,READY:{.status.conditions[?(@.type=="Ready")].status}"#,
        ]);
        let header = cols.lines().next().unwrap();
        assert!(header.starts_with("NAME  ") && header.ends_with("READY"), "{cols}");
        for l in cols.lines().skip(1) {
            let cells: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(cells[2..], ["<none>", "8080", "True"], "{cols}");
            // Each cell starts under its header.
            assert_eq!(l.find("<none>"), header.find(" X ").map(|i| i + 1), "{cols}");
        }
        same(&["get", "pods,services", "-o", "custom-columns=N:.metadata.name,K:kind"]);
        // A column without its path: an error.
        same_error(&["get", "pods", "-o", "custom-columns=NAME"]);
        same(&["get", "pods", "--no-headers", "-o", "custom-columns=A:.kind"]);

        // --sort-by: rows in the order of a field of the whole objects.
        let by_name = |prog: &str| {
            let o = cli(&node, prog, &["get", "pods", "--sort-by=.metadata.name"]);
            assert!(o.status.success(), "{}", text(&o.stderr));
            without_age(&text(&o.stdout))
        };
        let sorted = by_name("tkctl");
        assert_eq!(sorted, by_name("kubectl"));
        let rows: Vec<&String> = sorted.iter().skip(1).collect();
        assert!(rows.windows(2).all(|w| w[0] < w[1]), "{sorted:?}");
        same(&["get", "pods", "--sort-by={.metadata.creationTimestamp}", "-o", "name"]);
        // kubectl 1.32's order of strings: bytes (n-10 before n-2), quantities by value.
        let dir = tempfile::tempdir().unwrap();
        let cms = dir.path().join("cms.json");
        let cm = |name: &str, v: &str| {
            format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"v":"{v}"}}}}"#)
        };
        let list = [cm("n-2", "10"), cm("n-10", "9"), cm("n-7k6p7", "1Gi"), cm("n-7568b", "500Mi")];
        std::fs::write(&cms, format!(r#"{{"kind":"List","apiVersion":"v1","items":[{}]}}"#, list.join(","))).unwrap();
        tk(&node, &["create", "-f", cms.to_str().unwrap()]);
        let names = same(&["get", "cm", "--sort-by=.metadata.name", "-o", "name"]);
        assert!(names.find("n-10").unwrap() < names.find("n-2").unwrap(), "{names}");
        assert!(names.find("n-7568b").unwrap() < names.find("n-7k6p7").unwrap(), "{names}");
        let by_value = same(&["get", "cm", "--sort-by=.data.v", "-o", "custom-columns=V:.data.v"]);
        assert!(by_value.ends_with("9\n10\n500Mi\n1Gi\n"), "{by_value}");
        same(&[
            "get",
            "pods",
            "--sort-by=.status.containerStatuses[0].restartCount",
            "-o",
            "custom-columns=N:.metadata.name",
        ]);
        same(&["get", "pods", "--sort-by=.metadata.name", "-o", "yaml"]);
        // Over two kinds at once kubectl cannot sort: an error.
        same_error(&["get", "pods,services", "--sort-by=.metadata.name"]);

        // -w: the list, then one row per change, aligned under the first table.
        let out = tempfile();
        let mut watch = Command::new(built_binary("tkctl"))
            .arg(format!(
                "--kubeconfig={}",
                node.apiserver.kubeconfig("admin").display()
            ))
            .args(["get", "pods", "-w"])
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let read = || {
            let mut s = String::new();
            std::fs::File::open(format!("/proc/self/fd/{}", fd(&out)))
                .unwrap()
                .read_to_string(&mut s)
                .unwrap();
            s
        };
        eventually("the watch lists the pods", 90, || read().lines().count() >= 3);
        let first = read();
        let before: Vec<String> = first
            .lines()
            .skip(1)
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect();
        assert_eq!(before.len(), 2, "{first}");
        assert_eq!(
            tk(&node, &["scale", "deployment/web", "--replicas=3"]),
            "deployment.apps/web scaled\n"
        );
        eventually("the new pod shows running in the watch", 90, || {
            read()
                .lines()
                .skip(3)
                .any(|l| !before.iter().any(|b| l.starts_with(b)) && l.contains(" Running "))
        });
        let seen = read();
        let header = seen.lines().next().unwrap();
        assert_eq!(
            seen.lines().filter(|l| l.starts_with("NAME ")).count(),
            1,
            "one header only: {seen}"
        );
        let status_at = header.find("STATUS").unwrap();
        for l in seen.lines().skip(3) {
            let status = l.get(status_at..).unwrap_or("");
            assert!(
                l.starts_with("web-")
                    && l[status_at - 3..status_at].trim().is_empty()
                    && status.starts_with(|c: char| c.is_ascii_uppercase()),
                "rows aligned with the header: {seen}"
            );
        }
        let _ = watch.kill();
        let _ = watch.wait();

        tk(&node, &["delete", "service", "web"]);
        tk(&node, &["delete", "deployment", "web"]);
    });
    let out = node.cleanup();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// An unnamed file, gone when closed.
fn tempfile() -> std::fs::File {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("tkctl-output-test-{}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    f
}

fn fd(f: &std::fs::File) -> i32 {
    use std::os::fd::AsRawFd;
    f.as_raw_fd()
}
