//! Message contents (`Content`, `SystemEvent`, call records) and the `Message` type, which is
//! both the wire form and the stored form of a message.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::CallMedia;
use crate::ids::{ConvId, UserId};

/// Longest text message, in characters.
pub const MAX_TEXT_CHARS: usize = 8000;

/// Bars in a voice message's waveform: fewest and most.
pub const WAVEFORM_BARS: std::ops::RangeInclusive<usize> = 16..=64;
/// Highest level of one waveform bar (0 is silence).
pub const WAVEFORM_MAX: u8 = 31;

/// What a message carries. Media and call variants are filled in by the media and calls
/// features; clients may only send the kinds that [`Content::validate_from_client`] accepts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Content {
    Text {
        text: String,
    },
    Emoji {
        emoji: String,
    },
    /// An image the sender uploaded; clients send `file_id` and the server fills in the rest
    /// from the stored file.
    Image {
        file_id: String,
        #[serde(default)]
        name: String,
        #[serde(default)]
        size: u64,
        #[serde(default)]
        width: u32,
        #[serde(default)]
        height: u32,
    },
    /// Any file the sender uploaded; filled in by the server like `Image`.
    File {
        file_id: String,
        #[serde(default)]
        name: String,
        #[serde(default)]
        size: u64,
        #[serde(default)]
        mime: String,
    },
    /// A recorded voice message: an audio file the sender uploaded, its length and a coarse
    /// loudness outline for the bubble. The server checks the duration against the file's own
    /// data where it can parse it (Ogg, `WebM`) and fills in `size` and `mime`.
    Voice {
        file_id: String,
        duration_ms: u64,
        /// 16 to 64 levels from 0 to 31, computed by the recording client.
        waveform: Vec<u8>,
        #[serde(default)]
        size: u64,
        #[serde(default)]
        mime: String,
    },
    /// A sticker from one of the server's sticker packs; the server fills in its size.
    Sticker {
        file_id: String,
        #[serde(default)]
        width: u32,
        #[serde(default)]
        height: u32,
    },
    /// A call in this conversation, written by the server when it ended.
    Call {
        media: CallMedia,
        outcome: CallOutcome,
        /// Seconds from the moment media first flowed to the end; 0 when it never did.
        duration_secs: u64,
    },
    /// Written by the server for events in a conversation; clients render them in their language.
    System {
        event: SystemEvent,
    },
    /// What a recalled message becomes, for everyone.
    Recalled {},
    /// A "chat history" card made by a forward (`POST /api/forward` with `mode: "card"`): a
    /// snapshot of the forwarded messages as they were. Only the server writes it. A card
    /// forwarded into another card is flattened: its items join the new card in its place.
    History {
        /// Oldest first; at most [`MAX_HISTORY_ITEMS`].
        items: Vec<HistoryItem>,
    },
}

/// Most messages one chat-history card holds.
pub const MAX_HISTORY_ITEMS: usize = 100;

/// One message inside a chat-history card, as it was when it was forwarded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryItem {
    pub sender: UserId,
    /// The sender's display name when the card was made.
    pub name: String,
    /// When the original was sent, ms.
    pub ts: u64,
    /// Text, emoji, image, file or sticker; never another card (cards are flattened).
    #[schema(no_recursion)]
    pub content: Content,
}

/// How a call ended, as the conversation records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    Answered,
    /// Nobody answered before the ring timeout.
    Missed,
    Declined,
    /// The caller hung up before anyone answered.
    Cancelled,
    /// The callee was already in a call.
    Busy,
    /// Answered, but media never connected (no route between the devices, or the relay
    /// refused them).
    Failed,
}

/// Events the server records in a conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SystemEvent {
    /// Two users became contacts.
    ContactAccepted,
    GroupCreated {
        by: UserId,
    },
    Joined {
        user: UserId,
        by: Option<UserId>,
    },
    Left {
        user: UserId,
    },
    Removed {
        user: UserId,
        by: UserId,
    },
    Renamed {
        name: String,
        by: UserId,
    },
    NoticeChanged {
        by: UserId,
        /// The new notice (empty: cleared). Events stored before it was carried read as empty.
        #[serde(default)]
        notice: String,
    },
    OwnerChanged {
        user: UserId,
        by: UserId,
    },
    AdminAdded {
        user: UserId,
        by: UserId,
    },
    AdminRemoved {
        user: UserId,
        by: UserId,
    },
    Muted {
        user: UserId,
        by: UserId,
        until: Option<u64>,
    },
    Dissolved {
        by: UserId,
    },
}

