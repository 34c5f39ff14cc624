//! The conversation routes: the list, one conversation's settings, history, recall, edit,
//! reactions, who has read a message, and search.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Want, access, rules};
use crate::config::Config;
use crate::http::error::ErrorBody;
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery, AuthUser};
use crate::hub::Hub;
use crate::ids::{ConvId, UserId};
use crate::outcome::Refusal;
use crate::protocol::{ConversationView, GroupView, MAX_TEXT_CHARS, Message, Role, ServerFrame, UserView};
use crate::push::Push;
use crate::social::group_routes::view as group_view;
use crate::store::facts::ConvFacts;
use crate::store::messages::{ConvRow, MessageChange, MessageRefusal};
use crate::store::social::GroupStatus;
use crate::store::{Store, now_ms};

#[derive(Serialize, ToSchema)]
pub struct ConversationList {
    /// Pinned first, then by last activity.
    pub conversations: Vec<ConversationView>,
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Include hidden conversations.
    #[serde(default)]
    pub hidden: bool,
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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
    /// Seqs within this page's range that you deleted for yourself and that are left out (so a
    /// client knows the hole is no gap to fetch); absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hidden: Vec<u64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationSettings {
    pub pinned: Option<bool>,
    pub muted: Option<bool>,
    /// Hide from the list until a new message arrives (history is kept).
    pub hidden: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditRequest {
    pub text: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReactRequest {
    pub emoji: String,
    /// true adds your reaction with this emoji, false takes it back.
    pub on: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ReadList {
    /// Members who have read the message (not its sender).
    pub read_by: Vec<UserId>,
    /// Members who have not.
    pub unread_by: Vec<UserId>,
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    pub q: String,
    /// Search one conversation only.
    pub conv: Option<String>,
    #[serde(default)]
    pub offset: u32,
    /// 1 to 50; 20 when absent.
    pub limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct SearchResults {
    /// Newest first.
    pub messages: Vec<Message>,
    /// Contacts and people you talk to whose name matches (first page only).
    pub users: Vec<UserView>,
    /// Your groups whose name matches (first page only).
    pub groups: Vec<GroupView>,
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        use axum::http::StatusCode;
        let status = match r {
            Refusal::NotFound(_) => StatusCode::NOT_FOUND,
            Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
            Refusal::Conflict(_) | Refusal::TooMany(_) => StatusCode::CONFLICT,
            Refusal::Invalid(_) => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, r.code(), r.message())
    }
}

fn parse_conv(id: &str) -> Result<ConvId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("No such conversation."))
}

/// Builds what the list shows from a stored row.
pub async fn conversation_view(store: &Store, me: UserId, row: ConvRow) -> Result<Option<ConversationView>, ApiError> {
    let (peer, group) = match row.conv {
        ConvId::Direct(..) => {
            let Some(p) = row.conv.peer_of(me) else { return Ok(None) };
            (store.user(p).await?.map(|u| u.public_view()), None)
        }
        ConvId::Group(gid) => (None, store.group(gid).await?.map(|g| group_view(&g, me))),
    };
    let last_ts = row.last_message.as_ref().map_or(row.state.since, |m| m.ts);
    Ok(Some(ConversationView {
        id: row.conv,
        peer,
        group,
        last_seq: row.last_seq,
        last_message: row.last_message,
        last_ts,
        read_seq: row.read_seq,
        unread: row.last_seq.saturating_sub(row.read_seq),
        mentioned: row.mentioned,
        pinned: row.state.pinned,
        muted: row.state.muted,
        hidden: row.state.hidden_upto.is_some_and(|h| row.last_seq <= h),
        peer_read_seq: row.peer_read_seq,
    }))
}

#[utoipa::path(get, path = "/api/conversations", tag = "chat", params(ListQuery), responses((status = 200, body = ConversationList), (status = 401, body = ErrorBody)))]
pub async fn list(
    auth: AuthUser,
    State(store): State<Store>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<ConversationList>, ApiError> {
    let me = auth.user.id;
    let mut out = Vec::new();
    for row in store.user_conversations(me, None).await? {
        if let Some(v) = conversation_view(&store, me, row).await?
            && (q.hidden || !v.hidden)
        {
            out.push(v);
        }
    }
    out.sort_by(|a, b| b.pinned.cmp(&a.pinned).then(b.last_ts.cmp(&a.last_ts)));
    Ok(Json(ConversationList { conversations: out }))
}

async fn one(store: &Store, me: UserId, conv: ConvId) -> Result<ConversationView, ApiError> {
    let row =
        store.user_conversations(me, Some(conv)).await?.into_iter().next().ok_or_else(|| ApiError::not_found("No such conversation."))?;
    conversation_view(store, me, row).await?.ok_or_else(|| ApiError::not_found("No such conversation."))
}

#[utoipa::path(get, path = "/api/conversations/{id}", tag = "chat", params(("id" = String, Path)), responses((status = 200, body = ConversationView), (status = 404, body = ErrorBody)))]
pub async fn get(auth: AuthUser, State(store): State<Store>, ApiPath(id): ApiPath<String>) -> Result<Json<ConversationView>, ApiError> {
    Ok(Json(one(&store, auth.user.id, parse_conv(&id)?).await?))
}

#[utoipa::path(patch, path = "/api/conversations/{id}", tag = "chat", params(("id" = String, Path)), request_body = ConversationSettings,
    responses((status = 200, body = ConversationView), (status = 404, body = ErrorBody)))]
