//! Views: what the API and the frames show of users, contacts, requests, groups, members and
//! conversations.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Message;
use crate::ids::{ConvId, UserId};

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
    /// Present (true) only in the owner's own view of an account from the LDAP directory,
    /// whose password is changed in the directory, not here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap: Option<bool>,
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
    /// Your private name for this user (`PUT /api/contacts/{user}/remark`), if you gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
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

/// A message one user saved to their favourites ("Saved"): a copy of it as it was when saved,
/// which stays when the original is recalled or the user leaves the conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Favorite {
    pub id: u64,
    /// Where the original is; clients jump there while it is still readable.
    pub conv: ConvId,
    pub seq: u64,
    pub sender: UserId,
    /// The sender's display name when the message was saved.
    pub sender_name: String,
    /// When the original was sent, ms.
    pub ts: u64,
    /// When it was saved, ms.
    pub saved_at: u64,
    pub content: super::Content,
}
