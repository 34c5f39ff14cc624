//! The group-commit writer thread: it takes write jobs from a bounded queue, applies as many as
//! are waiting in one transaction, hands the batch's answers to the completer thread once the
//! commit returned (which answers them in commit order), and after a storage failure closes the
//! database and opens it again with backoff.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase};
use tokio::sync::mpsc;

use super::batch::Batch;
use super::client_ids::{self, ClientIds};
use super::{StoreError, StoreStats, indexer};

/// What the writer runs: it applies its change to the shared transaction of the batch (or, given
/// none because the database is unavailable, applies nothing) and hands back the function that
/// answers its caller once the commit outcome is known.
pub(super) type Job = Box<dyn FnOnce(Option<&mut Batch<'_>>) -> Completion + Send>;
pub(super) type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Opens the database file; called again by the writer after a storage failure.
pub(super) type Opener = Arc<dyn Fn() -> Result<Database, redb::DatabaseError> + Send + Sync>;

/// The database that reads use: replaced by the writer when a storage failure forces a reopen,
/// and empty while it is closed. The lock is held only to clone or swap the handle.
#[derive(Default)]
pub(super) struct DbSlot(RwLock<Option<Arc<Database>>>);

impl DbSlot {
    pub(super) fn get(&self) -> Option<Arc<Database>> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub(super) fn set(&self, db: Option<Arc<Database>>) -> Option<Arc<Database>> {
        std::mem::replace(&mut *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner), db)
    }
}

