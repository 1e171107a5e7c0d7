//! `apply -f`, `create -f` and `delete -f` on a whole node: a Deployment and a Service applied
//! from a directory, re-applied unchanged, changed (image, a label removed) while what others
//! set stays, the last-applied annotation as kubectl writes it, and the errors compared with the
//! installed kubectl's. Needs root.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{cli, eventually, text, tk};
use serde_json::{json, Value};
use tinykube_e2e::built_binary;
use tinykube_e2e::node::Node;

const V1: &str = "gcr.io/google-samples/kubernetes-bootcamp:v1";
const V2: &str = "gcr.io/google-samples/kubernetes-bootcamp:v2";
const LAST: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn manifest(image: &str, labels: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
{labels}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: {image}
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 8080
"
    )
}

/// Runs `prog` with `input` on its stdin.
fn with_stdin(node: &Node, prog: &str, args: &[&str], input: &str) -> Output {
    let bin = if prog == "tkctl" {
        built_binary("tkctl")
    } else {
        prog.into()
    };
    let mut child = Command::new(bin)
        .arg(format!(
            "--kubeconfig={}",
            node.apiserver.kubeconfig("admin").display()
        ))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn json_of(node: &Node, what: &[&str]) -> Value {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&text(&cli(node, "kubectl", &args).stdout)).unwrap()
}

/// Both clients' exit status, stdout and stderr for the same command (kubectl without
/// client-side validation, which needs the OpenAPI tinykube does not serve).
fn both(node: &Node, args: &[&str], validate: bool) -> [(Option<i32>, String, String); 2] {
    let ours = cli(node, "tkctl", args);
    let mut k = args.to_vec();
    if validate {
        k.push("--validate=false");
    }
    let theirs = cli(node, "kubectl", &k);
    [ours, theirs].map(|o| (o.status.code(), text(&o.stdout), text(&o.stderr)))
}

