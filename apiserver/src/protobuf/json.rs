//! Messages ⇄ the JSON Kubernetes writes for them.
//!
//! Field names are the .proto names, which go-to-protobuf takes from the JSON tags, except that
//! a leading initialism is lowered one letter only (`uID` for `uid`, `aPIGroup` for `apiGroup`);
//! [`json_name`] undoes that. A few apimachinery types have a JSON form of their own (Time,
//! MicroTime, Duration, IntOrString, Quantity, embedded raw JSON, named string slices); they are
//! recognised by their full names or, for the last two, by their shape.
//!
//! Go structs embedded with `json:",inline"` are fields of their own in the .proto files and
//! nothing there says so; [`INLINE`] names them, and the round-trip test against k8s-openapi's
//! types proves the list complete for every served kind.
//!
//! Go's encoder writes every non-pointer field, zero or not, and the .proto files do not say
//! which fields are pointers. Decoding keeps what is on the wire with two exceptions, both zero
//! values Go's JSON would not show either: an empty string in a singular field (a non-pointer
//! string is the same empty or absent in every Kubernetes rule) and a zero Time (`null`).
//! Zero numbers and `false` are kept: `replicas: 0` and `automountServiceAccountToken: false`
//! mean something.

use base64::Engine;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage, Value as Pb,
};
use serde_json::{Map, Number, Value};

const TIME: &str = "apimachinery.pkg.apis.meta.v1.Time";
const MICRO_TIME: &str = "apimachinery.pkg.apis.meta.v1.MicroTime";
const DURATION: &str = "apimachinery.pkg.apis.meta.v1.Duration";
const INT_OR_STRING: &str = "apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY: &str = "apimachinery.pkg.api.resource.Quantity";

/// Embedded Go structs, by type and .proto field name: their fields are the parent's in JSON.
const INLINE: &[(&str, &str)] = &[
    ("ProbeHandler", "handler"),
    ("VolumeSource", "volumeSource"),
    ("PersistentVolumeSource", "persistentVolumeSource"),
    ("EphemeralContainerCommon", "ephemeralContainerCommon"),
    ("LocalObjectReference", "localObjectReference"),
    ("IngressRuleValue", "ingressRuleValue"),
    ("Rule", "rule"),
    ("DeviceConfiguration", "deviceConfiguration"),
];

pub(super) fn inline(field: &FieldDescriptor) -> Option<MessageDescriptor> {
    match field.kind() {
        Kind::Message(m) if !field.is_list() && INLINE.contains(&(m.name(), field.name())) => {
            Some(m)
        }
        _ => None,
    }
}

/// The JSON name of a .proto field: `uID` → `uid`, `aPIGroup` → `apiGroup`, others unchanged.
pub fn json_name(proto: &str) -> String {
    let chars: Vec<char> = proto.chars().collect();
    if chars.len() < 2 || !chars[0].is_ascii_lowercase() || !chars[1].is_ascii_uppercase() {
        return proto.to_string();
    }
    let end = (1..chars.len())
        .find(|&i| !chars[i].is_ascii_uppercase())
        .unwrap_or(chars.len());
    // In `aPIGroup` the run ends at `G`, which starts the next word.
    let lower_to = if end < chars.len() && chars[end].is_ascii_lowercase() {
        end - 1
    } else {
        end
    };
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < lower_to {
                c.to_ascii_lowercase()
            } else {
                *c
            }
        })
        .collect()
}

/// What kind of JSON a message type has.
pub(super) enum Shape {
    Object,
    Time,
    MicroTime,
    Duration,
    IntOrString,
    Quantity,
    /// RawExtension, FieldsV1, apiextensions' JSON: one `raw` bytes field holding JSON.
    RawJson(FieldDescriptor),
    /// A Go named string slice (`Verbs`, `ExtraValue`): one repeated scalar `items`.
    Slice(FieldDescriptor),
}

