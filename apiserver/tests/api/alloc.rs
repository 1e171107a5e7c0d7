//! ClusterIPs and NodePorts: unique under concurrency, checked when chosen, freed on delete,
//! and still unique after the apiserver restarts.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::harness::Server;

fn svc(name: &str, ty: &str, node_port: Option<i32>, cluster_ip: Option<&str>) -> Service {
    let mut port = json!({"port": 80, "targetPort": 8080});
    if let Some(np) = node_port {
        port["nodePort"] = np.into();
    }
    let mut spec = json!({"type": ty, "selector": {"app": name}, "ports": [port]});
    if let Some(ip) = cluster_ip {
        spec["clusterIP"] = ip.into();
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn invalid_message(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422, "{}", s.message);
            s.message
        }
        other => panic!("{other:?}"),
    }
}

fn node_port(s: &Service) -> i32 {
    s.spec.as_ref().unwrap().ports.as_ref().unwrap()[0]
        .node_port
        .unwrap()
}

fn cluster_ip(s: &Service) -> String {
    s.spec.as_ref().unwrap().cluster_ip.clone().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_services_never_share_an_address_or_port() {
    let s = Server::start_with(&[
        "--service-cluster-ip-range",
        "10.96.0.0/26",
        "--service-node-port-range",
        "30000-30070",
    ])
    .await;
    let api: Api<Service> = Api::namespaced(s.client().await, "default");
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move {
                api.create(
                    &PostParams::default(),
                    &svc(&format!("s{i}"), "NodePort", None, None),
                )
                .await
            })
        })
        .collect();
    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    for t in tasks {
        let created = t.await.unwrap().unwrap();
        assert!(ips.insert(cluster_ip(&created)), "duplicate cluster IP");
        assert!(ports.insert(node_port(&created)), "duplicate node port");
        assert!((30000..=30070).contains(&node_port(&created)));
    }
    assert!(
        !ips.contains("10.96.0.1"),
        "10.96.0.1 belongs to the kubernetes service"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chosen_values_are_checked_freed_and_remembered_across_restarts() {
    let mut s = Server::start().await;
    let api: Api<Service> = Api::namespaced(s.client().await, "default");
    let pp = PostParams::default();
    let a = api
        .create(&pp, &svc("a", "NodePort", Some(30080), Some("10.96.0.50")))
        .await
        .unwrap();
    assert_eq!(
        (node_port(&a), cluster_ip(&a).as_str()),
        (30080, "10.96.0.50")
    );

    let msg = invalid_message(
        api.create(&pp, &svc("b", "NodePort", Some(30080), None))
            .await
            .unwrap_err(),
    );
    assert!(
        msg.contains(
            "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
        ),
        "{msg}"
    );
    let msg = invalid_message(
        api.create(&pp, &svc("b", "NodePort", Some(80), None))
            .await
            .unwrap_err(),
    );
    assert!(
        msg.contains("The range of valid ports is 30000-32767"),
        "{msg}"
    );
    let msg = invalid_message(
        api.create(&pp, &svc("b", "ClusterIP", None, Some("10.96.0.50")))
            .await
            .unwrap_err(),
    );
    assert!(msg.contains("provided IP is already allocated"), "{msg}");
    let msg = invalid_message(
        api.create(&pp, &svc("b", "ClusterIP", None, Some("192.168.0.1")))
            .await
            .unwrap_err(),
    );
    assert!(msg.contains("is not in the valid range"), "{msg}");
    let msg = invalid_message(
        api.create(&pp, &svc("b", "ClusterIP", Some(30081), None))
            .await
            .unwrap_err(),
    );
    assert!(
        msg.contains("may not be used when `type` is 'ClusterIP'"),
        "{msg}"
    );

    // After a crash the allocations are rebuilt from the stored services.
    s.crash_and_restart().await;
    let api: Api<Service> = Api::namespaced(s.client().await, "default");
    invalid_message(
        api.create(&pp, &svc("b", "NodePort", Some(30080), None))
            .await
            .unwrap_err(),
    );
    invalid_message(
        api.create(&pp, &svc("b", "ClusterIP", None, Some("10.96.0.50")))
            .await
            .unwrap_err(),
    );

    // Switching to ClusterIP gives the node port back; deleting gives the address back.
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"type": "ClusterIP"}})),
    )
    .await
    .unwrap();
    let b = api
        .create(&pp, &svc("b", "NodePort", Some(30080), None))
        .await
        .unwrap();
    assert_eq!(node_port(&b), 30080);
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let c = api
        .create(&pp, &svc("c", "ClusterIP", None, Some("10.96.0.50")))
        .await
        .unwrap();
    assert_eq!(cluster_ip(&c), "10.96.0.50");
    // A service that keeps its type keeps its values through updates.
    let again = api
        .patch(
            "b",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(node_port(&again), 30080);
    assert_eq!(cluster_ip(&again), cluster_ip(&b));
}
