//! Conversations: who may read and write each one, sending (with replies and mentions),
//! read positions, typing, sync after reconnect, and the conversation and message routes.
//!
//! Architecture invariant: every read or write of a conversation goes through [`access`], and
//! every write that depends on it applies the same rule ([`rules::may`], through [`gate`] or a
//! rule closure) again inside its write transaction. The one shortcut: a 1:1 `send` checks only
//! that the sender is one of the two people before it is queued (`send_access`), and leaves the
//! rule to the gate inside the append's transaction, so that the busiest path makes no read
//! before its write.

pub mod favorites;
pub mod forward;
pub mod routes;
pub mod rules;

pub use rules::Want;

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{Config, DirectPolicy};
use crate::hub::{Frame, Hub};
use crate::ids::{ConvId, UserId};
use crate::outcome::Refusal;
use crate::protocol::{Content, MAX_CLIENT_ID, Message, Role, ServerFrame, SyncCursor, SyncGap};
use crate::push::Push;
use crate::store::facts::ConvFacts;
use crate::store::messages::{Extras, MessageRefusal, SyncFrom};
use crate::store::{Store, StoreError, now_ms};

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

/// Checks that `user` may `want` in `conv`, by [`rules::may`] over the cached state. Writes
/// that depend on it apply the same rule again inside their transaction ([`gate`]).
pub async fn access(store: &Store, config: &Config, user: UserId, conv: ConvId, want: Want) -> Result<Result<Access, Refusal>, StoreError> {
    let policy = config.chat.direct_policy;
    match conv {
        ConvId::Direct(a, b) => {
            // One read for both the peer and the relation: this runs on every send.
            let facts = match conv.peer_of(user) {
                Some(peer) => match store.peer_and_relation(user, peer).await? {
                    Some((disabled, rel)) => ConvFacts::of_direct(disabled, &rel),
                    None => ConvFacts::Outside,
                },
                None => ConvFacts::Outside,
            };
            Ok(rules::may(want, &facts, policy, now_ms()).map(|role| Access { members: vec![a, b], role, first_seq: 1 }))
        }
        ConvId::Group(gid) => {
            let state = store.group(gid).await?;
            let facts = state.as_deref().map_or(ConvFacts::Outside, |s| ConvFacts::of_group(s, user));
            let role = match rules::may(want, &facts, policy, now_ms()) {
                Ok(role) => role,
                Err(r) => return Ok(Err(r)),
            };
            let first_seq = match want {
                Want::Read => store.user_conv(user, conv).await?.map_or(1, |c| c.first_seq.max(1)),
                Want::Write | Want::Record => 1,
            };
            let members = state.map(|s| s.member_ids()).unwrap_or_default();
            Ok(Ok(Access { members, role, first_seq }))
        }
    }
}

/// [`access`] for a `send`. A 1:1 chat's members are in its id, and the rule is applied inside
/// the append's write transaction anyway (the `gate`), so a send to one asks the store nothing
/// before it is queued: no read transaction and no thread hop per message. A refusal comes from
/// the same rule over the same facts, only read inside the transaction. Groups are checked here
/// from the cached group state (their member list is needed for the mentions and the fan-out).
async fn send_access(store: &Store, config: &Config, user: UserId, conv: ConvId) -> Result<Result<Access, Refusal>, StoreError> {
    match conv {
        ConvId::Direct(a, b) => {
            let access = Access { members: vec![a, b], role: None, first_seq: 1 };
            if conv.peer_of(user).is_some() {
                return Ok(Ok(access));
            }
            Ok(rules::may(Want::Write, &ConvFacts::Outside, config.chat.direct_policy, now_ms()).map(|_| access))
        }
        ConvId::Group(_) => access(store, config, user, conv, Want::Write).await,
    }
}

