//! Aggregated discovery (apidiscovery.k8s.io/v2): what kube-rs and kubectl ask for first, with
//! its exact Content-Type, an ETag and 304s; the legacy documents for clients that ask for
//! plain JSON.

use std::process::Command;

use crate::harness::Server;

const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

/// A GET with `accept` (and `If-None-Match`): status, Content-Type, ETag, body.
async fn get(
    c: &kube::Client,
    path: &str,
    accept: &str,
    if_none_match: Option<&str>,
) -> (u16, String, Option<String>, Vec<u8>) {
    let mut req = http::Request::builder()
        .method("GET")
        .uri(path)
        .header("accept", accept);
    if let Some(tag) = if_none_match {
        req = req.header("if-none-match", tag);
    }
    let resp = c
        .send(req.body(Vec::new()).unwrap().map(kube::client::Body::from))
        .await
        .expect("send");
    let header = |h: &str| {
        resp.headers()
            .get(h)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (ct, etag) = (header("content-type").unwrap_or_default(), header("etag"));
    let status = resp.status().as_u16();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, ct, etag, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn aggregated_discovery_as_kube_apiserver_serves_it() {
    let s = Server::start().await;
    let c = s.client().await;

    // kube-rs reads both documents into its own types.
    let core = c.list_core_api_versions_aggregated().await.unwrap();
    assert_eq!(core.items.len(), 1);
    let v1 = &core.items[0].versions[0];
    assert_eq!(v1.version.as_deref(), Some("v1"));
    assert_eq!(v1.freshness.as_deref(), Some("Current"));
    let pods = v1
        .resources
        .iter()
        .find(|r| r.resource.as_deref() == Some("pods"))
        .expect("pods");
    assert_eq!(pods.scope.as_deref(), Some("Namespaced"));
    assert_eq!(pods.short_names, ["po"]);
    assert_eq!(pods.categories, ["all"]);
    let subs: Vec<&str> = pods
        .subresources
        .iter()
        .filter_map(|s| s.subresource.as_deref())
        .collect();
    for sub in ["status", "log", "exec", "portforward", "binding"] {
        assert!(subs.contains(&sub), "{sub} in {subs:?}");
    }
    let nodes = v1
        .resources
        .iter()
        .find(|r| r.resource.as_deref() == Some("nodes"))
        .expect("nodes");
    assert_eq!(nodes.scope.as_deref(), Some("Cluster"));

    let groups = c.list_api_groups_aggregated().await.unwrap();
    let apps = groups
        .items
        .iter()
        .find(|g| g.metadata.as_ref().and_then(|m| m.name.as_deref()) == Some("apps"))
        .expect("the apps group");
    let deployments = apps.versions[0]
        .resources
        .iter()
        .find(|r| r.resource.as_deref() == Some("deployments"))
        .expect("deployments");
    let scale = deployments
        .subresources
        .iter()
        .find(|s| s.subresource.as_deref() == Some("scale"))
        .expect("deployments/scale");
    let kind = scale.response_kind.as_ref().unwrap();
    assert_eq!(
        (
            kind.group.as_deref(),
            kind.version.as_deref(),
            kind.kind.as_deref()
        ),
        (Some("autoscaling"), Some("v1"), Some("Scale"))
    );
    assert!(groups.items.iter().all(|g| g
        .metadata
        .as_ref()
        .is_some_and(|m| m.name.as_deref().is_some_and(|n| !n.is_empty()))));

    // The wire: the exact Content-Type clients check, an ETag, and 304 for a cached copy.
    for path in ["/api", "/apis"] {
        let (code, ct, etag, body) = get(&c, path, AGGREGATED, None).await;
        assert_eq!(code, 200);
        assert_eq!(
            ct,
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        );
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(doc["kind"], "APIGroupDiscoveryList");
        assert_eq!(doc["apiVersion"], "apidiscovery.k8s.io/v2");
        let etag = etag.expect("an ETag");
        let (code, _, again, body) = get(&c, path, AGGREGATED, Some(&etag)).await;
        assert_eq!((code, body.len()), (304, 0), "{path} not modified");
        assert_eq!(again.as_deref(), Some(etag.as_str()));
        let (code, _, _, body) = get(&c, path, AGGREGATED, Some("\"stale\"")).await;
        assert_eq!(code, 200);
        assert!(!body.is_empty());
        // v2beta1 for older clients, legacy for plain JSON.
        let (_, ct, _, body) = get(
            &c,
            path,
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
            None,
        )
        .await;
        assert!(ct.contains("v=v2beta1"), "{ct}");
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(doc["apiVersion"], "apidiscovery.k8s.io/v2beta1");
        let (_, ct, _, body) = get(&c, path, "application/json", None).await;
        assert_eq!(ct, "application/json");
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let legacy = if path == "/api" {
            "APIVersions"
        } else {
            "APIGroupList"
        };
        assert_eq!(doc["kind"], legacy);
    }

    // kubectl 1.32 discovers everything from the two aggregated documents: no request for a
    // group version's legacy document (/api/v1, /apis/apps/v1) on a cold cache.
    let home = tempfile::tempdir().unwrap();
    let out = Command::new("kubectl")
        .args(["api-resources", "-v=6"])
        .env("HOME", home.path())
        .env("KUBECONFIG", s.kubeconfig("admin"))
        .output()
        .expect("kubectl is installed");
    let (stdout, log) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{log}");
    assert!(stdout.contains("deployments"), "{stdout}");
    let gets: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" GET https://"))
        .collect();
    assert!(gets.iter().any(|l| l.contains("/apis?timeout=")), "{log}");
    assert!(
        !gets
            .iter()
            .any(|l| l.contains("/api/v1?") || l.contains("/apis/apps/v1?")),
        "legacy per-version discovery: {gets:#?}"
    );
}

