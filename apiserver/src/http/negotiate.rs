//! Content negotiation (Accept, Content-Type) and query parameters.

use std::collections::HashMap;
use std::time::Duration;

use crate::error::{ApiError, ApiResult};
use crate::registry::generic::ListOptions;
use crate::registry::resource::{Include, Output, PatchKind, WatchRequest};
use crate::registry::selector::{FieldSelector, Selector};
use crate::registry::{FieldValidation, WriteOptions};

/// Query parameters; repeated keys keep every value.
#[derive(Debug, Default)]
pub struct Query(HashMap<String, Vec<String>>);

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            map.entry(decode(k)).or_default().push(decode(v));
        }
        Query(map)
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).and_then(|v| v.first()).map(String::as_str)
    }

    pub fn all(&self, k: &str) -> &[String] {
        self.0.get(k).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Booleans as Go's strconv.ParseBool reads them (`true`, `True`, `1`, ...).
    pub fn flag(&self, k: &str) -> ApiResult<bool> {
        match self.get(k) {
            None | Some("") => Ok(false),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(v) => Err(ApiError::bad_request(format!(
                "invalid value {v:?} for boolean parameter {k:?}"
            ))),
        }
    }

    fn selectors(&self) -> ApiResult<(Selector, FieldSelector)> {
        let labels = Selector::parse(self.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse labelSelector: {e}")))?;
        let fields = FieldSelector::parse(self.get("fieldSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse fieldSelector: {e}")))?;
        Ok((labels, fields))
    }

    pub fn list_options(&self) -> ApiResult<ListOptions> {
        let (labels, fields) = self.selectors()?;
        let limit = match self.get("limit") {
            None | Some("") => 0,
            Some(v) => v
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {v:?}")))?
                .max(0) as usize,
        };
        Ok(ListOptions {
            labels,
            fields,
            limit,
            continue_token: self.get("continue").map(str::to_string),
            resource_version: self.get("resourceVersion").map(str::to_string),
            resource_version_match: self.get("resourceVersionMatch").map(str::to_string),
        })
    }

    pub fn watch_request(&self) -> ApiResult<WatchRequest> {
        let (labels, fields) = self.selectors()?;
        let timeout = match self.get("timeoutSeconds") {
            None | Some("") => None,
            Some(v) => Some(Duration::from_secs(v.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("invalid timeoutSeconds {v:?}"))
            })?)),
        };
        let send_initial_events = self.flag("sendInitialEvents")?;
        if send_initial_events && self.get("resourceVersionMatch") != Some("NotOlderThan") {
            return Err(ApiError::new(
                422,
                "Invalid",
                "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        Ok(WatchRequest {
            labels,
            fields,
            resource_version: self.get("resourceVersion").map(str::to_string),
            bookmarks: self.flag("allowWatchBookmarks")?,
            send_initial_events,
            timeout,
        })
    }

    pub fn write_options(&self) -> ApiResult<WriteOptions> {
        let dry_run = match self.all("dryRun") {
            [] => false,
            [v] if v == "All" => true,
            [v] if v.is_empty() => false,
            other => {
                return Err(ApiError::bad_request(format!(
                    "Invalid dryRun value {other:?}: only \"All\" is supported"
                )))
            }
        };
        let field_validation = match self.get("fieldValidation") {
            // Warn is kube-apiserver's default since 1.23.
            Some("Ignore") => FieldValidation::Ignore,
            None | Some("") | Some("Warn") => FieldValidation::Warn,
            Some("Strict") => FieldValidation::Strict,
            Some(v) => {
                return Err(ApiError::bad_request(format!(
                    "fieldValidation {v:?} is invalid: valid values are Ignore, Warn and Strict"
                )))
            }
        };
        Ok(WriteOptions {
            dry_run,
            field_manager: self.get("fieldManager").map(str::to_string),
            field_validation,
            apply: false,
            user: None,
        })
    }
}

/// A media type with its parameters: `application/json;as=Table;g=meta.k8s.io;v=v1`.
struct MediaRange<'a> {
    essence: &'a str,
    params: Vec<(&'a str, &'a str)>,
}

impl<'a> MediaRange<'a> {
    fn parse(s: &'a str) -> MediaRange<'a> {
        let mut parts = s.split(';').map(str::trim);
        let essence = parts.next().unwrap_or("");
        let params = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        MediaRange { essence, params }
    }
    fn param(&self, k: &str) -> Option<&'a str> {
        self.params.iter().find(|(pk, _)| *pk == k).map(|(_, v)| *v)
    }
}

