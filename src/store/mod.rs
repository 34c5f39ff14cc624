//! The durable store: one redb file in the data dir, typed tables, and the group-commit writer.
//!
//! Architecture invariants:
//! - Every write goes through [`Store::write`]: one writer thread takes requests from a bounded
//!   queue, applies as many as are waiting inside one `Durability::Immediate` transaction, and
//!   answers each request only after that transaction's commit has returned. The answers (and
//!   the fan-out that `write_then` attaches) run on one completer thread, batch after batch in
//!   commit order, while the writer applies and commits the next batch.
//! - A write closure that returns `Err` must not have written anything: it checks before it
//!   writes, because it shares its transaction with other callers' writes.
//! - Reads run in `spawn_blocking` on their own read transaction, never on the async workers.
//! - A failed commit (a full disk, an I/O error) is answered as a failure to every write of its
//!   batch, never as success; redb then refuses every later operation on that handle, so the
//!   writer closes it and opens the file again (with backoff) until it works, answering writes
//!   with [`StoreError::Full`] or [`StoreError::Unavailable`] meanwhile.
//! - Only this folder knows table layouts; features call the `impl Store` methods of the
//!   domain files.
//!
//! # Layout
//! - `mod.rs`: the `Store` handle: open, close, `write`, `read`.
//! - `error.rs`: `StoreError`. `writer.rs`: the group-commit writer, its reopen and backoff, and
//!   the completer thread that answers each batch in commit order. `batch.rs`: a batch's
//!   transaction and the message tables it keeps open from its first send to its last.
//! - `migrate.rs`: schema versions and the steps between them. `tables.rs`: every table.
//! - One `impl Store` block per domain: `users.rs`, `sessions.rs`, `messages.rs`, `social.rs`,
//!   `media.rs`, `links.rs`, `calls.rs`, `push.rs`, `admin.rs`; `facts.rs` (a user's place in a
//!   conversation, loaded inside a write), `search.rs` (the tokenizer), `snapshot.rs` (copies for
//!   backups), `sizes.rs` (how much room each table takes), `fixtures.rs` (records tests build from).

pub mod admin;
mod batch;
pub mod calls;
mod client_ids;
mod error;
pub mod facts;
pub mod favorites;
#[cfg(test)]
mod fixtures;
pub mod forward;
mod indexer;
pub mod ldap;
pub mod links;
mod log;
pub mod media;
pub mod messages;
mod migrate;
pub mod oidc;
pub mod personal;
pub mod push;
mod replies;
pub mod search;
mod search_query;
pub mod sessions;
pub mod sizes;
pub mod snapshot;
pub mod social;
mod tables;
pub mod users;
mod writer;

pub use error::StoreError;
pub use messages::SendOutcome;
pub use migrate::SCHEMA_VERSION;
pub use users::{NewUser, ProfilePatch, UserRecord};

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use redb::{Database, ReadTransaction, ReadableDatabase, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use migrate::migrate;
use tables::META;
use writer::{DbSlot, Job, Opener, Writer, open_db};

const DB_FILE: &str = "chinwag.redb";

/// Counters the benchmarks and `/metrics` read.
#[derive(Debug)]
pub struct StoreStats {
    /// Messages stored (resends not counted).
    pub messages: AtomicU64,
    pub commits: AtomicU64,
    pub writes: AtomicU64,
    pub batch_sizes: Histogram,
    pub commit_seconds: Histogram,
    pub write_wait: Histogram,
}

impl Default for StoreStats {
    fn default() -> Self {
        StoreStats {
            messages: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            batch_sizes: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            commit_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            write_wait: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
        }
    }
}
/// A cheap-to-clone handle on the database and its writer.
#[derive(Clone)]
pub struct Store {
    db: Arc<DbSlot>,
    jobs: mpsc::Sender<Job>,
    /// Becomes true when the writer thread has committed its last batch and let go of the file.
    done: tokio::sync::watch::Receiver<bool>,
    pub stats: Arc<StoreStats>,
    /// Groups with their members, kept fresh by every group change right after its commit.
    groups: social::GroupCache,
    /// The newest client ids, not in their table yet; only the writer thread uses them.
    client_ids: client_ids::ClientIds,
}

/// Options for [`Store::open`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub write_queue: usize,
    pub max_batch: usize,
    /// redb's page cache, bytes (its own default is 1 GiB, which a small server would fill
    /// with whatever it once read or wrote).
    pub cache_bytes: usize,
    /// redb's two-phase commit (two fsyncs per commit). Always on in the server (see
    /// ARCHITECTURE.md, "Two-phase commit stays on"); off only in the load tool's measurement
    /// of what it costs.
    pub two_phase_commit: bool,
    /// Batches of at most this many writes have their messages indexed for search, and their
    /// client ids written to their table, in their own commit; larger ones leave both to later
    /// (`indexer.rs`, `client_ids.rs`). Always `indexer::INLINE_BATCH` in the server; 0 in the
    /// tests of what is written later.
    pub index_inline_batch: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            write_queue: 8192,
            max_batch: 2048,
            cache_bytes: 128 << 20,
            two_phase_commit: true,
            index_inline_batch: indexer::INLINE_BATCH,
        }
    }
}

