//! Conversations: who may read and write each one, sending (with replies and mentions),
//! read positions, typing, sync after reconnect, and the conversation and message routes.
//!
//! Architecture invariant: every read or write of a conversation goes through [`access`], the
//! one place that decides membership, blocks, the direct-message policy and group mutes.

pub mod routes;

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{Config, DirectPolicy};
use crate::hub::{Frame, Hub};
use crate::ids::{ConvId, UserId};
use crate::outcome::Refusal;
use crate::protocol::{Content, MAX_CLIENT_ID, Message, Role, ServerFrame, SyncCursor, SyncGap};
use crate::social::contacts::blocked_either_way;
use crate::store::messages::{Extras, MessageRefusal};
use crate::store::social::GroupStatus;
use crate::store::{Store, StoreError, now_ms};

/// What a user may do in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Read,
    Write,
}

/// The caller's place in a conversation, once `access` let them in.
#[derive(Debug, Clone)]
pub struct Access {
    /// Everyone whose devices see this conversation.
    pub members: Vec<UserId>,
    /// The caller's role in a group (`None` in a 1:1 chat).
    pub role: Option<Role>,
    /// The first seq the caller may read.
    pub first_seq: u64,
}

/// Checks that `user` may `want` in `conv`.
pub async fn access(store: &Store, config: &Config, user: UserId, conv: ConvId, want: Want) -> Result<Result<Access, Refusal>, StoreError> {
    let not_found = Refusal::NotFound("No such conversation.");
    match conv {
        ConvId::Direct(a, b) => {
            let Some(peer) = conv.peer_of(user) else { return Ok(Err(not_found)) };
            // One read for both the peer and the relation: this runs on every send.
            let Some((peer_disabled, rel)) = store.peer_and_relation(user, peer).await? else { return Ok(Err(not_found)) };
            if want == Want::Write {
                if peer_disabled {
                    return Ok(Err(Refusal::Forbidden("This account has been disabled.")));
                }
                if blocked_either_way(&rel) {
                    return Ok(Err(Refusal::Forbidden("You cannot message this user.")));
                }
                if config.chat.direct_policy == DirectPolicy::Contacts && !(rel.mine.contact && rel.theirs.contact) {
                    return Ok(Err(Refusal::Forbidden("You can only message your contacts.")));
                }
            }
            Ok(Ok(Access { members: vec![a, b], role: None, first_seq: 1 }))
        }
        ConvId::Group(gid) => {
            let Some(state) = store.group(gid).await? else { return Ok(Err(not_found)) };
            let Some(me) = state.members.get(&user) else { return Ok(Err(not_found)) };
            if want == Want::Write {
                match state.group.status {
                    GroupStatus::Active => {}
                    GroupStatus::Disabled => return Ok(Err(Refusal::Forbidden("This group has been disabled by an administrator."))),
                    GroupStatus::Dissolved => return Ok(Err(Refusal::Forbidden("This group was dissolved."))),
                }
                if me.muted_until.is_some_and(|t| t > now_ms()) {
                    return Ok(Err(Refusal::Forbidden("You are muted in this group.")));
                }
            }
            let first_seq = match want {
                Want::Write => 1,
                Want::Read => store.user_conv(user, conv).await?.map_or(1, |c| c.first_seq.max(1)),
            };
            Ok(Ok(Access { members: state.member_ids(), role: Some(me.role), first_seq }))
        }
    }
}

fn refusal_frame(r: &Refusal, client_id: Option<String>) -> ServerFrame {
    ServerFrame::error(client_id, r.code(), r.message())
}

/// A `send` frame's fields.
pub struct Outgoing {
    pub client_id: String,
    pub conv: ConvId,
    pub content: Content,
    pub reply_to: Option<u64>,
    pub mentions: Vec<UserId>,
    pub mention_all: bool,
}

/// Handles a `send` frame: validates, stores (or finds the earlier copy), delivers to every
/// other device of every member in commit order, and returns the answer for the sender.
pub async fn send(store: &Store, hub: &Arc<Hub>, config: &Config, user: UserId, conn: u64, out: Outgoing) -> ServerFrame {
    let Outgoing { client_id, conv, content, reply_to, mut mentions, mention_all } = out;
    if client_id.is_empty() || client_id.len() > MAX_CLIENT_ID {
        return refusal_frame(
            &Refusal::Invalid("client_id must be 1 to 64 bytes.".into()),
            Some(client_id.chars().take(MAX_CLIENT_ID).collect()),
        );
    }
    if let Err(m) = content.validate_from_client() {
        return refusal_frame(&Refusal::Invalid(m.into()), Some(client_id));
    }
    let acc = match access(store, config, user, conv, Want::Write).await {
        Ok(Ok(a)) => a,
        Ok(Err(r)) => return refusal_frame(&r, Some(client_id)),
        Err(e) => return store_failure(&e, client_id),
    };
    mentions.sort();
    mentions.dedup();
    mentions.retain(|u| *u != user);
    if mentions.len() > 50 || mentions.iter().any(|u| !acc.members.contains(u)) {
        return refusal_frame(&Refusal::Invalid("You can mention up to 50 people in this conversation.".into()), Some(client_id));
    }
    if mention_all && acc.role.is_none_or(|r| r < Role::Admin) {
        return refusal_frame(&Refusal::Forbidden("Only group owners and admins can mention everyone."), Some(client_id));
    }
    let direct_members = if acc.role.is_none() { acc.members.clone() } else { Vec::new() };
    let fanout_hub = hub.clone();
    let recipients = acc.members;
    let deliver = move |m: &Message| {
        let frame: Frame = Arc::from(ServerFrame::Message { message: m.clone() }.to_json());
        fanout_hub.deliver(&recipients, &frame, Some(conn));
    };
    let extras = Extras { reply_to, mentions, mention_all };
    match store.append_message(user, conv, direct_members, client_id.clone(), content, extras, deliver).await {
        Ok(Ok(out)) => ServerFrame::Ack { client_id, message: out.message },
        Ok(Err(MessageRefusal::NoSuchMessage)) => {
            refusal_frame(&Refusal::Invalid("The message you reply to does not exist.".into()), Some(client_id))
        }
        Ok(Err(MessageRefusal::Rule(m))) => refusal_frame(&Refusal::Forbidden(m), Some(client_id)),
        Err(e) => store_failure(&e, client_id),
    }
}