/// Picks the response form from the Accept header; `include` is the includeObject parameter.
pub fn output(accept: Option<&str>, include: Option<&str>) -> ApiResult<Output> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Output::Object);
    };
    for range in accept.split(',').map(MediaRange::parse) {
        let json_like = matches!(range.essence, "application/json" | "*/*" | "application/*");
        if !json_like {
            continue;
        }
        match (range.param("as"), range.param("g"), range.param("v")) {
            (None, _, _) => return Ok(Output::Object),
            (Some("Table"), Some("meta.k8s.io"), Some(v @ ("v1" | "v1beta1"))) => {
                let include = match include {
                    None | Some("") | Some("Metadata") => Include::Metadata,
                    Some("None") => Include::None,
                    Some("Object") => Include::Object,
                    Some(other) => {
                        return Err(ApiError::bad_request(format!(
                            "includeObject {other:?} is invalid: valid values are None, Metadata and Object"
                        )))
                    }
                };
                return Ok(Output::Table {
                    beta: v == "v1beta1",
                    include,
                });
            }
            (
                Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
                Some("meta.k8s.io"),
                Some("v1" | "v1beta1"),
            ) => return Ok(Output::Metadata),
            _ => continue,
        }
    }
    Err(ApiError::not_acceptable(format!(
        "only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io, application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io (asked for {accept:?})"
    )))
}

fn essence(content_type: Option<&str>) -> &str {
    content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .unwrap_or("")
}

/// How a create or update body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyType {
    Json,
    Protobuf,
}

/// Bodies of create and update are JSON or Kubernetes' protobuf.
pub fn body_type(content_type: Option<&str>) -> ApiResult<BodyType> {
    match essence(content_type) {
        "" | "application/json" | "*/*" => Ok(BodyType::Json),
        crate::protobuf::MEDIA_TYPE => Ok(BodyType::Protobuf),
        other => Err(ApiError::unsupported_media_type(
            other,
            &["application/json", crate::protobuf::MEDIA_TYPE],
        )),
    }
}

/// Whether the client prefers objects in protobuf: its first media range this server can answer
/// is `application/vnd.kubernetes.protobuf` itself (client-go's typed clients send
/// `application/vnd.kubernetes.protobuf,application/json`). Tables and metadata are JSON.
pub fn wants_protobuf(accept: Option<&str>) -> bool {
    for range in accept.unwrap_or("").split(',').map(MediaRange::parse) {
        match range.essence {
            crate::protobuf::MEDIA_TYPE if range.param("as").is_none() => return true,
            "application/json" | "*/*" | "application/*" => return false,
            _ => {}
        }
    }
    false
}

pub fn patch_kind(content_type: Option<&str>) -> ApiResult<PatchKind> {
    match essence(content_type) {
        "application/merge-patch+json" => Ok(PatchKind::Merge),
        "application/json-patch+json" => Ok(PatchKind::Json),
        "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
        "application/apply-patch+yaml" => Ok(PatchKind::Apply),
        other => Err(ApiError::unsupported_media_type(
            other,
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
                "application/strategic-merge-patch+json",
            ],
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_is_chosen_only_where_the_client_prefers_it() {
        assert!(wants_protobuf(Some(
            "application/vnd.kubernetes.protobuf,application/json"
        )));
        assert!(wants_protobuf(Some(
            "application/vnd.kubernetes.protobuf, */*"
        )));
        assert!(!wants_protobuf(Some(
            "application/json, application/vnd.kubernetes.protobuf"
        )));
        assert!(!wants_protobuf(Some(
            "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json"
        )));
        assert!(!wants_protobuf(None));
        assert_eq!(
            body_type(Some("application/vnd.kubernetes.protobuf")).unwrap(),
            BodyType::Protobuf
        );
        assert_eq!(body_type(None).unwrap(), BodyType::Json);
        assert_eq!(body_type(Some("text/plain")).unwrap_err().code, 415);
    }

    #[test]
    fn query_decoding() {
        let q = Query::parse(Some(
            "labelSelector=run%3Dweb&limit=500&watch=True&command=a&command=b+c",
        ));
        assert_eq!(q.get("labelSelector"), Some("run=web"));
        assert!(q.flag("watch").unwrap());
        assert_eq!(q.all("command"), ["a".to_string(), "b c".to_string()]);
        assert!(Query::parse(Some("watch=maybe")).flag("watch").is_err());
    }

    #[test]
    fn accept_negotiation() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            output(Some(kubectl), None).unwrap(),
            Output::Table {
                beta: false,
                include: Include::Metadata
            }
        );
        assert_eq!(
            output(Some("application/json, */*"), None).unwrap(),
            Output::Object
        );
        assert_eq!(output(None, None).unwrap(), Output::Object);
        assert_eq!(
            output(
                Some("application/vnd.kubernetes.protobuf,application/json"),
                None
            )
            .unwrap(),
            Output::Object
        );
        assert_eq!(
            output(Some("application/vnd.kubernetes.protobuf"), None)
                .unwrap_err()
                .code,
            406
        );
        assert_eq!(
            output(
                Some("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
                None
            )
            .unwrap(),
            Output::Metadata
        );
    }

    #[test]
    fn patch_types() {
        assert_eq!(
            patch_kind(Some("application/merge-patch+json")).unwrap(),
            PatchKind::Merge
        );
        assert_eq!(
            patch_kind(Some("application/json-patch+json; charset=utf-8")).unwrap(),
            PatchKind::Json
        );
        assert_eq!(
            patch_kind(Some("application/strategic-merge-patch+json")).unwrap(),
            PatchKind::Strategic
        );
        assert_eq!(
            patch_kind(Some("application/apply-patch+yaml")).unwrap(),
            PatchKind::Apply
        );
        assert_eq!(patch_kind(Some("text/plain")).unwrap_err().code, 415);
    }
}
