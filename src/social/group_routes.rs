//! The group routes under `/api/groups`, and how a committed group change is announced.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::groups::{InfoEdit, approve, dissolve, edit, invite, join, kick, leave, mute, need, refuse, role_of, set_admin, transfer};
use crate::config::Config;
use crate::http::error::ErrorBody;
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery, AuthUser};
use crate::hub::Hub;
use crate::ids::UserId;
use crate::outcome::Refusal;
use crate::protocol::{Content, GoneReason, GroupView, JoinMode, MemberView, Message, Role, ServerFrame, SystemEvent};
use crate::store::social::{GroupChange, GroupLimits, GroupOutcome, GroupRecord, GroupState, GroupStatus};
use crate::store::{Store, now_ms};

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

pub(super) fn limits(config: &Config) -> GroupLimits {
    GroupLimits {
        max_members: config.groups.max_members,
        max_groups_per_user: config.groups.max_groups_per_user,
        history_for_new_members: config.groups.history_for_new_members,
    }
}

/// The caller of a group route, with what a group change needs.
pub struct Actor {
    pub me: UserId,
    store: Store,
    hub: Arc<Hub>,
    config: Arc<Config>,
}

impl<S> FromRequestParts<S> for Actor
where
    S: Send + Sync,
    Store: FromRef<S>,
    Arc<Hub>: FromRef<S>,
    Arc<Config>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = AuthUser::from_request_parts(parts, state).await?;
        Ok(Actor {
            me: auth.user.id,
            store: Store::from_ref(state),
            hub: Arc::<Hub>::from_ref(state),
            config: Arc::<Config>::from_ref(state),
        })
    }
}

impl Actor {
    /// Applies `rule` to group `gid` as this caller and announces the result.
    pub async fn apply(
        &self,
        gid: u64,
        rule: impl FnOnce(&GroupState) -> Result<GroupChange, Refusal> + Send + 'static,
    ) -> Result<GroupOutcome, ApiError> {
        apply(&self.store, &self.hub, &self.config, gid, self.me, rule).await
    }
}

/// Tells everyone concerned about a committed change: members get the new group and its
/// messages; people who are no longer members get `group_gone`.
/// Why `user` is no longer in the group, as the rule's own event says: `Left` from
/// `groups::leave`, `Removed` from `groups::kick` (the only rules that take members out).
fn gone_reason(messages: &[Message], user: UserId) -> GoneReason {
    let left = messages.iter().any(|m| matches!(&m.content, Content::System { event: SystemEvent::Left { user: u } } if *u == user));
    if left { GoneReason::Left } else { GoneReason::Removed }
}

