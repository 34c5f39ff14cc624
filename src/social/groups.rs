//! Groups: create, find, join or apply, approve, invite, leave, kick, mute, admins, transfer,
//! edit, dissolve. Owners outrank admins, admins outrank members; nobody acts on an equal.
//! These are the rules; `group_routes.rs` serves them.

use crate::ids::UserId;
use crate::outcome::Refusal;
use crate::protocol::{JoinMode, Role, SystemEvent};
use crate::store::social::{Application, GroupChange, GroupRecord, GroupState, GroupStatus, MemberRecord};

pub(crate) fn role_of(state: &GroupState, user: UserId) -> Option<Role> {
    state.members.get(&user).map(|m| m.role)
}

fn active(state: &GroupState) -> Result<(), Refusal> {
    match state.group.status {
        GroupStatus::Active => Ok(()),
        GroupStatus::Disabled => Err(Refusal::Forbidden("This group has been disabled by an administrator.")),
        GroupStatus::Dissolved => Err(Refusal::Forbidden("This group was dissolved.")),
    }
}

/// The actor's role, which must be at least `min`.
pub(crate) fn need(state: &GroupState, actor: UserId, min: Role) -> Result<Role, Refusal> {
    active(state)?;
    match role_of(state, actor) {
        None => Err(Refusal::NotFound("No such group.")),
        Some(r) if r >= min => Ok(r),
        Some(_) => Err(Refusal::Forbidden(match min {
            Role::Owner => "Only the group owner can do this.",
            _ => "Only the group owner and admins can do this.",
        })),
    }
}

/// The actor must outrank the target, who must be a member.
fn outrank(state: &GroupState, actor: UserId, target: UserId) -> Result<(), Refusal> {
    let mine = need(state, actor, Role::Admin)?;
    match role_of(state, target) {
        None => Err(Refusal::NotFound("That user is not in this group.")),
        Some(theirs) if mine > theirs => Ok(()),
        Some(_) => Err(Refusal::Forbidden("You can only do this to members below your role.")),
    }
}

fn member(role: Role, now: u64) -> MemberRecord {
    MemberRecord { role, joined_at: now, muted_until: None }
}

/// Joining (open groups) or applying (approval groups).
pub fn join(state: &GroupState, user: UserId, message: &str, now: u64) -> Result<GroupChange, Refusal> {
    active(state)?;
    if state.members.contains_key(&user) {
        return Err(Refusal::Conflict("You are already in this group."));
    }
    Ok(match state.group.join_mode {
        JoinMode::Open => GroupChange {
            members: vec![(user, Some(member(Role::Member, now)))],
            applications: vec![(user, None)],
            events: vec![SystemEvent::Joined { user, by: None }],
            ..GroupChange::default()
        },
        JoinMode::Approval => GroupChange {
            applications: vec![(user, Some(Application { message: message.to_owned(), created_at: now }))],
            ..GroupChange::default()
        },
    })
}

pub fn approve(state: &GroupState, actor: UserId, applicant: UserId, now: u64) -> Result<GroupChange, Refusal> {
    need(state, actor, Role::Admin)?;
    if !state.applications.contains_key(&applicant) {
        return Err(Refusal::NotFound("No application from that user."));
    }
    Ok(GroupChange {
        members: vec![(applicant, Some(member(Role::Member, now)))],
        applications: vec![(applicant, None)],
        events: vec![SystemEvent::Joined { user: applicant, by: Some(actor) }],
        ..GroupChange::default()
    })
}

pub fn refuse(state: &GroupState, actor: UserId, applicant: UserId) -> Result<GroupChange, Refusal> {
    need(state, actor, Role::Admin)?;
    if !state.applications.contains_key(&applicant) {
        return Err(Refusal::NotFound("No application from that user."));
    }
    Ok(GroupChange { applications: vec![(applicant, None)], ..GroupChange::default() })
}

/// Adding people directly: admins always; members only in open groups.
pub fn invite(state: &GroupState, actor: UserId, users: &[UserId], now: u64) -> Result<GroupChange, Refusal> {
    let role = need(state, actor, Role::Member)?;
    if role == Role::Member && state.group.join_mode == JoinMode::Approval {
        return Err(Refusal::Forbidden("In this group only the owner and admins can add people."));
    }
    let new: Vec<UserId> = users.iter().copied().filter(|u| !state.members.contains_key(u)).collect();
    if new.is_empty() {
        return Err(Refusal::Conflict("Everyone you chose is already in the group."));
    }
    Ok(GroupChange {
        members: new.iter().map(|u| (*u, Some(member(Role::Member, now)))).collect(),
        applications: new.iter().map(|u| (*u, None)).collect(),
        events: new.iter().map(|u| SystemEvent::Joined { user: *u, by: Some(actor) }).collect(),
        ..GroupChange::default()
    })
}

pub fn leave(state: &GroupState, user: UserId) -> Result<GroupChange, Refusal> {
    match role_of(state, user) {
        None => Err(Refusal::NotFound("No such group.")),
        Some(Role::Owner) if state.group.status == GroupStatus::Active => {
            Err(Refusal::Conflict("The owner cannot leave: transfer the group or dissolve it."))
        }
        Some(_) => Ok(GroupChange { members: vec![(user, None)], events: vec![SystemEvent::Left { user }], ..GroupChange::default() }),
    }
}

