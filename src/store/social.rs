//! Contacts, contact requests, groups, members and join applications.
//!
//! Each change loads the state it concerns inside the write transaction, asks a rule (a pure
//! function from the feature) what to do, and applies the answer; so the rules are tested
//! without a database and two racing changes cannot both pass on stale state.

use std::collections::BTreeMap;
use std::sync::Arc;

use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::client_ids::ClientIds;
use super::messages::{UserConv, append_system_in_txn};
use super::tables::{
    APPLICATIONS, CONTACTS, CONV_HEADS, GROUP_INVITE_TOKENS, GROUP_TOKENS, GROUPS, MEMBERS, META, REQUESTS, REQUESTS_OUT, USER_CONVS,
};
use super::{Store, StoreError, now_ms};
use crate::ids::{ConvId, UserId};
use crate::outcome::Refusal;
use crate::protocol::{JoinMode, Message, RequestStatus, Role, SystemEvent};

/// One user's side of a relation with another.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactSide {
    /// The other user is in my contacts.
    pub contact: bool,
    /// I block the other user.
    pub blocked: bool,
    pub since: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub message: String,
    pub status: RequestStatus,
    pub created_at: u64,
    pub updated_at: u64,
}

/// Everything between two users, seen from `me`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Relation {
    pub mine: ContactSide,
    pub theirs: ContactSide,
    /// My request to them.
    pub outgoing: Option<RequestRecord>,
    /// Their request to me.
    pub incoming: Option<RequestRecord>,
}

/// What a contact rule decided; `None` fields stay as they are.
#[derive(Clone, Debug, Default)]
pub struct RelationChange {
    pub mine: Option<ContactSide>,
    pub theirs: Option<ContactSide>,
    pub outgoing: Option<Option<RequestRecord>>,
    pub incoming: Option<Option<RequestRecord>>,
    /// Record "you are now contacts" in the 1:1 conversation.
    pub became_contacts: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupStatus {
    Active,
    Disabled,
    Dissolved,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub id: u64,
    pub name: String,
    pub notice: String,
    pub avatar: Option<String>,
    pub join_mode: JoinMode,
    pub owner: UserId,
    pub created_at: u64,
    pub status: GroupStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub role: Role,
    pub joined_at: u64,
    pub muted_until: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    pub message: String,
    pub created_at: u64,
}

/// A group with its members and pending applications.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupState {
    pub group: GroupRecord,
    pub members: BTreeMap<UserId, MemberRecord>,
    pub applications: BTreeMap<UserId, Application>,
}

impl GroupState {
    pub fn member_ids(&self) -> Vec<UserId> {
        self.members.keys().copied().collect()
    }
}

/// What a group rule decided.
#[derive(Clone, Debug, Default)]
pub struct GroupChange {
    pub group: Option<GroupRecord>,
    /// Members to add or update (`Some`) or remove (`None`).
    pub members: Vec<(UserId, Option<MemberRecord>)>,
    pub applications: Vec<(UserId, Option<Application>)>,
    /// Recorded in the group's conversation, in order, as sent by the actor.
    pub events: Vec<SystemEvent>,
}

/// Limits a group change is checked against.
#[derive(Clone, Copy, Debug)]
pub struct GroupLimits {
    pub max_members: usize,
    pub max_groups_per_user: usize,
    /// New members read the history from before they joined.
    pub history_for_new_members: bool,
}

/// The result of a committed group change.
#[derive(Clone, Debug)]
pub struct GroupOutcome {
    pub before: Option<GroupState>,
    pub after: GroupState,
    pub messages: Vec<Message>,
}

pub type GroupCache = Arc<std::sync::RwLock<std::collections::HashMap<u64, Arc<GroupState>>>>;

fn json<T: serde::de::DeserializeOwned>(v: &[u8]) -> Result<T, StoreError> {
    Ok(serde_json::from_slice(v)?)
}