pub async fn update(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ConversationSettings>,
) -> Result<Json<ConversationView>, ApiError> {
    let me = auth.user.id;
    let conv = parse_conv(&id)?;
    store
        .update_user_conv(me, conv, move |s, last| {
            if let Some(p) = req.pinned {
                s.pinned = p;
            }
            if let Some(m) = req.muted {
                s.muted = m;
            }
            if let Some(h) = req.hidden {
                s.hidden_upto = h.then_some(last);
            }
        })
        .await?
        .ok_or_else(|| ApiError::not_found("No such conversation."))?;
    let view = one(&store, me, conv).await?;
    hub.send(&[me], &ServerFrame::Conversation { conversation: view.clone() });
    Ok(Json(view))
}

#[utoipa::path(get, path = "/api/conversations/{id}/messages", tag = "chat",
    params(("id" = String, Path, description = "conversation id, e.g. d:3:7"), HistoryQuery),
    responses((status = 200, body = HistoryPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn history(
    auth: AuthUser,
    State(store): State<Store>,
    State(config): State<Arc<Config>>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<HistoryPage>, ApiError> {
    let conv = parse_conv(&id)?;
    let acc = access(&store, &config, auth.user.id, conv, Want::Read).await??;
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request("invalid", "limit must be 1 to 100."));
    }
    let (mut messages, has_more) = store.history(conv, q.before, q.after, limit as usize, acc.first_seq).await?;
    let all_hidden = store.hidden_seqs(auth.user.id, conv).await?;
    let mut hidden = Vec::new();
    messages.retain(|m| {
        let keep = !all_hidden.contains(&m.seq);
        if !keep {
            hidden.push(m.seq);
        }
        keep
    });
    Ok(Json(HistoryPage { messages, has_more, hidden }))
}

/// Applies a change to a message, as `rule` decides from the caller's place in the
/// conversation (`want`, checked again inside the write transaction) and the message, and tells
/// every member's devices.
#[allow(clippy::too_many_arguments)]
async fn change(
    store: &Store,
    hub: &Arc<Hub>,
    config: &Config,
    me: UserId,
    conv: ConvId,
    seq: u64,
    want: Want,
    members: Vec<UserId>,
    rule: impl FnOnce(Option<Role>, &Message) -> Result<MessageChange, &'static str> + Send + 'static,
) -> Result<Json<Message>, ApiError> {
    let hub2 = hub.clone();
    // A recall also changes the replies that quoted the message: each is an update of its own.
    let after = move |changed: &[Message]| {
        for m in changed {
            hub2.send(&members, &ServerFrame::Update { message: m.clone() });
        }
    };
    let policy = config.chat.direct_policy;
    let checked = move |facts: &ConvFacts, m: &Message| {
        let role = rules::may(want, facts, policy, now_ms()).map_err(MessageRefusal::Denied)?;
        rule(role, m).map_err(MessageRefusal::Rule)
    };
    match store.change_message(me, conv, seq, checked, after).await? {
        Ok(m) => Ok(Json(m)),
        Err(MessageRefusal::NoSuchMessage) => Err(ApiError::not_found("No such message.")),
        Err(MessageRefusal::Rule(why)) => Err(ApiError::forbidden(why)),
        Err(MessageRefusal::Denied(r)) => Err(r.into()),
    }
}

fn visible(seq: u64, first_seq: u64) -> Result<(), ApiError> {
    if seq < first_seq { Err(ApiError::not_found("No such message.")) } else { Ok(()) }
}

#[utoipa::path(post, path = "/api/conversations/{id}/messages/{seq}/recall", tag = "chat", params(("id" = String, Path), ("seq" = u64, Path)),
    responses((status = 200, body = Message, description = "the tombstone"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn recall(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(push): State<Arc<Push>>,
    State(config): State<Arc<Config>>,
    ApiPath((id, seq)): ApiPath<(String, u64)>,
) -> Result<Json<Message>, ApiError> {
    let conv = parse_conv(&id)?;
    let me = auth.user.id;
    // Recalling is allowed in a group one can no longer write to (e.g. muted): it only removes.
    let acc = access(&store, &config, me, conv, Want::Read).await??;
    visible(seq, acc.first_seq)?;
    let window_ms = config.chat.recall_window_secs * 1000;
    let now = now_ms();
    let members = acc.members.clone();
    let answer =
        change(&store, &hub, &config, me, conv, seq, Want::Read, acc.members, move |role, m| rules::recall(me, role, m, now, window_ms))
            .await?;
    // A notification of the message may still show its text on a closed device.
    push.recalled(&members, me, conv, seq);
    Ok(answer)
}

#[utoipa::path(patch, path = "/api/conversations/{id}/messages/{seq}", tag = "chat", params(("id" = String, Path), ("seq" = u64, Path)), request_body = EditRequest,
    responses((status = 200, body = Message), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn edit(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    ApiPath((id, seq)): ApiPath<(String, u64)>,
    ApiJson(req): ApiJson<EditRequest>,
) -> Result<Json<Message>, ApiError> {
    let conv = parse_conv(&id)?;
    let me = auth.user.id;
    let text = req.text;
    if text.trim().is_empty() || text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::bad_request("invalid", "A message has 1 to 8,000 characters."));
    }
    let acc = access(&store, &config, me, conv, Want::Write).await??;
    let window_ms = config.chat.edit_window_secs * 1000;
    let now = now_ms();
    change(&store, &hub, &config, me, conv, seq, Want::Write, acc.members, move |_, m| rules::edit(me, m, now, window_ms, text)).await
}

#[utoipa::path(post, path = "/api/conversations/{id}/messages/{seq}/reactions", tag = "chat", params(("id" = String, Path), ("seq" = u64, Path)), request_body = ReactRequest,
    responses((status = 200, body = Message), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn react(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    ApiPath((id, seq)): ApiPath<(String, u64)>,
    ApiJson(req): ApiJson<ReactRequest>,
) -> Result<Json<Message>, ApiError> {
    let conv = parse_conv(&id)?;
    let me = auth.user.id;
    let emoji = req.emoji.trim().to_owned();
    if !crate::emoji::is_one_emoji(&emoji) {
        return Err(ApiError::bad_request("invalid", "A reaction is one emoji."));
    }
    let acc = access(&store, &config, me, conv, Want::Write).await??;
    visible(seq, acc.first_seq)?;
    let on = req.on;
    change(&store, &hub, &config, me, conv, seq, Want::Write, acc.members, move |_, m| rules::react(me, m, emoji, on)).await
}

#[utoipa::path(post, path = "/api/conversations/{id}/messages/{seq}/hide", tag = "chat", params(("id" = String, Path), ("seq" = u64, Path)),
    responses((status = 204, description = "hidden from your own view on all your devices (again: no error)"), (status = 404, body = ErrorBody)))]
pub async fn hide(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(config): State<Arc<Config>>,
    ApiPath((id, seq)): ApiPath<(String, u64)>,
) -> Result<axum::http::StatusCode, ApiError> {
    let conv = parse_conv(&id)?;
    let me = auth.user.id;
    let acc = access(&store, &config, me, conv, Want::Read).await??;
    visible(seq, acc.first_seq)?;
    let policy = config.chat.direct_policy;
    let gate = move |facts: &ConvFacts| rules::may(Want::Read, facts, policy, now_ms()).map(|_| ());
    let after = move || hub.send(&[me], &ServerFrame::Hidden { conv, seq });
    store.hide_message(me, conv, seq, gate, after).await??;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/conversations/{id}/messages/{seq}/reads", tag = "chat", params(("id" = String, Path), ("seq" = u64, Path)),
    responses((status = 200, body = ReadList), (status = 404, body = ErrorBody)))]
