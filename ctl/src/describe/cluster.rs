//! Namespaces and nodes, with the quotas, limits and pod resources beside them.

use std::collections::BTreeMap;

use serde_json::Value;

use super::*;

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
pub(super) fn pod_requests_and_limits(
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

pub(super) fn percent(part: i128, whole: i128) -> i64 {
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

pub(super) fn node_resources(w: &mut W, node: &Value, pods: &[Value]) {
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