pub fn kick(state: &GroupState, actor: UserId, target: UserId) -> Result<GroupChange, Refusal> {
    outrank(state, actor, target)?;
    Ok(GroupChange {
        members: vec![(target, None)],
        events: vec![SystemEvent::Removed { user: target, by: actor }],
        ..GroupChange::default()
    })
}

pub fn mute(state: &GroupState, actor: UserId, target: UserId, until: Option<u64>) -> Result<GroupChange, Refusal> {
    outrank(state, actor, target)?;
    let mut m = state.members[&target].clone();
    m.muted_until = until;
    Ok(GroupChange {
        members: vec![(target, Some(m))],
        events: vec![SystemEvent::Muted { user: target, by: actor, until }],
        ..GroupChange::default()
    })
}

pub fn set_admin(state: &GroupState, actor: UserId, target: UserId, admin: bool) -> Result<GroupChange, Refusal> {
    need(state, actor, Role::Owner)?;
    let Some(m) = state.members.get(&target) else { return Err(Refusal::NotFound("That user is not in this group.")) };
    let want = if admin { Role::Admin } else { Role::Member };
    if m.role == Role::Owner || m.role == want {
        return Err(Refusal::Conflict(if admin { "That member is already an admin." } else { "That member is not an admin." }));
    }
    let event =
        if admin { SystemEvent::AdminAdded { user: target, by: actor } } else { SystemEvent::AdminRemoved { user: target, by: actor } };
    Ok(GroupChange {
        members: vec![(target, Some(MemberRecord { role: want, ..m.clone() }))],
        events: vec![event],
        ..GroupChange::default()
    })
}

pub fn transfer(state: &GroupState, actor: UserId, target: UserId) -> Result<GroupChange, Refusal> {
    need(state, actor, Role::Owner)?;
    let Some(m) = state.members.get(&target).filter(|_| target != actor) else {
        return Err(Refusal::NotFound("Choose another member of the group."));
    };
    let me = &state.members[&actor];
    Ok(GroupChange {
        group: Some(GroupRecord { owner: target, ..state.group.clone() }),
        members: vec![
            (target, Some(MemberRecord { role: Role::Owner, muted_until: None, ..m.clone() })),
            (actor, Some(MemberRecord { role: Role::Admin, ..me.clone() })),
        ],
        events: vec![SystemEvent::OwnerChanged { user: target, by: actor }],
        ..GroupChange::default()
    })
}

/// Validated edits of a group's info.
#[derive(Clone, Debug, Default)]
pub struct InfoEdit {
    pub name: Option<String>,
    pub notice: Option<String>,
    pub avatar: Option<Option<String>>,
    pub join_mode: Option<JoinMode>,
}

pub fn edit(state: &GroupState, actor: UserId, e: InfoEdit) -> Result<GroupChange, Refusal> {
    need(state, actor, Role::Admin)?;
    let mut g = state.group.clone();
    let mut events = Vec::new();
    if let Some(name) = e.name.filter(|n| *n != g.name) {
        events.push(SystemEvent::Renamed { name: name.clone(), by: actor });
        g.name = name;
    }
    if let Some(notice) = e.notice.filter(|n| *n != g.notice) {
        events.push(SystemEvent::NoticeChanged { by: actor, notice: notice.clone() });
        g.notice = notice;
    }
    if let Some(a) = e.avatar {
        g.avatar = a;
    }
    if let Some(j) = e.join_mode {
        g.join_mode = j;
    }
    Ok(GroupChange { group: Some(g), events, ..GroupChange::default() })
}

pub fn dissolve(state: &GroupState, actor: UserId) -> Result<GroupChange, Refusal> {
    need(state, actor, Role::Owner)?;
    Ok(GroupChange {
        group: Some(GroupRecord { status: GroupStatus::Dissolved, ..state.group.clone() }),
        applications: state.applications.keys().map(|u| (*u, None)).collect(),
        events: vec![SystemEvent::Dissolved { by: actor }],
        ..GroupChange::default()
    })
}

