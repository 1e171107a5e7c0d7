//! Label selectors (equality- and set-based, Kubernetes' grammar) and field selectors.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::validation;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
    pub values: BTreeSet<String>,
}

impl Requirement {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.op {
            Op::Equals | Op::In => value.is_some_and(|v| self.values.contains(v)),
            Op::NotEquals | Op::NotIn => !value.is_some_and(|v| self.values.contains(v)),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::GreaterThan | Op::LessThan => {
                let (Some(v), Some(bound)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values
                        .iter()
                        .next()
                        .and_then(|b| b.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.op == Op::GreaterThan {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.values.iter().next().map(String::as_str).unwrap_or("");
        let set = || self.values.iter().cloned().collect::<Vec<_>>().join(",");
        match self.op {
            Op::Equals => write!(f, "{}={}", self.key, first),
            Op::NotEquals => write!(f, "{}!={}", self.key, first),
            Op::In => write!(f, "{} in ({})", self.key, set()),
            Op::NotIn => write!(f, "{} notin ({})", self.key, set()),
            Op::Exists => write!(f, "{}", self.key),
            Op::DoesNotExist => write!(f, "!{}", self.key),
            Op::GreaterThan => write!(f, "{}>{}", self.key, first),
            Op::LessThan => write!(f, "{}<{}", self.key, first),
        }
    }
}

/// A parsed label selector: all requirements must hold. Empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

impl Selector {
    pub fn everything() -> Selector {
        Selector::default()
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    pub fn matches_opt(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.matches(labels.unwrap_or(&EMPTY))
    }

    /// Parses the `labelSelector` query syntax.
    pub fn parse(s: &str) -> Result<Selector, String> {
        let mut p = Parser { s, pos: 0 };
        let mut requirements = Vec::new();
        p.skip_ws();
        if p.at_end() {
            return Ok(Selector::default());
        }
        loop {
            requirements.push(p.requirement()?);
            p.skip_ws();
            if p.at_end() {
                break;
            }
            p.expect(",")?;
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector { requirements })
    }

    /// Converts a metav1.LabelSelector; None means "matches nothing" in Kubernetes, which
    /// callers decide; an empty one matches everything.
    pub fn from_label_selector(ls: &LabelSelector) -> Result<Selector, String> {
        let mut requirements = Vec::new();
        for (k, v) in ls.match_labels.iter().flatten() {
            requirements.push(Requirement {
                key: k.clone(),
                op: Op::Equals,
                values: [v.clone()].into(),
            });
        }
        for e in ls.match_expressions.iter().flatten() {
            let values: BTreeSet<String> = e.values.iter().flatten().cloned().collect();
            let op = match e.operator.as_str() {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => return Err(format!("{other:?} is not a valid label selector operator")),
            };
            match op {
                Op::In | Op::NotIn if values.is_empty() => {
                    return Err("for 'in', 'notin' operators, values set can't be empty".into())
                }
                Op::Exists | Op::DoesNotExist if !values.is_empty() => {
                    return Err("values set must be empty for exists and does not exist".into())
                }
                _ => {}
            }
            requirements.push(Requirement {
                key: e.key.clone(),
                op,
                values,
            });
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector { requirements })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.requirements.iter().map(|r| r.to_string()).collect();
        write!(f, "{}", parts.join(","))
    }
}

/// How kubectl prints a LabelSelector (`<none>` when empty).
pub fn format_label_selector(ls: Option<&LabelSelector>) -> String {
    match ls.map(Selector::from_label_selector) {
        Some(Ok(s)) if !s.is_empty() => s.to_string(),
        Some(Ok(_)) | None => "<none>".to_string(),
        Some(Err(_)) => "<error>".to_string(),
    }
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }
    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }
    fn skip_ws(&mut self) {
        while self.rest().starts_with([' ', '\t']) {
            self.pos += 1;
        }
    }
    fn eat(&mut self, tok: &str) -> bool {
        if self.rest().starts_with(tok) {
            self.pos += tok.len();
            true
        } else {
            false
        }
    }
    fn expect(&mut self, tok: &str) -> Result<(), String> {
        self.skip_ws();
        if self.eat(tok) {
            Ok(())
        } else {
            Err(format!(
                "unable to parse requirement: found {:?}, expected: {tok:?}",
                self.rest()
                    .chars()
                    .next()
                    .map(String::from)
                    .unwrap_or_default()
            ))
        }
    }
    /// A key or value: everything up to a delimiter.
    fn word(&mut self) -> &str {
        self.skip_ws();
        let start = self.pos;
        while let Some(c) = self.rest().chars().next() {
            if matches!(c, ' ' | '\t' | ',' | '=' | '!' | '(' | ')' | '<' | '>') {
                break;
            }
            self.pos += c.len_utf8();
        }
        &self.s[start..self.pos]
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        self.skip_ws();
        let negated = self.eat("!");
        let key = self.word().to_string();
        if key.is_empty() {
            return Err(format!(
                "unable to parse requirement: found {:?}, expected: identifier",
                self.rest()
                    .chars()
                    .next()
                    .map(String::from)
                    .unwrap_or_default()
            ));
        }
        let errs = validation::qualified_name(&key);
        if !errs.is_empty() {
            return Err(format!(
                "unable to parse requirement: key {key:?}: {}",
                errs.join("; ")
            ));
        }
        self.skip_ws();
        if negated {
            return Ok(Requirement {
                key,
                op: Op::DoesNotExist,
                values: BTreeSet::new(),
            });
        }
        if self.at_end() || self.rest().starts_with(',') {
            return Ok(Requirement {
                key,
                op: Op::Exists,
                values: BTreeSet::new(),
            });
        }
        let op = if self.eat("==") || self.eat("=") {
            Op::Equals
        } else if self.eat("!=") {
            Op::NotEquals
        } else if self.eat(">") {
            Op::GreaterThan
        } else if self.eat("<") {
            Op::LessThan
        } else {
            let w = self.word().to_string();
            match w.as_str() {
                "in" => Op::In,
                "notin" => Op::NotIn,
                _ => {
                    return Err(format!(
                        "unable to parse requirement: found {w:?}, expected: in, notin, =, ==, !=, gt, lt"
                    ))
                }
            }
        };
        let mut values = BTreeSet::new();
        if matches!(op, Op::In | Op::NotIn) {
            self.expect("(")?;
            loop {
                let v = self.word().to_string();
                values.insert(v);
                self.skip_ws();
                if self.eat(")") {
                    break;
                }
                self.expect(",")?;
            }
        } else {
            let v = self.word().to_string();
            if matches!(op, Op::GreaterThan | Op::LessThan) && v.parse::<i64>().is_err() {
                return Err(format!(
                    "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer, got {v:?}"
                ));
            }
            values.insert(v);
        }
        for v in &values {
            let errs = validation::label_value(v);
            if !errs.is_empty() {
                return Err(format!(
                    "unable to parse requirement: values[0][{key}]: Invalid value: {v:?}: {}",
                    errs.join("; ")
                ));
            }
        }
        Ok(Requirement { key, op, values })
    }
}

/// One `field=value` or `field!=value` term of a field selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub value: String,
    pub negated: bool,
}

/// A parsed field selector: every term must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Parses `a=b,c!=d` (with `\` escaping `,`, `=`, `!` and `\`).
    pub fn parse(s: &str) -> Result<FieldSelector, String> {
        let mut requirements = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector::default());
        }
        for term in split_unescaped(s, ',') {
            let (field, value, negated) = if let Some(i) = find_unescaped(&term, "!=") {
                (&term[..i], &term[i + 2..], true)
            } else if let Some(i) = find_unescaped(&term, "==") {
                (&term[..i], &term[i + 2..], false)
            } else if let Some(i) = find_unescaped(&term, "=") {
                (&term[..i], &term[i + 1..], false)
            } else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                ));
            };
            let field = field.trim().to_string();
            if field.is_empty() {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                ));
            }
            requirements.push(FieldRequirement {
                field,
                value: unescape(value.trim()),
                negated,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// Whether an object whose field values are given by `get` satisfies every term.
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let v = get(&r.field).unwrap_or_default();
            (v == r.value) != r.negated
        })
    }

    /// The value the selector pins `field` to, if any (`metadata.name=x` lets a list read one key).
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && !r.negated)
            .map(|r| r.value.as_str())
    }
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            out.last_mut().unwrap().push('\\');
            out.last_mut().unwrap().push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            out.push(String::new());
        } else {
            out.last_mut().unwrap().push(c);
        }
    }
    out
}

