//! The validators Kubernetes applies to names, labels, ports and metadata, with its wording.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::error::{FieldError, FieldErrors};

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn label_shape(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| is_lower_alnum(c) || c == '-')
        && s.starts_with(is_lower_alnum)
        && s.ends_with(is_lower_alnum)
}

/// RFC 1123 label: namespaces, container names, most short names.
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !label_shape(s) {
        errs.push(DNS1123_LABEL_MSG.to_string());
    }
    errs
}

/// RFC 1123 subdomain: the names of most objects.
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if s.is_empty() || !s.split('.').all(label_shape) {
        errs.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    errs
}

/// RFC 1035 label: service names (they become DNS names and environment variables).
pub fn dns1035_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !label_shape(s) || !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        errs.push(DNS1035_LABEL_MSG.to_string());
    }
    errs
}

fn name_part_ok(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.chars()
            .all(|c| alnum(c) || c == '-' || c == '_' || c == '.')
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

/// `[prefix/]name`: label and annotation keys, finalizers.
pub fn qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            errs.push("prefix part must be non-empty".to_string());
        } else {
            for e in dns1123_subdomain(p) {
                errs.push(format!("prefix part {e}"));
            }
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else {
        if name.len() > 63 {
            errs.push("name part must be no more than 63 characters".to_string());
        }
        if !name_part_ok(name) || name.contains('/') {
            errs.push(QUALIFIED_NAME_MSG.to_string());
        }
    }
    errs
}

pub fn label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !s.is_empty() && !name_part_ok(s) {
        errs.push(LABEL_VALUE_MSG.to_string());
    }
    errs
}

/// IANA service names: container and service port names.
pub fn port_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 15 {
        errs.push("must be no more than 15 characters".to_string());
    }
    if !s.chars().all(|c| is_lower_alnum(c) || c == '-') {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if !s.chars().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if s.starts_with('-') || s.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

pub fn config_key(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        errs.push(CONFIG_KEY_MSG.to_string());
    }
    if s == "." || s == ".." {
        errs.push(format!("must not be '{s}'"));
    } else if s.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

/// Environment variable names (the relaxed rule of Kubernetes 1.32).
pub fn env_var_name(s: &str) -> Vec<String> {
    if s.is_empty() || s.contains('=') || !s.chars().all(|c| (' '..='~').contains(&c)) {
        vec!["a valid environment variable name must consist only of printable ASCII characters other than '='".into()]
    } else {
        Vec::new()
    }
}

pub fn ip_address(s: &str) -> Vec<String> {
    match s.parse::<IpAddr>() {
        Ok(_) => Vec::new(),
        Err(_) => vec!["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".into()],
    }
}

pub fn port_number(field: &str, port: i32, errs: &mut FieldErrors) {
    if !(1..=65535).contains(&port) {
        errs.push(FieldError::invalid(
            field,
            port,
            "must be between 1 and 65535, inclusive",
        ));
    }
}

/// A name that must be a non-empty RFC 1123 label, unique among `seen` (containers, volumes).
pub fn unique_label(
    errs: &mut FieldErrors,
    field: &str,
    name: &str,
    seen: &mut std::collections::BTreeSet<String>,
) {
    if name.is_empty() {
        errs.push(FieldError::required(field, ""));
        return;
    }
    push_all(errs, field, name, dns1123_label(name));
    if !seen.insert(name.to_string()) {
        errs.push(FieldError::duplicate(field, name));
    }
}

/// Adds one error per message, all about `value` at `field`.
pub fn push_all(errs: &mut FieldErrors, field: &str, value: &str, msgs: Vec<String>) {
    for m in msgs {
        errs.push(FieldError::invalid(field, value, m));
    }
}

pub fn labels(field: &str, labels: Option<&BTreeMap<String, String>>, errs: &mut FieldErrors) {
    for (k, v) in labels.into_iter().flatten() {
        push_all(errs, field, k, qualified_name(k));
        push_all(errs, field, v, label_value(v));
    }
}

const TOTAL_ANNOTATION_SIZE: usize = 256 * 1024;

pub fn annotations(
    field: &str,
    annotations: Option<&BTreeMap<String, String>>,
    errs: &mut FieldErrors,
) {
    let mut total = 0;
    for (k, v) in annotations.into_iter().flatten() {
        push_all(errs, field, k, qualified_name(&k.to_lowercase()));
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE {
        errs.push(FieldError::too_long(field, TOTAL_ANNOTATION_SIZE));
    }
}

/// How a kind's names are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    Subdomain,
    Label,
    Dns1035,
    /// Path segment only (no '/' or '%', not '.' or '..'): events, leases.
    PathSegment,
}

pub fn name(rule: NameRule, s: &str) -> Vec<String> {
    match rule {
        NameRule::Subdomain => dns1123_subdomain(s),
        NameRule::Label => dns1123_label(s),
        NameRule::Dns1035 => dns1035_label(s),
        NameRule::PathSegment => {
            if s == "." || s == ".." {
                vec![format!("may not be '{s}'")]
            } else if s.contains('/') || s.contains('%') {
                vec!["may not contain '/' or '%'".to_string()]
            } else {
                Vec::new()
            }
        }
    }
}

/// ObjectMeta rules common to every kind (Kubernetes' ValidateObjectMeta).
pub fn object_meta(meta: &ObjectMeta, namespaced: bool, rule: NameRule, errs: &mut FieldErrors) {
    match meta.name.as_deref() {
        None | Some("") => errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )),
        Some(n) => push_all(errs, "metadata.name", n, name(rule, n)),
    }
    match (namespaced, meta.namespace.as_deref()) {
        (true, None | Some("")) => errs.push(FieldError::required("metadata.namespace", "")),
        (true, Some(ns)) => push_all(errs, "metadata.namespace", ns, dns1123_label(ns)),
        (false, Some(ns)) if !ns.is_empty() => errs.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        )),
        _ => {}
    }
    labels("metadata.labels", meta.labels.as_ref(), errs);
    annotations("metadata.annotations", meta.annotations.as_ref(), errs);
    let mut controllers = 0;
    for (i, owner) in meta.owner_references.iter().flatten().enumerate() {
        let f = format!("metadata.ownerReferences[{i}]");
        if owner.api_version.is_empty() {
            errs.push(FieldError::invalid(
                format!("{f}.apiVersion"),
                "",
                "version must not be empty",
            ));
        }
        if owner.kind.is_empty() {
            errs.push(FieldError::invalid(
                format!("{f}.kind"),
                "",
                "kind must not be empty",
            ));
        }
        if owner.name.is_empty() {
            errs.push(FieldError::invalid(
                format!("{f}.name"),
                "",
                "name must not be empty",
            ));
        }
        if owner.uid.is_empty() {
            errs.push(FieldError::invalid(
                format!("{f}.uid"),
                "",
                "uid must not be empty",
            ));
        }
        if owner.controller == Some(true) {
            controllers += 1;
        }
    }
    if controllers > 1 {
        errs.push(FieldError::invalid(
            "metadata.ownerReferences",
            serde_json::to_value(&meta.owner_references).unwrap_or_default(),
            "Only one reference can have Controller set to true",
        ));
    }
    for (i, f) in meta.finalizers.iter().flatten().enumerate() {
        push_all(
            errs,
            &format!("metadata.finalizers[{i}]"),
            f,
            qualified_name(f),
        );
    }
}