/// Opens the database, turning a panic inside redb into an error: a full disk has made redb
/// panic while reopening before (redb issue 620), and a failed reopen must be retried later, not
/// take the writer thread down.
pub(super) fn open_db(opener: &Opener) -> Result<Database, redb::DatabaseError> {
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

/// A write that indexes up to `max` of the next messages for search (with the batch's own, which
/// it follows); nobody waits for its answer.
fn index_job(max: usize) -> Job {
    Box::new(move |txn| {
        if let Some(Err(e)) = txn.map(|b| indexer::index_pending_in_txn(b.txn(), max)) {
            tracing::warn!(error = %e, "cannot index new messages for search");
        }
        Box::new(|_| {})
    })
}

/// A write that moves up to `max` of the waiting client ids into their table (after the batch's
/// own writes, so that a small batch moves its own); nobody waits for its answer.
fn move_ids_job(ids: ClientIds, max: usize) -> Job {
    Box::new(move |txn| {
        if let Some(Err(e)) = txn.map(|b| ids.move_in_txn(b.txn(), max)) {
            tracing::warn!(error = %e, "cannot write client ids to their table");
        }
        Box::new(|_| {})
    })
}

/// A committed (or failed) batch's answers, for the completer thread.
pub(super) type Answers = (Vec<Completion>, Result<(), StoreError>);

/// Batches whose answers may wait for the completer thread before the writer waits for it: a
/// bound, so that a completer that falls behind slows the writer instead of growing a queue.
pub(super) const COMPLETION_QUEUE: usize = 64;

/// Runs each batch's answers in commit order: the callers' replies and the work they do right
/// after a commit (message fan-out, cache updates), off the writer thread so that the next batch
/// is applied and committed meanwhile. Returns when the writer has gone.
pub(super) fn run_completer(rx: &std::sync::mpsc::Receiver<Answers>) {
    while let Ok((done, result)) = rx.recv() {
        complete(done, &result);
    }
}

fn complete(done: Vec<Completion>, result: &Result<(), StoreError>) {
    for c in done {
        // A panicking answer (a bug in a fan-out) must not stop the answers after it.
        if std::panic::catch_unwind(AssertUnwindSafe(|| c(result.clone()))).is_err() {
            tracing::error!("a write's completion panicked");
        }
    }
}

/// The writer thread's state.
pub(super) struct Writer {
    pub(super) slot: Arc<DbSlot>,
    /// Where committed batches' answers go, in commit order.
    completions: std::sync::mpsc::SyncSender<Answers>,
    /// The database the next batch commits to; `None` after a storage failure until reopened.
    db: Option<Arc<Database>>,
    opener: Opener,
    /// What the last storage failure was, answered to writes while the database is closed.
    failure: Option<StoreError>,
    retry_at: Instant,
    backoff: Duration,
    two_phase_commit: bool,
    /// Committed messages not in the search index yet, as of the last commit (`indexer.rs`).
    search_lag: u64,
    index_inline_batch: usize,
    /// Client ids not in their table yet (`client_ids.rs`).
    client_ids: ClientIds,
}

impl Writer {
    pub(super) fn new(
        slot: Arc<DbSlot>,
        db: Arc<Database>,
        opener: Opener,
        completions: std::sync::mpsc::SyncSender<Answers>,
        two_phase_commit: bool,
        index_inline_batch: usize,
        client_ids: ClientIds,
    ) -> Writer {
        // What an earlier run left to index, if it can be read now (else the first commit tells).
        let search_lag = db.begin_read().ok().and_then(|txn| indexer::lag(&txn).ok()).unwrap_or(0);
        Writer {
            slot,
            completions,
            db: Some(db),
            opener,
            failure: None,
            retry_at: Instant::now(),
            backoff: Duration::ZERO,
            two_phase_commit,
            index_inline_batch,
            search_lag,
            client_ids,
        }
    }

    /// Whether the client ids in memory may be used: after a failed commit they are read again
    /// from what was committed.
    fn client_ids_ready(&self) -> bool {
        if !self.client_ids.is_stale() {
            return true;
        }
        let Some(db) = &self.db else { return false };
        match self.client_ids.reload(db) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the newest client ids back from the message log; sends fail until it succeeds");
                false
            }
        }
    }

    /// The writes the writer adds to a batch of `batch` writes (0: an idle moment): indexing for
    /// search and moving client ids, each when its rule says so.
    fn upkeep(&self, batch: usize) -> Vec<Job> {
        let inline = if batch == 0 { 0 } else { self.index_inline_batch };
        let mut jobs = Vec::new();
        match indexer::to_index(self.search_lag, batch, inline) {
            0 => {}
            n => jobs.push(index_job(n)),
        }
        if self.client_ids_ready() {
            match client_ids::to_move(self.client_ids.waiting(), batch, inline) {
                0 => {}
                n => jobs.push(move_ids_job(self.client_ids.clone(), n)),
            }
        }
        jobs
    }

    pub(super) fn run(&mut self, mut rx: mpsc::Receiver<Job>, max_batch: usize, stats: &StoreStats) {
        let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
        // What an earlier run left in memory only is read back from the log before any write.
        self.client_ids.mark_stale();
        self.client_ids_ready();
        loop {
            if self.db.is_none() && Instant::now() >= self.retry_at {
                self.reopen();
            }
            let first = if self.db.is_some() {
                match rx.try_recv() {
                    Ok(job) => job,
                    // Nothing waits: a moment to index and move client ids, if there is any to do.
                    Err(mpsc::error::TryRecvError::Empty) => {
                        let upkeep = self.upkeep(0);
                        if upkeep.is_empty() {
                            match rx.blocking_recv() {
                                Some(job) => job,
                                None => break,
                            }
                        } else {
                            batch.extend(upkeep);
                            self.commit_batch(&mut batch, stats);
                            continue;
                        }
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
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
            let upkeep = self.upkeep(batch.len());
            batch.extend(upkeep);
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
            let done: Vec<Completion> = batch.drain(..).map(|job| job(None)).collect();
            if let Err(std::sync::mpsc::SendError((done, result))) = self.completions.send((done, Err(failure))) {
                complete(done, &result);
            }
            return;
        };
        let mut job_panicked = false;
        let result = match db.begin_write() {
            Err(e) => Err(StoreError::from(e)),
            Ok(mut txn) => {
                txn.set_two_phase_commit(self.two_phase_commit);
                let mut shared = Batch::new(&txn);
                for job in batch.drain(..) {
                    // A panicking job leaves the transaction in an unknown state: the whole
                    // batch is abandoned rather than committing half of someone's write.
                    match std::panic::catch_unwind(AssertUnwindSafe(|| job(Some(&mut shared)))) {
                        Ok(c) => done.push(c),
                        Err(_) => job_panicked = true,
                    }
                }
                // The message tables it kept open are closed (their roots written back).
                drop(shared);
                if job_panicked {
                    tracing::error!("a write panicked; the batch of {n} writes is abandoned");
                    let _ = txn.abort();
                    self.client_ids.mark_stale();
                    Err(StoreError::Db("internal error while writing".into()))
                } else {
                    let lag = indexer::lag_in_txn(&txn);
                    let moved = client_ids::moved_upto_in_txn(&txn);
                    let committed = txn.commit().map_err(StoreError::from);
                    match (&committed, moved) {
                        (Ok(()), Ok(moved)) => {
                            self.search_lag = lag.unwrap_or(0);
                            self.client_ids.committed(moved);
                        }
                        (Ok(()), Err(_)) => {
                            self.search_lag = lag.unwrap_or(0);
                            self.client_ids.mark_stale();
                        }
                        (Err(_), _) => self.client_ids.mark_stale(),
                    }
                    committed
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
        // Answered before any reopen, so that nobody waits on it: handed to the completer thread,
        // which runs the answers (and the fan-out they carry) in commit order while this thread
        // goes on with the next batch.
        if let Err(std::sync::mpsc::SendError((done, result))) = self.completions.send((done, result)) {
            // The completer is gone (it only stops after the writer): answer here.
            complete(done, &result);
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use redb::{Database, ReadableTable};

    use super::Opener;
    use crate::store::tables::META;
    use crate::store::{DB_FILE, Store, StoreError, StoreOptions};

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

    /// A store on [`FillableDisk`] in `dir`, and the flag that makes its disk full.
    fn open_on_fillable_disk(dir: &std::path::Path, opts: &StoreOptions) -> (Store, Arc<std::sync::atomic::AtomicBool>) {
        let full = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (path, flag) = (dir.join(DB_FILE), full.clone());
        let opener: Opener = Arc::new(move || {
            let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
            let disk = FillableDisk { inner: redb::backends::FileBackend::new(file)?, full: flag.clone() };
            Database::builder().create_with_backend(disk)
        });
        (Store::open_with(dir, opts, opener).unwrap(), full)
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
        let (s, full) = open_on_fillable_disk(dir.path(), &StoreOptions::default());
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

    /// A fallible send as user 1 to user 2.
    async fn send(s: &Store, client_id: &str) -> Result<crate::store::SendOutcome, StoreError> {
        let (me, peer) = (crate::ids::UserId(1), crate::ids::UserId(2));
        let conv = crate::ids::ConvId::direct(me, peer).unwrap();
        let text = crate::protocol::Content::Text { text: client_id.into() };
        let extras = crate::store::messages::Extras::default();
        Ok(s.append_message(me, conv, vec![me, peer], client_id.into(), text, extras, |_| Ok(()), |_| {}).await?.unwrap())
    }

    #[tokio::test]
    async fn a_send_whose_commit_failed_is_not_taken_for_a_resend_later() {
        let dir = tempfile::tempdir().unwrap();
        // Client ids wait in memory after every batch (`client_ids.rs`).
        let (s, full) = open_on_fillable_disk(dir.path(), &StoreOptions { index_inline_batch: 0, ..StoreOptions::default() });
        assert_eq!(send(&s, "a").await.unwrap().message.seq, 1);
        // Free pages in the file, so that the send's job stores its message without growing the
        // file and only its commit's writes fail.
        put(&s, "filler".into()).await.unwrap();
        s.write(|txn| {
            txn.open_table(TEST_TABLE)?.remove("filler")?;
            Ok(())
        })
        .await
        .unwrap();
        put(&s, "later".into()).await.unwrap();
        full.store(true, Ordering::SeqCst);
        let refused = send(&s, "b").await;
        assert!(matches!(refused, Err(StoreError::Full | StoreError::Unavailable)), "{refused:?}");
        full.store(false, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        let stored = loop {
            match send(&s, "b").await {
                Ok(out) => break out,
                Err(e) => assert!(e.is_storage_failure() && Instant::now() < deadline, "{e}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(!stored.duplicate, "the refused send was never stored, so its retry is a new message");
        assert_eq!(stored.message.seq, 2);
        assert!(send(&s, "a").await.unwrap().duplicate, "what was committed is still found");
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