fn find_unescaped(s: &str, pat: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < s.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if s[i..].starts_with(pat) {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut escaped = false;
    for c in s.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn equality_and_set_based() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("n", "5")]);
        for (sel, want) in [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app=db", false),
            ("missing!=x", true),
            ("app in (web, db)", true),
            ("app notin (web,db)", false),
            ("missing notin (x)", true),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,tier=front", true),
            ("app=web, tier=back", false),
            ("n>4", true),
            ("n<4", false),
        ] {
            let s = Selector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&l), want, "{sel}");
        }
    }

    #[test]
    fn bad_selectors_are_errors() {
        for bad in [
            "app in web",
            "=x",
            "app=web,",
            "a b",
            "app in (x",
            "n>abc",
            "app=has space",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn prints_like_kubernetes() {
        let s = Selector::parse("tier in (b,a),app=web").unwrap();
        assert_eq!(s.to_string(), "app=web,tier in (a,b)");
    }

    #[test]
    fn field_selectors() {
        let f = FieldSelector::parse("metadata.name=web,status.phase!=Running").unwrap();
        let get = |phase: &'static str| {
            move |field: &str| match field {
                "metadata.name" => Some("web".to_string()),
                "status.phase" => Some(phase.to_string()),
                _ => None,
            }
        };
        assert!(f.matches(get("Pending")));
        assert!(!f.matches(get("Running")));
        assert_eq!(f.exact("metadata.name"), Some("web"));
        assert!(FieldSelector::parse("novalue").is_err());
        let esc = FieldSelector::parse(r"a=b\,c").unwrap();
        assert_eq!(esc.requirements[0].value, "b,c");
    }
}
