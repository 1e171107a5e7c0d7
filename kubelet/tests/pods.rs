//! Pods for real: the built apiserver and kubelet and a real registry, all inside a network
//! namespace of the test's own (tinykube-e2e's `Node`), running containers through the shim
//! and libcontainer, wired by Debian's CNI plugins. Needs root.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Node as KNode, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{json, Value};
use tinykube_e2e::node::{Node, NODE_IP};
use tinykube_e2e::{answer, http_get};

const BOOTCAMP: &str = "gcr.io/google-samples/kubernetes-bootcamp:v1";
const BUSYBOX: &str = "busybox:latest";

fn pod(name: &str, spec: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"test": "pods"}},
        "spec": spec,
    }))
    .unwrap()
}

fn v(p: &Pod) -> Value {
    serde_json::to_value(p).unwrap()
}

/// Waits until pod `name` satisfies `f` (polling the API), returning it.
async fn wait_pod(api: &Api<Pod>, name: &str, secs: u64, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(Some(p)) = api.get_opt(name).await {
            let p = v(&p);
            if f(&p) {
                return p;
            }
            if Instant::now() > deadline {
                panic!("pod {name} never got there: {:#}", p["status"]);
            }
        } else if Instant::now() > deadline {
            panic!("pod {name} is missing");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_gone(api: &Api<Pod>, name: &str, secs: u64) -> Duration {
    let t = Instant::now();
    while api.get_opt(name).await.unwrap().is_some() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "pod {name} was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.elapsed()
}

/// (reason, message) of the events about pod `name`.
async fn events_of(pods: &Api<Pod>, name: &str) -> Vec<(String, String)> {
    let events: Api<Event> = Api::namespaced(pods.clone().into_client(), "default");
    events
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

fn running(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
        && p["status"]["containerStatuses"]
            .as_array()
            .is_some_and(|cs| cs.iter().all(|c| c["ready"] == true))
}

/// A cgroup file of container `cid` of pod `uid`, in whichever layout the machine has.
fn cgroup_file(node: &Node, uid: &str, cid: &str, v1: (&str, &str), v2: &str) -> String {
    let rel = format!("{}/pod{uid}/{cid}", node.cgroup_root);
    let unified = std::path::Path::new("/sys/fs/cgroup").join(&rel).join(v2);
    let legacy = std::path::Path::new("/sys/fs/cgroup")
        .join(v1.0)
        .join(&rel)
        .join(v1.1);
    std::fs::read_to_string(&legacy)
        .or_else(|_| std::fs::read_to_string(&unified))
        .unwrap_or_else(|e| panic!("{} / {}: {e}", legacy.display(), unified.display()))
        .trim()
        .to_string()
}

fn container_id(p: &Value, i: usize) -> String {
    p["status"]["containerStatuses"][i]["containerID"]
        .as_str()
        .unwrap()
        .trim_start_matches("libcontainer://")
        .to_string()
}

/// What the node made for the pods (netns, mounts, cgroups) is all gone; after `cleanup`,
/// the kubelet's cgroup root too.
fn assert_nothing_left(node: &Node, uids: &[String], cleaned_up: bool) {
    for uid in uids {
        let ns = node.pod_netns(uid);
        assert!(!ns.exists(), "{} is left", ns.display());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = node.root.path().display().to_string();
    assert!(
        !mounts.contains(&root),
        "mounts under {root} are left:\n{}",
        mounts
            .lines()
            .filter(|l| l.contains(&root))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let mut cgroups = vec![];
    for uid in uids {
        cgroups.extend(tinykube_kubelet::runtime::cgroups::dirs(&format!(
            "{}/pod{uid}",
            node.cgroup_root
        )));
    }
    if cleaned_up {
        cgroups.extend(tinykube_kubelet::runtime::cgroups::dirs(&node.cgroup_root));
    }
    assert!(cgroups.is_empty(), "cgroups are left: {cgroups:?}");
    // No shim (their command lines name the node's dirs) outlives its pod.
    let shims: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(" shim ") && c.contains(&root))
        .collect();
    assert!(shims.is_empty(), "shims are left: {shims:?}");
}

#[test]
fn pods_run_share_their_network_and_volumes_and_answer_on_their_ip() {
    let node = Node::start();
    node.net.block_on(async {
        let client = node.apiserver.client("admin").await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let nodes: Api<KNode> = Api::all(client.clone());
        // The node registers and turns Ready.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(n) = nodes.get(&node.name).await {
                let n = serde_json::to_value(n).unwrap();
                let ready = n["status"]["conditions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                if ready {
                    assert_eq!(n["status"]["addresses"][0]["address"], NODE_IP);
                    break;
                }
            }
            assert!(Instant::now() < deadline, "node never Ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let web = pod(
            "web",
            json!({"containers": [{"name": "app", "image": BOOTCAMP, "ports": [{"containerPort": 8080}]}]}),
        );
        let pair = pod(
            "pair",
            json!({
                "volumes": [{"name": "data", "emptyDir": {}}],
                "containers": [
                    {"name": "web", "image": BOOTCAMP, "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                    {"name": "side", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                     "command": ["sh", "-c", "until wget -qO /shared/page http://localhost:8080/; do sleep 0.2; done; sleep 3600"],
                     "volumeMounts": [{"name": "data", "mountPath": "/shared"}]},
                ],
            }),
        );
        for p in [&web, &pair] {
            pods.create(&PostParams::default(), p).await.unwrap();
        }
        let w = wait_pod(&pods, "web", 60, running).await;
        let ip = w["status"]["podIP"].as_str().unwrap().to_string();
        assert!(ip.starts_with("10.244.0."), "{ip}");
        assert_eq!(w["status"]["hostIP"], NODE_IP);
        let cs = &w["status"]["containerStatuses"][0];
        assert!(cs["containerID"]
            .as_str()
            .unwrap()
            .starts_with("libcontainer://"));
        assert!(
            cs["imageID"].as_str().unwrap().contains("@sha256:"),
            "{cs}"
        );
        assert_eq!(cs["restartCount"], 0);
        // The app answers on the pod's IP, and its hostname is the pod's name.
        let reply = answer(&format!("{ip}:8080")).await;
        assert!(
            reply.contains("Hello Kubernetes bootcamp! | Running on: web |"),
            "{reply}"
        );

        // Two containers share localhost and an emptyDir: the sidecar fetched the web
        // container's page over localhost into the shared volume.
        let p = wait_pod(&pods, "pair", 60, running).await;
        let uid = p["metadata"]["uid"].as_str().unwrap().to_string();
        let page = node
            .kubelet_dir()
            .join("pods")
            .join(&uid)
            .join("volumes/data/page");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !std::fs::read_to_string(&page).is_ok_and(|s| s.contains("Running on: pair")) {
            assert!(Instant::now() < deadline, "the sidecar never fetched the page");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Both containers are in one cgroup parent per pod.
        assert_eq!(p["status"]["containerStatuses"].as_array().unwrap().len(), 2);

        // The kubelet told the story in events.
        let reasons: Vec<String> = events_of(&pods, "web").await.into_iter().map(|e| e.0).collect();
        for r in ["Scheduled", "Pulled", "Created", "Started"] {
            assert!(reasons.iter().any(|x| x == r), "no {r} event in {reasons:?}");
        }

        // Deleting the pods tears them down on the node and completes the deletion.
        let web_uid = w["metadata"]["uid"].as_str().unwrap().to_string();
        for n in ["web", "pair"] {
            pods.delete(n, &DeleteParams::default()).await.unwrap();
        }
        for n in ["web", "pair"] {
            wait_gone(&pods, n, 40).await;
        }
        assert!(http_get(&format!("{ip}:8080")).await.is_err());
        node.kill_kubelet();
        assert_nothing_left(&node, &[web_uid, uid], false);
    });
}

#[test]
fn restart_policies_back_off_oom_and_limits() {
    let node = Node::start();
    node.net.block_on(async {
        let client = node.apiserver.client("admin").await;
        let pods: Api<Pod> = Api::namespaced(client, "default");
        let sh = |name: &str, policy: &str, script: &str| {
            pod(
                name,
                json!({"restartPolicy": policy, "containers": [{"name": "c", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", script]}]}),
            )
        };
        let mut limited = sh("limited", "Always", "sleep 3600");
        limited.spec.as_mut().unwrap().containers[0].resources =
            Some(serde_json::from_value(json!({"limits": {"cpu": "500m", "memory": "64Mi"}})).unwrap());
        let mut oom = sh("oom", "Never", "tail /dev/zero");
        oom.spec.as_mut().unwrap().containers[0].resources =
            Some(serde_json::from_value(json!({"limits": {"memory": "32Mi"}})).unwrap());
        for p in [
            sh("crash", "Always", "echo crashing; exit 1"),
            sh("done", "OnFailure", "exit 0"),
            sh("fail", "Never", "exit 3"),
            sh("retry", "OnFailure", "exit 2"),
            pod(
                "badvol",
                json!({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "x"}}],
                       "containers": [{"name": "c", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]}),
            ),
            pod(
                "init",
                json!({
                    "volumes": [{"name": "work", "emptyDir": {"medium": "Memory"}}],
                    "initContainers": [
                        {"name": "first", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", "echo 1 > /work/order"], "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
                        {"name": "second", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", "test -f /work/order && echo 2 >> /work/order"], "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
                    ],
                    "containers": [{"name": "c", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", "grep -q 2 /work/order && sleep 3600"], "volumeMounts": [{"name": "work", "mountPath": "/work"}]}],
                }),
            ),
            limited,
            oom,
        ] {
            pods.create(&PostParams::default(), &p).await.unwrap();
        }
        let state = |p: &Value, k: &str| p["status"]["containerStatuses"][0][k].clone();

        let p = wait_pod(&pods, "done", 60, |p| p["status"]["phase"] == "Succeeded").await;
        assert_eq!(state(&p, "state")["terminated"]["reason"], "Completed");
        assert_eq!(state(&p, "restartCount"), 0);
        // A completed pod gives its network back; its status keeps the IP it had.
        assert!(p["status"]["podIP"].is_string());
        let netns = node.pod_netns(p["metadata"]["uid"].as_str().unwrap());
        let deadline = Instant::now() + Duration::from_secs(15);
        while netns.exists() {
            assert!(
                Instant::now() < deadline,
                "{} stayed after the pod completed",
                netns.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Init containers run in order, each to completion, before the app container.
        let p = wait_pod(&pods, "init", 60, running).await;
        let inits = p["status"]["initContainerStatuses"].as_array().unwrap();
        assert_eq!(inits.len(), 2);
        for i in inits {
            assert_eq!(i["state"]["terminated"]["reason"], "Completed", "{i}");
        }
        let p = wait_pod(&pods, "fail", 60, |p| p["status"]["phase"] == "Failed").await;
        assert_eq!(state(&p, "state")["terminated"]["exitCode"], 3);
        assert_eq!(state(&p, "state")["terminated"]["reason"], "Error");
        let p = wait_pod(&pods, "oom", 60, |p| p["status"]["phase"] == "Failed").await;
        assert_eq!(
            state(&p, "state")["terminated"]["reason"],
            "OOMKilled",
            "{:#}",
            p["status"]
        );

        // Limits reach the container's cgroup.
        let p = wait_pod(&pods, "limited", 60, running).await;
        let (uid, cid) = (
            p["metadata"]["uid"].as_str().unwrap().to_string(),
            container_id(&p, 0),
        );
        let mem = cgroup_file(&node, &uid, &cid, ("memory", "memory.limit_in_bytes"), "memory.max");
        assert_eq!(mem, (64u64 << 20).to_string());
        let cpu = cgroup_file(&node, &uid, &cid, ("cpu", "cpu.cfs_quota_us"), "cpu.max");
        assert!(cpu == "50000" || cpu.starts_with("50000 "), "{cpu}");

        // A crashing container: restarted at once, then after a 10 s back-off, showing
        // CrashLoopBackOff and its last termination meanwhile.
        let p = wait_pod(&pods, "crash", 60, |p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        })
        .await;
        let last = state(&p, "lastState")["terminated"].clone();
        assert_eq!(last["exitCode"], 1);
        assert_eq!(last["reason"], "Error");
        assert_eq!(state(&p, "restartCount"), 1);
        assert!(state(&p, "state")["waiting"]["message"]
            .as_str()
            .unwrap()
            .starts_with("back-off 10s restarting failed container=c pod=crash_default("));
        let t = Instant::now();
        wait_pod(&pods, "crash", 30, |p| {
            p["status"]["containerStatuses"][0]["restartCount"] == 2
        })
        .await;
        assert!(
            t.elapsed() > Duration::from_secs(5),
            "restart 2 came after {:?}, before its back-off",
            t.elapsed()
        );
        let p = wait_pod(&pods, "crash", 30, |p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        })
        .await;
        assert!(state(&p, "state")["waiting"]["message"]
            .as_str()
            .unwrap()
            .starts_with("back-off 20s"));
        // A volume the node cannot provide: the pod stays ContainerCreating, and says why.
        let p = wait_pod(&pods, "badvol", 30, |p| p["status"]["phase"] == "Pending").await;
        assert_eq!(
            state(&p, "state")["waiting"]["reason"],
            "ContainerCreating"
        );
        let failed: Vec<String> = events_of(&pods, "badvol")
            .await
            .into_iter()
            .filter(|(reason, _)| reason == "FailedCreatePodSandBox")
            .map(|(_, message)| message)
            .collect();
        assert!(
            !failed.is_empty()
                && failed.iter().all(|m| m.contains(
                    "only emptyDir, hostPath, configMap, secret, downwardAPI and projected volumes are supported"
                )),
            "{failed:?}"
        );
        // OnFailure restarts a failing container too.
        wait_pod(&pods, "retry", 30, |p| {
            p["status"]["containerStatuses"][0]["restartCount"].as_u64() >= Some(1)
        })
        .await;
        // The logs of the crashing container's instances are on disk in CRI format (the
        // latest two are kept).
        let logs = node.root.path().join("logs");
        let dir = std::fs::read_dir(&logs)
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with("default_crash_"))
            .expect("crash's log dir")
            .path()
            .join("c");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert!(files.len() == 2 && !files.contains(&"0.log".to_string()), "{files:?}");
        let log = std::fs::read_to_string(dir.join(&files[0])).unwrap();
        assert!(log.contains(" stdout F crashing\n"), "{log}");
    });
}

#[test]
fn graceful_deletion_and_kubelet_restarts() {
    // A new network namespace starts with the host's IPv4 forwarding (devconf_inherit_init_net).
    let forwarding = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let node = Node::start();
    node.net.block_on(async {
        let client = node.apiserver.client("admin").await;
        let pods: Api<Pod> = Api::namespaced(client, "default");
        let busy = |name: &str, grace: i64, script: &str| {
            pod(
                name,
                json!({"terminationGracePeriodSeconds": grace, "containers": [{"name": "c", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", script]}]}),
            )
        };
        for p in [
            // As PID 1 of its namespace, sleep ignores SIGTERM: only SIGKILL ends it.
            pod(
                "stubborn",
                json!({"terminationGracePeriodSeconds": 4, "containers": [{"name": "c", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]}),
            ),
            busy("polite", 30, "trap 'exit 0' TERM; while true; do sleep 0.1; done"),
            pod(
                "web",
                json!({"containers": [{"name": "app", "image": BOOTCAMP}]}),
            ),
            busy("doomed", 30, "sleep 3600"),
        ] {
            pods.create(&PostParams::default(), &p).await.unwrap();
        }
        for n in ["stubborn", "polite", "web", "doomed"] {
            wait_pod(&pods, n, 60, running).await;
        }
        pods.delete("stubborn", &DeleteParams::default()).await.unwrap();
        pods.delete("polite", &DeleteParams::default()).await.unwrap();
        let (stubborn, polite) =
            tokio::join!(wait_gone(&pods, "stubborn", 30), wait_gone(&pods, "polite", 30));
        assert!(
            stubborn >= Duration::from_secs(4) && stubborn < Duration::from_secs(9),
            "SIGTERM-ignoring pod took {stubborn:?} with grace 4 s"
        );
        assert!(
            polite < Duration::from_secs(3),
            "a pod that handles SIGTERM took {polite:?}"
        );

        // kill -9 of the kubelet: pods keep serving; a pod force-deleted meanwhile is torn
        // down after the restart; the others keep their containers and restart counts.
        let web = v(&pods.get("web").await.unwrap());
        let doomed_uid = v(&pods.get("doomed").await.unwrap())["metadata"]["uid"]
            .as_str()
            .unwrap()
            .to_string();
        let ip = web["status"]["podIP"].as_str().unwrap().to_string();
        node.kill_kubelet();
        assert!(answer(&format!("{ip}:8080")).await.contains("Running on: web"));
        pods.delete("doomed", &DeleteParams::default().grace_period(0))
            .await
            .unwrap();
        wait_gone(&pods, "doomed", 10).await;
        node.start_kubelet();
        let netns = node.pod_netns(&doomed_uid);
        let deadline = Instant::now() + Duration::from_secs(40);
        while netns.exists() {
            assert!(Instant::now() < deadline, "the orphan's netns stayed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The orphan went at the end of the restarted kubelet's first list, after web's worker
        // was started. A kubelet that keeps web's container writes nothing (its status is as
        // it was, and the apiserver records no change), so there is no event to wait for: the
        // status is watched for 2 s instead, and must not change in that time.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let after = v(&pods.get("web").await.unwrap());
            assert_eq!(container_id(&after, 0), container_id(&web, 0));
            assert_eq!(after["status"]["containerStatuses"][0]["restartCount"], 0);
            assert_eq!(after["status"]["podIP"], web["status"]["podIP"]);
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(answer(&format!("{ip}:8080")).await.contains("Running on: web"));
        let web_uid = web["metadata"]["uid"].as_str().unwrap().to_string();

        // `cleanup` removes everything the kubelet made while pods still run.
        node.kill_kubelet();
        let out = node.cleanup();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(http_get(&format!("{ip}:8080")).await.is_err());
        assert_nothing_left(&node, &[web_uid, doomed_uid], true);
        // Forwarding, on while pods ran, is as it was before the kubelet.
        assert_eq!(
            node.sysctls(&["/proc/sys/net/ipv4/ip_forward"]),
            [forwarding.trim()]
        );
    });
}
