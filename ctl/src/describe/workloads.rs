//! Deployments and replica sets.

use serde_json::Value;

use super::*;

pub(super) fn replica_sets_line(rss: &[Value]) -> String {
    let s: Vec<String> = rss
        .iter()
        .map(|rs| {
            format!(
                "{} ({}/{} replicas created)",
                st(&rs["metadata"]["name"]),
                int(&rs["status"]["replicas"]),
                int(&rs["spec"]["replicas"])
            )
        })
        .collect();
    if s.is_empty() {
        "<none>".into()
    } else {
        s.join(", ")
    }
}

pub fn deployment(d: &Value, old: &[Value], new: &[Value], ev: Option<&[Value]>) -> String {
    let mut w = W::default();
    let (m, spec, status) = (&d["metadata"], &d["spec"], &d["status"]);
    w!(w, 0, "Name:\t{}\n", st(&m["name"]));
    w!(w, 0, "Namespace:\t{}\n", st(&m["namespace"]));
    w!(
        w,
        0,
        "CreationTimestamp:\t{}\n",
        date(&m["creationTimestamp"])
    );
    labels(&mut w, "Labels", &m["labels"]);
    annotations(&mut w, "Annotations", &m["annotations"]);
    w!(w, 0, "Selector:\t{}\n", selector_string(&spec["selector"]));
    w!(
        w,
        0,
        "Replicas:\t{} desired | {} updated | {} total | {} available | {} unavailable\n",
        int(&spec["replicas"]),
        int(&status["updatedReplicas"]),
        int(&status["replicas"]),
        int(&status["availableReplicas"]),
        int(&status["unavailableReplicas"])
    );
    w!(w, 0, "StrategyType:\t{}\n", st(&spec["strategy"]["type"]));
    w!(
        w,
        0,
        "MinReadySeconds:\t{}\n",
        int(&spec["minReadySeconds"])
    );
    let ru = &spec["strategy"]["rollingUpdate"];
    if ru.is_object() {
        w!(
            w,
            0,
            "RollingUpdateStrategy:\t{} max unavailable, {} max surge\n",
            int_or_string(&ru["maxUnavailable"]),
            int_or_string(&ru["maxSurge"])
        );
    }
    pod_template(&mut w, &spec["template"]);
    status_conditions(&mut w, arr(&status["conditions"]));
    if !old.is_empty() || !new.is_empty() {
        w!(w, 0, "OldReplicaSets:\t{}\n", replica_sets_line(old));
        w!(w, 0, "NewReplicaSet:\t{}\n", replica_sets_line(new));
    }
    maybe_events(&mut w, ev);
    w.finish()
}

/// A labels.Selector's String(): like FormatLabelSelector, but empty when it selects everything.
pub(super) fn selector_string(sel: &Value) -> String {
    let s = format_selector(sel);
    if s == "<none>" {
        String::new()
    } else {
        s
    }
}

/// Pods of a controller by phase: running, waiting, succeeded, failed.
pub type PodCounts = (usize, usize, usize, usize);

pub fn replicaset(rs: &Value, counts: Result<PodCounts, String>, ev: Option<&[Value]>) -> String {
    let mut w = W::default();
    let (m, spec, status) = (&rs["metadata"], &rs["spec"], &rs["status"]);
    w!(w, 0, "Name:\t{}\n", st(&m["name"]));
    w!(w, 0, "Namespace:\t{}\n", st(&m["namespace"]));
    w!(w, 0, "Selector:\t{}\n", format_selector(&spec["selector"]));
    labels(&mut w, "Labels", &m["labels"]);
    annotations(&mut w, "Annotations", &m["annotations"]);
    if let Some(c) = controller(rs) {
        w!(w, 0, "Controlled By:\t{c}\n");
    }
    w!(
        w,
        0,
        "Replicas:\t{} current / {} desired\n",
        int(&status["replicas"]),
        int(&spec["replicas"])
    );
    w.w(0, "Pods Status:\t");
    match counts {
        Ok((r, wt, s, f)) => w!(
            w,
            0,
            "{r} Running / {wt} Waiting / {s} Succeeded / {f} Failed\n"
        ),
        Err(e) => w!(w, 0, "error in fetching pods: {e}\n"),
    }
    pod_template(&mut w, &spec["template"]);
    status_conditions(&mut w, arr(&status["conditions"]));
    maybe_events(&mut w, ev);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_replica_sets_and_events() {
        let d = json!({
            "metadata": {"name": "boot", "namespace": "ns", "creationTimestamp": "2026-11-25T12:05:04Z",
                "labels": {"run": "boot"}, "annotations": {"deployment.kubernetes.io/revision": "1"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"run": "boot"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "template": {"metadata": {"labels": {"run": "boot"}}, "spec": {"containers": [{"name": "boot", "image": "i"}]}}},
            "status": {"replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}
        });
        let rs = json!({"metadata": {"name": "boot-1"}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let ev = [
            json!({"type": "Normal", "reason": "ScalingReplicaSet", "count": 3,
            "firstTimestamp": "2020-01-01T00:00:00Z", "lastTimestamp": "2020-01-01T00:05:00Z",
            "source": {"component": "deployment-controller"}, "message": "Scaled up\n"}),
        ];
        let out = deployment(&d, &[], &[rs], Some(&ev));
        assert!(
            out.contains("\nRollingUpdateStrategy:  25% max unavailable, 25% max surge\n"),
            "{out}"
        );
        assert!(
            out.contains(
                "\n  Tolerations:     <none>\nOldReplicaSets:    <none>\nNewReplicaSet:     boot-1 (1/1 replicas created)\n"
            ),
            "{out}"
        );
        assert!(out.contains("\n  Normal  ScalingReplicaSet  "), "{out}");
        assert!(out.contains(" (x3 over "), "{out}");
        assert!(
            out.ends_with("  deployment-controller  Scaled up\n"),
            "{out}"
        );
    }
}