/// Fields of ObjectMeta that no update may change.
pub fn object_meta_update(new: &ObjectMeta, old: &ObjectMeta, errs: &mut FieldErrors) {
    if new.name != old.name {
        errs.push(FieldError::invalid(
            "metadata.name",
            new.name.clone().unwrap_or_default(),
            "field is immutable",
        ));
    }
    if new.namespace != old.namespace {
        errs.push(FieldError::invalid(
            "metadata.namespace",
            new.namespace.clone().unwrap_or_default(),
            "field is immutable",
        ));
    }
    if new.uid != old.uid {
        errs.push(FieldError::invalid(
            "metadata.uid",
            new.uid.clone().unwrap_or_default(),
            "field is immutable",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(dns1123_label("web-1").is_empty());
        assert!(!dns1123_label("Web").is_empty());
        assert!(!dns1123_label("-web").is_empty());
        assert!(!dns1123_label(&"a".repeat(64)).is_empty());
        assert!(dns1123_subdomain("a.b-c.d").is_empty());
        assert!(!dns1123_subdomain("a..b").is_empty());
        assert!(dns1035_label("svc-1").is_empty());
        assert!(!dns1035_label("1svc").is_empty());
    }

    #[test]
    fn label_keys_and_values() {
        assert!(qualified_name("app").is_empty());
        assert!(qualified_name("app.kubernetes.io/name").is_empty());
        assert!(!qualified_name("/name").is_empty());
        assert!(!qualified_name("a/b/c").is_empty());
        assert!(!qualified_name("-x").is_empty());
        assert!(label_value("").is_empty());
        assert!(label_value("v1.2_x").is_empty());
        assert!(!label_value("has space").is_empty());
    }

    #[test]
    fn port_names() {
        assert!(port_name("http").is_empty());
        assert!(port_name("http-alt").is_empty());
        assert!(!port_name("8080").is_empty());
        assert!(!port_name("a--b").is_empty());
        assert!(!port_name("averyveryverylongname").is_empty());
        assert!(!port_name("HTTP").is_empty());
    }

    #[test]
    fn meta_requires_namespace_only_for_namespaced_kinds() {
        let meta = ObjectMeta {
            name: Some("x".into()),
            namespace: Some("default".into()),
            ..Default::default()
        };
        let mut errs = Vec::new();
        object_meta(&meta, false, NameRule::Subdomain, &mut errs);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "metadata.namespace");
        errs.clear();
        object_meta(&meta, true, NameRule::Subdomain, &mut errs);
        assert!(errs.is_empty());
    }
}
