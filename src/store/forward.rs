//! Forwarding: copies of messages, or one chat-history card, written to several conversations
//! in one transaction that checks the forwarder's place in the source and in every target.
//!
//! A forwarded message carries the original's content as stored (files included): the files
//! become readable in a target only through the forwarded message (`FILE_MSGS`), so recalling
//! the forward takes them back there, and nothing else about the original is shared.

use std::collections::HashMap;

use redb::{ReadableTable, WriteTransaction};

use super::client_ids::ClientIds;
use super::facts::{ConvFacts, facts_in_txn};
use super::messages::{MessageRefusal, SendOutcome, UserConv, insert_in_txn};
use super::tables::{CLIENT_IDS, HIDDEN_MESSAGES, USER_CONVS, USERS};
use super::users::load_user;
use super::{Store, StoreError};
use crate::ids::{ConvId, UserId};
use crate::outcome::Refusal;
use crate::protocol::{Content, HistoryItem, MAX_HISTORY_ITEMS, Message};

/// Largest chat-history card, as stored JSON.
pub const MAX_CARD_BYTES: usize = 256 * 1024;

/// How forwarded messages arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardMode {
    /// Each source message becomes a new message of the forwarder, with the same content.
    Copies,
    /// One chat-history card holding all of them.
    Card,
}

/// One conversation to forward into.
#[derive(Clone, Debug)]
pub struct ForwardTarget {
    pub conv: ConvId,
    /// The two users of a 1:1 chat (empty for groups), as for a send.
    pub direct_members: Vec<UserId>,
}

/// A forward as the store runs it.
pub struct Forward {
    pub user: UserId,
    pub from: ConvId,
    /// Source seqs, ascending, without repeats.
    pub seqs: Vec<u64>,
    pub mode: ForwardMode,
    pub targets: Vec<ForwardTarget>,
    /// The client's id for the whole forward; each new message gets one derived from it.
    pub client_id: String,
}

/// What happened in one target: the messages written there (or found, on a resend), or why not.
pub type TargetOutcome = Result<Vec<SendOutcome>, Refusal>;

/// The stored client id of a forwarded message: unique per forward, target and source.
pub fn derived_client_id(client_id: &str, target: ConvId, source: Option<u64>) -> String {
    match source {
        Some(seq) => format!("fw:{client_id}:{target}:{seq}"),
        None => format!("fw:{client_id}:{target}"),
    }
}

/// Whether a message of this kind may be forwarded (and saved): what people wrote, not what
/// the server recorded.
pub fn forwardable(m: &Message) -> bool {
    m.recalled.is_none() && !matches!(m.content, Content::System { .. } | Content::Call { .. } | Content::Recalled {})
}

/// The source messages `user` may read, checked inside `txn`: the gate over the user's place in
/// `conv`, the first seq they may see, and each message's kind.
pub(super) fn readable_sources(
    txn: &WriteTransaction,
    user: UserId,
    conv: ConvId,
    seqs: &[u64],
    read_gate: &dyn Fn(&ConvFacts) -> Result<(), Refusal>,
) -> Result<Result<Vec<Message>, MessageRefusal>, StoreError> {
    if let Err(r) = read_gate(&facts_in_txn(txn, user, conv)?) {
        return Ok(Err(MessageRefusal::Denied(r)));
    }
    let key = conv.key();
    let first_seq = txn
        .open_table(USER_CONVS)?
        .get((user.0, key.0, key.1))?
        .map(|v| serde_json::from_slice::<UserConv>(v.value()))
        .transpose()?
        .map_or(1, |c| c.first_seq.max(1));
    let msgs = super::log::write(txn)?;
    let hidden = txn.open_table(HIDDEN_MESSAGES)?;
    let mut out = Vec::with_capacity(seqs.len());
    for &seq in seqs {
        // Before the user joined, or deleted by them for themselves: not theirs to pass on.
        if seq < first_seq || hidden.get((user.0, key.0, key.1, seq))?.is_some() {
            return Ok(Err(MessageRefusal::NoSuchMessage));
        }
        let Some(m) = msgs.get((key.0, key.1, seq))? else {
            return Ok(Err(MessageRefusal::NoSuchMessage));
        };
        if !forwardable(&m) {
            return Ok(Err(MessageRefusal::Rule("Recalled, system and call messages cannot be forwarded or saved.")));
        }
        out.push(m);
    }
    Ok(Ok(out))
}

/// The display name of `user` now, or their id when the account is gone.
pub(super) fn display_name(txn: &WriteTransaction, user: UserId, cache: &mut HashMap<UserId, String>) -> Result<String, StoreError> {
    if let Some(n) = cache.get(&user) {
        return Ok(n.clone());
    }
    let name = load_user(&txn.open_table(USERS)?, user.0)?.map_or_else(|| format!("#{}", user.0), |u| u.nickname);
    cache.insert(user, name.clone());
    Ok(name)
}

