//! Message contents (`Content`, `SystemEvent`, call records) and the `Message` type, which is
//! both the wire form and the stored form of a message.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::CallMedia;
use crate::ids::{ConvId, UserId};

/// Longest text message, in characters.
pub const MAX_TEXT_CHARS: usize = 8000;

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
        /// Seconds from the first answer to the end; 0 when nobody answered.
        duration_secs: u64,
    },
    /// Written by the server for events in a conversation; clients render them in their language.
    System {
        event: SystemEvent,
    },
    /// What a recalled message becomes, for everyone.
    Recalled {},
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
            Content::Image { file_id, .. } | Content::File { file_id, .. } | Content::Sticker { file_id, .. } => {
                if file_id.len() == 32 && file_id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                    Ok(())
                } else {
                    Err("file_id must be the id of an uploaded file.")
                }
            }
            Content::Call { .. } | Content::System { .. } | Content::Recalled {} => {
                Err("Only the server writes call, system and recalled messages.")
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
            Content::Call { .. } => "[call]".into(),
            Content::System { .. } => "[system]".into(),
            Content::Recalled {} => "[recalled]".into(),
        }
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
