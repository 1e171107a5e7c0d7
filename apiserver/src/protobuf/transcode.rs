//! JSON bytes straight to protobuf bytes: the answers the registry renders as JSON, written
//! for a client that prefers protobuf without building a `serde_json::Value` in between.
//!
//! serde_json's parser drives a seed per field that writes the field's wire form at once;
//! what each message's JSON looks like (its fields by JSON key, the Go structs embedded
//! inline, the apimachinery types with a JSON form of their own) is worked out once per
//! message type from the descriptor pool ([`Plans`]), by the same rules as [`super::json`].
//! Keys no field names are skipped, as [`super::json::write_message`] skips them; the
//! round-trip test checks both writers mean the same message for every served kind.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use base64::Engine;
use prost::encoding::{encode_key, WireType};
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::json::{
    close, inline, json_name, open, shape, write_string as write_bytes, write_varint, Shape,
};

/// A field's type on the wire.
#[derive(Clone, Copy, Debug)]
enum Ty {
    Message(usize),
    String,
    Bytes,
    Bool,
    /// int32 and enums: negative values take ten bytes.
    Int32,
    /// int64, uint32, uint64.
    Int64,
    Sint,
    Fixed32,
    Fixed64,
    Double,
    Float,
}

#[cfg(test)]
#[test]
fn utc_timestamps_read_as_jiff_reads_them() {
    // (Before 1970 the two differ: Go's seconds are floored and its nanoseconds never
    // negative, as this reader's; jiff truncates. Kubernetes' times are never that old.)
    for s in [
        "2026-12-07T09:00:00Z",
        "1970-01-01T00:00:00Z",
        "2000-02-29T23:59:59.123456Z",
        "2400-03-01T00:00:00.000000001Z",
    ] {
        let t: jiff::Timestamp = s.parse().unwrap();
        assert_eq!(
            utc_timestamp(s),
            Some((t.as_second(), t.subsec_nanosecond())),
            "{s}"
        );
    }
    for s in [
        "2026-12-07T09:00:00+01:00",
        "2026-13-07T09:00:00Z",
        "2026-12-07 09:00:00Z",
        "",
    ] {
        assert_eq!(utc_timestamp(s), None, "{s}");
    }
}

#[derive(Clone, Copy, Debug)]
enum Card {
    Single,
    List,
    /// A map: its entries' key and value (field numbers 1 and 2 of the entry message).
    Map {
        key: Ty,
        value: Ty,
    },
}

#[derive(Clone, Copy, Debug)]
struct Field {
    tag: u32,
    ty: Ty,
    card: Card,
    /// The inline embedding (an index into [`Plan::inline`]) whose field this is, if any.
    node: Option<usize>,
}

/// A Go struct embedded inline: written as the field `tag` of its parent node (or the
/// message itself).
#[derive(Clone, Copy, Debug)]
struct InlineNode {
    tag: u32,
    parent: Option<usize>,
}

enum PlanShape {
    Object,
    Time {
        seconds: Option<u32>,
        nanos: Option<u32>,
        micro: bool,
    },
    Duration(Option<u32>),
    IntOrString {
        ty: u32,
        int: u32,
        string: u32,
    },
    Quantity(Option<u32>),
    RawJson(u32),
    Slice(u32, Ty),
}

/// Field lookups by JSON key happen for every key of every object written: a fast hash.
type Fast = foldhash::fast::RandomState;

struct Plan {
    shape: PlanShape,
    fields: HashMap<String, Field, Fast>,
    inline: Vec<InlineNode>,
}

/// Every message type's plan, by the pool's message index.
pub struct Plans {
    plans: Vec<Plan>,
    index: HashMap<String, usize>,
}

fn ty_of(kind: &Kind, index: &HashMap<String, usize>) -> Ty {
    match kind {
        Kind::Message(m) => Ty::Message(index[m.full_name()]),
        Kind::String => Ty::String,
        Kind::Bytes => Ty::Bytes,
        Kind::Bool => Ty::Bool,
        Kind::Int32 | Kind::Enum(_) => Ty::Int32,
        Kind::Int64 | Kind::Uint32 | Kind::Uint64 => Ty::Int64,
        Kind::Sint32 | Kind::Sint64 => Ty::Sint,
        Kind::Fixed32 | Kind::Sfixed32 => Ty::Fixed32,
        Kind::Fixed64 | Kind::Sfixed64 => Ty::Fixed64,
        Kind::Double => Ty::Double,
        Kind::Float => Ty::Float,
    }
}

fn field_of(f: &FieldDescriptor, node: Option<usize>, index: &HashMap<String, usize>) -> Field {
    let card = if f.is_map() {
        match f.kind() {
            Kind::Message(entry) => Card::Map {
                key: ty_of(&entry.map_entry_key_field().kind(), index),
                value: ty_of(&entry.map_entry_value_field().kind(), index),
            },
            _ => Card::Single,
        }
    } else if f.is_list() {
        Card::List
    } else {
        Card::Single
    };
    Field {
        tag: f.number(),
        ty: ty_of(&f.kind(), index),
        card,
        node,
    }
}

