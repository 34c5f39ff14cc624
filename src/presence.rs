//! Presence: who is online, told to the people allowed to know (contacts and 1:1 chat
//! partners), never for users who hide it; and the last-seen time, stored on disconnect.

use std::sync::Weak;

use tokio::sync::mpsc;

use crate::hub::{Hub, PresenceChange};
use crate::ids::UserId;
use crate::protocol::ServerFrame;
use crate::store::messages::ConvHead;
use crate::store::{Store, now_ms};

/// Consumes presence changes until the hub, which holds the sender, is dropped (so this task
/// holds the hub only weakly).
pub async fn run(store: Store, hub: Weak<Hub>, mut rx: mpsc::Receiver<PresenceChange>) {
    while let Some((user, online)) = rx.recv().await {
        let Some(hub) = hub.upgrade() else { break };
        // A quick reconnect makes "offline" stale by the time it is handled.
        if !online && hub.is_online(user) {
            continue;
        }
        let now = now_ms();
        if !online && let Err(e) = store.set_last_seen(user, now).await {
            tracing::warn!(error = %e, "cannot store last seen");
        }
        let Ok(Some(rec)) = store.user(user).await else { continue };
        if rec.hide_presence {
            continue;
        }
        let audience = match audience(&store, user).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "cannot compute presence audience");
                continue;
            }
        };
        hub.send(&audience, &ServerFrame::Presence { user, online, last_seen: (!online).then_some(now) });
    }
}

/// Contacts and 1:1 partners of `user`, minus anyone blocked either way.
async fn audience(store: &Store, user: UserId) -> Result<Vec<UserId>, crate::store::StoreError> {
    let mut out: Vec<UserId> = Vec::new();
    let mut blocked = Vec::new();
    for (other, mine, theirs) in store.contacts_of(user).await? {
        if mine.blocked || theirs.blocked {
            blocked.push(other);
        } else if mine.contact || theirs.contact {
            out.push(other);
        }
    }
    for ConvHead { conv, .. } in store.conversation_heads(user).await? {
        if let Some(p) = conv.peer_of(user)
            && !blocked.contains(&p)
        {
            out.push(p);
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}
