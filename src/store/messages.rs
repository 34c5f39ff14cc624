//! Conversation logs: messages keyed by (conversation, seq), per-conversation heads and change
//! counters, the client-id index that makes resends idempotent, read positions, mentions, each
//! user's view of their conversations. Searching them is `search_query.rs`.

use std::collections::BTreeMap;

use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::batch::{Batch, InsertTables};
use super::client_ids::ClientIds;
use super::facts::ConvFacts;
use super::indexer;
use super::log::{self, LEGACY_MESSAGES};
use super::tables::{CONV_HEADS, FILE_MSGS, HIDDEN_MESSAGES, MENTIONS, READS, REVS, SEARCH, USER_CONVS};
use super::{Store, StoreError, now_ms};
use crate::ids::{ConvId, UserId};
use crate::outcome::Refusal;
use crate::protocol::{Content, Message, ReplyRef, SystemEvent};

/// How many messages a user deleted for themselves the list's preview looks past before it
/// shows none.
const MAX_PREVIEW_SKIP: usize = 200;

/// The result of a send: the stored message, and whether it was stored by an earlier send with
/// the same client id.
#[derive(Clone, Debug)]
pub struct SendOutcome {
    pub message: Message,
    pub duplicate: bool,
}

/// One user's settings for a conversation they are in.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserConv {
    #[serde(default)]
    pub pinned: bool,
    #[serde(default)]
    pub muted: bool,
    /// Hidden while the conversation's last seq is at most this.
    #[serde(default)]
    pub hidden_upto: Option<u64>,
    /// When the user entered the conversation, ms.
    pub since: u64,
    /// The first seq the user may read (groups that hide history from new members).
    #[serde(default)]
    pub first_seq: u64,
}

/// A conversation in a user's list, with everything the list shows.
#[derive(Clone, Debug)]
pub struct ConvRow {
    pub conv: ConvId,
    pub state: UserConv,
    pub last_seq: u64,
    pub last_message: Option<Message>,
    pub read_seq: u64,
    pub mentioned: bool,
    pub peer_read_seq: Option<u64>,
}

/// What a new message carries besides its content.
#[derive(Clone, Debug, Default)]
pub struct Extras {
    pub reply_to: Option<u64>,
    pub mentions: Vec<UserId>,
    pub mention_all: bool,
    /// Longest voice message the server takes, milliseconds (`None`: no limit).
    pub voice_max_ms: Option<u64>,
}

/// Why a message could not be appended or changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageRefusal {
    /// The message replied to or changed does not exist (or is not visible).
    NoSuchMessage,
    /// Refused by the caller's rule, with its reason.
    Rule(&'static str),
    /// The sender's place in the conversation does not allow it (any more).
    Denied(Refusal),
}

/// Schema 1 to 2: who may download a file was kept per conversation, so recalling its message
/// left it readable; now it is kept per message (`FILE_MSGS`), built here from the messages that
/// are not recalled (which also revokes files whose messages were recalled before).
pub(super) fn migrate_file_shares(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut shares = txn.open_table(FILE_MSGS)?;
    for entry in txn.open_table(LEGACY_MESSAGES)?.iter()? {
        let (k, v) = entry?;
        let (a, b, seq) = k.value();
        let m = decode(v.value())?;
        if m.recalled.is_none() {
            for file in m.content.files() {
                shares.insert((file, a, b, seq), ())?;
            }
        }
    }
    drop(shares);
    txn.delete_table(super::tables::FILE_CONVS)?;
    Ok(())
}

fn decode(v: &[u8]) -> Result<Message, StoreError> {
    Ok(serde_json::from_slice(v)?)
}

fn text_of(c: &Content) -> Option<String> {
    c.search_text()
}

fn range_of(
    txn: &ReadTransaction,
    conv: ConvId,
    from: u64,
    to: u64,
    newest_first: bool,
    limit: usize,
) -> Result<(Vec<Message>, bool), StoreError> {
    log::read(txn)?.range(conv.key(), from, to, newest_first, limit)
}

/// Head of a conversation: (last seq, last rev, seq of the last @all).
fn head(heads: &impl ReadableTable<(u64, u64), (u64, u64, u64)>, key: (u64, u64)) -> Result<(u64, u64, u64), StoreError> {
    Ok(heads.get(key)?.map_or((0, 0, 0), |v| v.value()))
}

