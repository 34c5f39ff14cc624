//! The rules of conversations and messages, as pure functions of state the caller loaded: who
//! may read, write or record in a conversation (membership, blocks, the direct-message policy,
//! group status, mutes, mentioning everyone), and what may be done to a message (recall and edit
//! windows, who recalls what, the reaction cap).
//!
//! Each rule runs twice for a write: `chat::access` applies it to the cached state before the
//! work (a quick answer, the member list for delivery), and the store applies it again inside
//! the write transaction through the gate or rule closure the write takes, so a removal, block,
//! mute or status change committed in between cannot let the write through.

use std::collections::BTreeMap;

use crate::config::DirectPolicy;
use crate::ids::UserId;
use crate::outcome::Refusal;
use crate::protocol::{Content, Message, Role};
use crate::store::facts::ConvFacts;
use crate::store::messages::MessageChange;
use crate::store::social::GroupStatus;

/// What a user wants to do in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Read it (history, read positions, recalling one's own messages).
    Read,
    /// Write to it (send, edit, react, type, call).
    Write,
    /// Have the server record something there on the user's behalf (the record of a call that
    /// ended): the conversation must still be open, mutes do not matter.
    Record,
}

/// Distinct emoji one message can carry.
pub const MAX_REACTIONS: usize = 20;

/// Whether the user described by `facts` may `want`; their role in a group (`None` in a 1:1
/// chat).
pub fn may(want: Want, facts: &ConvFacts, policy: DirectPolicy, now: u64) -> Result<Option<Role>, Refusal> {
    match facts {
        ConvFacts::Outside => Err(Refusal::NotFound("No such conversation.")),
        ConvFacts::Direct { peer_disabled, mine, theirs } => {
            if want == Want::Write {
                if *peer_disabled {
                    return Err(Refusal::Forbidden("This account has been disabled."));
                }
                if mine.blocked || theirs.blocked {
                    return Err(Refusal::Forbidden("You cannot message this user."));
                }
                if policy == DirectPolicy::Contacts && !(mine.contact && theirs.contact) {
                    return Err(Refusal::Forbidden("You can only message your contacts."));
                }
            }
            Ok(None)
        }
        ConvFacts::Group { status, me } => {
            if want != Want::Read {
                match status {
                    GroupStatus::Active => {}
                    GroupStatus::Disabled => return Err(Refusal::Forbidden("This group has been disabled by an administrator.")),
                    GroupStatus::Dissolved => return Err(Refusal::Forbidden("This group was dissolved.")),
                }
            }
            if want == Want::Write && me.muted_until.is_some_and(|t| t > now) {
                return Err(Refusal::Forbidden("You are muted in this group."));
            }
            Ok(Some(me.role))
        }
    }
}

/// `@all` is for group owners and admins.
pub fn may_mention_all(role: Option<Role>) -> Result<(), Refusal> {
    if role.is_some_and(|r| r >= Role::Admin) {
        Ok(())
    } else {
        Err(Refusal::Forbidden("Only group owners and admins can mention everyone."))
    }
}

fn live(m: &Message) -> Result<(), &'static str> {
    if m.recalled.is_some() { Err("That message was recalled.") } else { Ok(()) }
}

/// Senders recall their own messages within `window_ms`; group owners and admins recall any
/// message at any time; system messages stay.
pub fn recall(me: UserId, role: Option<Role>, m: &Message, now: u64, window_ms: u64) -> Result<MessageChange, &'static str> {
    live(m)?;
    if matches!(m.content, Content::System { .. }) {
        return Err("System messages cannot be recalled.");
    }
    let moderator = role.is_some_and(|r| r >= Role::Admin);
    if moderator || (m.sender == me && now.saturating_sub(m.ts) <= window_ms) {
        Ok(MessageChange::Recall { by: me })
    } else if m.sender == me {
        Err("It is too late to recall this message.")
    } else {
        Err("You can only recall your own messages.")
    }
}

/// Senders edit their own text messages within `window_ms`.
pub fn edit(me: UserId, m: &Message, now: u64, window_ms: u64, text: String) -> Result<MessageChange, &'static str> {
    live(m)?;
    if m.sender != me {
        return Err("You can only edit your own messages.");
    }
    if !matches!(m.content, Content::Text { .. }) {
        return Err("Only text messages can be edited.");
    }
    if now.saturating_sub(m.ts) > window_ms {
        return Err("It is too late to edit this message.");
    }
    Ok(MessageChange::Edit { text })
}

