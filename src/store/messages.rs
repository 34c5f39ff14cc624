//! Conversation logs: messages keyed by (conversation, seq), per-conversation heads, the
//! client-id index that makes resends idempotent, and each user's conversation index.

use redb::{ReadTransaction, ReadableTable};

use super::tables::{CLIENT_IDS, CONV_HEADS, MESSAGES, USER_CONVS};
use super::{Store, StoreError, now_ms};
use crate::ids::{ConvId, UserId};
use crate::protocol::{Content, Message};

/// The result of a send: the stored message, and whether it was stored by an earlier send with
/// the same client id.
#[derive(Clone, Debug)]
pub struct SendOutcome {
    pub message: Message,
    pub duplicate: bool,
}

/// A conversation in a user's list.
#[derive(Clone, Debug)]
pub struct StoredConv {
    pub conv: ConvId,
    pub last_seq: u64,
    pub last_ts: u64,
    pub last_message: Option<Message>,
}

fn decode(v: &[u8]) -> Result<Message, StoreError> {
    Ok(serde_json::from_slice(v)?)
}

fn range_of(
    txn: &ReadTransaction,
    conv: ConvId,
    from: u64,
    to: u64,
    newest_first: bool,
    limit: usize,
) -> Result<(Vec<Message>, bool), StoreError> {
    if from > to || limit == 0 {
        return Ok((Vec::new(), false));
    }
    let (a, b) = conv.key();
    let t = txn.open_table(MESSAGES)?;
    let range = t.range((a, b, from)..=(a, b, to))?;
    let mut out = Vec::with_capacity(limit.min(128));
    let mut more = false;
    let mut take = |entry: Result<
        (
            redb::AccessGuard<'_, (u64, u64, u64)>,
            redb::AccessGuard<'_, &[u8]>,
        ),
        redb::StorageError,
    >|
     -> Result<bool, StoreError> {
        if out.len() == limit {
            more = true;
            return Ok(false);
        }
        let (_, v) = entry?;
        out.push(decode(v.value())?);
        Ok(true)
    };
    if newest_first {
        for e in range.rev() {
            if !take(e)? {
                break;
            }
        }
        out.reverse();
    } else {
        for e in range {
            if !take(e)? {
                break;
            }
        }
    }
    Ok((out, more))
}

