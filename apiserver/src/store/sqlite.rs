//! The embedded store: every change is one row of an append-only `log` table in SQLite (WAL mode),
//! the current value of every key is also kept in memory so reads never touch the disk, and one
//! writer thread commits changes in batches (group commit) so concurrent writers share a commit.
//!
//! A request is acknowledged only after its transaction committed; with `synchronous=NORMAL` in
//! WAL mode a committed transaction survives `kill -9` of the process (it is in the OS page cache),
//! and `--sqlite-synchronous=full` makes it survive power loss too.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{broadcast, oneshot};

use super::watch::{Resumed, WatchSource};
use super::{
    prefix_end, BoxFuture, Event, EventKind, KeyValue, RangeRequest, RangeResult, Result, Store,
    StoreError, WatchStream,
};

/// How many recent events are kept in memory for watchers that resume.
const RING_CAPACITY: usize = 16 * 1024;
/// Capacity of the live event feed; a watcher further behind resumes from the ring or the disk.
const FEED_CAPACITY: usize = 4 * 1024;
/// Most requests committed in one transaction.
const MAX_BATCH: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Synchronous {
    /// Durable across process crashes (kill -9); the default.
    Normal,
    /// Durable across power loss: fsync on every commit.
    Full,
}

pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    state: RwLock<State>,
    writer: Mutex<Option<std::sync::mpsc::Sender<Request>>>,
    feed: broadcast::Sender<Arc<Event>>,
    reader: Mutex<Connection>,
    compacted: AtomicI64,
    current: AtomicI64,
}

struct State {
    index: BTreeMap<String, Arc<KeyValue>>,
    rev: i64,
    ring: VecDeque<Arc<Event>>,
    /// The ring holds every event with a revision in (ring_base, rev].
    ring_base: i64,
}

enum Op {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: i64,
    },
    Delete {
        key: String,
        expected: Option<i64>,
    },
    Compact {
        rev: i64,
    },
}

struct Request {
    op: Op,
    reply: oneshot::Sender<Result<Arc<KeyValue>>>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn open(path: &Path, sync: Synchronous) -> Result<Connection> {
    let conn = Connection::open(path).map_err(backend)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(backend)?;
    let sync = match sync {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA foreign_keys=OFF;"
    ))
    .map_err(backend)?;
    Ok(conn)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log (
    rev INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    create_rev INTEGER NOT NULL,
    prev_rev INTEGER NOT NULL,
    version INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS log_key_rev ON log(key, rev);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

/// One row of the log.
struct Row {
    rev: i64,
    key: String,
    deleted: bool,
    create_rev: i64,
    prev_rev: i64,
    version: i64,
    value: Vec<u8>,
}

impl Row {
    const COLUMNS: &'static str = "rev, key, deleted, create_rev, prev_rev, version, value";

    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
        Ok(Row {
            rev: r.get(0)?,
            key: r.get(1)?,
            deleted: r.get::<_, i64>(2)? != 0,
            create_rev: r.get(3)?,
            prev_rev: r.get(4)?,
            version: r.get(5)?,
            value: r.get(6)?,
        })
    }

    fn into_kv(self) -> KeyValue {
        KeyValue {
            key: self.key,
            value: Bytes::from(self.value),
            create_rev: self.create_rev,
            mod_rev: self.rev,
            version: self.version,
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and loads the current state.
    pub fn open(path: &Path, sync: Synchronous) -> Result<SqliteStore> {
        let conn = open(path, sync)?;
        conn.execute_batch(SCHEMA).map_err(backend)?;
        let compacted: i64 = conn
            .query_row("SELECT value FROM meta WHERE name = 'compacted'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(backend)?
            .unwrap_or(0);
        let rev: i64 = conn
            .query_row("SELECT COALESCE(MAX(rev), 0) FROM log", [], |r| r.get(0))
            .map_err(backend)?;
        let mut index = BTreeMap::new();
        {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {} FROM log WHERE rev IN (SELECT MAX(rev) FROM log GROUP BY key)",
                    Row::COLUMNS
                ))
                .map_err(backend)?;
            let rows = stmt.query_map([], Row::read).map_err(backend)?;
            for row in rows {
                let row = row.map_err(backend)?;
                if !row.deleted {
                    index.insert(row.key.clone(), Arc::new(row.into_kv()));
                }
            }
        }
        // Checkpoints (copying the WAL into the database, with an fsync) run on a thread of their
        // own, so a commit never waits for one; the writer's automatic checkpoints are off.
        conn.execute_batch("PRAGMA wal_autocheckpoint=0;")
            .map_err(backend)?;
        let checkpointer = open(path, sync)?;
        std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                if let Err(e) = checkpointer.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
            })
            .map_err(backend)?;
        let reader = open(path, sync)?;
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        let (tx, rx) = std::sync::mpsc::channel();
        let inner = Arc::new(Inner {
            state: RwLock::new(State {
                index,
                rev,
                ring: VecDeque::new(),
                ring_base: rev,
            }),
            writer: Mutex::new(Some(tx)),
            feed,
            reader: Mutex::new(reader),
            compacted: AtomicI64::new(compacted),
            current: AtomicI64::new(rev),
        });
        let writer_inner = inner.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                Writer {
                    conn,
                    inner: writer_inner,
                }
                .run(rx)
            })
            .map_err(backend)?;
        tracing::info!(path = %path.display(), revision = rev, keys = inner.state.read().unwrap().index.len(), "store opened");
        Ok(SqliteStore { inner })
    }

    async fn submit(&self, op: Op) -> Result<Arc<KeyValue>> {
        let (reply, rx) = oneshot::channel();
        {
            let writer = self.inner.writer.lock().unwrap();
            let Some(tx) = writer.as_ref() else {
                return Err(StoreError::Closed);
            };
            tx.send(Request { op, reply })
                .map_err(|_| StoreError::Closed)?;
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the channel lets the writer thread finish what is queued and exit.
        self.inner.writer.lock().unwrap().take();
    }
}