/// A server administrator disables, enables or dissolves a group, whether or not they are in
/// it. Dissolving is the owner's dissolve (the event, the pending applications dropped), by the
/// administrator; a dissolved group stays dissolved.
pub fn set_status_by_admin(state: &GroupState, admin: UserId, to: GroupStatus) -> Result<GroupChange, Refusal> {
    if state.group.status == GroupStatus::Dissolved {
        return Err(Refusal::Conflict("This group was dissolved."));
    }
    let dissolving = to == GroupStatus::Dissolved;
    Ok(GroupChange {
        group: Some(GroupRecord { status: to, ..state.group.clone() }),
        applications: if dissolving { state.applications.keys().map(|u| (*u, None)).collect() } else { Vec::new() },
        events: if dissolving { vec![SystemEvent::Dissolved { by: admin }] } else { Vec::new() },
        ..GroupChange::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn group(mode: JoinMode) -> GroupState {
        let mut members = BTreeMap::new();
        members.insert(UserId(1), member(Role::Owner, 0));
        members.insert(UserId(2), member(Role::Admin, 0));
        members.insert(UserId(3), member(Role::Member, 0));
        members.insert(UserId(4), member(Role::Member, 0));
        GroupState {
            group: GroupRecord {
                id: 9,
                name: "g".into(),
                notice: String::new(),
                avatar: None,
                join_mode: mode,
                owner: UserId(1),
                created_at: 0,
                status: GroupStatus::Active,
            },
            members,
            applications: BTreeMap::new(),
        }
    }

    #[test]
    fn open_groups_admit_approval_groups_queue() {
        let c = join(&group(JoinMode::Open), UserId(7), "", 1).unwrap();
        assert!(c.members[0].1.is_some());
        let c = join(&group(JoinMode::Approval), UserId(7), "hi", 1).unwrap();
        assert!(c.members.is_empty() && c.applications[0].1.is_some());
        assert!(matches!(join(&group(JoinMode::Open), UserId(3), "", 1), Err(Refusal::Conflict(_))));
    }

    #[test]
    fn ranks_decide_who_may_act_on_whom() {
        let g = group(JoinMode::Open);
        assert!(kick(&g, UserId(1), UserId(2)).is_ok(), "owner removes an admin");
        assert!(kick(&g, UserId(2), UserId(3)).is_ok(), "admin removes a member");
        assert!(matches!(kick(&g, UserId(2), UserId(1)), Err(Refusal::Forbidden(_))), "admin cannot remove the owner");
        assert!(matches!(kick(&g, UserId(3), UserId(4)), Err(Refusal::Forbidden(_))), "members remove nobody");
        assert!(matches!(kick(&g, UserId(8), UserId(4)), Err(Refusal::NotFound(_))), "outsiders see nothing");
        assert!(matches!(set_admin(&g, UserId(2), UserId(3), true), Err(Refusal::Forbidden(_))), "only the owner appoints");
        assert!(set_admin(&g, UserId(1), UserId(3), true).is_ok());
        assert!(matches!(mute(&g, UserId(3), UserId(4), Some(5)), Err(Refusal::Forbidden(_))));
        assert!(matches!(edit(&g, UserId(3), InfoEdit::default()), Err(Refusal::Forbidden(_))));
        assert!(matches!(dissolve(&g, UserId(2)), Err(Refusal::Forbidden(_))));
    }

    #[test]
    fn the_owner_transfers_before_leaving() {
        let g = group(JoinMode::Open);
        assert!(matches!(leave(&g, UserId(1)), Err(Refusal::Conflict(_))));
        let c = transfer(&g, UserId(1), UserId(3)).unwrap();
        assert_eq!(c.group.unwrap().owner, UserId(3));
        assert!(c.members.iter().any(|(u, m)| *u == UserId(1) && m.as_ref().unwrap().role == Role::Admin));
        assert!(leave(&g, UserId(4)).is_ok());
    }

    #[test]
    fn members_invite_only_into_open_groups() {
        assert!(invite(&group(JoinMode::Open), UserId(3), &[UserId(7)], 1).is_ok());
        assert!(matches!(invite(&group(JoinMode::Approval), UserId(3), &[UserId(7)], 1), Err(Refusal::Forbidden(_))));
        assert!(invite(&group(JoinMode::Approval), UserId(2), &[UserId(7)], 1).is_ok());
    }

    #[test]
    fn an_administrator_dissolves_like_the_owner_and_cannot_bring_a_dissolved_group_back() {
        let mut g = group(JoinMode::Approval);
        g.applications.insert(UserId(7), Application { message: String::new(), created_at: 0 });
        let c = set_status_by_admin(&g, UserId(99), GroupStatus::Dissolved).unwrap();
        let owner = dissolve(&g, UserId(1)).unwrap();
        assert_eq!(c.events, vec![SystemEvent::Dissolved { by: UserId(99) }]);
        assert_eq!(c.applications, owner.applications, "pending applications go as with the owner's dissolve");
        assert_eq!(c.group.as_ref().unwrap().status, GroupStatus::Dissolved);
        let c = set_status_by_admin(&g, UserId(99), GroupStatus::Disabled).unwrap();
        assert!(c.events.is_empty() && c.applications.is_empty());
        g.group.status = GroupStatus::Dissolved;
        for to in [GroupStatus::Active, GroupStatus::Disabled, GroupStatus::Dissolved] {
            assert!(matches!(set_status_by_admin(&g, UserId(99), to), Err(Refusal::Conflict(_))));
        }
    }

    #[test]
    fn a_dissolved_group_accepts_nothing() {
        let mut g = group(JoinMode::Open);
        g.group.status = GroupStatus::Dissolved;
        assert!(join(&g, UserId(7), "", 1).is_err());
        assert!(edit(&g, UserId(1), InfoEdit::default()).is_err());
        assert!(leave(&g, UserId(1)).is_ok(), "after dissolving, even the owner may leave");
    }
}
