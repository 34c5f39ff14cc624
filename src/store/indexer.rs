//! The search index is written behind the messages when the server is busy. A message's search
//! tokens land at scattered places in `SEARCH` (one per token and conversation), and in a batch of
//! a few hundred messages nearly every token is a page of its own: indexing in the sends' commit
//! cost more than everything else they write (docs/benchmarks.md). So a send's job writes its
//! message only, and the writer decides what to index in each commit ([`to_index`]): a small
//! batch's messages in the same commit (at low load nothing changes, and no later index commit
//! holds up a send), a large batch's later, in larger batches, when the writer is idle or once far
//! behind. A search first brings the index up to date, so it always finds every committed message.
//!
//! The message log's numbers grow in commit order, so "indexed" is one number in `META`: every
//! message numbered up to it is in the index as it is now (an edit re-indexes, a recall removes);
//! those after it are indexed as they are when their turn comes (a message recalled before that
//! is never indexed).

use redb::{ReadTransaction, ReadableTable, Table, WriteTransaction};

use super::search;
use super::tables::{MESSAGE_LOG, META, SEARCH};
use super::{Store, StoreError};
use crate::protocol::Message;

/// `META` key: the highest message-log number whose message is in the search index.
pub(super) const INDEXED_UPTO: &str = "search_indexed_upto";
/// A batch of at most this many writes has its messages indexed in its own commit.
pub(super) const INLINE_BATCH: usize = 64;
/// Messages a small batch's commit indexes at most (its own, and some left from a busy spell).
pub(super) const INLINE_MAX: usize = 256;
/// An idle writer indexes when at least this many messages wait, this many at most per commit:
/// one commit of a few milliseconds, so that a send arriving meanwhile does not wait long.
pub(super) const INDEX_MIN: u64 = 256;
pub(super) const IDLE_CHUNK: usize = 1_000;
/// Once this many messages wait, a large batch's commit indexes [`INDEX_BATCH`] of them too, so
/// that a busy server's index (and a search's catch-up) never falls far behind.
pub(super) const MAX_LAG: u64 = 20_000;
pub(super) const INDEX_BATCH: usize = 5_000;

/// How many waiting messages the writer indexes in the commit it is about to make, given `lag`
/// (messages not indexed as of the last commit), the `batch` of writes it holds (0: none waits)
/// and the largest batch indexed inline (`INLINE_BATCH` in the server).
pub(super) fn to_index(lag: u64, batch: usize, inline_batch: usize) -> usize {
    match batch {
        0 if lag >= INDEX_MIN => IDLE_CHUNK,
        0 => 0,
        b if b <= inline_batch => INLINE_MAX,
        _ if lag > MAX_LAG => INDEX_BATCH,
        _ => 0,
    }
}

/// Adds (or with `insert` false removes) the search tokens of `text` for message `seq` of the
/// conversation `key`.
pub(super) fn index_text(
    t: &mut Table<'_, (&'static str, u64, u64, u64), ()>,
    key: (u64, u64),
    seq: u64,
    text: &str,
    insert: bool,
) -> Result<(), StoreError> {
    for token in search::index_tokens(text) {
        if insert {
            t.insert((token.as_str(), key.0, key.1, seq), ())?;
        } else {
            t.remove((token.as_str(), key.0, key.1, seq))?;
        }
    }
    Ok(())
}

fn upto(meta: &impl ReadableTable<&'static str, u64>) -> Result<u64, StoreError> {
    Ok(meta.get(INDEXED_UPTO)?.map_or(0, |v| v.value()))
}

fn lag_of(meta: &impl ReadableTable<&'static str, u64>, log: &impl ReadableTable<u64, &'static [u8]>) -> Result<u64, StoreError> {
    let last = log.last()?.map_or(0, |(k, _)| k.value());
    Ok(last.saturating_sub(upto(meta)?))
}

/// How many committed messages are not in the search index yet.
pub(super) fn lag(txn: &ReadTransaction) -> Result<u64, StoreError> {
    lag_of(&txn.open_table(META)?, &txn.open_table(MESSAGE_LOG)?)
}

/// [`lag`] as a write transaction sees it.
pub(super) fn lag_in_txn(txn: &WriteTransaction) -> Result<u64, StoreError> {
    lag_of(&txn.open_table(META)?, &txn.open_table(MESSAGE_LOG)?)
}

/// Whether the message numbered `no` is in the index (so a change to it changes the index).
pub(super) fn is_indexed(txn: &WriteTransaction, no: u64) -> Result<bool, StoreError> {
    Ok(no <= upto(&txn.open_table(META)?)?)
}

/// Marks every message stored so far as indexed: for a database whose index was written with its
/// messages (schemas up to 4).
pub(super) fn mark_all_indexed(txn: &WriteTransaction) -> Result<(), StoreError> {
    if let Some(last) = txn.open_table(MESSAGE_LOG)?.last()?.map(|(k, _)| k.value()) {
        txn.open_table(META)?.insert(INDEXED_UPTO, last)?;
    }
    Ok(())
}