struct Writer {
    conn: Connection,
    inner: Arc<Inner>,
}

impl Writer {
    fn run(mut self, rx: std::sync::mpsc::Receiver<Request>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            // Compaction runs alone; everything else is committed together.
            let (compactions, changes): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .partition(|r| matches!(r.op, Op::Compact { .. }));
            if !changes.is_empty() {
                self.commit(changes);
            }
            for r in compactions {
                let Op::Compact { rev } = r.op else {
                    unreachable!()
                };
                let result = self.compact(rev);
                let _ = r.reply.send(result.map(|()| {
                    Arc::new(KeyValue {
                        key: String::new(),
                        value: Bytes::new(),
                        create_rev: 0,
                        mod_rev: rev,
                        version: 0,
                    })
                }));
            }
        }
        tracing::debug!("store writer stopped");
    }

    fn commit(&mut self, batch: Vec<Request>) {
        let mut results: Vec<Result<Arc<KeyValue>>> = Vec::with_capacity(batch.len());
        let mut events: Vec<Arc<Event>> = Vec::new();
        let mut overlay: HashMap<String, Option<Arc<KeyValue>>> = HashMap::new();
        let outcome = (|| -> rusqlite::Result<i64> {
            let state = self.inner.state.read().unwrap();
            let mut rev = state.rev;
            let tx = self.conn.transaction()?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO log (rev, key, deleted, create_rev, prev_rev, version, value) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for req in &batch {
                    let key = match &req.op {
                        Op::Create { key, .. }
                        | Op::Update { key, .. }
                        | Op::Delete { key, .. } => key,
                        Op::Compact { .. } => unreachable!(),
                    };
                    let current = match overlay.get(key) {
                        Some(v) => v.clone(),
                        None => state.index.get(key).cloned(),
                    };
                    let result = match (&req.op, current) {
                        (Op::Create { key, .. }, Some(_)) => {
                            Err(StoreError::AlreadyExists(key.clone()))
                        }
                        (Op::Create { key, value }, None) => {
                            rev += 1;
                            let kv = Arc::new(KeyValue {
                                key: key.clone(),
                                value: value.clone(),
                                create_rev: rev,
                                mod_rev: rev,
                                version: 1,
                            });
                            insert.execute(params![rev, key, 0, rev, 0, 1, &value[..]])?;
                            Ok((kv, None, EventKind::Put))
                        }
                        (Op::Update { key, .. } | Op::Delete { key, .. }, None) => {
                            Err(StoreError::NotFound(key.clone()))
                        }
                        (Op::Update { key, expected, .. }, Some(cur))
                            if cur.mod_rev != *expected =>
                        {
                            Err(StoreError::Conflict {
                                key: key.clone(),
                                expected: *expected,
                                found: Some(cur),
                            })
                        }
                        (
                            Op::Delete {
                                key,
                                expected: Some(expected),
                            },
                            Some(cur),
                        ) if cur.mod_rev != *expected => Err(StoreError::Conflict {
                            key: key.clone(),
                            expected: *expected,
                            found: Some(cur),
                        }),
                        (Op::Update { key, value, .. }, Some(cur)) => {
                            rev += 1;
                            let kv = Arc::new(KeyValue {
                                key: key.clone(),
                                value: value.clone(),
                                create_rev: cur.create_rev,
                                mod_rev: rev,
                                version: cur.version + 1,
                            });
                            insert.execute(params![
                                rev,
                                key,
                                0,
                                cur.create_rev,
                                cur.mod_rev,
                                kv.version,
                                &value[..]
                            ])?;
                            Ok((kv, Some(cur), EventKind::Put))
                        }
                        (Op::Delete { key, .. }, Some(cur)) => {
                            rev += 1;
                            let kv = Arc::new(KeyValue {
                                key: key.clone(),
                                value: cur.value.clone(),
                                create_rev: cur.create_rev,
                                mod_rev: rev,
                                version: cur.version,
                            });
                            insert.execute(params![
                                rev,
                                key,
                                1,
                                cur.create_rev,
                                cur.mod_rev,
                                cur.version,
                                &cur.value[..]
                            ])?;
                            Ok((kv, Some(cur), EventKind::Delete))
                        }
                        (Op::Compact { .. }, _) => unreachable!(),
                    };
                    match result {
                        Ok((kv, prev, kind)) => {
                            overlay.insert(
                                kv.key.clone(),
                                (kind == EventKind::Put).then(|| kv.clone()),
                            );
                            events.push(Arc::new(Event {
                                rev,
                                kind,
                                kv: kv.clone(),
                                prev,
                            }));
                            results.push(Ok(kv));
                        }
                        Err(e) => results.push(Err(e)),
                    }
                }
            }
            tx.commit()?;
            Ok(rev)
        })();

        match outcome {
            Ok(rev) => {
                let mut state = self.inner.state.write().unwrap();
                for (key, value) in overlay {
                    match value {
                        Some(kv) => state.index.insert(key, kv),
                        None => state.index.remove(&key),
                    };
                }
                state.rev = rev;
                self.inner.current.store(rev, Ordering::Release);
                for event in events {
                    state.ring.push_back(event.clone());
                    // Sending under the lock keeps the feed and the ring in the same order as
                    // watchers that subscribe under the read lock see them.
                    let _ = self.inner.feed.send(event);
                }
                while state.ring.len() > RING_CAPACITY {
                    if let Some(old) = state.ring.pop_front() {
                        state.ring_base = old.rev;
                    }
                }
                drop(state);
                for (req, result) in batch.into_iter().zip(results) {
                    let _ = req.reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store commit failed");
                for req in batch {
                    let _ = req.reply.send(Err(backend(&e)));
                }
            }
        }
    }

    /// Drops history older than `rev`, keeping for every key its newest change before `rev`,
    /// so that the state at any revision >= `rev` and the previous value of every later event
    /// can still be read.
    fn compact(&mut self, rev: i64) -> Result<()> {
        let current = self.inner.current.load(Ordering::Acquire);
        let rev = rev.min(current);
        if rev <= self.inner.compacted.load(Ordering::Acquire) {
            return Ok(());
        }
        let tx = self.conn.transaction().map_err(backend)?;
        let removed = tx
            .execute(
                "DELETE FROM log WHERE rev < ?1 AND (deleted = 1 OR EXISTS \
                 (SELECT 1 FROM log n WHERE n.key = log.key AND n.rev > log.rev AND n.rev < ?1))",
                params![rev],
            )
            .map_err(backend)?;
        tx.execute(
            "INSERT INTO meta (name, value) VALUES ('compacted', ?1) \
             ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            params![rev],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)?;
        self.inner.compacted.store(rev, Ordering::Release);
        tracing::info!(revision = rev, removed, "store compacted");
        Ok(())
    }
}

