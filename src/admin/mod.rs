//! Server administration: users, groups, live settings, invites, the dashboard and the audit
//! log. Every route checks on the server that the caller administers it (the system Chinwag
//! replaces left its admin pages unchecked), and every change is written to the audit log.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::accounts::{Accounts, validate};
use crate::config::{Config, DirectPolicy, LiveConfig, OtpSender, Registration};
use crate::http::error::ErrorBody;
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery, AuthUser};
use crate::hub::Hub;
use crate::ids::UserId;
use crate::protocol::{GoneReason, ServerFrame, UserView, close};
use crate::social::{group_routes, groups};
use crate::store::admin::{AdminRefusal, AuditEntry, Invite};
use crate::store::social::{GroupRecord, GroupStatus};
use crate::store::{Store, UserRecord, now_ms};

/// The caller, if they administer the server.
fn admin(auth: &AuthUser) -> Result<UserId, ApiError> {
    if auth.user.is_admin { Ok(auth.user.id) } else { Err(ApiError::forbidden("Only server administrators can do this.")) }
}

fn refusal(r: AdminRefusal) -> ApiError {
    match r {
        AdminRefusal::NoSuchUser => ApiError::not_found("No such user."),
        AdminRefusal::LastAdmin => {
            ApiError::conflict("last_admin", "The server needs at least one administrator: appoint another one first.")
        }
    }
}

/// A user as administrators see them.
#[derive(Serialize, ToSchema)]
pub struct AdminUserView {
    #[serde(flatten)]
    pub user: UserView,
    pub disabled: bool,
    pub deleted: bool,
    pub last_seen: Option<u64>,
    pub online: bool,
}

fn admin_view(u: &UserRecord, hub: &Hub) -> AdminUserView {
    AdminUserView { user: u.own_view(), disabled: u.disabled, deleted: u.deleted, last_seen: u.last_seen, online: hub.is_online(u.id) }
}