/// `/openapi/v3` and its group-version documents, as kubectl reads them: the index's URLs with
/// their hashes, ETags and 304s, paths that declare `fieldValidation`, and schemas with the
/// group-version-kind, descriptions and patch strategies of Kubernetes' types.
#[tokio::test(flavor = "multi_thread")]
async fn openapi_v3_documents() {
    let s = Server::start().await;
    let c = s.client().await;
    let (code, ct, etag, body) = get(&c, "/openapi/v3", "application/json", None).await;
    assert_eq!((code, ct.as_str()), (200, "application/json"));
    let index: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="), "{url}");
    assert!(index["paths"]["api/v1"].is_object());
    let (code, ..) = get(&c, "/openapi/v3", "application/json", etag.as_deref()).await;
    assert_eq!(code, 304);

    let (code, _, etag, body) = get(&c, &url, "application/json", None).await;
    assert_eq!(code, 200);
    let hash = url.split("hash=").nth(1).unwrap();
    assert_eq!(etag.as_deref(), Some(format!("\"{hash}\"").as_str()));
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["openapi"], "3.0.0");
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        serde_json::json!({"group": "apps", "version": "v1", "kind": "Deployment"})
    );
    assert!(patch["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
    let schemas = &doc["components"]["schemas"];
    let deployment = &schemas["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        deployment["x-kubernetes-group-version-kind"],
        serde_json::json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
    );
    assert_eq!(
        deployment["description"],
        "Deployment enables declarative updates for Pods and ReplicaSets."
    );
    assert_eq!(deployment["properties"]["apiVersion"]["type"], "string");
    let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-list-type"], "map");
    assert_eq!(
        containers["x-kubernetes-list-map-keys"],
        serde_json::json!(["name"])
    );
    assert_eq!(
        containers["items"]["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.core.v1.Container"
    );
    // An inline embedding's fields are the parent's own.
    let probe = &schemas["io.k8s.api.core.v1.Probe"]["properties"];
    assert!(probe["httpGet"].is_object() && probe.get("handler").is_none());
    assert_eq!(
        schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Time"]["format"],
        "date-time"
    );
    let (code, ..) = get(&c, "/openapi/v3/apis/nosuch/v1", "application/json", None).await;
    assert_eq!(code, 404);
    assert_eq!(
        s.anonymous()
            .await
            .send(
                http::Request::get("/openapi/v3")
                    .body(Vec::new())
                    .unwrap()
                    .map(kube::client::Body::from)
            )
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0),
        401
    );
}
