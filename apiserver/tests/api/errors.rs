//! Bad input gets Kubernetes' answer: the right code, a Status with a reason, and per-field causes.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use crate::harness::{raw, status, Server};

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("valid object")
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_objects_name_every_bad_field() {
    let s = Server::start().await;
    let c = s.client().await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let bad: Pod = obj(json!({
        "metadata": {"name": "Bad_Name", "labels": {"app": "has space"}},
        "spec": {"restartPolicy": "Sometimes", "containers": [{"name": "c", "ports": [{"containerPort": 70000}]}]}
    }));
    let st = status(pods.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!(st.code, 422);
    assert_eq!(st.reason, "Invalid");
    assert!(
        st.message.starts_with("Pod \"Bad_Name\" is invalid: ["),
        "{}",
        st.message
    );
    let causes = st.details.unwrap().causes;
    let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
    for f in [
        "metadata.name",
        "metadata.labels",
        "spec.restartPolicy",
        "spec.containers[0].image",
        "spec.containers[0].ports[0].containerPort",
    ] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
    let restart = causes
        .iter()
        .find(|c| c.field == "spec.restartPolicy")
        .unwrap();
    assert_eq!(restart.reason, "FieldValueNotSupported");
    assert!(
        pods.get_opt("Bad_Name").await.unwrap().is_none(),
        "nothing was stored"
    );

    // A deployment whose selector does not select its own template.
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let d: Deployment = obj(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "other"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}
    }));
    let st = status(
        deploys
            .create(&PostParams::default(), &d)
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 422);
    assert!(
        st.message
            .contains("`selector` does not match template `labels`"),
        "{}",
        st.message
    );

    // Services: two unnamed ports, a bad target port.
    let svcs: Api<Service> = Api::namespaced(c, "default");
    let svc: Service = obj(
        json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80, "targetPort": "Not_A_Port"}, {"port": 81}]}}),
    );
    let st = status(svcs.create(&PostParams::default(), &svc).await.unwrap_err());
    let fields: Vec<String> = st
        .details
        .unwrap()
        .causes
        .iter()
        .map(|c| c.field.clone())
        .collect();
    assert!(
        fields.contains(&"spec.ports[0].name".to_string()),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"spec.ports[0].targetPort".to_string()),
        "{fields:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_are_refused_with_the_right_code() {
    let s = Server::start().await;
    let c = s.client().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let (code, body) = raw(
        &c,
        "POST",
        cms,
        "application/json",
        b"{\"metadata\": {".to_vec(),
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(body["reason"], "BadRequest");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("cannot be handled as a ConfigMap"),
        "{body}"
    );

    let big = json!({"metadata": {"name": "big"}, "data": {"k": "x".repeat(4 * 1024 * 1024)}});
    let (code, body) = raw(
        &c,
        "POST",
        cms,
        "application/json",
        serde_json::to_vec(&big).unwrap(),
    )
    .await;
    assert_eq!(code, 413);
    assert_eq!(body["reason"], "RequestEntityTooLarge");

    let (code, body) = raw(
        &c,
        "GET",
        "/api/v1/namespaces/default/widgets",
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(body["kind"], "Status");
    let (code, _) = raw(
        &c,
        "GET",
        "/apis/apps/v9/deployments",
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(code, 404);

    let (code, body) = raw(
        &c,
        "POST",
        cms,
        "application/yaml",
        b"metadata: {}".to_vec(),
    )
    .await;
    assert_eq!(code, 415, "{body}");

    // Strict field validation rejects unknown fields and names them.
    let typo = json!({"metadata": {"name": "t"}, "dta": {"k": "v"}});
    let (code, body) = raw(
        &c,
        "POST",
        &format!("{cms}?fieldValidation=Strict"),
        "application/json",
        serde_json::to_vec(&typo).unwrap(),
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"dta\""),
        "{body}"
    );

    // Wrong namespace in the body, and an object POSTed to another kind's collection.
    let other_ns = json!({"metadata": {"name": "x", "namespace": "kube-system"}});
    let (code, _) = raw(
        &c,
        "POST",
        cms,
        "application/json",
        serde_json::to_vec(&other_ns).unwrap(),
    )
    .await;
    assert_eq!(code, 400);
    let wrong_kind = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}});
    let (code, _) = raw(
        &c,
        "POST",
        cms,
        "application/json",
        serde_json::to_vec(&wrong_kind).unwrap(),
    )
    .await;
    assert_eq!(code, 400);

    // Creating in a namespace that does not exist.
    let (code, body) = raw(
        &c,
        "POST",
        "/api/v1/namespaces/nope/configmaps",
        "application/json",
        br#"{"metadata":{"name":"x"}}"#.to_vec(),
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(body["message"], "namespaces \"nope\" not found");

    // Already exists.
    let api: Api<ConfigMap> = Api::namespaced(c, "default");
    api.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "dup"}})),
    )
    .await
    .unwrap();
    let st = status(
        api.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "dup"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (409, "AlreadyExists"));
}

