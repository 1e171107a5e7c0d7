//! The tutorial with tkctl, on a whole node (apiserver, kubelet, proxy, registry) in its own
//! network namespace; output compared with the installed kubectl's where both can do the step
//! (describe is compared line for line in describe.rs). Needs root.

mod common;

use std::process::Command;

use common::{block_on, cli, eventually, text, tk, without_age};
use serde_json::Value;
use tinykube_e2e::node::{Node, NODE_IP};
use tinykube_e2e::{answer, built_binary, http_get};

#[test]
fn the_tutorial_with_tkctl() {
    let node = Node::start();
    node.wait_ready();
    node.start_proxy();
    node.net.run(|| {
        let out = tk(
            &node,
            &[
                "run",
                "kubernetes-first-app",
                "--image=gcr.io/google-samples/kubernetes-bootcamp:v1",
                "--port=8080",
            ],
        );
        assert_eq!(out, "deployment.apps/kubernetes-first-app created\n");
        eventually("the app's pod runs", 60, || {
            tk(&node, &["get", "pods"])
                .lines()
                .skip(1)
                .any(|l| l.contains("1/1") && l.contains("Running"))
        });
        let pods = tk(&node, &["get", "pods"]);
        assert!(pods.starts_with("NAME "), "{pods}");
        let header: Vec<&str> = pods.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
        let pod = pods
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        assert!(pod.starts_with("kubernetes-first-app-"), "{pod}");
        let services = tk(&node, &["get", "services"]);
        assert!(
            services.lines().nth(1).unwrap().starts_with("kubernetes "),
            "{services}"
        );

        let out = tk(
            &node,
            &[
                "expose",
                "deployment/kubernetes-first-app",
                "--type=NodePort",
                "--port",
                "8080",
            ],
        );
        assert_eq!(out, "service/kubernetes-first-app exposed\n");
        // export NODE_PORT=$(tkctl get services/kubernetes-first-app -o go-template='{{(index .spec.ports 0).nodePort}}')
        let template = "go-template={{(index .spec.ports 0).nodePort}}";
        let node_port = tk(
            &node,
            &["get", "services/kubernetes-first-app", "-o", template],
        );
        let svc: Value = serde_json::from_str(&tk(
            &node,
            &["get", "services/kubernetes-first-app", "-o", "json"],
        ))
        .unwrap();
        assert_eq!(node_port, svc["spec"]["ports"][0]["nodePort"].to_string());
        assert_eq!(tk(&node, &["ip"]).trim(), NODE_IP);
        let via_node_port = format!("{NODE_IP}:{node_port}");
        let reply = block_on(answer(&via_node_port));
        assert!(
            reply.contains(&format!(
                "Hello Kubernetes bootcamp! | Running on: {pod} | v=1"
            )),
            "{reply}"
        );

        // Labels and selectors.
        let by_run = tk(&node, &["get", "pods", "-l", "run=kubernetes-first-app"]);
        assert_eq!(by_run.lines().count(), 2, "{by_run}");
        let svc_by_run = tk(
            &node,
            &["get", "services", "-l", "run=kubernetes-first-app"],
        );
        assert!(svc_by_run
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("kubernetes-first-app "));
        assert_eq!(
            tk(&node, &["label", "pod", &pod, "app=v1"]),
            format!("pod/{pod} labeled\n")
        );
        let v1 = tk(&node, &["get", "pods", "-l", "app=v1"]);
        assert!(v1.lines().nth(1).unwrap().starts_with(&pod), "{v1}");
        // tkctl describe deployment; tkctl describe pod; tkctl describe pods $POD_NAME
        let described = tk(&node, &["describe", "deployment"]);
        let field = |text: &str, name: &str| -> Vec<String> {
            text.lines()
                .filter_map(|l| l.trim_start().strip_prefix(&format!("{name}:")))
                .map(|v| v.trim().to_string())
                .collect()
        };
        assert_eq!(field(&described, "Name"), ["kubernetes-first-app"]);
        assert_eq!(
            field(&described, "Image"),
            ["gcr.io/google-samples/kubernetes-bootcamp:v1"]
        );
        assert!(
            field(&described, "NewReplicaSet")[0].starts_with("kubernetes-first-app-"),
            "{described}"
        );
        for args in [&["describe", "pod"][..], &["describe", "pods", &pod]] {
            let described = tk(&node, args);
            assert_eq!(field(&described, "Name"), [pod.as_str()], "{described}");
            assert_eq!(field(&described, "Status"), ["Running"]);
            assert!(
                described.contains("\n                  app=v1\n")
                    || field(&described, "Labels") == ["app=v1"],
                "{described}"
            );
            assert!(described.contains("\nEvents:\n"), "{described}");
        }
        let refused = cli(&node, "tkctl", &["label", "pod", &pod, "app=v2"]);
        assert_eq!(refused.status.code(), Some(1));
        assert!(text(&refused.stderr)
            .contains("'app' already has a value (v1), and --overwrite is false"));

        // The same tables as kubectl's, line for line but for AGE.
        for what in [
            ["get", "pods"],
            ["get", "services"],
            ["get", "deployments"],
            ["get", "nodes"],
        ] {
            let ours = without_age(&tk(&node, &what));
            let theirs = without_age(&text(&cli(&node, "kubectl", &what).stdout));
            assert_eq!(ours, theirs, "{what:?}");
        }
        let wide = ["get", "pods", "-o", "wide", "--show-labels"];
        assert_eq!(
            without_age(&tk(&node, &wide)),
            without_age(&text(&cli(&node, "kubectl", &wide).stdout))
        );

        // exec in the tutorial's old form (no --), logs.
        let out = cli(
            &node,
            "tkctl",
            &["exec", "-ti", &pod, "curl", "localhost:8080"],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("Hello Kubernetes bootcamp!"),
            "{}",
            text(&out.stdout)
        );
        let out = cli(&node, "tkctl", &["exec", &pod, "--", "sh", "-c", "exit 3"]);
        assert_eq!(out.status.code(), Some(3));
        assert!(tk(&node, &["logs", &pod]).starts_with("Kubernetes Bootcamp App Started At"));

        // port-forward: two requests in a row through it.
        let mut pf = Command::new(built_binary("tkctl"))
            .arg(format!(
                "--kubeconfig={}",
                node.apiserver.kubeconfig("admin").display()
            ))
            .args(["port-forward", &format!("pod/{pod}"), "18080:8080"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut said = std::io::BufReader::new(pf.stdout.take().unwrap());
        let mut first = String::new();
        std::io::BufRead::read_line(&mut said, &mut first).unwrap();
        std::thread::spawn(move || std::io::copy(&mut said, &mut std::io::sink()));
        assert_eq!(first, "Forwarding from 127.0.0.1:18080 -> 8080\n");
        for _ in 0..2 {
            let a = block_on(http_get("127.0.0.1:18080")).unwrap();
            assert!(a.contains(&format!("Running on: {pod}")), "{a}");
        }
        let _ = pf.kill();
        let _ = pf.wait();

        // Deleting the service by label: gone from the list, its NodePort refuses.
        let out = tk(
            &node,
            &["delete", "service", "-l", "run=kubernetes-first-app"],
        );
        assert_eq!(out, "service \"kubernetes-first-app\" deleted\n");
        let services = tk(&node, &["get", "services"]);
        assert_eq!(services.lines().count(), 2, "{services}");
        eventually("the NodePort refuses", 10, || {
            block_on(http_get(&via_node_port)).is_err()
        });
        let out = cli(&node, "tkctl", &["get", "pods", "nope"]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            text(&out.stderr),
            "Error from server (NotFound): pods \"nope\" not found\n"
        );

        // Beyond the tutorial: the same words as kubectl for cluster-info, api-resources,
        // label/annotate in each of their cases, and the kubeconfig commands.
        let same = |args: &[&str]| {
            let ours = cli(&node, "tkctl", args);
            let theirs = cli(&node, "kubectl", args);
            assert!(
                theirs.status.success(),
                "{args:?}: {}",
                text(&theirs.stderr)
            );
            assert_eq!(
                (text(&ours.stdout), text(&ours.stderr), ours.status.code()),
                (
                    text(&theirs.stdout),
                    text(&theirs.stderr),
                    theirs.status.code()
                ),
                "{args:?}"
            );
        };
        same(&["cluster-info"]);
        for args in [
            &["api-resources"][..],
            &["api-resources", "-o", "wide"],
            &["api-resources", "-o", "name", "--namespaced=false"],
        ] {
            same(args);
        }
        // Each step runs on a pod of its own client, from the same state.
        let steps: &[&[&str]] = &[
            &["annotate", "pod", "P", "team=blue"],
            &["annotate", "pod", "P", "team=red"],
            &["annotate", "pod", "P", "team=red", "--overwrite"],
            &["annotate", "pod", "P", "team-"],
            &["label", "pod", "P", "tier=web", "extra=1"],
            &["label", "pod", "P", "tier=web"],
            &["label", "pod", "P", "extra-"],
            &["label", "pod", "P", "extra-", "tier-"],
            &["label", "pod", "P", "tier=db", "--overwrite"],
        ];
        let said: Vec<Vec<_>> = ["kubectl", "tkctl"]
            .iter()
            .map(|prog| {
                let _ = cli(&node, "kubectl", &["label", "pod", &pod, "tier-", "extra-"]);
                let _ = cli(&node, "kubectl", &["annotate", "pod", &pod, "team-"]);
                steps
                    .iter()
                    .map(|step| {
                        let args: Vec<&str> = step
                            .iter()
                            .map(|a| if *a == "P" { pod.as_str() } else { a })
                            .collect();
                        let out = cli(&node, prog, &args);
                        (text(&out.stdout), text(&out.stderr), out.status.code())
                    })
                    .collect()
            })
            .collect();
        assert_eq!(said[1], said[0], "label/annotate: tkctl then kubectl");
        let verbose = cli(&node, "tkctl", &["get", "pods", "-v=6"]);
        assert!(
            text(&verbose.stderr).contains("round_trippers.go:560] GET https://"),
            "{}",
            text(&verbose.stderr)
        );
        assert!(text(&verbose.stderr).contains("/api/v1/namespaces/default/pods 200 OK in "));
        same(&["config", "get-contexts"]);
        same(&["config", "view"]);
        same(&["config", "current-context"]);
        let bash = tk(&node, &["completion", "bash"]);
        assert!(bash.contains("complete -F _tkctl"), "{bash}");

        // Scale: three pods.
        assert_eq!(
            tk(
                &node,
                &["scale", "deployment/kubernetes-first-app", "--replicas=3"]
            ),
            "deployment.apps/kubernetes-first-app scaled\n"
        );
        eventually("3 pods run", 60, || {
            tk(&node, &["get", "pods", "-l", "run=kubernetes-first-app"])
                .lines()
                .filter(|l| l.contains("Running"))
                .count()
                == 3
        });
        tk(&node, &["delete", "deployment", "kubernetes-first-app"]);
    });
    let out = node.cleanup();
    assert!(out.status.success(), "{}", text(&out.stderr));
}
