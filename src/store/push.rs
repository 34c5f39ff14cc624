//! What Web Push keeps: the server's VAPID key, each device's subscription (one per session,
//! ended with it) and each user's push preferences.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::messages::UserConv;
use super::sessions::TokenHash;
use super::tables::{CONV_HEADS, PUSH_PREFS, PUSH_SUBS, READS, SETTINGS, USER_CONVS};
use super::{Store, StoreError};
use crate::ids::{ConvId, UserId};

/// Where the VAPID private key (32 bytes, hex) lives in `SETTINGS`.
const VAPID_KEY: &str = "vapid_key";

/// A device's push endpoint and the keys its payloads are encrypted to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushSubscription {
    pub endpoint: String,
    /// The browser's P-256 public key, uncompressed, base64url.
    pub p256dh: String,
    /// The 16-byte authentication secret, base64url.
    pub auth: String,
    pub created_at: u64,
}

/// What a user's pushes show, and when they stay silent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushPrefs {
    #[serde(default)]
    pub preview: Preview,
    /// Quiet hours; none when absent.
    #[serde(default)]
    pub dnd: Option<Dnd>,
}

/// How much of a message a push carries (it crosses the browser vendor's push service,
/// encrypted, but is shown on a locked screen).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Preview {
    /// Sender, conversation and text.
    #[default]
    Full,
    /// Sender and conversation, no text.
    Sender,
    /// Nothing but "New message".
    None,
}

/// Do-not-disturb hours in the user's local time: `"22:00"` to `"07:00"` spans midnight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dnd {
    pub start: String,
    pub end: String,
    /// Minutes east of UTC of the user's clock when they set it (`-getTimezoneOffset()`).
    pub utc_offset_minutes: i32,
}

/// Everything one push needs to know of its recipient, read in one transaction.
#[derive(Clone, Debug, Default)]
pub struct PushRecipient {
    pub subscriptions: Vec<(TokenHash, PushSubscription)>,
    pub prefs: PushPrefs,
    /// The recipient's place in the conversation the push is about; `None` when they are not in
    /// it (any more) or the push is not about a conversation.
    pub place: Option<PushPlace>,
}

/// A recipient's unread counts, for the badge a message push carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushPlace {
    pub muted: bool,
    /// Unread messages in the conversation.
    pub unread: u64,
    /// Unread messages in all the recipient's conversations that are not muted.
    pub total_unread: u64,
}

impl Store {
    /// `user`'s subscriptions and preferences and, when `conv` is given, their place in it: one
    /// read, no message decoded (the unread counts come from the heads and read marks).
    pub async fn push_recipient(&self, user: UserId, conv: Option<ConvId>) -> Result<PushRecipient, StoreError> {
        self.read(move |txn| {
            let mut subscriptions = Vec::new();
            for e in txn.open_table(PUSH_SUBS)?.range((user.0, &[0u8; 32])..=(user.0, &[0xffu8; 32]))? {
                let (k, v) = e?;
                subscriptions.push((*k.value().1, serde_json::from_slice(v.value())?));
            }
            if subscriptions.is_empty() {
                return Ok(PushRecipient::default());
            }
            let prefs =
                txn.open_table(PUSH_PREFS)?.get(user.0)?.map(|v| serde_json::from_slice(v.value())).transpose()?.unwrap_or_default();
            let Some(conv) = conv else { return Ok(PushRecipient { subscriptions, prefs, place: None }) };
            let (convs, heads, reads) = (txn.open_table(USER_CONVS)?, txn.open_table(CONV_HEADS)?, txn.open_table(READS)?);
            let (mut place, mut total_unread) = (None, 0);
            for entry in convs.range((user.0, 0, 0)..=(user.0, u64::MAX, u64::MAX))? {
                let (k, v) = entry?;
                let (_, a, b) = k.value();
                let state: UserConv = serde_json::from_slice(v.value())?;
                let last_seq = heads.get((a, b))?.map_or(0, |v| v.value().0);
                let read_seq = reads.get((a, b, user.0))?.map_or(0, |v| v.value()).max(state.first_seq.saturating_sub(1));
                let unread = last_seq.saturating_sub(read_seq);
                if !state.muted {
                    total_unread += unread;
                }
                if ConvId::from_key((a, b)) == conv {
                    place = Some((state.muted, unread));
                }
            }
            let place = place.map(|(muted, unread)| PushPlace { muted, unread, total_unread });
            Ok(PushRecipient { subscriptions, prefs, place })
        })
        .await
    }