fn read_side(t: &impl ReadableTable<(u64, u64), &'static [u8]>, a: UserId, b: UserId) -> Result<ContactSide, StoreError> {
    Ok(t.get((a.0, b.0))?.map(|v| json(v.value())).transpose()?.unwrap_or_default())
}

fn load_relation(
    contacts: &impl ReadableTable<(u64, u64), &'static [u8]>,
    requests: &impl ReadableTable<(u64, u64), &'static [u8]>,
    me: UserId,
    other: UserId,
) -> Result<Relation, StoreError> {
    Ok(Relation {
        mine: read_side(contacts, me, other)?,
        theirs: read_side(contacts, other, me)?,
        outgoing: requests.get((other.0, me.0))?.map(|v| json(v.value())).transpose()?,
        incoming: requests.get((me.0, other.0))?.map(|v| json(v.value())).transpose()?,
    })
}

/// A group with its members and applications, from whichever transaction opened the tables.
fn load_group(
    groups: &impl ReadableTable<u64, &'static [u8]>,
    members_t: &impl ReadableTable<(u64, u64), &'static [u8]>,
    apps_t: &impl ReadableTable<(u64, u64), &'static [u8]>,
    gid: u64,
) -> Result<Option<GroupState>, StoreError> {
    let Some(group) = groups.get(gid)?.map(|v| json::<GroupRecord>(v.value())).transpose()? else { return Ok(None) };
    let mut members = BTreeMap::new();
    for e in members_t.range((gid, 0)..=(gid, u64::MAX))? {
        let (k, v) = e?;
        members.insert(UserId(k.value().1), json(v.value())?);
    }
    let mut applications = BTreeMap::new();
    for e in apps_t.range((gid, 0)..=(gid, u64::MAX))? {
        let (k, v) = e?;
        applications.insert(UserId(k.value().1), json(v.value())?);
    }
    Ok(Some(GroupState { group, members, applications }))
}

fn load_group_read(txn: &ReadTransaction, gid: u64) -> Result<Option<GroupState>, StoreError> {
    load_group(&txn.open_table(GROUPS)?, &txn.open_table(MEMBERS)?, &txn.open_table(APPLICATIONS)?, gid)
}

fn load_group_write(txn: &WriteTransaction, gid: u64) -> Result<Option<GroupState>, StoreError> {
    load_group(&txn.open_table(GROUPS)?, &txn.open_table(MEMBERS)?, &txn.open_table(APPLICATIONS)?, gid)
}

