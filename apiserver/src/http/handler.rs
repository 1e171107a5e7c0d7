//! One request: authenticate, route, authorize, run the verb, answer (with a Status on failure),
//! and log it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::stream;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions;
use serde_json::Value;

use super::negotiate::{self, BodyType, Query};
use super::route::{self, ResourcePath, Route};
use super::{discovery, AppState};
use crate::auth::authn::User;
use crate::auth::authz::{self, Attributes};
use crate::error::{ApiError, ApiResult};
use crate::registry::resource::{Output, Patch};
use crate::registry::ResourceInfo;

pub type Body = BoxBody<Bytes, Infallible>;

/// Bodies larger than this are refused with 413, as kube-apiserver does.
pub const MAX_BODY: usize = 3 * 1024 * 1024;
/// How much of an oversized body is read (and dropped) before answering 413.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

fn json(code: u16, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(full(body))
        .expect("valid response")
}

/// An object, a list or a Status the registry wrote as JSON; in protobuf when the client prefers
/// it and a message describes the kind (else JSON, which every client reads).
fn object(code: u16, body: impl Into<Bytes>, out: Output, protobuf: bool) -> Response<Body> {
    let body = body.into();
    if protobuf && out == Output::Object {
        if let Some(pb) = crate::protobuf::transcode(&body) {
            return protobuf_response(code, pb);
        }
    }
    json(code, body)
}

fn protobuf_response(code: u16, pb: Vec<u8>) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
        .header(header::CONTENT_TYPE, crate::protobuf::MEDIA_TYPE)
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(full(pb))
        .expect("valid response")
}

/// A request body as JSON: protobuf bodies are read into the JSON they mean.
fn json_body(body: Bytes, body_type: BodyType, info: &ResourceInfo) -> ApiResult<Bytes> {
    match body_type {
        BodyType::Json => Ok(body),
        BodyType::Protobuf => {
            let v = crate::protobuf::decode(&body).map_err(|e| {
                ApiError::bad_request(format!(
                    "{kind} in version {version:?} cannot be handled as a {kind}: {e}",
                    kind = info.kind,
                    version = info.version
                ))
            })?;
            Ok(serde_json::to_vec(&v).unwrap_or_default().into())
        }
    }
}

fn value(code: u16, v: &Value) -> Response<Body> {
    json(code, serde_json::to_vec(v).unwrap_or_default())
}

/// An aggregated discovery document with its Content-Type and ETag; `304 Not Modified`
/// without a body when the client already has it (its `If-None-Match`).
fn aggregated_discovery(
    body: Vec<u8>,
    version: &str,
    if_none_match: Option<&header::HeaderValue>,
) -> Response<Body> {
    let etag = discovery::etag(&body);
    let fresh = if_none_match
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let b = Response::builder()
        .header(
            header::CONTENT_TYPE,
            discovery::aggregated_content_type(version),
        )
        .header(header::CACHE_CONTROL, "no-cache, private")
        .header(header::ETAG, etag)
        .header(header::VARY, "Accept");
    if fresh {
        b.status(StatusCode::NOT_MODIFIED)
            .body(full(Bytes::new()))
            .expect("valid response")
    } else {
        b.body(full(body)).expect("valid response")
    }
}

pub fn error_response(e: &ApiError) -> Response<Body> {
    let mut r = json(e.code, e.to_json());
    if e.code == 401 {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"kubernetes-master\""),
        );
    }
    r
}

async fn authenticate(
    state: &AppState,
    peer: Option<&User>,
    req: &Request<Incoming>,
) -> ApiResult<User> {
    // A verified client certificate wins over a bearer token, as kube-apiserver's union of
    // authenticators tries x509 first.
    if let Some(user) = peer {
        return Ok(user.clone());
    }
    if let Some(auth) = req.headers().get(header::AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(ApiError::unauthorized)?;
        if let Some(user) = state.tokens.user(token) {
            return Ok(user.clone());
        }
        if crate::auth::serviceaccount::looks_like_jwt(token) {
            let sa = crate::auth::serviceaccount::authenticate(
                &state.catalog,
                &state.service_accounts,
                token,
            )
            .await;
            return sa.ok_or_else(ApiError::unauthorized);
        }
        return Err(ApiError::unauthorized());
    }
    Ok(User::anonymous())
}