/// Appends a message inside a write transaction, unless `gate` refuses the sender's place in
/// the conversation as this transaction sees it (a removal, block or mute committed after the
/// caller's own check counts). `direct_members` get a conversation-list entry if they have
/// none (1:1 chats; group members get theirs when they join). Checks come first, so a refusal
/// writes nothing. A resend of a stored `client_id` answers the stored message, whatever the
/// gate says now: it was allowed when it was stored.
#[allow(clippy::too_many_arguments)]
pub(super) fn append_in_txn(
    batch: &mut Batch<'_>,
    ids: &ClientIds,
    sender: UserId,
    conv: ConvId,
    direct_members: &[UserId],
    client_id: String,
    content: Content,
    extras: Extras,
    gate: impl FnOnce(&ConvFacts) -> Result<(), Refusal>,
) -> Result<Result<SendOutcome, MessageRefusal>, StoreError> {
    let key = conv.key();
    let (txn, t) = batch.messages()?;
    if let Some(k) = ids.get(&t.client_ids, sender, &client_id)? {
        let message =
            t.insert.log.get(k)?.ok_or_else(|| StoreError::Corrupt(format!("client id {client_id} points at a missing message")))?;
        return Ok(Ok(SendOutcome { message, duplicate: true }));
    }
    if let Err(r) = gate(&super::facts::facts_in(t, sender, conv)?) {
        return Ok(Err(MessageRefusal::Denied(r)));
    }
    let content = match super::media::attach_in_txn(txn, sender, content, extras.voice_max_ms)? {
        Ok(c) => c,
        Err(r) => return Ok(Err(r)),
    };
    let reply_to = match extras.reply_to {
        None => None,
        Some(s) => match t.insert.log.get((key.0, key.1, s))? {
            Some(m) => {
                if m.recalled.is_some() {
                    return Ok(Err(MessageRefusal::NoSuchMessage));
                }
                Some(ReplyRef { seq: s, sender: m.sender, preview: m.content.preview(), recalled: false })
            }
            None => return Ok(Err(MessageRefusal::NoSuchMessage)),
        },
    };
    let mut message = Message::new(conv, 0, sender, client_id, 0, content);
    message.reply_to = reply_to;
    message.mentions = extras.mentions;
    message.mention_all = extras.mention_all;
    Ok(Ok(SendOutcome { message: insert_with(txn, &mut t.insert, ids, message, direct_members)?, duplicate: false }))
}

/// Records a system event in `conv` as written by `actor`. It has no refusal: whoever calls it
/// has decided already (a group or contact rule), so it cannot fail after that caller wrote.
pub(super) fn append_system_in_txn(
    txn: &WriteTransaction,
    ids: &ClientIds,
    actor: UserId,
    conv: ConvId,
    direct_members: &[UserId],
    event: SystemEvent,
) -> Result<Message, StoreError> {
    let mut r = [0u8; 6];
    rand::fill(&mut r);
    let kind = if matches!(conv, ConvId::Direct(..)) { "contact" } else { "group" };
    let client_id = format!("sys-{kind}-{}", hex::encode(r));
    insert_in_txn(txn, ids, Message::new(conv, 0, actor, client_id, 0, Content::System { event }), direct_members)
}

/// Stores `message` as the next of its conversation (its seq and time are set here) with
/// everything that goes with it: head, client id, the sender's read position, mentions,
/// conversation-list entries and the daily count (the search index follows, `indexer.rs`).
pub(super) fn insert_in_txn(
    txn: &WriteTransaction,
    ids: &ClientIds,
    message: Message,
    direct_members: &[UserId],
) -> Result<Message, StoreError> {
    insert_with(txn, &mut InsertTables::open(txn)?, ids, message, direct_members)
}

