//! Favourites ("Saved"): `GET`/`POST /api/favorites`, `DELETE /api/favorites/{id}`. Saving
//! checks, over the cached state and again inside the write transaction, that the user may read
//! the message; each change is told to every device of the user (`favorite`,
//! `favorite_removed` frames).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Want, access, gate};
use crate::config::Config;
use crate::http::error::ErrorBody;
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery, AuthUser};
use crate::hub::Hub;
use crate::ids::ConvId;
use crate::protocol::{Favorite, ServerFrame};
use crate::store::Store;
use crate::store::messages::MessageRefusal;

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FavoritesQuery {
    /// Search texts, file names, sender names and chat-history contents (Chinese too).
    pub q: Option<String>,
    /// Favourites with a smaller id (the next page).
    pub before: Option<u64>,
    /// 1 to 50; 20 when absent.
    pub limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct FavoritesPage {
    /// Newest first.
    pub favorites: Vec<Favorite>,
    pub has_more: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveRequest {
    pub conv: String,
    pub seq: u64,
}

#[utoipa::path(get, path = "/api/favorites", tag = "chat", params(FavoritesQuery),
    responses((status = 200, body = FavoritesPage), (status = 400, body = ErrorBody)))]
pub async fn list(
    auth: AuthUser,
    State(store): State<Store>,
    ApiQuery(q): ApiQuery<FavoritesQuery>,
) -> Result<Json<FavoritesPage>, ApiError> {
    let limit = q.limit.unwrap_or(20);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::bad_request("invalid", "limit must be 1 to 50."));
    }
    let query = q.q.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    if query.as_ref().is_some_and(|s| s.chars().count() > 200) {
        return Err(ApiError::bad_request("invalid", "Search for at most 200 characters."));
    }
    let (favorites, has_more) = store.favorites(auth.user.id, query, q.before, limit as usize).await?;
    Ok(Json(FavoritesPage { favorites, has_more }))
}

#[utoipa::path(post, path = "/api/favorites", tag = "chat", request_body = SaveRequest,
    responses((status = 201, body = Favorite, description = "saved"), (status = 200, body = Favorite, description = "saved before: the existing favourite"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "`limit_reached`: 5,000 favourites")))]
pub async fn save(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    ApiJson(req): ApiJson<SaveRequest>,
) -> Result<(StatusCode, Json<Favorite>), ApiError> {
    let me = auth.user.id;
    let conv: ConvId = req.conv.parse().map_err(|_| ApiError::not_found("No such conversation."))?;
    access(&store, &config, me, conv, Want::Read).await??;
    let policy = config.chat.direct_policy;
    match store.save_favorite(me, conv, req.seq, move |f| gate(Want::Read, policy)(f)).await? {
        Ok(s) if s.existing => Ok((StatusCode::OK, Json(s.favorite))),
        Ok(s) => {
            hub.send(&[me], &ServerFrame::Favorite { favorite: s.favorite.clone() });
            Ok((StatusCode::CREATED, Json(s.favorite)))
        }
        Err(MessageRefusal::NoSuchMessage) => Err(ApiError::not_found("No such message.")),
        Err(MessageRefusal::Rule(m)) => Err(ApiError::forbidden(m)),
        Err(MessageRefusal::Denied(r)) => Err(r.into()),
    }
}

#[utoipa::path(delete, path = "/api/favorites/{id}", tag = "chat", params(("id" = u64, Path)),
    responses((status = 204, description = "removed"), (status = 404, body = ErrorBody)))]
pub async fn remove(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    let me = auth.user.id;
    if store.remove_favorite(me, id).await? {
        hub.send(&[me], &ServerFrame::FavoriteRemoved { id });
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("No such favourite."))
    }
}