pub async fn handle(
    state: Arc<AppState>,
    peer: Option<Arc<User>>,
    req: Request<Incoming>,
) -> Response<Body> {
    let start = Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let ((user, response), warnings) = crate::warnings::collect(async {
        let user = authenticate(&state, peer.as_deref(), &req)
            .await
            .and_then(|u| {
                crate::auth::impersonate::impersonate(&state.catalog.rbac, u, req.headers())
            });
        match user {
            Ok(user) => {
                let r = dispatch(&state, &user, req).await;
                (user.name, r)
            }
            Err(e) => (String::new(), Err(e)),
        }
    })
    .await;
    let mut response = response.unwrap_or_else(|e| error_response(&e));
    for w in &warnings {
        if let Ok(v) = header::HeaderValue::from_str(&crate::warnings::header_value(w)) {
            response.headers_mut().append(header::WARNING, v);
        }
    }
    let status = response.status().as_u16();
    let micros = start.elapsed().as_micros() as u64;
    if status >= 500 {
        tracing::warn!(target: "tinykube::http", %method, uri = %uri, status, micros, user, "request");
    } else {
        tracing::info!(target: "tinykube::http", %method, uri = %uri, status, micros, user, "request");
    }
    response
}

async fn read_body(req: Request<Incoming>) -> ApiResult<Bytes> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT) {
        return Err(ApiError::too_large(MAX_BODY));
    }
    let mut body = req.into_body();
    let mut buf = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= MAX_BODY {
                buf.extend_from_slice(&data);
            } else if seen > DRAIN_LIMIT {
                break;
            }
        }
    }
    if seen > MAX_BODY {
        // The rest was read and dropped (up to a point) so the client hears the answer
        // instead of a reset while it is still sending.
        return Err(ApiError::too_large(MAX_BODY));
    }
    Ok(Bytes::from(buf))
}

fn non_resource(state: &AppState, user: &User, path: &str) -> ApiResult<()> {
    if user.is_anonymous() && !authz::is_public(path) {
        return Err(ApiError::unauthorized());
    }
    let attrs = Attributes {
        verb: "get",
        path,
        ..Default::default()
    };
    authz::authorize(&state.catalog.rbac, user, &attrs)
        .map_err(|why| ApiError::forbidden_message(format!("forbidden: {why}")))
}

async fn dispatch(
    state: &AppState,
    user: &User,
    req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    let path = req.uri().path().to_string();
    let route = route::parse(&path);
    if !matches!(route, Route::Resource(_)) && req.method() != Method::GET {
        if user.is_anonymous() && !authz::is_public(&path) {
            return Err(ApiError::unauthorized());
        }
        return Err(ApiError::method_not_allowed(req.method().as_str(), &path));
    }
    let c = &state.catalog;
    match route {
        Route::Health => {
            non_resource(state, user, &path)?;
            Ok(Response::builder()
                .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(full("ok"))
                .expect("valid response"))
        }
        Route::Version => {
            non_resource(state, user, &path)?;
            Ok(value(200, &discovery::version()))
        }
        Route::CoreVersions | Route::Groups => {
            non_resource(state, user, &path)?;
            let core = route == Route::CoreVersions;
            let accept = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok());
            let Some(version) = discovery::aggregated_version(accept) else {
                let doc = if core {
                    discovery::core_versions(&state.server_address)
                } else {
                    discovery::groups(c)
                };
                let mut r = value(200, &doc);
                r.headers_mut()
                    .insert(header::VARY, header::HeaderValue::from_static("Accept"));
                return Ok(r);
            };
            Ok(aggregated_discovery(
                discovery::aggregated(c, core, version),
                version,
                req.headers().get(header::IF_NONE_MATCH),
            ))
        }
        Route::Group(g) => {
            non_resource(state, user, &path)?;
            discovery::group(c, &g)
                .map(|v| value(200, &v))
                .ok_or_else(ApiError::no_route)
        }
        Route::Resources { group, version } => {
            non_resource(state, user, &path)?;
            discovery::resources(c, &group, &version)
                .map(|v| value(200, &v))
                .ok_or_else(ApiError::no_route)
        }
        Route::OpenApi => {
            non_resource(state, user, &path)?;
            let rest = path.trim_start_matches("/openapi/").trim_end_matches('/');
            let (doc, etag) = super::openapi::documents(c)
                .get(rest)
                .ok_or_else(ApiError::no_route)?;
            let cached = req
                .headers()
                .get(header::IF_NONE_MATCH)
                .is_some_and(|v| v.as_bytes() == etag.as_bytes());
            let b = Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::ETAG, &etag)
                .header(header::CACHE_CONTROL, "no-cache, private")
                .header(header::VARY, "Accept");
            Ok(if cached {
                b.status(StatusCode::NOT_MODIFIED).body(full(Bytes::new()))
            } else {
                b.body(full(doc.to_vec()))
            }
            .expect("valid response"))
        }
        Route::NotFound => {
            if user.is_anonymous() {
                return Err(ApiError::unauthorized());
            }
            Err(ApiError::no_route())
        }
        Route::Resource(rp) => {
            if user.is_anonymous() {
                return Err(ApiError::unauthorized());
            }
            resource_request(state, user, rp, req).await
        }
    }
}

