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

/// Retries `f` until it succeeds (RBAC changes reach the authorizer through a watch), for 10 s.
async fn eventually<T, E, F, Fut>(what: &str, f: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rbac_grants_what_bindings_say_and_nobody_escalates() {
    use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};

    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "bobtoken,bob,2\njanetoken,jane,3,\"team-leads\"\n").unwrap();
    let s = Server::start_with(&["--token-auth-file", tokens.to_str().unwrap()]).await;
    let admin = s.client().await;
    let bob = s.with_token("bobtoken").await;
    let jane = s.with_token("janetoken").await;
    let ns = |n: &str| {
        serde_json::from_value::<k8s_openapi::api::core::v1::Namespace>(
            json!({"metadata": {"name": n}}),
        )
        .unwrap()
    };
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin.clone());
    namespaces
        .create(&PostParams::default(), &ns("team"))
        .await
        .unwrap();

    // The default roles are there, as every cluster has them.
    let cluster_roles: Api<ClusterRole> = Api::all(admin.clone());
    for name in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:basic-user",
        "system:discovery",
    ] {
        cluster_roles.get(name).await.unwrap();
    }

    // A Role and a RoleBinding for bob: pods readable in "team" only.
    let roles: Api<Role> = Api::namespaced(admin.clone(), "team");
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    }))
    .unwrap();
    roles.create(&PostParams::default(), &role).await.unwrap();
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), "team");
    let bind = |name: &str, kind: &str, role: &str, subject: serde_json::Value| {
        serde_json::from_value::<RoleBinding>(json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": [subject]
        }))
        .unwrap()
    };
    let created = bindings
        .create(
            &PostParams::default(),
            &bind(
                "bob-reads",
                "Role",
                "pod-reader",
                json!({"kind": "User", "name": "bob"}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        created.subjects.unwrap()[0].api_group.as_deref(),
        Some("rbac.authorization.k8s.io"),
        "defaulted as Kubernetes defaults it"
    );
    let bob_team: Api<Pod> = Api::namespaced(bob.clone(), "team");
    let lp = ListParams::default();
    eventually("bob lists pods in team", || bob_team.list(&lp)).await;
    match Api::<Pod>::namespaced(bob.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap_err()
    {
        kube::Error::Api(st) => assert_eq!(st.message, "pods is forbidden: User \"bob\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""),
        other => panic!("{other:?}"),
    }
    let pod = serde_json::from_value::<Pod>(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})).unwrap();
    assert_eq!(
        code(
            bob_team
                .create(&PostParams::default(), &pod)
                .await
                .unwrap_err()
        ),
        403
    );

    // The roleRef of a binding never changes.
    let mut changed = bindings.get("bob-reads").await.unwrap();
    changed.role_ref.name = "admin".into();
    changed.role_ref.kind = "ClusterRole".into();
    let e = crate::harness::status(
        bindings
            .replace("bob-reads", &PostParams::default(), &changed)
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 422);
    assert!(
        e.message.contains("roleRef: Invalid value"),
        "{}",
        e.message
    );

    // The team-leads group administers "team": it may write roles and bindings there, but
    // grants only what it holds itself.
    bindings
        .create(
            &PostParams::default(),
            &bind(
                "leads-admin",
                "ClusterRole",
                "admin",
                json!({"kind": "Group", "name": "team-leads"}),
            ),
        )
        .await
        .unwrap();
    let jane_roles: Api<Role> = Api::namespaced(jane.clone(), "team");
    let rule_role = |name: &str, rule: serde_json::Value| {
        serde_json::from_value::<Role>(json!({"metadata": {"name": name}, "rules": [rule]}))
            .unwrap()
    };
    let pp = PostParams::default();
    let deployer = rule_role(
        "deployer",
        json!({"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "create", "update", "patch", "delete"]}),
    );
    eventually("jane writes roles in team", || {
        jane_roles.create(&pp, &deployer)
    })
    .await;
    let e = crate::harness::status(
        jane_roles
            .create(
                &PostParams::default(),
                &rule_role(
                    "node-reader",
                    json!({"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}),
                ),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    assert!(
        e.message.starts_with("roles.rbac.authorization.k8s.io \"node-reader\" is forbidden: user \"jane\" (groups=[\"team-leads\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\"]}"),
        "{}",
        e.message
    );
    let jane_bindings: Api<RoleBinding> = Api::namespaced(jane.clone(), "team");
    jane_bindings
        .create(
            &PostParams::default(),
            &bind(
                "bob-views",
                "ClusterRole",
                "view",
                json!({"kind": "User", "name": "bob"}),
            ),
        )
        .await
        .unwrap();
    let e = crate::harness::status(
        jane_bindings
            .create(
                &PostParams::default(),
                &bind(
                    "bob-rules",
                    "ClusterRole",
                    "cluster-admin",
                    json!({"kind": "User", "name": "bob"}),
                ),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 403, "{}", e.message);
    assert!(e
        .message
        .contains("is attempting to grant RBAC permissions not currently held"));

    // Aggregation: a ClusterRole labelled aggregate-to-view joins view (and so edit and admin).
    let widgets: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": "widget-viewer", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
        "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}]
    }))
    .unwrap();
    cluster_roles
        .create(&PostParams::default(), &widgets)
        .await
        .unwrap();
    for role in ["view", "edit", "admin"] {
        eventually(&format!("{role} gathers widgets"), || async {
            let r = cluster_roles.get(role).await.map_err(|e| e.to_string())?;
            let has = r
                .rules
                .iter()
                .flatten()
                .any(|r| r.resources.as_deref() == Some(&["widgets".to_string()][..]));
            if has {
                Ok(())
            } else {
                Err(format!("{role} has no widgets rule yet"))
            }
        })
        .await;
    }

    // Impersonation: the admin may act as bob; bob may not act as anyone.
    let (status, body) = raw_as(
        &admin,
        "/api/v1/namespaces/default/pods",
        &[("Impersonate-User", "bob")],
    )
    .await;
    assert_eq!(status, 403, "as bob: {body}");
    assert!(
        body.contains("User \\\"bob\\\" cannot list resource"),
        "{body}"
    );
    let (status, body) = raw_as(
        &bob,
        "/api/v1/namespaces/team/pods",
        &[("Impersonate-User", "jane")],
    )
    .await;
    assert_eq!(status, 403);
    assert!(body.contains("users \\\"jane\\\" is forbidden: User \\\"bob\\\" cannot impersonate resource \\\"users\\\""), "{body}");
}

/// A GET with extra headers; (status, body).
async fn raw_as(client: &kube::Client, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = http::Request::get(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .send(req.body(Vec::new()).unwrap().map(kube::client::Body::from))
        .await
        .unwrap();
    let status = resp.status().as_u16();
    use http_body_util::BodyExt;
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_bound_to_a_pod_end_with_it_and_nodes_get_only_their_pods() {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::ServiceAccount;
    use kube::api::DeleteParams;

    let s = Server::start_with(&["--node-name", "node-1"]).await;
    let admin = s.client().await;
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "default");
    // A pod whose service account does not exist is refused (the ServiceAccount admission).
    let ghost: Pod = serde_json::from_value(json!({
        "metadata": {"name": "haunted"},
        "spec": {"serviceAccountName": "robot", "containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    let refused = Api::<Pod>::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &ghost)
        .await
        .unwrap_err();
    match refused {
        kube::Error::Api(e) => {
            assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
            assert_eq!(
                e.message,
                "pods \"haunted\" is forbidden: error looking up service account default/robot: serviceaccount \"robot\" not found"
            );
        }
        e => panic!("{e}"),
    }
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "robot"}})).unwrap(),
    )
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    let pod = |name: &str, node: &str| {
        serde_json::from_value::<Pod>(json!({
            "metadata": {"name": name},
            "spec": {"serviceAccountName": "robot", "nodeName": node,
                     "containers": [{"name": "c", "image": "busybox"}]}
        }))
        .unwrap()
    };
    let mine = pods
        .create(&PostParams::default(), &pod("mine", "node-1"))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("theirs", "node-2"))
        .await
        .unwrap();
    let request = |pod: Option<&str>| {
        serde_json::from_value::<TokenRequest>(json!({
            "spec": {"audiences": [], "expirationSeconds": 3600,
                     "boundObjectRef": pod.map(|p| json!({"kind": "Pod", "apiVersion": "v1", "name": p}))}
        }))
        .unwrap()
    };

    // The kubelet may ask for its own pods' tokens only, bound to the pod.
    let kubelet_sas: Api<ServiceAccount> = Api::namespaced(s.client_as("kubelet").await, "default");
    let issued = kubelet_sas
        .create_token_request("robot", &PostParams::default(), &request(Some("mine")))
        .await
        .unwrap();
    let status = issued.status.unwrap();
    assert_eq!(
        issued.spec.audiences,
        ["https://kubernetes.default.svc.cluster.local"]
    );
    for other in [Some("theirs"), None] {
        let e = kubelet_sas
            .create_token_request("robot", &PostParams::default(), &request(other))
            .await
            .unwrap_err();
        assert_eq!(code(e), 403, "{other:?}");
    }

    // The token is the service account while the pod lives.
    let robot = s.with_token(&status.token).await;
    let e = Api::<Pod>::namespaced(robot.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap_err();
    match e {
        kube::Error::Api(st) => assert!(
            st.message
                .contains("User \"system:serviceaccount:default:robot\" cannot list"),
            "{}",
            st.message
        ),
        other => panic!("{other:?}"),
    }
    // A pod deleted at once takes its tokens with it; one recreated under the same name
    // (another uid) does not bring them back.
    pods.delete("mine", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while pods.get_opt("mine").await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pod was not deleted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    pods.create(&PostParams::default(), &pod("mine", "node-1"))
        .await
        .unwrap();
    let e = Api::<Pod>::namespaced(robot, "default")
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(code(e), 401);
    assert!(mine.metadata.uid.is_some());
}