/// Ends every session and socket of `user` at once.
async fn end_sessions(store: &Store, hub: &Hub, user: UserId) -> Result<(), ApiError> {
    let revoked = store.delete_user_sessions(user, None).await?;
    hub.close_sessions(&revoked, close::SESSION_REVOKED);
    hub.close_user(user, close::SESSION_REVOKED);
    Ok(())
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// Part of a username or nickname (users), or of a name (groups).
    pub q: Option<String>,
    #[serde(default)]
    pub offset: u32,
    /// 1 to 200; 50 when absent.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

impl Page {
    fn limit(&self) -> Result<usize, ApiError> {
        let l = self.limit.unwrap_or(50);
        if (1..=200).contains(&l) { Ok(l as usize) } else { Err(ApiError::bad_request("invalid", "limit must be 1 to 200.")) }
    }
}

#[derive(Serialize, ToSchema)]
pub struct UserPage {
    pub users: Vec<AdminUserView>,
    pub total: usize,
}

#[utoipa::path(get, path = "/api/admin/users", tag = "admin", params(Page), responses((status = 200, body = UserPage), (status = 403, body = ErrorBody)))]
pub async fn users(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    ApiQuery(p): ApiQuery<Page>,
) -> Result<Json<UserPage>, ApiError> {
    admin(&auth)?;
    let (page, total) = store.list_users(p.q.clone(), p.offset as usize, p.limit()?).await?;
    Ok(Json(UserPage { users: page.iter().map(|u| admin_view(u, &hub)).collect(), total }))
}

async fn set_disabled(auth: AuthUser, store: Store, hub: Arc<Hub>, id: u64, disabled: bool) -> Result<Json<AdminUserView>, ApiError> {
    let me = admin(&auth)?;
    if disabled && UserId(id) == me {
        return Err(ApiError::conflict("conflict", "You cannot disable your own account."));
    }
    let user = store.set_disabled(UserId(id), disabled).await?.ok_or_else(|| ApiError::not_found("No such user."))?;
    if disabled {
        end_sessions(&store, &hub, user.id).await?;
    }
    store.audit(me, if disabled { "user.disable" } else { "user.enable" }, format!("user:{id}"), String::new()).await?;
    Ok(Json(admin_view(&user, &hub)))
}

#[utoipa::path(post, path = "/api/admin/users/{id}/disable", tag = "admin", params(("id" = u64, Path)),
    responses((status = 200, body = AdminUserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn disable_user(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<AdminUserView>, ApiError> {
    set_disabled(auth, store, hub, id, true).await
}

#[utoipa::path(post, path = "/api/admin/users/{id}/enable", tag = "admin", params(("id" = u64, Path)),
    responses((status = 200, body = AdminUserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn enable_user(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<AdminUserView>, ApiError> {
    set_disabled(auth, store, hub, id, false).await
}

#[utoipa::path(delete, path = "/api/admin/users/{id}", tag = "admin", params(("id" = u64, Path)),
    responses((status = 200, body = AdminUserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_user(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<AdminUserView>, ApiError> {
    let me = admin(&auth)?;
    let user = store.delete_user(UserId(id)).await?.map_err(refusal)?;
    end_sessions(&store, &hub, user.id).await?;
    store.audit(me, "user.delete", format!("user:{id}"), user.username.clone()).await?;
    Ok(Json(admin_view(&user, &hub)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    pub new_password: String,
}

#[utoipa::path(post, path = "/api/admin/users/{id}/password", tag = "admin", params(("id" = u64, Path)), request_body = PasswordReset,
    responses((status = 204, description = "set; the user's sessions are ended"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn reset_password(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(accounts): State<Arc<Accounts>>,
    ApiPath(id): ApiPath<u64>,
    ApiJson(req): ApiJson<PasswordReset>,
) -> Result<StatusCode, ApiError> {
    let me = admin(&auth)?;
    validate::password(&req.new_password)?;
    let user = store.user(UserId(id)).await?.filter(|u| !u.deleted).ok_or_else(|| ApiError::not_found("No such user."))?;
    let hash = accounts.hasher.hash(req.new_password).await?;
    store.set_password_hash(user.id, hash).await?;
    end_sessions(&store, &hub, user.id).await?;
    store.audit(me, "user.reset_password", format!("user:{id}"), String::new()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_admin(auth: AuthUser, store: Store, hub: Arc<Hub>, id: u64, on: bool) -> Result<Json<AdminUserView>, ApiError> {
    let me = admin(&auth)?;
    let user = store.set_admin(UserId(id), on).await?.map_err(refusal)?;
    store.audit(me, if on { "user.promote" } else { "user.demote" }, format!("user:{id}"), String::new()).await?;
    Ok(Json(admin_view(&user, &hub)))
}

#[utoipa::path(post, path = "/api/admin/users/{id}/admin", tag = "admin", params(("id" = u64, Path)),
    responses((status = 200, body = AdminUserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn promote(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<AdminUserView>, ApiError> {
    set_admin(auth, store, hub, id, true).await
}

#[utoipa::path(delete, path = "/api/admin/users/{id}/admin", tag = "admin", params(("id" = u64, Path)),
    responses((status = 200, body = AdminUserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn demote(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<AdminUserView>, ApiError> {
    set_admin(auth, store, hub, id, false).await
}

#[derive(Serialize, ToSchema)]
pub struct AdminGroupView {
    pub id: u64,
    pub name: String,
    pub owner: UserId,
    pub member_count: usize,
    pub created_at: u64,
    /// `active`, `disabled` or `dissolved`.
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct GroupPage {
    pub groups: Vec<AdminGroupView>,
    pub total: usize,
}

#[utoipa::path(get, path = "/api/admin/groups", tag = "admin", params(Page), responses((status = 200, body = GroupPage), (status = 403, body = ErrorBody)))]
pub async fn groups(auth: AuthUser, State(store): State<Store>, ApiQuery(p): ApiQuery<Page>) -> Result<Json<GroupPage>, ApiError> {
    admin(&auth)?;
    let limit = p.limit()?;
    let needle = p.q.as_deref().map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty());
    let all: Vec<GroupRecord> = store
        .all_groups()
        .await?
        .into_iter()
        .filter(|g| needle.as_ref().is_none_or(|n| g.name.to_lowercase().contains(n.as_str())))
        .collect();
    let total = all.len();
    let mut groups = Vec::new();
    for g in all.into_iter().skip(p.offset as usize).take(limit) {
        let count = store.group(g.id).await?.map_or(0, |s| s.members.len());
        let status = match g.status {
            GroupStatus::Active => "active",
            GroupStatus::Disabled => "disabled",
            GroupStatus::Dissolved => "dissolved",
        };
        groups.push(AdminGroupView {
            id: g.id,
            name: g.name,
            owner: g.owner,
            member_count: count,
            created_at: g.created_at,
            status: status.into(),
        });
    }
    Ok(Json(GroupPage { groups, total }))
}

/// Changes a group's status through the group rule and the group routes' announcements (the
/// `dissolved` system message, `group` and `group_gone` frames), as an owner's dissolve does.
async fn group_status(
    auth: AuthUser,
    store: Store,
    hub: Arc<Hub>,
    config: Arc<Config>,
    gid: u64,
    to: GroupStatus,
) -> Result<StatusCode, ApiError> {
    let me = admin(&auth)?;
    let out = group_routes::apply(&store, &hub, &config, gid, me, move |s| groups::set_status_by_admin(s, me, to)).await?;
    if to == GroupStatus::Disabled {
        // Members keep the history but can no longer write: their apps show the group as closed.
        hub.send(&out.after.member_ids(), &ServerFrame::GroupGone { group: gid, reason: GoneReason::Removed });
    }
    let action = match to {
        GroupStatus::Active => "group.enable",
        GroupStatus::Disabled => "group.disable",
        GroupStatus::Dissolved => "group.dissolve",
    };
    store.audit(me, action, format!("group:{gid}"), String::new()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/admin/groups/{id}/disable", tag = "admin", params(("id" = u64, Path)), responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn disable_group(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    group_status(auth, store, hub, config, id, GroupStatus::Disabled).await
}

#[utoipa::path(post, path = "/api/admin/groups/{id}/enable", tag = "admin", params(("id" = u64, Path)), responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn enable_group(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    group_status(auth, store, hub, config, id, GroupStatus::Active).await
}

#[utoipa::path(delete, path = "/api/admin/groups/{id}", tag = "admin", params(("id" = u64, Path)), responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn dissolve_group(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    group_status(auth, store, hub, config, id, GroupStatus::Dissolved).await
}

/// Settings an administrator may change while the server runs. They are stored in the
/// database and override the configuration file for these keys.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveSettings {
    pub registration: Option<Registration>,
    pub otp_sender: Option<OtpSender>,
    pub otp_webhook_url: Option<String>,
    pub direct_policy: Option<DirectPolicy>,
    #[schema(maximum = 315_360_000)]
    pub recall_window_secs: Option<u64>,
    #[schema(maximum = 315_360_000)]
    pub edit_window_secs: Option<u64>,
    pub max_group_members: Option<usize>,
    pub max_groups_per_user: Option<usize>,
    pub history_for_new_members: Option<bool>,
}

impl LiveSettings {
    /// `config` with these settings applied.
    pub fn apply(&self, mut config: Config) -> Config {
        macro_rules! set {
            ($field:ident => $($path:tt)+) => {
                if let Some(v) = self.$field.clone() {
                    config.$($path)+ = v;
                }
            };
        }
        set!(registration => auth.registration);
        set!(otp_sender => auth.otp_sender);
        if self.otp_webhook_url.is_some() {
            config.auth.otp_webhook_url.clone_from(&self.otp_webhook_url);
        }
        set!(direct_policy => chat.direct_policy);
        set!(recall_window_secs => chat.recall_window_secs);
        set!(edit_window_secs => chat.edit_window_secs);
        set!(max_group_members => groups.max_members);
        set!(max_groups_per_user => groups.max_groups_per_user);
        set!(history_for_new_members => groups.history_for_new_members);
        config
    }

    /// Every setting's value in `config`.
    pub fn of(config: &Config) -> LiveSettings {
        LiveSettings {
            registration: Some(config.auth.registration),
            otp_sender: Some(config.auth.otp_sender),
            otp_webhook_url: config.auth.otp_webhook_url.clone(),
            direct_policy: Some(config.chat.direct_policy),
            recall_window_secs: Some(config.chat.recall_window_secs),
            edit_window_secs: Some(config.chat.edit_window_secs),
            max_group_members: Some(config.groups.max_members),
            max_groups_per_user: Some(config.groups.max_groups_per_user),
            history_for_new_members: Some(config.groups.history_for_new_members),
        }
    }

    /// Later values win.
    fn merged(mut self, newer: LiveSettings) -> LiveSettings {
        macro_rules! take {
            ($($f:ident),*) => { $( if newer.$f.is_some() { self.$f = newer.$f; } )* };
        }
        take!(
            registration,
            otp_sender,
            otp_webhook_url,
            direct_policy,
            recall_window_secs,
            edit_window_secs,
            max_group_members,
            max_groups_per_user,
            history_for_new_members
        );
        self
    }
}

/// Applies the settings stored by administrators to the configuration at start.
pub async fn load_live_settings(store: &Store, config: Config) -> anyhow::Result<Config> {
    let Some(v) = store.live_settings().await? else { return Ok(config) };
    let stored: LiveSettings = serde_json::from_value(v).map_err(|e| anyhow::anyhow!("stored settings are unreadable: {e}"))?;
    let applied = stored.apply(config);
    applied.validate().map_err(|e| anyhow::anyhow!("stored settings: {e}"))?;
    Ok(applied)
}

#[utoipa::path(get, path = "/api/admin/settings", tag = "admin", responses((status = 200, body = LiveSettings), (status = 403, body = ErrorBody)))]
pub async fn settings(auth: AuthUser, State(config): State<Arc<Config>>) -> Result<Json<LiveSettings>, ApiError> {
    admin(&auth)?;
    Ok(Json(LiveSettings::of(&config)))
}

#[utoipa::path(patch, path = "/api/admin/settings", tag = "admin", request_body = LiveSettings,
    responses((status = 200, body = LiveSettings), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn update_settings(
    auth: AuthUser,
    State(store): State<Store>,
    State(live): State<LiveConfig>,
    ApiJson(req): ApiJson<LiveSettings>,
) -> Result<Json<LiveSettings>, ApiError> {
    let me = admin(&auth)?;
    let current = live.get();
    let next = req.apply((*current).clone());
    next.validate().map_err(|e| ApiError::bad_request("invalid", e.to_string()))?;
    let stored: LiveSettings = store.live_settings().await?.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
    let detail = serde_json::to_string(&req).unwrap_or_default();
    let merged = stored.merged(req);
    store.save_live_settings(serde_json::to_value(&merged).map_err(|_| ApiError::internal())?).await?;
    live.set(next.clone());
    store.audit(me, "settings.update", "settings".into(), detail).await?;
    Ok(Json(LiveSettings::of(&next)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvite {
    /// How many accounts the code can create (1 to 1000).
    pub max_uses: u32,
    /// Hours until it expires (1 to 8760).
    pub expires_in_hours: u64,
}

#[derive(Serialize, ToSchema)]
pub struct InviteList {
    pub invites: Vec<Invite>,
}

#[utoipa::path(post, path = "/api/admin/invites", tag = "admin", request_body = NewInvite, responses((status = 201, body = Invite), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_invite(
    auth: AuthUser,
    State(store): State<Store>,
    ApiJson(req): ApiJson<NewInvite>,
) -> Result<(StatusCode, Json<Invite>), ApiError> {
    let me = admin(&auth)?;
    if !(1..=1000).contains(&req.max_uses) || !(1..=8760).contains(&req.expires_in_hours) {
        return Err(ApiError::bad_request("invalid", "Choose 1 to 1,000 uses and 1 to 8,760 hours."));
    }
    let mut raw = [0u8; 12];
    rand::fill(&mut raw);
    let now = now_ms();
    let invite = Invite {
        code: hex::encode(raw),
        created_by: me,
        created_at: now,
        expires_at: now + req.expires_in_hours * 3_600_000,
        max_uses: req.max_uses,
        uses: 0,
    };
    store.create_invite(invite.clone()).await?;
    store.audit(me, "invite.create", format!("invite:{}", &invite.code[..6]), String::new()).await?;
    Ok((StatusCode::CREATED, Json(invite)))
}

#[utoipa::path(get, path = "/api/admin/invites", tag = "admin", responses((status = 200, body = InviteList), (status = 403, body = ErrorBody)))]
pub async fn invites(auth: AuthUser, State(store): State<Store>) -> Result<Json<InviteList>, ApiError> {
    admin(&auth)?;
    Ok(Json(InviteList { invites: store.invites().await? }))
}

#[utoipa::path(delete, path = "/api/admin/invites/{code}", tag = "admin", params(("code" = String, Path)), responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_invite(auth: AuthUser, State(store): State<Store>, ApiPath(code): ApiPath<String>) -> Result<StatusCode, ApiError> {
    let me = admin(&auth)?;
    if !store.delete_invite(code.clone()).await? {
        return Err(ApiError::not_found("No such invite."));
    }
    store.audit(me, "invite.delete", format!("invite:{}", code.chars().take(6).collect::<String>()), String::new()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct Dashboard {
    pub users: u64,
    pub online_users: usize,
    pub connections: u64,
    pub messages: u64,
    /// `[day, count]` for the last 14 days, oldest first; day = days since the Unix epoch.
    /// (Described as arrays of integers: utoipa writes a tuple as an `items` list, which OpenAPI
    /// 3.1 does not allow.)
    #[schema(value_type = Vec<Vec<u64>>)]
    pub messages_per_day: Vec<(u64, u64)>,
    /// Bytes on disk: the database and file blobs.
    pub storage_bytes: u64,
}

fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[utoipa::path(get, path = "/api/admin/dashboard", tag = "admin", responses((status = 200, body = Dashboard), (status = 403, body = ErrorBody)))]
pub async fn dashboard(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
) -> Result<Json<Dashboard>, ApiError> {
    admin(&auth)?;
    let (users, messages, messages_per_day) = store.counts(14).await?;
    let dir = config.data_dir.clone();
    let storage_bytes = tokio::task::spawn_blocking(move || dir_size(&dir)).await.unwrap_or(0);
    Ok(Json(Dashboard {
        users,
        online_users: hub.online_users(),
        connections: hub.connections.load(std::sync::atomic::Ordering::Relaxed),
        messages,
        messages_per_day,
        storage_bytes,
    }))
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entries older than this id.
    pub before: Option<u64>,
    /// 1 to 500; 100 when absent.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
}

#[utoipa::path(get, path = "/api/admin/audit", tag = "admin", params(AuditQuery), responses((status = 200, body = AuditPage), (status = 403, body = ErrorBody)))]
pub async fn audit(auth: AuthUser, State(store): State<Store>, ApiQuery(q): ApiQuery<AuditQuery>) -> Result<Json<AuditPage>, ApiError> {
    admin(&auth)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("invalid", "limit must be 1 to 500."));
    }
    let limit = limit as usize;
    Ok(Json(AuditPage { entries: store.audit_log(q.before, limit).await? }))
}
