//! Services for real: a whole node (apiserver, kubelet, registry and tinykube-proxy from the
//! built binaries) in a network namespace of its own, real bootcamp pods, the real iptables.
//! Needs root.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{json, Value};
use tinykube_e2e::eventually;
use tinykube_e2e::node::{Node, NODE_IP};

/// `GET /` over HTTP/1.0 from the calling thread's network namespace.
async fn get(addr: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
        .await??;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(3), s.read_to_string(&mut out)).await??;
    Ok(out)
}

/// The pod that answered (bootcamp says `Running on: <hostname>`).
fn answered_by(answer: &str) -> String {
    answer
        .split("Running on: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("not a bootcamp answer: {answer:?}"))
        .to_string()
}

fn service(name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

#[test]
fn services_route_to_ready_pods_and_the_proxy_leaves_no_trace() {
    let node = Node::start();
    // The node's rules before the proxy (the kubelet's masquerade rule is there).
    node.wait_ready();
    let before = node.iptables_rules();
    assert!(!before.is_empty());
    let sysctl_paths: Vec<&str> = tinykube_proxy::proxier::SYSCTLS
        .iter()
        .map(|(p, _)| *p)
        .collect();
    let sysctls_before = node.sysctls(&sysctl_paths);
    node.start_proxy();
    node.net.block_on(async {
        let client = node.apiserver.client("admin").await;
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let services: Api<Service> = Api::namespaced(client.clone(), "default");
        let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let dep: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "gcr.io/google-samples/kubernetes-bootcamp:v1",
                                                            "ports": [{"containerPort": 8080}]}]}}},
        }))
        .unwrap();
        deployments.create(&PostParams::default(), &dep).await.unwrap();
        for s in [
            service("web", json!({"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 8080, "targetPort": 8080}]})),
            service("sticky", json!({"selector": {"app": "web"}, "sessionAffinity": "ClientIP", "ports": [{"port": 80, "targetPort": 8080}]})),
            service("lb", json!({"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 8081, "targetPort": 8080}]})),
            service("nothing", json!({"type": "NodePort", "selector": {"app": "none"}, "ports": [{"port": 80}]})),
        ] {
            services.create(&PostParams::default(), &s).await.unwrap();
        }
        eventually(90, "3 ready endpoints", || async {
            endpoints.get("web").await.ok().filter(|e| {
                e.subsets.iter().flatten().flat_map(|s| s.addresses.iter().flatten()).count() == 3
            })
        })
        .await;
        // Ready without a readiness probe means running, a moment before the app listens:
        // wait until each pod answers on its own address.
        let ips: Vec<String> = endpoints
            .get("web")
            .await
            .unwrap()
            .subsets
            .into_iter()
            .flatten()
            .flat_map(|s| s.addresses.into_iter().flatten())
            .map(|a| a.ip)
            .collect();
        for ip in &ips {
            eventually(20, &format!("pod {ip} answers"), || async {
                get(&format!("{ip}:8080")).await.ok()
            })
            .await;
        }
        let web = services.get("web").await.unwrap();
        let spec = web.spec.unwrap();
        let cluster_ip = spec.cluster_ip.unwrap();
        let node_port = spec.ports.unwrap()[0].node_port.unwrap();

        // NodePort on the node's address and on 127.0.0.1, and the cluster IP: all answer.
        for addr in [
            format!("{NODE_IP}:{node_port}"),
            format!("127.0.0.1:{node_port}"),
            format!("{cluster_ip}:8080"),
        ] {
            eventually(20, &format!("{addr} answers"), || async {
                get(&addr).await.ok().filter(|a| a.contains("Hello Kubernetes bootcamp!"))
            })
            .await;
        }
        // Spread over the three pods (once the proxy has the third endpoint: Endpoints and
        // the slice the proxy reads are written a moment apart).
        eventually(20, "answers from the three pods", || async {
            let mut seen = BTreeSet::new();
            for _ in 0..60 {
                seen.insert(answered_by(&get(&format!("{cluster_ip}:8080")).await.unwrap()));
            }
            (seen.len() == 3).then_some(seen)
        })
        .await;

        // From inside a pod: the cluster IP reaches the service's pods.
        let pod_uid = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items[0]
            .metadata
            .uid
            .clone()
            .unwrap();
        let pod_netns = node.pod_netns(&pod_uid);
        let from_pod = {
            let addr = format!("{cluster_ip}:8080");
            std::thread::spawn(move || {
                let ns = std::fs::File::open(&pod_netns).unwrap();
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async {
                        let mut seen = BTreeSet::new();
                        for _ in 0..30 {
                            seen.insert(answered_by(&get(&addr).await.unwrap()));
                        }
                        seen
                    })
            })
            .join()
            .unwrap()
        };
        assert!(!from_pod.is_empty());

        // ClientIP affinity: one client, one pod.
        let sticky = services.get("sticky").await.unwrap().spec.unwrap().cluster_ip.unwrap();
        let mut seen = BTreeSet::new();
        for _ in 0..20 {
            seen.insert(answered_by(&get(&format!("{sticky}:80")).await.unwrap()));
        }
        assert_eq!(seen.len(), 1, "an affine service answered from {seen:?}");

        // LoadBalancer: the node's address is its ingress, and it answers there.
        eventually(10, "the LoadBalancer ingress", || async {
            services.get("lb").await.ok().filter(|s| {
                serde_json::to_value(&s.status).unwrap()["loadBalancer"]["ingress"][0]["ip"] == NODE_IP
            })
        })
        .await;
        assert!(get(&format!("{NODE_IP}:8081")).await.unwrap().contains("bootcamp"));

        // No endpoints: refused at once rather than hanging.
        let nothing = services.get("nothing").await.unwrap().spec.unwrap().cluster_ip.unwrap();
        let t = Instant::now();
        let err = get(&format!("{nothing}:80")).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
        assert!(t.elapsed() < Duration::from_secs(1));

        // The proxy dies and comes back: not one connection attempt fails meanwhile.
        let addr = format!("{sticky}:80");
        let prober = {
            let addr = addr.clone();
            tokio::spawn(async move {
                let mut fails = 0;
                let mut n = 0;
                let t = Instant::now();
                while t.elapsed() < Duration::from_secs(4) {
                    n += 1;
                    if get(&addr).await.is_err() {
                        fails += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (n, fails)
            })
        };
        // Pacing, the subject of this step: the prober runs before, during and after the proxy's
        // absence (half a second each way); it waits on nothing, it is the observation window.
        tokio::time::sleep(Duration::from_millis(500)).await;
        node.kill_proxy();
        tokio::time::sleep(Duration::from_millis(500)).await;
        node.start_proxy();
        let (n, fails) = prober.await.unwrap();
        assert_eq!(fails, 0, "{fails} of {n} connections failed across a proxy restart");

        // Deleting the service makes it unreachable.
        services.delete("web", &DeleteParams::default()).await.unwrap();
        eventually(10, "the deleted service stops answering", || async {
            let gone = get(&format!("{NODE_IP}:{node_port}")).await.is_err()
                && get(&format!("{cluster_ip}:8080")).await.is_err();
            gone.then_some(())
        })
        .await;
        // The apiserver dies: the rules in force stay and keep serving.
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(node.apiserver.pid()),
            nix::sys::signal::SIGKILL,
        )
        .unwrap();
        // Requests paced over a second and a half without the apiserver (pacing, not a wait).
        for _ in 0..3 {
            assert!(get(&addr).await.unwrap().contains("bootcamp"));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    // cleanup leaves the node's rules exactly as they were before the proxy.
    node.kill_proxy();
    let out = node.proxy_cleanup();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(node.iptables_rules(), before);
    assert_eq!(node.sysctls(&sysctl_paths), sysctls_before);
}
