//! The search index is written behind the messages, not in their commit. A message's search
//! tokens land at scattered places in `SEARCH` (one per token and conversation), and in a batch of
//! a few hundred messages nearly every token is a page of its own: indexing in the send's commit
//! cost more than everything else the send writes (docs/benchmarks.md). So a send commits its
//! message only, and the writer indexes what is new in larger batches: when it has nothing else to
//! do and enough is waiting, or before its next batch once far behind. A search first brings the
//! index up to date, so it always finds every committed message.
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
/// Messages indexed in one indexing transaction at most.
pub(super) const INDEX_BATCH: usize = 5_000;
/// The writer indexes when it is idle and at least this many messages wait: fewer make small,
/// page-heavy index commits that delay the sends that arrive meanwhile.
pub(super) const INDEX_MIN: u64 = 256;
/// The writer indexes before its next batch of writes once this many messages wait, so that a
/// busy server's index (and a search's catch-up) never falls far behind.
pub(super) const MAX_LAG: u64 = 20_000;

/// Whether the writer runs an indexing batch now, with `lag` messages not indexed; `idle`: no
/// write is waiting.
pub(super) fn should_index(lag: u64, idle: bool) -> bool {
    lag > MAX_LAG || (idle && lag >= INDEX_MIN)
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
        match serde_json::from_slice::<Message>(v.value()) {
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
    use crate::protocol::Content;
    use crate::store::StoreOptions;
    use crate::store::messages::{Extras, MessageChange};
    use redb::ReadableTableMetadata;

    async fn send(s: &Store, conv: ConvId, id: &str, text: &str) -> u64 {
        let out = s
            .append_message(
                UserId(1),
                conv,
                vec![UserId(1), UserId(2)],
                id.into(),
                Content::Text { text: text.into() },
                Extras::default(),
                |_| Ok(()),
                |_| {},
            )
            .await
            .unwrap()
            .unwrap();
        out.message.seq
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
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
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
    }

    #[test]
    fn the_writer_indexes_when_idle_with_enough_waiting_or_when_far_behind() {
        assert!(!should_index(0, true));
        assert!(!should_index(INDEX_MIN - 1, true), "a few waiting messages wait for more");
        assert!(should_index(INDEX_MIN, true));
        assert!(!should_index(MAX_LAG, false), "writes waiting come first");
        assert!(should_index(MAX_LAG + 1, false), "unless the index is far behind");
    }
}
