//! Invite codes for registration in `invite` mode: creating, listing and deleting them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AdminUser;
use crate::http::error::ErrorBody;
use crate::http::{ApiError, ApiJson, ApiPath};
use crate::store::admin::Invite;
use crate::store::{Store, now_ms};

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
    AdminUser(me): AdminUser,
    State(store): State<Store>,
    ApiJson(req): ApiJson<NewInvite>,
) -> Result<(StatusCode, Json<Invite>), ApiError> {
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
pub async fn invites(_: AdminUser, State(store): State<Store>) -> Result<Json<InviteList>, ApiError> {
    Ok(Json(InviteList { invites: store.invites().await? }))
}

#[utoipa::path(delete, path = "/api/admin/invites/{code}", tag = "admin", params(("code" = String, Path)), responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_invite(
    AdminUser(me): AdminUser,
    State(store): State<Store>,
    ApiPath(code): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if !store.delete_invite(code.clone()).await? {
        return Err(ApiError::not_found("No such invite."));
    }
    store.audit(me, "invite.delete", format!("invite:{}", code.chars().take(6).collect::<String>()), String::new()).await?;
    Ok(StatusCode::NO_CONTENT)
}
