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
        // Embedded objects are JSON. A nested protobuf envelope is not unwrapped: nothing a
        // client sends needs it, and each level would cost a decode of its own (a body of
        // nested envelopes must not become a stack of them).
        Shape::RawJson(f) => match m.get_field(&f).as_ref() {
            Pb::Bytes(b) if !b.is_empty() && !super::is_envelope(b) => {
                serde_json::from_slice(b).ok()?
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

use prost::encoding::{encode_key, encode_varint, WireType};

/// Opens a length-delimited field; [`close`] writes its length once its body is written, in
/// place: one byte is kept for the length, which most messages fit, and only a longer one
/// moves its bytes to make room (a copy per level of nesting made lists of pods slow).
pub(super) fn open(tag: u32, out: &mut Vec<u8>) -> usize {
    encode_key(tag, WireType::LengthDelimited, out);
    out.push(0);
    out.len()
}

pub(super) fn close(at: usize, out: &mut Vec<u8>) {
    let len = out.len() - at;
    if len < 0x80 {
        out[at - 1] = len as u8;
    } else {
        let mut prefix = Vec::with_capacity(10);
        encode_varint(len as u64, &mut prefix);
        out[at - 1] = prefix[0];
        out.splice(at..at, prefix[1..].iter().copied());
    }
}

/// Writes a length-delimited field holding what `body` writes (a nested message).
fn nested(tag: u32, out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let at = open(tag, out);
    body(out);
    close(at, out);
}

pub(super) fn write_string(tag: u32, s: &[u8], out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(s.len() as u64, out);
    out.extend_from_slice(s);
}

pub(super) fn write_varint(tag: u32, v: u64, out: &mut Vec<u8>) {
    encode_key(tag, WireType::Varint, out);
    encode_varint(v, out);
}

/// Writes a JSON value as the fields of a message of type `desc`, straight to protobuf bytes
/// (no message is built in between: lists of many objects are the common answer). Keys no
/// field names are left out: what is written is what the apiserver stored.
pub fn write_message(desc: &MessageDescriptor, v: &Value, out: &mut Vec<u8>) {
    let number = |name: &str| desc.get_field_by_name(name).map(|f| f.number());
    match shape(desc) {
        Shape::Time | Shape::MicroTime => {
            if let Some(t) = parse_time(v) {
                let micro = matches!(shape(desc), Shape::MicroTime);
                if let Some(n) = number("seconds") {
                    write_varint(n, t.as_second() as u64, out);
                }
                if let Some(n) = number("nanos") {
                    let nanos = if micro {
                        t.subsec_nanosecond() / 1000 * 1000
                    } else {
                        0
                    };
                    write_varint(n, nanos as i64 as u64, out);
                }
            }
        }
        Shape::Duration => {
            let Some(s) = v.as_str() else { return };
            let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
            if let (Ok(d), Some(n)) = (tinykube_machinery::duration::parse(s), number("duration")) {
                let ns = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
                write_varint(n, if neg { -ns } else { ns } as u64, out);
            }
        }
        Shape::IntOrString => {
            let (Some(t), Some(i), Some(st)) = (number("type"), number("intVal"), number("strVal"))
            else {
                return;
            };
            match v {
                Value::String(s) => {
                    write_varint(t, 1, out);
                    write_varint(i, 0, out);
                    write_string(st, s.as_bytes(), out);
                }
                other => {
                    write_varint(t, 0, out);
                    write_varint(i, other.as_i64().unwrap_or(0) as i32 as i64 as u64, out);
                    write_string(st, b"", out);
                }
            }
        }
        Shape::Quantity => {
            if let Some(n) = number("string") {
                match v {
                    Value::String(s) => write_string(n, s.as_bytes(), out),
                    other => write_string(n, other.to_string().as_bytes(), out),
                }
            }
        }
        Shape::RawJson(f) => {
            if !v.is_null() {
                write_string(f.number(), &serde_json::to_vec(v).unwrap_or_default(), out);
            }
        }
        Shape::Slice(f) => {
            if let Value::Array(items) = v {
                for item in items {
                    write_value(&f.kind(), f.number(), item, out);
                }
            }
        }
        Shape::Object => {
            let Value::Object(obj) = v else { return };
            for field in desc.fields() {
                if let Some(embedded) = inline(&field) {
                    let mut inner = Vec::new();
                    write_message(&embedded, v, &mut inner);
                    if !inner.is_empty() {
                        write_string(field.number(), &inner, out);
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
                write_field(&field, value, out);
            }
        }
    }
}

fn write_field(field: &FieldDescriptor, v: &Value, out: &mut Vec<u8>) {
    let tag = field.number();
    if field.is_map() {
        let (Kind::Message(entry), Value::Object(map)) = (field.kind(), v) else {
            return;
        };
        let (key_field, value_field) = (entry.map_entry_key_field(), entry.map_entry_value_field());
        for (k, val) in map {
            nested(tag, out, |e| {
                write_value(
                    &key_field.kind(),
                    key_field.number(),
                    &Value::String(k.clone()),
                    e,
                );
                write_value(&value_field.kind(), value_field.number(), val, e);
            });
        }
    } else if field.is_list() {
        if let Value::Array(items) = v {
            let kind = field.kind();
            for item in items {
                write_value(&kind, tag, item, out);
            }
        }
    } else {
        write_value(&field.kind(), tag, v, out);
    }
}

/// One value of a field (a list element, a map key or value, or the field's only value).
fn write_value(kind: &Kind, tag: u32, v: &Value, out: &mut Vec<u8>) {
    let signed = |v: &Value| -> Option<i64> {
        match v {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    };
    let float = |v: &Value| -> Option<f64> {
        match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    };
    match kind {
        Kind::Message(desc) => nested(tag, out, |inner| write_message(desc, v, inner)),
        Kind::String => match v {
            Value::String(s) => write_string(tag, s.as_bytes(), out),
            Value::Null => {}
            other => write_string(tag, other.to_string().as_bytes(), out),
        },
        Kind::Bytes => {
            if let Some(b) = v
                .as_str()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            {
                write_string(tag, &b, out);
            }
        }
        Kind::Bool => {
            let b = match v {
                Value::Bool(b) => *b,
                Value::String(s) => s == "true",
                _ => return,
            };
            write_varint(tag, u64::from(b), out);
        }
        Kind::Int32 | Kind::Enum(_) => {
            if let Some(i) = signed(v) {
                write_varint(tag, i as i32 as i64 as u64, out);
            }
        }
        Kind::Int64 | Kind::Uint32 | Kind::Uint64 => {
            if let Some(i) = signed(v) {
                write_varint(tag, i as u64, out);
            }
        }
        Kind::Sint32 | Kind::Sint64 => {
            if let Some(i) = signed(v) {
                write_varint(tag, ((i << 1) ^ (i >> 63)) as u64, out);
            }
        }
        Kind::Fixed32 | Kind::Sfixed32 => {
            if let Some(i) = signed(v) {
                encode_key(tag, WireType::ThirtyTwoBit, out);
                out.extend_from_slice(&(i as u32).to_le_bytes());
            }
        }
        Kind::Fixed64 | Kind::Sfixed64 => {
            if let Some(i) = signed(v) {
                encode_key(tag, WireType::SixtyFourBit, out);
                out.extend_from_slice(&(i as u64).to_le_bytes());
            }
        }
        Kind::Double => {
            if let Some(f) = float(v) {
                encode_key(tag, WireType::SixtyFourBit, out);
                out.extend_from_slice(&f.to_le_bytes());
            }
        }
        Kind::Float => {
            if let Some(f) = float(v) {
                encode_key(tag, WireType::ThirtyTwoBit, out);
                out.extend_from_slice(&(f as f32).to_le_bytes());
            }
        }
    }
}
