use super::*;
use proptest::prelude::*;
use prost::Message;
use prost_reflect::{FieldDescriptor, Kind, MapKey};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tinykube_machinery::kinds;

#[test]
fn json_names_undo_lowered_initialisms() {
    assert_eq!(json_name("uID"), "uid");
    assert_eq!(json_name("aPIGroup"), "apiGroup");
    assert_eq!(json_name("jSONSchemas"), "jsonSchemas");
    assert_eq!(json_name("containerPort"), "containerPort");
    assert_eq!(json_name("Port"), "Port");
    assert_eq!(json_name("podIPs"), "podIPs");
}

#[test]
fn every_served_kind_and_list_has_a_message() {
    for k in kinds::ALL {
        let v = k.api_version();
        assert!(message_for(&v, k.kind).is_some(), "{v} {}", k.kind);
        assert!(
            message_for(&v, k.list_kind).is_some(),
            "{v} {}",
            k.list_kind
        );
    }
    for (v, k) in [
        ("v1", "Status"),
        ("meta.k8s.io/v1", "DeleteOptions"),
        ("v1", "DeleteOptions"),
        ("v1", "Binding"),
        ("policy/v1", "Eviction"),
        ("autoscaling/v1", "Scale"),
        ("authentication.k8s.io/v1", "TokenRequest"),
    ] {
        assert!(message_for(v, k).is_some(), "{v} {k}");
    }
}

/// The bytes client-go 1.32 sends for `kubectl create deployment pbtest --image=nginx`
/// (captured from kubectl against this apiserver), and the JSON they mean.
#[test]
fn kubectls_create_deployment_body_decodes_as_kubectl_meant_it() {
    let deployment = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "pbtest", "labels": {"app": "pbtest"},
                     "creationTimestamp": "2026-12-07T09:00:00Z"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "pbtest"}},
                 "template": {"metadata": {"labels": {"app": "pbtest"}},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx",
                                                       "resources": {"limits": {"memory": "64Mi"}},
                                                       "ports": [{"containerPort": 80}]}]}},
                 "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}},
    });
    let bytes = encode(&deployment).expect("a Deployment message");
    assert!(bytes.starts_with(b"k8s\0"));
    let back = decode(&bytes).unwrap();
    assert_eq!(back, deployment);
}

#[test]
fn go_zero_values_on_the_wire() {
    // Go writes non-pointer fields even when zero; empty strings and the zero Time read as
    // absent, as they are to every Kubernetes rule, and zero numbers stay.
    let desc = message_for("v1", "ConfigMap").unwrap();
    let meta_desc = message_for("meta.k8s.io/v1", "ObjectMeta").unwrap();
    let time_desc = pool()
        .get_message_by_name("apimachinery.pkg.apis.meta.v1.Time")
        .unwrap();
    let mut meta = DynamicMessage::new(meta_desc);
    meta.set_field_by_name("name", Pb::String("c".into()));
    meta.set_field_by_name("generateName", Pb::String(String::new()));
    meta.set_field_by_name("generation", Pb::I64(0));
    meta.set_field_by_name(
        "creationTimestamp",
        Pb::Message(DynamicMessage::new(time_desc)),
    );
    let mut cm = DynamicMessage::new(desc);
    cm.set_field_by_name("metadata", Pb::Message(meta));
    let mut data = std::collections::HashMap::new();
    data.insert(MapKey::String("empty".into()), Pb::String(String::new()));
    cm.set_field_by_name("data", Pb::Map(data));
    let bytes = envelope("v1", "ConfigMap", &cm.encode_to_vec());
    assert_eq!(
        decode(&bytes).unwrap(),
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "c", "generation": 0},
                           "data": {"empty": ""}})
    );
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    assert!(decode(b"{}").is_err());
    assert!(decode(b"k8s\0\xff\xff\xff").is_err());
    let unknown_kind = envelope("v1", "NoSuchKind", b"");
    assert!(decode(&unknown_kind)
        .unwrap_err()
        .contains("no kind \"NoSuchKind\""));
}

/// Envelopes nested in RawExtensions, two thousand deep: read in one level, no stack of them.
#[test]
fn nested_envelopes_are_not_unwrapped() {
    let desc = message_for("apps/v1", "ControllerRevision").unwrap();
    let raw_ext = pool()
        .get_message_by_name("apimachinery.pkg.runtime.RawExtension")
        .unwrap();
    let mut body = envelope("apps/v1", "ControllerRevision", b"");
    for _ in 0..2_000 {
        let mut data = DynamicMessage::new(raw_ext.clone());
        data.set_field_by_name("raw", Pb::Bytes(body.into()));
        let mut rev = DynamicMessage::new(desc.clone());
        rev.set_field_by_name("data", Pb::Message(data));
        rev.set_field_by_name("revision", Pb::I64(1));
        body = envelope("apps/v1", "ControllerRevision", &rev.encode_to_vec());
    }
    let v = decode(&body).unwrap();
    assert_eq!(v["revision"], 1);
    assert!(v.get("data").is_none());
}

