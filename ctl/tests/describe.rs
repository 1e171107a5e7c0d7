//! `tkctl describe` against kubectl 1.32's, on a whole node in its own network namespace: the
//! tutorial's deployment, exposed and labelled, described by both clients and compared line
//! by line, with only time-relative values (ages, dates) masked. Needs root.

mod common;

use common::{cli, eventually, text, tk};
use serde_json::Value;
use tinykube_e2e::node::Node;

const APP: &str = "kubernetes-bootcamp";

/// What the configMap, secret and serviceAccount describers are compared on: text and
/// binary data, an empty map, secrets of two types, an account with pull and mountable
/// secrets (one of them missing) and annotations.
const CONFIG_OBJECTS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels: {app: web, tier: front}
  annotations: {team: platform}
data:
  index.html: |
    <h1>hello</h1>
    <p>from a config map</p>
  mode: fast
binaryData:
  logo.png: iVBORw0KGgo=
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: empty
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  labels: {app: web}
type: Opaque
data:
  password: czNjcjN0IQ==
  username: YWRtaW4=
  empty: ""
---
apiVersion: v1
kind: Secret
metadata:
  name: registry
type: kubernetes.io/dockerconfigjson
data:
  .dockerconfigjson: eyJhdXRocyI6e319
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: builder
  annotations: {description: builds things}
imagePullSecrets:
- name: registry
secrets:
- name: creds
- name: gone
"#;

/// Is `s` (31 bytes) a Go RFC1123Z date: `Mon, 02 Jan 2006 15:04:05 -0700`?
fn is_date(s: &[u8]) -> bool {
    const SHAPE: &[u8] = b"Aaa, 00 Aaa 0000 00:00:00 +0000";
    s.len() == SHAPE.len()
        && s.iter().zip(SHAPE).all(|(c, p)| match p {
            b'A' => c.is_ascii_uppercase(),
            b'a' => c.is_ascii_lowercase(),
            b'0' => c.is_ascii_digit(),
            b'+' => *c == b'+' || *c == b'-',
            other => c == other,
        })
}

