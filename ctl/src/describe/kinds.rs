//! The describers: each turns an object (and what was fetched beside it) into kubectl's text.
//! Pure functions of JSON, so the layouts can be tested without a server.

use std::collections::BTreeMap;

use serde_json::Value;

use super::writer::{
    annotations, arr, date, int, labels, or_none, since, st, string_map, w, Quantity, W,
};

/// The events section: `Events:  <none>`, or the table, oldest first.
pub fn events(w: &mut W, events: &[Value]) {
    if events.is_empty() {
        w.w(0, "Events:\t<none>\n");
        return;
    }
    w.flush();
    // Go's unstable sort by last timestamp: ties stay in the order kubectl gives them.
    let mut sorted: Vec<&Value> = events.iter().collect();
    let last = |e: &Value| super::writer::parse_time(&e["lastTimestamp"]);
    super::gosort::sort(&mut sorted, |a, b| last(a) < last(b));
    w.w(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n");
    w.w(1, "----\t------\t----\t----\t-------\n");
    for e in sorted {
        let first = if e["eventTime"].is_string() {
            since(&e["eventTime"])
        } else {
            since(&e["firstTimestamp"])
        };
        let count = int(&e["count"]);
        let interval = if e["series"].is_object() {
            format!(
                "{} (x{} over {first})",
                since(&e["series"]["lastObservedTime"]),
                int(&e["series"]["count"])
            )
        } else if count > 1 {
            format!("{} (x{count} over {first})", since(&e["lastTimestamp"]))
        } else {
            first
        };
        let mut source = st(&e["source"]["component"]);
        if source.is_empty() {
            source = st(&e["reportingComponent"]);
        }
        w!(
            w,
            1,
            "{}\t{}\t{interval}\t{source}\t{}\n",
            st(&e["type"]),
            st(&e["reason"]),
            st(&e["message"]).trim()
        );
    }
}

fn maybe_events(w: &mut W, ev: Option<&[Value]>) {
    if let Some(ev) = ev {
        events(w, ev);
    }
}

/// `Kind/name` of the object's controller, if any.
fn controller(obj: &Value) -> Option<String> {
    arr(&obj["metadata"]["ownerReferences"])
        .iter()
        .find(|r| r["controller"].as_bool() == Some(true))
        .map(|r| format!("{}/{}", st(&r["kind"]), st(&r["name"])))
}

/// metav1.FormatLabelSelector: `k=v,k2 in (a,b)`, sorted by key; `<none>` when empty.
pub fn format_selector(sel: &Value) -> String {
    let mut reqs: Vec<(String, String)> = string_map(&sel["matchLabels"])
        .into_iter()
        .map(|(k, v)| (k.clone(), format!("{k}={v}")))
        .collect();
    for e in arr(&sel["matchExpressions"]) {
        let key = st(&e["key"]).to_string();
        let mut values: Vec<&str> = arr(&e["values"]).iter().map(st).collect();
        values.sort();
        let text = match st(&e["operator"]) {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            op => format!("{key} {op} ({})", values.join(",")),
        };
        reqs.push((key, text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    let s: Vec<String> = reqs.into_iter().map(|(_, t)| t).collect();
    if s.is_empty() {
        "<none>".into()
    } else {
        s.join(",")
    }
}

/// labels.FormatLabels: `k=v,k2=v2` or `<none>`.
fn format_labels(m: &Value) -> String {
    let m = string_map(m);
    if m.is_empty() {
        return "<none>".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn go_bool(v: &Value) -> &'static str {
    if v.as_bool() == Some(true) {
        "true"
    } else {
        "false"
    }
}

/// A Go `%v` of an optional bool pointer as kubectl prints it (`<nil>` when unset).
fn opt_bool(v: &Value) -> String {
    match v.as_bool() {
        Some(b) => b.to_string(),
        None => "<nil>".into(),
    }
}

fn int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => "<nil>".into(),
    }
}

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
fn compute_qos(pod: &Value) -> String {
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

fn tolerations(w: &mut W, indent: &str, title: &str, tols: &[Value]) {
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

fn topology_spread(w: &mut W, tscs: &[Value], space: &str) {
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

fn resources(w: &mut W, r: &Value, level: usize) {
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

/// describeContainers: statuses None for a pod template.
fn containers(
    w: &mut W,
    label: &str,
    containers: &[Value],
    statuses: Option<&[Value]>,
    pod: Option<&Value>,
    space: &str,
) {
    let none = if containers.is_empty() { " <none>" } else { "" };
    w!(w, 0, "{space}{label}:{none}\n");
    for c in containers {
        let name = st(&c["name"]);
        let status = statuses
            .unwrap_or(&[])
            .iter()
            .find(|s| st(&s["name"]) == name);
        let name_indent = if space.is_empty() { "" } else { " " };
        w!(w, 1, "{name_indent}{name}:\n");
        if let Some(s) = status {
            w!(w, 2, "Container ID:\t{}\n", st(&s["containerID"]));
        }
        w!(w, 2, "Image:\t{}\n", st(&c["image"]));
        if let Some(s) = status {
            w!(w, 2, "Image ID:\t{}\n", st(&s["imageID"]));
        }
        let proto = |p: &Value| match st(&p["protocol"]) {
            "" => "TCP".to_string(),
            x => x.to_string(),
        };
        let ports: Vec<String> = arr(&c["ports"])
            .iter()
            .map(|p| format!("{}/{}", int(&p["containerPort"]), proto(p)))
            .collect();
        let host_ports: Vec<String> = arr(&c["ports"])
            .iter()
            .map(|p| format!("{}/{}", int(&p["hostPort"]), proto(p)))
            .collect();
        let (ports, host_ports) = (ports.join(", "), host_ports.join(", "));
        if ports.contains(',') {
            w!(w, 2, "Ports:\t{ports}\n");
        } else {
            w!(w, 2, "Port:\t{}\n", or_none(&ports));
        }
        if host_ports.contains(',') {
            w!(w, 2, "Host Ports:\t{host_ports}\n");
        } else {
            w!(w, 2, "Host Port:\t{}\n", or_none(&host_ports));
        }
        let seccomp = &c["securityContext"]["seccompProfile"];
        if seccomp.is_object() {
            w!(w, 2, "SeccompProfile:\t{}\n", st(&seccomp["type"]));
            if st(&seccomp["type"]) == "Localhost" {
                w!(
                    w,
                    3,
                    "LocalhostProfile:\t{}\n",
                    st(&seccomp["localhostProfile"])
                );
            }
        }
        for (title, key) in [("Command", "command"), ("Args", "args")] {
            if !arr(&c[key]).is_empty() {
                w!(w, 2, "{title}:\n");
                for a in arr(&c[key]) {
                    for s in st(a).split('\n') {
                        w!(w, 3, "{s}\n");
                    }
                }
            }
        }
        if let Some(s) = status {
            container_state(w, "State", &s["state"]);
            if s["lastState"]["terminated"].is_object() {
                container_state(w, "Last State", &s["lastState"]);
            }
            let ready = if s["ready"].as_bool() == Some(true) {
                "True"
            } else {
                "False"
            };
            w!(w, 2, "Ready:\t{ready}\n");
            w!(w, 2, "Restart Count:\t{}\n", int(&s["restartCount"]));
        }
        resources(w, &c["resources"], 2);
        for (title, key) in [
            ("Liveness", "livenessProbe"),
            ("Readiness", "readinessProbe"),
            ("Startup", "startupProbe"),
        ] {
            if c[key].is_object() {
                w!(w, 2, "{title}:\t{}\n", probe(&c[key]));
            }
        }
        if !arr(&c["envFrom"]).is_empty() {
            w.w(2, "Environment Variables from:\n");
            for e in arr(&c["envFrom"]) {
                let (from, r) = if e["configMapRef"].is_object() {
                    ("ConfigMap", &e["configMapRef"])
                } else {
                    ("Secret", &e["secretRef"])
                };
                let optional = go_bool(&r["optional"]);
                let name = st(&r["name"]);
                match st(&e["prefix"]) {
                    "" => w!(w, 3, "{name}\t{from}\tOptional: {optional}\n"),
                    p => w!(
                        w,
                        3,
                        "{name}\t{from} with prefix '{p}'\tOptional: {optional}\n"
                    ),
                }
            }
        }
        env(w, c, pod);
        let mounts = arr(&c["volumeMounts"]);
        let none = if mounts.is_empty() { "\t<none>" } else { "" };
        w!(w, 2, "Mounts:{none}\n");
        let mut mounts: Vec<&Value> = mounts.iter().collect();
        mounts.sort_by(|a, b| st(&a["mountPath"]).cmp(st(&b["mountPath"])));
        for m in mounts {
            let mut flags = vec![if m["readOnly"].as_bool() == Some(true) {
                "ro".to_string()
            } else {
                "rw".to_string()
            }];
            if !st(&m["subPath"]).is_empty() {
                flags.push(format!("path={:?}", st(&m["subPath"])));
            }
            w!(
                w,
                3,
                "{} from {} ({})\n",
                st(&m["mountPath"]),
                st(&m["name"]),
                flags.join(",")
            );
        }
        let devices = arr(&c["volumeDevices"]);
        if !devices.is_empty() {
            w!(w, 2, "Devices:{none}\n");
            let mut devices: Vec<&Value> = devices.iter().collect();
            devices.sort_by(|a, b| st(&a["devicePath"]).cmp(st(&b["devicePath"])));
            for d in devices {
                w!(w, 3, "{} from {}\n", st(&d["devicePath"]), st(&d["name"]));
            }
        }
    }
}

fn env(w: &mut W, c: &Value, pod: Option<&Value>) {
    let env = arr(&c["env"]);
    let none = if env.is_empty() { "\t<none>" } else { "" };
    w!(w, 2, "Environment:{none}\n");
    for e in env {
        let name = st(&e["name"]);
        let from = &e["valueFrom"];
        if !from.is_object() {
            for (i, s) in st(&e["value"]).split('\n').enumerate() {
                if i == 0 {
                    w!(w, 3, "{name}:\t{s}\n");
                } else {
                    w!(w, 3, "\t{s}\n");
                }
            }
            continue;
        }
        if from["fieldRef"].is_object() {
            let path = st(&from["fieldRef"]["fieldPath"]);
            let value = pod.map(|p| pod_field(p, path)).unwrap_or_default();
            w!(
                w,
                3,
                "{name}:\t{value} ({}:{path})\n",
                st(&from["fieldRef"]["apiVersion"])
            );
        } else if from["resourceFieldRef"].is_object() {
            let r = &from["resourceFieldRef"];
            let res = st(&r["resource"]);
            let mut value = resource_field(c, res, &r["divisor"]);
            if value == "0" && (res == "limits.cpu" || res == "limits.memory") {
                value = "node allocatable".into();
            }
            w!(w, 3, "{name}:\t{value} ({res})\n");
        } else if from["secretKeyRef"].is_object() {
            let r = &from["secretKeyRef"];
            w!(
                w,
                3,
                "{name}:\t<set to the key '{}' in secret '{}'>\tOptional: {}\n",
                st(&r["key"]),
                st(&r["name"]),
                go_bool(&r["optional"])
            );
        } else if from["configMapKeyRef"].is_object() {
            let r = &from["configMapKeyRef"];
            w!(
                w,
                3,
                "{name}:\t<set to the key '{}' of config map '{}'>\tOptional: {}\n",
                st(&r["key"]),
                st(&r["name"]),
                go_bool(&r["optional"])
            );
        }
    }
}

/// ExtractContainerResourceValue: a container's request or limit in units of the divisor,
/// rounded up (`""` for what the downward API does not offer).
fn resource_field(c: &Value, res: &str, divisor: &Value) -> String {
    let Some((kind, r)) = res.split_once('.') else {
        return String::new();
    };
    if !matches!(kind, "limits" | "requests")
        || !(matches!(r, "cpu" | "memory" | "ephemeral-storage") || r.starts_with("hugepages-"))
    {
        return String::new();
    }
    let q = Quantity::from_json(&c["resources"][kind][r]);
    let mut d = Quantity::from_json(divisor);
    if d.nanos() == 0 {
        d = Quantity::parse("1").unwrap_or(Quantity::ZERO);
    }
    let (v, dv) = if r == "cpu" {
        (q.milli_value(), d.milli_value())
    } else {
        (q.value(), d.value())
    };
    if dv == 0 {
        return String::new();
    }
    ((v as f64 / dv as f64).ceil() as i64).to_string()
}

/// The value a downward-API field path gives for this pod.
fn pod_field(pod: &Value, path: &str) -> String {
    let m = &pod["metadata"];
    let bracket = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix("['"))
            .and_then(|r| r.strip_suffix("']"))
            .map(str::to_string)
    };
    if let Some(k) = bracket("metadata.labels") {
        return st(&m["labels"][k]).to_string();
    }
    if let Some(k) = bracket("metadata.annotations") {
        return st(&m["annotations"][k]).to_string();
    }
    match path {
        "metadata.name" => st(&m["name"]).into(),
        "metadata.namespace" => st(&m["namespace"]).into(),
        "metadata.uid" => st(&m["uid"]).into(),
        "spec.nodeName" => st(&pod["spec"]["nodeName"]).into(),
        "spec.serviceAccountName" => st(&pod["spec"]["serviceAccountName"]).into(),
        "status.hostIP" => st(&pod["status"]["hostIP"]).into(),
        "status.podIP" => st(&pod["status"]["podIP"]).into(),
        "status.podIPs" => arr(&pod["status"]["podIPs"])
            .iter()
            .map(|i| st(&i["ip"]))
            .collect::<Vec<_>>()
            .join(","),
        "status.hostIPs" => arr(&pod["status"]["hostIPs"])
            .iter()
            .map(|i| st(&i["ip"]))
            .collect::<Vec<_>>()
            .join(","),
        _ => String::new(),
    }
}

fn container_state(w: &mut W, name: &str, state: &Value) {
    if state["running"].is_object() {
        w!(w, 2, "{name}:\tRunning\n");
        w!(w, 3, "Started:\t{}\n", date(&state["running"]["startedAt"]));
    } else if state["waiting"].is_object() {
        w!(w, 2, "{name}:\tWaiting\n");
        if !st(&state["waiting"]["reason"]).is_empty() {
            w!(w, 3, "Reason:\t{}\n", st(&state["waiting"]["reason"]));
        }
    } else if state["terminated"].is_object() {
        let t = &state["terminated"];
        w!(w, 2, "{name}:\tTerminated\n");
        if !st(&t["reason"]).is_empty() {
            w!(w, 3, "Reason:\t{}\n", st(&t["reason"]));
        }
        if !st(&t["message"]).is_empty() {
            w!(w, 3, "Message:\t{}\n", st(&t["message"]));
        }
        w!(w, 3, "Exit Code:\t{}\n", int(&t["exitCode"]));
        if int(&t["signal"]) > 0 {
            w!(w, 3, "Signal:\t{}\n", int(&t["signal"]));
        }
        w!(w, 3, "Started:\t{}\n", date(&t["startedAt"]));
        w!(w, 3, "Finished:\t{}\n", date(&t["finishedAt"]));
    } else {
        w!(w, 2, "{name}:\tWaiting\n");
    }
}

/// DescribeProbe: `http-get http://:8080/ delay=0s timeout=1s period=10s #success=1 #failure=3`.
pub fn probe(p: &Value) -> String {
    // The values as stored: a server that does not default them shows zeros, as kubectl does.
    let num = |k: &str| int(&p[k]);
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        num("initialDelaySeconds"),
        num("timeoutSeconds"),
        num("periodSeconds"),
        num("successThreshold"),
        num("failureThreshold")
    );
    if p["exec"].is_object() {
        let cmd: Vec<&str> = arr(&p["exec"]["command"]).iter().map(st).collect();
        format!("exec [{}] {attrs}", cmd.join(" "))
    } else if p["httpGet"].is_object() {
        let h = &p["httpGet"];
        let scheme = st(&h["scheme"]).to_ascii_lowercase();
        let port = int_or_string(&h["port"]);
        let host = st(&h["host"]);
        let host = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        // Go's url.URL.String(): `//host/path` without a scheme; a relative path gets a `/`.
        let scheme = if scheme.is_empty() {
            String::new()
        } else {
            format!("{scheme}:")
        };
        let path = st(&h["path"]);
        let slash = if !path.is_empty() && !path.starts_with('/') {
            "/"
        } else {
            ""
        };
        format!("http-get {scheme}//{host}{slash}{path} {attrs}")
    } else if p["tcpSocket"].is_object() {
        let t = &p["tcpSocket"];
        format!(
            "tcp-socket {}:{} {attrs}",
            st(&t["host"]),
            int_or_string(&t["port"])
        )
    } else if p["grpc"].is_object() {
        format!(
            "grpc <pod>:{} {} {attrs}",
            int(&p["grpc"]["port"]),
            st(&p["grpc"]["service"])
        )
    } else {
        format!("unknown {attrs}")
    }
}

fn volumes(w: &mut W, vols: &[Value], space: &str) {
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
pub(crate) fn pod_template(w: &mut W, t: &Value) {
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

fn status_conditions(w: &mut W, conditions: &[Value]) {
    if conditions.is_empty() {
        return;
    }
    w.w(0, "Conditions:\n  Type\tStatus\tReason\n");
    w.w(1, "----\t------\t------\n");
    for c in conditions {
        w!(
            w,
            1,
            "{} \t{}\t{}\n",
            st(&c["type"]),
            st(&c["status"]),
            st(&c["reason"])
        );
    }
}

fn replica_sets_line(rss: &[Value]) -> String {
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
fn selector_string(sel: &Value) -> String {
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

/// formatEndpointSlices for one service port: up to three ready `ip:port`, then `+ N more...`.
fn endpoints_of(slices: &[Value], port_name: &str) -> String {
    if slices.is_empty() {
        return "<none>".into();
    }
    let max = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0;
    let ready = |e: &Value| e["conditions"]["ready"].as_bool() != Some(false);
    for s in slices {
        let ports = arr(&s["ports"]);
        if ports.is_empty() {
            for e in arr(&s["endpoints"]) {
                if list.len() == max {
                    more = true;
                }
                if !ready(e) {
                    continue;
                }
                if !more {
                    list.push(st(&e["addresses"][0]).to_string());
                }
                count += 1;
            }
        } else {
            for p in ports {
                if st(&p["name"]) != port_name {
                    continue;
                }
                for e in arr(&s["endpoints"]) {
                    if list.len() == max {
                        more = true;
                    }
                    if !ready(e) {
                        continue;
                    }
                    if !more {
                        let addr = st(&e["addresses"][0]);
                        let port = int(&p["port"]);
                        list.push(if addr.contains(':') {
                            format!("[{addr}]:{port}")
                        } else {
                            format!("{addr}:{port}")
                        });
                    }
                    count += 1;
                }
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count - max)
    } else {
        ret
    }
}

pub fn service(svc: &Value, slices: &[Value], ev: Option<&[Value]>) -> String {
    let mut w = W::default();
    let (m, spec, status) = (&svc["metadata"], &svc["spec"], &svc["status"]);
    w!(w, 0, "Name:\t{}\n", st(&m["name"]));
    w!(w, 0, "Namespace:\t{}\n", st(&m["namespace"]));
    labels(&mut w, "Labels", &m["labels"]);
    annotations(&mut w, "Annotations", &m["annotations"]);
    w!(w, 0, "Selector:\t{}\n", format_labels(&spec["selector"]));
    w!(w, 0, "Type:\t{}\n", st(&spec["type"]));
    if spec["ipFamilyPolicy"].is_string() {
        w!(w, 0, "IP Family Policy:\t{}\n", st(&spec["ipFamilyPolicy"]));
    }
    let families: Vec<&str> = arr(&spec["ipFamilies"]).iter().map(st).collect();
    w!(w, 0, "IP Families:\t{}\n", or_none(&families.join(",")));
    w!(w, 0, "IP:\t{}\n", st(&spec["clusterIP"]));
    let ips: Vec<&str> = arr(&spec["clusterIPs"]).iter().map(st).collect();
    w!(w, 0, "IPs:\t{}\n", or_none(&ips.join(",")));
    let external: Vec<&str> = arr(&spec["externalIPs"]).iter().map(st).collect();
    if !external.is_empty() {
        w!(w, 0, "External IPs:\t{}\n", external.join(","));
    }
    if !st(&spec["loadBalancerIP"]).is_empty() {
        w!(
            w,
            0,
            "Desired LoadBalancer IP:\t{}\n",
            st(&spec["loadBalancerIP"])
        );
    }
    if !st(&spec["externalName"]).is_empty() {
        w!(w, 0, "External Name:\t{}\n", st(&spec["externalName"]));
    }
    let ingress = arr(&status["loadBalancer"]["ingress"]);
    if !ingress.is_empty() {
        let list: Vec<String> = ingress
            .iter()
            .map(|i| {
                if !st(&i["ip"]).is_empty() {
                    match i["ipMode"].as_str() {
                        Some(mode) => format!("{} ({mode})", st(&i["ip"])),
                        None => st(&i["ip"]).to_string(),
                    }
                } else {
                    st(&i["hostname"]).to_string()
                }
            })
            .collect();
        w!(w, 0, "LoadBalancer Ingress:\t{}\n", list.join(", "));
    }
    for p in arr(&spec["ports"]) {
        let name = match st(&p["name"]) {
            "" => "<unset>",
            n => n,
        };
        let proto = st(&p["protocol"]);
        w!(w, 0, "Port:\t{name}\t{}/{proto}\n", int(&p["port"]));
        w!(
            w,
            0,
            "TargetPort:\t{}/{proto}\n",
            int_or_string(&p["targetPort"])
        );
        if int(&p["nodePort"]) != 0 {
            w!(w, 0, "NodePort:\t{name}\t{}/{proto}\n", int(&p["nodePort"]));
        }
        w!(
            w,
            0,
            "Endpoints:\t{}\n",
            endpoints_of(slices, st(&p["name"]))
        );
    }
    w!(
        w,
        0,
        "Session Affinity:\t{}\n",
        st(&spec["sessionAffinity"])
    );
    if !st(&spec["externalTrafficPolicy"]).is_empty() {
        w!(
            w,
            0,
            "External Traffic Policy:\t{}\n",
            st(&spec["externalTrafficPolicy"])
        );
    }
    if spec["internalTrafficPolicy"].is_string() {
        w!(
            w,
            0,
            "Internal Traffic Policy:\t{}\n",
            st(&spec["internalTrafficPolicy"])
        );
    }
    if int(&spec["healthCheckNodePort"]) != 0 {
        w!(
            w,
            0,
            "HealthCheck NodePort:\t{}\n",
            int(&spec["healthCheckNodePort"])
        );
    }
    let ranges: Vec<&str> = arr(&spec["loadBalancerSourceRanges"])
        .iter()
        .map(st)
        .collect();
    if !ranges.is_empty() {
        w!(w, 0, "LoadBalancer Source Ranges:\t{}\n", ranges.join(","));
    }
    maybe_events(&mut w, ev);
    w.finish()
}

pub fn endpoints(ep: &Value, ev: Option<&[Value]>) -> String {
    let mut w = W::default();
    let m = &ep["metadata"];
    w!(w, 0, "Name:\t{}\n", st(&m["name"]));
    w!(w, 0, "Namespace:\t{}\n", st(&m["namespace"]));
    labels(&mut w, "Labels", &m["labels"]);
    annotations(&mut w, "Annotations", &m["annotations"]);
    w.w(0, "Subsets:\n");
    for s in arr(&ep["subsets"]) {
        let ips = |k: &str| {
            let l: Vec<&str> = arr(&s[k]).iter().map(|a| st(&a["ip"])).collect();
            or_none(&l.join(",")).to_string()
        };
        w!(w, 1, "Addresses:\t{}\n", ips("addresses"));
        w!(w, 1, "NotReadyAddresses:\t{}\n", ips("notReadyAddresses"));
        let ports = arr(&s["ports"]);
        if !ports.is_empty() {
            w.w(1, "Ports:\n");
            w.w(2, "Name\tPort\tProtocol\n");
            w.w(2, "----\t----\t--------\n");
            for p in ports {
                let name = match st(&p["name"]) {
                    "" => "<unset>",
                    n => n,
                };
                w!(
                    w,
                    2,
                    "{name}\t{}\t{}\n",
                    int(&p["port"]),
                    st(&p["protocol"])
                );
            }
        }
        w.w(0, "\n");
    }
    maybe_events(&mut w, ev);
    w.finish()
}

/// A namespace; quotas and limit ranges are None when the server has no such resources.
pub fn namespace(ns: &Value, quotas: Option<&[Value]>, limits: Option<&[Value]>) -> String {
    let mut w = W::default();
    let m = &ns["metadata"];
    w!(w, 0, "Name:\t{}\n", st(&m["name"]));
    labels(&mut w, "Labels", &m["labels"]);
    annotations(&mut w, "Annotations", &m["annotations"]);
    w!(w, 0, "Status:\t{}\n", st(&ns["status"]["phase"]));
    let conditions = arr(&ns["status"]["conditions"]);
    if !conditions.is_empty() {
        w.w(0, "Conditions:\n");
        w.w(1, "Type\tStatus\tLastTransitionTime\tReason\tMessage\n");
        w.w(1, "----\t------\t------------------\t------\t-------\n");
        for c in conditions {
            w!(
                w,
                1,
                "{}\t{}\t{}\t{}\t{}\n",
                st(&c["type"]),
                st(&c["status"]),
                date(&c["lastTransitionTime"]),
                st(&c["reason"]),
                st(&c["message"])
            );
        }
    }
    if let Some(quotas) = quotas {
        w.w(0, "\n");
        if quotas.is_empty() {
            w.w(0, "No resource quota.\n");
        } else {
            let mut quotas: Vec<&Value> = quotas.iter().collect();
            quotas.sort_by(|a, b| st(&a["metadata"]["name"]).cmp(st(&b["metadata"]["name"])));
            w.w(0, "Resource Quotas\n");
            for q in quotas {
                w!(w, 1, "Name:\t{}\n", st(&q["metadata"]["name"]));
                let mut scopes: Vec<&str> = arr(&q["spec"]["scopes"]).iter().map(st).collect();
                if !scopes.is_empty() {
                    scopes.sort();
                    w!(w, 1, "Scopes:\t{}\n", scopes.join(", "));
                }
                w.w(1, "Resource\tUsed\tHard\n");
                w.w(1, "--------\t---\t---\n");
                let used = &q["status"]["used"];
                for (r, hard) in string_map(&q["status"]["hard"]) {
                    let canon = |s: &str| {
                        Quantity::parse(s)
                            .map(|q| q.to_string())
                            .unwrap_or(s.to_string())
                    };
                    w!(w, 1, "{r}\t{}\t{}\n", canon(st(&used[&r])), canon(&hard));
                }
            }
        }
    }
    if let Some(limits) = limits {
        w.w(0, "\n");
        if limits.is_empty() {
            w.w(0, "No LimitRange resource.\n");
        } else {
            w.w(0, "Resource Limits\n Type\tResource\tMin\tMax\tDefault Request\tDefault Limit\tMax Limit/Request Ratio\n");
            w.w(0, " ----\t--------\t---\t---\t---------------\t-------------\t-----------------------\n");
            for lr in limits {
                for item in arr(&lr["spec"]["limits"]) {
                    let fields = [
                        "min",
                        "max",
                        "defaultRequest",
                        "default",
                        "maxLimitRequestRatio",
                    ];
                    let mut names: Vec<String> = fields
                        .iter()
                        .flat_map(|f| string_map(&item[*f]).into_keys())
                        .collect();
                    names.sort();
                    names.dedup();
                    for r in names {
                        let v: Vec<String> = fields
                            .iter()
                            .map(|f| match item[*f][&r].as_str() {
                                Some(s) => Quantity::parse(s)
                                    .map(|q| q.to_string())
                                    .unwrap_or(s.to_string()),
                                None => "-".into(),
                            })
                            .collect();
                        w!(
                            w,
                            0,
                            " {}\t{r}\t{}\t{}\t{}\t{}\t{}\n",
                            st(&item["type"]),
                            v[0],
                            v[1],
                            v[2],
                            v[3],
                            v[4]
                        );
                    }
                }
            }
        }
    }
    w.finish()
}

/// A pod's requests and limits (resourcehelper.PodRequestsAndLimits): the containers' sum,
/// at least each init container's, plus the overhead.
fn pod_requests_and_limits(
    pod: &Value,
) -> (BTreeMap<String, Quantity>, BTreeMap<String, Quantity>) {
    let spec = &pod["spec"];
    let mut out = (BTreeMap::new(), BTreeMap::new());
    for (i, key) in ["requests", "limits"].iter().enumerate() {
        let map: &mut BTreeMap<String, Quantity> = if i == 0 { &mut out.0 } else { &mut out.1 };
        for c in arr(&spec["containers"]) {
            for (r, q) in string_map(&c["resources"][key]) {
                let q = Quantity::parse(&q).unwrap_or(Quantity::ZERO);
                let e = map.entry(r).or_insert(Quantity::ZERO);
                *e += q;
            }
        }
        for c in arr(&spec["initContainers"]) {
            for (r, q) in string_map(&c["resources"][key]) {
                let q = Quantity::parse(&q).unwrap_or(Quantity::ZERO);
                let e = map.entry(r).or_insert(Quantity::ZERO);
                if q.nanos() > e.nanos() {
                    *e = q;
                }
            }
        }
        for (r, q) in string_map(&spec["overhead"]) {
            if let Some(e) = map.get_mut(&r) {
                *e += Quantity::parse(&q).unwrap_or(Quantity::ZERO);
            }
        }
    }
    out
}

fn percent(part: i128, whole: i128) -> i64 {
    if whole == 0 {
        // Go divides floats: 0/0 is NaN, x/0 is +Inf; int64 of either is the minimum int64.
        return i64::MIN;
    }
    (part as f64 / whole as f64 * 100.0) as i64
}

/// A node; `pods` is None when the user may not list pods.
pub fn node(
    node: &Value,
    pods: Option<&[Value]>,
    lease: Result<Value, String>,
    ev: Option<&[Value]>,
) -> String {
    let mut w = W::default();
    let (m, spec, status) = (&node["metadata"], &node["spec"], &node["status"]);
    w!(w, 0, "Name:\t{}\n", st(&m["name"]));
    let mut roles: Vec<String> = string_map(&m["labels"])
        .into_iter()
        .filter_map(|(k, v)| {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                (!role.is_empty()).then(|| role.to_string())
            } else if k == "kubernetes.io/role" && !v.is_empty() {
                Some(v)
            } else {
                None
            }
        })
        .collect();
    roles.sort();
    roles.dedup();
    w!(
        w,
        0,
        "Roles:\t{}\n",
        if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        }
    );
    labels(&mut w, "Labels", &m["labels"]);
    annotations(&mut w, "Annotations", &m["annotations"]);
    w!(
        w,
        0,
        "CreationTimestamp:\t{}\n",
        date(&m["creationTimestamp"])
    );
    w.w(0, "Taints:\t");
    let mut taints: Vec<&Value> = arr(&spec["taints"]).iter().collect();
    if taints.is_empty() {
        w.line("<none>");
    } else {
        taints.sort_by_key(|t| format!("{},{}", st(&t["effect"]), st(&t["key"])));
        for (i, t) in taints.iter().enumerate() {
            if i != 0 {
                w.w(0, "\t");
            }
            let (k, v, e) = (st(&t["key"]), st(&t["value"]), st(&t["effect"]));
            let s = match (v.is_empty(), e.is_empty()) {
                (true, true) => k.to_string(),
                (false, true) => format!("{k}={v}:"),
                (true, false) => format!("{k}:{e}"),
                (false, false) => format!("{k}={v}:{e}"),
            };
            w!(w, 0, "{s}\n");
        }
    }
    w!(
        w,
        0,
        "Unschedulable:\t{}\n",
        go_bool(&spec["unschedulable"])
    );
    match lease {
        Ok(l) => {
            w.w(0, "Lease:\n");
            let or_unset = |s: String| {
                if s.is_empty() {
                    "<unset>".to_string()
                } else {
                    s
                }
            };
            w!(
                w,
                1,
                "HolderIdentity:\t{}\n",
                or_unset(st(&l["spec"]["holderIdentity"]).to_string())
            );
            let time = |k: &str| {
                if l["spec"][k].is_string() {
                    date(&l["spec"][k])
                } else {
                    String::new()
                }
            };
            w!(w, 1, "AcquireTime:\t{}\n", or_unset(time("acquireTime")));
            w!(w, 1, "RenewTime:\t{}\n", or_unset(time("renewTime")));
        }
        Err(e) => w!(w, 0, "Lease:\tFailed to get lease: {e}\n"),
    }
    let conditions = arr(&status["conditions"]);
    if !conditions.is_empty() {
        w.w(
            0,
            "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n",
        );
        w.w(
            1,
            "----\t------\t-----------------\t------------------\t------\t-------\n",
        );
        for c in conditions {
            w!(
                w,
                1,
                "{} \t{} \t{} \t{} \t{} \t{}\n",
                st(&c["type"]),
                st(&c["status"]),
                date(&c["lastHeartbeatTime"]),
                date(&c["lastTransitionTime"]),
                st(&c["reason"]),
                st(&c["message"])
            );
        }
    }
    w.w(0, "Addresses:\n");
    for a in arr(&status["addresses"]) {
        w!(w, 1, "{}:\t{}\n", st(&a["type"]), st(&a["address"]));
    }
    for (title, key) in [("Capacity", "capacity"), ("Allocatable", "allocatable")] {
        let list = string_map(&status[key]);
        if list.is_empty() {
            continue;
        }
        w!(w, 0, "{title}:\n");
        for (r, q) in list {
            let q = Quantity::parse(&q).map(|q| q.to_string()).unwrap_or(q);
            w!(w, 0, "  {r}:\t{q}\n");
        }
    }
    let info = &status["nodeInfo"];
    w.w(0, "System Info:\n");
    for (title, key) in [
        ("Machine ID", "machineID"),
        ("System UUID", "systemUUID"),
        ("Boot ID", "bootID"),
        ("Kernel Version", "kernelVersion"),
        ("OS Image", "osImage"),
        ("Operating System", "operatingSystem"),
        ("Architecture", "architecture"),
        ("Container Runtime Version", "containerRuntimeVersion"),
        ("Kubelet Version", "kubeletVersion"),
        ("Kube-Proxy Version", "kubeProxyVersion"),
    ] {
        w!(w, 0, "  {title}:\t{}\n", st(&info[key]));
    }
    if !st(&spec["podCIDR"]).is_empty() {
        w!(w, 0, "PodCIDR:\t{}\n", st(&spec["podCIDR"]));
    }
    let cidrs: Vec<&str> = arr(&spec["podCIDRs"]).iter().map(st).collect();
    if !cidrs.is_empty() {
        w!(w, 0, "PodCIDRs:\t{}\n", cidrs.join(","));
    }
    if !st(&spec["providerID"]).is_empty() {
        w!(w, 0, "ProviderID:\t{}\n", st(&spec["providerID"]));
    }
    match pods {
        Some(pods) => node_resources(&mut w, node, pods),
        None => w.w(0, "Pods:\tnot authorized\n"),
    }
    maybe_events(&mut w, ev);
    w.finish()
}

fn node_resources(w: &mut W, node: &Value, pods: &[Value]) {
    w!(w, 0, "Non-terminated Pods:\t({} in total)\n", pods.len());
    w.w(
        1,
        "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge\n",
    );
    w.w(
        1,
        "---------\t----\t\t------------\t----------\t---------------\t-------------\t---\n",
    );
    let status = &node["status"];
    let alloc = if string_map(&status["allocatable"]).is_empty() {
        &status["capacity"]
    } else {
        &status["allocatable"]
    };
    let alloc_q = |r: &str| Quantity::from_json(&alloc[r]);
    let (cpu, mem, eph) = (
        alloc_q("cpu").milli_value(),
        alloc_q("memory").value(),
        alloc_q("ephemeral-storage").value(),
    );
    let get = |m: &BTreeMap<String, Quantity>, r: &str| m.get(r).copied().unwrap_or(Quantity::ZERO);
    for p in pods {
        let (req, lim) = pod_requests_and_limits(p);
        let (cr, cl, mr, ml) = (
            get(&req, "cpu"),
            get(&lim, "cpu"),
            get(&req, "memory"),
            get(&lim, "memory"),
        );
        w!(
            w,
            1,
            "{}\t{}\t\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{}\n",
            st(&p["metadata"]["namespace"]),
            st(&p["metadata"]["name"]),
            cr.to_string(),
            percent(cr.milli_value(), cpu),
            cl.to_string(),
            percent(cl.milli_value(), cpu),
            mr.to_string(),
            percent(mr.value(), mem),
            ml.to_string(),
            percent(ml.value(), mem),
            since(&p["metadata"]["creationTimestamp"])
        );
    }
    w.w(
        0,
        "Allocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n",
    );
    w.w(1, "Resource\tRequests\tLimits\n");
    w.w(1, "--------\t--------\t------\n");
    let mut reqs: BTreeMap<String, Quantity> = BTreeMap::new();
    let mut lims: BTreeMap<String, Quantity> = BTreeMap::new();
    for p in pods {
        let (r, l) = pod_requests_and_limits(p);
        for (k, q) in r {
            let e = reqs.entry(k).or_insert(Quantity::ZERO);
            *e += q;
        }
        for (k, q) in l {
            let e = lims.entry(k).or_insert(Quantity::ZERO);
            *e += q;
        }
    }
    let frac = |part: i128, whole: i128| {
        if whole == 0 {
            0
        } else {
            percent(part, whole)
        }
    };
    for (r, whole, milli) in [
        ("cpu", cpu, true),
        ("memory", mem, false),
        ("ephemeral-storage", eph, false),
    ] {
        let (q, l) = (get(&reqs, r), get(&lims, r));
        let (qv, lv) = if milli {
            (q.milli_value(), l.milli_value())
        } else {
            (q.value(), l.value())
        };
        w!(
            w,
            1,
            "{r}\t{} ({}%)\t{} ({}%)\n",
            q.to_string(),
            frac(qv, whole),
            l.to_string(),
            frac(lv, whole)
        );
    }
    let alloc_map = string_map(alloc);
    let huge: Vec<&String> = alloc_map
        .keys()
        .filter(|r| r.starts_with("hugepages-"))
        .collect();
    for r in huge {
        let (q, l) = (get(&reqs, r), get(&lims, r));
        let whole = alloc_q(r).value();
        w!(
            w,
            1,
            "{r}\t{} ({}%)\t{} ({}%)\n",
            q.to_string(),
            frac(q.value(), whole),
            l.to_string(),
            frac(l.value(), whole)
        );
    }
    let standard = |r: &str| {
        matches!(
            r,
            "cpu" | "memory" | "ephemeral-storage" | "pods" | "storage"
        ) || r.starts_with("hugepages-")
            || r.starts_with("requests.")
            || r.starts_with("limits.")
    };
    for r in alloc_map.keys().filter(|r| !standard(r)) {
        w!(
            w,
            1,
            "{r}\t{}\t{}\n",
            get(&reqs, r).to_string(),
            get(&lims, r).to_string()
        );
    }
}

/// smartLabelFor: `creationTimestamp` → `Creation Timestamp`, `apiVersion` → `API Version`.
pub fn smart_label(field: &str) -> String {
    if field.chars().any(|c| !c.is_alphabetic() && c != '-') {
        return field.to_string();
    }
    const ACRONYMS: [&str; 5] = ["API", "URL", "UID", "OSB", "GUID"];
    camel_split(field)
        .into_iter()
        .filter(|p| p != "_")
        .map(|p| {
            if ACRONYMS.contains(&p.to_uppercase().as_str()) {
                p.to_uppercase()
            } else {
                let mut c = p.chars();
                match c.next() {
                    Some(f) => f.to_uppercase().chain(c).collect(),
                    None => String::new(),
                }
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// fatih/camelcase.Split: runs of one character class; an upper-case run followed by lower
/// case gives its last letter to the next word (`APIVersion` → `API`, `Version`).
fn camel_split(s: &str) -> Vec<String> {
    let class = |c: char| {
        if c.is_lowercase() {
            1
        } else if c.is_uppercase() {
            2
        } else if c.is_numeric() {
            3
        } else {
            4
        }
    };
    let mut runs: Vec<Vec<char>> = Vec::new();
    let mut last = 0;
    for c in s.chars() {
        let k = class(c);
        if k == last {
            runs.last_mut().unwrap().push(c);
        } else {
            runs.push(vec![c]);
        }
        last = k;
    }
    for i in 0..runs.len().saturating_sub(1) {
        if runs[i][0].is_uppercase() && runs[i + 1][0].is_lowercase() {
            let c = runs[i].pop().unwrap();
            runs[i + 1].insert(0, c);
        }
    }
    runs.into_iter()
        .filter(|r| !r.is_empty())
        .map(|r| r.into_iter().collect())
        .collect()
}

fn unstructured(w: &mut W, level: usize, content: &Value, prefix: &str, skip: &[&str]) {
    let Some(map) = content.as_object() else {
        return;
    };
    let mut fields: Vec<&String> = map.keys().collect();
    fields.sort();
    for f in fields {
        let value = &map[f];
        let expr = format!("{prefix}.{f}");
        if skip.contains(&expr.as_str()) {
            continue;
        }
        match value {
            Value::Object(_) => {
                w!(w, level, "{}:\n", smart_label(f));
                unstructured(w, level + 1, value, &expr, skip);
            }
            Value::Array(items) => {
                w!(w, level, "{}:\n", smart_label(f));
                for item in items {
                    if item.is_object() {
                        unstructured(w, level + 1, item, &expr, skip);
                    } else {
                        w!(w, level + 1, "{}\n", go_value(item));
                    }
                }
            }
            other => w!(w, level, "{}:\t{}\n", smart_label(f), go_value(other)),
        }
    }
}

/// Go's `%v` of a decoded JSON scalar.
fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".into(),
        other => other.to_string(),
    }
}

pub fn config_map(cm: &Value, ev: Option<&[Value]>) -> String {
    let mut w = W::default();
    let m = &cm["metadata"];
    w!(w, 0, "Name:\t{}\n", st(&m["name"]));
    w!(w, 0, "Namespace:\t{}\n", st(&m["namespace"]));
    labels(&mut w, "Labels", &m["labels"]);
    annotations(&mut w, "Annotations", &m["annotations"]);
    // kubectl walks a Go map here (random order); sorted is one of its orders.
    w.w(0, "\nData\n====\n");
    for (k, v) in string_map(&cm["data"]) {
        w!(w, 0, "{k}:\n----\n");
        w!(w, 0, "{v}\n");
        w.w(0, "\n");
    }
    w.w(0, "\nBinaryData\n====\n");
    for (k, v) in string_map(&cm["binaryData"]) {
        w!(w, 0, "{k}: {}\n", byte_count(&v));
    }
    w.w(0, "\n");
    maybe_events(&mut w, ev);
    w.finish()
}

pub fn secret(s: &Value) -> String {
    let mut w = W::default();
    let m = &s["metadata"];
    w!(w, 0, "Name:\t{}\n", st(&m["name"]));
    w!(w, 0, "Namespace:\t{}\n", st(&m["namespace"]));
    labels(&mut w, "Labels", &m["labels"]);
    annotations(&mut w, "Annotations", &m["annotations"]);
    w!(w, 0, "\nType:\t{}\n", st(&s["type"]));
    w.w(0, "\nData\n====\n");
    for (k, v) in string_map(&s["data"]) {
        match base64_decode(&v) {
            Ok(token)
                if k == "token" && st(&s["type"]) == "kubernetes.io/service-account-token" =>
            {
                w!(w, 0, "{k}:\t{}\n", String::from_utf8_lossy(&token));
            }
            _ => w!(w, 0, "{k}:\t{}\n", byte_count(&v)),
        }
    }
    w.finish()
}

/// A service account; `secrets` is the namespace's secrets (None when they could not be listed).
pub fn service_account(sa: &Value, secrets: Option<&[Value]>, ev: Option<&[Value]>) -> String {
    let mut w = W::default();
    let m = &sa["metadata"];
    w!(w, 0, "Name:\t{}\n", st(&m["name"]));
    w!(w, 0, "Namespace:\t{}\n", st(&m["namespace"]));
    labels(&mut w, "Labels", &m["labels"]);
    annotations(&mut w, "Annotations", &m["annotations"]);
    let names = |k: &str| -> Vec<String> {
        arr(&sa[k])
            .iter()
            .map(|s| st(&s["name"]).to_string())
            .collect()
    };
    let mut tokens = Vec::new();
    let mut missing = Vec::new();
    if let Some(secrets) = secrets {
        for s in secrets {
            let a = &s["metadata"]["annotations"];
            if st(&s["type"]) == "kubernetes.io/service-account-token"
                && st(&a["kubernetes.io/service-account.name"]) == st(&m["name"])
                && st(&a["kubernetes.io/service-account.uid"]) == st(&m["uid"])
            {
                tokens.push(st(&s["metadata"]["name"]).to_string());
            }
        }
        let existing: Vec<&str> = secrets.iter().map(|s| st(&s["metadata"]["name"])).collect();
        for n in names("secrets")
            .into_iter()
            .chain(names("imagePullSecrets"))
        {
            if !existing.contains(&n.as_str()) {
                missing.push(n);
            }
        }
    }
    for (header, list) in [
        ("Image pull secrets:", names("imagePullSecrets")),
        ("Mountable secrets: ", names("secrets")),
        ("Tokens:            ", tokens),
    ] {
        if list.is_empty() {
            w!(w, 0, "{header}\t<none>\n");
            continue;
        }
        let mut prefix = header;
        for n in list {
            if missing.contains(&n) {
                w!(w, 0, "{prefix}\t{n} (not found)\n");
            } else {
                w!(w, 0, "{prefix}\t{n}\n");
            }
            prefix = "                   ";
        }
    }
    maybe_events(&mut w, ev);
    w.finish()
}

/// Standard base64 (secrets' and config maps' binary data).
fn base64_decode(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s)
}

/// `N bytes`, or why the value is no base64 (the apiserver refuses such data, so only a
/// broken object shows it).
fn byte_count(v: &str) -> String {
    match base64_decode(v) {
        Ok(b) => format!("{} bytes", b.len()),
        Err(e) => format!("<invalid base64: {e}>"),
    }
}

/// The generic describer, for kinds kubectl has no describer of its own for here.
pub fn generic(obj: &Value, ev: Option<&[Value]>) -> String {
    let mut w = W::default();
    let m = &obj["metadata"];
    w!(w, 0, "Name:\t{}\n", st(&m["name"]));
    w!(w, 0, "Namespace:\t{}\n", st(&m["namespace"]));
    labels(&mut w, "Labels", &m["labels"]);
    annotations(&mut w, "Annotations", &m["annotations"]);
    unstructured(
        &mut w,
        0,
        obj,
        "",
        &[
            ".metadata.managedFields",
            ".metadata.name",
            ".metadata.namespace",
            ".metadata.labels",
            ".metadata.annotations",
        ],
    );
    maybe_events(&mut w, ev);
    w.finish()
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

    #[test]
    fn service_layout() {
        let svc = json!({
            "metadata": {"name": "boot", "namespace": "desceng", "labels": {"run": "boot"}},
            "spec": {"selector": {"run": "boot"}, "type": "NodePort", "ipFamilyPolicy": "SingleStack",
                "ipFamilies": ["IPv4"], "clusterIP": "10.98.28.157", "clusterIPs": ["10.98.28.157"],
                "ports": [{"port": 8080, "protocol": "TCP", "targetPort": 8080, "nodePort": 30484}],
                "sessionAffinity": "None", "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster"}
        });
        let slices = [
            json!({"endpoints": [{"addresses": ["10.244.0.7"], "conditions": {"ready": true}},
                                           {"addresses": ["10.244.0.8"], "conditions": {"ready": false}}],
                             "ports": [{"name": "", "port": 8080, "protocol": "TCP"}]}),
        ];
        let out = service(&svc, &slices, Some(&[]));
        assert!(
            out.contains("\nPort:                     <unset>  8080/TCP\n"),
            "{out}"
        );
        assert!(
            out.contains("\nNodePort:                 <unset>  30484/TCP\n"),
            "{out}"
        );
        assert!(
            out.contains("\nEndpoints:                10.244.0.7:8080\n"),
            "{out}"
        );
        assert!(out.ends_with("Events:                   <none>\n"), "{out}");
        assert!(service(&svc, &[], None).contains("\nEndpoints:                <none>\n"));
    }

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

    #[test]
    fn selectors_and_labels() {
        let sel = json!({"matchLabels": {"run": "boot", "pod-template-hash": "abc"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]});
        assert_eq!(
            format_selector(&sel),
            "pod-template-hash=abc,run=boot,tier in (a,b)"
        );
        assert_eq!(format_selector(&json!({})), "<none>");
        assert_eq!(smart_label("apiVersion"), "API Version");
        assert_eq!(smart_label("creationTimestamp"), "Creation Timestamp");
        assert_eq!(smart_label("data"), "Data");
        assert_eq!(smart_label("ca.crt"), "ca.crt");
        assert_eq!(byte_count("aGVsbG8="), "5 bytes");
        assert_eq!(byte_count("aGVsbG8"), "<invalid base64: Invalid padding>");
        let p = json!({"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 5});
        assert_eq!(
            probe(&p),
            "http-get http://:8080/healthz delay=0s timeout=0s period=5s #success=0 #failure=0"
        );
        let p = json!({"httpGet": {"path": "/", "port": "web"}});
        assert!(probe(&p).starts_with("http-get //:web/ "));
    }
}
