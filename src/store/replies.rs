//! Replies and the messages they quote. A reply stores a preview of the quoted message (what
//! clients show without fetching it); `REPLIES` indexes replies by the message they quote, so a
//! recall takes the quoted text out of every reply in the recall's own write transaction.

use redb::{ReadableTable, WriteTransaction};

use super::StoreError;
use super::log::{LEGACY_MESSAGES, WriteLog};
use super::tables::REPLIES;
use crate::protocol::Message;

/// Records that message `reply` of the conversation `key` quotes message `quoted`.
pub(super) fn record_in_txn(txn: &WriteTransaction, key: (u64, u64), quoted: u64, reply: u64) -> Result<(), StoreError> {
    txn.open_table(REPLIES)?.insert((key.0, key.1, quoted, reply), ())?;
    Ok(())
}

/// The replies that quote message `seq`, with the quote's text taken out (`recalled` set), for
/// a recall to store with new revs; their index entries go, since the quote cannot change again.
pub(super) fn unquote_in_txn(txn: &WriteTransaction, msgs: &WriteLog<'_>, key: (u64, u64), seq: u64) -> Result<Vec<Message>, StoreError> {
    let mut index = txn.open_table(REPLIES)?;
    let replies: Vec<u64> = index
        .range((key.0, key.1, seq, 0)..=(key.0, key.1, seq, u64::MAX))?
        .map(|e| e.map(|(k, _)| k.value().3))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(replies.len());
    for r in replies {
        index.remove((key.0, key.1, seq, r))?;
        let Some(mut m) = msgs.get((key.0, key.1, r))? else { continue };
        if let Some(q) = m.reply_to.as_mut().filter(|q| q.seq == seq) {
            q.preview.clear();
            q.recalled = true;
            out.push(m);
        }
    }
    Ok(out)
}

/// Schema 3 to 4: replies written before the reply index existed join it, so that a later
/// recall reaches them; replies quoting a message that was recalled already lose the quoted text
/// now (history and new syncs show "recalled"; a device that cached the reply earlier keeps its
/// copy until it reloads the conversation).
pub(super) fn migrate_reply_index(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut msgs = txn.open_table(LEGACY_MESSAGES)?;
    let mut index = txn.open_table(REPLIES)?;
    let mut unquoted = Vec::new();
    for entry in msgs.iter()? {
        let (k, v) = entry?;
        let (a, b, seq) = k.value();
        let mut m = serde_json::from_slice::<Message>(v.value())?;
        let Some(q) = m.reply_to.as_mut() else { continue };
        if q.recalled {
            continue;
        }
        let quoted_recalled = match msgs.get((a, b, q.seq))? {
            Some(v) => serde_json::from_slice::<Message>(v.value())?.recalled.is_some(),
            None => false,
        };
        if quoted_recalled {
            q.preview.clear();
            q.recalled = true;
            unquoted.push(((a, b, seq), serde_json::to_vec(&m)?));
        } else {
            index.insert((a, b, q.seq, seq), ())?;
        }
    }
    for (k, bytes) in unquoted {
        msgs.insert(k, bytes.as_slice())?;
    }
    Ok(())
}