/// Applies a group change: checks limits first, then writes, then records the events.
fn apply_group_change(
    txn: &WriteTransaction,
    ids: &ClientIds,
    actor: UserId,
    before: Option<GroupState>,
    mut state: GroupState,
    change: GroupChange,
    limits: GroupLimits,
) -> Result<Result<GroupOutcome, Refusal>, StoreError> {
    let gid = state.group.id;
    let conv = ConvId::Group(gid);
    let key = conv.key();
    // Checks first: nothing is written if one fails.
    let adding: Vec<UserId> =
        change.members.iter().filter(|(u, m)| m.is_some() && !state.members.contains_key(u)).map(|(u, _)| *u).collect();
    let removing = change.members.iter().filter(|(u, m)| m.is_none() && state.members.contains_key(u)).count();
    if state.members.len() + adding.len() - removing > limits.max_members {
        return Ok(Err(Refusal::TooMany("The group is full.")));
    }
    {
        let convs = txn.open_table(USER_CONVS)?;
        for u in &adding {
            if convs.range((u.0, 0, 0)..=(u.0, 0, u64::MAX))?.count() >= limits.max_groups_per_user {
                return Ok(Err(Refusal::TooMany("That user is in too many groups.")));
            }
        }
    }
    let (head_seq, _, _) = txn.open_table(CONV_HEADS)?.get(key)?.map_or((0, 0, 0), |v| v.value());
    let now = now_ms();
    if let Some(g) = change.group {
        txn.open_table(GROUPS)?.insert(gid, serde_json::to_vec(&g)?.as_slice())?;
        state.group = g;
    }
    {
        let mut members = txn.open_table(MEMBERS)?;
        let mut convs = txn.open_table(USER_CONVS)?;
        for (u, m) in change.members {
            match m {
                Some(m) => {
                    members.insert((gid, u.0), serde_json::to_vec(&m)?.as_slice())?;
                    if convs.get((u.0, key.0, key.1))?.is_none() {
                        // A new member sees from their own "joined" event on, or everything.
                        let first_seq = if limits.history_for_new_members { 1 } else { head_seq + 1 };
                        let uc = UserConv { since: now, first_seq, ..UserConv::default() };
                        convs.insert((u.0, key.0, key.1), serde_json::to_vec(&uc)?.as_slice())?;
                    }
                    state.members.insert(u, m);
                }
                None => {
                    members.remove((gid, u.0))?;
                    convs.remove((u.0, key.0, key.1))?;
                    state.members.remove(&u);
                }
            }
        }
    }
    {
        let mut apps = txn.open_table(APPLICATIONS)?;
        for (u, a) in change.applications {
            match a {
                Some(a) => {
                    apps.insert((gid, u.0), serde_json::to_vec(&a)?.as_slice())?;
                    state.applications.insert(u, a);
                }
                None => {
                    apps.remove((gid, u.0))?;
                    state.applications.remove(&u);
                }
            }
        }
    }
    let mut messages = Vec::new();
    for event in change.events {
        messages.push(append_system_in_txn(txn, ids, actor, conv, &[], event)?);
    }
    Ok(Ok(GroupOutcome { before, after: state, messages }))
}

impl Store {
    /// The relation between `me` and `other`, seen from `me`.
    pub async fn relation(&self, me: UserId, other: UserId) -> Result<Relation, StoreError> {
        self.read(move |txn| load_relation(&txn.open_table(CONTACTS)?, &txn.open_table(REQUESTS)?, me, other)).await
    }

    /// Whether `other` exists and is disabled, and the relation seen from `me`, in one read.
    pub async fn peer_and_relation(&self, me: UserId, other: UserId) -> Result<Option<(bool, Relation)>, StoreError> {
        self.read(move |txn| {
            let Some(peer) = super::users::load_user(&txn.open_table(super::tables::USERS)?, other.0)? else { return Ok(None) };
            Ok(Some((peer.disabled, load_relation(&txn.open_table(CONTACTS)?, &txn.open_table(REQUESTS)?, me, other)?)))
        })
        .await
    }

