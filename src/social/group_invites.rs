//! Group invite links: a token a group's owner or admins can show (as a link or QR code) and
//! reset, and the routes that look a group up and join it by that token, by the group's join
//! mode (open: you are in; approval: you applied). Knowing a group's id is not enough to use
//! the link, and a reset makes old links worthless; the join checks the token inside its write
//! transaction.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::group_routes::{JoinAnswer, JoinRequest, announce, limits, load, view};
use super::groups::{join, need};
use crate::config::Config;
use crate::http::error::ErrorBody;
use crate::http::{ApiError, ApiJson, ApiPath, AuthUser};
use crate::hub::Hub;
use crate::protocol::{GroupView, Role};
use crate::store::social::GroupStatus;
use crate::store::{Store, now_ms};

#[derive(Serialize, ToSchema)]
pub struct InviteLink {
    /// 32 hex digits; the web client's link is `https://HOST/join/{token}`.
    pub token: String,
}

/// A token is 32 lower-case hex digits; anything else is no token (and is not looked up).
fn check_token(token: &str) -> Result<(), ApiError> {
    if token.len() == 32 && token.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(())
    } else {
        Err(ApiError::not_found("No such invite."))
    }
}

async fn token_of(store: &Store, me: crate::ids::UserId, gid: u64, reset: bool) -> Result<Json<InviteLink>, ApiError> {
    let token = store.group_invite_token(gid, reset, move |s| need(s, me, Role::Admin).map(|_| ())).await??;
    Ok(Json(InviteLink { token }))
}

#[utoipa::path(get, path = "/api/groups/{id}/invite-link", tag = "groups", params(("id" = u64, Path)),
    responses((status = 200, body = InviteLink, description = "made on first use"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
/// The group's invite token, for its owner and admins.
pub async fn get_link(auth: AuthUser, State(store): State<Store>, ApiPath(gid): ApiPath<u64>) -> Result<Json<InviteLink>, ApiError> {
    token_of(&store, auth.user.id, gid, false).await
}

#[utoipa::path(post, path = "/api/groups/{id}/invite-link", tag = "groups", params(("id" = u64, Path)),
    responses((status = 200, body = InviteLink), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
/// Replaces the group's invite token: links and QR codes shown before stop working.
pub async fn reset_link(auth: AuthUser, State(store): State<Store>, ApiPath(gid): ApiPath<u64>) -> Result<Json<InviteLink>, ApiError> {
    token_of(&store, auth.user.id, gid, true).await
}

#[utoipa::path(get, path = "/api/group-invites/{token}", tag = "groups", params(("token" = String, Path)),
    responses((status = 200, body = GroupView), (status = 404, body = ErrorBody)))]
/// The group an invite link opens, to show before joining.
pub async fn preview(auth: AuthUser, State(store): State<Store>, ApiPath(token): ApiPath<String>) -> Result<Json<GroupView>, ApiError> {
    check_token(&token)?;
    let gid = store.group_of_token(token).await?.ok_or_else(|| ApiError::not_found("No such invite."))?;
    let state = load(&store, gid).await?;
    if state.group.status != GroupStatus::Active {
        return Err(ApiError::not_found("No such invite."));
    }
    Ok(Json(view(&state, auth.user.id)))
}

#[utoipa::path(post, path = "/api/group-invites/{token}/join", tag = "groups", params(("token" = String, Path)), request_body = JoinRequest,
    responses((status = 200, body = JoinAnswer), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
/// Joins the group of an invite link by its join mode: open groups at once, others by application.
pub async fn join_by_link(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    ApiPath(token): ApiPath<String>,
    ApiJson(req): ApiJson<JoinRequest>,
) -> Result<Json<JoinAnswer>, ApiError> {
    check_token(&token)?;
    let me = auth.user.id;
    let message = req.message.trim().chars().take(200).collect::<String>();
    let now = now_ms();
    let hub2 = hub.clone();
    let out =
        store.change_group_by_token(token, me, limits(&config), move |s| join(s, me, &message, now), move |o| announce(&hub2, o)).await??;
    Ok(Json(JoinAnswer { joined: out.after.members.contains_key(&me), group: view(&out.after, me) }))
}