/// The same rule as [`access`], for the store to apply inside the write transaction.
pub fn gate(want: Want, policy: DirectPolicy) -> impl FnOnce(&ConvFacts) -> Result<(), Refusal> + Send + 'static {
    move |facts| rules::may(want, facts, policy, now_ms()).map(|_| ())
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
pub async fn send(store: &Store, hub: &Arc<Hub>, push: &Arc<Push>, config: &Config, user: UserId, conn: u64, out: Outgoing) -> ServerFrame {
    let Outgoing { client_id, conv, content, reply_to, mut mentions, mention_all } = out;
    if client_id.is_empty() || client_id.len() > MAX_CLIENT_ID {
        // Echoed whole (the frame size limit bounds it), so that the client can match the error.
        return refusal_frame(&Refusal::Invalid("client_id must be 1 to 64 bytes.".into()), Some(client_id));
    }
    if let Err(m) = content.validate_from_client() {
        return refusal_frame(&Refusal::Invalid(m.into()), Some(client_id));
    }
    let acc = match send_access(store, config, user, conv).await {
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
    if mention_all && let Err(r) = rules::may_mention_all(acc.role) {
        return refusal_frame(&r, Some(client_id));
    }
    let direct_members = if acc.role.is_none() { acc.members.clone() } else { Vec::new() };
    let (fanout_hub, push) = (hub.clone(), push.clone());
    let recipients = acc.members;
    let deliver = move |m: &Message| {
        let frame: Frame = Arc::from(ServerFrame::message_json(m));
        fanout_hub.deliver(&recipients, &frame, Some(conn));
        push.message(&recipients, m);
    };
    let voice_max_ms = config.limits.voice_max_secs * 1000;
    if let Content::Voice { duration_ms, .. } = &content
        && *duration_ms > voice_max_ms
    {
        let m = format!("A voice message can be at most {} seconds long.", config.limits.voice_max_secs);
        return refusal_frame(&Refusal::Invalid(m), Some(client_id));
    }
    let extras = Extras { reply_to, mentions, mention_all, voice_max_ms: Some(voice_max_ms) };
    let policy = config.chat.direct_policy;
    let gate = move |facts: &ConvFacts| {
        let role = rules::may(Want::Write, facts, policy, now_ms())?;
        if mention_all { rules::may_mention_all(role) } else { Ok(()) }
    };
    match store.append_message(user, conv, direct_members, client_id.clone(), content, extras, gate, deliver).await {
        Ok(Ok(out)) => ServerFrame::Ack { client_id, message: out.message },
        Ok(Err(MessageRefusal::NoSuchMessage)) => {
            refusal_frame(&Refusal::Invalid("The message you reply to does not exist.".into()), Some(client_id))
        }
        Ok(Err(MessageRefusal::Rule(m))) => refusal_frame(&Refusal::Forbidden(m), Some(client_id)),
        Ok(Err(MessageRefusal::Denied(r))) => refusal_frame(&r, Some(client_id)),
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
    match store.mark_read(user, conv, seq, gate(Want::Read, config.chat.direct_policy)).await {
        Ok(Ok(Some(seq))) => {
            let frame = ServerFrame::Read { conv, user, seq };
            let to: Vec<UserId> = if acc.role.is_none() { acc.members } else { vec![user] };
            hub.send(&to, &frame);
            None
        }
        Ok(Ok(None)) => None,
        Ok(Err(r)) => Some(refusal_frame(&r, None)),
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
    let wanted: Vec<SyncFrom> = heads
        .into_iter()
        .filter_map(|h| {
            let (seq, rev) = cursors.get(&h.conv).map_or((0, 0), |c| c.parts());
            (h.last_seq > seq || h.last_rev > rev).then_some(SyncFrom { conv: h.conv, seq, rev, first_seq: h.first_seq })
        })
        .collect();
    let convs: Vec<ConvId> = wanted.iter().map(|w| w.conv).collect();
    let mut frames = Vec::new();
    let (mut reload, mut gaps) = (Vec::new(), Vec::new());
    for (conv, mut c) in convs.into_iter().zip(store.changes_since(wanted, SYNC_CAP).await?) {
        // Messages the user deleted for themselves stay out of every device's sync.
        if !c.new.is_empty() || c.changed.as_ref().is_some_and(|v| !v.is_empty()) {
            let hidden = store.hidden_seqs(user, conv).await?;
            if !hidden.is_empty() {
                c.new.retain(|m| !hidden.contains(&m.seq));
                if let Some(changed) = c.changed.as_mut() {
                    changed.retain(|m| !hidden.contains(&m.seq));
                }
            }
        }
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

/// A change committed between `access` and the write is seen by the write: each case commits
/// its change after the check passed, then writes with the same rule as the routes and frames.
#[cfg(test)]
mod commit_time_tests {
    use super::*;
    use crate::config::Registration;
    use crate::social::{contacts, groups};
    use crate::store::social::{GroupLimits, GroupRecord, GroupStatus};
    use crate::store::{NewUser, StoreOptions};

    const LIMITS: GroupLimits = GroupLimits { max_members: 10, max_groups_per_user: 10, history_for_new_members: true };
    const OWNER: UserId = UserId(1);
    const MEMBER: UserId = UserId(2);

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        (dir, store)
    }

    fn text(t: &str) -> Content {
        Content::Text { text: t.into() }
    }

    async fn send_as(store: &Store, user: UserId, conv: ConvId, client_id: &str) -> Result<Message, MessageRefusal> {
        let direct = match conv {
            ConvId::Direct(a, b) => vec![a, b],
            ConvId::Group(_) => Vec::new(),
        };
        let gate = gate(Want::Write, DirectPolicy::Anyone);
        let out = store.append_message(user, conv, direct, client_id.into(), text("hi"), Extras::default(), gate, |_| {}).await.unwrap();
        out.map(|o| o.message)
    }

    /// A group of OWNER and MEMBER where MEMBER has sent one message.
    async fn group_with_a_message(store: &Store) -> (ConvId, u64) {
        let record = GroupRecord::for_test(OWNER);
        let out = store.create_group(OWNER, record, vec![OWNER, MEMBER], LIMITS, |_| {}).await.unwrap().unwrap();
        let conv = ConvId::Group(out.after.group.id);
        let m = send_as(store, MEMBER, conv, "before").await.unwrap();
        (conv, m.seq)
    }

    type Rule = fn(&crate::store::social::GroupState) -> Result<crate::store::social::GroupChange, Refusal>;

    #[tokio::test]
    async fn group_changes_committed_after_the_check_refuse_sends_edits_reactions_and_records() {
        let cases: [(&str, Rule, &str); 4] = [
            ("removed", |s| groups::kick(s, OWNER, MEMBER), "not_found"),
            ("muted", |s| groups::mute(s, OWNER, MEMBER, Some(u64::MAX)), "forbidden"),
            ("disabled", |s| groups::set_status_by_admin(s, UserId(99), GroupStatus::Disabled), "forbidden"),
            ("dissolved", |s| groups::dissolve(s, OWNER), "forbidden"),
        ];
        let config = Config::default();
        for (name, rule, code) in cases {
            let (_dir, store) = store().await;
            let (conv, mine) = group_with_a_message(&store).await;
            let gid = match conv {
                ConvId::Group(g) => g,
                ConvId::Direct(..) => unreachable!(),
            };
            assert!(access(&store, &config, MEMBER, conv, Want::Write).await.unwrap().is_ok(), "{name}: the check passes");
            store.change_group(gid, OWNER, LIMITS, rule, |_| {}).await.unwrap().unwrap();

            let refused = send_as(&store, MEMBER, conv, "after").await;
            assert!(matches!(&refused, Err(MessageRefusal::Denied(r)) if r.code() == code), "{name}: send {refused:?}");
            let edit = store
                .change_message(
                    MEMBER,
                    conv,
                    mine,
                    |f, m| {
                        rules::may(Want::Write, f, DirectPolicy::Anyone, now_ms()).map_err(MessageRefusal::Denied)?;
                        rules::edit(MEMBER, m, 0, u64::MAX, "changed".into()).map_err(MessageRefusal::Rule)
                    },
                    |_| panic!("nothing is announced"),
                )
                .await
                .unwrap();
            assert!(matches!(edit, Err(MessageRefusal::Denied(_))), "{name}: edit {edit:?}");
            let record = store
                .append_message(
                    MEMBER,
                    conv,
                    Vec::new(),
                    "call".into(),
                    text("call"),
                    Extras::default(),
                    gate(Want::Record, DirectPolicy::Anyone),
                    |_| {},
                )
                .await
                .unwrap();
            assert_eq!(record.is_err(), name != "muted", "{name}: a call record needs an open group, not a voice");

            let (log, _) = store.history(conv, None, None, 100, 1).await.unwrap();
            let texts: Vec<&Content> = log.iter().filter(|m| m.sender == MEMBER).map(|m| &m.content).collect();
            let expected = if name == "muted" { vec![text("hi"), text("call")] } else { vec![text("hi")] };
            assert_eq!(texts, expected.iter().collect::<Vec<_>>(), "{name}: nothing of the member's stored after the change");
        }
    }

    #[tokio::test]
    async fn a_removal_committed_after_the_check_refuses_forwards_and_saves_in_the_transaction() {
        use crate::store::forward::{Forward, ForwardMode, ForwardTarget};
        let (_dir, store) = store().await;
        let (conv, mine) = group_with_a_message(&store).await;
        let gid = match conv {
            ConvId::Group(g) => g,
            ConvId::Direct(..) => unreachable!(),
        };
        let config = Config::default();
        assert!(access(&store, &config, MEMBER, conv, Want::Read).await.unwrap().is_ok(), "the check passes");
        store.change_group(gid, OWNER, LIMITS, |s| groups::kick(s, OWNER, MEMBER), |_| {}).await.unwrap().unwrap();

        let fw = Forward {
            user: MEMBER,
            from: conv,
            seqs: vec![mine],
            mode: ForwardMode::Card,
            targets: vec![ForwardTarget { conv, direct_members: Vec::new() }],
            client_id: "late".into(),
        };
        let read = |f: &ConvFacts| gate(Want::Read, DirectPolicy::Anyone)(f);
        let write = |f: &ConvFacts| gate(Want::Write, DirectPolicy::Anyone)(f);
        let out = store.forward(fw, read, write, |_| panic!("nothing is delivered")).await.unwrap();
        assert!(matches!(out, Err(MessageRefusal::Denied(Refusal::NotFound(_)))), "{:?}", out.err());
        let saved = store.save_favorite(MEMBER, conv, mine, read).await.unwrap();
        assert!(matches!(saved, Err(MessageRefusal::Denied(Refusal::NotFound(_)))), "{:?}", saved.err());
        let (log, _) = store.history(conv, None, None, 100, 1).await.unwrap();
        assert!(log.iter().all(|m| !matches!(m.content, Content::History { .. })), "no card was written");
    }

    #[tokio::test]
    async fn a_removed_member_moves_no_read_position_and_a_muted_one_still_recalls() {
        let (_dir, store) = store().await;
        let (conv, mine) = group_with_a_message(&store).await;
        let gid = match conv {
            ConvId::Group(g) => g,
            ConvId::Direct(..) => unreachable!(),
        };
        store.change_group(gid, OWNER, LIMITS, |s| groups::mute(s, OWNER, MEMBER, Some(u64::MAX)), |_| {}).await.unwrap().unwrap();
        let recall = |f: &ConvFacts, m: &Message| {
            let role = rules::may(Want::Read, f, DirectPolicy::Anyone, now_ms()).map_err(MessageRefusal::Denied)?;
            rules::recall(MEMBER, role, m, m.ts, 1_000).map_err(MessageRefusal::Rule)
        };
        assert!(store.change_message(MEMBER, conv, mine, recall, |_| {}).await.unwrap().is_ok(), "muted members recall their own");

        send_as(&store, OWNER, conv, "owner").await.unwrap();
        store.change_group(gid, OWNER, LIMITS, |s| groups::kick(s, OWNER, MEMBER), |_| {}).await.unwrap().unwrap();
        let read = store.mark_read(MEMBER, conv, u64::MAX, gate(Want::Read, DirectPolicy::Anyone)).await.unwrap();
        assert!(matches!(read, Err(Refusal::NotFound(_))), "{read:?}");
    }

    #[tokio::test]
    async fn a_block_committed_after_the_check_refuses_the_message_both_ways() {
        let (_dir, store) = store().await;
        let mut ids = Vec::new();
        for name in ["ann", "bob"] {
            let new = NewUser {
                username: name.into(),
                password_hash: String::new(),
                nickname: name.into(),
                phone: None,
                email: None,
                invite: None,
            };
            let open = |first, invite: Option<&_>| crate::accounts::registration::admit(Registration::Open, first, invite, now_ms());
            ids.push(store.create_user(new, open).await.unwrap().unwrap().id);
        }
        let (ann, bob) = (ids[0], ids[1]);
        let conv = ConvId::direct(ann, bob).unwrap();
        send_as(&store, ann, conv, "a1").await.unwrap();
        assert!(access(&store, &Config::default(), ann, conv, Want::Write).await.unwrap().is_ok());
        store.change_relation(bob, ann, |rel| contacts::block(rel, 1), |_, _| {}).await.unwrap().unwrap();
        for (who, id) in [(ann, "a2"), (bob, "b1")] {
            let r = send_as(&store, who, conv, id).await;
            assert!(matches!(&r, Err(MessageRefusal::Denied(Refusal::Forbidden(_)))), "{r:?}");
        }
        let (log, _) = store.history(conv, None, None, 100, 1).await.unwrap();
        assert_eq!(log.len(), 1);
        // A resend of what was stored before the block still gets its answer.
        assert_eq!(send_as(&store, ann, conv, "a1").await.unwrap().seq, log[0].seq);
    }
}