impl Inner {
    fn check_compacted(&self, after: i64) -> Result<()> {
        let compacted = self.compacted.load(Ordering::Acquire);
        // Events after `after` start at after+1; history from `compacted` on is complete.
        if after + 1 < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted,
            });
        }
        Ok(())
    }

    fn history(&self, prefix: &str, after: i64, upto: i64) -> Result<VecDeque<Arc<Event>>> {
        let conn = self.reader.lock().unwrap();
        let end = prefix_end(prefix);
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {} FROM log WHERE rev > ?1 AND rev <= ?2 AND key >= ?3 AND key < ?4 ORDER BY rev",
                Row::COLUMNS
            ))
            .map_err(backend)?;
        let rows = stmt
            .query_map(params![after, upto, prefix, end], Row::read)
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<Row>>>()
            .map_err(backend)?;
        let mut prev_stmt = conn
            .prepare_cached(&format!("SELECT {} FROM log WHERE rev = ?1", Row::COLUMNS))
            .map_err(backend)?;
        let mut out = VecDeque::with_capacity(rows.len());
        for row in rows {
            let prev = if row.prev_rev > 0 {
                prev_stmt
                    .query_row(params![row.prev_rev], Row::read)
                    .optional()
                    .map_err(backend)?
                    .map(|r| Arc::new(r.into_kv()))
            } else {
                None
            };
            let kind = if row.deleted {
                EventKind::Delete
            } else {
                EventKind::Put
            };
            let rev = row.rev;
            out.push_back(Arc::new(Event {
                rev,
                kind,
                kv: Arc::new(row.into_kv()),
                prev,
            }));
        }
        Ok(out)
    }

    fn range_at(&self, req: &RangeRequest<'_>) -> Result<RangeResult> {
        let conn = self.reader.lock().unwrap();
        let end = prefix_end(req.prefix);
        let start = req.start_after.unwrap_or("");
        let limit: i64 = if req.limit == 0 {
            -1
        } else {
            req.limit as i64 + 1
        };
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {} FROM log WHERE rev IN (SELECT MAX(rev) FROM log \
                 WHERE key >= ?1 AND key < ?2 AND key > ?3 AND rev <= ?4 GROUP BY key) \
                 AND deleted = 0 ORDER BY key LIMIT ?5",
                Row::COLUMNS
            ))
            .map_err(backend)?;
        let mut kvs = stmt
            .query_map(params![req.prefix, end, start, req.rev, limit], Row::read)
            .map_err(backend)?
            .map(|r| r.map(|r| Arc::new(r.into_kv())))
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)?;
        let more = req.limit > 0 && kvs.len() > req.limit;
        kvs.truncate(if req.limit > 0 { req.limit } else { kvs.len() });
        Ok(RangeResult {
            kvs,
            rev: req.rev,
            more,
        })
    }
}