pub(super) fn shape(desc: &MessageDescriptor) -> Shape {
    match desc.full_name() {
        TIME => return Shape::Time,
        MICRO_TIME => return Shape::MicroTime,
        DURATION => return Shape::Duration,
        INT_OR_STRING => return Shape::IntOrString,
        QUANTITY => return Shape::Quantity,
        _ => {}
    }
    let mut fields = desc.fields();
    if let (Some(only), None) = (fields.next(), fields.next()) {
        if only.name().eq_ignore_ascii_case("raw") && only.kind() == Kind::Bytes && !only.is_list()
        {
            return Shape::RawJson(only);
        }
        if only.name() == "items" && only.is_list() && !matches!(only.kind(), Kind::Message(_)) {
            return Shape::Slice(only);
        }
    }
    Shape::Object
}

fn int(m: &DynamicMessage, name: &str) -> i64 {
    match m.get_field_by_name(name).as_deref() {
        Some(Pb::I64(v)) => *v,
        Some(Pb::I32(v)) => i64::from(*v),
        _ => 0,
    }
}

fn text(m: &DynamicMessage, name: &str) -> String {
    match m.get_field_by_name(name).as_deref() {
        Some(Pb::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn timestamp(m: &DynamicMessage) -> Option<jiff::Timestamp> {
    let (secs, nanos) = (int(m, "seconds"), int(m, "nanos"));
    if secs == 0 && nanos == 0 {
        return None;
    }
    jiff::Timestamp::new(secs, nanos as i32).ok()
}

/// A message as JSON; None when Go's JSON would show nothing (a zero Time, empty raw JSON).
pub fn message_to_json(m: &DynamicMessage) -> Option<Value> {
    let desc = m.descriptor();
    Some(match shape(&desc) {
        Shape::Time => timestamp(m)?
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
            .into(),
        Shape::MicroTime => {
            let t = timestamp(m)?;
            format!(
                "{}.{:06}Z",
                t.strftime("%Y-%m-%dT%H:%M:%S"),
                t.subsec_nanosecond() / 1000
            )
            .into()
        }
        Shape::Duration => {
            let ns = int(m, "duration");
            let d = std::time::Duration::from_nanos(ns.unsigned_abs());
            let s = tinykube_machinery::duration::format(d);
            if ns < 0 { format!("-{s}") } else { s }.into()
        }
        Shape::IntOrString => {
            if int(m, "type") == 1 {
                text(m, "strVal").into()
            } else {
                int(m, "intVal").into()
            }
        }
        Shape::Quantity => text(m, "string").into(),
        Shape::RawJson(f) => match m.get_field(&f).as_ref() {
            Pb::Bytes(b) if !b.is_empty() => {
                if super::is_envelope(b) {
                    super::decode(b).ok()?
                } else {
                    serde_json::from_slice(b).ok()?
                }
            }
            _ => return None,
        },
        Shape::Slice(f) => match m.get_field(&f).as_ref() {
            Pb::List(items) => items.iter().filter_map(scalar_to_json).collect(),
            _ => Value::Array(Vec::new()),
        },
        Shape::Object => {
            let mut obj = Map::new();
            for (field, value) in m.fields() {
                if let (Some(_), Pb::Message(embedded)) = (inline(&field), value) {
                    if let Some(Value::Object(fields)) = message_to_json(embedded) {
                        obj.extend(fields);
                    }
                    continue;
                }
                if let Some(v) = field_to_json(&field, value) {
                    obj.insert(json_name(field.name()), v);
                }
            }
            Value::Object(obj)
        }
    })
}

fn field_to_json(field: &FieldDescriptor, value: &Pb) -> Option<Value> {
    match value {
        Pb::List(items) => Some(Value::Array(items.iter().map(element_to_json).collect())),
        Pb::Map(entries) => {
            let mut obj = Map::new();
            for (k, v) in entries {
                let key = match k {
                    MapKey::String(s) => s.clone(),
                    MapKey::Bool(b) => b.to_string(),
                    MapKey::I32(i) => i.to_string(),
                    MapKey::I64(i) => i.to_string(),
                    MapKey::U32(i) => i.to_string(),
                    MapKey::U64(i) => i.to_string(),
                };
                obj.insert(key, element_to_json(v));
            }
            Some(Value::Object(obj))
        }
        Pb::String(s) if s.is_empty() && !field.is_list() => None,
        Pb::Message(m) => message_to_json(m),
        other => scalar_to_json(other),
    }
}

/// A list element or map value: kept even when empty (a label's value may be "").
fn element_to_json(v: &Pb) -> Value {
    match v {
        Pb::Message(m) => message_to_json(m).unwrap_or(Value::Null),
        other => scalar_to_json(other).unwrap_or(Value::Null),
    }
}

fn scalar_to_json(v: &Pb) -> Option<Value> {
    Some(match v {
        Pb::Bool(b) => Value::Bool(*b),
        Pb::I32(i) => (*i).into(),
        Pb::I64(i) => (*i).into(),
        Pb::U32(i) => (*i).into(),
        Pb::U64(i) => (*i).into(),
        Pb::F32(f) => Number::from_f64(f64::from(*f)).map(Value::Number)?,
        Pb::F64(f) => Number::from_f64(*f).map(Value::Number)?,
        Pb::String(s) => Value::String(s.clone()),
        Pb::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Pb::EnumNumber(n) => (*n).into(),
        Pb::Message(m) => message_to_json(m)?,
        Pb::List(_) | Pb::Map(_) => return None,
    })
}

/// The field a JSON key names: the .proto name itself, or one whose [`json_name`] it is.
fn field_for(desc: &MessageDescriptor, key: &str) -> Option<FieldDescriptor> {
    desc.get_field_by_name(key)
        .or_else(|| desc.fields().find(|f| json_name(f.name()) == key))
}

/// The field a key of a JSON object of type `desc` sets, looking into inline embeddings.
pub fn field_by_json(desc: &MessageDescriptor, key: &str) -> Option<FieldDescriptor> {
    if let Some(f) = field_for(desc, key).filter(|f| inline(f).is_none()) {
        return Some(f);
    }
    desc.fields()
        .filter_map(|f| inline(&f))
        .find_map(|embedded| field_by_json(&embedded, key))
}

/// Whether the message's JSON is an object of its fields (not a Time, a Quantity, ...).
pub fn is_object(desc: &MessageDescriptor) -> bool {
    matches!(shape(desc), Shape::Object)
}

fn parse_time(v: &Value) -> Option<jiff::Timestamp> {
    v.as_str()?.parse::<jiff::Timestamp>().ok()
}

fn set_time(desc: &MessageDescriptor, t: jiff::Timestamp, micro: bool) -> DynamicMessage {
    let mut m = DynamicMessage::new(desc.clone());
    m.set_field_by_name("seconds", Pb::I64(t.as_second()));
    let nanos = t.subsec_nanosecond();
    m.set_field_by_name(
        "nanos",
        Pb::I32(if micro { nanos / 1000 * 1000 } else { 0 }),
    );
    m
}

/// A JSON value as a message of `desc`. Keys no field names are left out: what is written is
/// what the apiserver stored, which has no such keys.
pub fn json_to_message(desc: &MessageDescriptor, v: &Value) -> DynamicMessage {
    let mut m = DynamicMessage::new(desc.clone());
    match shape(desc) {
        Shape::Time | Shape::MicroTime => {
            if let Some(t) = parse_time(v) {
                return set_time(desc, t, matches!(shape(desc), Shape::MicroTime));
            }
        }
        Shape::Duration => {
            if let Some(s) = v.as_str() {
                let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
                if let Ok(d) = tinykube_machinery::duration::parse(s) {
                    let ns = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
                    m.set_field_by_name("duration", Pb::I64(if neg { -ns } else { ns }));
                }
            }
        }
        Shape::IntOrString => match v {
            Value::String(s) => {
                m.set_field_by_name("type", Pb::I64(1));
                m.set_field_by_name("intVal", Pb::I32(0));
                m.set_field_by_name("strVal", Pb::String(s.clone()));
            }
            other => {
                m.set_field_by_name("type", Pb::I64(0));
                m.set_field_by_name("intVal", Pb::I32(other.as_i64().unwrap_or(0) as i32));
                m.set_field_by_name("strVal", Pb::String(String::new()));
            }
        },
        Shape::Quantity => {
            let s = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            m.set_field_by_name("string", Pb::String(s));
        }
        Shape::RawJson(f) => {
            if !v.is_null() {
                m.set_field(
                    &f,
                    Pb::Bytes(serde_json::to_vec(v).unwrap_or_default().into()),
                );
            }
        }
        Shape::Slice(f) => {
            if let Value::Array(items) = v {
                let kind = f.kind();
                let list = items.iter().filter_map(|i| scalar(&kind, i)).collect();
                m.set_field(&f, Pb::List(list));
            }
        }
        Shape::Object => {
            if let Value::Object(obj) = v {
                // An embedded struct reads its fields from this object.
                for field in desc.fields() {
                    if let Some(embedded) = inline(&field) {
                        let sub = json_to_message(&embedded, v);
                        if sub.fields().next().is_some() {
                            m.set_field(&field, Pb::Message(sub));
                        }
                    }
                }
                for (key, value) in obj {
                    if value.is_null() {
                        continue;
                    }
                    let Some(field) = field_for(desc, key).filter(|f| inline(f).is_none()) else {
                        continue;
                    };
                    if let Some(pb) = field_value(&field, value) {
                        m.set_field(&field, pb);
                    }
                }
            }
        }
    }
    m
}

fn field_value(field: &FieldDescriptor, v: &Value) -> Option<Pb> {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            return None;
        };
        let (key_kind, value_kind) = (
            entry.map_entry_key_field().kind(),
            entry.map_entry_value_field().kind(),
        );
        let mut map = std::collections::HashMap::new();
        for (k, val) in v.as_object()? {
            let key = match scalar(&key_kind, &Value::String(k.clone()))? {
                Pb::String(s) => MapKey::String(s),
                Pb::I32(i) => MapKey::I32(i),
                Pb::I64(i) => MapKey::I64(i),
                Pb::Bool(b) => MapKey::Bool(b),
                _ => continue,
            };
            if let Some(pb) = element(&value_kind, val) {
                map.insert(key, pb);
            }
        }
        return Some(Pb::Map(map));
    }
    if field.is_list() {
        let kind = field.kind();
        let items = v.as_array()?;
        return Some(Pb::List(
            items.iter().filter_map(|i| element(&kind, i)).collect(),
        ));
    }
    element(&field.kind(), v)
}

fn element(kind: &Kind, v: &Value) -> Option<Pb> {
    match kind {
        Kind::Message(desc) => Some(Pb::Message(json_to_message(desc, v))),
        other => scalar(other, v),
    }
}

fn scalar(kind: &Kind, v: &Value) -> Option<Pb> {
    let number = |v: &Value| -> Option<f64> {
        match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    };
    let signed = |v: &Value| -> Option<i64> {
        match v {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    };
    Some(match kind {
        Kind::String => Pb::String(match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        Kind::Bytes => Pb::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str()?)
                .ok()?
                .into(),
        ),
        Kind::Bool => Pb::Bool(match v {
            Value::Bool(b) => *b,
            Value::String(s) => s == "true",
            _ => return None,
        }),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Pb::I32(signed(v)? as i32),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Pb::I64(signed(v)?),
        Kind::Uint32 | Kind::Fixed32 => Pb::U32(signed(v)? as u32),
        Kind::Uint64 | Kind::Fixed64 => Pb::U64(signed(v)? as u64),
        Kind::Double => Pb::F64(number(v)?),
        Kind::Float => Pb::F32(number(v)? as f32),
        Kind::Enum(_) => Pb::EnumNumber(signed(v)? as i32),
        Kind::Message(_) => return None,
    })
}