pub async fn reads(
    auth: AuthUser,
    State(store): State<Store>,
    State(config): State<Arc<Config>>,
    ApiPath((id, seq)): ApiPath<(String, u64)>,
) -> Result<Json<ReadList>, ApiError> {
    let conv = parse_conv(&id)?;
    let acc = access(&store, &config, auth.user.id, conv, Want::Read).await??;
    visible(seq, acc.first_seq)?;
    let m = store.message(conv, seq).await?.ok_or_else(|| ApiError::not_found("No such message."))?;
    let positions: HashMap<UserId, u64> = store.read_positions(conv).await?.into_iter().collect();
    let (mut read_by, mut unread_by) = (Vec::new(), Vec::new());
    for u in acc.members.into_iter().filter(|u| *u != m.sender) {
        if positions.get(&u).is_some_and(|p| *p >= seq) { read_by.push(u) } else { unread_by.push(u) }
    }
    Ok(Json(ReadList { read_by, unread_by }))
}

#[utoipa::path(get, path = "/api/search", tag = "chat", params(SearchQuery),
    responses((status = 200, body = SearchResults), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody, description = "`conv` is not a conversation of yours")))]
pub async fn search(
    auth: AuthUser,
    State(store): State<Store>,
    State(config): State<Arc<Config>>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<SearchResults>, ApiError> {
    let me = auth.user.id;
    let text = q.q.trim().to_owned();
    if text.is_empty() || text.chars().count() > 200 {
        return Err(ApiError::bad_request("invalid", "Search for 1 to 200 characters."));
    }
    let limit = q.limit.unwrap_or(20);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::bad_request("invalid", "limit must be 1 to 50."));
    }
    let mut convs = HashMap::new();
    match &q.conv {
        Some(c) => {
            let conv = parse_conv(c)?;
            let acc = access(&store, &config, me, conv, Want::Read).await??;
            convs.insert(conv, acc.first_seq);
        }
        None => {
            for h in store.conversation_heads(me).await? {
                convs.insert(h.conv, h.first_seq.max(1));
            }
        }
    }
    let rows: Vec<ConvId> = convs.keys().copied().collect();
    let messages = store.search_messages(me, text.clone(), convs, q.offset as usize, limit as usize).await?;
    let (mut users, mut groups) = (Vec::new(), Vec::new());
    if q.offset == 0 && q.conv.is_none() {
        let needle = text.to_lowercase();
        // A person matches by their name or by the caller's private remark for them.
        let remarks = store.remarks_of(me).await?;
        let named = |u: &crate::store::UserRecord| {
            u.nickname.to_lowercase().contains(&needle)
                || u.username.contains(&needle)
                || remarks.get(&u.id).is_some_and(|r| r.to_lowercase().contains(&needle))
        };
        for conv in rows {
            match conv {
                ConvId::Direct(..) => {
                    if let Some(p) = conv.peer_of(me)
                        && let Some(u) = store.user(p).await?
                        && named(&u)
                    {
                        users.push(u.public_view());
                    }
                }
                ConvId::Group(gid) => {
                    if let Some(g) = store.group(gid).await?
                        && g.group.status != GroupStatus::Dissolved
                        && g.group.name.to_lowercase().contains(&needle)
                    {
                        groups.push(group_view(&g, me));
                    }
                }
            }
        }
        for (other, mine, _) in store.contacts_of(me).await? {
            if mine.contact
                && !users.iter().any(|u| u.id == other)
                && let Some(u) = store.user(other).await?
                && named(&u)
            {
                users.push(u.public_view());
            }
        }
    }
    Ok(Json(SearchResults { messages, users, groups }))
}