/// [`insert_in_txn`] through tables already open; `txn` opens only the others (file shares,
/// replies, mentions).
fn insert_with(
    txn: &WriteTransaction,
    t: &mut InsertTables<'_>,
    ids: &ClientIds,
    mut message: Message,
    direct_members: &[UserId],
) -> Result<Message, StoreError> {
    let conv = message.conv;
    let key = conv.key();
    let (last, rev, all_seq) = head(&t.heads, key)?;
    let seq = last + 1;
    let ts = now_ms();
    message.seq = seq;
    message.ts = ts;
    let bytes = serde_json::to_vec(&message)?;
    let no = t.log.append((key.0, key.1, seq), &bytes)?;
    ids.record(no, message.sender, &message.client_id, (key.0, key.1, seq));
    super::media::share_in_txn(txn, &message.content, key, seq)?;
    t.heads.insert(key, (seq, rev, if message.mention_all { seq } else { all_seq }))?;
    // Sending is reading: your own message never counts as unread.
    t.reads.insert((key.0, key.1, message.sender.0), seq)?;
    if let Some(r) = &message.reply_to {
        super::replies::record_in_txn(txn, key, r.seq, seq)?;
    }
    if !message.mentions.is_empty() {
        let mut mentions = txn.open_table(MENTIONS)?;
        for u in &message.mentions {
            mentions.insert((u.0, key.0, key.1, seq), ())?;
        }
    }
    for m in direct_members {
        if t.user_convs.get((m.0, key.0, key.1))?.is_none() {
            let state = serde_json::to_vec(&UserConv { since: ts, ..UserConv::default() })?;
            t.user_convs.insert((m.0, key.0, key.1), state.as_slice())?;
        }
    }
    let day = ts / 86_400_000;
    let n = t.daily.get(day)?.map_or(0, |v| v.value());
    t.daily.insert(day, n + 1)?;
    Ok(message)
}

/// A change to an existing message, decided by the caller's rule (`chat::rules`).
#[derive(Debug)]
pub enum MessageChange {
    Recall {
        by: UserId,
    },
    Edit {
        text: String,
    },
    /// The message's reactions become these.
    Reactions(BTreeMap<String, Vec<UserId>>),
    /// Nothing to change (a reaction that was already so): answered with the message as it is.
    Unchanged,
}

/// Where a conversation stands for one of its users; see [`Store::conversation_heads`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvHead {
    pub conv: ConvId,
    pub last_seq: u64,
    pub last_rev: u64,
    /// The first seq this user may see (history before they joined a group is hidden).
    pub first_seq: u64,
}

/// What a sync asks of one conversation: what the client already has, and what it may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncFrom {
    pub conv: ConvId,
    /// The last seq the client has.
    pub seq: u64,
    /// The last change (`rev`) the client has.
    pub rev: u64,
    /// The first seq the user may see.
    pub first_seq: u64,
}

/// What a sync sends for one conversation; see [`Store::changes_since`].
pub struct ConvChanges {
    pub new: Vec<Message>,
    pub changed: Option<Vec<Message>>,
    pub skipped: Option<SkippedSeqs>,
}

/// Messages a sync left out: those with `after < seq < before`.
#[derive(Clone, Copy, Debug)]
pub struct SkippedSeqs {
    pub after: u64,
    pub before: u64,
}

impl Store {
    /// Appends a message to `conv` with the next sequence number, unless `sender` already sent
    /// `client_id`, in which case the earlier message comes back with `duplicate` set.
    /// `direct_members` are the two users of a 1:1 chat (empty for groups). `gate` decides,
    /// inside the write transaction, whether the sender's place in the conversation still
    /// allows it. `after` runs after the commit, in commit order (delivery), and only for a new
    /// message.
    #[allow(clippy::too_many_arguments)]
    pub async fn append_message(
        &self,
        sender: UserId,
        conv: ConvId,
        direct_members: Vec<UserId>,
        client_id: String,
        content: Content,
        extras: Extras,
        gate: impl FnOnce(&ConvFacts) -> Result<(), Refusal> + Send + 'static,
        after: impl FnOnce(&Message) + Send + 'static,
    ) -> Result<Result<SendOutcome, MessageRefusal>, StoreError> {
        let (stats, ids) = (self.stats.clone(), self.client_ids.clone());
        self.write_batch_then(
            move |batch| append_in_txn(batch, &ids, sender, conv, &direct_members, client_id, content, extras, gate),
            move |out: &Result<SendOutcome, MessageRefusal>| {
                if let Ok(out) = out
                    && !out.duplicate
                {
                    stats.messages.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    after(&out.message);
                }
            },
        )
        .await
    }

