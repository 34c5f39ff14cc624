//! The durable store: one redb file in the data dir, typed tables, and the group-commit writer.
//!
//! Architecture invariants:
//! - Every write goes through [`Store::write`]: one writer thread takes requests from a bounded
//!   queue, applies as many as are waiting inside one `Durability::Immediate` transaction, and
//!   answers each request only after that transaction's commit has returned.
//! - A write closure that returns `Err` must not have written anything: it checks before it
//!   writes, because it shares its transaction with other callers' writes.
//! - Reads run in `spawn_blocking` on their own read transaction, never on the async workers.
//! - Only this folder knows table layouts; features call the `impl Store` methods of
//!   `users.rs`, `sessions.rs` and `messages.rs`.

pub mod admin;
pub mod calls;
pub mod media;
pub mod messages;
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
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use tables::META;

/// The schema this build writes. Opening a newer one is refused; older ones are migrated.
pub const SCHEMA_VERSION: u64 = 1;
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
}

macro_rules! db_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.to_string()) }
        }
    )*};
}
db_error_from!(redb::Error, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError, redb::DatabaseError);

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// What the writer runs: it applies its change to the shared transaction and hands back the
/// function that answers its caller once the commit outcome is known.
type Job = Box<dyn FnOnce(&WriteTransaction) -> Completion + Send>;
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

/// A cheap-to-clone handle on the database and its writer.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
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
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { write_queue: 8192, max_batch: 2048 }
    }
}

impl Store {
    /// Opens (or creates) the database in `data_dir`, runs migrations, and starts the writer
    /// thread. The writer stops when every handle is dropped.
    pub fn open(data_dir: &Path, opts: &StoreOptions) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Db(format!("cannot create {}: {e}", data_dir.display())))?;
        let path = data_dir.join(DB_FILE);
        let db = Database::builder().create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse(data_dir.to_path_buf()),
            other => StoreError::Db(format!("cannot open {}: {other}", path.display())),
        })?;
        migrate(&db)?;
        let db = Arc::new(db);
        let (jobs, rx) = mpsc::channel(opts.write_queue);
        let stats = Arc::new(StoreStats::default());
        let (wdb, wstats, max_batch) = (db.clone(), stats.clone(), opts.max_batch);
        let (done_tx, done) = tokio::sync::watch::channel(false);
        std::thread::Builder::new()
            .name("chinwag-writer".into())
            .spawn(move || {
                writer_loop(&wdb, rx, max_batch, &wstats);
                drop(wdb);
                let _ = done_tx.send(true);
            })
            .map_err(|e| StoreError::Db(format!("cannot start the writer thread: {e}")))?;
        Ok(Store { db, jobs, done, stats, groups: social::GroupCache::default() })
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
            let applied = f(txn);
            Box::new(move |committed: Result<(), StoreError>| {
                let outcome = match (applied, committed) {
                    (Ok(v), Ok(())) => {
                        after(&v);
                        Ok(v)
                    }
                    (Err(e), _) | (Ok(_), Err(e)) => Err(e),
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
        let db = self.db.clone();
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
                    // Version 1 is the first layout: create every table so that readers never
                    // meet a missing one.
                    0 => tables::create_all(&txn)?,
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

fn writer_loop(db: &Database, mut rx: mpsc::Receiver<Job>, max_batch: usize, stats: &StoreStats) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        let started = std::time::Instant::now();
        let mut done: Vec<Completion> = Vec::with_capacity(batch.len());
        let result = match db.begin_write() {
            Err(e) => Err(StoreError::from(e)),
            Ok(mut txn) => {
                txn.set_two_phase_commit(true);
                let mut panicked = false;
                for job in batch.drain(..) {
                    // A panicking job leaves the transaction in an unknown state: the whole
                    // batch is abandoned rather than committing half of someone's write.
                    match std::panic::catch_unwind(AssertUnwindSafe(|| job(&txn))) {
                        Ok(c) => done.push(c),
                        Err(_) => panicked = true,
                    }
                }
                if panicked {
                    tracing::error!("a write panicked; the batch of {n} writes is abandoned");
                    let _ = txn.abort();
                    Err(StoreError::Db("internal error while writing".into()))
                } else {
                    txn.commit().map_err(StoreError::from)
                }
            }
        };
        batch.clear();
        if let Err(e) = &result {
            tracing::error!(error = %e, writes = n, "commit failed");
        } else {
            stats.commits.fetch_add(1, Ordering::Relaxed);
            stats.writes.fetch_add(n, Ordering::Relaxed);
            #[allow(clippy::cast_precision_loss)]
            stats.batch_sizes.observe(n as f64);
            stats.commit_seconds.observe(started.elapsed().as_secs_f64());
        }
        for c in done {
            c(result.clone());
        }
    }
    tracing::debug!("writer stopped");
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
