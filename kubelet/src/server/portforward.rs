//! portForward (stub).

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;

use super::{status, Body, State};

pub async fn handle(
    _state: Arc<State>,
    _ns: &str,
    _pod: &str,
    _req: Request<Incoming>,
) -> Response<Body> {
    status(400, "BadRequest", "port-forward is not supported yet")
}
