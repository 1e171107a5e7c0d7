//! The renderer by golden files (the full restore text for a set of service shapes) and by
//! tracing packets through what it renders.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{json, Value};

use crate::model::{service_ports, ServicePort};
use crate::render::{chain_name, render, Config};
use crate::trace::{trace, Packet, Verdict};

const NODE: &str = "node1";
const NODE_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);

fn svc(name: &str, spec: Value) -> Service {
    serde_json::from_value(
        json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec}),
    )
    .unwrap()
}

fn slice(svc: &str, port_name: &str, ips: &[(&str, bool)]) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{svc}-abc"), "namespace": "default", "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": [{"name": port_name, "port": 8080, "protocol": "TCP"}],
        "endpoints": ips.iter().map(|(ip, ready)| json!({"addresses": [ip], "conditions": {"ready": ready}, "nodeName": NODE})).collect::<Vec<_>>(),
    }))
    .unwrap()
}

fn ports(items: &[(Service, Vec<EndpointSlice>)]) -> Vec<ServicePort> {
    items
        .iter()
        .flat_map(|(s, sl)| service_ports(s, &sl.iter().collect::<Vec<_>>(), NODE))
        .collect()
}

fn cfg() -> Config {
    Config {
        cluster_cidr: Some("10.244.0.0/24".into()),
    }
}