/// A chat-history card of `sources`, cards among them flattened.
fn card_of(txn: &WriteTransaction, sources: &[Message]) -> Result<Result<Content, MessageRefusal>, StoreError> {
    let mut names = HashMap::new();
    let mut items = Vec::new();
    for m in sources {
        match &m.content {
            Content::History { items: inner } => items.extend(inner.iter().cloned()),
            c => items.push(HistoryItem { sender: m.sender, name: display_name(txn, m.sender, &mut names)?, ts: m.ts, content: c.clone() }),
        }
        if items.len() > MAX_HISTORY_ITEMS {
            return Ok(Err(MessageRefusal::Rule("A chat history holds at most 100 messages.")));
        }
    }
    let card = Content::History { items };
    if serde_json::to_vec(&card)?.len() > MAX_CARD_BYTES {
        return Ok(Err(MessageRefusal::Rule("These messages are too large for one chat history (256 KiB).")));
    }
    Ok(Ok(card))
}

/// The message `sender` stored under `client_id`, if any.
fn stored(txn: &WriteTransaction, ids: &ClientIds, sender: UserId, client_id: &str) -> Result<Option<Message>, StoreError> {
    let Some(k) = ids.get(&txn.open_table(CLIENT_IDS)?, sender, client_id)? else { return Ok(None) };
    let m =
        super::log::write(txn)?.get(k)?.ok_or_else(|| StoreError::Corrupt(format!("client id {client_id} points at a missing message")))?;
    Ok(Some(m))
}

impl Store {
    /// Runs a forward: checks, inside one write transaction, that `read_gate` lets the user read
    /// the source and that every source message is readable and forwardable (else nothing is
    /// written), then per target that `write_gate` lets them write there, and writes the copies
    /// or the card. A target refused writes nothing; the others still get theirs. A resend with
    /// the same client id finds what the first one wrote. `after` runs after the commit with the
    /// outcome (delivery).
    pub async fn forward(
        &self,
        fw: Forward,
        read_gate: impl Fn(&ConvFacts) -> Result<(), Refusal> + Send + 'static,
        write_gate: impl Fn(&ConvFacts) -> Result<(), Refusal> + Send + 'static,
        after: impl FnOnce(&[(ConvId, TargetOutcome)]) + Send + 'static,
    ) -> Result<Result<Vec<(ConvId, TargetOutcome)>, MessageRefusal>, StoreError> {
        let client_ids = self.client_ids.clone();
        self.write_then(
            move |txn| {
                let sources = match readable_sources(txn, fw.user, fw.from, &fw.seqs, &read_gate)? {
                    Ok(s) => s,
                    Err(r) => return Ok(Err(r)),
                };
                let contents: Vec<(Option<u64>, Content)> = match fw.mode {
                    ForwardMode::Copies => sources.iter().map(|m| (Some(m.seq), m.content.clone())).collect(),
                    ForwardMode::Card => match card_of(txn, &sources)? {
                        Ok(card) => vec![(None, card)],
                        Err(r) => return Ok(Err(r)),
                    },
                };
                let mut results = Vec::with_capacity(fw.targets.len());
                for t in &fw.targets {
                    let ids: Vec<String> = contents.iter().map(|(s, _)| derived_client_id(&fw.client_id, t.conv, *s)).collect();
                    // A resend: the first forward wrote all of this target's messages or none.
                    let mut found = Vec::new();
                    for id in &ids {
                        if let Some(m) = stored(txn, &client_ids, fw.user, id)? {
                            found.push(SendOutcome { message: m, duplicate: true });
                        }
                    }
                    if !found.is_empty() {
                        results.push((t.conv, Ok(found)));
                        continue;
                    }
                    if let Err(r) = write_gate(&facts_in_txn(txn, fw.user, t.conv)?) {
                        results.push((t.conv, Err(r)));
                        continue;
                    }
                    let mut written = Vec::with_capacity(contents.len());
                    for (id, (_, content)) in ids.into_iter().zip(&contents) {
                        let m = Message::new(t.conv, 0, fw.user, id, 0, content.clone());
                        written.push(SendOutcome { message: insert_in_txn(txn, &client_ids, m, &t.direct_members)?, duplicate: false });
                    }
                    results.push((t.conv, Ok(written)));
                }
                Ok(Ok(results))
            },
            move |out: &Result<Vec<(ConvId, TargetOutcome)>, MessageRefusal>| {
                if let Ok(results) = out {
                    after(results);
                }
            },
        )
        .await
    }
}