/// Runs a disk read off the async threads.
async fn blocking<T: Send + 'static>(
    inner: Arc<Inner>,
    f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(move || f(&inner))
        .await
        .map_err(backend)?
}

impl WatchSource for Inner {
    fn resume(self: Arc<Self>, prefix: String, after: i64) -> BoxFuture<'static, Result<Resumed>> {
        Box::pin(async move {
            self.check_compacted(after)?;
            let (mut backlog, live, ring_base) = {
                let state = self.state.read().unwrap();
                if after > state.rev {
                    return Err(StoreError::FutureRevision {
                        requested: after,
                        current: state.rev,
                    });
                }
                let backlog: VecDeque<Arc<Event>> = state
                    .ring
                    .iter()
                    .filter(|e| e.rev > after && e.kv.key.starts_with(&prefix))
                    .cloned()
                    .collect();
                (backlog, self.feed.subscribe(), state.ring_base)
            };
            if after < ring_base {
                // Older than memory holds: read the gap from disk. Those rows are immutable.
                let mut older =
                    blocking(self.clone(), move |s| s.history(&prefix, after, ring_base)).await?;
                self.check_compacted(after)?;
                older.extend(backlog);
                backlog = older;
            }
            Ok((backlog, live))
        })
    }
}

impl Store for SqliteStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Arc<KeyValue>>>> {
        let kv = self.inner.state.read().unwrap().index.get(key).cloned();
        Box::pin(async move { Ok(kv) })
    }

    fn range<'a>(&'a self, req: RangeRequest<'a>) -> BoxFuture<'a, Result<RangeResult>> {
        Box::pin(async move {
            {
                let state = self.inner.state.read().unwrap();
                if req.rev > state.rev {
                    return Err(StoreError::FutureRevision {
                        requested: req.rev,
                        current: state.rev,
                    });
                }
                if req.rev == 0 || req.rev == state.rev {
                    let lower = match req.start_after {
                        Some(s) if s >= req.prefix => Bound::Excluded(s),
                        _ => Bound::Included(req.prefix),
                    };
                    let mut kvs = Vec::new();
                    let mut more = false;
                    for (key, kv) in state.index.range::<str, _>((lower, Bound::Unbounded)) {
                        if !key.starts_with(req.prefix) {
                            break;
                        }
                        if req.limit > 0 && kvs.len() == req.limit {
                            more = true;
                            break;
                        }
                        kvs.push(kv.clone());
                    }
                    return Ok(RangeResult {
                        kvs,
                        rev: state.rev,
                        more,
                    });
                }
            }
            // A past revision: rebuild the snapshot from the log.
            self.inner.check_compacted(req.rev - 1)?;
            let (prefix, start) = (req.prefix.to_string(), req.start_after.map(str::to_string));
            let (limit, rev) = (req.limit, req.rev);
            let result = blocking(self.inner.clone(), move |s| {
                s.range_at(&RangeRequest {
                    prefix: &prefix,
                    start_after: start.as_deref(),
                    limit,
                    rev,
                })
            })
            .await?;
            self.inner.check_compacted(req.rev - 1)?;
            Ok(result)
        })
    }

    fn create<'a>(&'a self, key: &'a str, value: Bytes) -> BoxFuture<'a, Result<Arc<KeyValue>>> {
        Box::pin(self.submit(Op::Create {
            key: key.to_string(),
            value,
        }))
    }

    fn update<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        expected: i64,
    ) -> BoxFuture<'a, Result<Arc<KeyValue>>> {
        Box::pin(self.submit(Op::Update {
            key: key.to_string(),
            value,
            expected,
        }))
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        expected: Option<i64>,
    ) -> BoxFuture<'a, Result<Arc<KeyValue>>> {
        Box::pin(self.submit(Op::Delete {
            key: key.to_string(),
            expected,
        }))
    }

    fn watch<'a>(&'a self, prefix: &'a str, after: i64) -> BoxFuture<'a, Result<WatchStream>> {
        Box::pin(async move {
            let (backlog, live) = self.inner.clone().resume(prefix.to_string(), after).await?;
            Ok(WatchStream::new(
                prefix.to_string(),
                after,
                backlog,
                live,
                self.inner.clone(),
            ))
        })
    }

    fn current_revision(&self) -> i64 {
        self.inner.current.load(Ordering::Acquire)
    }

    fn compacted_revision(&self) -> i64 {
        self.inner.compacted.load(Ordering::Acquire)
    }

    fn compact(&self, rev: i64) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { self.submit(Op::Compact { rev }).await.map(|_| ()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(&dir.path().join("db"), Synchronous::Normal).unwrap()
    }

    fn b(s: &str) -> Bytes {
        Bytes::from(s.to_string())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn create_update_delete_with_revisions() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let a = s.create("/a/1", b("one")).await.unwrap();
        assert_eq!((a.create_rev, a.mod_rev, a.version), (1, 1, 1));
        assert!(matches!(
            s.create("/a/1", b("again")).await,
            Err(StoreError::AlreadyExists(_))
        ));
        let a2 = s.update("/a/1", b("two"), 1).await.unwrap();
        assert_eq!((a2.create_rev, a2.mod_rev, a2.version), (1, 2, 2));
        match s.update("/a/1", b("stale"), 1).await {
            Err(StoreError::Conflict { found, .. }) => {
                assert_eq!(found.unwrap().value, b("two"))
            }
            other => panic!("expected conflict, got {other:?}"),
        }
        assert!(matches!(
            s.delete("/a/1", Some(1)).await,
            Err(StoreError::Conflict { .. })
        ));
        let d = s.delete("/a/1", Some(2)).await.unwrap();
        assert_eq!((d.mod_rev, &d.value), (3, &b("two")));
        assert!(s.get("/a/1").await.unwrap().is_none());
        assert_eq!(s.current_revision(), 3);
    }

    #[tokio::test]
    async fn state_and_history_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = store(&dir);
            s.create("/p/a", b("a")).await.unwrap();
            s.create("/p/b", b("b")).await.unwrap();
            s.update("/p/a", b("a2"), 1).await.unwrap();
            s.delete("/p/b", None).await.unwrap();
        }
        let s = store(&dir);
        assert_eq!(s.current_revision(), 4);
        let all = s
            .range(RangeRequest {
                prefix: "/p/",
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(all.kvs.len(), 1);
        assert_eq!(all.kvs[0].value, b("a2"));
        // The past is still readable, and replayable as events.
        let past = s
            .range(RangeRequest {
                prefix: "/p/",
                rev: 2,
                ..Default::default()
            })
            .await
            .unwrap();
        let values: Vec<_> = past.kvs.iter().map(|kv| kv.value.clone()).collect();
        assert_eq!(values, vec![b("a"), b("b")]);
        let mut w = s.watch("/p/", 1).await.unwrap();
        let mut seen = Vec::new();
        for _ in 0..3 {
            let e = w.next().await.unwrap().unwrap();
            seen.push((e.rev, e.kind, e.kv.value.clone()));
        }
        assert_eq!(
            seen,
            vec![
                (2, EventKind::Put, b("b")),
                (3, EventKind::Put, b("a2")),
                (4, EventKind::Delete, b("b")),
            ]
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn watch_sees_every_change_in_order_under_concurrency() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(store(&dir));
        let mut w = s.watch("/c/", 0).await.unwrap();
        let mut tasks = Vec::new();
        for t in 0..8 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..50 {
                    s.create(&format!("/c/{t}-{i}"), b("x")).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut last = 0;
        for _ in 0..400 {
            let e = w.next().await.unwrap().unwrap();
            assert!(e.rev > last);
            last = e.rev;
        }
        assert_eq!(last, 400);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn compaction_keeps_latest_and_refuses_old_watches() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        s.create("/k/a", b("1")).await.unwrap(); // 1
        s.update("/k/a", b("2"), 1).await.unwrap(); // 2
        s.create("/k/b", b("x")).await.unwrap(); // 3
        s.delete("/k/b", None).await.unwrap(); // 4
        s.update("/k/a", b("3"), 2).await.unwrap(); // 5
        s.compact(5).await.unwrap();
        assert!(matches!(
            s.watch("/k/", 2).await,
            Err(StoreError::Compacted { .. })
        ));
        // From the compaction point on everything is there, with previous values.
        let snapshot = s
            .range(RangeRequest {
                prefix: "/k/",
                rev: 4,
                ..Default::default()
            })
            .await;
        assert!(matches!(snapshot, Err(StoreError::Compacted { .. })));
        drop(s);
        let s = store(&dir);
        assert_eq!(s.compacted_revision(), 5);
        let mut w = s.watch("/k/", 4).await.unwrap();
        let e = w.next().await.unwrap().unwrap();
        assert_eq!(e.rev, 5);
        assert_eq!(e.prev.as_ref().unwrap().value, b("2"));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn range_pages_with_limit() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        for i in 0..5 {
            s.create(&format!("/r/{i}"), b("v")).await.unwrap();
        }
        let first = s
            .range(RangeRequest {
                prefix: "/r/",
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(first.more);
        let last_key = first.kvs.last().unwrap().key.clone();
        let rest = s
            .range(RangeRequest {
                prefix: "/r/",
                start_after: Some(&last_key),
                rev: first.rev,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(rest.kvs.len(), 3);
        assert!(!rest.more);
    }
}