/// The service shapes of the golden test.
fn shapes() -> Vec<(Service, Vec<EndpointSlice>)> {
    let three = [
        ("10.244.0.5", true),
        ("10.244.0.6", true),
        ("10.244.0.7", true),
    ];
    let mut lb = svc(
        "lb",
        json!({"type": "LoadBalancer", "clusterIP": "10.96.0.12", "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30012}], "externalTrafficPolicy": "Local"}),
    );
    lb.status = Some(
        serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "192.168.1.10"}]}}))
            .unwrap(),
    );
    vec![
        (
            svc(
                "web",
                json!({"type": "NodePort", "clusterIP": "10.96.0.10", "ports": [{"port": 8080, "nodePort": 30080}]}),
            ),
            vec![slice("web", "", &three)],
        ),
        (
            svc(
                "sticky",
                json!({"clusterIP": "10.96.0.11", "sessionAffinity": "ClientIP", "externalIPs": ["203.0.113.7"],
                       "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}),
            ),
            vec![slice("sticky", "http", &three[..2])],
        ),
        (lb, vec![slice("lb", "", &three[..1])]),
        (
            svc(
                "empty",
                json!({"type": "NodePort", "clusterIP": "10.96.0.13", "ports": [{"port": 80, "nodePort": 30013}]}),
            ),
            vec![slice("empty", "", &[("10.244.0.9", false)])],
        ),
        (
            svc(
                "dns",
                json!({"clusterIP": "10.96.0.14", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}),
            ),
            vec![],
        ),
        (
            svc(
                "ext",
                json!({"type": "ExternalName", "externalName": "example.com"}),
            ),
            vec![],
        ),
    ]
}

#[test]
fn golden_ruleset() {
    let text = render(&ports(&shapes()), &cfg()).restore_text(None, &BTreeSet::new());
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/shapes.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    let want = std::fs::read_to_string(path).expect("golden file (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(
        text, want,
        "the ruleset changed; review and UPDATE_GOLDEN=1"
    );
}

/// The restore text of a full sync.
fn full(p: &[ServicePort]) -> String {
    render(p, &cfg()).restore_text(None, &BTreeSet::new())
}

fn go(text: &str, src: &str, dst: &str, proto: &str, dport: u16) -> BTreeSet<Verdict> {
    trace(
        text,
        &Packet {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto: proto.into(),
            dport,
        },
        &[NODE_IP],
    )
}

fn to(eps: &[&str], masquerade: bool) -> BTreeSet<Verdict> {
    eps.iter()
        .map(|e| Verdict::Endpoint {
            to: e.to_string(),
            masquerade,
        })
        .collect()
}

const ALL3: [&str; 3] = ["10.244.0.5:8080", "10.244.0.6:8080", "10.244.0.7:8080"];

#[test]
fn cluster_ip_spreads_over_ready_endpoints_and_masquerades_off_cluster_sources() {
    let r = full(&ports(&shapes()));
    // From a pod: any of the three, source kept.
    assert_eq!(
        go(&r, "10.244.0.20", "10.96.0.10", "tcp", 8080),
        to(&ALL3, false)
    );
    // From the host: masqueraded.
    assert_eq!(
        go(&r, "192.168.1.10", "10.96.0.10", "tcp", 8080),
        to(&ALL3, true)
    );
    // Hairpin: a pod reaching itself through its service is masqueraded.
    let hair = go(&r, "10.244.0.5", "10.96.0.10", "tcp", 8080);
    assert!(hair.contains(&Verdict::Endpoint {
        to: "10.244.0.5:8080".into(),
        masquerade: true
    }));
    // Wrong port or protocol: not ours.
    assert_eq!(
        go(&r, "10.244.0.20", "10.96.0.10", "tcp", 80),
        [Verdict::Untouched].into()
    );
    assert_eq!(
        go(&r, "10.244.0.20", "10.96.0.10", "udp", 8080),
        [Verdict::Untouched].into()
    );
}

#[test]
fn node_ports_answer_on_every_local_address_masqueraded() {
    let r = full(&ports(&shapes()));
    for dst in ["192.168.1.10", "127.0.0.1"] {
        assert_eq!(
            go(&r, "198.51.100.1", dst, "tcp", 30080),
            to(&ALL3, true),
            "{dst}"
        );
    }
    // Not a local address: no node port there.
    assert_eq!(
        go(&r, "198.51.100.1", "192.168.1.99", "tcp", 30080),
        [Verdict::Untouched].into()
    );
}

#[test]
fn no_endpoints_rejects_instead_of_hanging() {
    let r = full(&ports(&shapes()));
    assert_eq!(
        go(&r, "10.244.0.20", "10.96.0.13", "tcp", 80),
        [Verdict::Reject].into()
    );
    assert_eq!(
        go(&r, "198.51.100.1", "192.168.1.10", "tcp", 30013),
        [Verdict::Reject].into()
    );
    assert_eq!(
        go(&r, "10.244.0.20", "10.96.0.14", "udp", 53),
        [Verdict::Reject].into()
    );
}

#[test]
fn external_ips_load_balancers_and_local_policy() {
    let r = full(&ports(&shapes()));
    // externalIPs: masqueraded like node ports.
    assert_eq!(
        go(&r, "198.51.100.1", "203.0.113.7", "tcp", 80),
        to(&ALL3[..2], true)
    );
    // externalTrafficPolicy Local: the client's address is kept...
    assert_eq!(
        go(&r, "198.51.100.1", "192.168.1.10", "tcp", 80),
        to(&ALL3[..1], false)
    );
    assert_eq!(
        go(&r, "198.51.100.1", "192.168.1.10", "tcp", 30012),
        to(&ALL3[..1], false)
    );
    // ...but traffic from the node itself is masqueraded.
    assert_eq!(
        go(&r, "127.0.0.1", "127.0.0.1", "tcp", 30012),
        to(&ALL3[..1], true)
    );
}

#[test]
fn session_affinity_remembers_the_client() {
    let r = full(&ports(&shapes()));
    let sep = chain_name(
        "KUBE-SEP-",
        &["default/sticky:http", "tcp", "10.244.0.5:8080"],
    );
    assert!(r.contains(&format!(
        "-m recent --name {sep} --rcheck --seconds 10800 --reap -j {sep}"
    )));
    assert!(r.contains(&format!("-m recent --name {sep} --set --rsource -j DNAT")));
}

#[test]
fn chain_names_fit_and_stale_chains_are_deleted() {
    let r = render(&ports(&shapes()), &cfg());
    for (_, c) in r.chains.keys() {
        assert!(c.len() <= 28, "{c}");
    }
    // Drop a service: its chains are flushed and deleted by the next restore.
    let fewer: Vec<_> = shapes().into_iter().skip(1).collect();
    let r2 = render(&ports(&fewer), &cfg());
    let text = r2.restore_text(Some(&r), &BTreeSet::new());
    let web_svc = chain_name("KUBE-SVC-", &["default/web", "tcp"]);
    assert!(text.contains(&format!(":{web_svc} - [0:0]")));
    assert!(text.contains(&format!("-X {web_svc}\n")));
    // Chains left over from an earlier run (not in the last ruleset) go too.
    let old = ("nat".to_string(), "KUBE-SEP-0000000000000000".to_string());
    let text = r2.restore_text(None, &[old.clone()].into());
    assert!(text.contains("-X KUBE-SEP-0000000000000000\n"));
    assert_eq!(
        go(&text, "10.244.0.20", "10.96.0.10", "tcp", 8080),
        [Verdict::Untouched].into()
    );
    // Rendering is deterministic.
    assert_eq!(render(&ports(&shapes()), &cfg()), r);
}

#[test]
fn partial_syncs_rewrite_only_what_changed() {
    let before = render(&ports(&shapes()), &cfg());
    assert_eq!(before.restore_text(Some(&before), &BTreeSet::new()), "");
    // One endpoint of `web` goes: its service chain, its chains for the endpoint, and nothing
    // of the other services is rewritten.
    let mut items = shapes();
    items[0].1[0].endpoints.pop();
    let after = render(&ports(&items), &cfg());
    let text = after.restore_text(Some(&before), &BTreeSet::new());
    let web_svc = chain_name("KUBE-SVC-", &["default/web", "tcp"]);
    let gone = chain_name("KUBE-SEP-", &["default/web", "tcp", "10.244.0.7:8080"]);
    let sticky = chain_name("KUBE-SVC-", &["default/sticky:http", "tcp"]);
    assert!(text.contains(&format!(":{web_svc} - [0:0]")));
    assert!(text.contains(&format!("-X {gone}\n")));
    assert!(!text.contains(&sticky), "{text}");
    assert!(!text.contains("*filter"), "{text}");
    // Applied over the old ruleset it gives the new one: trace over the merge.
    let merged = full(&ports(&items));
    assert_eq!(
        go(&merged, "10.244.0.20", "10.96.0.10", "tcp", 8080),
        to(&ALL3[..2], false)
    );
}

#[test]
fn terminating_endpoints_serve_only_when_none_is_ready() {
    let mut s = slice("web", "", &[("10.244.0.5", true)]);
    s.endpoints.push(
        serde_json::from_value(json!({"addresses": ["10.244.0.6"], "conditions": {"ready": false, "serving": true, "terminating": true}})).unwrap(),
    );
    let web = shapes().remove(0).0;
    let p = ports(&[(web.clone(), vec![s.clone()])]);
    assert_eq!(p[0].usable().len(), 1);
    s.endpoints.remove(0);
    let p = ports(&[(web, vec![s])]);
    let r = full(&p);
    assert_eq!(
        go(&r, "10.244.0.20", "10.96.0.10", "tcp", 8080),
        to(&["10.244.0.6:8080"], false)
    );
}
