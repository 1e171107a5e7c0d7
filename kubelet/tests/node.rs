//! Node registration, status and Lease against the real apiserver, with the node's own
//! credentials (the kubelet.kubeconfig the apiserver issues for `--node-name`).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use tinykube_e2e::{built_binary, Apiserver};
use tinykube_kubelet::node::{self, NodeConfig};

#[tokio::test(flavor = "multi_thread")]
async fn the_node_registers_heartbeats_and_renews_its_lease() {
    let api = Apiserver::start(
        &built_binary("tinykube-apiserver"),
        &["--node-name", "tiny-test"],
    );
    let kubelet = api.client("kubelet").await;
    let cfg = NodeConfig {
        name: "tiny-test".into(),
        node_ip: node::default_node_ip(),
        pod_cidr: "10.244.0.0/24".into(),
        max_pods: 110,
        kubelet_port: 10250,
        root_dir: "/".into(),
    };
    let facts = node::host_facts(std::path::Path::new("/"));
    let created = node::register(&kubelet, &cfg, &facts).await.unwrap();
    assert_eq!(created.metadata.name.as_deref(), Some("tiny-test"));
    // Registering again (a kubelet restart) is fine.
    node::register(&kubelet, &cfg, &facts).await.unwrap();
    node::post_status(
        &kubelet,
        &cfg,
        &facts,
        true,
        "kubelet is posting ready status",
    )
    .await
    .unwrap();

    // What an admin sees.
    let admin = api.client("admin").await;
    let n = Api::<Node>::all(admin.clone())
        .get("tiny-test")
        .await
        .unwrap();
    let status = n.status.unwrap();
    let ready = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("True", Some("KubeletReady"))
    );
    assert_eq!(
        status.node_info.unwrap().container_runtime_version,
        "libcontainer://0.7.0"
    );
    assert_eq!(status.capacity.unwrap()["pods"].0, "110");

    // The Lease: created, then renewed.
    let first = node::renew_lease(&kubelet, "tiny-test").await.unwrap();
    // Time itself is the subject: a renewal later than the first has a later renewTime.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = node::renew_lease(&kubelet, "tiny-test").await.unwrap();
    let renew = |l: &Lease| l.spec.as_ref().unwrap().renew_time.clone().unwrap().0;
    assert!(renew(&second) > renew(&first));
    let seen = Api::<Lease>::namespaced(admin, "kube-node-lease")
        .get("tiny-test")
        .await
        .unwrap();
    assert_eq!(
        seen.spec.unwrap().holder_identity.as_deref(),
        Some("tiny-test")
    );

    // The node's credentials are its own: it cannot register another node.
    let other = NodeConfig {
        name: "someone-else".into(),
        ..cfg
    };
    match node::register(&kubelet, &other, &facts).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403),
        r => panic!("registering another node: {r:?}"),
    }
}