/// Adds the JSON keys of `desc`'s fields (those of its inline embeddings too) to `plan`.
fn add_fields(
    desc: &MessageDescriptor,
    node: Option<usize>,
    plan: &mut Plan,
    index: &HashMap<String, usize>,
) {
    let mut embedded = Vec::new();
    for f in desc.fields() {
        if let Some(m) = inline(&f) {
            embedded.push((f.number(), m));
            continue;
        }
        let field = field_of(&f, node, index);
        // The JSON name, and the .proto name (what a decoder also accepts); a field of the
        // message itself wins over one of an embedding.
        plan.fields.entry(json_name(f.name())).or_insert(field);
        plan.fields.entry(f.name().to_string()).or_insert(field);
    }
    for (tag, m) in embedded {
        plan.inline.push(InlineNode { tag, parent: node });
        let id = plan.inline.len() - 1;
        add_fields(&m, Some(id), plan, index);
    }
}

impl Plans {
    fn build(pool: &prost_reflect::DescriptorPool) -> Plans {
        let messages: Vec<MessageDescriptor> = pool.all_messages().collect();
        let index: HashMap<String, usize> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| (m.full_name().to_string(), i))
            .collect();
        let number =
            |m: &MessageDescriptor, name: &str| m.get_field_by_name(name).map(|f| f.number());
        let plans = messages
            .iter()
            .map(|m| {
                let shape = match shape(m) {
                    Shape::Object => PlanShape::Object,
                    s @ (Shape::Time | Shape::MicroTime) => PlanShape::Time {
                        seconds: number(m, "seconds"),
                        nanos: number(m, "nanos"),
                        micro: matches!(s, Shape::MicroTime),
                    },
                    Shape::Duration => PlanShape::Duration(number(m, "duration")),
                    Shape::IntOrString => PlanShape::IntOrString {
                        ty: number(m, "type").unwrap_or(1),
                        int: number(m, "intVal").unwrap_or(2),
                        string: number(m, "strVal").unwrap_or(3),
                    },
                    Shape::Quantity => PlanShape::Quantity(number(m, "string")),
                    Shape::RawJson(f) => PlanShape::RawJson(f.number()),
                    Shape::Slice(f) => PlanShape::Slice(f.number(), ty_of(&f.kind(), &index)),
                };
                let mut plan = Plan {
                    shape,
                    fields: HashMap::default(),
                    inline: Vec::new(),
                };
                if matches!(plan.shape, PlanShape::Object) {
                    add_fields(m, None, &mut plan, &index);
                }
                plan
            })
            .collect();
        Plans { plans, index }
    }

    /// The plans of the pool's messages (made on first use).
    pub fn get() -> &'static Plans {
        static PLANS: OnceLock<Plans> = OnceLock::new();
        PLANS.get_or_init(|| Plans::build(super::pool()))
    }

    /// Writes the JSON `json` of a message of type `desc` as its protobuf fields (no
    /// envelope). None when the JSON does not parse.
    pub fn write(&self, desc: &MessageDescriptor, json: &[u8], out: &mut Vec<u8>) -> Option<()> {
        let i = *self.index.get(desc.full_name())?;
        let mut de = serde_json::Deserializer::from_slice(json);
        MessageBody {
            plans: self,
            plan: i,
            out,
        }
        .deserialize(&mut de)
        .ok()?;
        de.end().ok()
    }
}

/// A JSON key, borrowed from the body unless it has escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A JSON scalar, as the visitor met it.
enum Scalar<'a> {
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(&'a str),
}

impl Scalar<'_> {
    fn int(&self) -> Option<i64> {
        match *self {
            Scalar::I64(i) => Some(i),
            Scalar::U64(u) => Some(u as i64),
            Scalar::F64(f) => Some(f as i64),
            Scalar::Str(s) => s.parse().ok(),
            Scalar::Bool(_) => None,
        }
    }
    fn float(&self) -> Option<f64> {
        match *self {
            Scalar::I64(i) => Some(i as f64),
            Scalar::U64(u) => Some(u as f64),
            Scalar::F64(f) => Some(f),
            Scalar::Str(s) => s.parse().ok(),
            Scalar::Bool(_) => None,
        }
    }
    fn text(&self) -> String {
        match *self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::I64(i) => i.to_string(),
            Scalar::U64(u) => u.to_string(),
            Scalar::F64(f) => serde_json::Number::from_f64(f)
                .map(|n| n.to_string())
                .unwrap_or_default(),
            Scalar::Str(s) => s.to_string(),
        }
    }
}

