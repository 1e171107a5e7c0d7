//! Pods, and the pod templates of deployments and replica sets (kubectl's DescribePod,
//! DescribePodTemplate).

use serde_json::Value;

use super::*;

pub fn pod(pod: &Value, ev: Option<&[Value]>) -> String {
    let mut w = W::default();
    let (m, spec, status) = (&pod["metadata"], &pod["spec"], &pod["status"]);
    w!(w, 0, "Name:\t{}\n", st(&m["name"]));
    w!(w, 0, "Namespace:\t{}\n", st(&m["namespace"]));
    if let Some(p) = spec["priority"].as_i64() {
        w!(w, 0, "Priority:\t{p}\n");
    }
    if !st(&spec["priorityClassName"]).is_empty() {
        w!(
            w,
            0,
            "Priority Class Name:\t{}\n",
            st(&spec["priorityClassName"])
        );
    }
    if !st(&spec["runtimeClassName"]).is_empty() {
        w!(
            w,
            0,
            "Runtime Class Name:\t{}\n",
            st(&spec["runtimeClassName"])
        );
    }
    if !st(&spec["serviceAccountName"]).is_empty() {
        w!(
            w,
            0,
            "Service Account:\t{}\n",
            st(&spec["serviceAccountName"])
        );
    }
    if st(&spec["nodeName"]).is_empty() {
        w.w(0, "Node:\t<none>\n");
    } else {
        w!(
            w,
            0,
            "Node:\t{}/{}\n",
            st(&spec["nodeName"]),
            st(&status["hostIP"])
        );
    }
    if status["startTime"].is_string() {
        w!(w, 0, "Start Time:\t{}\n", date(&status["startTime"]));
    }
    labels(&mut w, "Labels", &m["labels"]);
    annotations(&mut w, "Annotations", &m["annotations"]);
    let phase = st(&status["phase"]);
    if m["deletionTimestamp"].is_string() && phase != "Failed" && phase != "Succeeded" {
        w!(
            w,
            0,
            "Status:\tTerminating (lasts {})\n",
            since(&m["deletionTimestamp"])
        );
        w!(
            w,
            0,
            "Termination Grace Period:\t{}s\n",
            int(&m["deletionGracePeriodSeconds"])
        );
    } else {
        w!(w, 0, "Status:\t{phase}\n");
    }
    if !st(&status["reason"]).is_empty() {
        w!(w, 0, "Reason:\t{}\n", st(&status["reason"]));
    }
    if !st(&status["message"]).is_empty() {
        w!(w, 0, "Message:\t{}\n", st(&status["message"]));
    }
    let seccomp = &spec["securityContext"]["seccompProfile"];
    if seccomp.is_object() {
        w!(w, 0, "SeccompProfile:\t{}\n", st(&seccomp["type"]));
        if st(&seccomp["type"]) == "Localhost" {
            w!(
                w,
                0,
                "LocalhostProfile:\t{}\n",
                st(&seccomp["localhostProfile"])
            );
        }
    }
    w!(w, 0, "IP:\t{}\n", st(&status["podIP"]));
    let ips = arr(&status["podIPs"]);
    if ips.is_empty() {
        w.w(0, "IPs:\t<none>\n");
    } else {
        w.w(0, "IPs:\n");
        for ip in ips {
            w!(w, 1, "IP:\t{}\n", st(&ip["ip"]));
        }
    }
    if let Some(c) = controller(pod) {
        w!(w, 0, "Controlled By:\t{c}\n");
    }
    if !st(&status["nominatedNodeName"]).is_empty() {
        w!(
            w,
            0,
            "NominatedNodeName:\t{}\n",
            st(&status["nominatedNodeName"])
        );
    }
    if spec["resources"].is_object() {
        w.w(0, "Resources:\n");
        resources(&mut w, &spec["resources"], 1);
    }
    if !arr(&spec["initContainers"]).is_empty() {
        containers(
            &mut w,
            "Init Containers",
            arr(&spec["initContainers"]),
            Some(arr(&status["initContainerStatuses"])),
            Some(pod),
            "",
        );
    }
    containers(
        &mut w,
        "Containers",
        arr(&spec["containers"]),
        Some(arr(&status["containerStatuses"])),
        Some(pod),
        "",
    );
    if !arr(&spec["ephemeralContainers"]).is_empty() {
        containers(
            &mut w,
            "Ephemeral Containers",
            arr(&spec["ephemeralContainers"]),
            Some(arr(&status["ephemeralContainerStatuses"])),
            Some(pod),
            "",
        );
    }
    let conditions = arr(&status["conditions"]);
    if !arr(&spec["readinessGates"]).is_empty() {
        w.w(0, "Readiness Gates:\n  Type\tStatus\n");
        for g in arr(&spec["readinessGates"]) {
            let t = st(&g["conditionType"]);
            let s = conditions
                .iter()
                .find(|c| st(&c["type"]) == t)
                .map(|c| st(&c["status"]))
                .unwrap_or("<none>");
            w!(w, 1, "{t} \t{s} \n");
        }
    }
    if !conditions.is_empty() {
        w.w(0, "Conditions:\n  Type\tStatus\n");
        for c in conditions {
            w!(w, 1, "{} \t{} \n", st(&c["type"]), st(&c["status"]));
        }
    }
    volumes(&mut w, arr(&spec["volumes"]), "");
    let qos = match st(&status["qosClass"]) {
        "" => compute_qos(pod),
        q => q.to_string(),
    };
    w!(w, 0, "QoS Class:\t{qos}\n");
    labels(&mut w, "Node-Selectors", &spec["nodeSelector"]);
    tolerations(&mut w, "", "Tolerations", arr(&spec["tolerations"]));
    topology_spread(&mut w, arr(&spec["topologySpreadConstraints"]), "");
    maybe_events(&mut w, ev);
    w.finish()
}

