//! What the conversation rules (`chat::rules`) decide from: one user's place in one
//! conversation, loaded either from the cached group states (before the work) or inside the
//! write transaction that depends on it (so a change committed in between is seen).

use redb::{ReadableTable, WriteTransaction};

use super::StoreError;
use super::batch::MessageTables;
use super::social::{ContactSide, GroupState, GroupStatus, MemberRecord, Relation};
use super::tables::{CONTACTS, GROUPS, MEMBERS, USERS};
use crate::ids::{ConvId, UserId};

/// One user's place in one conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConvFacts {
    /// Not one of the two people of this 1:1 chat, the other account is gone, not a member of
    /// this group, or no such group.
    Outside,
    /// A 1:1 chat, seen from the user.
    Direct { peer_disabled: bool, mine: ContactSide, theirs: ContactSide },
    /// A group the user is a member of.
    Group { status: GroupStatus, me: MemberRecord },
}

impl ConvFacts {
    /// From a group state (the cached one, for the checks before the work).
    pub fn of_group(state: &GroupState, user: UserId) -> ConvFacts {
        match state.members.get(&user) {
            Some(me) => ConvFacts::Group { status: state.group.status, me: me.clone() },
            None => ConvFacts::Outside,
        }
    }

    /// From the relation with the other person and whether their account is disabled.
    pub fn of_direct(peer_disabled: bool, rel: &Relation) -> ConvFacts {
        ConvFacts::Direct { peer_disabled, mine: rel.mine, theirs: rel.theirs }
    }
}

/// `user`'s place in `conv` as this transaction sees it, including whatever earlier writes of
/// the same batch changed: a few point reads, no scans.
pub(super) fn facts_in_txn(txn: &WriteTransaction, user: UserId, conv: ConvId) -> Result<ConvFacts, StoreError> {
    match conv {
        ConvId::Direct(..) => direct(&txn.open_table(USERS)?, &txn.open_table(CONTACTS)?, user, conv),
        ConvId::Group(gid) => group(&txn.open_table(MEMBERS)?, &txn.open_table(GROUPS)?, gid, user),
    }
}

/// The same, read through the message tables a batch keeps open (`batch.rs`).
pub(super) fn facts_in(t: &MessageTables<'_>, user: UserId, conv: ConvId) -> Result<ConvFacts, StoreError> {
    match conv {
        ConvId::Direct(..) => direct(&t.users, &t.contacts, user, conv),
        ConvId::Group(gid) => group(&t.members, &t.groups, gid, user),
    }
}

fn direct(
    users: &impl ReadableTable<u64, &'static [u8]>,
    contacts: &impl ReadableTable<(u64, u64), &'static [u8]>,
    user: UserId,
    conv: ConvId,
) -> Result<ConvFacts, StoreError> {
    let Some(peer) = conv.peer_of(user) else { return Ok(ConvFacts::Outside) };
    let Some(record) = super::users::load_user(users, peer.0)? else { return Ok(ConvFacts::Outside) };
    let side = |a: UserId, b: UserId| -> Result<ContactSide, StoreError> {
        Ok(contacts.get((a.0, b.0))?.map(|v| serde_json::from_slice(v.value())).transpose()?.unwrap_or_default())
    };
    Ok(ConvFacts::Direct { peer_disabled: record.disabled, mine: side(user, peer)?, theirs: side(peer, user)? })
}

fn group(
    members: &impl ReadableTable<(u64, u64), &'static [u8]>,
    groups: &impl ReadableTable<u64, &'static [u8]>,
    gid: u64,
    user: UserId,
) -> Result<ConvFacts, StoreError> {
    let Some(me) = members.get((gid, user.0))?.map(|v| serde_json::from_slice::<MemberRecord>(v.value())).transpose()? else {
        return Ok(ConvFacts::Outside);
    };
    let Some(group) = groups.get(gid)?.map(|v| serde_json::from_slice::<super::social::GroupRecord>(v.value())).transpose()? else {
        return Ok(ConvFacts::Outside);
    };
    Ok(ConvFacts::Group { status: group.status, me })
}
