//! The kinds tkctl knows, by every name kubectl accepts for them (plural, singular, short):
//! the apiserver's own catalog; and the resource arguments of the verbs (`TYPE NAME`,
//! `TYPE/NAME`, `TYPE1,TYPE2`, `all`) resolved against it.

pub use tinykube_machinery::kinds::{lookup, Kind, ALL};

use crate::client::Res;

/// What `get all` lists, in kubectl's order.
pub fn all() -> Vec<&'static Kind> {
    ["pods", "services", "deployments", "replicasets"]
        .iter()
        .filter_map(|p| lookup(p))
        .collect()
}

/// How kubectl names an object's type before its name: `pod`, `deployment.apps`.
pub fn prefix(kind: &Kind) -> String {
    if kind.group.is_empty() {
        kind.singular.to_string()
    } else {
        format!("{}.{}", kind.singular, kind.group)
    }
}

/// A kind by a name the user typed, or kubectl's error for it.
pub fn known(name: &str) -> Res<&'static Kind> {
    lookup(name)
        .ok_or_else(|| format!("error: the server doesn't have a resource type \"{name}\"").into())
}

/// `TYPE/NAME`, `TYPE NAME...`, `TYPE1,TYPE2`, `all`: the kinds and names meant.
pub fn targets(args: &[String]) -> Res<Vec<(&'static Kind, Vec<String>)>> {
    let first = args.first().ok_or(
        "You must specify the type of resource to get. Use \"tkctl api-resources\" for a complete list of supported resources.",
    )?;
    if first.contains('/') {
        let mut out: Vec<(&'static Kind, Vec<String>)> = Vec::new();
        for a in args {
            let (t, n) = a
                .split_once('/')
                .ok_or("error: there is no need to specify a resource type as a separate argument when passing arguments in resource/name form")?;
            let k = known(t)?;
            match out.iter_mut().find(|(kk, _)| *kk == k) {
                Some((_, names)) => names.push(n.to_string()),
                None => out.push((k, vec![n.to_string()])),
            }
        }
        return Ok(out);
    }
    let mut kinds = Vec::new();
    for w in first.split(',') {
        if w == "all" {
            kinds.extend(all());
        } else {
            kinds.push(known(w)?);
        }
    }
    let names: Vec<String> = args[1..].to_vec();
    Ok(kinds.into_iter().map(|k| (k, names.clone())).collect())
}

/// `TYPE/NAME` or `TYPE NAME`.
pub fn one(args: &[String]) -> Res<(&'static Kind, String)> {
    match args {
        [tn] if tn.contains('/') => {
            let (t, n) = tn.split_once('/').expect("has a slash");
            Ok((known(t)?, n.to_string()))
        }
        [t, n] => Ok((known(t)?, n.clone())),
        _ => Err("error: you must specify a resource and a name (TYPE NAME or TYPE/NAME)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn resource_arguments() {
        let t = targets(&args(&["po,deploy", "a", "b"])).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].0.kind, t[1].0.kind), ("Pod", "Deployment"));
        assert_eq!(t[1].1, args(&["a", "b"]));
        let t = targets(&args(&["pod/a", "svc/b", "pod/c"])).unwrap();
        assert_eq!(t[0].1, args(&["a", "c"]));
        assert_eq!(t[1].0.kind, "Service");
        assert_eq!(
            targets(&args(&["pod/a", "b"])).unwrap_err().to_string(),
            "error: there is no need to specify a resource type as a separate argument when passing arguments in resource/name form"
        );
        assert_eq!(
            targets(&args(&["nope"])).unwrap_err().to_string(),
            "error: the server doesn't have a resource type \"nope\""
        );
        assert_eq!(targets(&args(&["all"])).unwrap().len(), 4);
        let (k, n) = one(&args(&["rs/web"])).unwrap();
        assert_eq!((k.kind, n.as_str()), ("ReplicaSet", "web"));
        assert!(one(&args(&["pods"])).is_err());
        assert_eq!(prefix(lookup("deploy").unwrap()), "deployment.apps");
        assert_eq!(prefix(lookup("po").unwrap()), "pod");
    }
}