/// Writes a scalar of type `ty` as field `tag`.
fn write_scalar(ty: Ty, tag: u32, v: Scalar<'_>, out: &mut Vec<u8>) {
    match ty {
        Ty::String => match v {
            Scalar::Str(s) => write_bytes(tag, s.as_bytes(), out),
            other => write_bytes(tag, other.text().as_bytes(), out),
        },
        Ty::Bytes => {
            if let Scalar::Str(s) = v {
                if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(s) {
                    write_bytes(tag, &b, out);
                }
            }
        }
        Ty::Bool => {
            let b = match v {
                Scalar::Bool(b) => b,
                Scalar::Str(s) => s == "true",
                _ => return,
            };
            write_varint(tag, u64::from(b), out);
        }
        Ty::Int32 => {
            if let Some(i) = v.int() {
                write_varint(tag, i as i32 as i64 as u64, out);
            }
        }
        Ty::Int64 => {
            if let Some(i) = v.int() {
                write_varint(tag, i as u64, out);
            }
        }
        Ty::Sint => {
            if let Some(i) = v.int() {
                write_varint(tag, ((i << 1) ^ (i >> 63)) as u64, out);
            }
        }
        Ty::Fixed32 => {
            if let Some(i) = v.int() {
                encode_key(tag, WireType::ThirtyTwoBit, out);
                out.extend_from_slice(&(i as u32).to_le_bytes());
            }
        }
        Ty::Fixed64 => {
            if let Some(i) = v.int() {
                encode_key(tag, WireType::SixtyFourBit, out);
                out.extend_from_slice(&(i as u64).to_le_bytes());
            }
        }
        Ty::Double => {
            if let Some(f) = v.float() {
                encode_key(tag, WireType::SixtyFourBit, out);
                out.extend_from_slice(&f.to_le_bytes());
            }
        }
        Ty::Float => {
            if let Some(f) = v.float() {
                encode_key(tag, WireType::ThirtyTwoBit, out);
                out.extend_from_slice(&(f as f32).to_le_bytes());
            }
        }
        // A scalar where a message belongs is left out (so is a message's null).
        Ty::Message(_) => {}
    }
}

/// Seconds and nanoseconds of a UTC RFC 3339 time as Kubernetes writes them
/// (`2026-12-07T09:00:00Z`, `…:00.123456Z`); None for any other form (jiff reads those).
/// Every object has a few, and a list has thousands.
fn utc_timestamp(s: &str) -> Option<(i64, i32)> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[b.len() - 1] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let nanos = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', frac @ ..] if !frac.is_empty() && frac.len() <= 9 => {
            let mut n = num(20..b.len() - 1)?;
            for _ in frac.len()..9 {
                n *= 10;
            }
            n as i32
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + sec, nanos))
}

/// Writes a message's scalar JSON forms (a Time string, a Quantity...) as its fields.
fn write_special(shape: &PlanShape, v: Scalar<'_>, out: &mut Vec<u8>) {
    match *shape {
        PlanShape::Time {
            seconds,
            nanos,
            micro,
        } => {
            let Scalar::Str(s) = v else { return };
            let Some((secs, sub)) = utc_timestamp(s).or_else(|| {
                let t = s.parse::<jiff::Timestamp>().ok()?;
                Some((t.as_second(), t.subsec_nanosecond()))
            }) else {
                return;
            };
            if let Some(n) = seconds {
                write_varint(n, secs as u64, out);
            }
            if let Some(n) = nanos {
                let ns = if micro { sub / 1000 * 1000 } else { 0 };
                write_varint(n, ns as i64 as u64, out);
            }
        }
        PlanShape::Duration(Some(n)) => {
            let Scalar::Str(s) = v else { return };
            let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
            if let Ok(d) = tinykube_machinery::duration::parse(s) {
                let ns = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
                write_varint(n, if neg { -ns } else { ns } as u64, out);
            }
        }
        PlanShape::IntOrString { ty, int, string } => match v {
            Scalar::Str(s) => {
                write_varint(ty, 1, out);
                write_varint(int, 0, out);
                write_bytes(string, s.as_bytes(), out);
            }
            other => {
                write_varint(ty, 0, out);
                write_varint(int, other.int().unwrap_or(0) as i32 as i64 as u64, out);
                write_bytes(string, b"", out);
            }
        },
        PlanShape::Quantity(Some(n)) => write_bytes(n, v.text().as_bytes(), out),
        _ => {}
    }
}

/// The fields of message `plan` from its JSON value (written without a key or length: the
/// caller framed them).
struct MessageBody<'p, 'o> {
    plans: &'p Plans,
    plan: usize,
    out: &'o mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for MessageBody<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let plan = &self.plans.plans[self.plan];
        match plan.shape {
            PlanShape::RawJson(tag) => {
                let v = serde_json::Value::deserialize(d)?;
                if !v.is_null() {
                    write_bytes(tag, &serde_json::to_vec(&v).unwrap_or_default(), self.out);
                }
                Ok(())
            }
            _ => d.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for MessageBody<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a message's JSON")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let plan = &self.plans.plans[self.plan];
        if !matches!(plan.shape, PlanShape::Object) {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(());
        }
        // The fields of inline embeddings gather in buffers of their own, written (innermost
        // first) as fields of their parents once the object is read.
        let mut inline: Vec<Vec<u8>> = vec![Vec::new(); plan.inline.len()];
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let Some(field) = plan.fields.get(key.0.as_ref()).copied() else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let out = match field.node {
                Some(n) => &mut inline[n],
                None => &mut *self.out,
            };
            map.next_value_seed(FieldValue {
                plans: self.plans,
                field,
                out,
            })?;
        }
        for n in (0..plan.inline.len()).rev() {
            let body = std::mem::take(&mut inline[n]);
            if body.is_empty() {
                continue;
            }
            let node = plan.inline[n];
            let out = match node.parent {
                Some(p) => &mut inline[p],
                None => &mut *self.out,
            };
            write_bytes(node.tag, &body, out);
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let plan = &self.plans.plans[self.plan];
        if let PlanShape::Slice(tag, ty) = plan.shape {
            while seq
                .next_element_seed(Element {
                    plans: self.plans,
                    ty,
                    tag,
                    out: &mut *self.out,
                })?
                .is_some()
            {}
        } else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
        }
        Ok(())
    }

    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        write_special(&self.plans.plans[self.plan].shape, Scalar::Str(s), self.out);
        Ok(())
    }
    fn visit_i64<E>(self, i: i64) -> Result<(), E> {
        write_special(&self.plans.plans[self.plan].shape, Scalar::I64(i), self.out);
        Ok(())
    }
    fn visit_u64<E>(self, u: u64) -> Result<(), E> {
        write_special(&self.plans.plans[self.plan].shape, Scalar::U64(u), self.out);
        Ok(())
    }
    fn visit_f64<E>(self, f: f64) -> Result<(), E> {
        write_special(&self.plans.plans[self.plan].shape, Scalar::F64(f), self.out);
        Ok(())
    }
    fn visit_bool<E>(self, b: bool) -> Result<(), E> {
        write_special(
            &self.plans.plans[self.plan].shape,
            Scalar::Bool(b),
            self.out,
        );
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// One field's JSON value: a single value, a list's elements, or a map's entries.
struct FieldValue<'p, 'o> {
    plans: &'p Plans,
    field: Field,
    out: &'o mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for FieldValue<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.field.card {
            Card::Single => Element {
                plans: self.plans,
                ty: self.field.ty,
                tag: self.field.tag,
                out: self.out,
            }
            .deserialize(d),
            _ => d.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for FieldValue<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list or a map")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Element {
                plans: self.plans,
                ty: self.field.ty,
                tag: self.field.tag,
                out: &mut *self.out,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Card::Map { key, value } = self.field.card else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        while let Some(k) = map.next_key::<Key<'de>>()? {
            let at = open(self.field.tag, self.out);
            write_scalar(key, 1, Scalar::Str(&k.0), self.out);
            map.next_value_seed(Element {
                plans: self.plans,
                ty: value,
                tag: 2,
                out: &mut *self.out,
            })?;
            close(at, self.out);
        }
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
}

