//! Server administration: routes only the server's administrators may use, each checked here
//! on the server (the system Chinwag replaces left its admin pages unchecked).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};

use crate::http::error::ErrorBody;
use crate::http::{ApiError, AuthUser};
use crate::hub::Hub;
use crate::ids::UserId;
use crate::protocol::{UserView, close};
use crate::store::Store;

/// The caller, if they administer the server.
fn admin(auth: &AuthUser) -> Result<UserId, ApiError> {
    if auth.user.is_admin { Ok(auth.user.id) } else { Err(ApiError::forbidden("Only server administrators can do this.")) }
}

async fn set_disabled(auth: AuthUser, store: Store, hub: Arc<Hub>, id: u64, disabled: bool) -> Result<Json<UserView>, ApiError> {
    let me = admin(&auth)?;
    if UserId(id) == me {
        return Err(ApiError::conflict("conflict", "You cannot disable your own account."));
    }
    let user = store.set_disabled(UserId(id), disabled).await?.ok_or_else(|| ApiError::not_found("No such user."))?;
    if disabled {
        // At once: every session ends and every socket closes.
        let revoked = store.delete_user_sessions(user.id, None).await?;
        hub.close_sessions(&revoked, close::SESSION_REVOKED);
        hub.close_user(user.id, close::SESSION_REVOKED);
    }
    tracing::info!(admin = %me, user = %user.id, disabled, "account status changed");
    Ok(Json(user.own_view()))
}

#[utoipa::path(post, path = "/api/admin/users/{id}/disable", tag = "admin", params(("id" = u64, Path)),
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn disable_user(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    Path(id): Path<u64>,
) -> Result<Json<UserView>, ApiError> {
    set_disabled(auth, store, hub, id, true).await
}

#[utoipa::path(post, path = "/api/admin/users/{id}/enable", tag = "admin", params(("id" = u64, Path)),
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn enable_user(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    Path(id): Path<u64>,
) -> Result<Json<UserView>, ApiError> {
    set_disabled(auth, store, hub, id, false).await
}