/// qos.ComputePodQOS, for pods whose status does not say.
pub(super) fn compute_qos(pod: &Value) -> String {
    let mut any = false;
    let mut guaranteed = true;
    let spec = &pod["spec"];
    for c in arr(&spec["containers"])
        .iter()
        .chain(arr(&spec["initContainers"]))
    {
        let req = &c["resources"]["requests"];
        let lim = &c["resources"]["limits"];
        for r in ["cpu", "memory"] {
            let q = Quantity::from_json(&req[r]);
            let l = Quantity::from_json(&lim[r]);
            if q.nanos() != 0 || l.nanos() != 0 {
                any = true;
            }
            if l.nanos() == 0 || (req[r].is_string() && q.nanos() != l.nanos()) {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort".into()
    } else if guaranteed {
        "Guaranteed".into()
    } else {
        "Burstable".into()
    }
}

pub(super) fn tolerations(w: &mut W, indent: &str, title: &str, tols: &[Value]) {
    w!(w, 0, "{indent}{title}:\t");
    if tols.is_empty() {
        w.line("<none>");
        return;
    }
    let mut tols: Vec<&Value> = tols.iter().collect();
    tols.sort_by(|a, b| st(&a["key"]).cmp(st(&b["key"])));
    for (i, t) in tols.iter().enumerate() {
        if i != 0 {
            w.w(0, "\t");
        }
        let (key, value, effect) = (st(&t["key"]), st(&t["value"]), st(&t["effect"]));
        let mut s = key.to_string();
        if !value.is_empty() {
            s += &format!("={value}");
        }
        if !effect.is_empty() {
            s += &format!(":{effect}");
        }
        if st(&t["operator"]) == "Exists" && value.is_empty() {
            if !key.is_empty() || !effect.is_empty() {
                s += " op=Exists";
            } else {
                s += "op=Exists";
            }
        }
        if let Some(secs) = t["tolerationSeconds"].as_i64() {
            s += &format!(" for {secs}s");
        }
        w!(w, 0, "{s}\n");
    }
}

pub(super) fn topology_spread(w: &mut W, tscs: &[Value], space: &str) {
    if tscs.is_empty() {
        return;
    }
    let mut tscs: Vec<&Value> = tscs.iter().collect();
    tscs.sort_by(|a, b| st(&a["topologyKey"]).cmp(st(&b["topologyKey"])));
    w!(w, 0, "{space}Topology Spread Constraints:\t");
    for (i, t) in tscs.iter().enumerate() {
        if i != 0 {
            w!(w, 0, "{space}\t");
        }
        w!(
            w,
            0,
            "{}:{} when max skew {} is exceeded",
            st(&t["topologyKey"]),
            st(&t["whenUnsatisfiable"]),
            int(&t["maxSkew"])
        );
        if t["labelSelector"].is_object() {
            w!(
                w,
                0,
                " for selector {}",
                format_selector(&t["labelSelector"])
            );
        }
        w.w(0, "\n");
    }
}

pub(super) fn resources(w: &mut W, r: &Value, level: usize) {
    for (title, key) in [("Limits", "limits"), ("Requests", "requests")] {
        let list = string_map(&r[key]);
        if list.is_empty() {
            continue;
        }
        w!(w, level, "{title}:\n");
        for (name, q) in list {
            let q = Quantity::parse(&q).map(|q| q.to_string()).unwrap_or(q);
            w!(w, level + 1, "{name}:\t{q}\n");
        }
    }
}

pub(super) fn volumes(w: &mut W, vols: &[Value], space: &str) {
    if vols.is_empty() {
        w!(w, 0, "{space}Volumes:\t<none>\n");
        return;
    }
    w!(w, 0, "{space}Volumes:\n");
    let name_indent = if space.is_empty() { "" } else { " " };
    for v in vols {
        w!(w, 1, "{name_indent}{}:\n", st(&v["name"]));
        if let Some(h) = v.get("hostPath") {
            w!(
                w,
                2,
                "Type:\tHostPath (bare host directory volume)\n    Path:\t{}\n    HostPathType:\t{}\n",
                st(&h["path"]),
                or_none(st(&h["type"]))
            );
        } else if let Some(e) = v.get("emptyDir") {
            let limit = Quantity::from_json(&e["sizeLimit"]);
            let limit = if limit.nanos() > 0 {
                limit.to_string()
            } else {
                "<unset>".into()
            };
            w!(
                w,
                2,
                "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n    Medium:\t{}\n    SizeLimit:\t{limit}\n",
                st(&e["medium"])
            );
        } else if let Some(s) = v.get("secret") {
            w!(
                w,
                2,
                "Type:\tSecret (a volume populated by a Secret)\n    SecretName:\t{}\n    Optional:\t{}\n",
                st(&s["secretName"]),
                go_bool(&s["optional"])
            );
        } else if let Some(c) = v.get("configMap") {
            w!(
                w,
                2,
                "Type:\tConfigMap (a volume populated by a ConfigMap)\n    Name:\t{}\n    Optional:\t{}\n",
                st(&c["name"]),
                go_bool(&c["optional"])
            );
        } else if let Some(c) = v.get("persistentVolumeClaim") {
            w!(
                w,
                2,
                "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)\n    ClaimName:\t{}\n    ReadOnly:\t{}\n",
                st(&c["claimName"]),
                go_bool(&c["readOnly"])
            );
        } else if let Some(d) = v.get("downwardAPI") {
            w.w(
                2,
                "Type:\tDownwardAPI (a volume populated by information about the pod)\n    Items:\n",
            );
            for item in arr(&d["items"]) {
                if item["fieldRef"].is_object() {
                    w!(
                        w,
                        3,
                        "{} -> {}\n",
                        st(&item["fieldRef"]["fieldPath"]),
                        st(&item["path"])
                    );
                }
                if item["resourceFieldRef"].is_object() {
                    w!(
                        w,
                        3,
                        "{} -> {}\n",
                        st(&item["resourceFieldRef"]["resource"]),
                        st(&item["path"])
                    );
                }
            }
        } else if let Some(p) = v.get("projected") {
            w.w(
                2,
                "Type:\tProjected (a volume that contains injected data from multiple sources)\n",
            );
            for s in arr(&p["sources"]) {
                if s["secret"].is_object() {
                    w!(
                        w,
                        2,
                        "SecretName:\t{}\n    SecretOptionalName:\t{}\n",
                        st(&s["secret"]["name"]),
                        opt_bool(&s["secret"]["optional"])
                    );
                } else if s["downwardAPI"].is_object() {
                    w.w(2, "DownwardAPI:\ttrue\n");
                } else if s["configMap"].is_object() {
                    w!(
                        w,
                        2,
                        "ConfigMapName:\t{}\n    ConfigMapOptional:\t{}\n",
                        st(&s["configMap"]["name"]),
                        opt_bool(&s["configMap"]["optional"])
                    );
                } else if s["serviceAccountToken"].is_object() {
                    w!(
                        w,
                        2,
                        "TokenExpirationSeconds:\t{}\n",
                        int(&s["serviceAccountToken"]["expirationSeconds"])
                    );
                }
            }
        } else if let Some(n) = v.get("nfs") {
            w!(
                w,
                2,
                "Type:\tNFS (an NFS mount that lasts the lifetime of a pod)\n    Server:\t{}\n    Path:\t{}\n    ReadOnly:\t{}\n",
                st(&n["server"]),
                st(&n["path"]),
                go_bool(&n["readOnly"])
            );
        } else {
            w.w(1, "<unknown>\n");
        }
    }
}

/// DescribePodTemplate, as deployments and replica sets show theirs.
pub fn pod_template(w: &mut W, t: &Value) {
    w.w(0, "Pod Template:\n");
    if !t.is_object() {
        w.w(1, "<unset>");
        return;
    }
    let spec = &t["spec"];
    labels(w, "  Labels", &t["metadata"]["labels"]);
    if !string_map(&t["metadata"]["annotations"]).is_empty() {
        annotations(w, "  Annotations", &t["metadata"]["annotations"]);
    }
    if !st(&spec["serviceAccountName"]).is_empty() {
        w!(
            w,
            1,
            "Service Account:\t{}\n",
            st(&spec["serviceAccountName"])
        );
    }
    if !arr(&spec["initContainers"]).is_empty() {
        containers(
            w,
            "Init Containers",
            arr(&spec["initContainers"]),
            None,
            None,
            "  ",
        );
    }
    containers(w, "Containers", arr(&spec["containers"]), None, None, "  ");
    volumes(w, arr(&spec["volumes"]), "  ");
    topology_spread(w, arr(&spec["topologySpreadConstraints"]), "  ");
    if !st(&spec["priorityClassName"]).is_empty() {
        w!(
            w,
            1,
            "Priority Class Name:\t{}\n",
            st(&spec["priorityClassName"])
        );
    }
    labels(w, "  Node-Selectors", &spec["nodeSelector"]);
    tolerations(w, "  ", "Tolerations", arr(&spec["tolerations"]));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bootcamp_pod() -> Value {
        json!({
            "metadata": {"name": "boot-686698d4f-lr885", "namespace": "desceng",
                "labels": {"run": "boot", "pod-template-hash": "686698d4f"},
                "ownerReferences": [{"kind": "ReplicaSet", "name": "boot-686698d4f", "controller": true}]},
            "spec": {"priority": 0, "serviceAccountName": "default", "nodeName": "vm",
                "containers": [{"name": "boot", "image": "gcr.io/google-samples/kubernetes-bootcamp:v1",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}]}],
                "tolerations": [
                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]},
            "status": {"phase": "Running", "hostIP": "192.0.2.2", "podIP": "10.244.0.7",
                "podIPs": [{"ip": "10.244.0.7"}], "qosClass": "BestEffort",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "boot", "containerID": "libcontainer://db22", "imageID": "img@sha256:ed",
                    "ready": true, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}
        })
    }

    #[test]
    fn pod_layout() {
        let out = pod(&bootcamp_pod(), Some(&[]));
        let want = "\
Name:             boot-686698d4f-lr885
Namespace:        desceng
Priority:         0
Service Account:  default
Node:             vm/192.0.2.2
Labels:           pod-template-hash=686698d4f
                  run=boot
Annotations:      <none>
Status:           Running
IP:               10.244.0.7
IPs:
  IP:           10.244.0.7
Controlled By:  ReplicaSet/boot-686698d4f
Containers:
  boot:
    Container ID:   libcontainer://db22
    Image:          gcr.io/google-samples/kubernetes-bootcamp:v1
    Image ID:       img@sha256:ed
    Port:           8080/TCP
    Host Port:      0/TCP
    State:          Waiting
      Reason:       ContainerCreating
    Ready:          True
    Restart Count:  0
    Environment:    <none>
    Mounts:         <none>
Conditions:
  Type           Status
  Ready          True 
Volumes:         <none>
QoS Class:       BestEffort
Node-Selectors:  <none>
Tolerations:     node.kubernetes.io/not-ready:NoExecute op=Exists for 300s
                 node.kubernetes.io/unreachable:NoExecute op=Exists for 300s
Events:          <none>
";
        assert_eq!(out, want);
    }
}
