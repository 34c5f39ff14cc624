//! The wire protocol: every JSON shape a client sees, typed in one place.
//!
//! Architecture invariant: this is the only module that decides what JSON looks like on the
//! WebSocket. Frames are `#[serde(tag = "type")]` enums; message content is tagged by `kind`.
//! `docs/protocol.md` documents each frame, and the snapshot tests below pin the shapes.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{ConvId, UserId};

/// Longest text message, in characters.
pub const MAX_TEXT_CHARS: usize = 8000;
/// Longest client-chosen message id, in bytes.
pub const MAX_CLIENT_ID: usize = 64;

/// What a message carries. Media and call variants are filled in by the media and calls
/// features; clients may only send the kinds that [`Content::client_may_send`] accepts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Content {
    Text {
        text: String,
    },
    Emoji {
        emoji: String,
    },
    Image {
        file_id: String,
        name: String,
        size: u64,
        width: u32,
        height: u32,
    },
    File {
        file_id: String,
        name: String,
        size: u64,
        mime: String,
    },
    Call {
        media: String,
        outcome: String,
        duration_secs: u64,
    },
    System {
        text: String,
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
                if emoji.is_empty() || emoji.len() > 64 {
                    Err("An emoji must be 1 to 64 bytes.")
                } else {
                    Ok(())
                }
            }
            Content::Image { .. } | Content::File { .. } => {
                Err("File and image messages are not supported yet.")
            }
            Content::Call { .. } | Content::System { .. } => {
                Err("Only the server writes call and system messages.")
            }
        }
    }

    /// A one-line preview for conversation lists and notifications.
    pub fn preview(&self) -> String {
        match self {
            Content::Text { text } => text.chars().take(80).collect(),
            Content::Emoji { emoji } => emoji.clone(),
            Content::Image { .. } => "[image]".into(),
            Content::File { name, .. } => format!("[file] {name}"),
            Content::Call { .. } => "[call]".into(),
            Content::System { text } => text.clone(),
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
}

/// What anyone logged in may see of a user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub id: UserId,
    pub username: String,
    pub nickname: String,
    pub signature: String,
    pub gender: Gender,
    /// `YYYY-MM-DD`
    pub birthday: Option<String>,
    pub is_admin: bool,
    pub created_at: u64,
    /// Present only in the owner's own view.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    #[default]
    Unknown,
    Male,
    Female,
    Other,
}

/// The short user summary in `hello`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HelloUser {
    pub id: UserId,
    pub username: String,
    pub nickname: String,
}

/// Frames a client sends on the WebSocket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Everything after these positions, then `synced`.
    Sync {
        #[serde(default)]
        cursors: HashMap<ConvId, u64>,
    },
    Send {
        client_id: String,
        conv: ConvId,
        content: Content,
    },
    Ping,
}

/// Frames the server sends on the WebSocket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Hello {
        user: HelloUser,
    },
    Message {
        message: Message,
    },
    Ack {
        client_id: String,
        message: Message,
    },
    Synced,
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        code: String,
        message: String,
    },
    Pong,
}

impl ServerFrame {
    pub fn error(client_id: Option<String>, code: &str, message: impl Into<String>) -> ServerFrame {
        ServerFrame::Error {
            client_id,
            code: code.into(),
            message: message.into(),
        }
    }

    /// The frame as JSON text. Serializing these types cannot fail (string keys, no maps with
    /// non-string keys), so a failure is a programming error worth a loud log, not a panic.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            tracing::error!(error = %e, "server frame failed to serialize");
            r#"{"type":"error","code":"internal","message":"internal error"}"#.into()
        })
    }
}

/// WebSocket close codes with a meaning in this protocol.
pub mod close {
    pub const GOING_AWAY: u16 = 1001;
    pub const TOO_BIG: u16 = 1009;
    pub const SESSION_REVOKED: u16 = 4001;
    pub const TOO_SLOW: u16 = 4008;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Message {
        Message {
            conv: "d:3:7".parse().unwrap(),
            seq: 42,
            sender: UserId(3),
            client_id: "c9b1".into(),
            ts: 1_795_766_400_000,
            content: Content::Text { text: "hi".into() },
        }
    }