/// Indexes up to `max` of the messages after the indexed ones, as they are now. Returns how many
/// it went past. A message that cannot be read is logged and passed over, so that it cannot stop
/// the index for good.
pub(super) fn index_pending_in_txn(txn: &WriteTransaction, max: usize) -> Result<u64, StoreError> {
    let mut meta = txn.open_table(META)?;
    let from = upto(&meta)? + 1;
    let log = txn.open_table(MESSAGE_LOG)?;
    let mut index = txn.open_table(SEARCH)?;
    let mut last = None;
    for entry in log.range(from..)?.take(max) {
        let (no, v) = entry?;
        last = Some(no.value());
        match serde_json::from_slice::<Message>(super::log::json_of(v.value())) {
            Ok(m) if m.recalled.is_none() => {
                if let Some(text) = m.content.search_text() {
                    index_text(&mut index, m.conv.key(), m.seq, &text, true)?;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(message = no.value(), error = %e, "a stored message cannot be read; it is left out of the search index");
            }
        }
    }
    let Some(last) = last else { return Ok(0) };
    meta.insert(INDEXED_UPTO, last)?;
    Ok(last + 1 - from)
}

impl Store {
    /// Brings the search index up to every committed message (what a search does first).
    pub async fn index_search(&self) -> Result<(), StoreError> {
        while self.read(lag).await? > 0 {
            self.write(|txn| index_pending_in_txn(txn, INDEX_BATCH)).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::ids::{ConvId, UserId};
    use crate::store::StoreOptions;
    use crate::store::messages::MessageChange;
    use redb::ReadableTableMetadata;

    async fn send(s: &Store, conv: ConvId, id: &str, text: &str) -> u64 {
        crate::store::send_text(s, conv, id, text).await.message.seq
    }

    async fn change(s: &Store, conv: ConvId, seq: u64, c: MessageChange) {
        let mut c = Some(c);
        s.change_message(UserId(1), conv, seq, move |_, _| Ok(c.take().unwrap()), |_| {}).await.unwrap().unwrap();
    }

    async fn found(s: &Store, conv: ConvId, q: &str) -> Vec<u64> {
        let convs = HashMap::from([(conv, 1)]);
        let mut seqs: Vec<u64> = s.search_messages(UserId(1), q.into(), convs, 0, 50).await.unwrap().into_iter().map(|m| m.seq).collect();
        seqs.sort_unstable();
        seqs
    }

    async fn postings(s: &Store) -> u64 {
        s.read(|txn| Ok(txn.open_table(SEARCH)?.len()?)).await.unwrap()
    }

    #[tokio::test]
    async fn a_search_finds_every_committed_message_as_it_is_now_and_the_writer_catches_up_alone() {
        let dir = tempfile::tempdir().unwrap();
        // Every batch leaves its indexing to later, as a busy server's large batches do.
        let s = Store::open(dir.path(), &StoreOptions { index_inline_batch: 0, ..StoreOptions::default() }).unwrap();
        let conv: ConvId = "d:1:2".parse().unwrap();
        send(&s, conv, "a", "apple one").await;
        send(&s, conv, "b", "banana two").await;
        send(&s, conv, "c", "apple three").await;
        assert_eq!(postings(&s).await, 0, "sends commit their message only");
        assert_eq!(s.read(lag).await.unwrap(), 3);
        // Changed before the indexer reached them: indexed as they are then.
        change(&s, conv, 3, MessageChange::Recall { by: UserId(1) }).await;
        change(&s, conv, 2, MessageChange::Edit { text: "cherry two".into() }).await;
        assert_eq!(found(&s, conv, "apple").await, vec![1], "the recalled one is not found");
        assert_eq!(found(&s, conv, "banana").await, Vec::<u64>::new());
        assert_eq!(found(&s, conv, "cherry").await, vec![2]);
        assert_eq!(s.read(lag).await.unwrap(), 0);
        // Changed after: the index changes with it.
        change(&s, conv, 1, MessageChange::Edit { text: "durian one".into() }).await;
        assert_eq!(found(&s, conv, "apple").await, Vec::<u64>::new());
        assert_eq!(found(&s, conv, "durian").await, vec![1]);
        change(&s, conv, 2, MessageChange::Recall { by: UserId(1) }).await;
        assert_eq!(found(&s, conv, "cherry").await, Vec::<u64>::new());
        assert_eq!(found(&s, conv, "two").await, Vec::<u64>::new(), "a recall takes every token out");

        // Enough new messages and an idle writer: indexed without a search.
        for i in 0..INDEX_MIN {
            send(&s, conv, &format!("m{i}"), "elderberry").await;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while s.read(lag).await.unwrap() > 0 {
            assert!(std::time::Instant::now() < deadline, "the writer indexes when idle");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(postings(&s).await >= INDEX_MIN);
        s.close().await;

        // At low load (small batches), a message is indexed in its own commit.
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        send(&s, conv, "z", "fig").await;
        assert_eq!(s.read(lag).await.unwrap(), 0);
        s.close().await;
    }

    #[test]
    fn small_batches_index_their_own_messages_large_ones_defer_until_idle_or_far_behind() {
        let to_index = |lag, batch| to_index(lag, batch, INLINE_BATCH);
        assert_eq!(to_index(0, 1), INLINE_MAX, "low load: indexed in the same commit");
        assert_eq!(to_index(5_000, INLINE_BATCH), INLINE_MAX);
        assert_eq!(to_index(0, INLINE_BATCH + 1), 0, "a large batch commits its messages only");
        assert_eq!(to_index(MAX_LAG, 500), 0);
        assert_eq!(to_index(MAX_LAG + 1, 500), INDEX_BATCH, "unless the index is far behind");
        assert_eq!(to_index(INDEX_MIN - 1, 0), 0, "idle with a few waiting: they wait for more");
        assert_eq!(to_index(INDEX_MIN, 0), IDLE_CHUNK);
    }
}
