//! Groups: create, find, join or apply, approve, invite, leave, kick, mute, admins, transfer,
//! edit, dissolve. Owners outrank admins, admins outrank members; nobody acts on an equal.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::Config;
use crate::http::error::ErrorBody;
use crate::http::{ApiError, ApiJson, ApiQuery, AuthUser};
use crate::hub::Hub;
use crate::ids::UserId;
use crate::outcome::Refusal;
use crate::protocol::{GoneReason, GroupView, JoinMode, MemberView, Role, ServerFrame, SystemEvent};
use crate::store::social::{Application, GroupChange, GroupLimits, GroupOutcome, GroupRecord, GroupState, GroupStatus, MemberRecord};
use crate::store::{Store, now_ms};

fn role_of(state: &GroupState, user: UserId) -> Option<Role> {
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
fn need(state: &GroupState, actor: UserId, min: Role) -> Result<Role, Refusal> {
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
        events.push(SystemEvent::NoticeChanged { by: actor });
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

// ---- Routes ----

pub fn view(state: &GroupState, me: UserId) -> GroupView {
    let g = &state.group;
    GroupView {
        id: g.id,
        name: g.name.clone(),
        notice: g.notice.clone(),
        avatar: g.avatar.clone(),
        join_mode: g.join_mode,
        owner: g.owner,
        member_count: u32::try_from(state.members.len()).unwrap_or(u32::MAX),
        created_at: g.created_at,
        my_role: role_of(state, me),
    }
}

fn limits(config: &Config) -> GroupLimits {
    GroupLimits {
        max_members: config.groups.max_members,
        max_groups_per_user: config.groups.max_groups_per_user,
        history_for_new_members: config.groups.history_for_new_members,
    }
}

/// Tells everyone concerned about a committed change: members get the new group and its
/// messages; people who are no longer members get `group_gone`.
fn announce(hub: &Hub, out: &GroupOutcome) {
    let members = out.after.member_ids();
    for m in &out.messages {
        hub.send(&members, &ServerFrame::Message { message: m.clone() });
    }
    // One frame per role, since `my_role` differs.
    for role in [Role::Owner, Role::Admin, Role::Member] {
        let who: Vec<UserId> = out.after.members.iter().filter(|(_, m)| m.role == role).map(|(u, _)| *u).collect();
        if let Some(first) = who.first() {
            hub.send(&who, &ServerFrame::Group { group: view(&out.after, *first) });
        }
    }
    if let Some(before) = &out.before {
        let gone: Vec<UserId> = before.members.keys().filter(|u| !out.after.members.contains_key(u)).copied().collect();
        let dissolved = before.group.status != GroupStatus::Dissolved && out.after.group.status == GroupStatus::Dissolved;
        if !gone.is_empty() {
            // Whoever is gone and wrote the last event left; everyone else was removed.
            for u in &gone {
                let reason = if out.messages.iter().any(|m| m.sender == *u) { GoneReason::Left } else { GoneReason::Removed };
                hub.send(&[*u], &ServerFrame::GroupGone { group: before.group.id, reason });
            }
        }
        if dissolved {
            hub.send(&members, &ServerFrame::GroupGone { group: before.group.id, reason: GoneReason::Dissolved });
        }
    }
}

pub(crate) async fn apply(
    store: &Store,
    hub: &Arc<Hub>,
    config: &Config,
    gid: u64,
    actor: UserId,
    rule: impl FnOnce(&GroupState) -> Result<GroupChange, Refusal> + Send + 'static,
) -> Result<GroupOutcome, ApiError> {
    let hub2 = hub.clone();
    Ok(store.change_group(gid, actor, limits(config), rule, move |o| announce(&hub2, o)).await??)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    pub name: String,
    #[serde(default)]
    pub notice: String,
    #[serde(default = "open")]
    pub join_mode: JoinMode,
    /// Contacts to add right away.
    #[serde(default)]
    pub members: Vec<UserId>,
}

fn open() -> JoinMode {
    JoinMode::Open
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupEdit {
    pub name: Option<String>,
    pub notice: Option<String>,
    pub join_mode: Option<JoinMode>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    #[serde(default)]
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct JoinAnswer {
    /// True when you are now a member; false when your application awaits approval.
    pub joined: bool,
    pub group: GroupView,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    pub users: Vec<UserId>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MuteRequest {
    /// Minutes from now; absent or 0 unmutes.
    pub minutes: Option<u64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    pub user: UserId,
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GroupQuery {
    /// Part of a group's name; absent lists your own groups.
    pub q: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct GroupList {
    pub groups: Vec<GroupView>,
}

#[derive(Serialize, ToSchema)]
pub struct MemberList {
    pub members: Vec<MemberView>,
}

#[derive(Serialize, ToSchema)]
pub struct ApplicationView {
    pub user: crate::protocol::UserView,
    pub message: String,
    pub created_at: u64,
}

#[derive(Serialize, ToSchema)]
pub struct ApplicationList {
    pub applications: Vec<ApplicationView>,
}

fn clean_name(name: &str) -> Result<String, ApiError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 64 || n.chars().any(char::is_control) {
        return Err(ApiError::bad_request("invalid", "A group name is one line of 1 to 64 characters."));
    }
    Ok(n.to_owned())
}

fn clean_notice(notice: &str) -> Result<String, ApiError> {
    let n = notice.trim();
    if n.chars().count() > 2000 || n.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::bad_request("invalid", "A group notice is up to 2,000 characters."));
    }
    Ok(n.to_owned())
}

/// Only contacts can be added to a group by someone else.
async fn check_contacts(store: &Store, me: UserId, users: &[UserId]) -> Result<(), ApiError> {
    if users.len() > 500 {
        return Err(ApiError::bad_request("invalid", "Add at most 500 people at once."));
    }
    for u in users {
        if *u == me {
            continue;
        }
        let rel = store.relation(me, *u).await?;
        if !(rel.mine.contact && rel.theirs.contact) || rel.mine.blocked || rel.theirs.blocked {
            return Err(ApiError::forbidden("You can only add your contacts."));
        }
    }
    Ok(())
}

async fn load(store: &Store, gid: u64) -> Result<Arc<GroupState>, ApiError> {
    store.group(gid).await?.ok_or_else(|| ApiError::not_found("No such group."))
}

#[utoipa::path(post, path = "/api/groups", tag = "groups", request_body = NewGroup,
    responses((status = 201, body = GroupView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    ApiJson(req): ApiJson<NewGroup>,
) -> Result<(StatusCode, Json<GroupView>), ApiError> {
    let me = auth.user.id;
    let name = clean_name(&req.name)?;
    let notice = clean_notice(&req.notice)?;
    let mut members: Vec<UserId> = req.members.into_iter().filter(|u| *u != me).collect();
    members.sort();
    members.dedup();
    check_contacts(&store, me, &members).await?;
    members.insert(0, me);
    let record = GroupRecord {
        id: 0,
        name,
        notice,
        avatar: None,
        join_mode: req.join_mode,
        owner: me,
        created_at: now_ms(),
        status: GroupStatus::Active,
    };
    let hub2 = hub.clone();
    let out = store.create_group(me, record, members, limits(&config), move |o| announce(&hub2, o)).await??;
    Ok((StatusCode::CREATED, Json(view(&out.after, me))))
}

#[utoipa::path(get, path = "/api/groups", tag = "groups", params(GroupQuery), responses((status = 200, body = GroupList)))]
pub async fn list(auth: AuthUser, State(store): State<Store>, ApiQuery(q): ApiQuery<GroupQuery>) -> Result<Json<GroupList>, ApiError> {
    let me = auth.user.id;
    let needle = q.q.as_deref().map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty());
    let mut groups = Vec::new();
    for g in store.all_groups().await? {
        if g.status != GroupStatus::Active && needle.is_some() {
            continue;
        }
        let matches = match &needle {
            Some(n) => g.name.to_lowercase().contains(n.as_str()) || g.id.to_string() == *n,
            None => true,
        };
        if !matches {
            continue;
        }
        if let Some(state) = store.group(g.id).await? {
            if needle.is_none() && !state.members.contains_key(&me) {
                continue;
            }
            groups.push(view(&state, me));
        }
        if groups.len() >= 50 {
            break;
        }
    }
    Ok(Json(GroupList { groups }))
}

#[utoipa::path(get, path = "/api/groups/{id}", tag = "groups", params(("id" = u64, Path)), responses((status = 200, body = GroupView), (status = 404, body = ErrorBody)))]
pub async fn get(auth: AuthUser, State(store): State<Store>, Path(gid): Path<u64>) -> Result<Json<GroupView>, ApiError> {
    let state = load(&store, gid).await?;
    if state.group.status != GroupStatus::Active && !state.members.contains_key(&auth.user.id) {
        return Err(ApiError::not_found("No such group."));
    }
    Ok(Json(view(&state, auth.user.id)))
}

#[utoipa::path(patch, path = "/api/groups/{id}", tag = "groups", params(("id" = u64, Path)), request_body = GroupEdit,
    responses((status = 200, body = GroupView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    Path(gid): Path<u64>,
    ApiJson(req): ApiJson<GroupEdit>,
) -> Result<Json<GroupView>, ApiError> {
    let e = InfoEdit {
        name: req.name.as_deref().map(clean_name).transpose()?,
        notice: req.notice.as_deref().map(clean_notice).transpose()?,
        avatar: None,
        join_mode: req.join_mode,
    };
    let me = auth.user.id;
    let out = apply(&store, &hub, &config, gid, me, move |s| edit(s, me, e)).await?;
    Ok(Json(view(&out.after, me)))
}

#[utoipa::path(delete, path = "/api/groups/{id}", tag = "groups", params(("id" = u64, Path)), responses((status = 204), (status = 403, body = ErrorBody)))]
pub async fn remove(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    Path(gid): Path<u64>,
) -> Result<StatusCode, ApiError> {
    let me = auth.user.id;
    apply(&store, &hub, &config, gid, me, move |s| dissolve(s, me)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/groups/{id}/members", tag = "groups", params(("id" = u64, Path)), responses((status = 200, body = MemberList), (status = 404, body = ErrorBody)))]
pub async fn members(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    Path(gid): Path<u64>,
) -> Result<Json<MemberList>, ApiError> {
    let state = load(&store, gid).await?;
    if !state.members.contains_key(&auth.user.id) {
        return Err(ApiError::not_found("No such group."));
    }
    let mut members = Vec::with_capacity(state.members.len());
    for (u, m) in &state.members {
        if let Some(rec) = store.user(*u).await? {
            let online = (!rec.hide_presence).then(|| hub.is_online(*u));
            members.push(MemberView {
                user: rec.public_view(),
                role: m.role,
                joined_at: m.joined_at,
                muted_until: m.muted_until.filter(|t| *t > now_ms()),
                online,
            });
        }
    }
    members.sort_by(|a, b| b.role.cmp(&a.role).then(a.joined_at.cmp(&b.joined_at)));
    Ok(Json(MemberList { members }))
}

#[utoipa::path(post, path = "/api/groups/{id}/join", tag = "groups", params(("id" = u64, Path)), request_body = JoinRequest,
    responses((status = 200, body = JoinAnswer), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn join_group(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    Path(gid): Path<u64>,
    ApiJson(req): ApiJson<JoinRequest>,
) -> Result<Json<JoinAnswer>, ApiError> {
    let me = auth.user.id;
    let message = req.message.trim().chars().take(200).collect::<String>();
    let state = load(&store, gid).await?;
    if state.group.status != GroupStatus::Active {
        return Err(ApiError::not_found("No such group."));
    }
    let now = now_ms();
    let out = apply(&store, &hub, &config, gid, me, move |s| join(s, me, &message, now)).await?;
    Ok(Json(JoinAnswer { joined: out.after.members.contains_key(&me), group: view(&out.after, me) }))
}

#[utoipa::path(post, path = "/api/groups/{id}/leave", tag = "groups", params(("id" = u64, Path)), responses((status = 204), (status = 409, body = ErrorBody)))]
pub async fn leave_group(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    Path(gid): Path<u64>,
) -> Result<StatusCode, ApiError> {
    let me = auth.user.id;
    apply(&store, &hub, &config, gid, me, move |s| leave(s, me)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/groups/{id}/applications", tag = "groups", params(("id" = u64, Path)), responses((status = 200, body = ApplicationList), (status = 403, body = ErrorBody)))]
pub async fn applications(auth: AuthUser, State(store): State<Store>, Path(gid): Path<u64>) -> Result<Json<ApplicationList>, ApiError> {
    let state = load(&store, gid).await?;
    need(&state, auth.user.id, Role::Admin)?;
    let mut out = Vec::new();
    for (u, a) in &state.applications {
        if let Some(rec) = store.user(*u).await? {
            out.push(ApplicationView { user: rec.public_view(), message: a.message.clone(), created_at: a.created_at });
        }
    }
    Ok(Json(ApplicationList { applications: out }))
}

#[utoipa::path(post, path = "/api/groups/{id}/applications/{user}/approve", tag = "groups", params(("id" = u64, Path), ("user" = u64, Path)),
    responses((status = 200, body = GroupView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn approve_application(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    Path((gid, user)): Path<(u64, u64)>,
) -> Result<Json<GroupView>, ApiError> {
    let me = auth.user.id;
    let now = now_ms();
    let out = apply(&store, &hub, &config, gid, me, move |s| approve(s, me, UserId(user), now)).await?;
    Ok(Json(view(&out.after, me)))
}

#[utoipa::path(post, path = "/api/groups/{id}/applications/{user}/refuse", tag = "groups", params(("id" = u64, Path), ("user" = u64, Path)),
    responses((status = 200, body = GroupView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn refuse_application(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    Path((gid, user)): Path<(u64, u64)>,
) -> Result<Json<GroupView>, ApiError> {
    let me = auth.user.id;
    let out = apply(&store, &hub, &config, gid, me, move |s| refuse(s, me, UserId(user))).await?;
    Ok(Json(view(&out.after, me)))
}

#[utoipa::path(post, path = "/api/groups/{id}/members", tag = "groups", params(("id" = u64, Path)), request_body = Invite,
    responses((status = 200, body = GroupView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_members(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    Path(gid): Path<u64>,
    ApiJson(req): ApiJson<Invite>,
) -> Result<Json<GroupView>, ApiError> {
    let me = auth.user.id;
    let mut users = req.users;
    users.sort();
    users.dedup();
    check_contacts(&store, me, &users).await?;
    let now = now_ms();
    let out = apply(&store, &hub, &config, gid, me, move |s| invite(s, me, &users, now)).await?;
    Ok(Json(view(&out.after, me)))
}

#[utoipa::path(delete, path = "/api/groups/{id}/members/{user}", tag = "groups", params(("id" = u64, Path), ("user" = u64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_member(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    Path((gid, user)): Path<(u64, u64)>,
) -> Result<StatusCode, ApiError> {
    let me = auth.user.id;
    let target = UserId(user);
    apply(&store, &hub, &config, gid, me, move |s| if target == me { leave(s, me) } else { kick(s, me, target) }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/groups/{id}/members/{user}/mute", tag = "groups", params(("id" = u64, Path), ("user" = u64, Path)), request_body = MuteRequest,
    responses((status = 200, body = GroupView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn mute_member(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    Path((gid, user)): Path<(u64, u64)>,
    ApiJson(req): ApiJson<MuteRequest>,
) -> Result<Json<GroupView>, ApiError> {
    let me = auth.user.id;
    let until = req.minutes.filter(|m| *m > 0).map(|m| now_ms() + m.min(60 * 24 * 366) * 60_000);
    let out = apply(&store, &hub, &config, gid, me, move |s| mute(s, me, UserId(user), until)).await?;
    Ok(Json(view(&out.after, me)))
}

#[utoipa::path(post, path = "/api/groups/{id}/admins/{user}", tag = "groups", params(("id" = u64, Path), ("user" = u64, Path)),
    responses((status = 200, body = GroupView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_admin(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    Path((gid, user)): Path<(u64, u64)>,
) -> Result<Json<GroupView>, ApiError> {
    let me = auth.user.id;
    let out = apply(&store, &hub, &config, gid, me, move |s| set_admin(s, me, UserId(user), true)).await?;
    Ok(Json(view(&out.after, me)))
}

#[utoipa::path(delete, path = "/api/groups/{id}/admins/{user}", tag = "groups", params(("id" = u64, Path), ("user" = u64, Path)),
    responses((status = 200, body = GroupView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_admin(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    Path((gid, user)): Path<(u64, u64)>,
) -> Result<Json<GroupView>, ApiError> {
    let me = auth.user.id;
    let out = apply(&store, &hub, &config, gid, me, move |s| set_admin(s, me, UserId(user), false)).await?;
    Ok(Json(view(&out.after, me)))
}

#[utoipa::path(post, path = "/api/groups/{id}/transfer", tag = "groups", params(("id" = u64, Path)), request_body = Transfer,
    responses((status = 200, body = GroupView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn transfer_group(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    Path(gid): Path<u64>,
    ApiJson(req): ApiJson<Transfer>,
) -> Result<Json<GroupView>, ApiError> {
    let me = auth.user.id;
    let out = apply(&store, &hub, &config, gid, me, move |s| transfer(s, me, req.user)).await?;
    Ok(Json(view(&out.after, me)))
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
    fn a_dissolved_group_accepts_nothing() {
        let mut g = group(JoinMode::Open);
        g.group.status = GroupStatus::Dissolved;
        assert!(join(&g, UserId(7), "", 1).is_err());
        assert!(edit(&g, UserId(1), InfoEdit::default()).is_err());
        assert!(leave(&g, UserId(1)).is_ok(), "after dissolving, even the owner may leave");
    }
}
