//! The SFU's loop: one task owns the media socket and every participant's session (str0m is
//! sans-I/O), so nothing here takes a lock. It reads datagrams and hands each to the session
//! that accepts it (by ICE credentials, then by the address that completed ICE), drives the
//! sessions' timers, forwards each frame a sender sends to the others in its call at the layer
//! each one gets ([`super::layers`]), relays keyframe requests to the sender, and carries out
//! the commands of the signalling side ([`Command`]).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::config::CryptoProvider;
use str0m::media::{KeyframeRequestKind, MediaData, MediaTime, Mid, Rid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::layers;
use super::peer::{Peer, TrackIn, TrackOut};
use super::speakers::Speakers;
use super::tcp::{self, TcpEvent};
use super::{SfuStats, Sources};
use crate::hub::Hub;
use crate::ids::UserId;
use crate::outcome::Refusal;
use crate::protocol::{ServerFrame, SfuLayer, SfuSource, SfuVideo};

/// A session whose ICE stayed disconnected this long is dropped (the device has to offer again).
const DEAD_AFTER: Duration = Duration::from_secs(60);
/// Keyframe requests for one layer of one track, at most one per this.
const KEYFRAME_EVERY: Duration = Duration::from_millis(500);
/// Largest datagram read.
const READ_BUF: usize = 2048;
/// Most videos one `call_sfu_view` may list.
const MAX_VIEW: usize = 64;
/// Most m-lines a participant's offer may hold: its own three plus what it receives in the
/// largest call, with room for stopped ones.
const MAX_MLINES: usize = 400;

/// What the signalling side asks of the loop.
pub enum Command {
    /// `user` takes part in `call` from connection `conn`: its offers are accepted.
    Admit {
        call: String,
        user: UserId,
        conn: u64,
    },
    /// `user` left `call` (or may no longer be in it): its session ends at once.
    Leave {
        call: String,
        user: UserId,
    },
    /// `call` ended.
    Close {
        call: String,
    },
    Offer {
        call: String,
        user: UserId,
        conn: u64,
        sdp: String,
        sources: Sources,
        reply: oneshot::Sender<Result<String, Refusal>>,
    },
    Answer {
        call: String,
        user: UserId,
        conn: u64,
        sdp: String,
    },
    View {
        call: String,
        user: UserId,
        conn: u64,
        videos: Vec<SfuVideo>,
    },
}

/// A participant's session with the SFU connected (ICE and DTLS done).
#[derive(Debug)]
pub struct Connected {
    pub call: String,
    pub user: UserId,
    pub conn: u64,
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_participants: usize,
    pub max_bps: u64,
    /// Whether the bandwidth estimate towards a receiver may lower its layers.
    pub adapt: bool,
}

pub struct Engine {
    pub socket: UdpSocket,
    /// The address put in every answer, and the destination of every datagram received.
    pub candidate: SocketAddr,
    /// The passive TCP candidate (same address and port), when ICE over TCP is on.
    pub tcp_candidate: Option<SocketAddr>,
    /// Open TCP connections by client address: where to write packets for them.
    tcp: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    pub hub: Arc<Hub>,
    pub crypto: Arc<CryptoProvider>,
    pub limits: Limits,
    pub stats: Arc<SfuStats>,
    /// Where a session's media connecting is told (the call then counts as answered).
    connected: mpsc::Sender<Connected>,
    admitted: HashMap<String, HashMap<UserId, u64>>,
    peers: Vec<Peer>,
    by_addr: HashMap<SocketAddr, u64>,
    speakers: HashMap<String, Speakers>,
    next_id: u64,
    /// Tracks came or went, or a negotiation ended: sessions may need a new offer.
    renegotiate: bool,
}

impl Engine {
    pub fn new(
        socket: UdpSocket,
        candidate: SocketAddr,
        hub: Arc<Hub>,
        crypto: Arc<CryptoProvider>,
        limits: Limits,
        stats: Arc<SfuStats>,
        connected: mpsc::Sender<Connected>,
    ) -> Engine {
        Engine {
            socket,
            candidate,
            tcp_candidate: None,
            tcp: HashMap::new(),
            hub,
            crypto,
            limits,
            stats,
            connected,
            admitted: HashMap::new(),
            peers: Vec::new(),
            by_addr: HashMap::new(),
            speakers: HashMap::new(),
            next_id: 1,
            renegotiate: false,
        }
    }

    /// Runs until `shutdown`; `tcp` brings what the TCP connections of the media port receive.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Command>, mut tcp: Option<mpsc::Receiver<TcpEvent>>, shutdown: CancellationToken) {
        let mut buf = vec![0u8; READ_BUF];
        loop {
            let now = Instant::now();
            self.drive(now);
            let next = self.peers.iter().map(|p| p.next_timeout).min().unwrap_or(now + Duration::from_secs(1));
            let next = next.min(now + super::speakers::MIN_INTERVAL).max(now + Duration::from_millis(1));
            tokio::select! {
                () = shutdown.cancelled() => break,
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => self.receive(Protocol::Udp, &buf[..n], from, self.candidate, Instant::now()),
                    Err(e) => tracing::debug!(error = %e, "SFU socket read"),
                },
                ev = async { match &mut tcp { Some(r) => r.recv().await, None => std::future::pending().await } } => match ev {
                    Some(TcpEvent::Open { from, tx }) => { self.tcp.insert(from, tx); }
                    Some(TcpEvent::Closed { from }) => { self.tcp.remove(&from); }
                    Some(TcpEvent::Packet { from, data }) => {
                        if let Some(to) = self.tcp_candidate {
                            self.receive(Protocol::Tcp, &data, from, to, Instant::now());
                        }
                    }
                    None => tcp = None,
                },
                cmd = rx.recv() => match cmd {
                    Some(c) => self.command(c, Instant::now()),
                    None => break,
                },
                () = tokio::time::sleep_until(tokio::time::Instant::from_std(next)) => {}
            }
        }
        for p in &mut self.peers {
            p.rtc.disconnect();
        }
        self.stats.participants.store(0, Ordering::Relaxed);
    }

    fn receive(&mut self, proto: Protocol, buf: &[u8], from: SocketAddr, destination: SocketAddr, now: Instant) {
        let Ok(contents) = buf.try_into() else { return };
        let input = Input::Receive(now, Receive { proto, source: from, destination, contents });
        let known = self.by_addr.get(&from).and_then(|id| self.peers.iter().position(|p| p.id == *id));
        let idx = known.filter(|i| self.peers[*i].rtc.accepts(&input)).or_else(|| self.peers.iter().position(|p| p.rtc.accepts(&input)));
        let Some(i) = idx else {
            self.stats.unmatched_datagrams.fetch_add(1, Ordering::Relaxed);
            return;
        };
        self.by_addr.insert(from, self.peers[i].id);
        let p = &mut self.peers[i];
        p.dirty = true;
        if let Err(e) = p.rtc.handle_input(input) {
            tracing::debug!(error = %e, user = %p.user, "SFU session input failed; closing it");
            p.rtc.disconnect();
        }
    }

    /// Timers, outputs, forwarding, offers, speakers and cleanup, until every session waits.
    fn drive(&mut self, now: Instant) {
        for p in &mut self.peers {
            if p.next_timeout <= now {
                p.dirty = true;
                if let Err(e) = p.rtc.handle_input(Input::Timeout(now)) {
                    tracing::debug!(error = %e, "SFU session timer failed; closing it");
                    p.rtc.disconnect();
                }
            }
        }
        loop {
            if std::mem::take(&mut self.renegotiate) {
                let live: HashSet<(u64, Mid)> = self.peers.iter().flat_map(|p| p.ins.iter().map(move |t| (p.id, t.mid))).collect();
                for p in &mut self.peers {
                    if let Some(frame) = p.negotiate(&live) {
                        p.dirty = true;
                        self.hub.send_to_conn(p.user, p.conn, &frame);
                    }
                }
            }
            let mut events = Vec::new();
            for i in 0..self.peers.len() {
                if std::mem::take(&mut self.peers[i].dirty) {
                    self.poll(i, &mut events);
                }
            }
            if events.is_empty() && !self.renegotiate {
                break;
            }
            for (id, e) in events {
                self.event(id, e, now);
            }
        }
        let calls: Vec<String> = self.speakers.keys().cloned().collect();
        for call in calls {
            if let Some(list) = self.speakers.get_mut(&call).and_then(|s| s.report(now)) {
                let frame = ServerFrame::CallSfuSpeakers { call: call.clone(), speakers: list };
                for p in self.peers.iter().filter(|p| p.call == call) {
                    self.hub.send_to_conn(p.user, p.conn, &frame);
                }
            }
        }
        let dead: Vec<usize> = (0..self.peers.len())
            .filter(|i| {
                let p = &self.peers[*i];
                !p.rtc.is_alive() || p.disconnected_since.is_some_and(|t| now.saturating_duration_since(t) > DEAD_AFTER)
            })
            .collect();
        for i in dead.into_iter().rev() {
            self.remove(i);
        }
    }

    fn poll(&mut self, i: usize, events: &mut Vec<(u64, Event)>) {
        let p = &mut self.peers[i];
        loop {
            if !p.rtc.is_alive() {
                return;
            }
            match p.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    let sent = if t.proto == Protocol::Tcp {
                        let framed = tcp::frame(&t.contents);
                        self.tcp.get(&t.destination).zip(framed).is_some_and(|(tx, f)| tx.try_send(f).is_ok())
                    } else {
                        self.socket.try_send_to(&t.contents, t.destination).is_ok()
                    };
                    if !sent {
                        self.stats.dropped_sends.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(Output::Timeout(t)) => {
                    p.next_timeout = t;
                    return;
                }
                Ok(Output::Event(e)) => events.push((p.id, e)),
                Err(e) => {
                    tracing::debug!(error = %e, user = %p.user, "SFU session failed; closing it");
                    p.rtc.disconnect();
                    return;
                }
            }
        }
    }

    fn index(&self, id: u64) -> Option<usize> {
        self.peers.iter().position(|p| p.id == id)
    }

    fn event(&mut self, id: u64, event: Event, now: Instant) {
        let Some(i) = self.index(id) else { return };
        match event {
            Event::MediaAdded(m) => {
                self.renegotiate = true;
                if m.direction.is_receiving() {
                    self.track_added(i, m.mid);
                }
            }
            Event::MediaChanged(m) => {
                self.renegotiate = true;
                if m.direction.is_receiving() {
                    self.track_added(i, m.mid);
                } else {
                    self.peers[i].ins.retain(|t| t.mid != m.mid);
                }
            }
            Event::MediaData(d) => self.forward(i, &d, now),
            Event::Connected => {
                let p = &self.peers[i];
                if self.connected.try_send(Connected { call: p.call.clone(), user: p.user, conn: p.conn }).is_err() {
                    tracing::warn!(user = %p.user, "SFU: a connected session could not be told to the calls feature");
                }
            }
            Event::KeyframeRequest(req) => {
                let p = &self.peers[i];
                if let Some(out) = p.outs.iter().find(|o| o.open_mid() == Some(req.mid))
                    && let Some(layer) = out.layer
                {
                    let (from, mid) = (out.from, out.from_mid);
                    if let Some(s) = self.index(from) {
                        self.ask_keyframe(s, mid, layer, req.kind, now);
                    }
                }
            }
            Event::EgressBitrateEstimate(BweKind::Twcc(b)) => {
                tracing::trace!(user = %self.peers[i].user, estimate = b.as_u64(), "SFU: bandwidth estimate");
                self.peers[i].estimate_bps = Some(b.as_u64());
            }
            Event::IceConnectionStateChange(s) => {
                let p = &mut self.peers[i];
                if s == IceConnectionState::Disconnected {
                    p.disconnected_since.get_or_insert(now);
                } else {
                    p.disconnected_since = None;
                }
            }
            _ => {}
        }
    }

    /// A track the participant sends: kept when its offer said what it is, at most one per
    /// source; the others in the call get it offered.
    fn track_added(&mut self, i: usize, mid: Mid) {
        let p = &mut self.peers[i];
        let Some(source) = p.sources.get(&*mid).copied() else {
            tracing::debug!(user = %p.user, %mid, "SFU: a track the offer did not declare; ignored");
            return;
        };
        if p.ins.iter().any(|t| t.mid == mid || t.source == source) {
            return;
        }
        p.ins.push(TrackIn { mid, source, simulcast: false, layers_seen: HashMap::new(), keyframe_asked: HashMap::new() });
        let (id, call, user) = (p.id, p.call.clone(), p.user);
        for q in self.peers.iter_mut().filter(|q| q.call == call && q.id != id) {
            q.outs.push(TrackOut::new(id, mid, user, source));
        }
    }

    /// Forwards one frame from participant `i` to the others in its call.
    fn forward(&mut self, i: usize, d: &MediaData, now: Instant) {
        let (max_bps, adapt) = (self.limits.max_bps, self.limits.adapt);
        let src = &mut self.peers[i];
        src.count_ingress(d.data.len(), now, max_bps);
        let (src_id, user, capped, call) = (src.id, src.user, src.capped, src.call.clone());
        let Some(tin) = src.ins.iter_mut().find(|t| t.mid == d.mid) else { return };
        let layer_in = match &d.rid {
            Some(rid) => {
                tin.simulcast = true;
                match layers::layer_of(rid) {
                    Some(l) => l,
                    None => return,
                }
            }
            None => SfuLayer::High,
        };
        tin.layers_seen.insert(layer_in, now);
        tracing::trace!(from = %user, ?layer_in, rid = ?d.rid, mid = %d.mid, len = d.data.len(), keyframe = d.is_keyframe(), contiguous = d.contiguous, "SFU: frame in");
        let source = tin.source;
        let mut available = tin.available(now);
        if capped && available.len() > 1 {
            available.retain(|l| *l != SfuLayer::High);
        }
        if source == SfuSource::Audio {
            let speakers = self.speakers.entry(call.clone()).or_default();
            if let Some(level) = d.ext_vals.audio_level {
                speakers.observe(user, level, now);
            }
            let size = self.peers.iter().filter(|p| p.call == call).count();
            if !speakers.forwards_audio(user, size, now) {
                return;
            }
        }
        let keyframe = source == SfuSource::Audio || d.is_keyframe();
        let hz = u64::from(d.time.frequency().get());
        let mut wanted_keyframes: Vec<SfuLayer> = Vec::new();
        for q in self.peers.iter_mut().filter(|q| q.call == call && q.id != src_id) {
            let wanted = q.wanted(user, source);
            let budget = if adapt { q.budget_per_video() } else { None };
            let Some(out) = q.outs.iter_mut().find(|o| o.from == src_id && o.from_mid == d.mid) else { continue };
            let Some(mid) = out.open_mid() else { continue };
            let target = if source == SfuSource::Audio { Some(SfuLayer::High) } else { layers::choose(wanted, &available, budget) };
            let Some(target) = target else {
                if out.layer.is_some() {
                    tracing::debug!(to = %q.user, from = %user, ?source, "SFU: paused");
                }
                out.layer = None;
                continue;
            };
            if out.layer != Some(target) {
                if layer_in == target && keyframe {
                    tracing::debug!(to = %q.user, from = %user, ?source, ?target, ?wanted, ?available, ?budget, was = ?out.layer, "SFU: layer switch");
                    out.layer = Some(target);
                    out.clock.restart(d.time.numer(), now, hz);
                } else if !wanted_keyframes.contains(&target) {
                    wanted_keyframes.push(target);
                }
            }
            if out.layer != Some(layer_in) {
                continue;
            }
            let time = MediaTime::new(out.clock.map(d.time.numer(), now), d.time.frequency());
            let Some(writer) = q.rtc.writer(mid) else { continue };
            let Some(pt) = writer.match_params(d.params) else { continue };
            q.dirty = true;
            match writer.write(pt, d.network_time, time, d.data.clone()) {
                Ok(()) => {
                    self.stats.frames_forwarded.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tracing::debug!(error = %e, user = %q.user, "SFU: a frame could not be forwarded"),
            }
        }
        for layer in wanted_keyframes {
            self.ask_keyframe(i, d.mid, layer, KeyframeRequestKind::Pli, now);
        }
    }

    fn ask_keyframe(&mut self, i: usize, mid: Mid, layer: SfuLayer, kind: KeyframeRequestKind, now: Instant) {
        let p = &mut self.peers[i];
        let Some(tin) = p.ins.iter_mut().find(|t| t.mid == mid) else { return };
        if tin.keyframe_asked.get(&layer).is_some_and(|t| now.saturating_duration_since(*t) < KEYFRAME_EVERY) {
            return;
        }
        tin.keyframe_asked.insert(layer, now);
        p.dirty = true;
        let rid = tin.simulcast.then(|| Rid::from(layers::rid_of(layer)));
        if let Some(mut w) = p.rtc.writer(mid)
            && let Err(e) = w.request_keyframe(rid, kind)
        {
            tracing::debug!(error = %e, "SFU: keyframe request failed");
        }
    }

    fn remove(&mut self, i: usize) {
        self.renegotiate = true;
        let mut p = self.peers.swap_remove(i);
        p.rtc.disconnect();
        self.by_addr.retain(|_, id| *id != p.id);
        if let Some(s) = self.speakers.get_mut(&p.call) {
            s.remove(p.user);
        }
        self.stats.participants.store(self.peers.len() as u64, Ordering::Relaxed);
    }

    fn command(&mut self, cmd: Command, now: Instant) {
        match cmd {
            Command::Admit { call, user, conn } => {
                self.admitted.entry(call).or_default().insert(user, conn);
            }
            Command::Leave { call, user } => {
                if let Some(a) = self.admitted.get_mut(&call) {
                    a.remove(&user);
                }
                while let Some(i) = self.peers.iter().position(|p| p.call == call && p.user == user) {
                    self.remove(i);
                }
            }
            Command::Close { call } => {
                self.admitted.remove(&call);
                self.speakers.remove(&call);
                while let Some(i) = self.peers.iter().position(|p| p.call == call) {
                    self.remove(i);
                }
            }
            Command::Offer { call, user, conn, sdp, sources, reply } => {
                let answer = self.offer(&call, user, conn, &sdp, sources, now);
                let _ = reply.send(answer);
            }
            Command::Answer { call, user, conn, sdp } => {
                let Some(p) = self.peers.iter_mut().find(|p| p.call == call && p.user == user && p.conn == conn) else { return };
                let (Some(pending), Ok(answer)) = (p.pending.take(), SdpAnswer::from_sdp_string(&sdp)) else { return };
                p.dirty = true;
                self.renegotiate = true;
                match p.rtc.sdp_api().accept_answer(pending, answer) {
                    Ok(()) => p.answered(),
                    Err(e) => tracing::debug!(error = %e, user = %user, "SFU: an answer was refused"),
                }
            }
            Command::View { call, user, conn, videos } => {
                let Some(p) = self.peers.iter_mut().find(|p| p.call == call && p.user == user && p.conn == conn) else { return };
                let view: HashMap<(UserId, SfuSource), SfuLayer> =
                    videos.iter().take(MAX_VIEW).filter(|v| v.source != SfuSource::Audio).map(|v| ((v.user, v.source), v.layer)).collect();
                tracing::debug!(%user, ?view, "SFU: view");
                let desired: u64 = view.values().map(|l| layers::nominal_bps(*l)).sum();
                p.view = Some(view);
                p.dirty = true;
                p.rtc.bwe().set_desired_bitrate(Bitrate::bps(desired.max(layers::nominal_bps(SfuLayer::Low))));
            }
        }
    }

    fn offer(&mut self, call: &str, user: UserId, conn: u64, sdp: &str, sources: Sources, now: Instant) -> Result<String, Refusal> {
        if self.admitted.get(call).and_then(|a| a.get(&user)) != Some(&conn) {
            return Err(Refusal::NotFound("No such call."));
        }
        if sdp.matches("\nm=").count() > MAX_MLINES {
            return Err(Refusal::Invalid("The offer has too many media lines.".into()));
        }
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|_| Refusal::Invalid("Not a valid session description.".into()))?;
        if let Some(p) = self.peers.iter_mut().find(|p| p.call == call && p.user == user && p.conn == conn) {
            p.dirty = true;
            self.renegotiate = true;
            p.offer_crossed();
            p.sources = sources;
            let answer = p.rtc.sdp_api().accept_offer(offer).map_err(|e| Refusal::Invalid(format!("The offer was refused: {e}")))?;
            return Ok(answer.to_sdp_string());
        }
        if self.peers.len() >= self.limits.max_participants {
            return Err(Refusal::TooMany("The server carries as many group-call participants as it may; try again later."));
        }
        // An older session of the same person in this call (another device, or a restart).
        while let Some(i) = self.peers.iter().position(|p| p.call == call && p.user == user) {
            self.remove(i);
        }
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_opus(true)
            .enable_vp8(true)
            .enable_bwe(Some(Bitrate::kbps(1_000)))
            .set_crypto_provider(self.crypto.clone())
            .build(now);
        let candidate = Candidate::host(self.candidate, "udp").map_err(|e| {
            tracing::error!(error = %e, "the SFU's candidate address is not usable");
            Refusal::Invalid("Group calls are not available on this server now.".into())
        })?;
        rtc.add_local_candidate(candidate);
        if let Some(addr) = self.tcp_candidate
            && let Ok(c) = Candidate::builder().tcp().host(addr).tcptype(str0m::net::TcpType::Passive).build()
        {
            rtc.add_local_candidate(c);
        }
        let answer = rtc.sdp_api().accept_offer(offer).map_err(|e| Refusal::Invalid(format!("The offer was refused: {e}")))?;
        tracing::trace!(offer = sdp, answer = %answer.to_sdp_string(), "SFU: first offer and answer");
        let id = self.next_id;
        self.next_id += 1;
        let mut peer = Peer::new(id, call.to_owned(), user, conn, rtc, now);
        peer.sources = sources;
        for q in self.peers.iter().filter(|q| q.call == call) {
            for t in &q.ins {
                peer.outs.push(TrackOut::new(q.id, t.mid, q.user, t.source));
            }
        }
        // A newcomer learns who speaks now (the others heard it when it changed).
        let speaking = self.speakers.get(call).map(|s| s.current(now)).unwrap_or_default();
        if !speaking.is_empty() {
            self.hub.send_to_conn(user, conn, &ServerFrame::CallSfuSpeakers { call: call.to_owned(), speakers: speaking });
        }
        self.peers.push(peer);
        self.renegotiate = true;
        self.stats.participants.store(self.peers.len() as u64, Ordering::Relaxed);
        Ok(answer.to_sdp_string())
    }
}
