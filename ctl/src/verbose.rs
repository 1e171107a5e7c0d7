//! `-v N`: the requests tkctl sends, logged to stderr in klog's format as kubectl does
//! (`-v=6` one line per request with its status and time; `-v=7` the request line and
//! headers first; `-v=8` the response headers too).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, Request, Response};
use kube::client::Body;

/// klog's header: `I1125 12:04:22.231199   11443 file:line] `.
fn header(site: &str) -> String {
    let now = jiff::Zoned::now();
    format!(
        "I{} {:>7} {site}] ",
        now.strftime("%m%d %H:%M:%S.%6f"),
        std::process::id()
    )
}

pub fn log(site: &str, msg: &str) {
    eprintln!("{}{msg}", header(site));
}

fn log_headers(site: &str, each: &str, title: &str, h: &HeaderMap) {
    log(site, title);
    for (k, v) in h {
        let shown = if k == http::header::AUTHORIZATION {
            "Bearer <masked>"
        } else {
            v.to_str().unwrap_or("<binary>")
        };
        log(each, &format!("    {}: {shown}", title_case(k.as_str())));
    }
}

/// `content-type` → `Content-Type`, as Go prints canonical header names.
fn title_case(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// A tower layer over kube-rs's stack that logs every request at `level`; `base` is the
/// server's URL (kube-rs adds it to the path further down the stack).
#[derive(Clone)]
pub struct Layer {
    pub level: u8,
    pub base: String,
}

impl<S> tower::Layer<S> for Layer {
    type Service = Logged<S>;
    fn layer(&self, inner: S) -> Logged<S> {
        Logged {
            inner,
            level: self.level,
            base: self.base.trim_end_matches('/').to_string(),
        }
    }
}

#[derive(Clone)]
pub struct Logged<S> {
    inner: S,
    level: u8,
    base: String,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<Request<Body>> for Logged<S>
where
    S: tower::Service<Request<Body>, Response = Response<B>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    B: 'static,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<B>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let level = self.level;
        let line = format!("{} {}{}", req.method(), self.base, req.uri());
        if level >= 7 {
            log("round_trippers.go:470", &line);
            log_headers(
                "round_trippers.go:476",
                "round_trippers.go:480",
                "Request Headers:",
                req.headers(),
            );
        }
        let start = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            let ms = start.elapsed().as_millis();
            match &res {
                Ok(r) if level >= 7 => {
                    log(
                        "round_trippers.go:581",
                        &format!("Response Status: {} in {ms} milliseconds", r.status()),
                    );
                    if level >= 8 {
                        log_headers(
                            "round_trippers.go:584",
                            "round_trippers.go:587",
                            "Response Headers:",
                            r.headers(),
                        );
                    }
                }
                Ok(r) => log(
                    "round_trippers.go:560",
                    &format!("{line} {} in {ms} milliseconds", r.status()),
                ),
                Err(_) => log(
                    "round_trippers.go:560",
                    &format!("{line}  in {ms} milliseconds"),
                ),
            }
            res
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_canonical() {
        assert_eq!(title_case("content-type"), "Content-Type");
        assert_eq!(
            title_case("x-stream-protocol-version"),
            "X-Stream-Protocol-Version"
        );
    }

    #[test]
    fn klog_header_shape() {
        let h = header("loader.go:402");
        // I1125 12:04:22.231199   11443 loader.go:402]
        assert!(h.starts_with('I'), "{h}");
        assert_eq!(&h[5..6], " ");
        assert_eq!(h.split_whitespace().nth(1).unwrap().len(), 15, "{h}");
        assert!(h.ends_with("loader.go:402] "), "{h}");
    }
}
