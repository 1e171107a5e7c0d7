//! API errors in Kubernetes' own shape: every failure becomes a `Status` with the HTTP code, a
//! machine-readable reason and, for invalid objects, one cause per offending field.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};
use serde_json::Value;

/// One problem with one field, worded as Kubernetes' field.Error.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    pub kind: FieldErrorKind,
    pub field: String,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FieldErrorKind {
    Required,
    Invalid(Value),
    NotSupported(Value, Vec<String>),
    Duplicate(Value),
    Forbidden,
    TooLong(usize),
    NotFound(Value),
}

impl FieldError {
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Required, field, detail)
    }
    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(FieldErrorKind::Invalid(value.into()), field, detail)
    }
    pub fn not_supported(
        field: impl Into<String>,
        value: impl Into<Value>,
        valid: &[&str],
    ) -> Self {
        let valid = valid.iter().map(|s| s.to_string()).collect();
        Self::new(FieldErrorKind::NotSupported(value.into(), valid), field, "")
    }
    pub fn duplicate(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::new(FieldErrorKind::Duplicate(value.into()), field, "")
    }
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Forbidden, field, detail)
    }
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Self::new(FieldErrorKind::TooLong(max), field, "")
    }
    pub fn not_found(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::new(FieldErrorKind::NotFound(value.into()), field, "")
    }
    fn new(kind: FieldErrorKind, field: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            kind,
            field: field.into(),
            detail: detail.into(),
        }
    }

    pub fn reason(&self) -> &'static str {
        match self.kind {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid(_) => "FieldValueInvalid",
            FieldErrorKind::NotSupported(..) => "FieldValueNotSupported",
            FieldErrorKind::Duplicate(_) => "FieldValueDuplicate",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooLong(_) => "FieldValueTooLong",
            FieldErrorKind::NotFound(_) => "FieldValueNotFound",
        }
    }

    /// The message without the field path, e.g. `Invalid value: "Foo": must be lowercase`.
    pub fn body(&self) -> String {
        let mut s = match &self.kind {
            FieldErrorKind::Required => "Required value".to_string(),
            FieldErrorKind::Invalid(v) => format!("Invalid value: {}", show(v)),
            FieldErrorKind::NotSupported(v, valid) => {
                let mut s = format!("Unsupported value: {}", show(v));
                if !valid.is_empty() {
                    let quoted: Vec<String> = valid.iter().map(|v| format!("{v:?}")).collect();
                    s.push_str(&format!(": supported values: {}", quoted.join(", ")));
                }
                s
            }
            FieldErrorKind::Duplicate(v) => format!("Duplicate value: {}", show(v)),
            FieldErrorKind::Forbidden => "Forbidden".to_string(),
            FieldErrorKind::TooLong(max) => format!("Too long: may not be more than {max} bytes"),
            FieldErrorKind::NotFound(v) => format!("Not found: {}", show(v)),
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.body())
        } else {
            write!(f, "{}: {}", self.field, self.body())
        }
    }
}

pub type FieldErrors = Vec<FieldError>;

/// A failed API request: HTTP code, Kubernetes reason, message and details.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Box<StatusDetails>>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

/// Names what an error is about: `pods` in group "" named `web`.
pub struct Target<'a> {
    pub group: &'a str,
    pub resource: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
}

impl Target<'_> {
    /// `pods` or `deployments.apps`, as Kubernetes qualifies resources in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    fn details(&self) -> StatusDetails {
        StatusDetails {
            name: (!self.name.is_empty()).then(|| self.name.to_string()),
            group: (!self.group.is_empty()).then(|| self.group.to_string()),
            kind: Some(self.resource.to_string()),
            ..Default::default()
        }
    }
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: StatusDetails) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }
    pub fn forbidden_message(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }
    pub fn forbidden(t: &Target<'_>, why: &str) -> Self {
        let subject = if t.name.is_empty() {
            t.qualified()
        } else {
            format!("{} {:?}", t.qualified(), t.name)
        };
        Self::new(403, "Forbidden", format!("{subject} is forbidden: {why}"))
            .with_details(t.details())
    }
    pub fn not_found(t: &Target<'_>) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} {:?} not found", t.qualified(), t.name),
        )
        .with_details(t.details())
    }
    /// The path names nothing the server serves.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(StatusDetails::default())
    }
    pub fn method_not_allowed(method: &str, what: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource ({method} {what})"
            ),
        )
    }
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }
    pub fn already_exists(t: &Target<'_>) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} {:?} already exists", t.qualified(), t.name),
        )
        .with_details(t.details())
    }
    pub fn conflict(t: &Target<'_>, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {:?}: {why}",
                t.qualified(),
                t.name
            ),
        )
        .with_details(t.details())
    }
    pub fn stale(t: &Target<'_>) -> Self {
        Self::conflict(
            t,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }
    pub fn unsupported_media_type(content_type: &str, supported: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                supported.join(", ")
            ),
        )
        .with_details(StatusDetails {
            causes: Some(vec![StatusCause {
                reason: Some("UnsupportedMediaType".into()),
                message: Some(format!("unsupported media type {content_type:?}")),
                field: None,
            }]),
            ..Default::default()
        })
    }
    pub fn invalid(kind: &str, t: &Target<'_>, errors: &[FieldError]) -> Self {
        let list = match errors {
            [one] => one.to_string(),
            many => format!(
                "[{}]",
                many.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut details = t.details();
        details.kind = Some(kind.to_string());
        details.causes = Some(
            errors
                .iter()
                .map(|e| StatusCause {
                    reason: Some(e.reason().to_string()),
                    message: Some(e.body()),
                    field: (!e.field.is_empty()).then(|| e.field.clone()),
                })
                .collect(),
        );
        // `Deployment.apps "web" is invalid`: the kind qualified by its group, as
        // Kubernetes' NewInvalid writes it.
        let qualified = if t.group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{}", t.group)
        };
        Self::new(
            422,
            "Invalid",
            format!("{qualified} {:?} is invalid: {list}", t.name),
        )
        .with_details(details)
    }
    pub fn internal(message: impl fmt::Display) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        )
    }
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }
    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    pub fn to_status(&self) -> Status {
        Status {
            status: Some("Failure".into()),
            message: Some(self.message.clone()),
            reason: Some(self.reason.to_string()),
            details: self.details.as_deref().cloned(),
            code: Some(self.code as i32),
            ..Default::default()
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        status_json(&self.to_status())
    }
}

