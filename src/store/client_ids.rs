//! The client-id index (`CLIENT_IDS`), written behind the messages when the server is busy. It
//! answers a resend with the message the first send stored, so a send must find every committed
//! (sender, client id) at once. But its keys are placed by sender, so a commit of a few hundred
//! messages from as many senders dirtied a page per sender: a fifth of the writer's time per
//! message (docs/benchmarks.md). So the writer keeps the newest entries in memory
//! ([`ClientIds`]) and moves them into the table later, many at a time and in key order: a
//! small batch (low load) still writes its own in its commit, a large batch leaves them in memory
//! and the writer moves them when idle, or once 20,000 wait. (Moving only whole chunks of 5,000
//! pays more per entry, but each such commit held up the sends behind it: delivery p99 at 5,000
//! msg/s went from ~10 to ~30 ms.)
//!
//! "Moved" is one number in `META`, as for the search index (`indexer.rs`): every message of the
//! log numbered up to it has its entry in the table; the entries of those after it are in memory,
//! and are read back from the log (which holds each message's sender and client id) when the
//! store opens, or after a commit failed and the memory may hold what it never committed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use serde::Deserialize;

use super::StoreError;
use super::log::MsgKey;
use super::tables::{CLIENT_IDS, MESSAGE_LOG, META};
use crate::ids::{ConvId, UserId};

/// `META` key: the highest message-log number whose client id is in `CLIENT_IDS`.
pub(super) const MOVED_UPTO: &str = "client_ids_upto";
/// Once this many entries wait in memory, a large batch's commit moves [`MOVE_CHUNK`] of them.
pub(super) const MAX_WAITING: usize = 20_000;
/// Entries one commit moves at most: a few milliseconds of writing, so that a send arriving
/// meanwhile does not wait long.
pub(super) const MOVE_CHUNK: usize = 5_000;

/// How many waiting entries the writer moves into the table in the commit it is about to make,
/// given how many wait, the `batch` of writes it holds (0: none waits) and the largest batch
/// whose entries go into the table in its own commit.
pub(super) fn to_move(waiting: usize, batch: usize, inline_batch: usize) -> usize {
    match batch {
        // Idle: everything that waits, a chunk at a time.
        0 => waiting.min(MOVE_CHUNK),
        // A small batch (low load) writes its own entries, as before there was a memory.
        b if b <= inline_batch => MOVE_CHUNK,
        _ if waiting > MAX_WAITING => MOVE_CHUNK,
        _ => 0,
    }
}

/// One entry not in the table yet.
struct Waiting {
    no: u64,
    sender: u64,
    client_id: Box<str>,
    key: MsgKey,
}

#[derive(Default)]
struct Tail {
    /// In log order (the writer appends in that order).
    order: VecDeque<Waiting>,
    by_id: HashMap<(u64, Box<str>), MsgKey>,
    /// Set when a commit failed: what is in memory may not have been committed.
    stale: bool,
}

/// The entries of `CLIENT_IDS` that are still in memory. Only the writer thread uses it (inside
/// its jobs and between its commits); the lock is never contended.
#[derive(Clone, Default)]
pub struct ClientIds(Arc<Mutex<Tail>>);

/// What a message's log entry says of its client id.
#[derive(Deserialize)]
struct Ids {
    conv: ConvId,
    seq: u64,
    sender: UserId,
    client_id: String,
}