impl Store {
    /// Appends a message to `conv` with the next sequence number, unless `sender` already sent
    /// `client_id`, in which case the earlier message comes back with `duplicate` set. `members`
    /// are the users whose conversation lists show `conv`. `after` runs after the commit, in
    /// commit order (delivery), and only for a new message.
    pub async fn append_message(
        &self,
        sender: UserId,
        conv: ConvId,
        members: Vec<UserId>,
        client_id: String,
        content: Content,
        after: impl FnOnce(&Message) + Send + 'static,
    ) -> Result<SendOutcome, StoreError> {
        self.write_then(
            move |txn| {
                let (a, b) = conv.key();
                let mut ids = txn.open_table(CLIENT_IDS)?;
                if let Some(key) = ids.get((sender.0, client_id.as_str()))?.map(|v| v.value()) {
                    let msgs = txn.open_table(MESSAGES)?;
                    let v = msgs.get(key)?.ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "client id {client_id} points at a missing message"
                        ))
                    })?;
                    return Ok(SendOutcome {
                        message: decode(v.value())?,
                        duplicate: true,
                    });
                }
                let mut heads = txn.open_table(CONV_HEADS)?;
                let seq = heads.get((a, b))?.map_or(0, |v| v.value()) + 1;
                let ts = now_ms();
                let message = Message {
                    conv,
                    seq,
                    sender,
                    client_id,
                    ts,
                    content,
                };
                let bytes = serde_json::to_vec(&message)?;
                heads.insert((a, b), seq)?;
                txn.open_table(MESSAGES)?
                    .insert((a, b, seq), bytes.as_slice())?;
                ids.insert((sender.0, message.client_id.as_str()), (a, b, seq))?;
                let mut convs = txn.open_table(USER_CONVS)?;
                for m in members {
                    convs.insert((m.0, a, b), ts)?;
                }
                Ok(SendOutcome {
                    message,
                    duplicate: false,
                })
            },
            move |out: &SendOutcome| {
                if !out.duplicate {
                    after(&out.message);
                }
            },
        )
        .await
    }

    /// A page of history in ascending order: the newest `limit` before `before` (exclusive), or
    /// the oldest `limit` after `after` (exclusive), or the newest page when neither is given.
    pub async fn history(
        &self,
        conv: ConvId,
        before: Option<u64>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Message>, bool), StoreError> {
        self.read(move |txn| match (before, after) {
            (_, Some(after)) => range_of(
                txn,
                conv,
                after.saturating_add(1),
                before.map_or(u64::MAX, |b| b.saturating_sub(1)),
                false,
                limit,
            ),
            (Some(before), None) => {
                if before <= 1 {
                    return Ok((Vec::new(), false));
                }
                range_of(txn, conv, 1, before - 1, true, limit)
            }
            (None, None) => range_of(txn, conv, 1, u64::MAX, true, limit),
        })
        .await
    }

    /// For sync: per conversation, the messages after its cursor, at most `cap` (the newest
    /// ones when there are more; the client pages the rest with `history`).
    pub async fn messages_after(
        &self,
        wanted: Vec<(ConvId, u64)>,
        cap: usize,
    ) -> Result<Vec<Vec<Message>>, StoreError> {
        self.read(move |txn| {
            let heads = txn.open_table(CONV_HEADS)?;
            let mut out = Vec::with_capacity(wanted.len());
            for (conv, after) in wanted {
                let head = heads.get(conv.key())?.map_or(0, |v| v.value());
                if head <= after {
                    out.push(Vec::new());
                    continue;
                }
                let from = after.max(head.saturating_sub(cap as u64)) + 1;
                out.push(range_of(txn, conv, from, head, false, cap)?.0);
            }
            Ok(out)
        })
        .await
    }

    /// The user's conversations, most recent activity first.
    pub async fn user_conversations(&self, user: UserId) -> Result<Vec<StoredConv>, StoreError> {
        self.read(move |txn| {
            let convs = txn.open_table(USER_CONVS)?;
            let heads = txn.open_table(CONV_HEADS)?;
            let msgs = txn.open_table(MESSAGES)?;
            let mut out = Vec::new();
            for entry in convs.range((user.0, 0, 0)..=(user.0, u64::MAX, u64::MAX))? {
                let (k, v) = entry?;
                let (_, a, b) = k.value();
                let last_seq = heads.get((a, b))?.map_or(0, |v| v.value());
                let last_message = match msgs.get((a, b, last_seq))? {
                    Some(m) => Some(decode(m.value())?),
                    None => None,
                };
                out.push(StoredConv {
                    conv: ConvId::from_key((a, b)),
                    last_seq,
                    last_ts: v.value(),
                    last_message,
                });
            }
            out.sort_by(|x, y| y.last_ts.cmp(&x.last_ts));
            Ok(out)
        })
        .await
    }

    /// Conversations `user` appears in, with their heads (for sync).
    pub async fn conversation_heads(&self, user: UserId) -> Result<Vec<(ConvId, u64)>, StoreError> {
        self.read(move |txn| {
            let convs = txn.open_table(USER_CONVS)?;
            let heads = txn.open_table(CONV_HEADS)?;
            let mut out = Vec::new();
            for entry in convs.range((user.0, 0, 0)..=(user.0, u64::MAX, u64::MAX))? {
                let (k, _) = entry?;
                let (_, a, b) = k.value();
                out.push((
                    ConvId::from_key((a, b)),
                    heads.get((a, b))?.map_or(0, |v| v.value()),
                ));
            }
            Ok(out)
        })
        .await
    }
}
