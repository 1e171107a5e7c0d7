//! Authentication and authorization: no credentials → 401; the node and proxy identities may
//! do their jobs and nothing more; token users without a role are refused.

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::harness::{raw, Server};

fn code(e: kube::Error) -> u16 {
    crate::harness::status(e).code
}

#[tokio::test(flavor = "multi_thread")]
async fn identities_get_what_their_role_allows() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        "admintoken,alice,1,\"system:masters\"\nplaintoken,bob,2\n",
    )
    .unwrap();
    let s = Server::start_with(&[
        "--token-auth-file",
        tokens.to_str().unwrap(),
        "--node-name",
        "node-1",
    ])
    .await;

    // No credentials at all.
    let anon = s.anonymous().await;
    let err = Api::<Pod>::namespaced(anon.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(code(err), 401);
    let (status, _) = raw(&anon, "GET", "/version", "application/json", vec![]).await;
    assert_eq!(status, 200, "version is public, as in Kubernetes");
    let (status, _) = raw(&anon, "GET", "/api", "application/json", vec![]).await;
    assert_eq!(status, 401);

    // Bearer tokens: a wrong one is 401; a user without a role gets 403 with the reason.
    let err = Api::<Pod>::namespaced(s.with_token("wrong").await, "default")
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(code(err), 401);
    let bob = Api::<Pod>::namespaced(s.with_token("plaintoken").await, "default");
    match bob.list(&ListParams::default()).await.unwrap_err() {
        kube::Error::Api(st) => {
            assert_eq!(st.code, 403);
            assert_eq!(st.message, "pods is forbidden: User \"bob\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"");
        }
        other => panic!("{other:?}"),
    }
    Api::<Pod>::namespaced(s.with_token("admintoken").await, "default")
        .list(&ListParams::default())
        .await
        .unwrap();

    // The kubelet identity: its own node yes, another node no, deployments never.
    let kubelet = s.client_as("kubelet").await;
    let nodes: Api<Node> = Api::all(kubelet.clone());
    let node = |n: &str| serde_json::from_value::<Node>(json!({"metadata": {"name": n}})).unwrap();
    nodes
        .create(&PostParams::default(), &node("node-1"))
        .await
        .unwrap();
    nodes
        .patch_status(
            "node-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})),
        )
        .await
        .unwrap();
    assert_eq!(
        code(
            nodes
                .create(&PostParams::default(), &node("node-2"))
                .await
                .unwrap_err()
        ),
        403
    );
    let cms: Api<ConfigMap> = Api::namespaced(kubelet.clone(), "default");
    cms.list(&ListParams::default()).await.unwrap();
    let cm = serde_json::from_value::<ConfigMap>(json!({"metadata": {"name": "x"}})).unwrap();
    assert_eq!(
        code(cms.create(&PostParams::default(), &cm).await.unwrap_err()),
        403
    );

    // The proxy reads services but cannot change pods.
    let proxy = s.client_as("proxy").await;
    Api::<k8s_openapi::api::core::v1::Service>::all(proxy.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(proxy, "default");
    assert_eq!(
        code(pods.list(&ListParams::default()).await.unwrap_err()),
        403
    );
}