/// One value of type `ty` written as field `tag` (a list element, a map value, or a field's
/// only value).
struct Element<'p, 'o> {
    plans: &'p Plans,
    ty: Ty,
    tag: u32,
    out: &'o mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for Element<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.ty {
            Ty::Message(i) => d.deserialize_option(MessageField {
                plans: self.plans,
                plan: i,
                tag: self.tag,
                out: self.out,
            }),
            _ => d.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for Element<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a scalar")
    }
    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        write_scalar(self.ty, self.tag, Scalar::Str(s), self.out);
        Ok(())
    }
    fn visit_i64<E>(self, i: i64) -> Result<(), E> {
        write_scalar(self.ty, self.tag, Scalar::I64(i), self.out);
        Ok(())
    }
    fn visit_u64<E>(self, u: u64) -> Result<(), E> {
        write_scalar(self.ty, self.tag, Scalar::U64(u), self.out);
        Ok(())
    }
    fn visit_f64<E>(self, f: f64) -> Result<(), E> {
        write_scalar(self.ty, self.tag, Scalar::F64(f), self.out);
        Ok(())
    }
    fn visit_bool<E>(self, b: bool) -> Result<(), E> {
        write_scalar(self.ty, self.tag, Scalar::Bool(b), self.out);
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// A message-typed value: nothing for null, else the field framed around its body.
struct MessageField<'p, 'o> {
    plans: &'p Plans,
    plan: usize,
    tag: u32,
    out: &'o mut Vec<u8>,
}

impl<'de> Visitor<'de> for MessageField<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a message's JSON or null")
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let at = open(self.tag, self.out);
        MessageBody {
            plans: self.plans,
            plan: self.plan,
            out: &mut *self.out,
        }
        .deserialize(d)?;
        close(at, self.out);
        Ok(())
    }
}

/// Typed objects straight to protobuf: a serde Serializer driven by the same plans, so a list
/// of objects the registry holds is written without rendering JSON first.
pub mod typed {
    use super::*;
    use serde::ser::{self, Impossible, Serialize, Serializer};

    /// Why serializing stopped (only for shapes no Kubernetes type has).
    #[derive(Debug)]
    pub struct Unsupported(String);

    impl fmt::Display for Unsupported {
        fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for Unsupported {}
    impl ser::Error for Unsupported {
        fn custom<T: fmt::Display>(msg: T) -> Self {
            Unsupported(msg.to_string())
        }
    }

    type R = Result<(), Unsupported>;

    impl Plans {
        /// Writes `value` (a typed object whose JSON is a message of type `desc`) as the
        /// message's fields (no envelope).
        pub fn write_typed<T: Serialize + ?Sized>(
            &self,
            desc: &MessageDescriptor,
            value: &T,
            out: &mut Vec<u8>,
        ) -> Option<()> {
            let i = *self.index.get(desc.full_name())?;
            value
                .serialize(Body {
                    plans: self,
                    plan: i,
                    out,
                })
                .ok()
        }
    }

    impl Plans {
        /// Writes a list of message type `list` (its `metadata` and `items`) from typed items.
        pub fn write_list<M: Serialize + ?Sized, T: Serialize>(
            &self,
            list: &MessageDescriptor,
            meta: &M,
            items: &[T],
            out: &mut Vec<u8>,
        ) -> Option<()> {
            let plan = &self.plans[*self.index.get(list.full_name())?];
            let (m, it) = (*plan.fields.get("metadata")?, *plan.fields.get("items")?);
            field(self, m, meta, out).ok()?;
            for item in items {
                element(self, it.ty, it.tag, item, out).ok()?;
            }
            Some(())
        }
    }

