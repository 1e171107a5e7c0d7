//! URL paths to what they name, as Kubernetes' RequestInfoFactory reads them.

/// A request for a resource: `/api/v1/namespaces/default/pods/web/status`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The deprecated `/watch/` path form.
    pub watch_path: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Version,
    Health,
    /// `/api`: the core group's versions.
    CoreVersions,
    /// `/apis`: every group.
    Groups,
    /// `/apis/<group>`.
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`.
    Resources {
        group: String,
        version: String,
    },
    OpenApi,
    Resource(ResourcePath),
    NotFound,
}

/// Percent-decodes one path segment; None for segments that cannot name anything.
fn segment(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let s = String::from_utf8(out).ok()?;
    (!s.contains('/') && s != "." && s != "..").then_some(s)
}

pub fn parse(path: &str) -> Route {
    let trimmed = path.trim_end_matches('/');
    let Some(decoded) = trimmed
        .split('/')
        .skip(1)
        .map(segment)
        .collect::<Option<Vec<String>>>()
    else {
        return Route::NotFound;
    };
    let parts: Vec<&str> = decoded.iter().map(String::as_str).collect();
    match parts.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "livez" | "readyz", ..] => Route::Health,
        ["openapi", ..] => Route::OpenApi,
        ["api"] => Route::CoreVersions,
        ["api", v] => Route::Resources {
            group: String::new(),
            version: v.to_string(),
        },
        ["api", v, rest @ ..] => resource(String::new(), v, rest),
        ["apis"] => Route::Groups,
        ["apis", g] => Route::Group(g.to_string()),
        ["apis", g, v] => Route::Resources {
            group: g.to_string(),
            version: v.to_string(),
        },
        ["apis", g, v, rest @ ..] => resource(g.to_string(), v, rest),
        _ => Route::NotFound,
    }
}

fn resource(group: String, version: &str, rest: &[&str]) -> Route {
    let (watch_path, rest) = match rest {
        ["watch", tail @ ..] => (true, tail),
        other => (false, other),
    };
    if rest.iter().any(|p| p.is_empty()) {
        return Route::NotFound;
    }
    let mut r = ResourcePath {
        group,
        version: version.to_string(),
        watch_path,
        ..Default::default()
    };
    let rest = match rest {
        // A resource inside a namespace (but `status` and `finalize` are the namespace's own).
        ["namespaces", ns, tail @ ..]
            if !tail.is_empty() && !matches!(tail, ["status" | "finalize"]) =>
        {
            r.namespace = Some(ns.to_string());
            tail
        }
        other => other,
    };
    match rest {
        [res] => r.resource = res.to_string(),
        [res, name] => {
            r.resource = res.to_string();
            r.name = Some(name.to_string());
        }
        [res, name, sub] => {
            r.resource = res.to_string();
            r.name = Some(name.to_string());
            r.subresource = Some(sub.to_string());
        }
        _ => return Route::NotFound,
    }
    Route::Resource(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourcePath {
        match parse(path) {
            Route::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths() {
        assert_eq!(parse("/version"), Route::Version);
        assert_eq!(parse("/healthz/ping"), Route::Health);
        assert_eq!(parse("/api"), Route::CoreVersions);
        assert_eq!(parse("/apis/apps"), Route::Group("apps".into()));
        assert_eq!(
            parse("/apis/apps/v1"),
            Route::Resources {
                group: "apps".into(),
                version: "v1".into()
            }
        );
        let r = res("/api/v1/namespaces/default/pods/web/status");
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(r.resource, "pods");
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.subresource.as_deref(), Some("status"));
        let r = res("/api/v1/pods");
        assert_eq!((r.namespace, r.resource.as_str()), (None, "pods"));
        let r = res("/api/v1/namespaces/kube-system");
        assert_eq!(
            (r.resource.as_str(), r.name.as_deref()),
            ("namespaces", Some("kube-system"))
        );
        let r = res("/api/v1/namespaces/x/finalize");
        assert_eq!(r.namespace, None);
        assert_eq!(
            (
                r.resource.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            ("namespaces", Some("x"), Some("finalize"))
        );
        let r = res("/apis/apps/v1/namespaces/default/deployments/web/scale");
        assert_eq!(r.group, "apps");
        assert_eq!(r.subresource.as_deref(), Some("scale"));
        let r = res("/api/v1/watch/namespaces/default/pods");
        assert!(r.watch_path);
        assert_eq!(parse("/api/v1/namespaces/a/pods/b/c/d"), Route::NotFound);
        assert_eq!(parse("/foo"), Route::NotFound);
        assert_eq!(
            res("/api/v1/namespaces/default/pods/web%2Dx")
                .name
                .as_deref(),
            Some("web-x")
        );
        assert_eq!(
            parse("/api/v1/namespaces/default/pods/a%2Fb"),
            Route::NotFound
        );
        assert_eq!(parse("/api/v1/namespaces/../pods"), Route::NotFound);
    }
}