impl Content {
    /// The files this content carries: one for media, each item's for a chat-history card.
    pub fn files(&self) -> Vec<&str> {
        match self {
            Content::Image { file_id, .. }
            | Content::File { file_id, .. }
            | Content::Sticker { file_id, .. }
            | Content::Voice { file_id, .. } => vec![file_id.as_str()],
            Content::History { items } => items.iter().flat_map(|i| i.content.files()).collect(),
            _ => Vec::new(),
        }
    }

    /// The words search indexes: a text, a file's name, a card's texts and names.
    pub fn search_text(&self) -> Option<String> {
        match self {
            Content::Text { text } => Some(text.clone()),
            Content::File { name, .. } | Content::Image { name, .. } => Some(name.clone()),
            Content::History { items } => {
                let parts: Vec<String> = items.iter().flat_map(|i| [Some(i.name.clone()), i.content.search_text()]).flatten().collect();
                Some(parts.join(" "))
            }
            _ => None,
        }
    }

    /// Checks a client-sent content value; the error is a short reason for the user.
    pub fn validate_from_client(&self) -> Result<(), &'static str> {
        match self {
            Content::Text { text } => {
                if text.trim().is_empty() {
                    Err("A message cannot be empty.")
                } else if text.chars().count() > MAX_TEXT_CHARS {
                    Err("A message can be at most 8,000 characters.")
                } else {
                    Ok(())
                }
            }
            Content::Emoji { emoji } => {
                if crate::emoji::is_one_emoji(emoji) {
                    Ok(())
                } else {
                    Err("An emoji message is exactly one emoji.")
                }
            }
            Content::Image { file_id, .. } | Content::File { file_id, .. } | Content::Sticker { file_id, .. } => valid_file_id(file_id),
            Content::Voice { file_id, duration_ms, waveform, .. } => {
                valid_file_id(file_id)?;
                if *duration_ms == 0 {
                    Err("A voice message needs its duration in milliseconds.")
                } else if !WAVEFORM_BARS.contains(&waveform.len()) || waveform.iter().any(|l| *l > WAVEFORM_MAX) {
                    Err("A voice waveform is 16 to 64 levels from 0 to 31.")
                } else {
                    Ok(())
                }
            }
            Content::Call { .. } | Content::System { .. } | Content::Recalled {} | Content::History { .. } => {
                Err("Only the server writes call, system, recalled and chat-history messages.")
            }
        }
    }

    /// A one-line preview for conversation lists and notifications.
    pub fn preview(&self) -> String {
        match self {
            Content::Text { text } => text.chars().take(80).collect(),
            Content::Emoji { emoji } => emoji.clone(),
            Content::Image { .. } => "[image]".into(),
            Content::Sticker { .. } => "[sticker]".into(),
            Content::File { name, .. } => format!("[file] {name}"),
            Content::Voice { duration_ms, .. } => {
                let secs = (duration_ms.saturating_add(500) / 1000).max(1);
                format!("[Voice] {}:{:02}", secs / 60, secs % 60)
            }
            Content::Call { .. } => "[call]".into(),
            Content::System { .. } => "[system]".into(),
            Content::Recalled {} => "[recalled]".into(),
            Content::History { .. } => "[chat history]".into(),
        }
    }
}

fn valid_file_id(id: &str) -> Result<(), &'static str> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(())
    } else {
        Err("file_id must be the id of an uploaded file.")
    }
}

/// A stored message as clients see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    pub conv: ConvId,
    /// Position in the conversation: starts at 1, gap-free, increasing.
    pub seq: u64,
    pub sender: UserId,
    pub client_id: String,
    /// Server time of the commit, milliseconds since the Unix epoch.
    pub ts: u64,
    pub content: Content,
    /// The conversation's change counter when this message was last edited, recalled or
    /// reacted to (0: never). Sync sends changes newer than the client's `rev`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rev: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<ReplyRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<UserId>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub mention_all: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recalled: Option<Recall>,
    /// Emoji -> who reacted with it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reactions: BTreeMap<String, Vec<UserId>>,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_false(v: &bool) -> bool {
    !*v
}

impl Message {
    pub fn new(conv: ConvId, seq: u64, sender: UserId, client_id: String, ts: u64, content: Content) -> Message {
        Message {
            conv,
            seq,
            sender,
            client_id,
            ts,
            content,
            rev: 0,
            reply_to: None,
            mentions: Vec::new(),
            mention_all: false,
            edited_at: None,
            recalled: None,
            reactions: BTreeMap::new(),
        }
    }
}

/// The message a reply quotes, as it was when the reply was sent. A recall of the quoted
/// message empties `preview` and sets `recalled` (the reply gets a new `rev`, so sync sends it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReplyRef {
    pub seq: u64,
    pub sender: UserId,
    pub preview: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub recalled: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Recall {
    pub by: UserId,
    pub at: u64,
}
