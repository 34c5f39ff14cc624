//! The durable store: one redb file in the data dir, typed tables, and the group-commit writer.
//!
//! Architecture invariants:
//! - Every write goes through [`Store::write`]: one writer thread takes requests from a bounded
//!   queue, applies as many as are waiting inside one `Durability::Immediate` transaction, and
//!   answers each request only after that transaction's commit has returned.
//! - A write closure that returns `Err` must not have written anything: it checks before it
//!   writes, because it shares its transaction with other callers' writes.
//! - Reads run in `spawn_blocking` on their own read transaction, never on the async workers.
//! - A failed commit (a full disk, an I/O error) is answered as a failure to every write of its
//!   batch, never as success; redb then refuses every later operation on that handle, so the
//!   writer closes it and opens the file again (with backoff) until it works, answering writes
//!   with [`StoreError::Full`] or [`StoreError::Unavailable`] meanwhile.
//! - Only this folder knows table layouts; features call the `impl Store` methods of
//!   `users.rs`, `sessions.rs` and `messages.rs`.

pub mod admin;
pub mod calls;
pub mod facts;
pub mod media;
pub mod messages;
pub mod push;
pub mod search;
pub mod sessions;
pub mod snapshot;
pub mod social;
mod tables;
pub mod users;

pub use messages::SendOutcome;
pub use users::{NewUser, ProfilePatch, UserRecord};

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use tables::META;

/// The schema this build writes. Opening a newer one is refused; older ones are migrated.
pub const SCHEMA_VERSION: u64 = 3;
const DB_FILE: &str = "chinwag.redb";

#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the data dir {0} is in use by another Chinwag process")]
    InUse(PathBuf),
    #[error("the data dir was written by a newer Chinwag (schema {found}, this build knows {known}); upgrade Chinwag")]
    TooNew { found: u64, known: u64 },
    #[error("database error: {0}")]
    Db(String),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error("the store is shutting down")]
    Closed,
    /// The disk holding the data dir is full (or a file size limit was reached); nothing of the
    /// failed write was stored. Writes resume by themselves once there is room.
    #[error("the disk holding the data dir is full; nothing was written")]
    Full,
    /// An earlier storage failure made the database unusable and it is being opened again.
    #[error("the database is unavailable after a storage failure; it is being reopened")]
    Unavailable,
}

impl StoreError {
    /// Whether the failure is the storage's (a full disk, a failed reopen) rather than the
    /// request's, so that trying again later may work.
    pub fn is_storage_failure(&self) -> bool {
        matches!(self, StoreError::Full | StoreError::Unavailable)
    }
}

/// Out of space: the disk, a quota, or a file size limit.
fn is_disk_full(io: &std::io::Error) -> bool {
    use std::io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
    matches!(io.kind(), StorageFull | QuotaExceeded | FileTooLarge)
}

/// A full disk and a latched earlier I/O failure get their own variants; everything else is
/// reported with redb's text.
fn from_storage(e: &redb::StorageError) -> Option<StoreError> {
    match e {
        redb::StorageError::Io(io) if is_disk_full(io) => Some(StoreError::Full),
        redb::StorageError::PreviousIo => Some(StoreError::Unavailable),
        _ => None,
    }
}

macro_rules! db_error_from {
    ($($t:ty => $storage:path),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                match &e {
                    $storage(s) => from_storage(s).unwrap_or_else(|| StoreError::Db(e.to_string())),
                    _ => StoreError::Db(e.to_string()),
                }
            }
        }
    )*};
}
db_error_from!(
    redb::TransactionError => redb::TransactionError::Storage,
    redb::TableError => redb::TableError::Storage,
    redb::CommitError => redb::CommitError::Storage,
    redb::DatabaseError => redb::DatabaseError::Storage
);

