//! SPDY/3.1 (stub, replaced below).

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::sync::mpsc;

use super::exec::{Input, Options, Outcome, Output};
use super::{Body, Refused};

pub const EXEC_PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

pub fn accept(
    _req: &Request<Incoming>,
    _supported: &[&str],
) -> Result<(Response<Body>, String), Refused> {
    Err(Refused::new(400, "BadRequest", "SPDY is not supported yet"))
}

pub async fn exec_session<IO, F, Fut>(_io: IO, _protocol: &str, _opts: Options, _run: F)
where
    F: FnOnce(mpsc::Receiver<Input>, mpsc::Sender<Output>) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
}