impl Store {
    /// Opens (or creates) the database in `data_dir`, runs migrations, and starts the writer
    /// thread. The writer stops when every handle is dropped.
    pub fn open(data_dir: &Path, opts: &StoreOptions) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Db(format!("cannot create {}: {e}", data_dir.display())))?;
        let path = data_dir.join(DB_FILE);
        let cache = opts.cache_bytes;
        let opener: Opener = Arc::new(move || Database::builder().set_cache_size(cache).create(&path));
        Self::open_with(data_dir, opts, opener)
    }

    fn open_with(data_dir: &Path, opts: &StoreOptions, opener: Opener) -> Result<Store, StoreError> {
        let db = open_db(&opener).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse(data_dir.to_path_buf()),
            other => StoreError::Db(format!("cannot open the database in {}: {other}", data_dir.display())),
        })?;
        migrate(&db)?;
        let db = Arc::new(db);
        let slot = Arc::new(DbSlot::default());
        slot.set(Some(db.clone()));
        let (jobs, rx) = mpsc::channel(opts.write_queue);
        let stats = Arc::new(StoreStats::default());
        let (answers_tx, answers_rx) = std::sync::mpsc::sync_channel(writer::COMPLETION_QUEUE);
        let completer = std::thread::Builder::new()
            .name("chinwag-complete".into())
            .spawn(move || writer::run_completer(&answers_rx))
            .map_err(|e| StoreError::Db(format!("cannot start the completer thread: {e}")))?;
        let ids = client_ids::ClientIds::default();
        let mut writer = Writer::new(slot.clone(), db, opener, answers_tx, opts.two_phase_commit, opts.index_inline_batch, ids.clone());
        let (wstats, max_batch) = (stats.clone(), opts.max_batch);
        let (done_tx, done) = tokio::sync::watch::channel(false);
        std::thread::Builder::new()
            .name("chinwag-writer".into())
            .spawn(move || {
                writer.run(rx, max_batch, &wstats);
                // Let go of the file: readers' handles are gone with the `Store`s.
                writer.slot.set(None);
                drop(writer);
                // Every answer is given before `close` returns.
                let _ = completer.join();
                let _ = done_tx.send(true);
            })
            .map_err(|e| StoreError::Db(format!("cannot start the writer thread: {e}")))?;
        Ok(Store { db: slot, jobs, done, stats, groups: social::GroupCache::default(), client_ids: ids })
    }

    /// Lets go of this handle and waits until the writer has committed everything queued and
    /// released the database. Every other handle must already be gone, or this waits for them.
    pub async fn close(self) {
        let Store { db, jobs, mut done, .. } = self;
        drop(jobs);
        drop(db);
        let _ = done.wait_for(|d| *d).await;
    }

    /// Runs `f` in the next group commit and returns its result once the commit is durable.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        self.write_then(f, |_| {}).await
    }

    /// Like [`Store::write`], and `after` runs on the completer thread right after a successful
    /// commit, in commit order. Fan-out that must keep commit order (message delivery) goes here;
    /// it must not block.
    pub async fn write_then<T, F, A>(&self, f: F, after: A) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
        A: FnOnce(&T) + Send + 'static,
    {
        self.write_batch_then(move |b| f(b.txn()), after).await
    }

    /// Like [`Store::write_then`], for writes that take the message tables the batch keeps open
    /// (`batch.rs`) instead of opening their own.
    async fn write_batch_then<T, F, A>(&self, f: F, after: A) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut batch::Batch<'_>) -> Result<T, StoreError> + Send + 'static,
        A: FnOnce(&T) + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let asked = std::time::Instant::now();
        let job: Job = Box::new(move |b| {
            let applied = b.map(f);
            Box::new(move |committed: Result<(), StoreError>| {
                let outcome = match (applied, committed) {
                    (Some(Ok(v)), Ok(())) => {
                        after(&v);
                        Ok(v)
                    }
                    (Some(Err(e)), _) | (Some(Ok(_)) | None, Err(e)) => Err(e),
                    // The writer never reports success for a batch it did not apply.
                    (None, Ok(())) => Err(StoreError::Unavailable),
                };
                // The caller may have gone away (its connection closed); the write stands.
                let _ = tx.send(outcome);
            })
        });
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        let out = rx.await.map_err(|_| StoreError::Closed)?;
        self.stats.write_wait.observe(asked.elapsed().as_secs_f64());
        out
    }

    /// Runs `f` on a fresh read transaction on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let db = self.db.get().ok_or(StoreError::Unavailable)?;
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read()?;
            f(&txn)
        })
        .await
        .map_err(|e| StoreError::Db(format!("read task failed: {e}")))?
    }

    /// Records another schema version. Only for producing test fixtures of "a newer
    /// release"; nothing else may call it.
    #[doc(hidden)]
    pub async fn force_schema_version(&self, v: u64) -> Result<(), StoreError> {
        self.write(move |txn| {
            txn.open_table(META)?.insert("schema_version", v)?;
            Ok(())
        })
        .await
    }

    /// Whether the writer thread still takes requests.
    pub fn writer_running(&self) -> bool {
        !self.jobs.is_closed()
    }

    /// The schema version recorded in the database.
    pub async fn schema_version(&self) -> Result<u64, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(META)?;
            Ok(t.get("schema_version")?.map_or(0, |v| v.value()))
        })
        .await
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// For the store's own tests: appends `text` to the 1:1 chat `conv` as its first member, every
/// rule allowing it.
#[cfg(test)]
pub(super) async fn send_text(s: &Store, conv: crate::ids::ConvId, client_id: &str, text: &str) -> messages::SendOutcome {
    let crate::ids::ConvId::Direct(me, peer) = conv else { panic!("a 1:1 chat, not {conv:?}") };
    s.append_message(
        me,
        conv,
        vec![me, peer],
        client_id.into(),
        crate::protocol::Content::Text { text: text.into() },
        messages::Extras::default(),
        |_| Ok(()),
        |_| {},
    )
    .await
    .unwrap()
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_open_of_the_same_dir_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let err = Store::open(dir.path(), &StoreOptions::default()).err().unwrap();
        assert!(matches!(err, StoreError::InUse(_)), "{err}");
    }
}