    /// Changes message `seq` of `conv` as `rule` decides from `user`'s place in the
    /// conversation and the message, both as the write transaction sees them; the change gets
    /// the conversation's next rev. `after` runs after the commit with the changed message.
    pub async fn change_message(
        &self,
        user: UserId,
        conv: ConvId,
        seq: u64,
        rule: impl FnOnce(&ConvFacts, &Message) -> Result<MessageChange, MessageRefusal> + Send + 'static,
        after: impl FnOnce(&[Message]) + Send + 'static,
    ) -> Result<Result<Message, MessageRefusal>, StoreError> {
        let out = self
            .write_then(
                move |txn| {
                    let key = conv.key();
                    let facts = super::facts::facts_in_txn(txn, user, conv)?;
                    let mut msgs = log::write(txn)?;
                    let Some((no, mut m)) = msgs.numbered((key.0, key.1, seq))? else {
                        return Ok(Err(MessageRefusal::NoSuchMessage));
                    };
                    let change = match rule(&facts, &m) {
                        Ok(c) => c,
                        Err(r) => return Ok(Err(r)),
                    };
                    let now = now_ms();
                    let recall = matches!(change, MessageChange::Recall { .. });
                    // A message the indexer has not reached yet is indexed as it is then.
                    let mut index = if indexer::is_indexed(txn, no)? { Some(txn.open_table(SEARCH)?) } else { None };
                    match change {
                        MessageChange::Unchanged => return Ok(Ok(vec![m])),
                        MessageChange::Recall { by } => {
                            if let (Some(index), Some(text)) = (index.as_mut(), text_of(&m.content)) {
                                indexer::index_text(index, key, seq, &text, false)?;
                            }
                            super::media::unshare_in_txn(txn, &m.content, key, seq)?;
                            m.content = Content::Recalled {};
                            m.recalled = Some(crate::protocol::Recall { by, at: now });
                            m.reactions.clear();
                            m.edited_at = None;
                        }
                        MessageChange::Edit { text } => {
                            if let Some(index) = index.as_mut() {
                                if let Some(old) = text_of(&m.content) {
                                    indexer::index_text(index, key, seq, &old, false)?;
                                }
                                indexer::index_text(index, key, seq, &text, true)?;
                            }
                            m.content = Content::Text { text };
                            m.edited_at = Some(now);
                        }
                        MessageChange::Reactions(reactions) => m.reactions = reactions,
                    }
                    drop(index);
                    let mut heads = txn.open_table(CONV_HEADS)?;
                    let (last, mut rev, all_seq) = head(&heads, key)?;
                    let mut changed = vec![m];
                    if recall {
                        changed.extend(super::replies::unquote_in_txn(txn, &msgs, key, seq)?);
                    }
                    let mut revs = txn.open_table(REVS)?;
                    for m in &mut changed {
                        rev += 1;
                        if m.rev > 0 {
                            revs.remove((key.0, key.1, m.rev))?;
                        }
                        m.rev = rev;
                        msgs.replace((key.0, key.1, m.seq), m)?;
                        revs.insert((key.0, key.1, rev), m.seq)?;
                    }
                    heads.insert(key, (last, rev, all_seq))?;
                    Ok(Ok(changed))
                },
                move |out: &Result<Vec<Message>, MessageRefusal>| {
                    if let Ok(changed) = out {
                        after(changed);
                    }
                },
            )
            .await?;
        Ok(out.map(|mut changed| changed.swap_remove(0)))
    }

    pub async fn message(&self, conv: ConvId, seq: u64) -> Result<Option<Message>, StoreError> {
        self.read(move |txn| {
            let (a, b) = conv.key();
            log::read(txn)?.get((a, b, seq))
        })
        .await
    }

    /// A page of history in ascending order, never below `first_seq`: the newest `limit`
    /// before `before` (exclusive), or the oldest `limit` after `after` (exclusive), or the
    /// newest page when neither is given.
    pub async fn history(
        &self,
        conv: ConvId,
        before: Option<u64>,
        after: Option<u64>,
        limit: usize,
        first_seq: u64,
    ) -> Result<(Vec<Message>, bool), StoreError> {
        let floor = first_seq.max(1);
        self.read(move |txn| match (before, after) {
            (_, Some(after)) => {
                range_of(txn, conv, after.saturating_add(1).max(floor), before.map_or(u64::MAX, |b| b.saturating_sub(1)), false, limit)
            }
            (Some(before), None) => range_of(txn, conv, floor, before.saturating_sub(1), true, limit),
            (None, None) => range_of(txn, conv, floor, u64::MAX, true, limit),
        })
        .await
    }