impl ClientIds {
    fn lock(&self) -> MutexGuard<'_, Tail> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where the message `sender` stored under `client_id` is, as this transaction sees it.
    pub(super) fn get(
        &self,
        table: &impl ReadableTable<(u64, &'static str), MsgKey>,
        sender: UserId,
        client_id: &str,
    ) -> Result<Option<MsgKey>, StoreError> {
        {
            let tail = self.lock();
            if tail.stale {
                return Err(StoreError::Db("the client-id index was not reloaded after a failed commit".into()));
            }
            if let Some(k) = tail.by_id.get(&(sender.0, Box::from(client_id))) {
                return Ok(Some(*k));
            }
        }
        Ok(table.get((sender.0, client_id))?.map(|v| v.value()))
    }

    /// Records the client id of the message just appended to the log as number `no`.
    pub(super) fn record(&self, no: u64, sender: UserId, client_id: &str, key: MsgKey) {
        let mut tail = self.lock();
        tail.by_id.insert((sender.0, Box::from(client_id)), key);
        tail.order.push_back(Waiting { no, sender: sender.0, client_id: client_id.into(), key });
    }

    /// How many entries wait in memory.
    pub(super) fn waiting(&self) -> usize {
        self.lock().order.len()
    }

    /// Writes the `max` oldest waiting entries into the table, in key order, and records how far
    /// the table now reaches. They stay in memory until [`ClientIds::committed`].
    pub(super) fn move_in_txn(&self, txn: &WriteTransaction, max: usize) -> Result<(), StoreError> {
        let tail = self.lock();
        let mut chunk: Vec<&Waiting> = tail.order.iter().take(max).collect();
        let Some(last) = chunk.last().map(|w| w.no) else { return Ok(()) };
        chunk.sort_unstable_by(|a, b| (a.sender, &a.client_id).cmp(&(b.sender, &b.client_id)));
        let mut table = txn.open_table(CLIENT_IDS)?;
        for w in chunk {
            table.insert((w.sender, &*w.client_id), w.key)?;
        }
        txn.open_table(META)?.insert(MOVED_UPTO, last)?;
        Ok(())
    }

    /// After a commit: forgets the entries the table now holds (those numbered up to what the
    /// commit recorded).
    pub(super) fn committed(&self, upto: u64) {
        let mut tail = self.lock();
        while tail.order.front().is_some_and(|w| w.no <= upto) {
            if let Some(w) = tail.order.pop_front() {
                tail.by_id.remove(&(w.sender, w.client_id));
            }
        }
    }

    /// After a failed commit: the memory is rebuilt before the next write reads it.
    pub(super) fn mark_stale(&self) {
        self.lock().stale = true;
    }

    pub(super) fn is_stale(&self) -> bool {
        self.lock().stale
    }

    /// Rebuilds the memory from the committed log: the client id of every message after the
    /// ones the table holds.
    pub(super) fn reload(&self, db: &redb::Database) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let txn = db.begin_read()?;
        let upto = moved_upto(&txn.open_table(META)?)?;
        let mut fresh = Tail::default();
        for entry in txn.open_table(MESSAGE_LOG)?.range(upto + 1..)? {
            let (no, v) = entry?;
            let ids: Ids = match serde_json::from_slice(super::log::json_of(v.value())) {
                Ok(ids) => ids,
                Err(e) => {
                    // As the search index does: one unreadable message must not stop every send.
                    tracing::warn!(message = no.value(), error = %e, "a stored message cannot be read; its client id is not kept");
                    continue;
                }
            };
            let (a, b) = ids.conv.key();
            let client_id: Box<str> = ids.client_id.into();
            fresh.by_id.insert((ids.sender.0, client_id.clone()), (a, b, ids.seq));
            fresh.order.push_back(Waiting { no: no.value(), sender: ids.sender.0, client_id, key: (a, b, ids.seq) });
        }
        if !fresh.order.is_empty() {
            tracing::info!(
                client_ids = fresh.order.len(),
                ms = started.elapsed().as_millis(),
                "read the newest client ids back from the message log"
            );
        }
        *self.lock() = fresh;
        Ok(())
    }
}

fn moved_upto(meta: &impl ReadableTable<&'static str, u64>) -> Result<u64, StoreError> {
    Ok(meta.get(MOVED_UPTO)?.map_or(0, |v| v.value()))
}

/// How far the table reaches, as a transaction that may have moved entries sees it.
pub(super) fn moved_upto_in_txn(txn: &WriteTransaction) -> Result<u64, StoreError> {
    moved_upto(&txn.open_table(META)?)
}

