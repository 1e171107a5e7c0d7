//! User impersonation (`kubectl --as`, `--as-group`, `--as-uid`), as kube-apiserver's
//! impersonation filter does it: the `Impersonate-User`, `Impersonate-Group`,
//! `Impersonate-Uid` and `Impersonate-Extra-<key>` headers make the request act as another
//! user, when the caller may `impersonate` each of them (users, groups, serviceaccounts,
//! authentication.k8s.io uids and userextras). Admins may; `edit` grants impersonating the
//! namespace's service accounts.

use http::HeaderMap;

use super::authn::User;
use super::authz::{self, Attributes};
use super::rbac::{Rbac, SERVICE_ACCOUNT_PREFIX};
use crate::error::{ApiError, ApiResult, Target};

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA: &str = "impersonate-extra-";

/// The user the request acts as: `user` itself without impersonation headers.
pub fn impersonate(rbac: &Rbac, user: User, headers: &HeaderMap) -> ApiResult<User> {
    let values = |name: &str| -> ApiResult<Vec<String>> {
        headers
            .get_all(name)
            .iter()
            .map(|v| {
                v.to_str().map(str::to_string).map_err(|_| {
                    ApiError::bad_request(format!("the {name} header is not valid text"))
                })
            })
            .collect()
    };
    let names = values(USER)?;
    let groups = values(GROUP)?;
    let uids = values(UID)?;
    let extras: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| {
            let key = k.as_str().strip_prefix(EXTRA)?;
            Some((key.to_string(), v.to_str().unwrap_or_default().to_string()))
        })
        .collect();
    let Some(name) = names.first() else {
        if groups.is_empty() && uids.is_empty() && extras.is_empty() {
            return Ok(user);
        }
        return Err(ApiError::bad_request(format!(
            "requested {} without impersonating a user",
            [
                (!groups.is_empty()).then_some("groups"),
                (!uids.is_empty()).then_some("uid"),
                (!extras.is_empty()).then_some("extra"),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ")
        )));
    };
    if names.len() > 1 || uids.len() > 1 {
        return Err(ApiError::bad_request(
            "only one user and one uid may be impersonated",
        ));
    }
    let check = |a: Attributes<'_>| -> ApiResult<()> {
        authz::authorize(rbac, &user, &a).map_err(|why| {
            let resource = if a.subresource.is_empty() {
                a.resource.to_string()
            } else {
                format!("{}/{}", a.resource, a.subresource)
            };
            let t = Target {
                group: a.group,
                resource: &resource,
                kind: "",
                name: a.name,
            };
            ApiError::forbidden(&t, &why)
        })
    };
    let sa = name
        .strip_prefix(SERVICE_ACCOUNT_PREFIX)
        .and_then(|rest| rest.split_once(':'));
    match sa {
        Some((ns, sa_name)) => check(Attributes {
            verb: "impersonate",
            resource: "serviceaccounts",
            namespace: ns,
            name: sa_name,
            ..Default::default()
        })?,
        None => check(Attributes {
            verb: "impersonate",
            resource: "users",
            name,
            ..Default::default()
        })?,
    }
    for g in &groups {
        check(Attributes {
            verb: "impersonate",
            resource: "groups",
            name: g,
            ..Default::default()
        })?;
    }
    for u in &uids {
        check(Attributes {
            verb: "impersonate",
            group: "authentication.k8s.io",
            resource: "uids",
            name: u,
            ..Default::default()
        })?;
    }
    for (key, value) in &extras {
        check(Attributes {
            verb: "impersonate",
            group: "authentication.k8s.io",
            resource: "userextras",
            subresource: key,
            name: value,
            ..Default::default()
        })?;
    }
    let mut as_groups = groups;
    if let (Some((ns, _)), true) = (sa, as_groups.is_empty()) {
        as_groups.push("system:serviceaccounts".into());
        as_groups.push(format!("system:serviceaccounts:{ns}"));
    }
    if name == "system:anonymous" {
        if !as_groups.iter().any(|g| g == "system:unauthenticated") {
            as_groups.push("system:unauthenticated".into());
        }
    } else if !as_groups
        .iter()
        .any(|g| g == "system:authenticated" || g == "system:unauthenticated")
    {
        as_groups.push("system:authenticated".into());
    }
    Ok(User {
        name: name.clone(),
        uid: uids.into_iter().next().unwrap_or_default(),
        groups: as_groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn user(name: &str, groups: &[&str]) -> User {
        User::of(name, groups)
    }

    fn headers(h: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in h {
            m.append(*k, HeaderValue::from_str(v).unwrap());
        }
        m
    }

    #[test]
    fn admins_act_as_others_and_others_may_not() {
        let rbac = Rbac::with_defaults(Vec::new(), Vec::new());
        let admin = user("admin", &["system:masters", "system:authenticated"]);
        let none = impersonate(&rbac, admin.clone(), &HeaderMap::new()).unwrap();
        assert_eq!(none, admin);
        let jane = impersonate(
            &rbac,
            admin.clone(),
            &headers(&[("impersonate-user", "jane")]),
        )
        .unwrap();
        assert_eq!(jane.name, "jane");
        assert_eq!(jane.groups, ["system:authenticated"]);
        let sa = impersonate(
            &rbac,
            admin.clone(),
            &headers(&[("impersonate-user", "system:serviceaccount:team:robot")]),
        )
        .unwrap();
        assert_eq!(
            sa.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:team",
                "system:authenticated"
            ]
        );
        let grouped = impersonate(
            &rbac,
            admin.clone(),
            &headers(&[
                ("impersonate-user", "x"),
                ("impersonate-group", "a"),
                ("impersonate-group", "b"),
            ]),
        )
        .unwrap();
        assert_eq!(grouped.groups, ["a", "b", "system:authenticated"]);
        let e = impersonate(&rbac, admin, &headers(&[("impersonate-group", "a")])).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "requested groups without impersonating a user")
        );

        let bob = user("bob", &["system:authenticated"]);
        let e = impersonate(&rbac, bob, &headers(&[("impersonate-user", "jane")])).unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "users \"jane\" is forbidden: User \"bob\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        );
    }
}
