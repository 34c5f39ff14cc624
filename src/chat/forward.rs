//! `POST /api/forward`: forward messages of one conversation to several, as copies or as one
//! chat-history card. The caller's right to read the source and to write each target is
//! checked here over the cached state and again inside the write transaction
//! (`Store::forward`); delivery to each target's members runs after the commit, as for a send.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Want, access, gate};
use crate::config::Config;
use crate::http::error::ErrorBody;
use crate::http::{ApiError, ApiJson, AuthUser};
use crate::hub::{Frame, Hub};
use crate::ids::{ConvId, UserId};
use crate::protocol::{MAX_CLIENT_ID, MAX_HISTORY_ITEMS, Message, ServerFrame};
use crate::push::Push;
use crate::store::Store;
use crate::store::forward::{Forward, ForwardMode, ForwardTarget};
use crate::store::messages::MessageRefusal;

/// Most conversations one forward goes to.
pub const MAX_TARGETS: usize = 20;
/// Most messages one forward as copies writes (sources times targets): a bound on what one
/// request can make the server store and deliver.
pub const MAX_COPIES: usize = 200;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardSource {
    /// The conversation the messages are in, e.g. `d:3:7` or `g:12`.
    pub conv: String,
    /// 1 to 100 seqs of messages you can read there.
    pub seqs: Vec<u64>,
}

#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum ModeField {
    /// Each message is sent again, as a new message of yours.
    Copies,
    /// One chat-history card holding them all.
    Card,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardRequest {
    /// 1 to 64 bytes, new for each forward: a resend with the same id writes nothing again.
    pub client_id: String,
    pub from: ForwardSource,
    /// 1 to 20 conversations.
    pub to: Vec<String>,
    pub mode: ModeField,
}

#[derive(Serialize, ToSchema)]
pub struct TargetResult {
    pub conv: String,
    /// The messages written there (or found, for a resend); empty when refused.
    pub messages: Vec<Message>,
    /// Why this target was refused (`not_found`, `forbidden`), absent when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<TargetError>,
}

#[derive(Serialize, ToSchema)]
pub struct TargetError {
    pub code: String,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct ForwardResults {
    /// One per target, in the order asked.
    pub results: Vec<TargetResult>,
}

fn bad(m: &str) -> ApiError {
    ApiError::bad_request("invalid", m)
}

#[utoipa::path(post, path = "/api/forward", tag = "chat", request_body = ForwardRequest,
    responses((status = 200, body = ForwardResults, description = "per-target results; a target may be refused while others succeed"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody, description = "a source message cannot be forwarded"),
        (status = 404, body = ErrorBody, description = "the source conversation or a source message is not yours to read")))]
pub async fn forward(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    State(push): State<Arc<Push>>,
    State(config): State<Arc<Config>>,
    ApiJson(req): ApiJson<ForwardRequest>,
) -> Result<Json<ForwardResults>, ApiError> {
    let me = auth.user.id;
    if req.client_id.is_empty() || req.client_id.len() > MAX_CLIENT_ID {
        return Err(bad("client_id must be 1 to 64 bytes."));
    }
    let from: ConvId = req.from.conv.parse().map_err(|_| ApiError::not_found("No such conversation."))?;
    let mut seqs = req.from.seqs;
    seqs.sort_unstable();
    seqs.dedup();
    if seqs.is_empty() || seqs.len() > MAX_HISTORY_ITEMS {
        return Err(bad("Forward 1 to 100 messages."));
    }
    if req.to.is_empty() || req.to.len() > MAX_TARGETS {
        return Err(bad("Forward to 1 to 20 conversations."));
    }
    let mut targets: Vec<ConvId> = Vec::with_capacity(req.to.len());
    for t in &req.to {
        let conv: ConvId = t.parse().map_err(|_| bad("Each target must be a conversation id."))?;
        if !targets.contains(&conv) {
            targets.push(conv);
        }
    }
    if matches!(req.mode, ModeField::Copies) && seqs.len() * targets.len() > MAX_COPIES {
        return Err(bad("A forward as separate messages writes at most 200 messages; forward them as a chat history."));
    }
    access(&store, &config, me, from, Want::Read).await??;
    // Members of each target for delivery; a target refused here is refused again in the
    // transaction, which gives the answer.
    let mut recipients: HashMap<ConvId, Vec<UserId>> = HashMap::new();
    let mut plan = Vec::with_capacity(targets.len());
    for conv in targets {
        let members = match access(&store, &config, me, conv, Want::Write).await? {
            Ok(a) => a.members,
            Err(_) => Vec::new(),
        };
        let direct_members = match conv {
            ConvId::Direct(a, b) => vec![a, b],
            ConvId::Group(_) => Vec::new(),
        };
        recipients.insert(conv, members);
        plan.push(ForwardTarget { conv, direct_members });
    }
    let mode = match req.mode {
        ModeField::Copies => ForwardMode::Copies,
        ModeField::Card => ForwardMode::Card,
    };
    let fw = Forward { user: me, from, seqs, mode, targets: plan, client_id: req.client_id };
    let policy = config.chat.direct_policy;
    let (hub2, push2) = (hub.clone(), push.clone());
    let deliver = move |results: &[(ConvId, crate::store::forward::TargetOutcome)]| {
        for (conv, out) in results {
            let (Ok(sent), Some(to)) = (out, recipients.get(conv)) else { continue };
            for s in sent.iter().filter(|s| !s.duplicate) {
                let frame: Frame = Arc::from(ServerFrame::message_json(&s.message));
                hub2.deliver(to, &frame, None);
                push2.message(to, &s.message);
            }
        }
    };
    let read_gate = move |f: &_| gate(Want::Read, policy)(f);
    let write_gate = move |f: &_| gate(Want::Write, policy)(f);
    let results = match store.forward(fw, read_gate, write_gate, deliver).await? {
        Ok(r) => r,
        Err(MessageRefusal::NoSuchMessage) => return Err(ApiError::not_found("No such message.")),
        Err(MessageRefusal::Rule(m)) => return Err(ApiError::forbidden(m)),
        Err(MessageRefusal::Denied(r)) => return Err(r.into()),
    };
    let results = results
        .into_iter()
        .map(|(conv, out)| match out {
            Ok(sent) => TargetResult { conv: conv.to_string(), messages: sent.into_iter().map(|s| s.message).collect(), error: None },
            Err(r) => TargetResult {
                conv: conv.to_string(),
                messages: Vec::new(),
                error: Some(TargetError { code: r.code().into(), message: r.message() }),
            },
        })
        .collect();
    Ok(Json(ForwardResults { results }))
}
