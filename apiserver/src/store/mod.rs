//! The storage interface: the shape of etcd's KV and watch API, so that the API layer never knows
//! which backend it talks to. Keys are strings, values opaque bytes. Every change gets the next
//! revision of one store-wide counter; a key remembers the revision that created it and the one
//! that last changed it (`create_rev`, `mod_rev`). Writes are compare-and-swap on `mod_rev`.
//! History is kept until it is compacted; watching from a compacted revision fails.
//!
//! The embedded implementation is [`sqlite::SqliteStore`].

pub mod sqlite;
mod watch;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

pub use watch::WatchStream;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One key's current value and its revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// Revision of the change that created this key (since its last deletion).
    pub create_rev: i64,
    /// Revision of the change that produced this value.
    pub mod_rev: i64,
    /// Number of changes since creation, starting at 1.
    pub version: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change, as watchers see it.
#[derive(Debug)]
pub struct Event {
    pub rev: i64,
    pub kind: EventKind,
    /// For `Put` the new value; for `Delete` the last value before deletion, with `mod_rev` set to
    /// the deletion's revision.
    pub kv: Arc<KeyValue>,
    /// The value before this change (None for a creation, or when history no longer has it).
    pub prev: Option<Arc<KeyValue>>,
}

impl Event {
    pub fn is_create(&self) -> bool {
        self.kind == EventKind::Put && self.kv.create_rev == self.rev
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key {0} already exists")]
    AlreadyExists(String),
    #[error("key {0} not found")]
    NotFound(String),
    /// The compare-and-swap failed: the key changed since `expected`.
    #[error("key {key} was modified (expected revision {expected}, found {found:?})")]
    Conflict {
        key: String,
        expected: i64,
        found: Option<Arc<KeyValue>>,
    },
    #[error("revision {requested} has been compacted (compacted up to {compacted})")]
    Compacted { requested: i64, compacted: i64 },
    #[error("revision {requested} is in the future (current revision {current})")]
    FutureRevision { requested: i64, current: i64 },
    #[error("storage backend failure: {0}")]
    Backend(String),
    #[error("the store is shutting down")]
    Closed,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A snapshot of a key range at one revision.
#[derive(Debug, Default)]
pub struct RangeResult {
    pub kvs: Vec<Arc<KeyValue>>,
    /// The revision the snapshot was taken at.
    pub rev: i64,
    /// True when `limit` cut the result short.
    pub more: bool,
}

/// A key range request: every key that starts with `prefix` and sorts after `start_after`.
#[derive(Clone, Debug, Default)]
pub struct RangeRequest<'a> {
    pub prefix: &'a str,
    pub start_after: Option<&'a str>,
    /// 0 means no limit.
    pub limit: usize,
    /// 0 means the current revision.
    pub rev: i64,
}

/// The etcd-shaped storage contract.
pub trait Store: Send + Sync + 'static {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Arc<KeyValue>>>>;
    fn range<'a>(&'a self, req: RangeRequest<'a>) -> BoxFuture<'a, Result<RangeResult>>;
    /// Creates `key`; fails with `AlreadyExists` if it is present.
    fn create<'a>(&'a self, key: &'a str, value: Bytes) -> BoxFuture<'a, Result<Arc<KeyValue>>>;
    /// Replaces `key` if its `mod_rev` is still `expected`.
    fn update<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        expected: i64,
    ) -> BoxFuture<'a, Result<Arc<KeyValue>>>;
    /// Deletes `key` if its `mod_rev` is still `expected` (any revision when None). Returns the
    /// deleted value with `mod_rev` set to the deletion's revision.
    fn delete<'a>(
        &'a self,
        key: &'a str,
        expected: Option<i64>,
    ) -> BoxFuture<'a, Result<Arc<KeyValue>>>;
    /// Every change to keys under `prefix` with a revision greater than `after`, in order, then
    /// the changes that follow as they happen.
    fn watch<'a>(&'a self, prefix: &'a str, after: i64) -> BoxFuture<'a, Result<WatchStream>>;
    fn current_revision(&self) -> i64;
    fn compacted_revision(&self) -> i64;
    /// Forgets history before `rev`; the newest value of every key is kept.
    fn compact(&self, rev: i64) -> BoxFuture<'_, Result<()>>;
}

/// The first key after every key that starts with `prefix`.
pub(crate) fn prefix_end(prefix: &str) -> String {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return String::from_utf8_lossy(&end).into_owned();
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_next_key() {
        assert_eq!(prefix_end("/registry/pods/"), "/registry/pods0");
        assert!(*"/registry/pods/zzz" < *prefix_end("/registry/pods/"));
    }
}