/// Schema 5 to 6: every message stored so far has its entry in the table.
pub(super) fn mark_all_moved(txn: &WriteTransaction) -> Result<(), StoreError> {
    if let Some(last) = txn.open_table(MESSAGE_LOG)?.last()?.map(|(k, _)| k.value()) {
        txn.open_table(META)?.insert(MOVED_UPTO, last)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use redb::ReadableTableMetadata;

    use super::*;
    use crate::store::{Store, StoreOptions, send_text};

    async fn in_table(s: &Store) -> u64 {
        s.read(|txn| Ok(txn.open_table(CLIENT_IDS)?.len()?)).await.unwrap()
    }

    #[test]
    fn small_batches_write_their_own_large_ones_leave_them_in_memory_until_idle_or_far_behind() {
        let to_move = |waiting, batch| to_move(waiting, batch, 64);
        assert_eq!(to_move(0, 1), MOVE_CHUNK, "low load: the batch's own ids go into the table with it");
        assert_eq!(to_move(0, 65), 0, "a large batch leaves its ids in memory");
        assert_eq!(to_move(MAX_WAITING, 500), 0);
        assert_eq!(to_move(MAX_WAITING + 1, 500), MOVE_CHUNK, "unless too many wait");
        assert_eq!(to_move(0, 0), 0, "idle with none waiting: no commit");
        assert_eq!(to_move(3, 0), 3, "idle: whatever waits");
        assert_eq!(to_move(MAX_WAITING, 0), MOVE_CHUNK, "a chunk at a time");
    }

    #[tokio::test]
    async fn a_resend_finds_its_message_from_memory_after_a_restart_and_from_the_table_after_the_move() {
        let dir = tempfile::tempdir().unwrap();
        let conv: ConvId = "d:1:2".parse().unwrap();
        // Every batch leaves its client ids in memory, as a busy server's large batches do.
        let deferred = StoreOptions { index_inline_batch: 0, ..StoreOptions::default() };
        let s = Store::open(dir.path(), &deferred).unwrap();
        let first = send_text(&s, conv, "a", "one").await.message;
        send_text(&s, conv, "b", "two").await;
        let again = send_text(&s, conv, "a", "one, resent").await;
        assert!(again.duplicate && again.message.seq == first.seq);
        s.close().await;
        // The state a process leaves when it dies before moving anything (an idle writer may
        // have moved them before the close above).
        {
            let db = redb::Database::create(dir.path().join(crate::store::DB_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            txn.delete_table(CLIENT_IDS).unwrap();
            txn.open_table(CLIENT_IDS).unwrap();
            txn.open_table(META).unwrap().insert(MOVED_UPTO, 0).unwrap();
            txn.commit().unwrap();
        }

        // The memory is gone with the process; it is read back from the log.
        let s = Store::open(dir.path(), &deferred).unwrap();
        let again = send_text(&s, conv, "b", "two, resent").await;
        assert!(again.duplicate && again.message.seq == 2, "found after a restart");
        assert_eq!(send_text(&s, conv, "c", "three").await.message.seq, 3, "a new id is a new message");

        // An idle writer moves what waits into the table, and a resend finds it there.
        let deadline = Instant::now() + Duration::from_secs(20);
        while in_table(&s).await < 3 {
            assert!(Instant::now() < deadline, "the idle writer moves the waiting client ids");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(s.client_ids.waiting(), 0);
        let upto = s.read(|txn| moved_upto(&txn.open_table(META)?)).await.unwrap();
        assert_eq!(upto, 3, "the table reaches the last message");
        let again = send_text(&s, conv, "c", "three, resent").await;
        assert!(again.duplicate && again.message.seq == 3, "found in the table");
        s.close().await;

        // At low load (the server's setting), a send's client id goes into the table with it.
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        send_text(&s, conv, "d", "four").await;
        assert_eq!(in_table(&s).await, 4);
        assert_eq!(s.client_ids.waiting(), 0);
        s.close().await;
    }
}
