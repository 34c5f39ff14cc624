//! The WebSocket frames: `ClientFrame` (what a client sends, chat and call frames alike) and
//! `ServerFrame` (what the server sends), with the sync cursor.
//!
//! Chat and call frames share one enum per direction because both arrive on the same socket
//! tagged by `type`; splitting them into nested enums would need serde's untagged fallback,
//! which loses the precise decode errors that `bad_frame` answers carry.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{
    CallEndReason, CallMedia, ContactView, Content, ConversationView, GoneReason, GroupView, HelloUser, IceCandidate, Message, RequestView,
    SfuSource, SfuTrack, SfuVideo, SyncGap,
};
use crate::ids::{ConvId, UserId};

/// Longest client-chosen message id, in bytes.
pub const MAX_CLIENT_ID: usize = 64;

/// Frames a client sends on the WebSocket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Everything after these positions, then `synced`.
    Sync {
        #[serde(default)]
        cursors: HashMap<ConvId, SyncCursor>,
    },
    Send {
        client_id: String,
        conv: ConvId,
        content: Content,
        /// The seq of the message this one answers.
        #[serde(default)]
        reply_to: Option<u64>,
        /// Users mentioned with `@name`; they must be in the conversation.
        #[serde(default)]
        mentions: Vec<UserId>,
        /// `@all`: group owner and admins only.
        #[serde(default)]
        mention_all: bool,
    },
    /// "I have read up to `seq`."
    Read {
        conv: ConvId,
        seq: u64,
    },
    /// "I am typing" (send at most every few seconds while typing; never stored).
    Typing {
        conv: ConvId,
    },
    /// Whether this client is on screen: a device gets no push while one of its sockets is.
    /// A socket counts as visible until it says otherwise.
    Visibility {
        visible: bool,
    },
    Ping,
    /// Calls (see the Calls section of docs/protocol.md). Start a call in a conversation.
    CallInvite {
        conv: ConvId,
        media: CallMedia,
    },
    /// Answer a ringing call on this device (the first device to answer wins).
    CallAccept {
        call: String,
    },
    /// Decline a ringing call.
    CallReject {
        call: String,
    },
    /// The caller stops a call nobody answered yet.
    CallCancel {
        call: String,
    },
    /// Leave a call (a 1:1 call ends for both).
    CallHangup {
        call: String,
    },
    /// Join a group call that is going on (after declining it, or when it rang elsewhere).
    CallJoin {
        call: String,
    },
    /// Media flows: this device's connection to another participant connected. A call is
    /// recorded as `answered` (and timed) only from the first of these; an answered call that
    /// never got one is recorded as `failed`.
    CallConnected {
        call: String,
    },
    /// Your microphone, camera and screen-share state, shown to the others.
    CallMediaState {
        call: String,
        muted: bool,
        camera_off: bool,
        #[serde(default)]
        screen_sharing: bool,
    },
    /// WebRTC session descriptions and candidates for one other participant; the server relays
    /// them to that participant's device in the call. Renegotiation is a new offer and answer.
    CallOffer {
        call: String,
        to: UserId,
        sdp: String,
    },
    CallAnswer {
        call: String,
        to: UserId,
        sdp: String,
    },
    CallCandidate {
        call: String,
        to: UserId,
        candidate: IceCandidate,
    },
    /// A call through the SFU: this device's offer to the server (first or renegotiation), with
    /// what each of its `mid`s carries.
    CallSfuOffer {
        call: String,
        sdp: String,
        sources: HashMap<String, SfuSource>,
    },
    /// The answer to the server's `call_sfu_offer`.
    CallSfuAnswer {
        call: String,
        sdp: String,
    },
    /// The videos this device shows and at which layer; the others are paused.
    CallSfuView {
        call: String,
        videos: Vec<SfuVideo>,
    },
}

impl ClientFrame {
    /// Decodes one text frame exactly as the socket loop does before handing it to a feature.
    /// A frame that does not parse becomes the `bad_frame` error to answer with; it still names
    /// the frame's `client_id` when that is usable, so that the client can mark that message
    /// failed instead of retrying it forever. The fuzz target `client_frame` runs this. (Boxed:
    /// the error is the rare path and `ServerFrame` is large.)
    pub fn decode(text: &str) -> Result<ClientFrame, Box<ServerFrame>> {
        serde_json::from_str(text).map_err(|e| {
            let client_id = serde_json::from_str::<serde_json::Value>(text).ok().and_then(|v| {
                // Echoed as sent (the frame's size limit bounds it), so the client can match it.
                v.get("client_id").and_then(|c| c.as_str()).filter(|c| !c.is_empty()).map(str::to_owned)
            });
            Box::new(ServerFrame::error(client_id, "bad_frame", format!("Not a valid frame: {e}")))
        })
    }
}

/// How far a client has seen one conversation: the last seq, or `{"seq","rev"}` to also say
/// which changes (edits, recalls, reactions) it already has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SyncCursor {
    Seq(u64),
    Full {
        seq: u64,
        #[serde(default)]
        rev: u64,
    },
}

impl SyncCursor {
    pub fn parts(self) -> (u64, u64) {
        match self {
            SyncCursor::Seq(s) => (s, 0),
            SyncCursor::Full { seq, rev } => (seq, rev),
        }
    }
}