fn store_failure(e: &StoreError, client_id: String) -> ServerFrame {
    tracing::error!(error = %e, "send failed in the store");
    // Not stored: the client keeps the message in its outbox and may retry with the same id. The
    // code stays `unavailable` (clients retry it); the text says when the disk is full.
    let message = match e {
        StoreError::Full => "The server's storage is full, so the message was not saved. It will be retried.",
        StoreError::Unavailable => "The server's storage is recovering from a failure, so the message was not saved. It will be retried.",
        _ => "The message could not be saved. It will be retried.",
    };
    ServerFrame::error(Some(client_id), "unavailable", message)
}

/// Handles a `read` frame: moves the read position and tells the reader's devices (and, in a
/// 1:1 chat, the other person).
pub async fn read(store: &Store, hub: &Hub, config: &Config, user: UserId, conv: ConvId, seq: u64) -> Option<ServerFrame> {
    let acc = match access(store, config, user, conv, Want::Read).await {
        Ok(Ok(a)) => a,
        Ok(Err(r)) => return Some(refusal_frame(&r, None)),
        Err(e) => {
            tracing::error!(error = %e, "read position failed");
            return Some(ServerFrame::error(None, "unavailable", "Try again."));
        }
    };
    match store.mark_read(user, conv, seq).await {
        Ok(Some(seq)) => {
            let frame = ServerFrame::Read { conv, user, seq };
            let to: Vec<UserId> = if acc.role.is_none() { acc.members } else { vec![user] };
            hub.send(&to, &frame);
            None
        }
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "read position failed");
            Some(ServerFrame::error(None, "unavailable", "Try again."))
        }
    }
}

/// Groups larger than this get no typing indicators: the fan-out is not worth it.
const TYPING_MAX_MEMBERS: usize = 500;

/// Handles a `typing` frame: forwards it to the other members' devices; nothing is stored.
pub async fn typing(store: &Store, hub: &Hub, config: &Config, user: UserId, conv: ConvId) -> Option<ServerFrame> {
    match access(store, config, user, conv, Want::Write).await {
        Ok(Ok(acc)) => {
            if acc.members.len() <= TYPING_MAX_MEMBERS {
                let others: Vec<UserId> = acc.members.into_iter().filter(|u| *u != user).collect();
                hub.send(&others, &ServerFrame::Typing { conv, user });
            }
            None
        }
        Ok(Err(r)) => Some(refusal_frame(&r, None)),
        Err(_) => None,
    }
}

/// Most messages one conversation contributes to a sync; older ones are paged with history.
pub const SYNC_CAP: usize = 100;

/// What a reconnecting client is missing: new messages and changed ones, per conversation in
/// order, then the `synced` frame naming the conversations to reload and the messages left out.
pub async fn sync(store: &Store, user: UserId, cursors: &HashMap<ConvId, SyncCursor>) -> Result<Vec<ServerFrame>, StoreError> {
    let heads = store.conversation_heads(user).await?;
    let wanted: Vec<(ConvId, u64, u64, u64)> = heads
        .into_iter()
        .filter_map(|(conv, seq, rev, first)| {
            let (c_seq, c_rev) = cursors.get(&conv).map_or((0, 0), |c| c.parts());
            (seq > c_seq || rev > c_rev).then_some((conv, c_seq, c_rev, first))
        })
        .collect();
    let convs: Vec<ConvId> = wanted.iter().map(|w| w.0).collect();
    let mut frames = Vec::new();
    let (mut reload, mut gaps) = (Vec::new(), Vec::new());
    for (conv, c) in convs.into_iter().zip(store.changes_since(wanted, SYNC_CAP).await?) {
        match c.changed {
            Some(changed) => frames.extend(changed.into_iter().map(|message| ServerFrame::Update { message })),
            None => reload.push(conv),
        }
        if let Some(s) = c.skipped {
            gaps.push(SyncGap { conv, after: s.after, before: s.before });
        }
        frames.extend(c.new.into_iter().map(|message| ServerFrame::Message { message }));
    }
    frames.push(ServerFrame::Synced { reload, gaps });
    Ok(frames)
}
