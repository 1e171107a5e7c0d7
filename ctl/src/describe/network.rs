//! Services and endpoints.

use serde_json::Value;

use super::*;

/// formatEndpointSlices for one service port: up to three ready `ip:port`, then `+ N more...`.
pub(super) fn endpoints_of(slices: &[Value], port_name: &str) -> String {
    if slices.is_empty() {
        return "<none>".into();
    }
    let max = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0;
    // Each endpoint of a slice, with the port (None for a slice without ports).
    let mut add = |e: &Value, port: Option<i64>| {
        if list.len() == max {
            more = true;
        }
        if e["conditions"]["ready"].as_bool() == Some(false) {
            return;
        }
        if !more {
            let addr = st(&e["addresses"][0]);
            list.push(match port {
                None => addr.to_string(),
                Some(port) if addr.contains(':') => format!("[{addr}]:{port}"),
                Some(port) => format!("{addr}:{port}"),
            });
        }
        count += 1;
    };
    for s in slices {
        let ports = arr(&s["ports"]);
        if ports.is_empty() {
            arr(&s["endpoints"]).iter().for_each(|e| add(e, None));
        }
        for p in ports.iter().filter(|p| st(&p["name"]) == port_name) {
            for e in arr(&s["endpoints"]) {
                add(e, Some(int(&p["port"])));
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