impl From<redb::StorageError> for StoreError {
    fn from(e: redb::StorageError) -> Self {
        from_storage(&e).unwrap_or_else(|| StoreError::Db(e.to_string()))
    }
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        match &e {
            redb::Error::Io(io) if is_disk_full(io) => StoreError::Full,
            redb::Error::PreviousIo => StoreError::Unavailable,
            _ => StoreError::Db(e.to_string()),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// What the writer runs: it applies its change to the shared transaction (or, given none because
/// the database is unavailable, applies nothing) and hands back the function that answers its
/// caller once the commit outcome is known.
type Job = Box<dyn FnOnce(Option<&WriteTransaction>) -> Completion + Send>;
type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

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

/// Opens the database file; called again by the writer after a storage failure.
type Opener = Arc<dyn Fn() -> Result<Database, redb::DatabaseError> + Send + Sync>;

/// The database that reads use: replaced by the writer when a storage failure forces a reopen,
/// and empty while it is closed. The lock is held only to clone or swap the handle.
#[derive(Default)]
struct DbSlot(RwLock<Option<Arc<Database>>>);

impl DbSlot {
    fn get(&self) -> Option<Arc<Database>> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn set(&self, db: Option<Arc<Database>>) -> Option<Arc<Database>> {
        std::mem::replace(&mut *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner), db)
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
}

/// Options for [`Store::open`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub write_queue: usize,
    pub max_batch: usize,
    /// redb's page cache, bytes (its own default is 1 GiB, which a small server would fill
    /// with whatever it once read or wrote).
    pub cache_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { write_queue: 8192, max_batch: 2048, cache_bytes: 128 << 20 }
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
        let mut writer =
            Writer { slot: slot.clone(), db: Some(db), opener, failure: None, retry_at: Instant::now(), backoff: Duration::ZERO };
        let (wstats, max_batch) = (stats.clone(), opts.max_batch);
        let (done_tx, done) = tokio::sync::watch::channel(false);
        std::thread::Builder::new()
            .name("chinwag-writer".into())
            .spawn(move || {
                writer.run(rx, max_batch, &wstats);
                // Let go of the file: readers' handles are gone with the `Store`s.
                writer.slot.set(None);
                drop(writer);
                let _ = done_tx.send(true);
            })
            .map_err(|e| StoreError::Db(format!("cannot start the writer thread: {e}")))?;
        Ok(Store { db: slot, jobs, done, stats, groups: social::GroupCache::default() })
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

    /// Like [`Store::write`], and `after` runs on the writer thread right after a successful
    /// commit, in commit order. Fan-out that must keep commit order (message delivery) goes here;
    /// it must not block.
    pub async fn write_then<T, F, A>(&self, f: F, after: A) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
        A: FnOnce(&T) + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let asked = std::time::Instant::now();
        let job: Job = Box::new(move |txn| {
            let applied = txn.map(f);
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

/// Brings an older database up to [`SCHEMA_VERSION`] and refuses a newer one.
fn migrate(db: &Database) -> Result<(), StoreError> {
    let mut txn = db.begin_write()?;
    txn.set_two_phase_commit(true);
    let found = {
        let t = txn.open_table(META)?;
        t.get("schema_version")?.map(|v| v.value())
    };
    match found {
        Some(v) if v > SCHEMA_VERSION => {
            txn.abort()?;
            return Err(StoreError::TooNew { found: v, known: SCHEMA_VERSION });
        }
        Some(v) if v == SCHEMA_VERSION => {}
        // A fresh database, or an older one: each step takes version N to N+1.
        from => {
            let mut v = from.unwrap_or(0);
            while v < SCHEMA_VERSION {
                match v {
                    // Version 1 is the first layout, and version 3 added the Web Push tables:
                    // create every table that is missing, so that readers never meet one.
                    0 | 2 => tables::create_all(&txn)?,
                    1 => messages::migrate_file_shares(&txn)?,
                    _ => unreachable!("no migration from schema {v}"),
                }
                v += 1;
            }
            txn.open_table(META)?.insert("schema_version", SCHEMA_VERSION)?;
        }
    }
    txn.commit()?;
    Ok(())
}

/// Opens the database, turning a panic inside redb into an error: a full disk has made redb
/// panic while reopening before (redb issue 620), and a failed reopen must be retried later, not
/// take the writer thread down.
fn open_db(opener: &Opener) -> Result<Database, redb::DatabaseError> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| opener())) {
        Ok(r) => r,
        Err(_) => {
            Err(redb::DatabaseError::Storage(redb::StorageError::Io(std::io::Error::other("redb panicked while opening the database"))))
        }
    }
}

/// Longest wait between two attempts to reopen the database after a storage failure.
const MAX_REOPEN_BACKOFF: Duration = Duration::from_secs(2);
/// How often a writer with a closed database looks for new writes to refuse.
const BROKEN_POLL: Duration = Duration::from_millis(20);

/// The writer thread's state.
struct Writer {
    slot: Arc<DbSlot>,
    /// The database the next batch commits to; `None` after a storage failure until reopened.
    db: Option<Arc<Database>>,
    opener: Opener,
    /// What the last storage failure was, answered to writes while the database is closed.
    failure: Option<StoreError>,
    retry_at: Instant,
    backoff: Duration,
}

impl Writer {
    fn run(&mut self, mut rx: mpsc::Receiver<Job>, max_batch: usize, stats: &StoreStats) {
        let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
        loop {
            if self.db.is_none() && Instant::now() >= self.retry_at {
                self.reopen();
            }
            let first = if self.db.is_some() {
                match rx.blocking_recv() {
                    Some(job) => job,
                    None => break,
                }
            } else {
                // Closed: refuse what comes in at once, and wake up to try reopening again.
                match rx.try_recv() {
                    Ok(job) => job,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        std::thread::sleep(
                            BROKEN_POLL.min(self.retry_at.saturating_duration_since(Instant::now())).max(Duration::from_millis(1)),
                        );
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            };
            batch.push(first);
            while batch.len() < max_batch {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.commit_batch(&mut batch, stats);
        }
        tracing::debug!("writer stopped");
    }

    fn commit_batch(&mut self, batch: &mut Vec<Job>, stats: &StoreStats) {
        let n = batch.len() as u64;
        let started = Instant::now();
        let mut done: Vec<Completion> = Vec::with_capacity(batch.len());
        let Some(db) = self.db.clone() else {
            let failure = self.failure.clone().unwrap_or(StoreError::Unavailable);
            for job in batch.drain(..) {
                job(None)(Err(failure.clone()));
            }
            return;
        };
        let mut job_panicked = false;
        let result = match db.begin_write() {
            Err(e) => Err(StoreError::from(e)),
            Ok(mut txn) => {
                txn.set_two_phase_commit(true);
                for job in batch.drain(..) {
                    // A panicking job leaves the transaction in an unknown state: the whole
                    // batch is abandoned rather than committing half of someone's write.
                    match std::panic::catch_unwind(AssertUnwindSafe(|| job(Some(&txn)))) {
                        Ok(c) => done.push(c),
                        Err(_) => job_panicked = true,
                    }
                }
                if job_panicked {
                    tracing::error!("a write panicked; the batch of {n} writes is abandoned");
                    let _ = txn.abort();
                    Err(StoreError::Db("internal error while writing".into()))
                } else {
                    txn.commit().map_err(StoreError::from)
                }
            }
        };
        // Jobs that never ran (begin_write failed) are answered as well.
        for job in batch.drain(..) {
            done.push(job(None));
        }
        drop(db);
        match &result {
            Ok(()) => {
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats.writes.fetch_add(n, Ordering::Relaxed);
                #[allow(clippy::cast_precision_loss)]
                stats.batch_sizes.observe(n as f64);
                stats.commit_seconds.observe(started.elapsed().as_secs_f64());
                self.backoff = Duration::ZERO;
            }
            Err(e) if job_panicked => tracing::error!(error = %e, writes = n, "commit abandoned"),
            Err(e) => {
                // redb latches an I/O failure: every later transaction on this handle fails
                // until the file is opened again.
                tracing::error!(error = %e, writes = n, "commit failed; none of its writes were stored; reopening the database");
                self.failure = Some(if e.is_storage_failure() { e.clone() } else { StoreError::Unavailable });
                self.db = None;
                self.retry_at = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).clamp(Duration::from_millis(50), MAX_REOPEN_BACKOFF);
            }
        }
        // Answered before any reopen, so that nobody waits on it.
        for c in done {
            c(result.clone());
        }
    }

    /// Closes the failed database (once in-flight reads have let go of it) and opens the file
    /// again. On failure the writer stays closed and tries again after the backoff.
    fn reopen(&mut self) {
        let Some(old) = self.slot.set(None) else {
            return self.open_again();
        };
        // Reads on the failed handle end quickly with an error; give them a moment to let go.
        let mut old = old;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match Arc::try_unwrap(old) {
                Ok(db) => {
                    // redb reports the latched failure again on close; the next open recovers.
                    if let Err(e) = db.close() {
                        tracing::debug!(error = %e, "closing the failed database");
                    }
                    break;
                }
                Err(shared) if Instant::now() < deadline => {
                    old = shared;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(shared) => {
                    tracing::warn!("reads still hold the failed database; reopening later");
                    self.slot.set(Some(shared));
                    self.retry_at = Instant::now() + self.backoff;
                    return;
                }
            }
        }
        self.open_again();
    }

    fn open_again(&mut self) {
        match open_db(&self.opener) {
            Ok(db) => {
                let db = Arc::new(db);
                self.slot.set(Some(db.clone()));
                self.db = Some(db);
                self.failure = None;
                tracing::warn!("database reopened after a storage failure; writes resume");
            }
            Err(e) => {
                tracing::error!(error = %e, "reopening the database failed; writes are refused until it succeeds");
                self.failure = Some(match StoreError::from(e) {
                    StoreError::Full => StoreError::Full,
                    _ => self.failure.clone().unwrap_or(StoreError::Unavailable),
                });
                self.retry_at = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).clamp(Duration::from_millis(50), MAX_REOPEN_BACKOFF);
            }
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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

    #[tokio::test]
    async fn a_newer_schema_is_refused_and_the_current_one_reopens() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
            assert_eq!(s.schema_version().await.unwrap(), SCHEMA_VERSION);
            s.write(|txn| {
                txn.open_table(META)?.insert("schema_version", SCHEMA_VERSION + 1)?;
                Ok(())
            })
            .await
            .unwrap();
        }
        // The writer thread holds the database until it sees its queue close.
        let err = loop {
            match Store::open(dir.path(), &StoreOptions::default()) {
                Err(StoreError::InUse(_)) => tokio::task::yield_now().await,
                other => break other.err().unwrap(),
            }
        };
        assert!(matches!(err, StoreError::TooNew { .. }), "{err}");
        assert!(err.to_string().contains("newer Chinwag"));
    }

