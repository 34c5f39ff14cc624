//! Values the call frames carry: the media of a call, why it ended, and ICE candidates.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::UserId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallMedia {
    Audio,
    Video,
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

/// What one of a participant's tracks in an SFU call carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SfuSource {
    Audio,
    Camera,
    Screen,
}

/// A simulcast layer a receiver asks for: a quarter, half or full resolution of the camera.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SfuLayer {
    Low,
    Medium,
    High,
}

/// One video a receiver shows (`call_sfu_view`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SfuVideo {
    pub user: UserId,
    pub source: SfuSource,
    pub layer: SfuLayer,
}

/// One track a device receives from the SFU: whose it is and what, by the `mid` of the
/// device's connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SfuTrack {
    pub mid: String,
    pub user: UserId,
    pub source: SfuSource,
}