    /// Changes the relation between `me` and `other` as `rule` decides. `after` runs after the
    /// commit, in commit order, with the new relation and the "now contacts" message if any.
    pub async fn change_relation(
        &self,
        me: UserId,
        other: UserId,
        rule: impl FnOnce(&Relation) -> Result<RelationChange, Refusal> + Send + 'static,
        after: impl FnOnce(&Relation, Option<&Message>) + Send + 'static,
    ) -> Result<Result<(Relation, Option<Message>), Refusal>, StoreError> {
        let ids = self.client_ids.clone();
        self.write_then(
            move |txn| {
                let mut rel = {
                    let contacts = txn.open_table(CONTACTS)?;
                    let requests = txn.open_table(REQUESTS)?;
                    load_relation(&contacts, &requests, me, other)?
                };
                let change = match rule(&rel) {
                    Ok(c) => c,
                    Err(r) => return Ok(Err(r)),
                };
                {
                    let mut contacts = txn.open_table(CONTACTS)?;
                    for (side, (a, b), slot) in [(change.mine, (me, other), &mut rel.mine), (change.theirs, (other, me), &mut rel.theirs)] {
                        if let Some(side) = side {
                            contacts.insert((a.0, b.0), serde_json::to_vec(&side)?.as_slice())?;
                            *slot = side;
                        }
                    }
                }
                {
                    let mut requests = txn.open_table(REQUESTS)?;
                    let mut out = txn.open_table(REQUESTS_OUT)?;
                    for (req, (from, to), slot) in
                        [(change.outgoing, (me, other), &mut rel.outgoing), (change.incoming, (other, me), &mut rel.incoming)]
                    {
                        match req {
                            Some(Some(r)) => {
                                requests.insert((to.0, from.0), serde_json::to_vec(&r)?.as_slice())?;
                                out.insert((from.0, to.0), ())?;
                                *slot = Some(r);
                            }
                            Some(None) => {
                                requests.remove((to.0, from.0))?;
                                out.remove((from.0, to.0))?;
                                *slot = None;
                            }
                            None => {}
                        }
                    }
                }
                let mut message = None;
                if change.became_contacts
                    && let Some(conv) = ConvId::direct(me, other)
                {
                    message = Some(append_system_in_txn(txn, &ids, me, conv, &[me, other], SystemEvent::ContactAccepted)?);
                }
                Ok(Ok((rel, message)))
            },
            move |out: &Result<(Relation, Option<Message>), Refusal>| {
                if let Ok((rel, msg)) = out {
                    after(rel, msg.as_ref());
                }
            },
        )
        .await
    }

    /// `user`'s side of every relation they have: (other, mine, theirs).
    pub async fn contacts_of(&self, user: UserId) -> Result<Vec<(UserId, ContactSide, ContactSide)>, StoreError> {
        self.read(move |txn| {
            let t = txn.open_table(CONTACTS)?;
            let mut out = Vec::new();
            for e in t.range((user.0, 0)..=(user.0, u64::MAX))? {
                let (k, v) = e?;
                let other = UserId(k.value().1);
                let mine: ContactSide = json(v.value())?;
                out.push((other, mine, read_side(&t, other, user)?));
            }
            Ok(out)
        })
        .await
    }

    /// Contact requests to `user` (incoming) and from `user` (outgoing): (other, request).
    #[allow(clippy::type_complexity)]
    pub async fn requests_of(&self, user: UserId) -> Result<(Vec<(UserId, RequestRecord)>, Vec<(UserId, RequestRecord)>), StoreError> {
        self.read(move |txn| {
            let requests = txn.open_table(REQUESTS)?;
            let mut incoming = Vec::new();
            for e in requests.range((user.0, 0)..=(user.0, u64::MAX))? {
                let (k, v) = e?;
                incoming.push((UserId(k.value().1), json(v.value())?));
            }
            let mut outgoing = Vec::new();
            for e in txn.open_table(REQUESTS_OUT)?.range((user.0, 0)..=(user.0, u64::MAX))? {
                let (k, _) = e?;
                let to = k.value().1;
                if let Some(v) = requests.get((to, user.0))? {
                    outgoing.push((UserId(to), json(v.value())?));
                }
            }
            Ok((incoming, outgoing))
        })
        .await
    }