fn verb(method: &Method, rp: &ResourcePath, q: &Query) -> ApiResult<&'static str> {
    let named = rp.name.is_some();
    Ok(match *method {
        Method::GET | Method::HEAD if rp.watch_path || (!named && q.flag("watch")?) => "watch",
        Method::GET | Method::HEAD if named => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "",
    })
}

fn delete_options(body: &[u8], body_type: BodyType, q: &Query) -> ApiResult<DeleteOptions> {
    let mut opts: DeleteOptions = if body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else if body_type == BodyType::Protobuf {
        let v = crate::protobuf::decode(body).map_err(|e| {
            ApiError::bad_request(format!(
                "DeleteOptions in version \"v1\" cannot be handled: {e}"
            ))
        })?;
        serde_json::from_value(v).map_err(|e| {
            ApiError::bad_request(format!(
                "DeleteOptions in version \"v1\" cannot be handled: {e}"
            ))
        })?
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "DeleteOptions in version \"v1\" cannot be handled: {e}"
            ))
        })?
    };
    if let Some(g) = q.get("gracePeriodSeconds").filter(|v| !v.is_empty()) {
        opts.grace_period_seconds = Some(
            g.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}")))?,
        );
    }
    if let Some(p) = q.get("propagationPolicy").filter(|v| !v.is_empty()) {
        opts.propagation_policy = Some(p.to_string());
    }
    if q.get("orphanDependents").is_some() {
        opts.orphan_dependents = Some(q.flag("orphanDependents")?);
    }
    Ok(opts)
}