/// Frames the server sends on the WebSocket. Made, serialized and dropped at once (nothing keeps
/// one across an `.await` in a socket's task), so its size does not matter much; boxing its
/// large variants would only add allocations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum ServerFrame {
    Hello {
        user: HelloUser,
    },
    Message {
        message: Message,
    },
    /// A message was changed: edited, recalled, or reacted to. Replace it by `(conv, seq)`.
    Update {
        message: Message,
    },
    Ack {
        client_id: String,
        message: Message,
    },
    Synced {
        /// Conversations with more changes than a sync sends: reload their history.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        reload: Vec<ConvId>,
        /// Messages a sync left out because a conversation had more new ones than it carries.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        gaps: Vec<SyncGap>,
    },
    /// `user` has read `conv` up to `seq` (to the peer in 1:1 chats, and to the reader's devices).
    Read {
        conv: ConvId,
        user: UserId,
        seq: u64,
    },
    Typing {
        conv: ConvId,
        user: UserId,
    },
    Presence {
        user: UserId,
        online: bool,
        last_seen: Option<u64>,
    },
    /// Your relation with another user changed.
    Contact {
        contact: ContactView,
    },
    /// A contact request to or from you was made or answered.
    ContactRequest {
        request: RequestView,
    },
    /// A group you are in changed (or you joined it).
    Group {
        group: GroupView,
    },
    /// You are no longer in this group (left, removed, or it was dissolved).
    GroupGone {
        group: u64,
        reason: GoneReason,
    },
    /// Your view of a conversation changed (pinned, muted, hidden, read).
    Conversation {
        conversation: ConversationView,
    },
    /// You saved a message (on any of your devices): add it to your favourites.
    Favorite {
        favorite: super::Favorite,
    },
    /// You removed one of your favourites (on any of your devices).
    FavoriteRemoved {
        id: u64,
    },
    /// You deleted message `seq` of `conv` for yourself (on this or another device): remove it.
    Hidden {
        conv: ConvId,
        seq: u64,
    },
    /// You set (or, when `remark` is null, cleared) your private name for `user`.
    Remark {
        user: UserId,
        remark: Option<String>,
    },
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        code: String,
        message: String,
    },
    Pong,
    /// Your `call_invite` started a call with this id (sent to the inviting device).
    CallStarted {
        call: String,
        conv: ConvId,
        media: CallMedia,
        /// The call goes through the server's SFU (absent: a mesh or a 1:1 call).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        sfu: bool,
    },
    /// Someone calls you: ring (every device of every callee).
    CallIncoming {
        call: String,
        conv: ConvId,
        from: UserId,
        media: CallMedia,
        /// Who is in the call now.
        participants: Vec<UserId>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        sfu: bool,
    },
    /// The call rings on at least one device of `user`.
    CallRinging {
        call: String,
        user: UserId,
    },
    /// `user` answered (or joined a group call); `participants` are everyone in the call now.
    /// The one who just joined sends an offer to each of the others.
    CallAccepted {
        call: String,
        user: UserId,
        participants: Vec<UserId>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        sfu: bool,
    },
    /// `user` left a group call that goes on.
    CallLeft {
        call: String,
        user: UserId,
    },
    /// The call ended for you, or stopped ringing on this device.
    CallEnded {
        call: String,
        reason: CallEndReason,
        /// Seconds since it was answered, when it was.
        #[serde(skip_serializing_if = "Option::is_none")]
        duration_secs: Option<u64>,
    },
    CallMediaState {
        call: String,
        user: UserId,
        muted: bool,
        camera_off: bool,
        screen_sharing: bool,
    },
    CallOffer {
        call: String,
        from: UserId,
        sdp: String,
    },
    CallAnswer {
        call: String,
        from: UserId,
        sdp: String,
    },
    CallCandidate {
        call: String,
        from: UserId,
        candidate: IceCandidate,
    },
    /// The SFU's answer to this device's `call_sfu_offer`.
    CallSfuAnswer {
        call: String,
        sdp: String,
    },
    /// The SFU's offer: what this device receives changed; `tracks` is the full list.
    CallSfuOffer {
        call: String,
        sdp: String,
        tracks: Vec<SfuTrack>,
    },
    /// Who speaks in an SFU call, loudest first.
    CallSfuSpeakers {
        call: String,
        speakers: Vec<UserId>,
    },
}

impl ServerFrame {
    pub fn error(client_id: Option<String>, code: &str, message: impl Into<String>) -> ServerFrame {
        ServerFrame::Error { client_id, code: code.into(), message: message.into() }
    }

    /// `ServerFrame::Message { message }` as JSON text, serialized from a borrowed message:
    /// the fan-out makes one of these per message and shares it among all recipients, without
    /// a copy of the message first.
    pub fn message_json(message: &Message) -> String {
        #[derive(Serialize)]
        #[serde(tag = "type", rename = "message")]
        struct MessageFrame<'a> {
            message: &'a Message,
        }
        serde_json::to_string(&MessageFrame { message }).unwrap_or_else(|e| {
            tracing::error!(error = %e, "message frame failed to serialize");
            r#"{"type":"error","code":"internal","message":"internal error"}"#.into()
        })
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