    /// Writes one value of type `ty` as field `tag`, whatever its Rust type.
    fn element<T: Serialize + ?Sized>(
        plans: &Plans,
        ty: Ty,
        tag: u32,
        value: &T,
        out: &mut Vec<u8>,
    ) -> R {
        match ty {
            Ty::Message(i) => match plans.plans[i].shape {
                PlanShape::RawJson(raw) => {
                    let bytes = serde_json::to_vec(value).map_err(ser::Error::custom)?;
                    if bytes != b"null" {
                        let at = open(tag, out);
                        write_bytes(raw, &bytes, out);
                        close(at, out);
                    }
                    Ok(())
                }
                _ => value.serialize(Framed {
                    plans,
                    plan: i,
                    tag,
                    out,
                }),
            },
            _ => value.serialize(ScalarSer { ty, tag, out }),
        }
    }

    /// A field's value: one element, a list's elements or a map's entries.
    fn field<T: Serialize + ?Sized>(plans: &Plans, f: Field, value: &T, out: &mut Vec<u8>) -> R {
        match f.card {
            Card::Single => element(plans, f.ty, f.tag, value, out),
            Card::List => value.serialize(ListSer {
                plans,
                ty: f.ty,
                tag: f.tag,
                out,
            }),
            Card::Map { key, value: vty } => value.serialize(MapSer {
                plans,
                tag: f.tag,
                key_ty: key,
                value_ty: vty,
                key: None,
                out,
            }),
        }
    }

    macro_rules! nothing {
        ($($name:ident($($arg:ty),*)),* $(,)?) => {
            $(fn $name(self, $(_: $arg),*) -> R { Ok(()) })*
        };
    }

    macro_rules! refuse_compound {
        () => {
            type SerializeSeq = Impossible<(), Unsupported>;
            type SerializeTuple = Impossible<(), Unsupported>;
            type SerializeTupleStruct = Impossible<(), Unsupported>;
            type SerializeTupleVariant = Impossible<(), Unsupported>;
            type SerializeStructVariant = Impossible<(), Unsupported>;
            fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Unsupported> {
                Err(ser::Error::custom("a list where none belongs"))
            }
            fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Unsupported> {
                Err(ser::Error::custom("a tuple"))
            }
            fn serialize_tuple_struct(
                self,
                _: &'static str,
                _: usize,
            ) -> Result<Self::SerializeTupleStruct, Unsupported> {
                Err(ser::Error::custom("a tuple struct"))
            }
            fn serialize_tuple_variant(
                self,
                _: &'static str,
                _: u32,
                _: &'static str,
                _: usize,
            ) -> Result<Self::SerializeTupleVariant, Unsupported> {
                Err(ser::Error::custom("a tuple variant"))
            }
            fn serialize_struct_variant(
                self,
                _: &'static str,
                _: u32,
                _: &'static str,
                _: usize,
            ) -> Result<Self::SerializeStructVariant, Unsupported> {
                Err(ser::Error::custom("a struct variant"))
            }
            fn serialize_unit_variant(self, _: &'static str, _: u32, v: &'static str) -> R {
                self.serialize_str(v)
            }
            fn serialize_newtype_variant<T: Serialize + ?Sized>(
                self,
                _: &'static str,
                _: u32,
                _: &'static str,
                _: &T,
            ) -> R {
                Err(ser::Error::custom("a newtype variant"))
            }
        };
    }

    /// A message's fields, unframed (the top-level object, or the inside of [`Framed`]).
    struct Body<'p, 'o> {
        plans: &'p Plans,
        plan: usize,
        out: &'o mut Vec<u8>,
    }

    /// The fields of an object as its struct (or map) is serialized.
    pub struct Fields<'p, 'o> {
        plans: &'p Plans,
        plan: usize,
        out: &'o mut Vec<u8>,
        inline: Vec<Vec<u8>>,
        /// Where [`Framed`] opened the message, closed at the end.
        frame: Option<usize>,
        key: Option<String>,
    }

    impl Fields<'_, '_> {
        fn put<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> R {
            let plan = &self.plans.plans[self.plan];
            let Some(f) = plan.fields.get(key).copied() else {
                return Ok(());
            };
            let out = match f.node {
                Some(n) => &mut self.inline[n],
                None => &mut *self.out,
            };
            field(self.plans, f, value, out)
        }

        fn finish(mut self) -> R {
            let plan = &self.plans.plans[self.plan];
            for n in (0..plan.inline.len()).rev() {
                let body = std::mem::take(&mut self.inline[n]);
                if body.is_empty() {
                    continue;
                }
                let node = plan.inline[n];
                let out = match node.parent {
                    Some(p) => &mut self.inline[p],
                    None => &mut *self.out,
                };
                write_bytes(node.tag, &body, out);
            }
            if let Some(at) = self.frame {
                close(at, self.out);
            }
            Ok(())
        }
    }

    impl ser::SerializeStruct for Fields<'_, '_> {
        type Ok = ();
        type Error = Unsupported;
        fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> R {
            self.put(key, v)
        }
        fn end(self) -> R {
            self.finish()
        }
    }