    /// The VAPID private key: 32 random bytes made on first use and kept (backups include it,
    /// so restored servers keep their subscriptions working).
    pub async fn vapid_key(&self) -> Result<[u8; 32], StoreError> {
        self.write(|txn| {
            let mut t = txn.open_table(SETTINGS)?;
            if let Some(v) = t.get(VAPID_KEY)? {
                let hexed: String = serde_json::from_slice(v.value())?;
                let raw = hex::decode(hexed).map_err(|e| StoreError::Corrupt(format!("vapid key: {e}")))?;
                return raw.try_into().map_err(|_| StoreError::Corrupt("vapid key: not 32 bytes".into()));
            }
            let raw = crate::push::vapid::new_private_key();
            t.insert(VAPID_KEY, serde_json::to_vec(&hex::encode(raw))?.as_slice())?;
            Ok(raw)
        })
        .await
    }

    /// Stores the subscription of the device signed in with `session`, replacing its earlier
    /// one. False when the session is gone (a logout raced the request).
    pub async fn set_push_subscription(&self, user: UserId, session: TokenHash, sub: PushSubscription) -> Result<bool, StoreError> {
        self.write(move |txn| {
            if txn.open_table(super::tables::SESSIONS)?.get(&session)?.is_none() {
                return Ok(false);
            }
            txn.open_table(PUSH_SUBS)?.insert((user.0, &session), serde_json::to_vec(&sub)?.as_slice())?;
            Ok(true)
        })
        .await
    }

    /// Removes `user`'s subscriptions to `endpoint` (the device's, or one the push service said
    /// is gone); returns how many.
    pub async fn delete_push_endpoint(&self, user: UserId, endpoint: String) -> Result<usize, StoreError> {
        self.write(move |txn| {
            let mut t = txn.open_table(PUSH_SUBS)?;
            let mut gone = Vec::new();
            for e in t.range((user.0, &[0u8; 32])..=(user.0, &[0xffu8; 32]))? {
                let (k, v) = e?;
                if serde_json::from_slice::<PushSubscription>(v.value())?.endpoint == endpoint {
                    gone.push(*k.value().1);
                }
            }
            for h in &gone {
                t.remove((user.0, h))?;
            }
            Ok(gone.len())
        })
        .await
    }

    /// Users with at least one subscription (read once at start into memory).
    pub async fn push_subscribers(&self) -> Result<Vec<UserId>, StoreError> {
        self.read(|txn| {
            let mut out: Vec<UserId> = Vec::new();
            for e in txn.open_table(PUSH_SUBS)?.iter()? {
                let (k, _) = e?;
                let u = UserId(k.value().0);
                if out.last() != Some(&u) {
                    out.push(u);
                }
            }
            Ok(out)
        })
        .await
    }

    pub async fn push_prefs(&self, user: UserId) -> Result<PushPrefs, StoreError> {
        self.read(move |txn| {
            Ok(txn.open_table(PUSH_PREFS)?.get(user.0)?.map(|v| serde_json::from_slice(v.value())).transpose()?.unwrap_or_default())
        })
        .await
    }

    pub async fn set_push_prefs(&self, user: UserId, prefs: PushPrefs) -> Result<(), StoreError> {
        self.write(move |txn| {
            txn.open_table(PUSH_PREFS)?.insert(user.0, serde_json::to_vec(&prefs)?.as_slice())?;
            Ok(())
        })
        .await
    }
}
