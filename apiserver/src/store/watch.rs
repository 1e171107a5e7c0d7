//! The watch stream handed out by stores: a backlog of past events followed by live ones, which
//! resumes from history on its own when it falls behind the live feed.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast;

use super::{BoxFuture, Event, Result};

/// Committed events to replay, and the live feed positioned right after them.
pub type Resumed = (VecDeque<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

/// What a watch stream needs from its store to catch up after it lagged.
pub trait WatchSource: Send + Sync {
    /// Events under `prefix` after revision `after` that are already committed, plus a receiver
    /// positioned so that no later event is missed.
    fn resume(self: Arc<Self>, prefix: String, after: i64) -> BoxFuture<'static, Result<Resumed>>;
}

pub struct WatchStream {
    prefix: String,
    backlog: VecDeque<Arc<Event>>,
    live: broadcast::Receiver<Arc<Event>>,
    source: Arc<dyn WatchSource>,
    /// Every event at or below this revision has been seen (delivered or filtered out).
    progress: i64,
}

impl WatchStream {
    pub(crate) fn new(
        prefix: String,
        after: i64,
        backlog: VecDeque<Arc<Event>>,
        live: broadcast::Receiver<Arc<Event>>,
        source: Arc<dyn WatchSource>,
    ) -> Self {
        WatchStream {
            prefix,
            backlog,
            live,
            source,
            progress: after,
        }
    }

    /// The revision up to which this stream has seen every change: a safe bookmark.
    pub fn progress(&self) -> i64 {
        self.progress
    }

    /// The next change under the prefix; None when the store shut down.
    pub async fn next(&mut self) -> Option<Result<Arc<Event>>> {
        loop {
            let event = match self.backlog.pop_front() {
                Some(e) => e,
                None => match self.live.recv().await {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        match self
                            .source
                            .clone()
                            .resume(self.prefix.clone(), self.progress)
                            .await
                        {
                            Ok((backlog, live)) => {
                                self.backlog = backlog;
                                self.live = live;
                                continue;
                            }
                            Err(e) => return Some(Err(e)),
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            };
            if event.rev <= self.progress {
                continue;
            }
            self.progress = event.rev;
            if event.kv.key.starts_with(&self.prefix) {
                return Some(Ok(event));
            }
        }
    }
}
