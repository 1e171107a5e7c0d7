//! The protobuf wire on the real apiserver: answers in protobuf to clients that prefer it, the
//! same objects as JSON, and protobuf bodies with their errors.

use serde_json::json;
use tinykube_apiserver::protobuf;

use crate::harness::Server;

/// A request with the given headers; the status, Content-Type and body bytes.
async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, String, Vec<u8>) {
    let mut req = http::Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .send(req.body(body).unwrap().map(kube::client::Body::from))
        .await
        .expect("send");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, ct, bytes.to_vec())
}

const PB: &str = "application/vnd.kubernetes.protobuf";
const PB_FIRST: &str = "application/vnd.kubernetes.protobuf,application/json";

#[tokio::test(flavor = "multi_thread")]
async fn protobuf_bodies_and_answers_mean_what_json_means() {
    let s = Server::start().await;
    let c = s.client().await;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "pb", "labels": {"a": "b"}},
                    "data": {"k": "v", "empty": ""}});
    let body = protobuf::encode(&cm).unwrap();
    let path = "/api/v1/namespaces/default/configmaps";
    let (code, ct, created) = send(
        &c,
        "POST",
        path,
        &[("content-type", PB), ("accept", PB_FIRST)],
        body,
    )
    .await;
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&created));
    assert_eq!(ct, PB);
    let created = protobuf::decode(&created).unwrap();
    assert_eq!(created["data"], cm["data"]);
    assert!(created["metadata"]["uid"]
        .as_str()
        .is_some_and(|u| !u.is_empty()));

    // The same object as JSON and as protobuf, from GET and LIST.
    let (_, ct, json_bytes) = send(
        &c,
        "GET",
        &format!("{path}/pb"),
        &[("accept", "application/json")],
        vec![],
    )
    .await;
    assert_eq!(ct, "application/json");
    let as_json: serde_json::Value = serde_json::from_slice(&json_bytes).unwrap();
    let (_, ct, pb_bytes) = send(
        &c,
        "GET",
        &format!("{path}/pb"),
        &[("accept", PB_FIRST)],
        vec![],
    )
    .await;
    assert_eq!(ct, PB);
    assert!(pb_bytes.starts_with(b"k8s\0"));
    assert_eq!(protobuf::decode(&pb_bytes).unwrap(), as_json);
    let only_pb = format!("{path}?fieldSelector=metadata.name%3Dpb");
    let (_, ct, list) = send(&c, "GET", &only_pb, &[("accept", PB_FIRST)], vec![]).await;
    assert_eq!(ct, PB);
    let list = protobuf::decode(&list).unwrap();
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["items"][0], {
        let mut item = as_json.clone();
        item.as_object_mut().unwrap().remove("kind");
        item.as_object_mut().unwrap().remove("apiVersion");
        item
    });
    // Tables stay JSON, whatever else the client accepts.
    let (_, ct, _) = send(
        &c,
        "GET",
        path,
        &[(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/vnd.kubernetes.protobuf",
        )],
        vec![],
    )
    .await;
    assert_eq!(ct, "application/json");

    // A body that is not protobuf at all: 400 in Kubernetes' words, nothing stored.
    let (code, ct, body) = send(
        &c,
        "POST",
        path,
        &[("content-type", PB)],
        b"{\"kind\":\"ConfigMap\"}".to_vec(),
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(ct, "application/json");
    let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status["reason"], "BadRequest");
    assert!(
        status["message"].as_str().unwrap().starts_with("ConfigMap in version \"v1\" cannot be handled as a ConfigMap: provided data does not appear to be a protobuf message"),
        "{status}"
    );
    // A media type nobody speaks: 415 naming the two that are.
    let (code, _, body) = send(
        &c,
        "POST",
        path,
        &[("content-type", "application/cbor")],
        vec![1],
    )
    .await;
    assert_eq!(code, 415);
    let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        status["message"],
        "the body of the request was in an unknown format - accepted media types include: application/json, application/vnd.kubernetes.protobuf"
    );

    // Delete with protobuf DeleteOptions, as typed Go clients send them.
    let opts = protobuf::encode(
        &json!({"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Foreground"}),
    )
    .unwrap();
    let (code, ct, deleted) = send(
        &c,
        "DELETE",
        &format!("{path}/pb"),
        &[("content-type", PB), ("accept", PB_FIRST)],
        opts,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(ct, PB);
    // Foreground: the options were read, so the object waits for its dependents first.
    let deleted = protobuf::decode(&deleted).unwrap();
    assert_eq!(
        deleted["metadata"]["finalizers"],
        json!(["foregroundDeletion"]),
        "{deleted}"
    );
    tinykube_e2e::eventually(20, "the configmap is gone", || async {
        (send(&c, "GET", &format!("{path}/pb"), &[], vec![]).await.0 == 404).then_some(())
    })
    .await;
}
