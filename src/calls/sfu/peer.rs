//! One participant's WebRTC session with the SFU (a str0m `Rtc`): the tracks it sends in, the
//! tracks it receives (each an m-line the server offered), its view and bandwidth, and the
//! server side of the offer/answer exchange.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use str0m::Rtc;
use str0m::change::SdpPendingOffer;
use str0m::media::{Direction, MediaKind, Mid};

use super::clock::Clock;
use crate::ids::UserId;
use crate::protocol::{ServerFrame, SfuLayer, SfuSource, SfuTrack};

/// A sender's layers not seen for this long are taken as stopped.
pub const LAYER_GONE_AFTER: Duration = Duration::from_millis(1500);

/// A track a participant sends to the SFU.
#[derive(Debug)]
pub struct TrackIn {
    pub mid: Mid,
    pub source: SfuSource,
    /// It came with `rid`s (simulcast), so keyframe requests name one.
    pub simulcast: bool,
    /// When each layer last arrived (a track without simulcast counts as `High`).
    pub layers_seen: HashMap<SfuLayer, Instant>,
    /// Last keyframe request per layer, to throttle them.
    pub keyframe_asked: HashMap<SfuLayer, Instant>,
}

impl TrackIn {
    pub fn available(&self, now: Instant) -> Vec<SfuLayer> {
        self.layers_seen.iter().filter(|(_, at)| now.saturating_duration_since(**at) < LAYER_GONE_AFTER).map(|(l, _)| *l).collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutState {
    ToOpen,
    Negotiating(Mid),
    Open(Mid),
    ToStop(Mid),
    NegotiatingStop(Mid),
}

/// A track the SFU sends to a participant: another participant's track in.
#[derive(Debug)]
pub struct TrackOut {
    pub from: u64,
    pub from_mid: Mid,
    pub user: UserId,
    pub source: SfuSource,
    pub state: OutState,
    /// The layer being forwarded now (`None`: nothing yet, or paused).
    pub layer: Option<SfuLayer>,
    pub clock: Clock,
}

impl TrackOut {
    pub fn new(from: u64, from_mid: Mid, user: UserId, source: SfuSource) -> TrackOut {
        TrackOut { from, from_mid, user, source, state: OutState::ToOpen, layer: None, clock: Clock::default() }
    }

    pub fn open_mid(&self) -> Option<Mid> {
        match self.state {
            OutState::Open(m) => Some(m),
            _ => None,
        }
    }

    fn listed_mid(&self) -> Option<Mid> {
        match self.state {
            OutState::Negotiating(m) | OutState::Open(m) => Some(m),
            _ => None,
        }
    }
}

pub struct Peer {
    pub id: u64,
    pub call: String,
    pub user: UserId,
    pub conn: u64,
    pub rtc: Rtc,
    pub pending: Option<SdpPendingOffer>,
    /// What the participant said each of its mids carries.
    pub sources: HashMap<String, SfuSource>,
    pub ins: Vec<TrackIn>,
    pub outs: Vec<TrackOut>,
    /// The videos it shows (`call_sfu_view`); `None` until it sends one.
    pub view: Option<HashMap<(UserId, SfuSource), SfuLayer>>,
    /// The bandwidth estimate towards it, bits per second.
    pub estimate_bps: Option<u64>,
    /// Bytes received from it in the current second, and when that second started.
    pub ingress: (Instant, u64),
    /// Over `calls.sfu_max_kbps` in the last full second: its top layer is not forwarded.
    pub capped: bool,
    pub next_timeout: Instant,
    /// It got input or media to send since it was last polled.
    pub dirty: bool,
    /// Since when ICE has been disconnected.
    pub disconnected_since: Option<Instant>,
}

impl Peer {
    pub fn new(id: u64, call: String, user: UserId, conn: u64, rtc: Rtc, now: Instant) -> Peer {
        Peer {
            id,
            call,
            user,
            conn,
            rtc,
            pending: None,
            sources: HashMap::new(),
            ins: Vec::new(),
            outs: Vec::new(),
            view: None,
            estimate_bps: None,
            ingress: (now, 0),
            capped: false,
            next_timeout: now,
            dirty: true,
            disconnected_since: None,
        }
    }

    /// What this participant asks of `user`'s `source`: audio always flows; videos as its view
    /// says, and before it sent one, every camera small and every screen large.
    pub fn wanted(&self, user: UserId, source: SfuSource) -> Option<SfuLayer> {
        match (source, &self.view) {
            (SfuSource::Audio, _) | (SfuSource::Screen, None) => Some(SfuLayer::High),
            (_, Some(view)) => view.get(&(user, source)).copied(),
            (SfuSource::Camera, None) => Some(SfuLayer::Low),
        }
    }

    /// Each shown video's share of the bandwidth estimate.
    pub fn budget_per_video(&self) -> Option<u64> {
        let shown = match &self.view {
            Some(v) => v.len(),
            None => self.outs.iter().filter(|o| o.source != SfuSource::Audio).count(),
        };
        self.estimate_bps.map(|b| b / shown.max(1) as u64)
    }

    /// Counts `bytes` received; returns whether the cap state changed.
    pub fn count_ingress(&mut self, bytes: usize, now: Instant, max_bps: u64) -> bool {
        let (start, n) = &mut self.ingress;
        if now.saturating_duration_since(*start) >= Duration::from_secs(1) {
            let was = self.capped;
            self.capped = *n * 8 > max_bps;
            *start = now;
            *n = 0;
            return was != self.capped;
        }
        *n += bytes as u64;
        false
    }

    /// The media kind of a source.
    pub fn kind_of(source: SfuSource) -> MediaKind {
        if source == SfuSource::Audio { MediaKind::Audio } else { MediaKind::Video }
    }

    /// Starts an offer for the tracks to add or stop, unless one is outstanding; `live` are the
    /// tracks in that still exist, by (peer, mid). Returns the frame to send.
    pub fn negotiate(&mut self, live: &HashSet<(u64, Mid)>) -> Option<ServerFrame> {
        if self.pending.is_some() {
            return None;
        }
        // Tracks gone before they were ever offered need no negotiation; open ones are stopped.
        self.outs.retain(|o| o.state != OutState::ToOpen || live.contains(&(o.from, o.from_mid)));
        for out in &mut self.outs {
            if let OutState::Open(m) = out.state
                && !live.contains(&(out.from, out.from_mid))
            {
                out.state = OutState::ToStop(m);
            }
        }
        let mut change = self.rtc.sdp_api();
        for out in &mut self.outs {
            match out.state {
                OutState::ToOpen => {
                    let stream = format!("u{}", out.user.0);
                    let track = format!("{}-{}", stream, source_name(out.source));
                    let mid = change.add_media(Peer::kind_of(out.source), Direction::SendOnly, Some(stream), Some(track), None);
                    out.state = OutState::Negotiating(mid);
                }
                OutState::ToStop(m) => {
                    change.stop_media(m);
                    out.state = OutState::NegotiatingStop(m);
                }
                _ => {}
            }
        }
        if !change.has_changes() {
            return None;
        }
        let (offer, pending) = change.apply()?;
        self.pending = Some(pending);
        Some(ServerFrame::CallSfuOffer { call: self.call.clone(), sdp: offer.to_sdp_string(), tracks: self.track_list() })
    }

    /// What the participant receives, by the mids of its connection.
    pub fn track_list(&self) -> Vec<SfuTrack> {
        self.outs.iter().filter_map(|o| o.listed_mid().map(|m| SfuTrack { mid: m.to_string(), user: o.user, source: o.source })).collect()
    }

    /// The participant's own offer arrived: a pending server offer is void, and its changes
    /// are offered again once this one is answered.
    pub fn offer_crossed(&mut self) {
        self.pending = None;
        for out in &mut self.outs {
            match out.state {
                OutState::Negotiating(_) => out.state = OutState::ToOpen,
                OutState::NegotiatingStop(m) => out.state = OutState::ToStop(m),
                _ => {}
            }
        }
    }

    /// The participant answered the server's offer.
    pub fn answered(&mut self) {
        for out in &mut self.outs {
            if let OutState::Negotiating(m) = out.state {
                out.state = OutState::Open(m);
            }
        }
        self.outs.retain(|o| !matches!(o.state, OutState::NegotiatingStop(_)));
    }
}

pub fn source_name(s: SfuSource) -> &'static str {
    match s {
        SfuSource::Audio => "audio",
        SfuSource::Camera => "camera",
        SfuSource::Screen => "screen",
    }
}