pub(super) fn announce(hub: &Hub, out: &GroupOutcome) {
    hub.access_changed(crate::ids::ConvId::Group(out.after.group.id));
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
        for u in &gone {
            hub.send(&[*u], &ServerFrame::GroupGone { group: before.group.id, reason: gone_reason(&out.messages, *u) });
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

/// Named apart from the administrators' invite codes (`Invite`): two schemas of one name
/// would make the document describe one route's body with the other's.
#[derive(Deserialize, ToSchema)]
#[schema(as = NewMembers)]
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

pub(super) async fn load(store: &Store, gid: u64) -> Result<Arc<GroupState>, ApiError> {
    store.group(gid).await?.ok_or_else(|| ApiError::not_found("No such group."))
}

#[utoipa::path(post, path = "/api/groups", tag = "groups", request_body = NewGroup,
    responses((status = 201, body = GroupView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create(actor: Actor, ApiJson(req): ApiJson<NewGroup>) -> Result<(StatusCode, Json<GroupView>), ApiError> {
    let me = actor.me;
    let name = clean_name(&req.name)?;
    let notice = clean_notice(&req.notice)?;
    let mut members: Vec<UserId> = req.members.into_iter().filter(|u| *u != me).collect();
    members.sort();
    members.dedup();
    check_contacts(&actor.store, me, &members).await?;
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
    let hub2 = actor.hub.clone();
    let out = actor.store.create_group(me, record, members, limits(&actor.config), move |o| announce(&hub2, o)).await??;
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
pub async fn get(auth: AuthUser, State(store): State<Store>, ApiPath(gid): ApiPath<u64>) -> Result<Json<GroupView>, ApiError> {
    let state = load(&store, gid).await?;
    if state.group.status != GroupStatus::Active && !state.members.contains_key(&auth.user.id) {
        return Err(ApiError::not_found("No such group."));
    }
    Ok(Json(view(&state, auth.user.id)))
}

#[utoipa::path(patch, path = "/api/groups/{id}", tag = "groups", params(("id" = u64, Path)), request_body = GroupEdit,
    responses((status = 200, body = GroupView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(actor: Actor, ApiPath(gid): ApiPath<u64>, ApiJson(req): ApiJson<GroupEdit>) -> Result<Json<GroupView>, ApiError> {
    let e = InfoEdit {
        name: req.name.as_deref().map(clean_name).transpose()?,
        notice: req.notice.as_deref().map(clean_notice).transpose()?,
        avatar: None,
        join_mode: req.join_mode,
    };
    let me = actor.me;
    let out = actor.apply(gid, move |s| edit(s, me, e)).await?;
    Ok(Json(view(&out.after, me)))
}

#[utoipa::path(delete, path = "/api/groups/{id}", tag = "groups", params(("id" = u64, Path)), responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove(actor: Actor, ApiPath(gid): ApiPath<u64>) -> Result<StatusCode, ApiError> {
    let me = actor.me;
    actor.apply(gid, move |s| dissolve(s, me)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/groups/{id}/members", tag = "groups", params(("id" = u64, Path)), responses((status = 200, body = MemberList), (status = 404, body = ErrorBody)))]
pub async fn members(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    ApiPath(gid): ApiPath<u64>,
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
    actor: Actor,
    ApiPath(gid): ApiPath<u64>,
    ApiJson(req): ApiJson<JoinRequest>,
) -> Result<Json<JoinAnswer>, ApiError> {
    let me = actor.me;
    let message = req.message.trim().chars().take(200).collect::<String>();
    let state = load(&actor.store, gid).await?;
    if state.group.status != GroupStatus::Active {
        return Err(ApiError::not_found("No such group."));
    }
    let now = now_ms();
    let out = actor.apply(gid, move |s| join(s, me, &message, now)).await?;
    Ok(Json(JoinAnswer { joined: out.after.members.contains_key(&me), group: view(&out.after, me) }))
}

#[utoipa::path(post, path = "/api/groups/{id}/leave", tag = "groups", params(("id" = u64, Path)), responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn leave_group(actor: Actor, ApiPath(gid): ApiPath<u64>) -> Result<StatusCode, ApiError> {
    let me = actor.me;
    actor.apply(gid, move |s| leave(s, me)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/groups/{id}/applications", tag = "groups", params(("id" = u64, Path)), responses((status = 200, body = ApplicationList), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn applications(
    auth: AuthUser,
    State(store): State<Store>,
    ApiPath(gid): ApiPath<u64>,
) -> Result<Json<ApplicationList>, ApiError> {
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
pub async fn approve_application(actor: Actor, ApiPath((gid, user)): ApiPath<(u64, u64)>) -> Result<Json<GroupView>, ApiError> {
    let me = actor.me;
    let now = now_ms();
    let out = actor.apply(gid, move |s| approve(s, me, UserId(user), now)).await?;
    Ok(Json(view(&out.after, me)))
}

#[utoipa::path(post, path = "/api/groups/{id}/applications/{user}/refuse", tag = "groups", params(("id" = u64, Path), ("user" = u64, Path)),
    responses((status = 200, body = GroupView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn refuse_application(actor: Actor, ApiPath((gid, user)): ApiPath<(u64, u64)>) -> Result<Json<GroupView>, ApiError> {
    let me = actor.me;
    let out = actor.apply(gid, move |s| refuse(s, me, UserId(user))).await?;
    Ok(Json(view(&out.after, me)))
}

#[utoipa::path(post, path = "/api/groups/{id}/members", tag = "groups", params(("id" = u64, Path)), request_body = Invite,
    responses((status = 200, body = GroupView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_members(actor: Actor, ApiPath(gid): ApiPath<u64>, ApiJson(req): ApiJson<Invite>) -> Result<Json<GroupView>, ApiError> {
    let me = actor.me;
    let mut users = req.users;
    users.sort();
    users.dedup();
    check_contacts(&actor.store, me, &users).await?;
    let now = now_ms();
    let out = actor.apply(gid, move |s| invite(s, me, &users, now)).await?;
    Ok(Json(view(&out.after, me)))
}

#[utoipa::path(delete, path = "/api/groups/{id}/members/{user}", tag = "groups", params(("id" = u64, Path), ("user" = u64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_member(actor: Actor, ApiPath((gid, user)): ApiPath<(u64, u64)>) -> Result<StatusCode, ApiError> {
    let me = actor.me;
    let target = UserId(user);
    actor.apply(gid, move |s| if target == me { leave(s, me) } else { kick(s, me, target) }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/groups/{id}/members/{user}/mute", tag = "groups", params(("id" = u64, Path), ("user" = u64, Path)), request_body = MuteRequest,
    responses((status = 200, body = GroupView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn mute_member(
    actor: Actor,
    ApiPath((gid, user)): ApiPath<(u64, u64)>,
    ApiJson(req): ApiJson<MuteRequest>,
) -> Result<Json<GroupView>, ApiError> {
    let me = actor.me;
    let until = req.minutes.filter(|m| *m > 0).map(|m| now_ms() + m.min(60 * 24 * 366) * 60_000);
    let out = actor.apply(gid, move |s| mute(s, me, UserId(user), until)).await?;
    Ok(Json(view(&out.after, me)))
}

#[utoipa::path(post, path = "/api/groups/{id}/admins/{user}", tag = "groups", params(("id" = u64, Path), ("user" = u64, Path)),
    responses((status = 200, body = GroupView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_admin(actor: Actor, ApiPath((gid, user)): ApiPath<(u64, u64)>) -> Result<Json<GroupView>, ApiError> {
    let me = actor.me;
    let out = actor.apply(gid, move |s| set_admin(s, me, UserId(user), true)).await?;
    Ok(Json(view(&out.after, me)))
}

#[utoipa::path(delete, path = "/api/groups/{id}/admins/{user}", tag = "groups", params(("id" = u64, Path), ("user" = u64, Path)),
    responses((status = 200, body = GroupView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_admin(actor: Actor, ApiPath((gid, user)): ApiPath<(u64, u64)>) -> Result<Json<GroupView>, ApiError> {
    let me = actor.me;
    let out = actor.apply(gid, move |s| set_admin(s, me, UserId(user), false)).await?;
    Ok(Json(view(&out.after, me)))
}

#[utoipa::path(post, path = "/api/groups/{id}/transfer", tag = "groups", params(("id" = u64, Path)), request_body = Transfer,
    responses((status = 200, body = GroupView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn transfer_group(
    actor: Actor,
    ApiPath(gid): ApiPath<u64>,
    ApiJson(req): ApiJson<Transfer>,
) -> Result<Json<GroupView>, ApiError> {
    let me = actor.me;
    let out = actor.apply(gid, move |s| transfer(s, me, req.user)).await?;
    Ok(Json(view(&out.after, me)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(sender: UserId, event: SystemEvent) -> Message {
        Message::new("g:7".parse().unwrap(), 5, sender, String::new(), 0, Content::System { event })
    }

    #[test]
    fn a_member_who_left_is_told_left_and_a_kicked_one_removed() {
        let left = [event(UserId(2), SystemEvent::Left { user: UserId(2) })];
        assert_eq!(gone_reason(&left, UserId(2)), GoneReason::Left);
        let kicked = [event(UserId(1), SystemEvent::Removed { user: UserId(2), by: UserId(1) })];
        assert_eq!(gone_reason(&kicked, UserId(2)), GoneReason::Removed);
    }

    #[test]
    fn the_reason_comes_from_the_event_not_from_who_wrote_it() {
        // An event written by the one who is gone, but saying they were removed.
        let removed = [event(UserId(2), SystemEvent::Removed { user: UserId(2), by: UserId(1) })];
        assert_eq!(gone_reason(&removed, UserId(2)), GoneReason::Removed);
        // Someone else's leaving says nothing about this member.
        let other = [event(UserId(3), SystemEvent::Left { user: UserId(3) })];
        assert_eq!(gone_reason(&other, UserId(2)), GoneReason::Removed);
    }
}