    #[tokio::test]
    async fn schema_1_files_are_shared_per_message_after_the_upgrade() {
        use crate::ids::{ConvId, UserId};
        use crate::protocol::{Content, Message, Recall};
        let dir = tempfile::tempdir().unwrap();
        let conv: ConvId = "d:1:2".parse().unwrap();
        let (kept, recalled) = ("a".repeat(32), "b".repeat(32));
        {
            // A schema 1 database: files shared per conversation, one of them by a message
            // recalled since.
            let db = Database::create(dir.path().join(DB_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            tables::create_all(&txn).unwrap();
            txn.delete_table(tables::FILE_MSGS).unwrap();
            txn.delete_table(tables::PUSH_SUBS).unwrap();
            txn.delete_table(tables::PUSH_PREFS).unwrap();
            let key = conv.key();
            let mut shared = txn.open_table(tables::FILE_CONVS).unwrap();
            let mut msgs = txn.open_table(tables::MESSAGES).unwrap();
            let contents = [
                serde_json::json!({"kind":"image","file_id":kept}),
                serde_json::json!({"kind":"file","file_id":recalled}),
                serde_json::json!({"kind":"text","text":"hi"}),
            ];
            for (i, c) in contents.into_iter().enumerate() {
                let seq = i as u64 + 1;
                let mut m = Message::new(conv, seq, UserId(1), format!("c{seq}"), 1, serde_json::from_value::<Content>(c).unwrap());
                if let Some(f) = media::file_of(&m.content) {
                    shared.insert((f, key.0, key.1), ()).unwrap();
                }
                if seq == 2 {
                    m.content = Content::Recalled {};
                    m.recalled = Some(Recall { by: UserId(1), at: 2 });
                }
                msgs.insert((key.0, key.1, seq), serde_json::to_vec(&m).unwrap().as_slice()).unwrap();
            }
            drop((shared, msgs));
            txn.open_table(META).unwrap().insert("schema_version", 1).unwrap();
            txn.commit().unwrap();
        }
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        assert_eq!(s.schema_version().await.unwrap(), SCHEMA_VERSION);
        assert!(s.push_subscribers().await.unwrap().is_empty(), "schema 3's push tables were made");
        assert_eq!(s.file_audience(kept).await.unwrap(), (false, vec![conv]));
        assert_eq!(s.file_audience(recalled).await.unwrap(), (false, vec![]), "its message was recalled before the upgrade");
        let old_table = s.read(|txn| Ok(txn.open_table(tables::FILE_CONVS).is_ok())).await.unwrap();
        assert!(!old_table, "the schema 1 table is gone");
        s.close().await;
    }

    const TEST_TABLE: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("test_values");

    /// The database file through redb's own file backend, except that every write fails with
    /// "no space left on device" while `full` is set.
    #[derive(Debug)]
    struct FillableDisk {
        inner: redb::backends::FileBackend,
        full: Arc<std::sync::atomic::AtomicBool>,
    }

    impl FillableDisk {
        fn check(&self) -> std::io::Result<()> {
            if self.full.load(Ordering::SeqCst) { Err(std::io::Error::from(std::io::ErrorKind::StorageFull)) } else { Ok(()) }
        }
    }

    type Bound = std::ops::Bound<u64>;
    impl redb::StorageBackend for FillableDisk {
        fn len(&self) -> std::io::Result<u64> {
            self.inner.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
            self.inner.read(offset, out)
        }
        fn set_len(&self, len: u64) -> std::io::Result<()> {
            self.check()?;
            self.inner.set_len(len)
        }
        fn sync_data(&self) -> std::io::Result<()> {
            self.inner.sync_data()
        }
        fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
            self.check()?;
            self.inner.write(offset, data)
        }
        fn close(&self) -> std::io::Result<()> {
            self.inner.close()
        }
        fn try_lock_range(&self, a: Bound, b: Bound) -> Result<bool, redb::BackendError> {
            self.inner.try_lock_range(a, b)
        }
        fn try_lock_shared_range(&self, a: Bound, b: Bound) -> Result<bool, redb::BackendError> {
            self.inner.try_lock_shared_range(a, b)
        }
        fn lock_range(&self, a: Bound, b: Bound) -> Result<(), redb::BackendError> {
            self.inner.lock_range(a, b)
        }
        fn lock_shared_range(&self, a: Bound, b: Bound) -> Result<(), redb::BackendError> {
            self.inner.lock_shared_range(a, b)
        }
        fn unlock_range(&self, a: Bound, b: Bound) -> Result<(), redb::BackendError> {
            self.inner.unlock_range(a, b)
        }
        fn query_lock_range(&self, a: Bound, b: Bound) -> Result<bool, redb::BackendError> {
            self.inner.query_lock_range(a, b)
        }
    }

    async fn put(s: &Store, key: String) -> Result<(), StoreError> {
        s.write(move |txn| {
            // Big values, so that commits need new pages.
            txn.open_table(TEST_TABLE)?.insert(key.as_str(), "v".repeat(20_000).as_str())?;
            Ok(())
        })
        .await
    }

    #[tokio::test]
    async fn a_full_disk_refuses_writes_clearly_and_they_resume_when_space_returns() {
        let dir = tempfile::tempdir().unwrap();
        let full = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (path, flag) = (dir.path().join(DB_FILE), full.clone());
        let opener: Opener = Arc::new(move || {
            let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
            let disk = FillableDisk { inner: redb::backends::FileBackend::new(file)?, full: flag.clone() };
            Database::builder().create_with_backend(disk)
        });
        let s = Store::open_with(dir.path(), &StoreOptions::default(), opener).unwrap();
        for i in 0..5 {
            put(&s, format!("before{i}")).await.unwrap();
        }

        full.store(true, Ordering::SeqCst);
        // Every write is refused as "full" (or "unavailable" while the writer reopens), never
        // reported as stored; the writer keeps answering.
        let mut refusals = Vec::new();
        for i in 0..20 {
            refusals.push(put(&s, format!("during{i}")).await);
        }
        assert!(refusals.iter().all(|r| matches!(r, Err(StoreError::Full | StoreError::Unavailable))), "{refusals:?}");
        assert!(refusals.iter().any(|r| matches!(r, Err(StoreError::Full))), "the cause is named: {refusals:?}");
        assert!(s.writer_running());

        full.store(false, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match put(&s, "after".into()).await {
                Ok(()) => break,
                Err(e) => assert!(e.is_storage_failure() && Instant::now() < deadline, "writes did not resume: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let keys = |s: Store| async move {
            s.read(|txn| {
                let t = txn.open_table(TEST_TABLE)?;
                let mut keys = Vec::new();
                for e in t.iter()? {
                    keys.push(e?.0.value().to_owned());
                }
                Ok(keys)
            })
            .await
            .unwrap()
        };
        let want = ["after", "before0", "before1", "before2", "before3", "before4"];
        assert_eq!(keys(s.clone()).await, want, "what was acknowledged is there; nothing refused is");
        s.close().await;
        // And it is all still there after a clean reopen through the ordinary path.
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        assert_eq!(keys(s.clone()).await, want);
    }

    #[tokio::test]
    async fn failed_writes_do_not_disturb_their_batch_mates() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..200u64 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.write(move |txn| {
                    if i % 2 == 0 {
                        return Err(StoreError::Corrupt("refused".into()));
                    }
                    txn.open_table(META)?.insert(format!("k{i}").as_str(), i)?;
                    Ok(i)
                })
                .await
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap().is_ok(), i % 2 == 1);
        }
        let n = s.read(|txn| Ok(txn.open_table(META)?.iter()?.count())).await.unwrap();
        assert_eq!(n, 100 + 1, "100 odd keys and the schema version");
        assert!(s.stats.commits.load(Ordering::Relaxed) < 200, "writes were grouped");
    }
}
