//! A pod's or template's containers: state, probes, resources, environment (kubectl's
//! describeContainers).

use serde_json::Value;

use super::*;

/// describeContainers: statuses None for a pod template.
pub(super) fn containers(
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

pub(super) fn env(w: &mut W, c: &Value, pod: Option<&Value>) {
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
pub(super) fn resource_field(c: &Value, res: &str, divisor: &Value) -> String {
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
pub(super) fn pod_field(pod: &Value, path: &str) -> String {
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

pub(super) fn container_state(w: &mut W, name: &str, state: &Value) {
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