fn mask_dates(line: &str) -> String {
    let b = line.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if i + 31 <= b.len() && is_date(&b[i..i + 31]) {
            // Same width: the alignment around a date is still compared.
            out.push_str("<date>                         ");
            i += 31;
        } else {
            let c = line[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The output with time-relative values masked, the same way for both clients: dates, and
/// the Age column of the events and node-pods tables (whose width follows the ages, so
/// these tables' cells are compared, not their padding).
fn normalise(out: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut age_column: Option<usize> = None;
    for line in out.lines() {
        let line = mask_dates(line);
        let cells: Vec<&str> = line
            .trim()
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        if let Some(age) = age_column {
            if line.starts_with("  ") && !line.trim().is_empty() {
                let masked: Vec<&str> = cells
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        if i == age && !c.starts_with('-') {
                            "<age>"
                        } else {
                            c
                        }
                    })
                    .collect();
                lines.push(format!("  {}", masked.join(" | ")));
                continue;
            }
            age_column = None;
        }
        if line.starts_with("  ") {
            if let Some(age) = cells.iter().position(|c| *c == "Age") {
                age_column = Some(age);
                lines.push(format!("  {}", cells.join(" | ")));
                continue;
            }
        }
        lines.push(line);
    }
    lines
}

#[test]
fn masking_keeps_what_is_not_time() {
    let ours = "Start Time:  Tue, 24 Nov 2026 23:22:09 +0000\nEvents:\n  Type    Reason     Age   From     Message\n  ----    ------     ----  ----     -------\n  Normal  Scheduled  59s   sched    Assigned\nDone:  x\n";
    let theirs = "Start Time:  Tue, 24 Nov 2026 23:22:10 +0000\nEvents:\n  Type    Reason     Age  From     Message\n  ----    ------     ---  ----     -------\n  Normal  Scheduled  1m   sched    Assigned\nDone:  x\n";
    assert_eq!(normalise(ours).len(), 6);
    assert_ne!(normalise(ours), normalise(theirs), "the dashes differ");
    let theirs = "Start Time:  Tue, 24 Nov 2026 23:22:10 +0000\nEvents:\n  Type    Reason     Age  From     Message\n  ----    ------     ----  ----     -------\n  Normal  Scheduled  1m   sched    Assigned\nDone:  x\n";
    assert_eq!(normalise(ours), normalise(theirs));
    assert_ne!(
        normalise(ours),
        normalise(&theirs.replace("Assigned", "Other")),
        "messages are compared"
    );
    assert_ne!(
        normalise("Name:  a\n"),
        normalise("Name:   a\n"),
        "padding is compared"
    );
}

/// Both clients' answers to `args`, normalised; retried while the node is still settling
/// (a status that changes between the two calls). Both must succeed.
fn compare(node: &Node, args: &[&str]) {
    compare_as(node, args, true)
}

/// As [`compare`], for a case about an error: both must fail, the same way.
fn compare_error(node: &Node, args: &[&str]) {
    compare_as(node, args, false)
}

fn compare_as(node: &Node, args: &[&str], success: bool) {
    let run = |prog: &str| {
        let out = cli(node, prog, args);
        (
            normalise(&text(&out.stdout)),
            text(&out.stderr),
            out.status.code(),
        )
    };
    let mut last = None;
    for _ in 0..10 {
        let (ours, theirs) = (run("tkctl"), run("kubectl"));
        if ours == theirs {
            assert!(
                !ours.0.is_empty() || !ours.1.is_empty(),
                "{args:?}: no output at all"
            );
            assert_eq!(
                ours.2 == Some(0),
                success,
                "{args:?}: both clients answered {:?}: {}",
                ours.2,
                ours.1
            );
            return;
        }
        last = Some((ours, theirs));
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    let (ours, theirs) = last.unwrap();
    for (i, (a, b)) in ours.0.iter().zip(&theirs.0).enumerate() {
        assert_eq!(a, b, "{args:?}: line {} differs", i + 1);
    }
    assert_eq!(ours, theirs, "{args:?}");
}

#[test]
fn describe_like_kubectl() {
    let node = Node::start();
    node.wait_ready();
    node.net.run(|| {
        tk(
            &node,
            &[
                "run",
                APP,
                "--image=gcr.io/google-samples/kubernetes-bootcamp:v1",
                "--port=8080",
            ],
        );
        eventually("the pod runs", 90, || {
            tk(&node, &["get", "pods"])
                .lines()
                .skip(1)
                .any(|l| l.contains("1/1") && l.contains("Running"))
        });
        let pod = tk(&node, &["get", "pods", "-o", "name"])
            .trim()
            .trim_start_matches("pod/")
            .to_string();
        tk(
            &node,
            &[
                "expose",
                &format!("deployment/{APP}"),
                "--type=NodePort",
                "--port",
                "8080",
            ],
        );
        tk(&node, &["label", "pod", &pod, "app=v1"]);
        eventually("the service has an endpoint", 30, || {
            tk(&node, &["describe", "service", APP]).contains(":8080\nSession Affinity:")
        });

        // What a user reads: the events, the replica sets, the service's endpoint.
        let described = tk(&node, &["describe", "pod", &pod]);
        assert!(described.starts_with(&format!("Name:             {pod}\n")));
        assert!(described.contains("\nLabels:           app=v1\n"), "{described}");
        assert!(described.contains("  Normal  Scheduled  "), "{described}");
        let described = tk(&node, &["describe", "deployment", APP]);
        let rs = tk(&node, &["get", "rs", "-o", "name"])
            .trim()
            .trim_start_matches("replicaset.apps/")
            .to_string();
        assert!(
            described.contains(&format!("NewReplicaSet:   {rs} (1/1 replicas created)\n")),
            "{described}"
        );

        // The apiserver answers kubectl's events field selector: the pod's events only.
        let obj: Value = serde_json::from_str(&tk(&node, &["get", "pod", &pod, "-o", "json"])).unwrap();
        let uid = obj["metadata"]["uid"].as_str().unwrap().to_string();
        let events = |uid: &str| -> Vec<Value> {
            let uri = format!("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3D{pod}%2CinvolvedObject.namespace%3Ddefault%2CinvolvedObject.uid%3D{uid}&limit=500");
            let out = cli(&node, "kubectl", &["get", "--raw", &uri]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            let list: Value = serde_json::from_slice(&out.stdout).unwrap();
            list["items"].as_array().unwrap().clone()
        };
        let mine = events(&uid);
        assert!(!mine.is_empty());
        assert!(mine
            .iter()
            .all(|e| e["involvedObject"]["name"] == pod.as_str()
                && e["involvedObject"]["uid"] == uid.as_str()));
        assert!(events("00000000-0000-0000-0000-000000000000").is_empty());

        // Config maps, secrets and service accounts, with what their describers show: data
        // and binary data, secret sizes, pull and mountable secrets, tokens.
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("config.yaml");
        std::fs::write(&manifest, CONFIG_OBJECTS).unwrap();
        tk(&node, &["apply", "-f", manifest.to_str().unwrap()]);

        // The same lines as kubectl's, ages and dates masked.
        let by_slash = format!("pod/{pod}");
        for args in [
            vec!["describe", "deployment"],
            vec!["describe", "deployment", APP],
            vec!["describe", "pods"],
            vec!["describe", "pod", &pod],
            vec!["describe", &by_slash],
            vec!["describe", "pods", "kubernetes"],
            vec!["describe", "pods", "-l", "app=v1"],
            vec!["describe", "pods", "-l", "app=v2"],
            vec!["describe", "service"],
            vec!["describe", "svc", APP],
            vec!["describe", "replicaset"],
            vec!["describe", "rs", &rs],
            vec!["describe", "endpoints", APP],
            vec!["describe", "node"],
            vec!["describe", "namespace", "default"],
            vec!["describe", "deploy,svc"],
            vec!["describe", "pods", "-A"],
            vec!["describe", "configmap"],
            vec!["describe", "cm", "settings"],
            vec!["describe", "cm", "empty"],
            vec!["describe", "secret"],
            vec!["describe", "secret", "creds"],
            vec!["describe", "secret", "registry"],
            vec!["describe", "serviceaccount"],
            vec!["describe", "sa", "builder"],
            vec!["describe", "sa", "default"],
        ] {
            compare(&node, &args);
        }
        for args in [
            vec!["describe", "pod", "nope"],
            vec!["describe", "svc", APP, "nope"],
            vec!["describe", "widgets"],
        ] {
            compare_error(&node, &args);
        }
        tk(&node, &["delete", "deployment", APP]);
        tk(&node, &["delete", "service", APP]);
        eventually("the pods are gone", 60, || {
            tk(&node, &["get", "pods", "-o", "name"]).trim().is_empty()
        });
    });
    let out = node.cleanup();
    assert!(out.status.success(), "{}", text(&out.stderr));
}