    impl ser::SerializeMap for Fields<'_, '_> {
        type Ok = ();
        type Error = Unsupported;
        fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> R {
            self.key = Some(k.serialize(KeyText)?);
            Ok(())
        }
        fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
            let k = self.key.take().unwrap_or_default();
            self.put(&k, v)
        }
        fn end(self) -> R {
            self.finish()
        }
    }

    fn fields<'p, 'o>(
        plans: &'p Plans,
        plan: usize,
        out: &'o mut Vec<u8>,
        frame: Option<usize>,
    ) -> Fields<'p, 'o> {
        let n = plans.plans[plan].inline.len();
        Fields {
            plans,
            plan,
            out,
            inline: vec![Vec::new(); n],
            frame,
            key: None,
        }
    }

    impl<'p, 'o> Serializer for Body<'p, 'o> {
        type Ok = ();
        type Error = Unsupported;
        type SerializeMap = Fields<'p, 'o>;
        type SerializeStruct = Fields<'p, 'o>;
        refuse_compound!();
        nothing!(
            serialize_bool(bool),
            serialize_i8(i8),
            serialize_i16(i16),
            serialize_i32(i32),
            serialize_i64(i64),
            serialize_u8(u8),
            serialize_u16(u16),
            serialize_u32(u32),
            serialize_u64(u64),
            serialize_f32(f32),
            serialize_f64(f64),
            serialize_char(char),
            serialize_str(&str),
            serialize_bytes(&[u8]),
            serialize_unit_struct(&'static str)
        );
        fn serialize_none(self) -> R {
            Ok(())
        }
        fn serialize_unit(self) -> R {
            Ok(())
        }
        fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> R {
            v.serialize(self)
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> R {
            v.serialize(self)
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Fields<'p, 'o>, Unsupported> {
            Ok(fields(self.plans, self.plan, self.out, None))
        }
        fn serialize_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Fields<'p, 'o>, Unsupported> {
            Ok(fields(self.plans, self.plan, self.out, None))
        }
    }

    /// A message-typed value framed as field `tag`: nothing for None, a frame around its
    /// fields for a struct or map, and the special JSON forms (Time, Quantity, IntOrString…)
    /// from their scalars.
    struct Framed<'p, 'o> {
        plans: &'p Plans,
        plan: usize,
        tag: u32,
        out: &'o mut Vec<u8>,
    }

    impl Framed<'_, '_> {
        fn special(self, v: Scalar<'_>) -> R {
            let at = open(self.tag, self.out);
            write_special(&self.plans.plans[self.plan].shape, v, self.out);
            close(at, self.out);
            Ok(())
        }
    }

    impl<'p, 'o> Serializer for Framed<'p, 'o> {
        type Ok = ();
        type Error = Unsupported;
        type SerializeMap = Fields<'p, 'o>;
        type SerializeStruct = Fields<'p, 'o>;
        refuse_compound!();
        fn serialize_bool(self, b: bool) -> R {
            self.special(Scalar::Bool(b))
        }
        fn serialize_i8(self, v: i8) -> R {
            self.special(Scalar::I64(v.into()))
        }
        fn serialize_i16(self, v: i16) -> R {
            self.special(Scalar::I64(v.into()))
        }
        fn serialize_i32(self, v: i32) -> R {
            self.special(Scalar::I64(v.into()))
        }
        fn serialize_i64(self, v: i64) -> R {
            self.special(Scalar::I64(v))
        }
        fn serialize_u8(self, v: u8) -> R {
            self.special(Scalar::U64(v.into()))
        }
        fn serialize_u16(self, v: u16) -> R {
            self.special(Scalar::U64(v.into()))
        }
        fn serialize_u32(self, v: u32) -> R {
            self.special(Scalar::U64(v.into()))
        }
        fn serialize_u64(self, v: u64) -> R {
            self.special(Scalar::U64(v))
        }
        fn serialize_f32(self, v: f32) -> R {
            self.special(Scalar::F64(v.into()))
        }
        fn serialize_f64(self, v: f64) -> R {
            self.special(Scalar::F64(v))
        }
        fn serialize_char(self, v: char) -> R {
            self.special(Scalar::Str(v.encode_utf8(&mut [0; 4])))
        }
        fn serialize_str(self, v: &str) -> R {
            self.special(Scalar::Str(v))
        }
        fn serialize_bytes(self, _: &[u8]) -> R {
            Err(ser::Error::custom("bytes where a message belongs"))
        }
        fn serialize_none(self) -> R {
            Ok(())
        }
        fn serialize_unit(self) -> R {
            Ok(())
        }
        fn serialize_unit_struct(self, _: &'static str) -> R {
            Ok(())
        }
        fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> R {
            v.serialize(self)
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> R {
            v.serialize(self)
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Fields<'p, 'o>, Unsupported> {
            let at = open(self.tag, self.out);
            Ok(fields(self.plans, self.plan, self.out, Some(at)))
        }
        fn serialize_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Fields<'p, 'o>, Unsupported> {
            let at = open(self.tag, self.out);
            Ok(fields(self.plans, self.plan, self.out, Some(at)))
        }
    }

    /// A scalar field's value.
    struct ScalarSer<'o> {
        ty: Ty,
        tag: u32,
        out: &'o mut Vec<u8>,
    }

    impl ScalarSer<'_> {
        fn put(self, v: Scalar<'_>) -> R {
            write_scalar(self.ty, self.tag, v, self.out);
            Ok(())
        }
    }

    impl Serializer for ScalarSer<'_> {
        type Ok = ();
        type Error = Unsupported;
        type SerializeMap = Impossible<(), Unsupported>;
        type SerializeStruct = Impossible<(), Unsupported>;
        refuse_compound!();
        fn serialize_bool(self, b: bool) -> R {
            self.put(Scalar::Bool(b))
        }
        fn serialize_i8(self, v: i8) -> R {
            self.put(Scalar::I64(v.into()))
        }
        fn serialize_i16(self, v: i16) -> R {
            self.put(Scalar::I64(v.into()))
        }
        fn serialize_i32(self, v: i32) -> R {
            self.put(Scalar::I64(v.into()))
        }
        fn serialize_i64(self, v: i64) -> R {
            self.put(Scalar::I64(v))
        }
        fn serialize_u8(self, v: u8) -> R {
            self.put(Scalar::U64(v.into()))
        }
        fn serialize_u16(self, v: u16) -> R {
            self.put(Scalar::U64(v.into()))
        }
        fn serialize_u32(self, v: u32) -> R {
            self.put(Scalar::U64(v.into()))
        }
        fn serialize_u64(self, v: u64) -> R {
            self.put(Scalar::U64(v))
        }
        fn serialize_f32(self, v: f32) -> R {
            self.put(Scalar::F64(v.into()))
        }
        fn serialize_f64(self, v: f64) -> R {
            self.put(Scalar::F64(v))
        }
        fn serialize_char(self, v: char) -> R {
            self.put(Scalar::Str(v.encode_utf8(&mut [0; 4])))
        }
        fn serialize_str(self, v: &str) -> R {
            self.put(Scalar::Str(v))
        }
        fn serialize_bytes(self, v: &[u8]) -> R {
            if matches!(self.ty, Ty::Bytes) {
                write_bytes(self.tag, v, self.out);
            }
            Ok(())
        }
        fn serialize_none(self) -> R {
            Ok(())
        }
        fn serialize_unit(self) -> R {
            Ok(())
        }
        fn serialize_unit_struct(self, _: &'static str) -> R {
            Ok(())
        }
        fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> R {
            v.serialize(self)
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> R {
            v.serialize(self)
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Unsupported> {
            Err(ser::Error::custom("a map where a scalar belongs"))
        }
        fn serialize_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStruct, Unsupported> {
            Err(ser::Error::custom("a struct where a scalar belongs"))
        }
    }

    /// A repeated field's value.
    struct ListSer<'p, 'o> {
        plans: &'p Plans,
        ty: Ty,
        tag: u32,
        out: &'o mut Vec<u8>,
    }

    impl<'p, 'o> ser::SerializeSeq for ListSer<'p, 'o> {
        type Ok = ();
        type Error = Unsupported;
        fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
            element(self.plans, self.ty, self.tag, v, self.out)
        }
        fn end(self) -> R {
            Ok(())
        }
    }

    impl<'p, 'o> Serializer for ListSer<'p, 'o> {
        type Ok = ();
        type Error = Unsupported;
        type SerializeSeq = Self;
        type SerializeTuple = Impossible<(), Unsupported>;
        type SerializeTupleStruct = Impossible<(), Unsupported>;
        type SerializeTupleVariant = Impossible<(), Unsupported>;
        type SerializeStructVariant = Impossible<(), Unsupported>;
        type SerializeMap = Impossible<(), Unsupported>;
        type SerializeStruct = Impossible<(), Unsupported>;
        nothing!(
            serialize_bool(bool),
            serialize_i8(i8),
            serialize_i16(i16),
            serialize_i32(i32),
            serialize_i64(i64),
            serialize_u8(u8),
            serialize_u16(u16),
            serialize_u32(u32),
            serialize_u64(u64),
            serialize_f32(f32),
            serialize_f64(f64),
            serialize_char(char),
            serialize_str(&str),
            serialize_bytes(&[u8]),
            serialize_unit_struct(&'static str)
        );
        fn serialize_seq(self, _: Option<usize>) -> Result<Self, Unsupported> {
            Ok(self)
        }
        fn serialize_none(self) -> R {
            Ok(())
        }
        fn serialize_unit(self) -> R {
            Ok(())
        }
        fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> R {
            v.serialize(self)
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> R {
            v.serialize(self)
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Unsupported> {
            Err(ser::Error::custom("a tuple"))
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct, Unsupported> {
            Err(ser::Error::custom("a tuple struct"))
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, Unsupported> {
            Err(ser::Error::custom("a tuple variant"))
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, Unsupported> {
            Err(ser::Error::custom("a struct variant"))
        }
        fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> R {
            Ok(())
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> R {
            Err(ser::Error::custom("a newtype variant"))
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Unsupported> {
            Err(ser::Error::custom("a map where a list belongs"))
        }
        fn serialize_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStruct, Unsupported> {
            Err(ser::Error::custom("a struct where a list belongs"))
        }
    }

    /// A map field's value: each entry framed as field `tag`, key 1 and value 2.
    struct MapSer<'p, 'o> {
        plans: &'p Plans,
        tag: u32,
        key_ty: Ty,
        value_ty: Ty,
        key: Option<String>,
        out: &'o mut Vec<u8>,
    }

    impl ser::SerializeMap for MapSer<'_, '_> {
        type Ok = ();
        type Error = Unsupported;
        fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> R {
            self.key = Some(k.serialize(KeyText)?);
            Ok(())
        }
        fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
            let k = self.key.take().unwrap_or_default();
            let at = open(self.tag, self.out);
            write_scalar(self.key_ty, 1, Scalar::Str(&k), self.out);
            element(self.plans, self.value_ty, 2, v, self.out)?;
            close(at, self.out);
            Ok(())
        }
        fn end(self) -> R {
            Ok(())
        }
    }

    impl<'p, 'o> Serializer for MapSer<'p, 'o> {
        type Ok = ();
        type Error = Unsupported;
        type SerializeMap = Self;
        type SerializeStruct = Impossible<(), Unsupported>;
        refuse_compound!();
        nothing!(
            serialize_bool(bool),
            serialize_i8(i8),
            serialize_i16(i16),
            serialize_i32(i32),
            serialize_i64(i64),
            serialize_u8(u8),
            serialize_u16(u16),
            serialize_u32(u32),
            serialize_u64(u64),
            serialize_f32(f32),
            serialize_f64(f64),
            serialize_char(char),
            serialize_str(&str),
            serialize_bytes(&[u8]),
            serialize_unit_struct(&'static str)
        );
        fn serialize_none(self) -> R {
            Ok(())
        }
        fn serialize_unit(self) -> R {
            Ok(())
        }
        fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> R {
            v.serialize(self)
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> R {
            v.serialize(self)
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Self, Unsupported> {
            Ok(self)
        }
        fn serialize_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStruct, Unsupported> {
            Err(ser::Error::custom("a struct where a map belongs"))
        }
    }

    /// A map key as text.
    struct KeyText;

    impl Serializer for KeyText {
        type Ok = String;
        type Error = Unsupported;
        type SerializeSeq = Impossible<String, Unsupported>;
        type SerializeTuple = Impossible<String, Unsupported>;
        type SerializeTupleStruct = Impossible<String, Unsupported>;
        type SerializeTupleVariant = Impossible<String, Unsupported>;
        type SerializeMap = Impossible<String, Unsupported>;
        type SerializeStruct = Impossible<String, Unsupported>;
        type SerializeStructVariant = Impossible<String, Unsupported>;
        fn serialize_str(self, v: &str) -> Result<String, Unsupported> {
            Ok(v.to_string())
        }
        fn serialize_bool(self, v: bool) -> Result<String, Unsupported> {
            Ok(v.to_string())
        }
        fn serialize_i8(self, v: i8) -> Result<String, Unsupported> {
            Ok(v.to_string())
        }
        fn serialize_i16(self, v: i16) -> Result<String, Unsupported> {
            Ok(v.to_string())
        }
        fn serialize_i32(self, v: i32) -> Result<String, Unsupported> {
            Ok(v.to_string())
        }
        fn serialize_i64(self, v: i64) -> Result<String, Unsupported> {
            Ok(v.to_string())
        }
        fn serialize_u8(self, v: u8) -> Result<String, Unsupported> {
            Ok(v.to_string())
        }
        fn serialize_u16(self, v: u16) -> Result<String, Unsupported> {
            Ok(v.to_string())
        }
        fn serialize_u32(self, v: u32) -> Result<String, Unsupported> {
            Ok(v.to_string())
        }
        fn serialize_u64(self, v: u64) -> Result<String, Unsupported> {
            Ok(v.to_string())
        }
        fn serialize_f32(self, v: f32) -> Result<String, Unsupported> {
            Ok(v.to_string())
        }
        fn serialize_f64(self, v: f64) -> Result<String, Unsupported> {
            Ok(v.to_string())
        }
        fn serialize_char(self, v: char) -> Result<String, Unsupported> {
            Ok(v.to_string())
        }
        fn serialize_bytes(self, _: &[u8]) -> Result<String, Unsupported> {
            Err(ser::Error::custom("a bytes key"))
        }
        fn serialize_none(self) -> Result<String, Unsupported> {
            Err(ser::Error::custom("a null key"))
        }
        fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<String, Unsupported> {
            v.serialize(self)
        }
        fn serialize_unit(self) -> Result<String, Unsupported> {
            Err(ser::Error::custom("a unit key"))
        }
        fn serialize_unit_struct(self, _: &'static str) -> Result<String, Unsupported> {
            Err(ser::Error::custom("a unit key"))
        }
        fn serialize_unit_variant(
            self,
            _: &'static str,
            _: u32,
            v: &'static str,
        ) -> Result<String, Unsupported> {
            Ok(v.to_string())
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            v: &T,
        ) -> Result<String, Unsupported> {
            v.serialize(self)
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<String, Unsupported> {
            Err(ser::Error::custom("a variant key"))
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Unsupported> {
            Err(ser::Error::custom("a list key"))
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Unsupported> {
            Err(ser::Error::custom("a tuple key"))
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct, Unsupported> {
            Err(ser::Error::custom("a tuple key"))
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, Unsupported> {
            Err(ser::Error::custom("a tuple key"))
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Unsupported> {
            Err(ser::Error::custom("a map key"))
        }
        fn serialize_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStruct, Unsupported> {
            Err(ser::Error::custom("a struct key"))
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, Unsupported> {
            Err(ser::Error::custom("a struct key"))
        }
    }
}
