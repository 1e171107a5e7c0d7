//! `GET /containerLogs/<ns>/<pod>/<container>`: a container's log as `kubectl logs` shows
//! it, streamed (chunked) and kept open with `follow=true` until the container ends, the
//! pod goes or the client leaves.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use super::{find_pod, query_pairs, status, Body, State};
use crate::logs::{self, Follower, LogOptions};

/// How often a followed log is checked for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(50);

struct Query {
    follow: bool,
    previous: bool,
    opts: LogOptions,
}

fn flag(v: &str) -> Result<bool, String> {
    match v {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(format!("invalid boolean value {other:?}")),
    }
}

fn parse_query(q: Option<&str>) -> Result<Query, String> {
    let mut out = Query {
        follow: false,
        previous: false,
        opts: LogOptions::default(),
    };
    for (k, v) in query_pairs(q) {
        match k.as_str() {
            "follow" => out.follow = flag(&v)?,
            "previous" => out.previous = flag(&v)?,
            "timestamps" => out.opts.timestamps = flag(&v)?,
            "tailLines" => {
                let n: i64 = v.parse().map_err(|_| format!("invalid tailLines {v:?}"))?;
                if n < 0 {
                    return Err(
                        "tailLines: Invalid value: must be greater than or equal to 0".into(),
                    );
                }
                out.opts.tail_lines = Some(n as usize);
            }
            "limitBytes" => {
                let n: i64 = v.parse().map_err(|_| format!("invalid limitBytes {v:?}"))?;
                if n < 1 {
                    return Err("limitBytes: Invalid value: must be greater than 0".into());
                }
                out.opts.limit_bytes = Some(n as usize);
            }
            "sinceSeconds" => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| format!("invalid sinceSeconds {v:?}"))?;
                if n < 1 {
                    return Err("sinceSeconds: Invalid value: must be greater than 0".into());
                }
                out.opts.since = jiff::Timestamp::now()
                    .checked_sub(jiff::SignedDuration::from_secs(n))
                    .ok();
            }
            "sinceTime" => {
                out.opts.since = Some(
                    v.parse()
                        .map_err(|_| format!("invalid sinceTime {v:?}: not RFC 3339"))?,
                );
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The client's end of the log, with what limitBytes leaves.
struct Limited {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    budget: usize,
}

impl Limited {
    /// Sends what the budget allows; false once the client left.
    async fn send(&mut self, mut chunk: Vec<u8>) -> bool {
        chunk.truncate(self.budget);
        self.budget -= chunk.len();
        chunk.is_empty() || self.tx.send(Bytes::from(chunk)).await.is_ok()
    }
}

pub async fn handle(
    state: &Arc<State>,
    ns: &str,
    pod_name: &str,
    container: &str,
    query: Option<&str>,
) -> Response<Body> {
    let q = match parse_query(query) {
        Ok(q) => q,
        Err(e) => return status(400, "BadRequest", e),
    };
    let pod = match find_pod(state, ns, pod_name) {
        Ok(p) => p,
        Err(r) => return r.response(),
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let observed = state.rt.observe(&uid);
    let instances = observed
        .containers
        .get(container)
        .cloned()
        .unwrap_or_default();
    let chosen = if q.previous {
        // The instance before the latest: the last one that terminated and was replaced.
        instances.len().checked_sub(2).map(|i| &instances[i])
    } else {
        instances.last()
    };
    let Some(instance) = chosen.cloned() else {
        let msg = if q.previous {
            format!("previous terminated container \"{container}\" in pod \"{pod_name}\" not found")
        } else {
            format!("container \"{container}\" in pod \"{pod_name}\" is waiting to start: ContainerCreating")
        };
        return status(400, "BadRequest", msg);
    };
    let path = state
        .rt
        .pod_log_dir(&pod)
        .join(container)
        .join(format!("{}.log", instance.record.attempt));
    let follow = q.follow && !q.previous && instance.exit.is_none();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let opts = q.opts.clone();
    let state = state.clone();
    let (ns, pod_name) = (ns.to_string(), pod_name.to_string());
    tokio::spawn(async move {
        let mut out = Limited {
            tx: tx.clone(),
            budget: opts.limit_bytes.unwrap_or(usize::MAX),
        };
        if !follow {
            let p = path.clone();
            let data = tokio::task::spawn_blocking(move || logs::read(&p, &opts))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            out.send(data).await;
            return;
        }
        let (shown, offset) = {
            let (p, o) = (path.clone(), opts.clone());
            tokio::task::spawn_blocking(move || logs::read_for_follow(&p, &o))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default()
        };
        if !out.send(shown).await {
            return;
        }
        let mut follower = Follower::new(&path, offset, opts.timestamps);
        loop {
            // Whether it is over is decided before reading, so the last lines are read.
            // One stat for the instance's exit, not a re-read of the whole pod each tick.
            let over = match state.kubelet.find_pod(&ns, &pod_name) {
                Some(p) if p.metadata.uid.as_deref() == Some(&uid) => {
                    state.rt.has_exited(&uid, &instance.record)
                }
                _ => true,
            };
            let new = follower.poll();
            if !out.send(new).await || out.budget == 0 || over {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(FOLLOW_POLL) => {}
                _ = tx.closed() => return,
            }
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(Frame::data(chunk)), rx))
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(body)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query() {
        let q = parse_query(Some("follow=true&tailLines=5&timestamps=1&limitBytes=10")).unwrap();
        assert!(q.follow && q.opts.timestamps);
        assert_eq!(q.opts.tail_lines, Some(5));
        assert_eq!(q.opts.limit_bytes, Some(10));
        assert!(parse_query(Some("tailLines=-1")).is_err());
        assert!(parse_query(Some("sinceTime=yesterday")).is_err());
        let q = parse_query(Some("sinceTime=2026-11-25T08%3A00%3A00Z")).unwrap();
        assert_eq!(q.opts.since, Some("2026-11-25T08:00:00Z".parse().unwrap()));
    }
}
