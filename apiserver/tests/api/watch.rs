//! Watch: every change in order, resumable from any revision (also after a crash of the server),
//! filtered by selectors, and 410 Gone once history is compacted.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

use crate::harness::Server;

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
}

fn describe(e: &WatchEvent<ConfigMap>) -> String {
    match e {
        WatchEvent::Added(o) => format!("ADDED {}", o.metadata.name.clone().unwrap()),
        WatchEvent::Modified(o) => format!("MODIFIED {}", o.metadata.name.clone().unwrap()),
        WatchEvent::Deleted(o) => format!("DELETED {}", o.metadata.name.clone().unwrap()),
        WatchEvent::Bookmark(_) => "BOOKMARK".into(),
        WatchEvent::Error(e) => format!("ERROR {}", e.code),
    }
}

async fn take(api: &Api<ConfigMap>, wp: &WatchParams, rv: &str, n: usize) -> Vec<String> {
    let stream = api.watch(wp, rv).await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.take(n).map_ok(|e| describe(&e)).try_collect(),
    )
    .await
    .expect("events in time")
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_arrive_in_order_and_resume_after_a_crash() {
    let mut s = Server::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let start = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let pp = PostParams::default();
    api.create(&pp, &cm("a", json!({}))).await.unwrap();
    api.create(&pp, &cm("b", json!({}))).await.unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "1"}})),
    )
    .await
    .unwrap();
    api.delete("b", &Default::default()).await.unwrap();
    let wp = WatchParams::default();
    assert_eq!(
        take(&api, &wp, &start, 4).await,
        ["ADDED a", "ADDED b", "MODIFIED a", "DELETED b"]
    );

    // A crash loses nothing acknowledged, and history before it can still be replayed.
    s.crash_and_restart().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    api.create(&pp, &cm("c", json!({}))).await.unwrap();
    assert_eq!(
        take(&api, &wp, &start, 5).await,
        ["ADDED a", "ADDED b", "MODIFIED a", "DELETED b", "ADDED c"]
    );
    assert_eq!(api.get("a").await.unwrap().data.unwrap()["x"], "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_watch_sees_concurrent_writes_in_revision_order() {
    let s = Server::start().await;
    let c = s.client().await;
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let stream = api.watch(&WatchParams::default(), &rv).await.unwrap();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let api = api.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    api.create(&PostParams::default(), &cm(&format!("w{w}-{i}"), json!({})))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let events: Vec<WatchEvent<ConfigMap>> =
        tokio::time::timeout(Duration::from_secs(10), stream.take(200).try_collect())
            .await
            .unwrap()
            .unwrap();
    let revs: Vec<i64> = events
        .iter()
        .map(|e| match e {
            WatchEvent::Added(o) => o
                .metadata
                .resource_version
                .as_ref()
                .unwrap()
                .parse()
                .unwrap(),
            other => panic!("unexpected {}", describe(other)),
        })
        .collect();
    assert!(
        revs.windows(2).all(|w| w[0] < w[1]),
        "revisions strictly increase"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn selectors_turn_label_changes_into_added_and_deleted() {
    let s = Server::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let pp = PostParams::default();
    api.create(&pp, &cm("x", json!({"app": "web"})))
        .await
        .unwrap();
    api.create(&pp, &cm("y", json!({"app": "db"})))
        .await
        .unwrap();
    // x leaves the selection, y joins it.
    api.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "old"}}})),
    )
    .await
    .unwrap();
    api.patch(
        "y",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})),
    )
    .await
    .unwrap();
    let wp = WatchParams::default().labels("app=web");
    assert_eq!(
        take(&api, &wp, &rv, 3).await,
        ["ADDED x", "DELETED x", "ADDED y"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn compacted_history_is_gone() {
    let s = Server::start_with(&["--compaction-interval", "300ms"]).await;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let old = api
        .create(&PostParams::default(), &cm("first", json!({})))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    for i in 0..5 {
        api.create(&PostParams::default(), &cm(&format!("n{i}"), json!({})))
            .await
            .unwrap();
    }
    // The compaction runs every 300 ms: a watch from the old revision works until it has
    // run, then answers 410 Gone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut stream = api
            .watch(&WatchParams::default(), &old)
            .await
            .unwrap()
            .boxed();
        match tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .unwrap()
        {
            Some(Ok(WatchEvent::Error(e))) => {
                assert_eq!(e.code, 410);
                assert_eq!(e.reason, "Expired");
                break;
            }
            // Not compacted yet: the history is still there.
            Some(Ok(WatchEvent::Added(_))) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("expected 410 Gone, got {other:?}"),
        }
    }
    // The newest state is always kept (with the namespace's kube-root-ca.crt).
    let kept = api.list(&ListParams::default()).await.unwrap().items;
    let ours = kept
        .iter()
        .filter(|c| c.metadata.name.as_deref() != Some("kube-root-ca.crt"))
        .count();
    assert_eq!(ours, 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_from_zero_starts_with_the_current_state_and_bookmarks_flow() {
    let s = Server::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "kube-system");
    api.create(&PostParams::default(), &cm("existing", json!({})))
        .await
        .unwrap();
    // (Leaving out the namespace's kube-root-ca.crt, which every namespace has.)
    let ours = WatchParams::default().fields("metadata.name!=kube-root-ca.crt");
    assert_eq!(take(&api, &ours, "0", 1).await, ["ADDED existing"]);
    // Streaming lists: initial events, then a bookmark marking their end.
    let wp = ours.initial_events();
    let events = take(&api, &wp, "", 2).await;
    assert_eq!(events, ["ADDED existing", "BOOKMARK"]);
    // The timeout ends the stream.
    let wp = WatchParams::default().timeout(1);
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let all: Vec<_> = tokio::time::timeout(
        Duration::from_secs(5),
        api.watch(&wp, &rv).await.unwrap().collect::<Vec<_>>(),
    )
    .await
    .expect("the server ends the watch at timeoutSeconds");
    assert!(all.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_runtime_watchers_list_then_follow() {
    use kube::runtime::watcher::{self, Event};
    let s = Server::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    api.create(&PostParams::default(), &cm("before", json!({})))
        .await
        .unwrap();
    for config in [
        watcher::Config::default(),
        watcher::Config::default().streaming_lists(),
    ] {
        let mut stream = watcher::watcher(api.clone(), config).boxed();
        let mut initial = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), stream.try_next())
                .await
                .unwrap()
                .unwrap()
            {
                Some(Event::InitApply(o)) => initial.push(o.metadata.name.unwrap()),
                Some(Event::InitDone) => break,
                Some(_) => {}
                None => panic!("watcher ended"),
            }
        }
        assert!(initial.contains(&"before".to_string()), "{initial:?}");
        let name = format!("after-{}", initial.len());
        api.create(&PostParams::default(), &cm(&name, json!({})))
            .await
            .unwrap();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), stream.try_next())
                .await
                .unwrap()
                .unwrap()
            {
                Some(Event::Apply(o)) if o.metadata.name.as_deref() == Some(name.as_str()) => break,
                Some(_) => {}
                None => panic!("watcher ended"),
            }
        }
    }
}
