//! Server-side tables: the columns kubectl prints, rows with metadata or the whole object.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::{json, Value};

use crate::harness::Server;

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

async fn get(c: &kube::Client, path: &str, accept: &str) -> Value {
    let req = http::Request::builder()
        .uri(path)
        .header("accept", accept)
        .body(Vec::new())
        .unwrap();
    let resp = c.send(req.map(kube::client::Body::from)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

fn names(t: &Value) -> Vec<String> {
    t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn tables_have_kubectls_columns() {
    let s = Server::start().await;
    let c = s.client().await;
    let svcs: Api<Service> = Api::namespaced(c.clone(), "default");
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "web", "labels": {"run": "web"}}, "spec": {"type": "NodePort", "selector": {"run": "web"}, "ports": [{"port": 8080, "nodePort": 31080}]}})).unwrap();
    svcs.create(&PostParams::default(), &svc).await.unwrap();
    let t = get(
        &c,
        "/api/v1/namespaces/default/services?labelSelector=run%3Dweb&limit=500",
        TABLE,
    )
    .await;
    assert_eq!(t["kind"], "Table");
    assert_eq!(
        names(&t),
        [
            "Name",
            "Type",
            "Cluster-IP",
            "External-IP",
            "Port(s)",
            "Age",
            "Selector"
        ]
    );
    let row = &t["rows"][0];
    let cells: Vec<&str> = row["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cells[0], "web");
    assert_eq!(cells[1], "NodePort");
    assert_eq!(cells[4], "8080:31080/TCP");
    assert_eq!(cells[6], "run=web");
    assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(row["object"]["metadata"]["labels"]["run"], "web");

    // includeObject=Object carries the whole object (kubectl's --sort-by needs it).
    let t = get(
        &c,
        "/api/v1/namespaces/default/services?includeObject=Object",
        TABLE,
    )
    .await;
    assert!(t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["object"]["spec"].is_object()));

    let deploys: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "app"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "x"}},
                 "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "a", "image": "img:1"}, {"name": "b", "image": "img:2"}]}}}
    })).unwrap();
    deploys.create(&PostParams::default(), &d).await.unwrap();
    // The deployment controller owns the status; the table must show whatever it holds.
    let t = get(
        &c,
        "/apis/apps/v1/namespaces/default/deployments/app",
        TABLE,
    )
    .await;
    assert_eq!(
        names(&t),
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    let cells = t["rows"][0]["cells"].as_array().unwrap().clone();
    let d = deploys.get("app").await.unwrap();
    let st = d.status.unwrap_or_default();
    let rv_table = t["rows"][0]["object"]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    if Some(rv_table) == d.metadata.resource_version {
        assert_eq!(cells[1], format!("{}/3", st.ready_replicas.unwrap_or(0)));
        assert_eq!(cells[2], st.updated_replicas.unwrap_or(0));
        assert_eq!(cells[3], st.available_replicas.unwrap_or(0));
    }
    assert_eq!(cells[5], "a,b");
    assert_eq!(cells[6], "img:1,img:2");
    assert_eq!(cells[7], "app=x");

    // Partial object metadata lists, as kube-rs metadata watchers ask.
    let m = get(
        &c,
        "/api/v1/namespaces/default/services",
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
    )
    .await;
    assert_eq!(m["kind"], "PartialObjectMetadataList");
    assert!(m["items"][0]["spec"].is_null());
}
