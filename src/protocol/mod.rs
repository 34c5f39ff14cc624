//! The wire protocol: every JSON shape a client sees, typed in one place.
//!
//! Architecture invariant: this is the only module that decides what JSON looks like on the
//! WebSocket. Frames are `#[serde(tag = "type")]` enums; message content is tagged by `kind`.
//! `docs/protocol.md` documents each frame, and the snapshot tests below pin the shapes.
//!
//! # Layout
//! - `message.rs`: message contents and the `Message` type (wire and stored form).
//! - `views.rs`: users, contacts, requests, groups, members and conversations as clients see them.
//! - `frames.rs`: `ClientFrame` and `ServerFrame`, the frames of the WebSocket.
//! - `call.rs`: the values call frames carry.
//! - `close.rs`: the WebSocket close codes.
//! - `examples.rs` (tests): the example frames of `tests/fixtures/frames.json`, which the web
//!   client's tests check against its TypeScript types too.

mod call;
pub mod close;
mod frames;
mod message;
mod views;

pub use call::{CallEndReason, CallMedia, IceCandidate, SfuLayer, SfuSource, SfuTrack, SfuVideo};
pub use frames::{ClientFrame, MAX_CLIENT_ID, ServerFrame, SyncCursor};
pub use message::{CallOutcome, Content, HistoryItem, MAX_HISTORY_ITEMS, MAX_TEXT_CHARS, Message, Recall, ReplyRef, SystemEvent};
pub use views::{
    ContactState, ContactView, ConversationView, Favorite, Gender, GoneReason, GroupView, HelloUser, JoinMode, MemberView, RequestStatus,
    RequestView, Role, SyncGap, UserView,
};

#[cfg(test)]
mod examples;
#[cfg(test)]
mod tests;
