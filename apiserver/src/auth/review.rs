//! The reviews a caller asks about itself, answered from the authenticator and the
//! authorizer and never stored, as kube-apiserver serves them:
//!
//! - `SelfSubjectAccessReview` (authorization.k8s.io/v1): may I do this? (`kubectl auth
//!   can-i`);
//! - `SelfSubjectRulesReview` (authorization.k8s.io/v1): what may I do in this namespace?
//!   (`kubectl auth can-i --list`);
//! - `SelfSubjectReview` (authentication.k8s.io/v1): who am I? (`kubectl auth whoami`).
//!
//! Every authenticated user may create them (Kubernetes' `system:basic-user`); only POST is
//! served (discovery says `create`, anything else is 405).
//!
//! And the questions about someone else: `SubjectAccessReview` (cluster-wide) and
//! `LocalSubjectAccessReview` (in the namespace of the request), which RBAC grants to admins
//! (`system:auth-delegator`, and `admin` in a namespace).

use bytes::Bytes;
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, SelfSubjectReviewStatus, UserInfo};
use k8s_openapi::api::authorization::v1::{
    LocalSubjectAccessReview, NonResourceAttributes, ResourceAttributes, SelfSubjectAccessReview,
    SelfSubjectRulesReview, SubjectAccessReview, SubjectAccessReviewStatus,
    SubjectRulesReviewStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use serde_json::Value;
use tinykube_machinery::kinds;
use tokio::sync::mpsc;

use super::authn::User;
use super::authz::{self, Attributes};
use super::rbac::Rbac;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::registry::generic::ListOptions;
use crate::registry::resource::{decode_body, Output, Patch, Resource, WatchRequest};
use crate::registry::{FieldValidation, ResourceInfo, WriteOptions};
use crate::store::BoxFuture;

pub static SELF_SUBJECT_ACCESS_REVIEW: ResourceInfo =
    ResourceInfo::create_only(&kinds::SELF_SUBJECT_ACCESS_REVIEW);
pub static SELF_SUBJECT_RULES_REVIEW: ResourceInfo =
    ResourceInfo::create_only(&kinds::SELF_SUBJECT_RULES_REVIEW);
pub static SELF_SUBJECT_REVIEW: ResourceInfo =
    ResourceInfo::create_only(&kinds::SELF_SUBJECT_REVIEW);
pub static SUBJECT_ACCESS_REVIEW: ResourceInfo =
    ResourceInfo::create_only(&kinds::SUBJECT_ACCESS_REVIEW);
pub static LOCAL_SUBJECT_ACCESS_REVIEW: ResourceInfo =
    ResourceInfo::create_only(&kinds::LOCAL_SUBJECT_ACCESS_REVIEW);

/// Answers a review created by `user` (the handler calls this for a POST of any of them).
pub fn answer(
    rbac: &Rbac,
    info: &'static ResourceInfo,
    ns: Option<&str>,
    user: &User,
    body: &[u8],
    validation: FieldValidation,
) -> ApiResult<Value> {
    let api_version = info.api_version();
    match info.kind {
        "SelfSubjectAccessReview" => {
            let mut r: SelfSubjectAccessReview =
                decode_body(info, info.kind, &api_version, body, validation)?;
            let spec = &r.spec;
            let status = access(
                rbac,
                info,
                user,
                spec.resource_attributes.as_ref(),
                spec.non_resource_attributes.as_ref(),
                Vec::new(),
            )?;
            r.status = Some(status);
            Ok(serde_json::to_value(&r).unwrap_or_default())
        }
        "SubjectAccessReview" | "LocalSubjectAccessReview" => {
            let local = info.kind == "LocalSubjectAccessReview";
            let (mut metadata, mut spec) = if local {
                let r: LocalSubjectAccessReview =
                    decode_body(info, info.kind, &api_version, body, validation)?;
                (r.metadata, r.spec)
            } else {
                let r: SubjectAccessReview =
                    decode_body(info, info.kind, &api_version, body, validation)?;
                (r.metadata, r.spec)
            };
            let mut problems = Vec::new();
            if local {
                let ns = ns.unwrap_or_default();
                match metadata.namespace.as_deref() {
                    None | Some("") => metadata.namespace = Some(ns.to_string()),
                    Some(n) if n != ns => {
                        return Err(ApiError::bad_request(format!(
                            "spec.resourceAttributes.namespace must match namespace: {ns}"
                        )))
                    }
                    Some(_) => {}
                }
                if spec.non_resource_attributes.is_some() {
                    problems.push(FieldError::invalid(
                        "spec.nonResourceAttributes",
                        serde_json::to_value(&spec.non_resource_attributes).unwrap_or_default(),
                        "disallowed on this kind of request",
                    ));
                }
                if let Some(a) = spec.resource_attributes.as_mut() {
                    match a.namespace.as_deref() {
                        None | Some("") => a.namespace = Some(ns.to_string()),
                        Some(n) if n != ns => problems.push(FieldError::invalid(
                            "spec.resourceAttributes.namespace",
                            n,
                            "must match metadata.namespace",
                        )),
                        Some(_) => {}
                    }
                }
            }
            if spec.user.as_deref().is_none_or(str::is_empty)
                && spec.groups.as_ref().is_none_or(Vec::is_empty)
            {
                problems.push(FieldError::invalid(
                    "spec.user",
                    spec.user.clone().unwrap_or_default(),
                    "at least one of user or group must be specified",
                ));
            }
            // The subject as the review names it: no group is added (Kubernetes adds none).
            let subject = User {
                name: spec.user.clone().unwrap_or_default(),
                uid: spec.uid.clone().unwrap_or_default(),
                groups: spec.groups.clone().unwrap_or_default(),
            };
            let status = Some(access(
                rbac,
                info,
                &subject,
                spec.resource_attributes.as_ref(),
                spec.non_resource_attributes.as_ref(),
                problems,
            )?);
            Ok(if local {
                serde_json::to_value(LocalSubjectAccessReview {
                    metadata,
                    spec,
                    status,
                })
            } else {
                serde_json::to_value(SubjectAccessReview {
                    metadata,
                    spec,
                    status,
                })
            }
            .unwrap_or_default())
        }
        "SelfSubjectRulesReview" => {
            let mut r: SelfSubjectRulesReview =
                decode_body(info, info.kind, &api_version, body, validation)?;
            let ns = r.spec.namespace.clone().unwrap_or_default();
            let rules = authz::rules_for(rbac, user, &ns);
            r.status = Some(SubjectRulesReviewStatus {
                resource_rules: rules.resource,
                non_resource_rules: rules.non_resource,
                incomplete: rules.incomplete,
                evaluation_error: None,
            });
            Ok(serde_json::to_value(&r).unwrap_or_default())
        }
        "SelfSubjectReview" => {
            let mut r: SelfSubjectReview =
                decode_body(info, info.kind, &api_version, body, validation)?;
            r.status = Some(SelfSubjectReviewStatus {
                user_info: Some(UserInfo {
                    username: Some(user.name.clone()),
                    uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
                    groups: Some(user.groups.clone()),
                    extra: None,
                }),
            });
            Ok(serde_json::to_value(&r).unwrap_or_default())
        }
        other => Err(ApiError::internal(format!("{other} is not a review"))),
    }
}

/// Whether `user` may do what the attributes say, as an access review's status; `problems`
/// are the caller's own validation errors, reported with these.
fn access(
    rbac: &Rbac,
    info: &'static ResourceInfo,
    user: &User,
    resource: Option<&ResourceAttributes>,
    non_resource: Option<&NonResourceAttributes>,
    mut problems: Vec<FieldError>,
) -> ApiResult<SubjectAccessReviewStatus> {
    match (resource, non_resource) {
        (Some(_), Some(n)) => problems.push(FieldError::invalid(
            "spec.nonResourceAttributes",
            serde_json::to_value(n).unwrap_or_default(),
            "cannot be specified in combination with resourceAttributes",
        )),
        (None, None) => problems.push(FieldError::invalid(
            "spec.resourceAttributes",
            "null",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
        _ => {}
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid(info.kind, &info.target(""), &problems));
    }
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    let (verb, group, res, sub, ns, name, path) = match (resource, non_resource) {
        (Some(a), _) => (
            s(&a.verb),
            s(&a.group),
            s(&a.resource),
            s(&a.subresource),
            s(&a.namespace),
            s(&a.name),
            String::new(),
        ),
        (_, Some(n)) => (
            s(&n.verb),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            s(&n.path),
        ),
        (None, None) => unreachable!("refused above"),
    };
    let attrs = Attributes {
        verb: &verb,
        group: &group,
        resource: &res,
        subresource: &sub,
        namespace: &ns,
        name: &name,
        path: &path,
    };
    let allowed = authz::decide(rbac, user, &attrs).ok();
    Ok(SubjectAccessReviewStatus {
        allowed: allowed.is_some(),
        // A denial says nothing (as RBAC's), so kubectl prints a bare "no".
        reason: allowed,
        ..Default::default()
    })
}

/// The reviews in the catalog: known to discovery and routing, never stored; every verb but
/// `create` (which the handler answers with [`answer`]) is refused.
pub struct Review(pub &'static ResourceInfo);

fn refused<'a, T: Send + 'a>(
    info: &'static ResourceInfo,
    verb: &str,
) -> BoxFuture<'a, ApiResult<T>> {
    let e = ApiError::method_not_allowed(verb, info.resource);
    Box::pin(async move { Err(e) })
}

impl Resource for Review {
    fn info(&self) -> &'static ResourceInfo {
        self.0
    }
    fn get<'a>(
        &'a self,
        _: Option<&'a str>,
        _: &'a str,
        _: Option<&'a str>,
        _: Output,
    ) -> BoxFuture<'a, ApiResult<Vec<u8>>> {
        refused(self.0, "GET")
    }
    fn list<'a>(
        &'a self,
        _: Option<&'a str>,
        _: &'a ListOptions,
        _: Output,
    ) -> BoxFuture<'a, ApiResult<Vec<u8>>> {
        refused(self.0, "GET")
    }
    fn create<'a>(
        &'a self,
        _: Option<&'a str>,
        _: &'a [u8],
        _: &'a WriteOptions,
        _: Output,
    ) -> BoxFuture<'a, ApiResult<Vec<u8>>> {
        // Answered by the handler, which knows the caller.
        refused(self.0, "POST")
    }
    fn create_sub<'a>(
        &'a self,
        _: Option<&'a str>,
        _: &'a str,
        _: &'a str,
        _: &'a [u8],
        _: &'a WriteOptions,
    ) -> BoxFuture<'a, ApiResult<Vec<u8>>> {
        refused(self.0, "POST")
    }
    fn update<'a>(
        &'a self,
        _: Option<&'a str>,
        _: &'a str,
        _: Option<&'a str>,
        _: &'a [u8],
        _: &'a WriteOptions,
        _: Output,
    ) -> BoxFuture<'a, ApiResult<(u16, Vec<u8>)>> {
        refused(self.0, "PUT")
    }
    fn patch<'a>(
        &'a self,
        _: Option<&'a str>,
        _: &'a str,
        _: Option<&'a str>,
        _: Patch<'a>,
        _: &'a WriteOptions,
        _: Output,
    ) -> BoxFuture<'a, ApiResult<(u16, Vec<u8>)>> {
        refused(self.0, "PATCH")
    }
    fn delete<'a>(
        &'a self,
        _: Option<&'a str>,
        _: &'a str,
        _: &'a DeleteOptions,
        _: bool,
    ) -> BoxFuture<'a, ApiResult<(u16, Vec<u8>)>> {
        refused(self.0, "DELETE")
    }
    fn delete_collection<'a>(
        &'a self,
        _: Option<&'a str>,
        _: &'a ListOptions,
        _: &'a DeleteOptions,
        _: bool,
    ) -> BoxFuture<'a, ApiResult<Vec<u8>>> {
        refused(self.0, "DELETE")
    }
    fn count<'a>(&'a self, _: Option<&'a str>) -> BoxFuture<'a, ApiResult<usize>> {
        Box::pin(async { Ok(0) })
    }
    fn watch<'a>(
        &'a self,
        _: Option<&'a str>,
        _: WatchRequest,
        _: Output,
    ) -> BoxFuture<'a, ApiResult<mpsc::Receiver<Bytes>>> {
        refused(self.0, "GET")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(name: &str, groups: &[&str]) -> User {
        User::of(name, groups)
    }

    fn ssar(user: &User, spec: Value) -> ApiResult<Value> {
        let body = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": spec});
        answer(
            &Rbac::with_defaults(Vec::new(), Vec::new()),
            &SELF_SUBJECT_ACCESS_REVIEW,
            None,
            user,
            &serde_json::to_vec(&body).unwrap(),
            FieldValidation::Strict,
        )
    }

    #[test]
    fn access_reviews_answer_as_the_authorizer_decides() {
        let admin = user("admin", &["system:masters", "system:authenticated"]);
        let node = user("system:node:n1", &["system:nodes", "system:authenticated"]);
        let create_pods = json!({"resourceAttributes": {"verb": "create", "resource": "pods", "namespace": "default"}});
        let r = ssar(&admin, create_pods.clone()).unwrap();
        assert_eq!(r["status"]["allowed"], true);
        assert_eq!(r["kind"], "SelfSubjectAccessReview");
        assert_eq!(r["spec"], create_pods, "the question is echoed");
        let r = ssar(&node, create_pods).unwrap();
        assert_eq!(r["status"]["allowed"], false);
        assert!(r["status"].get("reason").is_none(), "a denial is a bare no");
        let own = json!({"resourceAttributes": {"verb": "update", "resource": "nodes", "subresource": "status", "name": "n1"}});
        assert_eq!(ssar(&node, own).unwrap()["status"]["allowed"], true);
        let itself = json!({"resourceAttributes": {"verb": "create", "group": "authorization.k8s.io", "resource": "selfsubjectaccessreviews"}});
        assert_eq!(ssar(&node, itself).unwrap()["status"]["allowed"], true);
        let path = json!({"nonResourceAttributes": {"verb": "get", "path": "/healthz"}});
        assert_eq!(ssar(&node, path).unwrap()["status"]["allowed"], true);
    }

    #[test]
    fn an_access_review_asks_exactly_one_question() {
        let admin = user("admin", &["system:masters"]);
        let e = ssar(&admin, json!({})).unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "SelfSubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified"
        );
        let both = json!({"resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"verb": "get", "path": "/"}});
        assert_eq!(ssar(&admin, both).unwrap_err().code, 422);
    }

    #[test]
    fn rules_and_identity() {
        let admin = user(
            "tinykube-admin",
            &["system:masters", "system:authenticated"],
        );
        let body = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {"namespace": "default"}});
        let r = answer(
            &Rbac::with_defaults(Vec::new(), Vec::new()),
            &SELF_SUBJECT_RULES_REVIEW,
            None,
            &admin,
            &serde_json::to_vec(&body).unwrap(),
            FieldValidation::Strict,
        )
        .unwrap();
        let rules = r["status"]["resourceRules"].as_array().unwrap();
        assert!(rules.iter().any(|r| r["verbs"] == json!(["*"])
            && r["apiGroups"] == json!(["*"])
            && r["resources"] == json!(["*"])));
        assert_eq!(r["status"]["incomplete"], false);
        let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
        let r = answer(
            &Rbac::with_defaults(Vec::new(), Vec::new()),
            &SELF_SUBJECT_REVIEW,
            None,
            &admin,
            &serde_json::to_vec(&body).unwrap(),
            FieldValidation::Strict,
        )
        .unwrap();
        assert_eq!(r["status"]["userInfo"]["username"], "tinykube-admin");
        assert_eq!(
            r["status"]["userInfo"]["groups"],
            json!(["system:masters", "system:authenticated"])
        );
    }

    #[test]
    fn subject_access_reviews_ask_about_someone_else() {
        let rbac = Rbac::with_defaults(Vec::new(), Vec::new());
        let ask = |info: &'static ResourceInfo, ns: Option<&str>, body: Value| {
            answer(
                &rbac,
                info,
                ns,
                &user("admin", &["system:masters"]),
                &serde_json::to_vec(&body).unwrap(),
                FieldValidation::Strict,
            )
        };
        let sar = |spec: Value| json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec});
        let r = ask(&SUBJECT_ACCESS_REVIEW, None, sar(json!({"user": "system:kube-proxy", "resourceAttributes": {"verb": "list", "resource": "services"}}))).unwrap();
        assert_eq!(r["kind"], "SubjectAccessReview");
        assert_eq!(r["status"]["allowed"], true);
        assert!(r["status"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("RBAC: allowed by ClusterRoleBinding \"system:node-proxier\""));
        let r = ask(&SUBJECT_ACCESS_REVIEW, None, sar(json!({"user": "jane", "groups": ["system:authenticated"], "resourceAttributes": {"verb": "list", "resource": "pods"}}))).unwrap();
        assert_eq!(r["status"]["allowed"], false);
        let e = ask(
            &SUBJECT_ACCESS_REVIEW,
            None,
            sar(json!({"resourceAttributes": {"verb": "list", "resource": "pods"}})),
        )
        .unwrap_err();
        assert!(
            e.message.contains(
                "spec.user: Invalid value: \"\": at least one of user or group must be specified"
            ),
            "{}",
            e.message
        );
        let local = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview", "spec": {"groups": ["system:masters"], "resourceAttributes": {"verb": "delete", "resource": "pods"}}});
        let r = ask(&LOCAL_SUBJECT_ACCESS_REVIEW, Some("team"), local).unwrap();
        assert_eq!(r["kind"], "LocalSubjectAccessReview");
        assert_eq!(r["metadata"]["namespace"], "team");
        assert_eq!(r["spec"]["resourceAttributes"]["namespace"], "team");
        assert_eq!(r["status"]["allowed"], true);
    }
}
