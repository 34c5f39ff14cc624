//! `GET /api/link-preview`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::{Links, PreviewError, PreviewFailure, normalize};
use crate::config::Config;
use crate::http::error::ErrorBody;
use crate::http::{ApiError, ApiQuery, AuthUser};
use crate::media::Media;
use crate::store::Store;
use crate::store::links::LinkPreview;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    /// An `http` or `https` URL, at most 2,048 bytes.
    pub url: String,
}

fn error(e: &PreviewError) -> ApiError {
    match e {
        PreviewError::Refused => {
            ApiError::bad_request(e.code(), "This link is not previewed: only http and https links to public addresses are fetched.")
        }
        PreviewError::NotHtml => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), "The link is not a web page."),
        PreviewError::Redirects => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), "The link redirects more than 3 times."),
        PreviewError::Unreachable => ApiError::new(StatusCode::BAD_GATEWAY, e.code(), "The page could not be fetched."),
    }
}

/// The preview of a web page (title, description, site name, a thumbnail of its image), fetched
/// by the server so that clients never contact the site. Cached per URL for a day (failures for
/// ten minutes); fetches are rate-limited per user.
#[utoipa::path(get, path = "/api/link-preview", tag = "chat", params(PreviewQuery),
    responses((status = 200, body = LinkPreview),
        (status = 400, body = ErrorBody, description = "`url_refused`: not an http(s) URL, or it reaches an address that is not public"),
        (status = 404, body = ErrorBody, description = "`previews_disabled`: `links.previews` is off"),
        (status = 422, body = ErrorBody, description = "`not_html`: not a web page; `too_many_redirects`: more than 3 redirects"),
        (status = 429, body = ErrorBody, description = "too many fetches; see `Retry-After`"),
        (status = 502, body = ErrorBody, description = "`unreachable`: no answer within 5 seconds, or an error status")))]
pub async fn preview(
    auth: AuthUser,
    State(links): State<Arc<Links>>,
    State(store): State<Store>,
    State(media): State<Arc<Media>>,
    State(config): State<Arc<Config>>,
    ApiQuery(q): ApiQuery<PreviewQuery>,
) -> Result<Json<LinkPreview>, ApiError> {
    if !config.links.previews {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "previews_disabled", "Link previews are turned off on this server."));
    }
    let url = normalize(&q.url).map_err(|e| {
        links.stats.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        error(&e)
    })?;
    match links.preview(&store, &media, auth.user.id, &url).await {
        Ok(Ok(p)) => Ok(Json(p)),
        Ok(Err(e)) => Err(error(&e)),
        Err(PreviewFailure::RateLimited(secs)) => Err(ApiError::rate_limited(secs)),
        Err(PreviewFailure::Store(e)) => Err(e.into()),
    }
}
