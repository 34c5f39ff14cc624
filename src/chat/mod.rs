//! Conversations: who may read and write each one, sending with idempotent client ids, sync
//! after reconnect, and the history and conversation-list routes.
//!
//! Architecture invariant: every read or write of a conversation goes through [`access`], which
//! is the one place that decides membership and the contact rules.

pub mod routes;

use std::sync::Arc;

use crate::hub::{Frame, Hub};
use crate::ids::{ConvId, UserId};
use crate::protocol::{Content, MAX_CLIENT_ID, Message, ServerFrame};
use crate::store::{Store, StoreError};

/// Why a conversation action was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a conversation this user is in (or it does not exist: the two look the same).
    NotFound,
    Forbidden(&'static str),
    Invalid(String),
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NotFound => "not_found",
            Refusal::Forbidden(_) => "forbidden",
            Refusal::Invalid(_) => "invalid",
        }
    }
    pub fn message(&self) -> String {
        match self {
            Refusal::NotFound => "No such conversation.".into(),
            Refusal::Forbidden(m) => (*m).into(),
            Refusal::Invalid(m) => m.clone(),
        }
    }
}

/// What a user may do in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// Checks that `user` may `want` in `conv`, and returns the members whose devices see it.
pub async fn access(
    store: &Store,
    user: UserId,
    conv: ConvId,
    want: Access,
) -> Result<Result<Vec<UserId>, Refusal>, StoreError> {
    match conv {
        ConvId::Direct(a, b) => {
            let Some(peer) = conv.peer_of(user) else {
                return Ok(Err(Refusal::NotFound));
            };
            let Some(peer_rec) = store.user(peer).await? else {
                return Ok(Err(Refusal::NotFound));
            };
            // The contact rules (blocks, a contacts-only policy) are enforced here once the
            // contacts feature exists; until then any two active users may talk.
            if want == Access::Write && peer_rec.disabled {
                return Ok(Err(Refusal::Forbidden("This account has been disabled.")));
            }
            Ok(Ok(vec![a, b]))
        }
        // Groups arrive with the groups feature.
        ConvId::Group(_) => Ok(Err(Refusal::NotFound)),
    }
}

/// Handles a `send` frame: validates, stores (or finds the earlier copy), delivers to every
/// other device of every member in commit order, and returns the answer for the sender.
pub async fn send(
    store: &Store,
    hub: &Arc<Hub>,
    user: UserId,
    conn: u64,
    client_id: String,
    conv: ConvId,
    content: Content,
) -> ServerFrame {
    let refuse = |r: Refusal, cid: String| ServerFrame::error(Some(cid), r.code(), r.message());
    if client_id.is_empty() || client_id.len() > MAX_CLIENT_ID {
        return refuse(
            Refusal::Invalid("client_id must be 1 to 64 bytes.".into()),
            client_id.chars().take(MAX_CLIENT_ID).collect(),
        );
    }
    if let Err(m) = content.validate_from_client() {
        return refuse(Refusal::Invalid(m.into()), client_id);
    }
    let members = match access(store, user, conv, Access::Write).await {
        Ok(Ok(m)) => m,
        Ok(Err(r)) => return refuse(r, client_id),
        Err(e) => return store_failure(&e, client_id),
    };
    let fanout_hub = hub.clone();
    let recipients = members.clone();
    let deliver = move |m: &Message| {
        let frame: Frame = Arc::from(ServerFrame::Message { message: m.clone() }.to_json());
        fanout_hub.deliver(&recipients, &frame, Some(conn));
    };
    match store
        .append_message(user, conv, members, client_id.clone(), content, deliver)
        .await
    {
        Ok(out) => ServerFrame::Ack {
            client_id,
            message: out.message,
        },
        Err(e) => store_failure(&e, client_id),
    }
}

fn store_failure(e: &StoreError, client_id: String) -> ServerFrame {
    tracing::error!(error = %e, "send failed in the store");
    // Not stored: the client keeps the message in its outbox and may retry with the same id.
    ServerFrame::error(
        Some(client_id),
        "unavailable",
        "The message could not be saved. It will be retried.",
    )
}

/// Most messages one conversation contributes to a sync; older ones are paged with history.
pub const SYNC_CAP: usize = 100;

/// The messages a reconnecting client is missing, per conversation, in order.
pub async fn sync(
    store: &Store,
    user: UserId,
    cursors: &std::collections::HashMap<ConvId, u64>,
) -> Result<Vec<Message>, StoreError> {
    let heads = store.conversation_heads(user).await?;
    let wanted: Vec<(ConvId, u64)> = heads
        .into_iter()
        .filter_map(|(conv, head)| {
            let after = cursors.get(&conv).copied().unwrap_or(0);
            (head > after).then_some((conv, after))
        })
        .collect();
    Ok(store
        .messages_after(wanted, SYNC_CAP)
        .await?
        .into_iter()
        .flatten()
        .collect())
}