    /// For sync, per conversation asked for: the new
    /// messages (at most `cap`, the newest), the changed older ones (at most `cap`; `None` when
    /// there were more, and the client must reload), and the seqs left out between the two
    /// when there were more than `cap` new ones.
    pub async fn changes_since(&self, wanted: Vec<SyncFrom>, cap: usize) -> Result<Vec<ConvChanges>, StoreError> {
        self.read(move |txn| {
            let heads = txn.open_table(CONV_HEADS)?;
            let revs = txn.open_table(REVS)?;
            let msgs = log::read(txn)?;
            let mut out = Vec::with_capacity(wanted.len());
            for SyncFrom { conv, seq: after, rev: after_rev, first_seq: first } in wanted {
                let key = conv.key();
                let (last, rev, _) = head(&heads, key)?;
                // The newest seq the client has, or could have: what it may see starts at `first`.
                let seen = after.max(first.saturating_sub(1));
                let mut skipped = None;
                let new = if last > seen {
                    let from = seen.max(last.saturating_sub(cap as u64)) + 1;
                    if from > seen + 1 {
                        skipped = Some(SkippedSeqs { after: seen, before: from });
                    }
                    msgs.range(key, from, last, false, cap)?.0
                } else {
                    Vec::new()
                };
                let mut changed = Some(Vec::new());
                if rev > after_rev {
                    let mut seen = Vec::new();
                    for entry in revs.range((key.0, key.1, after_rev + 1)..=(key.0, key.1, u64::MAX))? {
                        let (_, seq) = entry?;
                        let seq = seq.value();
                        // Changes to messages the client is about to get anyway, or may not see, are skipped.
                        if seq > after || seq < first {
                            continue;
                        }
                        if seen.len() == cap {
                            changed = None;
                            break;
                        }
                        if let Some(m) = msgs.get((key.0, key.1, seq))? {
                            seen.push(m);
                        }
                    }
                    if changed.is_some() {
                        changed = Some(seen);
                    }
                }
                out.push(ConvChanges { new, changed, skipped });
            }
            Ok(out)
        })
        .await
    }

    /// Moves `user`'s read position in `conv` forward to `seq` (never back, never past the
    /// last message), if `gate` still allows the user in. Returns the new position when it
    /// moved.
    pub async fn mark_read(
        &self,
        user: UserId,
        conv: ConvId,
        seq: u64,
        gate: impl FnOnce(&ConvFacts) -> Result<(), Refusal> + Send + 'static,
    ) -> Result<Result<Option<u64>, Refusal>, StoreError> {
        self.write(move |txn| {
            if let Err(r) = gate(&super::facts::facts_in_txn(txn, user, conv)?) {
                return Ok(Err(r));
            }
            let key = conv.key();
            let (last, _, _) = head(&txn.open_table(CONV_HEADS)?, key)?;
            let seq = seq.min(last);
            let mut reads = txn.open_table(READS)?;
            let cur = reads.get((key.0, key.1, user.0))?.map_or(0, |v| v.value());
            if seq <= cur {
                return Ok(Ok(None));
            }
            reads.insert((key.0, key.1, user.0), seq)?;
            Ok(Ok(Some(seq)))
        })
        .await
    }

    /// Everyone's read positions in `conv`.
    pub async fn read_positions(&self, conv: ConvId) -> Result<Vec<(UserId, u64)>, StoreError> {
        self.read(move |txn| {
            let (a, b) = conv.key();
            let mut out = Vec::new();
            for entry in txn.open_table(READS)?.range((a, b, 0)..=(a, b, u64::MAX))? {
                let (k, v) = entry?;
                out.push((UserId(k.value().2), v.value()));
            }
            Ok(out)
        })
        .await
    }

    /// `user`'s view of one conversation, if they are in it.
    pub async fn user_conv(&self, user: UserId, conv: ConvId) -> Result<Option<UserConv>, StoreError> {
        self.read(move |txn| {
            let (a, b) = conv.key();
            txn.open_table(USER_CONVS)?.get((user.0, a, b))?.map(|v| Ok(serde_json::from_slice(v.value())?)).transpose()
        })
        .await
    }

