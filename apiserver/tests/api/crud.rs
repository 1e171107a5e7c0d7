//! Create, read, update, patch and delete for every kind, through kube-rs, as a client sees it.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Binding, ConfigMap, Endpoints, Event, Namespace, Node, Pod, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::harness::{status as api_err, Server};

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("valid object")
}

pub fn pod(name: &str, labels: serde_json::Value) -> Pod {
    obj(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "ports": [{"containerPort": 8080, "name": "http"}]}]}
    }))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cluster_starts_with_its_namespaces_and_the_kubernetes_service() {
    let s = Server::start().await;
    let c = s.client().await;
    let ns: Api<Namespace> = Api::all(c.clone());
    for name in ["default", "kube-system", "kube-public"] {
        let n = ns.get(name).await.unwrap();
        assert_eq!(n.status.unwrap().phase.as_deref(), Some("Active"));
    }
    let svc = Api::<Service>::namespaced(c.clone(), "default")
        .get("kubernetes")
        .await
        .unwrap();
    assert_eq!(svc.spec.unwrap().cluster_ip.as_deref(), Some("10.96.0.1"));
    // The default ServiceAccount appears in every namespace, new ones included.
    ns.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "team-a"}})),
    )
    .await
    .unwrap();
    let sa: Api<ServiceAccount> = Api::namespaced(c, "team-a");
    for _ in 0..100 {
        if sa.get_opt("default").await.unwrap().is_some() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no default service account in team-a");
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_status_and_binding() {
    let s = Server::start().await;
    let pods: Api<Pod> = Api::namespaced(s.client().await, "default");
    // The pod names a scheduler that does not exist, so the built-in scheduler
    // leaves it alone (it would otherwise record PodScheduled=False while this
    // test edits the pod) and the test binds it by hand.
    let mut web = pod("web", json!({"app": "web"}));
    web.spec.as_mut().unwrap().scheduler_name = Some("by-hand".into());
    let created = pods.create(&PostParams::default(), &web).await.unwrap();
    let meta = &created.metadata;
    assert!(
        meta.uid.is_some() && meta.creation_timestamp.is_some() && meta.resource_version.is_some()
    );
    let spec = created.spec.clone().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(spec.termination_grace_period_seconds, Some(30));
    assert_eq!(
        spec.containers[0].image_pull_policy.as_deref(),
        Some("IfNotPresent")
    );
    assert_eq!(
        created.status.clone().unwrap().phase.as_deref(),
        Some("Pending")
    );

    // The main resource cannot change status; the status subresource can.
    let mut with_status = pods.get("web").await.unwrap();
    with_status.status.as_mut().unwrap().phase = Some("Running".into());
    let replaced = pods
        .replace("web", &PostParams::default(), &with_status)
        .await
        .unwrap();
    assert_eq!(replaced.status.unwrap().phase.as_deref(), Some("Pending"));
    let patched = pods
        .patch_status("web", &PatchParams::default(), &Patch::Merge(json!({"status": {"phase": "Running", "podIP": "10.244.0.7", "podIPs": [{"ip": "10.244.0.7"}]}})))
        .await
        .unwrap();
    assert_eq!(patched.status.unwrap().phase.as_deref(), Some("Running"));

    // Binding assigns the node once.
    let binding: Binding =
        obj(json!({"metadata": {"name": "web"}, "target": {"kind": "Node", "name": "node-1"}}));
    let bind_path = "/api/v1/namespaces/default/pods/web/binding";
    let (code, _) = crate::harness::raw(
        &s.client().await,
        "POST",
        bind_path,
        "application/json",
        serde_json::to_vec(&binding).unwrap(),
    )
    .await;
    assert_eq!(code, 201);
    let bound = pods.get("web").await.unwrap();
    assert_eq!(bound.spec.unwrap().node_name.as_deref(), Some("node-1"));
    assert!(bound
        .status
        .unwrap()
        .conditions
        .unwrap()
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.status == "True"));
    let (code, body) = crate::harness::raw(
        &s.client().await,
        "POST",
        bind_path,
        "application/json",
        serde_json::to_vec(&binding).unwrap(),
    )
    .await;
    assert_eq!(code, 409, "{body}");

    // Only the image of a running pod may change.
    let err = pods
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"restartPolicy": "Never"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_err(err).code, 422);
    let set_image = serde_json::from_value(
        json!([{"op": "replace", "path": "/spec/containers/0/image", "value": "busybox:1.37"}]),
    )
    .unwrap();
    let img = pods
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::<()>::Json(set_image),
        )
        .await
        .unwrap();
    assert_eq!(
        img.spec.unwrap().containers[0].image.as_deref(),
        Some("busybox:1.37")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_on_a_node_are_deleted_gracefully_and_finalizers_hold_objects() {
    let s = Server::start().await;
    let c = s.client().await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let mut p = pod("graceful", json!({}));
    p.spec.as_mut().unwrap().node_name = Some("node-1".into());
    pods.create(&PostParams::default(), &p).await.unwrap();
    // The node has to confirm: the pod stays, marked, until it is deleted with grace 0.
    let marked = pods
        .delete("graceful", &DeleteParams::default())
        .await
        .unwrap();
    let marked = marked
        .left()
        .expect("the pod is returned while it terminates");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(30));
    assert!(pods
        .get("graceful")
        .await
        .unwrap()
        .metadata
        .deletion_timestamp
        .is_some());
    pods.delete(
        "graceful",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(pods.get_opt("graceful").await.unwrap().is_none());

    // An unscheduled pod has nothing to stop: it goes at once.
    pods.create(&PostParams::default(), &pod("pending", json!({})))
        .await
        .unwrap();
    pods.delete("pending", &DeleteParams::default())
        .await
        .unwrap();
    assert!(pods.get_opt("pending").await.unwrap().is_none());

    // A finalizer holds any object until it is removed.
    let cms: Api<ConfigMap> = Api::namespaced(c, "default");
    cms.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})),
    )
    .await
    .unwrap();
    cms.delete("held", &DeleteParams::default()).await.unwrap();
    let held = cms.get("held").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    let err = cms
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"finalizers": ["example.com/hold", "example.com/more"]}}),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(api_err(err).code, 422, "no new finalizers while deleting");
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("held").await.unwrap().is_none());

    // Preconditions: a stale uid or resourceVersion refuses the delete.
    let cm = cms
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "pre"}})),
        )
        .await
        .unwrap();
    let err = cms
        .delete(
            "pre",
            &DeleteParams {
                preconditions: Some(kube::api::Preconditions {
                    uid: Some("nope".into()),
                    resource_version: None,
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(api_err(err).code, 409);
    cms.delete(
        "pre",
        &DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                uid: cm.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn deployments_and_replicasets_with_scale_generation_and_status() {
    let s = Server::start().await;
    let c = s.client().await;
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let d: Deployment = obj(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}
    }));
    let created = deploys.create(&PostParams::default(), &d).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let spec = created.spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.revision_history_limit, Some(10));
    assert_eq!(spec.progress_deadline_seconds, Some(600));
    let strategy = spec.strategy.unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    assert_eq!(
        serde_json::to_value(strategy.rolling_update.unwrap()).unwrap(),
        json!({"maxSurge": "25%", "maxUnavailable": "25%"})
    );

    let scale = deploys.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=web"));
    deploys
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    let scaled = deploys.get("web").await.unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(3));
    assert_eq!(
        scaled.metadata.generation,
        Some(2),
        "a spec change bumps the generation"
    );
    // Status writes (the controller's, or ours) leave the generation alone.
    deploys
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"observedGeneration": 2}})),
        )
        .await
        .unwrap();
    let d2 = deploys.get("web").await.unwrap();
    assert_eq!(d2.metadata.generation, Some(2));
    // The selector is immutable.
    let err = deploys
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"selector": {"matchLabels": {"app": "other"}}, "template": {"metadata": {"labels": {"app": "other"}}}}})))
        .await
        .unwrap_err();
    assert_eq!(api_err(err).code, 422);

    let rss: Api<ReplicaSet> = Api::namespaced(c, "default");
    let rs: ReplicaSet = obj(json!({
        "metadata": {"name": "web-abc"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "standalone"}},
                 "template": {"metadata": {"labels": {"app": "standalone"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}
    }));
    rss.create(&PostParams::default(), &rs).await.unwrap();
    rss.patch_scale(
        "web-abc",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 0}})),
    )
    .await
    .unwrap();
    assert_eq!(
        rss.get("web-abc").await.unwrap().spec.unwrap().replicas,
        Some(0)
    );
    rss.patch_status(
        "web-abc",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"replicas": 0, "readyReplicas": 0}})),
    )
    .await
    .unwrap();
    rss.delete("web-abc", &DeleteParams::default())
        .await
        .unwrap();
    deploys
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    assert!(deploys.get_opt("web").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn every_other_kind_round_trips() {
    let s = Server::start().await;
    let c = s.client().await;
    let pp = PostParams::default();
    let dp = DeleteParams::default();

    let nodes: Api<Node> = Api::all(c.clone());
    nodes.create(&pp, &obj(json!({"metadata": {"name": "node-1", "labels": {"node-role.kubernetes.io/control-plane": ""}}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))).await.unwrap();
    nodes
        .patch_status(
            "node-1",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.10"}]}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        nodes
            .get("node-1")
            .await
            .unwrap()
            .status
            .unwrap()
            .addresses
            .unwrap()[0]
            .address,
        "192.0.2.10"
    );

    let secrets: Api<Secret> = Api::namespaced(c.clone(), "default");
    let sec = secrets
        .create(
            &pp,
            &obj(json!({"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}})),
        )
        .await
        .unwrap();
    assert_eq!(sec.type_.as_deref(), Some("Opaque"));
    assert_eq!(sec.data.unwrap()["password"].0, b"hunter2");
    assert!(sec.string_data.is_none(), "stringData is folded into data");

    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    cms.create(
        &pp,
        &obj(json!({"metadata": {"name": "cfg"}, "data": {"a": "1"}})),
    )
    .await
    .unwrap();
    let mut cfg = cms.get("cfg").await.unwrap();
    cfg.data.as_mut().unwrap().insert("b".into(), "2".into());
    cms.replace("cfg", &pp, &cfg).await.unwrap();
    assert_eq!(cms.get("cfg").await.unwrap().data.unwrap().len(), 2);

    let sas: Api<ServiceAccount> = Api::namespaced(c.clone(), "default");
    sas.create(&pp, &obj(json!({"metadata": {"name": "robot"}})))
        .await
        .unwrap();

    let eps: Api<Endpoints> = Api::namespaced(c.clone(), "default");
    eps.create(&pp, &obj(json!({"metadata": {"name": "ext"}, "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 80}]}]}))).await.unwrap();

    let slices: Api<EndpointSlice> = Api::namespaced(c.clone(), "default");
    slices.create(&pp, &obj(json!({"metadata": {"name": "ext-1", "labels": {"kubernetes.io/service-name": "ext"}}, "addressType": "IPv4", "endpoints": [{"addresses": ["192.0.2.1"]}], "ports": [{"port": 80}]}))).await.unwrap();

    let leases: Api<Lease> = Api::namespaced(c.clone(), "kube-node-lease");
    leases.create(&pp, &obj(json!({"metadata": {"name": "node-1"}, "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}))).await.unwrap();
    leases
        .patch(
            "node-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"renewTime": "2026-01-01T00:00:00.000000Z"}})),
        )
        .await
        .unwrap();

    let events: Api<Event> = Api::namespaced(c.clone(), "default");
    let ev: Event = obj(
        json!({"metadata": {"name": "web.1"}, "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"}, "reason": "Started", "message": "Started container", "type": "Normal"}),
    );
    events.create(&pp, &ev).await.unwrap();
    let found = events
        .list(&ListParams::default().fields("involvedObject.kind=Pod,involvedObject.name=web"))
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);

    let svcs: Api<Service> = Api::namespaced(c.clone(), "default");
    svcs.create(&pp, &obj(json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "selector": {"app": "x"}, "ports": [{"port": 80}]}}))).await.unwrap();
    svcs.patch_status(
        "lb",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}})),
    )
    .await
    .unwrap();
    assert_eq!(
        svcs.get("lb")
            .await
            .unwrap()
            .status
            .unwrap()
            .load_balancer
            .unwrap()
            .ingress
            .unwrap()[0]
            .ip
            .as_deref(),
        Some("192.0.2.10")
    );

    // Everything can be deleted again, and deletecollection removes by selector.
    nodes.delete("node-1", &dp).await.unwrap();
    secrets.delete("s", &dp).await.unwrap();
    sas.delete("robot", &dp).await.unwrap();
    eps.delete("ext", &dp).await.unwrap();
    slices.delete("ext-1", &dp).await.unwrap();
    leases.delete("node-1", &dp).await.unwrap();
    events
        .delete_collection(&dp, &ListParams::default())
        .await
        .unwrap();
    assert!(events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
    svcs.delete("lb", &dp).await.unwrap();
    cms.delete("cfg", &dp).await.unwrap();

    // A namespace is emptied, then removed.
    let ns: Api<Namespace> = Api::all(c.clone());
    ns.create(&pp, &obj(json!({"metadata": {"name": "doomed"}})))
        .await
        .unwrap();
    let in_ns: Api<ConfigMap> = Api::namespaced(c.clone(), "doomed");
    in_ns
        .create(&pp, &obj(json!({"metadata": {"name": "x"}})))
        .await
        .unwrap();
    // A finalizer keeps the namespace terminating until we let go.
    in_ns
        .create(
            &pp,
            &obj(json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})),
        )
        .await
        .unwrap();
    ns.delete("doomed", &dp).await.unwrap();
    assert_eq!(
        ns.get("doomed")
            .await
            .unwrap()
            .status
            .unwrap()
            .phase
            .as_deref(),
        Some("Terminating")
    );
    let err = in_ns
        .create(&pp, &obj(json!({"metadata": {"name": "y"}})))
        .await
        .unwrap_err();
    assert_eq!(
        api_err(err).code,
        403,
        "no new objects in a terminating namespace"
    );
    // The namespace controller has emptied the namespace as far as it can: x is gone and the
    // held object is marked deleted. Only the finalizer keeps the namespace now.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let held = in_ns.get("held").await.unwrap();
        if held.metadata.deletion_timestamp.is_some() && in_ns.get_opt("x").await.unwrap().is_none()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the namespace controller did not empty the namespace"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        ns.get_opt("doomed").await.unwrap().is_some(),
        "held by the finalizer"
    );
    in_ns
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    for _ in 0..200 {
        if ns.get_opt("doomed").await.unwrap().is_none() {
            assert!(in_ns
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty());
            let err = ns.delete("default", &dp).await.unwrap_err();
            assert_eq!(api_err(err).code, 403, "system namespaces stay");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("namespace was not removed");
}

#[tokio::test(flavor = "multi_thread")]
async fn generate_name_and_dry_run() {
    let s = Server::start().await;
    let pods: Api<Pod> = Api::namespaced(s.client().await, "default");
    let mut p = pod("", json!({}));
    p.metadata.name = None;
    p.metadata.generate_name = Some("web-".into());
    let a = pods.create(&PostParams::default(), &p).await.unwrap();
    let b = pods.create(&PostParams::default(), &p).await.unwrap();
    let (a, b) = (a.metadata.name.unwrap(), b.metadata.name.unwrap());
    assert!(a.starts_with("web-") && a.len() == "web-".len() + 5, "{a}");
    assert_ne!(a, b);
    let dry = pods
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &pod("ghost", json!({})),
        )
        .await
        .unwrap();
    assert_eq!(dry.metadata.name.as_deref(), Some("ghost"));
    assert!(
        pods.get_opt("ghost").await.unwrap().is_none(),
        "dry run stores nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn updates_are_optimistic() {
    let s = Server::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let v1 = cms
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "c"}, "data": {"k": "1"}})),
        )
        .await
        .unwrap();
    let mut first = v1.clone();
    first.data.as_mut().unwrap().insert("k".into(), "2".into());
    let v2 = cms
        .replace("c", &PostParams::default(), &first)
        .await
        .unwrap();
    assert_ne!(v1.metadata.resource_version, v2.metadata.resource_version);
    // A writer holding the old version loses.
    let mut stale = v1.clone();
    stale.data.as_mut().unwrap().insert("k".into(), "3".into());
    let err = api_err(
        cms.replace("c", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    assert!(
        err.message.contains("the object has been modified"),
        "{}",
        err.message
    );
    assert_eq!(
        cms.get("c").await.unwrap().data.unwrap()["k"],
        "2",
        "nothing of the stale write landed"
    );
    // A no-op update does not make a new revision.
    let same = cms.replace("c", &PostParams::default(), &v2).await.unwrap();
    assert_eq!(same.metadata.resource_version, v2.metadata.resource_version);
    // A JSON patch with a failing test op changes nothing.
    let err = cms
        .patch("c", &PatchParams::default(), &Patch::<()>::Json(serde_json::from_value(json!([{"op": "test", "path": "/data/k", "value": "9"}, {"op": "replace", "path": "/data/k", "value": "x"}])).unwrap()))
        .await
        .unwrap_err();
    assert_eq!(api_err(err).code, 422);
    let ok = cms
        .patch("c", &PatchParams::default(), &Patch::<()>::Json(serde_json::from_value(json!([{"op": "test", "path": "/data/k", "value": "2"}, {"op": "replace", "path": "/data/k", "value": "x"}])).unwrap()))
        .await
        .unwrap();
    assert_eq!(ok.data.unwrap()["k"], "x");
}

/// kube-rs as its users write it (its default wire, JSON): create, the four patch types
/// (merge, strategic merge, JSON patch, server-side apply), a watch that sees each of them,
/// and delete.
#[tokio::test(flavor = "multi_thread")]
async fn kube_rs_patches_every_way_and_watches() {
    use futures::{StreamExt, TryStreamExt};
    use kube::api::WatchEvent;
    let s = Server::start().await;
    let c = s.client().await;
    let api: Api<Deployment> = Api::namespaced(c, "default");
    let made = api
        .create(
            &PostParams::default(),
            &obj(json!({
                "metadata": {"name": "kr"},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "kr"}},
                         "template": {"metadata": {"labels": {"app": "kr"}},
                                      "spec": {"containers": [{"name": "web", "image": "bootcamp:v1"}]}}}
            })),
        )
        .await
        .unwrap();
    let from = made.metadata.resource_version.clone().unwrap();
    let mut events = api
        .watch(
            &kube::api::WatchParams::default().fields("metadata.name=kr"),
            &from,
        )
        .await
        .unwrap()
        .boxed();
    let pp = PatchParams::default();
    api.patch(
        "kr",
        &pp,
        &Patch::Merge(json!({"metadata": {"labels": {"via": "merge"}}})),
    )
    .await
    .unwrap();
    // Strategic: containers merge by name, so the sidecar joins the web container.
    let d = api
        .patch(
            "kr",
            &pp,
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "sidecar", "image": "busybox"}]}}}})),
        )
        .await
        .unwrap();
    let names: Vec<String> = d
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(
        names,
        ["web", "sidecar"],
        "a new element goes after the old ones"
    );
    let json_patch: json_patch_4::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/replicas", "value": 3}
    ]))
    .unwrap();
    let d = api
        .patch("kr", &pp, &Patch::Json::<()>(json_patch))
        .await
        .unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(3));
    let apply = PatchParams::apply("kube-rs-test");
    let d = api
        .patch(
            "kr",
            &apply,
            &Patch::Apply(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "kr", "annotations": {"owner": "kube-rs"}}
            })),
        )
        .await
        .unwrap();
    assert_eq!(d.metadata.annotations.unwrap()["owner"], "kube-rs");
    let managers: Vec<String> = d
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.contains(&"kube-rs-test".to_string()),
        "{managers:?}"
    );
    api.delete("kr", &DeleteParams::default()).await.unwrap();
    // The watch saw each write in order (the deployment controller's status writes between
    // them), then the deletion.
    let mut seen: Vec<(&str, Deployment)> = Vec::new();
    while seen.last().map(|(t, _)| *t) != Some("DELETED") {
        let e = tokio::time::timeout(std::time::Duration::from_secs(10), events.try_next())
            .await
            .expect("watch events")
            .unwrap()
            .expect("the watch goes on");
        seen.push(match e {
            WatchEvent::Added(d) => ("ADDED", d),
            WatchEvent::Modified(d) => ("MODIFIED", d),
            WatchEvent::Deleted(d) => ("DELETED", d),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => panic!("{e:?}"),
        });
    }
    let step = |d: &Deployment| {
        let spec = d.spec.clone().unwrap_or_default();
        let containers = spec.template.spec.map_or(0, |s| s.containers.len());
        let annotated = d
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("owner"));
        let labelled = d
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key("via"));
        match (labelled, containers, spec.replicas, annotated) {
            (true, 1, Some(1), false) => 1,
            (true, 2, Some(1), false) => 2,
            (true, 2, Some(3), false) => 3,
            (true, 2, Some(3), true) => 4,
            _ => 0,
        }
    };
    let steps: Vec<i32> = seen
        .iter()
        .filter(|(t, _)| *t == "MODIFIED")
        .map(|(_, d)| step(d))
        .filter(|s| *s > 0)
        .collect();
    let mut firsts = steps.clone();
    firsts.dedup();
    assert_eq!(firsts, [1, 2, 3, 4], "each write seen, in order: {steps:?}");
    assert!(seen[..seen.len() - 1].iter().all(|(t, _)| *t == "MODIFIED"));
}
