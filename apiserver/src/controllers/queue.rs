//! A work queue of object keys, as client-go's: a key is queued at most once, is never handed to
//! two workers at the same time (a key added while it is being processed is queued again when
//! the worker is done), and failed keys come back after an exponentially growing delay.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::error::ApiError;

const BASE_DELAY: Duration = Duration::from_millis(5);
const MAX_DELAY: Duration = Duration::from_secs(30);

#[derive(Default)]
struct State {
    ready: VecDeque<String>,
    queued: HashSet<String>,
    processing: HashSet<String>,
    /// Added while being processed: queue again when done.
    dirty: HashSet<String>,
    failures: HashMap<String, u32>,
}

pub struct Queue {
    pub name: &'static str,
    state: Mutex<State>,
    notify: Notify,
}

impl Queue {
    pub fn new(name: &'static str) -> Arc<Queue> {
        Arc::new(Queue {
            name,
            state: Mutex::new(State::default()),
            notify: Notify::new(),
        })
    }

    pub fn add(&self, key: impl Into<String>) {
        let key = key.into();
        let mut s = self.state.lock().unwrap();
        if s.processing.contains(&key) {
            s.dirty.insert(key);
            return;
        }
        if s.queued.insert(key.clone()) {
            s.ready.push_back(key);
            drop(s);
            self.notify.notify_one();
        }
    }

    pub fn add_after(self: &Arc<Self>, key: impl Into<String>, delay: Duration) {
        let key = key.into();
        if delay.is_zero() {
            return self.add(key);
        }
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            q.add(key);
        });
    }

    /// Queues `key` again after its next backoff delay.
    pub fn retry(self: &Arc<Self>, key: &str) {
        let n = {
            let mut s = self.state.lock().unwrap();
            let n = s.failures.entry(key.to_string()).or_insert(0);
            *n += 1;
            *n
        };
        let delay = BASE_DELAY
            .saturating_mul(1u32.checked_shl(n.min(20) - 1).unwrap_or(u32::MAX))
            .min(MAX_DELAY);
        self.add_after(key.to_string(), delay);
    }

    /// Clears the backoff of a key that synced.
    pub fn forget(&self, key: &str) {
        self.state.lock().unwrap().failures.remove(key);
    }

    fn pop(&self) -> Option<String> {
        let mut s = self.state.lock().unwrap();
        let key = s.ready.pop_front()?;
        s.queued.remove(&key);
        s.processing.insert(key.clone());
        Some(key)
    }

    /// The next key to work on.
    pub async fn next(&self) -> String {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(k) = self.pop() {
                return k;
            }
            notified.await;
        }
    }

    pub fn done(&self, key: &str) {
        let requeue = {
            let mut s = self.state.lock().unwrap();
            s.processing.remove(key);
            s.dirty.remove(key)
        };
        if requeue {
            self.add(key.to_string());
        }
        // Another worker may be waiting for a key that was held back while this one ran.
        self.notify.notify_one();
    }

    pub fn len(&self) -> usize {
        self.state.lock().unwrap().ready.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Runs `workers` loops taking keys from `queue` and calling `sync`. A sync returns how long until
/// it wants to look again (None: only on change); a failure is retried with backoff, and a
/// conflict (someone else wrote first) is retried at once, never reported.
pub fn run_workers<F, Fut>(queue: Arc<Queue>, workers: usize, sync: F)
where
    F: Fn(String) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Duration>, ApiError>> + Send + 'static,
{
    for _ in 0..workers {
        let queue = queue.clone();
        let sync = sync.clone();
        tokio::spawn(async move {
            loop {
                let key = queue.next().await;
                match sync(key.clone()).await {
                    Ok(again) => {
                        queue.forget(&key);
                        if let Some(d) = again {
                            queue.add_after(key.clone(), d);
                        }
                    }
                    Err(e) if e.code == 409 => {
                        tracing::debug!(queue = queue.name, key, "conflict; syncing again");
                        queue.retry(&key);
                    }
                    Err(e) => {
                        tracing::warn!(queue = queue.name, key, error = %e, "sync failed; will retry");
                        queue.retry(&key);
                    }
                }
                queue.done(&key);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_queued_once_and_never_processed_twice_at_once() {
        let q = Queue::new("test");
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let a = q.next().await;
        assert_eq!(a, "a");
        // Added while processing: held back until done.
        q.add("a");
        assert_eq!(q.next().await, "b");
        assert_eq!(q.len(), 0);
        q.done("a");
        assert_eq!(q.next().await, "a");
    }

    #[tokio::test(start_paused = true)]
    async fn retries_back_off() {
        let q = Queue::new("test");
        q.retry("k");
        tokio::time::sleep(Duration::from_millis(4)).await;
        assert!(q.is_empty());
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(q.next().await, "k");
        q.done("k");
        q.retry("k");
        tokio::time::sleep(Duration::from_millis(9)).await;
        assert!(q.is_empty(), "the second retry waits twice as long");
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(q.next().await, "k");
    }
}
