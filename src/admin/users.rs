//! Administering users: the list, disabling and enabling, deleting, resetting a password, and
//! appointing or removing server administrators (the last administrator stays).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AdminUser, Page};
use crate::accounts::{Accounts, validate};
use crate::config::Config;
use crate::http::error::ErrorBody;
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::hub::Hub;
use crate::ids::UserId;
use crate::protocol::{UserView, close};
use crate::store::admin::AdminRefusal;
use crate::store::oidc::SignInSource;
use crate::store::{Store, UserRecord};

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
    /// How the user signs in (listed in `GET /api/admin/users` only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sign_in: Vec<SignInView>,
}

/// One way a user signs in: `password`, `oidc` (with the provider's name) or `ldap`.
#[derive(Serialize, ToSchema)]
pub struct SignInView {
    pub kind: &'static str,
    /// The provider's name (`oidc`); its issuer URL when it is no longer configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

fn sign_in_view(s: &SignInSource, config: &Config) -> SignInView {
    match s {
        SignInSource::Password => SignInView { kind: "password", provider: None },
        SignInSource::Ldap => SignInView { kind: "ldap", provider: Some("LDAP".into()) },
        SignInSource::Oidc { issuer } => {
            let name = config.auth.oidc.iter().find(|p| p.issuer == *issuer).map_or_else(|| issuer.clone(), |p| p.name.clone());
            SignInView { kind: "oidc", provider: Some(name) }
        }
    }
}

fn admin_view(u: &UserRecord, hub: &Hub) -> AdminUserView {
    AdminUserView {
        user: u.own_view(),
        disabled: u.disabled,
        deleted: u.deleted,
        last_seen: u.last_seen,
        online: hub.is_online(u.id),
        sign_in: Vec::new(),
    }
}

/// Ends every session and socket of `user` at once.
async fn end_sessions(store: &Store, hub: &Hub, user: UserId) -> Result<(), ApiError> {
    let revoked = store.delete_user_sessions(user, None).await?;
    hub.close_sessions(&revoked, close::SESSION_REVOKED);
    hub.close_user(user, close::SESSION_REVOKED);
    Ok(())
}

#[derive(Serialize, ToSchema)]
pub struct UserPage {
    pub users: Vec<AdminUserView>,
    pub total: usize,
}

#[utoipa::path(get, path = "/api/admin/users", tag = "admin", params(Page), responses((status = 200, body = UserPage), (status = 403, body = ErrorBody)))]
pub async fn users(
    _: AdminUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    ApiQuery(p): ApiQuery<Page>,
) -> Result<Json<UserPage>, ApiError> {
    let (page, total) = store.list_users(p.q.clone(), p.offset as usize, p.limit()?).await?;
    let sources = store.sign_in_sources(page.clone()).await?;
    let users = page
        .iter()
        .zip(sources)
        .map(|(u, s)| AdminUserView { sign_in: s.iter().map(|s| sign_in_view(s, &config)).collect(), ..admin_view(u, &hub) })
        .collect();
    Ok(Json(UserPage { users, total }))
}

async fn set_disabled(me: UserId, store: Store, hub: Arc<Hub>, id: u64, disabled: bool) -> Result<Json<AdminUserView>, ApiError> {
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
    AdminUser(me): AdminUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<AdminUserView>, ApiError> {
    set_disabled(me, store, hub, id, true).await
}

#[utoipa::path(post, path = "/api/admin/users/{id}/enable", tag = "admin", params(("id" = u64, Path)),
    responses((status = 200, body = AdminUserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn enable_user(
    AdminUser(me): AdminUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<AdminUserView>, ApiError> {
    set_disabled(me, store, hub, id, false).await
}

#[utoipa::path(delete, path = "/api/admin/users/{id}", tag = "admin", params(("id" = u64, Path)),
    responses((status = 200, body = AdminUserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_user(
    AdminUser(me): AdminUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<AdminUserView>, ApiError> {
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
    AdminUser(me): AdminUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(accounts): State<Arc<Accounts>>,
    ApiPath(id): ApiPath<u64>,
    ApiJson(req): ApiJson<PasswordReset>,
) -> Result<StatusCode, ApiError> {
    validate::password(&req.new_password)?;
    let user = store.user(UserId(id)).await?.filter(|u| !u.deleted).ok_or_else(|| ApiError::not_found("No such user."))?;
    let hash = accounts.hasher.hash(req.new_password).await?;
    store.set_password_hash(user.id, hash).await?;
    end_sessions(&store, &hub, user.id).await?;
    store.audit(me, "user.reset_password", format!("user:{id}"), String::new()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_admin(me: UserId, store: Store, hub: Arc<Hub>, id: u64, on: bool) -> Result<Json<AdminUserView>, ApiError> {
    let user = store.set_admin(UserId(id), on).await?.map_err(refusal)?;
    store.audit(me, if on { "user.promote" } else { "user.demote" }, format!("user:{id}"), String::new()).await?;
    Ok(Json(admin_view(&user, &hub)))
}

#[utoipa::path(post, path = "/api/admin/users/{id}/admin", tag = "admin", params(("id" = u64, Path)),
    responses((status = 200, body = AdminUserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn promote(
    AdminUser(me): AdminUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<AdminUserView>, ApiError> {
    set_admin(me, store, hub, id, true).await
}

#[utoipa::path(delete, path = "/api/admin/users/{id}/admin", tag = "admin", params(("id" = u64, Path)),
    responses((status = 200, body = AdminUserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn demote(
    AdminUser(me): AdminUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<AdminUserView>, ApiError> {
    set_admin(me, store, hub, id, false).await
}
