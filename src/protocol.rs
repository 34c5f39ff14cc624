//! The wire protocol: every JSON shape a client sees, typed in one place.
//!
//! Architecture invariant: this is the only module that decides what JSON looks like on the
//! WebSocket. Frames are `#[serde(tag = "type")]` enums; message content is tagged by `kind`.
//! `docs/protocol.md` documents each frame, and the snapshot tests below pin the shapes.

use std::collections::{BTreeMap, HashMap};

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallMedia {
    Audio,
    Video,
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

/// Why a call ended (or stopped ringing) for the one who gets `call_ended`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallEndReason {
    Declined,
    Busy,
    Cancelled,
    NoAnswer,
    Hangup,
    /// Another of your devices answered.
    TakenElsewhere,
    /// The other side's connection dropped.
    ConnectionLost,
}

/// An ICE candidate in the browser's `RTCIceCandidateInit` shape, relayed untouched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceCandidate {
    pub candidate: String,
    #[serde(rename = "sdpMid", default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    #[serde(rename = "sdpMLineIndex", default, skip_serializing_if = "Option::is_none")]
    pub sdp_mline_index: Option<u16>,
    #[serde(rename = "usernameFragment", default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
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

/// The message a reply quotes, as it was when the reply was sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReplyRef {
    pub seq: u64,
    pub sender: UserId,
    pub preview: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Recall {
    pub by: UserId,
    pub at: u64,
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
    /// File id of the avatar image (`GET /api/files/{id}`), if any.
    #[serde(default)]
    pub avatar: Option<String>,
    /// Present only in the owner's own view.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Present only in the owner's own view.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hide_presence: Option<bool>,
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

/// One side's view of its relation with another user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContactState {
    /// Contacts on both sides.
    Normal,
    /// I blocked them.
    Blocked,
    /// They blocked me.
    BlockedBy,
    /// I removed them from my contacts.
    Deleted,
    /// They removed me from theirs.
    DeletedBy,
    /// No relation.
    None,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ContactView {
    pub user: UserView,
    pub state: ContactState,
    /// Since when the relation is in this state, ms.
    pub since: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Pending,
    Accepted,
    Refused,
    Blocked,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RequestView {
    pub from: UserView,
    pub to: UserView,
    pub message: String,
    pub status: RequestStatus,
    pub created_at: u64,
    pub updated_at: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JoinMode {
    /// Anyone may join.
    Open,
    /// The owner or an admin approves each application.
    Approval,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    Admin,
    Owner,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GroupView {
    pub id: u64,
    pub name: String,
    pub notice: String,
    pub avatar: Option<String>,
    pub join_mode: JoinMode,
    pub owner: UserId,
    pub member_count: u32,
    pub created_at: u64,
    /// Your role, when you are a member.
    pub my_role: Option<Role>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    pub user: UserView,
    pub role: Role,
    pub joined_at: u64,
    /// Until when the member may not send, ms; absent when not muted.
    pub muted_until: Option<u64>,
    /// Whether the member is connected now (absent when they hide their presence).
    pub online: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GoneReason {
    Left,
    Removed,
    Dissolved,
}

/// A conversation as one user's list shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConversationView {
    pub id: ConvId,
    /// The other person, for a 1:1 conversation.
    pub peer: Option<UserView>,
    /// The group, for a group conversation.
    pub group: Option<GroupView>,
    pub last_seq: u64,
    pub last_message: Option<Message>,
    /// Time of the last activity, ms: the last message, or when the conversation began.
    pub last_ts: u64,
    /// Your read position.
    pub read_seq: u64,
    /// Messages after your read position.
    pub unread: u64,
    /// Whether an unread message mentions you (or @all).
    pub mentioned: bool,
    pub pinned: bool,
    pub muted: bool,
    /// Hidden from the list until a new message arrives.
    pub hidden: bool,
    /// In a 1:1 conversation, how far the other person has read.
    pub peer_read_seq: Option<u64>,
}

/// Messages of `conv` a sync left out: those with `after < seq < before`; page them with the
/// history route (`?after=&before=`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SyncGap {
    pub conv: ConvId,
    pub after: u64,
    pub before: u64,
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
    },
    /// Someone calls you: ring (every device of every callee).
    CallIncoming {
        call: String,
        conv: ConvId,
        from: UserId,
        media: CallMedia,
        /// Who is in the call now.
        participants: Vec<UserId>,
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
}

impl ServerFrame {
    pub fn error(client_id: Option<String>, code: &str, message: impl Into<String>) -> ServerFrame {
        ServerFrame::Error { client_id, code: code.into(), message: message.into() }
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
        Message::new("d:3:7".parse().unwrap(), 42, UserId(3), "c9b1".into(), 1_795_766_400_000, Content::Text { text: "hi".into() })
    }

    /// These strings are the documented examples of docs/protocol.md; a change here is a
    /// protocol change and must be made there too.
    #[test]
    fn server_frames_have_the_documented_shape() {
        let cases = [
            (
                ServerFrame::Hello { user: HelloUser { id: UserId(3), username: "ann".into(), nickname: "Ann".into() } },
                r#"{"type":"hello","user":{"id":3,"username":"ann","nickname":"Ann"}}"#,
            ),
            (
                ServerFrame::Message { message: msg() },
                r#"{"type":"message","message":{"conv":"d:3:7","seq":42,"sender":3,"client_id":"c9b1","ts":1795766400000,"content":{"kind":"text","text":"hi"}}}"#,
            ),
            (
                ServerFrame::Ack { client_id: "c9b1".into(), message: msg() },
                r#"{"type":"ack","client_id":"c9b1","message":{"conv":"d:3:7","seq":42,"sender":3,"client_id":"c9b1","ts":1795766400000,"content":{"kind":"text","text":"hi"}}}"#,
            ),
            (ServerFrame::Synced { reload: vec![], gaps: vec![] }, r#"{"type":"synced"}"#),
            (
                ServerFrame::Synced { reload: vec![], gaps: vec![SyncGap { conv: "d:3:7".parse().unwrap(), after: 41, before: 1042 }] },
                r#"{"type":"synced","gaps":[{"conv":"d:3:7","after":41,"before":1042}]}"#,
            ),
            (
                ServerFrame::error(Some("c9b1".into()), "forbidden", "You cannot write to this conversation."),
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
        let sync: ClientFrame = serde_json::from_str(r#"{"type":"sync","cursors":{"d:3:7":41,"g:12":0}}"#).unwrap();
        let ClientFrame::Sync { cursors } = sync else { panic!("not sync") };
        assert_eq!(cursors.get(&"d:3:7".parse().unwrap()).map(|c| c.parts()), Some((41, 0)));
        let sync: ClientFrame = serde_json::from_str(r#"{"type":"sync","cursors":{"g:12":{"seq":5,"rev":2}}}"#).unwrap();
        let ClientFrame::Sync { cursors } = sync else { panic!("not sync") };
        assert_eq!(cursors.get(&"g:12".parse().unwrap()).map(|c| c.parts()), Some((5, 2)));
        let send: ClientFrame =
            serde_json::from_str(r#"{"type":"send","client_id":"c9b1","conv":"d:3:7","content":{"kind":"text","text":"hi"}}"#).unwrap();
        assert!(matches!(send, ClientFrame::Send { .. }));
        assert_eq!(serde_json::from_str::<ClientFrame>(r#"{"type":"ping"}"#).unwrap(), ClientFrame::Ping);
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
        assert!(Content::Text { text: "  ".into() }.validate_from_client().is_err());
        assert!(Content::Text { text: "x".repeat(MAX_TEXT_CHARS + 1) }.validate_from_client().is_err());
        assert!(Content::Text { text: "字".repeat(MAX_TEXT_CHARS) }.validate_from_client().is_ok());
        assert!(Content::System { event: SystemEvent::ContactAccepted }.validate_from_client().is_err());
        assert!(Content::Recalled {}.validate_from_client().is_err());
        // Media: clients send only the id; the server fills in the rest.
        let img: Content = serde_json::from_str(r#"{"kind":"image","file_id":"0123456789abcdef0123456789abcdef"}"#).unwrap();
        assert!(img.validate_from_client().is_ok());
        let bad: Content = serde_json::from_str(r#"{"kind":"sticker","file_id":"../../etc/passwd"}"#).unwrap();
        assert!(bad.validate_from_client().is_err());
    }

    /// The call frames of the Calls section of docs/protocol.md, both ways.
    #[test]
    fn call_frames_have_the_documented_shape() {
        let call = || "5f2a9c1e7b3d4a60".to_owned();
        let cand = || IceCandidate {
            candidate: "candidate:1 1 udp 2122260223 192.0.2.7 50000 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
            username_fragment: None,
        };
        let server = [
            (
                ServerFrame::CallStarted { call: call(), conv: "d:3:7".parse().unwrap(), media: CallMedia::Video },
                r#"{"type":"call_started","call":"5f2a9c1e7b3d4a60","conv":"d:3:7","media":"video"}"#,
            ),
            (
                ServerFrame::CallIncoming {
                    call: call(),
                    conv: "d:3:7".parse().unwrap(),
                    from: UserId(3),
                    media: CallMedia::Video,
                    participants: vec![UserId(3)],
                },
                r#"{"type":"call_incoming","call":"5f2a9c1e7b3d4a60","conv":"d:3:7","from":3,"media":"video","participants":[3]}"#,
            ),
            (ServerFrame::CallRinging { call: call(), user: UserId(7) }, r#"{"type":"call_ringing","call":"5f2a9c1e7b3d4a60","user":7}"#),
            (
                ServerFrame::CallAccepted { call: call(), user: UserId(7), participants: vec![UserId(3), UserId(7)] },
                r#"{"type":"call_accepted","call":"5f2a9c1e7b3d4a60","user":7,"participants":[3,7]}"#,
            ),
            (ServerFrame::CallLeft { call: call(), user: UserId(9) }, r#"{"type":"call_left","call":"5f2a9c1e7b3d4a60","user":9}"#),
            (
                ServerFrame::CallEnded { call: call(), reason: CallEndReason::Hangup, duration_secs: Some(65) },
                r#"{"type":"call_ended","call":"5f2a9c1e7b3d4a60","reason":"hangup","duration_secs":65}"#,
            ),
            (
                ServerFrame::CallEnded { call: call(), reason: CallEndReason::TakenElsewhere, duration_secs: None },
                r#"{"type":"call_ended","call":"5f2a9c1e7b3d4a60","reason":"taken_elsewhere"}"#,
            ),
            (
                ServerFrame::CallMediaState { call: call(), user: UserId(3), muted: true, camera_off: false, screen_sharing: false },
                r#"{"type":"call_media_state","call":"5f2a9c1e7b3d4a60","user":3,"muted":true,"camera_off":false,"screen_sharing":false}"#,
            ),
            (
                ServerFrame::CallOffer { call: call(), from: UserId(7), sdp: "v=0\r\n...".into() },
                r#"{"type":"call_offer","call":"5f2a9c1e7b3d4a60","from":7,"sdp":"v=0\r\n..."}"#,
            ),
            (
                ServerFrame::CallAnswer { call: call(), from: UserId(3), sdp: "v=0\r\n...".into() },
                r#"{"type":"call_answer","call":"5f2a9c1e7b3d4a60","from":3,"sdp":"v=0\r\n..."}"#,
            ),
            (
                ServerFrame::CallCandidate { call: call(), from: UserId(3), candidate: cand() },
                r#"{"type":"call_candidate","call":"5f2a9c1e7b3d4a60","from":3,"candidate":{"candidate":"candidate:1 1 udp 2122260223 192.0.2.7 50000 typ host","sdpMid":"0","sdpMLineIndex":0}}"#,
            ),
        ];
        for (frame, json) in server {
            assert_eq!(frame.to_json(), json);
        }
        let client = [
            (
                r#"{"type":"call_invite","conv":"d:3:7","media":"video"}"#,
                ClientFrame::CallInvite { conv: "d:3:7".parse().unwrap(), media: CallMedia::Video },
            ),
            (r#"{"type":"call_accept","call":"5f2a9c1e7b3d4a60"}"#, ClientFrame::CallAccept { call: call() }),
            (r#"{"type":"call_reject","call":"5f2a9c1e7b3d4a60"}"#, ClientFrame::CallReject { call: call() }),
            (r#"{"type":"call_cancel","call":"5f2a9c1e7b3d4a60"}"#, ClientFrame::CallCancel { call: call() }),
            (r#"{"type":"call_hangup","call":"5f2a9c1e7b3d4a60"}"#, ClientFrame::CallHangup { call: call() }),
            (r#"{"type":"call_join","call":"5f2a9c1e7b3d4a60"}"#, ClientFrame::CallJoin { call: call() }),
            (
                r#"{"type":"call_media_state","call":"5f2a9c1e7b3d4a60","muted":true,"camera_off":false,"screen_sharing":false}"#,
                ClientFrame::CallMediaState { call: call(), muted: true, camera_off: false, screen_sharing: false },
            ),
            (
                r#"{"type":"call_offer","call":"5f2a9c1e7b3d4a60","to":7,"sdp":"v=0\r\n..."}"#,
                ClientFrame::CallOffer { call: call(), to: UserId(7), sdp: "v=0\r\n...".into() },
            ),
            (
                r#"{"type":"call_answer","call":"5f2a9c1e7b3d4a60","to":3,"sdp":"v=0\r\n..."}"#,
                ClientFrame::CallAnswer { call: call(), to: UserId(3), sdp: "v=0\r\n...".into() },
            ),
            (
                r#"{"type":"call_candidate","call":"5f2a9c1e7b3d4a60","to":7,"candidate":{"candidate":"candidate:1 1 udp 2122260223 192.0.2.7 50000 typ host","sdpMid":"0","sdpMLineIndex":0}}"#,
                ClientFrame::CallCandidate { call: call(), to: UserId(7), candidate: cand() },
            ),
        ];
        for (json, frame) in client {
            assert_eq!(serde_json::from_str::<ClientFrame>(json).unwrap(), frame, "{json}");
        }
        let record = Content::Call { media: CallMedia::Video, outcome: CallOutcome::Answered, duration_secs: 65 };
        assert_eq!(serde_json::to_string(&record).unwrap(), r#"{"kind":"call","media":"video","outcome":"answered","duration_secs":65}"#);
        assert!(record.validate_from_client().is_err(), "only the server writes call records");
        for bad in [
            r#"{"type":"call_invite","conv":"d:3:7","media":"hologram"}"#,
            r#"{"type":"call_offer","call":"x","sdp":"v=0"}"#,
            r#"{"type":"call_candidate","call":"x","to":7,"candidate":{"candidate":"c","extra":1}}"#,
        ] {
            assert!(serde_json::from_str::<ClientFrame>(bad).is_err(), "{bad}");
        }
    }
}