    /// A group with its members, from the cache when it is there.
    pub async fn group(&self, gid: u64) -> Result<Option<Arc<GroupState>>, StoreError> {
        if let Some(g) = self.groups.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&gid) {
            return Ok(Some(g.clone()));
        }
        let Some(state) = self.read(move |txn| load_group_read(txn, gid)).await? else { return Ok(None) };
        // A change that committed meanwhile has already put the newer state in; keep it.
        let mut cache = self.groups.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(Some(cache.entry(gid).or_insert_with(|| Arc::new(state)).clone()))
    }

    /// Creates a group owned by `owner` with `members` (owner included), recording its creation.
    pub async fn create_group(
        &self,
        owner: UserId,
        mut group: GroupRecord,
        members: Vec<UserId>,
        limits: GroupLimits,
        after: impl FnOnce(&GroupOutcome) + Send + 'static,
    ) -> Result<Result<GroupOutcome, Refusal>, StoreError> {
        let (cache, ids) = (self.groups.clone(), self.client_ids.clone());
        self.write_then(
            move |txn| {
                let id = {
                    let mut meta = txn.open_table(META)?;
                    let id = meta.get("next_group_id")?.map_or(1, |v| v.value());
                    meta.insert("next_group_id", id + 1)?;
                    id
                };
                group.id = id;
                let now = now_ms();
                let state = GroupState { group: group.clone(), members: BTreeMap::new(), applications: BTreeMap::new() };
                let mut change =
                    GroupChange { group: Some(group), events: vec![SystemEvent::GroupCreated { by: owner }], ..GroupChange::default() };
                for u in members {
                    let role = if u == owner { Role::Owner } else { Role::Member };
                    change.members.push((u, Some(MemberRecord { role, joined_at: now, muted_until: None })));
                }
                let limits = GroupLimits { history_for_new_members: true, ..limits };
                match apply_group_change(txn, &ids, owner, None, state, change, limits)? {
                    // The counter advanced inside a transaction that will not commit this
                    // write's part; the refusal leaves the group id unused, which is harmless.
                    Err(r) => Ok(Err(r)),
                    Ok(o) => Ok(Ok(o)),
                }
            },
            move |out: &Result<GroupOutcome, Refusal>| {
                if let Ok(o) = out {
                    cache.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(o.after.group.id, Arc::new(o.after.clone()));
                    after(o);
                }
            },
        )
        .await
    }

    /// Changes group `gid` as `rule` decides, with `actor` as the author of its events.
    pub async fn change_group(
        &self,
        gid: u64,
        actor: UserId,
        limits: GroupLimits,
        rule: impl FnOnce(&GroupState) -> Result<GroupChange, Refusal> + Send + 'static,
        after: impl FnOnce(&GroupOutcome) + Send + 'static,
    ) -> Result<Result<GroupOutcome, Refusal>, StoreError> {
        self.change_group_where(gid, actor, limits, None, rule, after).await
    }

    /// Like [`Store::change_group`], for the group whose invite token is `token` as the write
    /// transaction sees it: a token reset that commits first refuses the change.
    pub async fn change_group_by_token(
        &self,
        token: String,
        actor: UserId,
        limits: GroupLimits,
        rule: impl FnOnce(&GroupState) -> Result<GroupChange, Refusal> + Send + 'static,
        after: impl FnOnce(&GroupOutcome) + Send + 'static,
    ) -> Result<Result<GroupOutcome, Refusal>, StoreError> {
        let Some(gid) = self.group_of_token(token.clone()).await? else { return Ok(Err(Refusal::NotFound("No such invite."))) };
        self.change_group_where(gid, actor, limits, Some(token), rule, after).await
    }

    async fn change_group_where(
        &self,
        gid: u64,
        actor: UserId,
        limits: GroupLimits,
        token: Option<String>,
        rule: impl FnOnce(&GroupState) -> Result<GroupChange, Refusal> + Send + 'static,
        after: impl FnOnce(&GroupOutcome) + Send + 'static,
    ) -> Result<Result<GroupOutcome, Refusal>, StoreError> {
        let (cache, ids) = (self.groups.clone(), self.client_ids.clone());
        self.write_then(
            move |txn| {
                if let Some(t) = token
                    && txn.open_table(GROUP_TOKENS)?.get(t.as_str())?.map(|v| v.value()) != Some(gid)
                {
                    return Ok(Err(Refusal::NotFound("No such invite.")));
                }
                let Some(state) = load_group_write(txn, gid)? else { return Ok(Err(Refusal::NotFound("No such group."))) };
                let change = match rule(&state) {
                    Ok(c) => c,
                    Err(r) => return Ok(Err(r)),
                };
                apply_group_change(txn, &ids, actor, Some(state.clone()), state, change, limits)
            },
            move |out: &Result<GroupOutcome, Refusal>| {
                if let Ok(o) = out {
                    cache.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(gid, Arc::new(o.after.clone()));
                    after(o);
                }
            },
        )
        .await
    }

    /// Group `gid`'s invite token, if `check` (given the group as the write transaction sees
    /// it) allows the caller: the current one, or a new one when there is none or `reset`
    /// (which makes the old one worthless).
    pub async fn group_invite_token(
        &self,
        gid: u64,
        reset: bool,
        check: impl FnOnce(&GroupState) -> Result<(), Refusal> + Send + 'static,
    ) -> Result<Result<String, Refusal>, StoreError> {
        self.write(move |txn| {
            let Some(state) = load_group_write(txn, gid)? else { return Ok(Err(Refusal::NotFound("No such group."))) };
            if let Err(r) = check(&state) {
                return Ok(Err(r));
            }
            let mut by_group = txn.open_table(GROUP_INVITE_TOKENS)?;
            let old = by_group.get(gid)?.map(|v| v.value().to_owned());
            if let Some(t) = &old
                && !reset
            {
                return Ok(Ok(t.clone()));
            }
            let mut raw = [0u8; 16];
            rand::fill(&mut raw);
            let token = hex::encode(raw);
            let mut tokens = txn.open_table(GROUP_TOKENS)?;
            if let Some(t) = &old {
                tokens.remove(t.as_str())?;
            }
            tokens.insert(token.as_str(), gid)?;
            by_group.insert(gid, token.as_str())?;
            Ok(Ok(token))
        })
        .await
    }

    /// The group an invite token opens, if it is current.
    pub async fn group_of_token(&self, token: String) -> Result<Option<u64>, StoreError> {
        self.read(move |txn| Ok(txn.open_table(GROUP_TOKENS)?.get(token.as_str())?.map(|v| v.value()))).await
    }

    /// Every group (for search by name), newest first.
    pub async fn all_groups(&self) -> Result<Vec<GroupRecord>, StoreError> {
        self.read(|txn| {
            let mut out = Vec::new();
            for e in txn.open_table(GROUPS)?.iter()?.rev() {
                let (_, v) = e?;
                out.push(json(v.value())?);
            }
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    const LIMITS: GroupLimits = GroupLimits { max_members: 10, max_groups_per_user: 10, history_for_new_members: true };

    /// A join whose token was looked up before a reset committed is refused by the write
    /// itself: the token is checked again inside the joining transaction.
    #[tokio::test]
    async fn a_reset_committed_after_the_lookup_refuses_the_join() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let (owner, joiner) = (UserId(1), UserId(2));
        let record = GroupRecord::for_test(owner);
        let gid = store.create_group(owner, record, vec![owner], LIMITS, |_| {}).await.unwrap().unwrap().after.group.id;
        let old = store.group_invite_token(gid, false, |_| Ok(())).await.unwrap().unwrap();
        assert_eq!(store.group_invite_token(gid, false, |_| Ok(())).await.unwrap().unwrap(), old, "the token stays until reset");
        // The route looked `old` up and found `gid`; then a reset commits.
        let new = store.group_invite_token(gid, true, |_| Ok(())).await.unwrap().unwrap();
        assert_ne!(new, old);
        let join = move |s: &GroupState| crate::social::groups::join(s, joiner, "", 0);
        let refused = store.change_group_where(gid, joiner, LIMITS, Some(old.clone()), join, |_| {}).await.unwrap();
        assert!(matches!(refused, Err(Refusal::NotFound(_))), "{refused:?}");
        assert_eq!(store.group_of_token(old).await.unwrap(), None);
        let joined = store.change_group_by_token(new, joiner, LIMITS, join, |_| {}).await.unwrap().unwrap();
        assert!(joined.after.members.contains_key(&joiner));
    }
}