/// Adds (`on`) or takes back `me`'s reaction `emoji`: the message's new reactions, or
/// `Unchanged` when it already was so. At most [`MAX_REACTIONS`] distinct emoji.
pub fn react(me: UserId, m: &Message, emoji: String, on: bool) -> Result<MessageChange, &'static str> {
    live(m)?;
    if matches!(m.content, Content::System { .. }) {
        return Err("System messages take no reactions.");
    }
    let had = m.reactions.get(&emoji).is_some_and(|w| w.contains(&me));
    if on == had {
        return Ok(MessageChange::Unchanged);
    }
    let mut reactions: BTreeMap<String, Vec<UserId>> = m.reactions.clone();
    if on {
        if !reactions.contains_key(&emoji) && reactions.len() >= MAX_REACTIONS {
            return Err("A message can have at most 20 different reactions.");
        }
        reactions.entry(emoji).or_default().push(me);
    } else if let Some(who) = reactions.get_mut(&emoji) {
        who.retain(|u| *u != me);
        if who.is_empty() {
            reactions.remove(&emoji);
        }
    }
    Ok(MessageChange::Reactions(reactions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ConvId;
    use crate::store::social::{ContactSide, MemberRecord};

    const ME: UserId = UserId(1);
    const OTHER: UserId = UserId(2);

    fn direct(peer_disabled: bool, mine: (bool, bool), theirs: (bool, bool)) -> ConvFacts {
        let side = |(contact, blocked)| ContactSide { contact, blocked, since: 0 };
        ConvFacts::Direct { peer_disabled, mine: side(mine), theirs: side(theirs) }
    }

    fn group(status: GroupStatus, role: Role, muted_until: Option<u64>) -> ConvFacts {
        ConvFacts::Group { status, me: MemberRecord { role, joined_at: 0, muted_until } }
    }

    fn msg(sender: UserId, ts: u64, content: Content) -> Message {
        Message::new(ConvId::Group(1), 5, sender, "c1".into(), ts, content)
    }

    fn text(t: &str) -> Content {
        Content::Text { text: t.into() }
    }

    #[test]
    fn outsiders_may_do_nothing_and_learn_nothing() {
        for want in [Want::Read, Want::Write, Want::Record] {
            assert_eq!(may(want, &ConvFacts::Outside, DirectPolicy::Anyone, 0), Err(Refusal::NotFound("No such conversation.")));
        }
    }

    #[test]
    fn a_block_either_way_stops_writing_but_not_reading() {
        for facts in [direct(false, (false, true), (false, false)), direct(false, (false, false), (false, true))] {
            assert!(matches!(may(Want::Write, &facts, DirectPolicy::Anyone, 0), Err(Refusal::Forbidden(_))));
            assert_eq!(may(Want::Read, &facts, DirectPolicy::Anyone, 0), Ok(None));
        }
    }

    #[test]
    fn the_contacts_policy_needs_both_sides_and_a_disabled_peer_takes_no_messages() {
        let one_sided = direct(false, (true, false), (false, false));
        assert_eq!(may(Want::Write, &one_sided, DirectPolicy::Anyone, 0), Ok(None));
        assert!(may(Want::Write, &one_sided, DirectPolicy::Contacts, 0).is_err());
        assert_eq!(may(Want::Write, &direct(false, (true, false), (true, false)), DirectPolicy::Contacts, 0), Ok(None));
        assert_eq!(
            may(Want::Write, &direct(true, (true, false), (true, false)), DirectPolicy::Anyone, 0),
            Err(Refusal::Forbidden("This account has been disabled."))
        );
    }

    #[test]
    fn a_muted_member_reads_and_gets_records_but_does_not_write_until_the_mute_ends() {
        let muted = group(GroupStatus::Active, Role::Member, Some(100));
        assert!(may(Want::Write, &muted, DirectPolicy::Anyone, 99).is_err());
        assert_eq!(may(Want::Write, &muted, DirectPolicy::Anyone, 100), Ok(Some(Role::Member)));
        assert_eq!(may(Want::Read, &muted, DirectPolicy::Anyone, 0), Ok(Some(Role::Member)));
        assert_eq!(may(Want::Record, &muted, DirectPolicy::Anyone, 0), Ok(Some(Role::Member)));
    }

    #[test]
    fn a_disabled_or_dissolved_group_is_read_only() {
        for status in [GroupStatus::Disabled, GroupStatus::Dissolved] {
            let f = group(status, Role::Owner, None);
            assert_eq!(may(Want::Read, &f, DirectPolicy::Anyone, 0), Ok(Some(Role::Owner)));
            assert!(may(Want::Write, &f, DirectPolicy::Anyone, 0).is_err());
            assert!(may(Want::Record, &f, DirectPolicy::Anyone, 0).is_err());
        }
    }

    #[test]
    fn only_owners_and_admins_mention_everyone() {
        assert!(may_mention_all(None).is_err());
        assert!(may_mention_all(Some(Role::Member)).is_err());
        assert!(may_mention_all(Some(Role::Admin)).is_ok());
        assert!(may_mention_all(Some(Role::Owner)).is_ok());
    }

    #[test]
    fn senders_recall_within_the_window_and_moderators_at_any_time() {
        let mine = msg(ME, 1_000, text("hi"));
        assert!(matches!(recall(ME, Some(Role::Member), &mine, 3_000, 2_000), Ok(MessageChange::Recall { by: ME })));
        assert_eq!(recall(ME, Some(Role::Member), &mine, 3_001, 2_000).err(), Some("It is too late to recall this message."));
        let theirs = msg(OTHER, 1_000, text("hi"));
        assert_eq!(recall(ME, Some(Role::Member), &theirs, 1_000, 2_000).err(), Some("You can only recall your own messages."));
        assert_eq!(recall(ME, None, &theirs, 1_000, 2_000).err(), Some("You can only recall your own messages."));
        assert!(recall(ME, Some(Role::Admin), &theirs, 1_000_000, 2_000).is_ok());
        let system = msg(OTHER, 0, Content::System { event: crate::protocol::SystemEvent::ContactAccepted });
        assert!(recall(ME, Some(Role::Owner), &system, 0, 2_000).is_err());
        let mut gone = mine.clone();
        gone.recalled = Some(crate::protocol::Recall { by: ME, at: 2_000 });
        assert_eq!(recall(ME, Some(Role::Owner), &gone, 2_000, 2_000).err(), Some("That message was recalled."));
    }

    #[test]
    fn only_ones_own_text_is_edited_and_only_within_the_window() {
        let mine = msg(ME, 0, text("hi"));
        assert!(matches!(edit(ME, &mine, 10, 10, "ho".into()), Ok(MessageChange::Edit { .. })));
        assert!(edit(ME, &mine, 11, 10, "ho".into()).is_err());
        assert!(edit(OTHER, &mine, 0, 10, "ho".into()).is_err());
        assert!(edit(ME, &msg(ME, 0, Content::Emoji { emoji: "👍".into() }), 0, 10, "ho".into()).is_err());
    }

    #[test]
    fn reactions_toggle_per_user_and_stop_at_twenty_distinct_emoji() {
        let m = msg(OTHER, 0, text("hi"));
        let MessageChange::Reactions(after) = react(ME, &m, "👍".into(), true).unwrap() else { panic!("a change") };
        assert_eq!(after.get("👍"), Some(&vec![ME]));
        let mut with = m.clone();
        with.reactions = after;
        assert!(matches!(react(ME, &with, "👍".into(), true), Ok(MessageChange::Unchanged)));
        let MessageChange::Reactions(back) = react(ME, &with, "👍".into(), false).unwrap() else { panic!("a change") };
        assert!(back.is_empty(), "the last reaction of an emoji removes the emoji");
        assert!(matches!(react(ME, &m, "👍".into(), false), Ok(MessageChange::Unchanged)));

        let mut full = m.clone();
        for i in 0..MAX_REACTIONS {
            full.reactions.insert(format!("e{i}"), vec![OTHER]);
        }
        assert!(react(ME, &full, "new".into(), true).is_err());
        assert!(react(ME, &full, "e3".into(), true).is_ok(), "joining an existing emoji is always allowed");
    }
}