/// A Status serialized as kube-apiserver writes it: kind, apiVersion, metadata, status,
/// message, reason, details, code — in that order (clients such as the official Python
/// client's tests compare the bodies as text), empty fields left out.
pub fn status_json(status: &Status) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Cause<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<&'a str>,
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Details<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        group: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        kind: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        uid: Option<&'a str>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        causes: Vec<Cause<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_seconds: Option<i32>,
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Wire<'a> {
        kind: &'a str,
        api_version: &'a str,
        metadata: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta,
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        details: Option<Details<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<i32>,
    }
    let details = status.details.as_ref().map(|d| Details {
        name: d.name.as_deref(),
        group: d.group.as_deref().filter(|g| !g.is_empty()),
        kind: d.kind.as_deref(),
        uid: d.uid.as_deref(),
        causes: d
            .causes
            .iter()
            .flatten()
            .map(|c| Cause {
                reason: c.reason.as_deref(),
                message: c.message.as_deref(),
                field: c.field.as_deref(),
            })
            .collect(),
        retry_after_seconds: d.retry_after_seconds,
    });
    serde_json::to_vec(&Wire {
        kind: "Status",
        api_version: "v1",
        metadata: &status.metadata,
        status: status.status.as_deref(),
        message: status.message.as_deref(),
        reason: status.reason.as_deref().filter(|r| !r.is_empty()),
        details,
        code: status.code,
    })
    .unwrap_or_default()
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> Target<'_> {
        Target {
            group: "",
            resource: "pods",
            kind: "Pod",
            name,
        }
    }

    #[test]
    fn invalid_lists_every_field_like_kubernetes() {
        let e = ApiError::invalid(
            "Pod",
            &pod("web"),
            &[
                FieldError::required("spec.containers[0].image", ""),
                FieldError::invalid("metadata.name", "Web", "must be lowercase"),
            ],
        );
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "Pod \"web\" is invalid: [spec.containers[0].image: Required value, metadata.name: Invalid value: \"Web\": must be lowercase]"
        );
        let causes = e.details.unwrap().causes.unwrap();
        assert_eq!(causes[1].field.as_deref(), Some("metadata.name"));
        assert_eq!(causes[1].reason.as_deref(), Some("FieldValueInvalid"));
    }

    #[test]
    fn status_bytes_as_kube_apiserver_writes_them() {
        let e = ApiError::not_found(&pod("x"));
        assert_eq!(
            String::from_utf8(e.to_json()).unwrap(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"x\" not found","reason":"NotFound","details":{"name":"x","kind":"pods"},"code":404}"#
        );
        let e = ApiError::invalid(
            "Pod",
            &pod("web"),
            &[FieldError::required("spec.containers[0].image", "")],
        );
        assert_eq!(
            String::from_utf8(e.to_json()).unwrap(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Pod \"web\" is invalid: spec.containers[0].image: Required value","reason":"Invalid","details":{"name":"web","kind":"Pod","causes":[{"reason":"FieldValueRequired","message":"Required value","field":"spec.containers[0].image"}]},"code":422}"#
        );
    }

    #[test]
    fn not_found_names_the_qualified_resource() {
        let t = Target {
            group: "apps",
            resource: "deployments",
            kind: "Deployment",
            name: "web",
        };
        let e = ApiError::not_found(&t);
        assert_eq!(e.message, "deployments.apps \"web\" not found");
        let json: Value = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(json["kind"], "Status");
        assert_eq!(json["code"], 404);
        assert_eq!(json["details"]["kind"], "deployments");
    }

    #[test]
    fn unsupported_value_lists_choices() {
        let e = FieldError::not_supported("spec.restartPolicy", "Sometimes", &["Always", "Never"]);
        assert_eq!(
            e.to_string(),
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\""
        );
    }
}