    /// Changes `user`'s settings for a conversation they are in; `None` when they are not.
    pub async fn update_user_conv(
        &self,
        user: UserId,
        conv: ConvId,
        f: impl FnOnce(&mut UserConv, u64) + Send + 'static,
    ) -> Result<Option<UserConv>, StoreError> {
        self.write(move |txn| {
            let (a, b) = conv.key();
            let (last, _, _) = head(&txn.open_table(CONV_HEADS)?, (a, b))?;
            let mut convs = txn.open_table(USER_CONVS)?;
            let Some(mut state) = convs.get((user.0, a, b))?.map(|v| serde_json::from_slice::<UserConv>(v.value())).transpose()? else {
                return Ok(None);
            };
            f(&mut state, last);
            let bytes = serde_json::to_vec(&state)?;
            convs.insert((user.0, a, b), bytes.as_slice())?;
            Ok(Some(state))
        })
        .await
    }

    /// The user's conversations with what the list shows, in no particular order.
    pub async fn user_conversations(&self, user: UserId, only: Option<ConvId>) -> Result<Vec<ConvRow>, StoreError> {
        self.read(move |txn| {
            let convs = txn.open_table(USER_CONVS)?;
            let heads = txn.open_table(CONV_HEADS)?;
            let msgs = log::read(txn)?;
            let reads = txn.open_table(READS)?;
            let mentions = txn.open_table(MENTIONS)?;
            let hidden = txn.open_table(HIDDEN_MESSAGES)?;
            let mut out = Vec::new();
            let range = match only {
                Some(c) => {
                    let (a, b) = c.key();
                    (user.0, a, b)..=(user.0, a, b)
                }
                None => (user.0, 0, 0)..=(user.0, u64::MAX, u64::MAX),
            };
            for entry in convs.range(range)? {
                let (k, v) = entry?;
                let (_, a, b) = k.value();
                let state: UserConv = serde_json::from_slice(v.value())?;
                let conv = ConvId::from_key((a, b));
                let (last_seq, _, all_seq) = head(&heads, (a, b))?;
                // The preview is the newest message the user has not deleted for themselves.
                let last_message = msgs.newest_where((a, b), state.first_seq.max(1), last_seq, MAX_PREVIEW_SKIP, |seq| {
                    Ok(hidden.get((user.0, a, b, seq))?.is_some())
                })?;
                let read_seq = reads.get((a, b, user.0))?.map_or(0, |v| v.value()).max(state.first_seq.saturating_sub(1));
                let mentioned =
                    all_seq > read_seq || mentions.range((user.0, a, b, read_seq + 1)..=(user.0, a, b, u64::MAX))?.next().is_some();
                let peer_read_seq = match conv.peer_of(user) {
                    Some(p) => Some(reads.get((a, b, p.0))?.map_or(0, |v| v.value())),
                    None => None,
                };
                out.push(ConvRow { conv, state, last_seq, last_message, read_seq, mentioned, peer_read_seq });
            }
            Ok(out)
        })
        .await
    }

    /// Every conversation that has messages.
    pub async fn all_conversations(&self) -> Result<Vec<ConvId>, StoreError> {
        self.read(|txn| {
            let mut out = Vec::new();
            for e in txn.open_table(CONV_HEADS)?.iter()? {
                let (k, _) = e?;
                out.push(ConvId::from_key(k.value()));
            }
            Ok(out)
        })
        .await
    }

    /// Where every conversation `user` is in stands.
    pub async fn conversation_heads(&self, user: UserId) -> Result<Vec<ConvHead>, StoreError> {
        self.read(move |txn| {
            let convs = txn.open_table(USER_CONVS)?;
            let heads = txn.open_table(CONV_HEADS)?;
            let mut out = Vec::new();
            for entry in convs.range((user.0, 0, 0)..=(user.0, u64::MAX, u64::MAX))? {
                let (k, v) = entry?;
                let (_, a, b) = k.value();
                let state: UserConv = serde_json::from_slice(v.value())?;
                let (seq, rev, _) = head(&heads, (a, b))?;
                out.push(ConvHead { conv: ConvId::from_key((a, b)), last_seq: seq, last_rev: rev, first_seq: state.first_seq });
            }
            Ok(out)
        })
        .await
    }
}