const QUANTITIES: &[&str] = &["1", "100m", "64Mi", "1.5Gi", "2k", "1e3", "0"];

/// A message with random values in random fields, every value one a Go client could send.
fn random_message(desc: &MessageDescriptor, rng: &mut StdRng, depth: u32) -> DynamicMessage {
    let mut m = DynamicMessage::new(desc.clone());
    match desc.full_name() {
        "apimachinery.pkg.apis.meta.v1.Time" | "apimachinery.pkg.apis.meta.v1.MicroTime" => {
            m.set_field_by_name("seconds", Pb::I64(rng.random_range(1..4_000_000_000)));
            if desc.name() == "MicroTime" {
                m.set_field_by_name("nanos", Pb::I32(rng.random_range(0..1_000_000) * 1000));
            } else {
                m.set_field_by_name("nanos", Pb::I32(0));
            }
            return m;
        }
        "apimachinery.pkg.apis.meta.v1.Duration" => {
            m.set_field_by_name("duration", Pb::I64(rng.random_range(0..i64::MAX / 4)));
            return m;
        }
        "apimachinery.pkg.util.intstr.IntOrString" => {
            let is_string = rng.random_bool(0.5);
            m.set_field_by_name("type", Pb::I64(i64::from(is_string)));
            m.set_field_by_name("intVal", Pb::I32(if is_string { 0 } else { rng.random() }));
            m.set_field_by_name(
                "strVal",
                Pb::String(if is_string { word(rng) } else { String::new() }),
            );
            return m;
        }
        "apimachinery.pkg.api.resource.Quantity" => {
            let q = QUANTITIES[rng.random_range(0..QUANTITIES.len())];
            m.set_field_by_name("string", Pb::String(q.into()));
            return m;
        }
        _ => {}
    }
    let fields: Vec<FieldDescriptor> = desc.fields().collect();
    if let [only] = fields.as_slice() {
        if only.name().eq_ignore_ascii_case("raw") {
            let raw =
                serde_json::to_vec(&serde_json::json!({ word(rng): rng.random::<u8>() })).unwrap();
            m.set_field(only, Pb::Bytes(raw.into()));
            return m;
        }
    }
    for f in fields {
        // Required times (a condition's lastTransitionTime) are always there in Go's objects.
        let time = matches!(f.kind(), Kind::Message(ref t) if t.name() == "Time") && !f.is_list();
        if !time && !rng.random_bool(if depth < 6 { 0.6 } else { 0.1 }) {
            continue;
        }
        let kind = f.kind();
        if f.is_map() {
            let Kind::Message(entry) = kind else { continue };
            let vk = entry.map_entry_value_field().kind();
            let mut map = std::collections::HashMap::new();
            for _ in 0..rng.random_range(1..3) {
                map.insert(MapKey::String(word(rng)), element(&vk, rng, depth, true));
            }
            m.set_field(&f, Pb::Map(map));
        } else if f.is_list() {
            let n = rng.random_range(1..3);
            let list = (0..n).map(|_| element(&kind, rng, depth, true)).collect();
            m.set_field(&f, Pb::List(list));
        } else {
            m.set_field(&f, element(&kind, rng, depth, false));
        }
    }
    m
}

fn word(rng: &mut StdRng) -> String {
    let n = rng.random_range(1..8);
    (0..n)
        .map(|_| rng.random_range(b'a'..=b'z') as char)
        .collect()
}

fn element(kind: &Kind, rng: &mut StdRng, depth: u32, in_collection: bool) -> Pb {
    match kind {
        Kind::Message(d) => Pb::Message(random_message(d, rng, depth + 1)),
        Kind::String if in_collection && rng.random_bool(0.2) => Pb::String(String::new()),
        Kind::String => Pb::String(word(rng)),
        Kind::Bytes => Pb::Bytes(
            (0..rng.random_range(0..6))
                .map(|_| rng.random::<u8>())
                .collect(),
        ),
        Kind::Bool => Pb::Bool(rng.random()),
        Kind::Int32 => Pb::I32(rng.random_range(-1000..100_000)),
        Kind::Int64 => Pb::I64(rng.random_range(-1000..10_000_000_000)),
        Kind::Double => Pb::F64(f64::from(rng.random_range(0..1000u32)) / 8.0),
        other => Pb::default_value(other),
    }
}

