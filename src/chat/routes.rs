//! `GET /api/conversations` and the history route.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Access, Refusal, access};
use crate::http::error::ErrorBody;
use crate::http::{ApiError, ApiQuery, AuthUser};
use crate::ids::ConvId;
use crate::protocol::{Message, UserView};
use crate::store::Store;

#[derive(Serialize, ToSchema)]
pub struct ConversationSummary {
    pub id: ConvId,
    /// The other person, for a 1:1 conversation.
    pub peer: Option<UserView>,
    pub last_seq: u64,
    pub last_message: Option<Message>,
}

#[derive(Serialize, ToSchema)]
pub struct ConversationList {
    pub conversations: Vec<ConversationSummary>,
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Messages with a smaller seq (the page before this one).
    pub before: Option<u64>,
    /// Messages with a larger seq.
    pub after: Option<u64>,
    /// 1 to 100; 50 when absent.
    pub limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryPage {
    /// Ascending by seq.
    pub messages: Vec<Message>,
    /// Whether more messages lie beyond this page in the direction asked.
    pub has_more: bool,
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotFound => ApiError::not_found(r.message()),
            Refusal::Forbidden(m) => ApiError::forbidden(m),
            Refusal::Invalid(m) => ApiError::bad_request("invalid", m),
        }
    }
}

#[utoipa::path(get, path = "/api/conversations", tag = "chat", responses((status = 200, body = ConversationList), (status = 401, body = ErrorBody)))]
pub async fn list(
    auth: AuthUser,
    State(store): State<Store>,
) -> Result<Json<ConversationList>, ApiError> {
    let convs = store.user_conversations(auth.user.id).await?;
    let mut out = Vec::with_capacity(convs.len());
    for c in convs {
        let peer = match c.conv.peer_of(auth.user.id) {
            Some(p) => store.user(p).await?.map(|u| u.public_view()),
            None => None,
        };
        out.push(ConversationSummary {
            id: c.conv,
            peer,
            last_seq: c.last_seq,
            last_message: c.last_message,
        });
    }
    Ok(Json(ConversationList { conversations: out }))
}

#[utoipa::path(get, path = "/api/conversations/{id}/messages", tag = "chat",
    params(("id" = String, Path, description = "conversation id, e.g. d:3:7"), HistoryQuery),
    responses((status = 200, body = HistoryPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn history(
    auth: AuthUser,
    State(store): State<Store>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<HistoryPage>, ApiError> {
    let conv: ConvId = id
        .parse()
        .map_err(|_| ApiError::not_found("No such conversation."))?;
    access(&store, auth.user.id, conv, Access::Read).await??;
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request("invalid", "limit must be 1 to 100."));
    }
    let (messages, has_more) = store
        .history(conv, q.before, q.after, limit as usize)
        .await?;
    Ok(Json(HistoryPage { messages, has_more }))
}