#[test]
fn apply_create_and_delete_from_files() {
    let node = Node::start();
    node.wait_ready();
    let dir = node.root.path().join("manifests");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("app.yaml");
    std::fs::write(dir.join("README.md"), "not a manifest").unwrap();
    std::fs::write(&file, manifest(V1, "    app: web\n    tier: front")).unwrap();
    let d = dir.display().to_string();
    let f = file.display().to_string();
    node.net.run(|| {
        assert_eq!(
            tk(&node, &["apply", "-f", &d]),
            "deployment.apps/web created\nservice/web created\n"
        );
        eventually("the pod runs", 60, || {
            tk(&node, &["get", "pods", "-l", "app=web"])
                .lines()
                .skip(1)
                .any(|l| l.contains("1/1") && l.contains("Running"))
        });
        assert_eq!(
            tk(&node, &["apply", "-f", &d]),
            "deployment.apps/web unchanged\nservice/web unchanged\n"
        );

        // Others' changes: a label by tkctl, an annotation by kubectl.
        tk(&node, &["label", "deployment", "web", "owner=ops"]);
        let out = cli(&node, "kubectl", &["annotate", "deployment", "web", "note=kept"]);
        assert!(out.status.success(), "{}", text(&out.stderr));

        // The image changes, the tier label goes.
        let changed = manifest(V2, "    app: web");
        std::fs::write(&file, &changed).unwrap();
        assert_eq!(
            tk(&node, &["apply", "-f", &d]),
            "deployment.apps/web configured\nservice/web unchanged\n"
        );
        let deploy = json_of(&node, &["deployment", "web"]);
        assert_eq!(
            deploy["metadata"]["labels"],
            json!({"app": "web", "owner": "ops"})
        );
        assert_eq!(deploy["metadata"]["annotations"]["note"], "kept");
        let c = &deploy["spec"]["template"]["spec"]["containers"];
        assert_eq!(c.as_array().unwrap().len(), 1, "{c}");
        assert_eq!(c[0]["image"], V2);
        // Defaulted by the server inside the merged container: kept.
        assert_eq!(c[0]["terminationMessagePath"], "/dev/termination-log");
        let recorded = deploy["metadata"]["annotations"][LAST].as_str().unwrap();
        assert!(recorded.ends_with("}\n") && !recorded.contains(": "), "{recorded}");
        let mut expected: Value =
            serde_yaml::from_str(changed.split("---").next().unwrap()).unwrap();
        expected["metadata"]["namespace"] = json!("default");
        expected["metadata"]["annotations"] = json!({});
        assert_eq!(serde_json::from_str::<Value>(recorded).unwrap(), expected);
        eventually("a v2 pod runs", 90, || {
            json_of(&node, &["pods", "-l", "app=web"])["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| {
                    p["spec"]["containers"][0]["image"] == V2
                        && p["status"]["phase"] == "Running"
                        && p["metadata"]["deletionTimestamp"].is_null()
                })
        });

        // create of what exists: kubectl's errors, exit 1.
        let [ours, theirs] = both(&node, &["create", "-f", &f], true);
        assert_eq!(ours, theirs);
        assert_eq!(
            ours,
            (
                Some(1),
                String::new(),
                format!("Error from server (AlreadyExists): error when creating \"{f}\": deployments.apps \"web\" already exists\nError from server (AlreadyExists): error when creating \"{f}\": services \"web\" already exists\n")
            )
        );

        // The namespace of the object against -n.
        let other = dir.join("other.json");
        std::fs::write(
            &other,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cfg","namespace":"elsewhere"}}"#,
        )
        .unwrap();
        let o = other.display().to_string();
        let [ours, theirs] = both(&node, &["-n", "default", "apply", "-f", &o], true);
        assert_eq!(ours, theirs);
        assert_eq!(ours.0, Some(1));
        assert_eq!(ours.2, "error: the namespace from the provided object \"elsewhere\" does not match the namespace \"default\". You must pass '--namespace=elsewhere' to perform this operation.\n");
        std::fs::remove_file(&other).unwrap();

        // From stdin; what is recorded is what kubectl records for the same manifest.
        let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  annotations:\n    a: <b>\ndata:\n  k: v\n";
        let out = with_stdin(&node, "tkctl", &["apply", "-f", "-"], cm);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "configmap/cfg created\n");
        let ours = json_of(&node, &["configmap", "cfg"])["metadata"]["annotations"].clone();
        let out = with_stdin(&node, "tkctl", &["create", "-f", "-"], cm);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(text(&out.stderr), "Error from server (AlreadyExists): error when creating \"STDIN\": configmaps \"cfg\" already exists\n");
        tk(&node, &["delete", "configmap", "cfg"]);
        let out = with_stdin(
            &node,
            "kubectl",
            &["apply", "-f", "-", "--validate=false"],
            cm,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let theirs = json_of(&node, &["configmap", "cfg"])["metadata"]["annotations"].clone();
        assert_eq!(ours, theirs);
        let out = with_stdin(&node, "tkctl", &["delete", "-f", "-"], cm);
        assert_eq!(text(&out.stdout), "configmap \"cfg\" deleted\n");

        // delete -f: the objects go; again, kubectl's NotFound errors or nothing.
        assert_eq!(
            tk(&node, &["delete", "-f", &d]),
            "deployment.apps \"web\" deleted\nservice \"web\" deleted\n"
        );
        for what in [["deployment", "web"], ["service", "web"]] {
            let out = cli(&node, "tkctl", &["get", what[0], what[1]]);
            assert_eq!(out.status.code(), Some(1), "{what:?} still there");
        }
        let [ours, theirs] = both(&node, &["delete", "-f", &d], false);
        assert_eq!(ours, theirs);
        assert_eq!(ours.0, Some(1));
        assert!(ours.2.contains("deployments.apps \"web\" not found"), "{}", ours.2);
        let [ours, theirs] = both(&node, &["delete", "-f", &d, "--ignore-not-found"], false);
        assert_eq!(ours, theirs);
        assert_eq!(ours, (Some(0), String::new(), String::new()));
    });
    let out = node.cleanup();
    assert!(out.status.success(), "{}", text(&out.stderr));
}