/// A POST and the `Warning` headers of its answer.
async fn post_warned(c: &kube::Client, path: &str, body: serde_json::Value) -> (u16, Vec<String>) {
    post_bytes_warned(c, path, serde_json::to_vec(&body).unwrap()).await
}

/// A POST of JSON bytes as written (duplicate keys and all) and its answer's warnings.
async fn post_bytes_warned(c: &kube::Client, path: &str, body: Vec<u8>) -> (u16, Vec<String>) {
    let req = http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let resp = c
        .send(req.map(kube::client::Body::from))
        .await
        .expect("send");
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    (resp.status().as_u16(), warnings)
}

#[tokio::test(flavor = "multi_thread")]
async fn questionable_input_is_accepted_with_kube_apiservers_warnings() {
    let s = Server::start().await;
    let c = s.client().await;
    // fieldValidation=Warn: the object is created, the unknown fields are named in warnings.
    let typo = json!({"metadata": {"name": "t"}, "dta": {"k": "v"}, "data": {"a": "b"}});
    let (code, warnings) = post_warned(
        &c,
        "/api/v1/namespaces/default/configmaps?fieldValidation=Warn",
        typo.clone(),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(warnings, [r#"299 - "unknown field \"dta\"""#]);
    // Ignore says nothing.
    let (code, warnings) = post_warned(
        &c,
        "/api/v1/namespaces/default/configmaps?fieldValidation=Ignore",
        json!({"metadata": {"name": "u"}, "dta": {}}),
    )
    .await;
    assert_eq!((code, warnings.len()), (201, 0));
    // Duplicate keys, unknown fields too, in the order met; Warn is the default without the
    // parameter (since Kubernetes 1.23), Strict refuses with all of them.
    let dup = |name: &str| {
        format!(
            r#"{{"metadata": {{"name": "{name}", "name": "{name}"}}, "data": {{"a": "1", "b": "2", "a": "3"}}, "dta": 1, "dta": 2}}"#
        )
        .into_bytes()
    };
    let (code, warnings) =
        post_bytes_warned(&c, "/api/v1/namespaces/default/configmaps", dup("w")).await;
    assert_eq!(code, 201);
    assert_eq!(
        warnings,
        [
            r#"299 - "duplicate field \"metadata.name\"""#,
            r#"299 - "duplicate field \"data.a\"""#,
            r#"299 - "unknown field \"dta\"""#,
        ]
    );
    let kept: serde_json::Value = c
        .request(
            http::Request::get("/api/v1/namespaces/default/configmaps/w")
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(kept["data"]["a"], "3", "the last of a repeated key is kept");
    let (code, body) = raw(
        &c,
        "POST",
        "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
        "application/json",
        dup("s"),
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(
        body["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: duplicate field \"metadata.name\", duplicate field \"data.a\", unknown field \"dta\""
    );
    // Memory in fractional bytes: accepted, with the warning kube-apiserver gives, for pods
    // and for the pod templates of workloads.
    let container = json!({"name": "c", "image": "busybox",
        "resources": {"limits": {"memory": "500m"}, "requests": {"memory": "0.1", "ephemeral-storage": "1Gi"}}});
    let (code, warnings) = post_warned(
        &c,
        "/api/v1/namespaces/default/pods",
        json!({"metadata": {"name": "half"}, "spec": {"containers": [container]}}),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(
        warnings,
        [
            r#"299 - "spec.containers[0].resources.limits[memory]: fractional byte value \"500m\" is invalid, must be an integer""#,
            r#"299 - "spec.containers[0].resources.requests[memory]: fractional byte value \"100m\" is invalid, must be an integer""#,
        ]
    );
    let (code, warnings) = post_warned(
        &c,
        "/apis/apps/v1/namespaces/default/deployments",
        json!({"metadata": {"name": "half"}, "spec": {
            "selector": {"matchLabels": {"app": "h"}},
            "template": {"metadata": {"labels": {"app": "h"}}, "spec": {"containers": [container]}}}}),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0]
        .starts_with(r#"299 - "spec.template.spec.containers[0].resources.limits[memory]: "#));
}

#[tokio::test(flavor = "multi_thread")]
async fn selectors_filter_lists_and_bad_ones_are_400() {
    let s = Server::start().await;
    let c = s.client().await;
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    for (name, labels) in [
        ("a", json!({"app": "web", "tier": "front"})),
        ("b", json!({"app": "web", "tier": "back"})),
        ("c", json!({"app": "db"})),
        ("d", json!({})),
    ] {
        api.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": name, "labels": labels}})),
        )
        .await
        .unwrap();
    }
    // (Every namespace also holds the cluster CA's kube-root-ca.crt, as in Kubernetes.)
    let names = |l: Vec<ConfigMap>| {
        l.into_iter()
            .map(|c| c.metadata.name.unwrap())
            .filter(|n| n != "kube-root-ca.crt")
            .collect::<Vec<_>>()
    };
    for (sel, want) in [
        ("app=web", vec!["a", "b"]),
        ("app==web,tier!=back", vec!["a"]),
        ("app in (web,db)", vec!["a", "b", "c"]),
        ("app notin (web)", vec!["c", "d"]),
        ("tier", vec!["a", "b"]),
        ("!app", vec!["d"]),
    ] {
        let got = names(
            api.list(&ListParams::default().labels(sel))
                .await
                .unwrap()
                .items,
        );
        assert_eq!(got, want, "{sel}");
    }
    let got = names(
        api.list(&ListParams::default().fields("metadata.name=c"))
            .await
            .unwrap()
            .items,
    );
    assert_eq!(got, ["c"]);
    let got = names(
        api.list(
            &ListParams::default()
                .fields("metadata.name!=c")
                .labels("app"),
        )
        .await
        .unwrap()
        .items,
    );
    assert_eq!(got, ["a", "b"]);
    for bad in ["app in web", "app=has space", "=x"] {
        let st = status(
            api.list(&ListParams::default().labels(bad))
                .await
                .unwrap_err(),
        );
        assert_eq!(st.code, 400, "{bad}");
    }
    let st = status(
        api.list(&ListParams::default().fields("spec.bogus=1"))
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 400);
    assert!(
        st.message.contains("field label not supported: spec.bogus"),
        "{}",
        st.message
    );

    // Paging: limit and continue give every item exactly once.
    let mut seen = Vec::new();
    let mut lp = ListParams::default().limit(3);
    loop {
        let page = api.list(&lp).await.unwrap();
        seen.extend(names(page.items));
        match page.metadata.continue_ {
            Some(t) if !t.is_empty() => lp = lp.continue_token(&t),
            _ => break,
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d"]);
}
