//! What a strict decoder finds in a JSON body, as Kubernetes' (sigs.k8s.io/json) reports it
//! for `fieldValidation=Strict|Warn`: `unknown field "spec.x"` for fields the kind lacks and
//! `duplicate field "spec.paused"` for keys set twice in one object — in the order the
//! decoder meets them. A field both unknown and repeated is reported as unknown only, as
//! kube-apiserver does for built-in kinds.
//!
//! The body is walked with serde_json's own parser (a seed that only records keys, so its
//! nesting limit and error handling are serde_json's).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// One key met in the body: its path (`spec.template.spec.containers[0].image`), and whether
/// the same object already had it.
#[derive(Debug, PartialEq, Eq)]
struct Key {
    path: String,
    repeated: bool,
}

struct Walk<'a> {
    path: String,
    keys: &'a RefCell<Vec<Key>>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            let repeated = !seen.insert(key);
            self.keys.borrow_mut().push(Key {
                path: path.clone(),
                repeated,
            });
            map.next_value_seed(Walk {
                path,
                keys: self.keys,
            })?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while seq
            .next_element_seed(Walk {
                path: format!("{}[{i}]", self.path),
                keys: self.keys,
            })?
            .is_some()
        {
            i += 1;
        }
        Ok(())
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

fn keys(body: &[u8]) -> Vec<Key> {
    let keys = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(body);
    // A body that does not parse was refused before; nothing more to say of it.
    let _ = Walk {
        path: String::new(),
        keys: &keys,
    }
    .deserialize(&mut de);
    keys.into_inner()
}

/// Whether `path` is `unknown` or inside it.
fn within(path: &str, unknown: &str) -> bool {
    path.strip_prefix(unknown)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

/// The strict decoding problems of `body` given the `unknown` field paths the kind dropped,
/// in the order the decoder meets them. Unknown paths not in `body` (a patch's result has
/// fields the patch did not name) come last.
pub fn problems(body: &[u8], unknown: &[String]) -> Vec<String> {
    let mut found: BTreeMap<usize, String> = BTreeMap::new();
    let mut placed = vec![false; unknown.len()];
    for (i, k) in keys(body).iter().enumerate() {
        if let Some(u) = unknown.iter().position(|u| *u == k.path) {
            if !placed[u] {
                placed[u] = true;
                found.insert(i, format!("unknown field {:?}", k.path));
            }
        } else if k.repeated && !unknown.iter().any(|u| within(&k.path, u)) {
            found.insert(i, format!("duplicate field {:?}", k.path));
        }
    }
    let mut out: Vec<String> = found.into_values().collect();
    out.extend(
        unknown
            .iter()
            .zip(placed)
            .filter(|(_, p)| !p)
            .map(|(u, _)| format!("unknown field {u:?}")),
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
