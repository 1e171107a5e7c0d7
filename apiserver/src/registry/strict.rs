//! What a strict decoder finds in a JSON body, as Kubernetes' (sigs.k8s.io/json) reports it
//! for `fieldValidation=Strict|Warn`: `unknown field "spec.x"` for fields the kind lacks and
//! `duplicate field "spec.paused"` for keys set twice in one object — in the order the
//! decoder meets them. A field both unknown and repeated is reported as unknown only, as
//! kube-apiserver does for built-in kinds.
//!
//! The body is walked with serde_json's own parser (a seed that only follows keys, so its
//! nesting limit and error handling are serde_json's), with one path buffer, without
//! descending into unknown fields, and with bounds on path length and on the problems kept.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Paths longer than this are not followed (no Kubernetes field path comes near it): a body
/// of long keys nested deep cannot make the walk cost more than its own size many times over.
pub const MAX_PATH: usize = 1024;
/// At most this many problems are collected.
pub const MAX_PROBLEMS: usize = 1000;

/// What the walk shares: the path so far (one buffer, extended and cut back), and the
/// problems found, in the order met.
struct State<'u> {
    path: String,
    unknown: &'u HashSet<&'u str>,
    placed: HashSet<String>,
    found: Vec<String>,
}

struct Walk<'a, 'u> {
    state: &'a RefCell<State<'u>>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let mut st = self.state.borrow_mut();
            let base = st.path.len();
            if base + key.len() + 1 > MAX_PATH || st.found.len() >= MAX_PROBLEMS {
                drop(st);
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if base > 0 {
                st.path.push('.');
            }
            st.path.push_str(&key);
            let repeated = !seen.insert(key);
            let unknown = st.unknown.contains(st.path.as_str());
            if unknown {
                // Reported once, at its first occurrence; what is inside is part of it.
                if !st.placed.contains(&st.path) {
                    let p = st.path.clone();
                    st.found.push(format!("unknown field {p:?}"));
                    st.placed.insert(p);
                }
                st.path.truncate(base);
                drop(st);
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if repeated {
                let msg = format!("duplicate field {:?}", st.path);
                st.found.push(msg);
            }
            drop(st);
            map.next_value_seed(Walk { state: self.state })?;
            self.state.borrow_mut().path.truncate(base);
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        loop {
            let base = {
                let mut st = self.state.borrow_mut();
                let base = st.path.len();
                if base + 24 > MAX_PATH {
                    drop(st);
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    return Ok(());
                }
                use std::fmt::Write;
                let _ = write!(st.path, "[{i}]");
                base
            };
            let more = seq.next_element_seed(Walk { state: self.state })?.is_some();
            self.state.borrow_mut().path.truncate(base);
            if !more {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
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
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// The strict decoding problems of `body` given the `unknown` field paths the kind dropped,
/// in the order the decoder meets them. Unknown paths not in `body` (a patch's result has
/// fields the patch did not name) come last.
pub fn problems(body: &[u8], unknown: &[String]) -> Vec<String> {
    let set: HashSet<&str> = unknown.iter().map(String::as_str).collect();
    let state = RefCell::new(State {
        path: String::new(),
        unknown: &set,
        placed: HashSet::new(),
        found: Vec::new(),
    });
    let mut de = serde_json::Deserializer::from_slice(body);
    // A body that does not parse was refused before; nothing more to say of it.
    let _ = Walk { state: &state }.deserialize(&mut de);
    let st = state.into_inner();
    let mut out = st.found;
    out.extend(
        unknown
            .iter()
            .filter(|u| !st.placed.contains(u.as_str()))
            .take(MAX_PROBLEMS.saturating_sub(out.len()))
            .map(|u| format!("unknown field {u:?}")),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_unknown_fields_in_the_order_met() {
        // kube-apiserver's own field validation test body.
        let body = br#"{
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a", "name": "b", "unknownMeta": "x", "labels": {"app": "nginx"}},
            "spec": {
                "unknown1": "val1", "unknownDupe": "valDupe", "unknownDupe": "valDupe2",
                "paused": true, "paused": false,
                "selector": {"matchLabels": {"app": "nginx"}},
                "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": {"containers": [{
                    "name": "nginx", "image": "nginx:latest", "unknownNested": "val1",
                    "imagePullPolicy": "Always", "imagePullPolicy": "Never"}]}}
            }
        }"#;
        let unknown: Vec<String> = [
            "metadata.unknownMeta",
            "spec.unknown1",
            "spec.unknownDupe",
            "spec.template.spec.containers[0].unknownNested",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            problems(body, &unknown).join(", "),
            "duplicate field \"metadata.name\", unknown field \"metadata.unknownMeta\", \
             unknown field \"spec.unknown1\", unknown field \"spec.unknownDupe\", \
             duplicate field \"spec.paused\", \
             unknown field \"spec.template.spec.containers[0].unknownNested\", \
             duplicate field \"spec.template.spec.containers[0].imagePullPolicy\""
        );
    }

    #[test]
    fn long_keys_and_many_fields_cost_little() {
        // A 1.5 MB key holding 200,000 keys: nothing under a path too long is followed.
        let mut body = format!("{{\"{}\": {{", "k".repeat(1_500_000));
        for i in 0..200_000 {
            body.push_str(&format!("\"{i}\":0,"));
        }
        body.push_str("\"x\":0}, \"d\": 1, \"d\": 2}");
        let t = std::time::Instant::now();
        assert_eq!(problems(body.as_bytes(), &[]), ["duplicate field \"d\""]);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
        // 5,000 repeated keys: at most MAX_PROBLEMS are kept.
        let mut many = String::from("{");
        for _ in 0..5_000 {
            many.push_str("\"a\":1,");
        }
        many.push_str("\"a\":1}");
        assert_eq!(problems(many.as_bytes(), &[]).len(), MAX_PROBLEMS);
    }

    #[test]
    fn a_clean_body_has_no_problems_and_unknown_fields_not_in_it_come_last() {
        assert!(problems(br#"{"a": {"b": [1, {"c": 2}]}, "d": null}"#, &[]).is_empty());
        assert_eq!(
            problems(br#"{"spec": {"x": 1, "x": 2}}"#, &["spec.y".into()]),
            ["duplicate field \"spec.x\"", "unknown field \"spec.y\""]
        );
        // Repeated keys inside an unknown field are part of it.
        assert_eq!(
            problems(br#"{"u": {"k": 1, "k": 2}}"#, &["u".into()]),
            ["unknown field \"u\""]
        );
    }
}