async fn resource_request(
    state: &AppState,
    user: &User,
    rp: ResourcePath,
    req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    let Some(r) = state
        .catalog
        .lookup(&rp.group, &rp.version, &rp.resource)
        .cloned()
    else {
        return Err(ApiError::no_route());
    };
    let info = r.info();
    let q = Query::parse(req.uri().query());
    let verb = verb(req.method(), &rp, &q)?;
    if verb.is_empty() {
        return Err(ApiError::method_not_allowed(
            req.method().as_str(),
            &rp.resource,
        ));
    }
    // Namespaced objects are named inside a namespace; cluster-scoped ones never are.
    if (info.namespaced && rp.name.is_some() && rp.namespace.is_none())
        || (!info.namespaced && rp.namespace.is_some())
    {
        return Err(ApiError::no_route());
    }
    if let Some(sub) = rp.subresource.as_deref() {
        if !info.has_subresource(sub) {
            return Err(ApiError::no_route());
        }
    }
    let ns = rp.namespace.as_deref();
    let name = rp.name.as_deref().unwrap_or("");
    let attrs = Attributes {
        verb,
        group: info.group,
        resource: info.resource,
        subresource: rp.subresource.as_deref().unwrap_or(""),
        namespace: ns.unwrap_or(""),
        name,
        path: "",
    };
    if let Err(why) = authz::authorize(&state.catalog.rbac, user, &attrs) {
        let target = info.target(name);
        let resource = match rp.subresource.as_deref() {
            Some(sub) => format!("{}/{sub}", info.resource),
            None => info.resource.to_string(),
        };
        let target = crate::error::Target {
            resource: &resource,
            ..target
        };
        return Err(ApiError::forbidden(&target, &why));
    }
    if let (true, "pods", Some(sub)) = (
        info.group.is_empty(),
        info.resource,
        rp.subresource.as_deref(),
    ) {
        if super::streaming::SUBRESOURCES.contains(&sub) {
            return super::streaming::handle(
                &state.catalog,
                &state.kubelet_tls,
                ns.unwrap_or("default"),
                name,
                sub,
                req,
            )
            .await;
        }
    }
    let headers = req.headers().clone();
    let header_str = |h: header::HeaderName| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let accept = header_str(header::ACCEPT);
    let content_type = header_str(header::CONTENT_TYPE);
    let sub = rp.subresource.as_deref();
    let protobuf = negotiate::wants_protobuf(accept.as_deref());
    let body_type = negotiate::body_type(content_type.as_deref());
    match verb {
        "watch" => {
            let out = negotiate::output(accept.as_deref(), q.get("includeObject"))?;
            let watch = q.watch_request()?;
            let rx = r.watch(ns, watch, out).await?;
            let body = stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|chunk| (Ok::<_, Infallible>(Frame::data(chunk)), rx))
            });
            Ok(Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CACHE_CONTROL, "no-cache, private")
                .body(BodyExt::boxed(StreamBody::new(body)))
                .expect("valid response"))
        }
        "list" => {
            let out = negotiate::output(accept.as_deref(), q.get("includeObject"))?;
            if protobuf && out == Output::Object {
                // Written from the typed objects, without rendering JSON first.
                if let Some(pb) = r.list_protobuf(ns, &q.list_options()?).await? {
                    return Ok(protobuf_response(200, pb));
                }
            }
            Ok(object(
                200,
                r.list(ns, &q.list_options()?, out).await?,
                out,
                protobuf,
            ))
        }
        "get" => {
            let out = match sub {
                None => negotiate::output(accept.as_deref(), q.get("includeObject"))?,
                Some(_) => Output::Object,
            };
            Ok(object(200, r.get(ns, name, sub, out).await?, out, protobuf))
        }
        "create" => {
            let opts = q.write_options()?.by(user);
            let body_type = body_type?;
            let body = json_body(read_body(req).await?, body_type, info)?;
            if info.create_only_kind() {
                if rp.name.is_some() {
                    return Err(ApiError::method_not_allowed("POST", &rp.resource));
                }
                let answered = crate::auth::review::answer(
                    &state.catalog.rbac,
                    info,
                    ns,
                    user,
                    &body,
                    opts.field_validation,
                )?;
                return Ok(object(
                    201,
                    serde_json::to_vec(&answered).unwrap_or_default(),
                    Output::Object,
                    protobuf,
                ));
            }
            match (rp.name.as_deref(), sub) {
                (None, None) => {
                    if user.node_name().is_some() {
                        // A node may only create objects about itself (NodeRestriction).
                        let named = serde_json::from_slice::<Value>(&body)
                            .ok()
                            .and_then(|v| v["metadata"]["name"].as_str().map(str::to_string))
                            .unwrap_or_default();
                        if let Err(why) =
                            authz::node_restriction(user, info.group, info.resource, &named)
                        {
                            return Err(ApiError::forbidden(&info.target(&named), &why));
                        }
                    }
                    let out = negotiate::output(accept.as_deref(), None)?;
                    Ok(object(
                        201,
                        r.create(ns, &body, &opts, out).await?,
                        out,
                        protobuf,
                    ))
                }
                (Some(n), Some("token"))
                    if info.resource == "serviceaccounts" && info.group.is_empty() =>
                {
                    let answered = crate::auth::serviceaccount::token_request(
                        &state.catalog,
                        &state.service_accounts,
                        user,
                        ns.unwrap_or("default"),
                        n,
                        &body,
                        opts.field_validation,
                    )
                    .await?;
                    Ok(object(
                        201,
                        serde_json::to_vec(&answered).unwrap_or_default(),
                        Output::Object,
                        protobuf,
                    ))
                }
                (Some(n), Some(s)) => Ok(object(
                    201,
                    r.create_sub(ns, n, s, &body, &opts).await?,
                    Output::Object,
                    protobuf,
                )),
                _ => Err(ApiError::method_not_allowed("POST", &rp.resource)),
            }
        }
        "update" => {
            let opts = q.write_options()?.by(user);
            let body_type = body_type?;
            let body = json_body(read_body(req).await?, body_type, info)?;
            let out = negotiate::output(accept.as_deref(), None)?;
            let (code, bytes) = r.update(ns, name, sub, &body, &opts, out).await?;
            Ok(object(code, bytes, out, protobuf))
        }
        "patch" => {
            let opts = q.write_options()?.by(user);
            let kind = negotiate::patch_kind(content_type.as_deref())?;
            let body = read_body(req).await?;
            let out = negotiate::output(accept.as_deref(), None)?;
            let patch = Patch {
                kind,
                body: &body,
                force: q.flag("force")?,
            };
            let (code, bytes) = r.patch(ns, name, sub, patch, &opts, out).await?;
            Ok(object(code, bytes, out, protobuf))
        }
        "delete" => {
            if sub.is_some() {
                return Err(ApiError::method_not_allowed("DELETE", &rp.resource));
            }
            let opts = q.write_options()?;
            let body = read_body(req).await?;
            let del = delete_options(&body, body_type.unwrap_or(BodyType::Json), &q)?;
            let (code, bytes) = r.delete(ns, name, &del, opts.dry_run).await?;
            Ok(object(code, bytes, Output::Object, protobuf))
        }
        "deletecollection" => {
            let opts = q.write_options()?;
            let list = q.list_options()?;
            let body = read_body(req).await?;
            let del = delete_options(&body, body_type.unwrap_or(BodyType::Json), &q)?;
            Ok(object(
                200,
                r.delete_collection(ns, &list, &del, opts.dry_run).await?,
                Output::Object,
                protobuf,
            ))
        }
        _ => Err(ApiError::method_not_allowed(verb, &rp.resource)),
    }
}