/// The typed object k8s-openapi makes of the JSON, written back: what the JSON path of the
/// apiserver would store. Field names the protobuf side got wrong would be dropped here.
/// The typed object's JSON, and its protobuf written straight from it (no envelope).
fn typed_both(kind: &str, json: &Value) -> (Value, Vec<u8>) {
    use k8s_openapi::api::{apps, coordination, core, discovery, rbac};
    fn via<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) -> (Value, Vec<u8>) {
        let t: T = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
        let desc = message_for(
            v["apiVersion"].as_str().unwrap(),
            v["kind"].as_str().unwrap(),
        )
        .unwrap();
        let mut raw = Vec::new();
        transcode::Plans::get()
            .write_typed(&desc, &t, &mut raw)
            .expect("every served kind serializes to protobuf");
        (serde_json::to_value(t).unwrap(), raw)
    }
    match kind {
        "Pod" => via::<core::v1::Pod>(json),
        "Service" => via::<core::v1::Service>(json),
        "Endpoints" => via::<core::v1::Endpoints>(json),
        "Event" => via::<core::v1::Event>(json),
        "ConfigMap" => via::<core::v1::ConfigMap>(json),
        "Secret" => via::<core::v1::Secret>(json),
        "ServiceAccount" => via::<core::v1::ServiceAccount>(json),
        "Node" => via::<core::v1::Node>(json),
        "Namespace" => via::<core::v1::Namespace>(json),
        "Deployment" => via::<apps::v1::Deployment>(json),
        "ReplicaSet" => via::<apps::v1::ReplicaSet>(json),
        "Job" => via::<k8s_openapi::api::batch::v1::Job>(json),
        "Lease" => via::<coordination::v1::Lease>(json),
        "EndpointSlice" => via::<discovery::v1::EndpointSlice>(json),
        "Role" => via::<rbac::v1::Role>(json),
        "ClusterRole" => via::<rbac::v1::ClusterRole>(json),
        "RoleBinding" => via::<rbac::v1::RoleBinding>(json),
        "ClusterRoleBinding" => via::<rbac::v1::ClusterRoleBinding>(json),
        other => panic!("no typed form for {other}"),
    }
}

/// Whether a value is Go's zero for its type, which k8s-openapi writes for required fields.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.values().all(is_zero),
    }
}

/// `typed` says everything `json` says, and only zeros besides: the typed form keeps every
/// field the protobuf side named.
fn covers(typed: &Value, json: &Value, path: &str) -> Result<(), String> {
    match (typed, json) {
        (Value::Object(t), Value::Object(j)) => {
            for (k, v) in j {
                let p = format!("{path}.{k}");
                match t.get(k) {
                    Some(tv) => covers(tv, v, &p)?,
                    None if is_zero(v) => {}
                    None => return Err(format!("{p} is lost by the typed form: {v}")),
                }
            }
            match t.iter().find(|(k, v)| !j.contains_key(*k) && !is_zero(v)) {
                Some((k, v)) => Err(format!("{path}.{k} appears in the typed form: {v}")),
                None => Ok(()),
            }
        }
        (Value::Array(t), Value::Array(j)) if t.len() == j.len() => t
            .iter()
            .zip(j)
            .enumerate()
            .try_for_each(|(i, (t, j))| covers(t, j, &format!("{path}[{i}]"))),
        (t, j) if t == j || (is_zero(t) && is_zero(j)) => Ok(()),
        (t, j) => Err(format!("{path}: typed {t} vs {j}")),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// protobuf → JSON → protobuf gives the same message, and the JSON is what k8s-openapi's
    /// types (the JSON wire) read and write, field for field, for every served kind.
    #[test]
    fn every_served_kind_round_trips(seed in any::<u64>(), which in 0..kinds::ALL.len()) {
        let k = kinds::ALL[which];
        let v = k.api_version();
        let desc = message_for(&v, k.kind).unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        let msg = random_message(&desc, &mut rng, 0);
        let bytes = envelope(&v, k.kind, &msg.encode_to_vec());
        let json = decode(&bytes).unwrap();
        let again = encode(&json).unwrap();
        let json_again = decode(&again).unwrap();
        prop_assert_eq!(&json, &json_again);
        // Straight from the JSON bytes, the same message.
        let streamed = transcode(&serde_json::to_vec(&json).unwrap()).unwrap();
        prop_assert_eq!(&decode(&streamed).unwrap(), &json);
        let (typed, typed_pb) = typed_both(k.kind, &json);
        // Straight from the typed object, the same message as from its JSON.
        let from_typed = decode(&envelope(&v, k.kind, &typed_pb)).unwrap();
        let from_json = decode(&transcode(&serde_json::to_vec(&typed).unwrap()).unwrap()).unwrap();
        prop_assert_eq!(&from_typed, &from_json);
        if let Err(e) = covers(&typed, &json, k.kind) {
            prop_assert!(false, "{}", e);
        }
    }
}