    /// These strings are the documented examples of docs/protocol.md; a change here is a
    /// protocol change and must be made there too.
    #[test]
    fn server_frames_have_the_documented_shape() {
        let cases = [
            (
                ServerFrame::Hello {
                    user: HelloUser {
                        id: UserId(3),
                        username: "ann".into(),
                        nickname: "Ann".into(),
                    },
                },
                r#"{"type":"hello","user":{"id":3,"username":"ann","nickname":"Ann"}}"#,
            ),
            (
                ServerFrame::Message { message: msg() },
                r#"{"type":"message","message":{"conv":"d:3:7","seq":42,"sender":3,"client_id":"c9b1","ts":1795766400000,"content":{"kind":"text","text":"hi"}}}"#,
            ),
            (
                ServerFrame::Ack {
                    client_id: "c9b1".into(),
                    message: msg(),
                },
                r#"{"type":"ack","client_id":"c9b1","message":{"conv":"d:3:7","seq":42,"sender":3,"client_id":"c9b1","ts":1795766400000,"content":{"kind":"text","text":"hi"}}}"#,
            ),
            (ServerFrame::Synced, r#"{"type":"synced"}"#),
            (
                ServerFrame::error(
                    Some("c9b1".into()),
                    "forbidden",
                    "You cannot write to this conversation.",
                ),
                r#"{"type":"error","client_id":"c9b1","code":"forbidden","message":"You cannot write to this conversation."}"#,
            ),
            (ServerFrame::Pong, r#"{"type":"pong"}"#),
        ];
        for (frame, json) in cases {
            assert_eq!(frame.to_json(), json);
        }
    }

    #[test]
    fn client_frames_parse_from_the_documented_examples() {
        let sync: ClientFrame =
            serde_json::from_str(r#"{"type":"sync","cursors":{"d:3:7":41,"g:12":0}}"#).unwrap();
        let ClientFrame::Sync { cursors } = sync else {
            panic!("not sync")
        };
        assert_eq!(cursors.get(&"d:3:7".parse().unwrap()), Some(&41));
        let send: ClientFrame =
            serde_json::from_str(r#"{"type":"send","client_id":"c9b1","conv":"d:3:7","content":{"kind":"text","text":"hi"}}"#).unwrap();
        assert!(matches!(send, ClientFrame::Send { .. }));
        assert_eq!(
            serde_json::from_str::<ClientFrame>(r#"{"type":"ping"}"#).unwrap(),
            ClientFrame::Ping
        );
    }

    #[test]
    fn malformed_client_frames_are_errors_not_panics() {
        for bad in [
            "",
            "{",
            "[]",
            "null",
            r#"{"type":"nope"}"#,
            r#"{"type":"send"}"#,
            r#"{"type":"send","client_id":"x","conv":"d:2:1","content":{"kind":"text","text":"hi"}}"#,
            r#"{"type":"send","client_id":"x","conv":"d:1:2","content":{"kind":"text","text":"hi","admin":true}}"#,
            r#"{"type":"sync","cursors":{"bogus":1}}"#,
            r#"{"type":"sync","cursors":{"d:1:2":-1}}"#,
        ] {
            assert!(serde_json::from_str::<ClientFrame>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn content_validation() {
        assert!(
            Content::Text { text: "  ".into() }
                .validate_from_client()
                .is_err()
        );
        assert!(
            Content::Text {
                text: "x".repeat(MAX_TEXT_CHARS + 1)
            }
            .validate_from_client()
            .is_err()
        );
        assert!(
            Content::Text {
                text: "字".repeat(MAX_TEXT_CHARS)
            }
            .validate_from_client()
            .is_ok()
        );
        assert!(
            Content::System { text: "x".into() }
                .validate_from_client()
                .is_err()
        );
    }
}
