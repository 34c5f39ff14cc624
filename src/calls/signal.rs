//! The call state machine: typed input in, effects out, no I/O.
//!
//! A call lives here from its invite to its end. The transport (`calls::Calls`) checks who may
//! call (`chat::access`), feeds each input with the current time, and carries out the effects:
//! frames to users or to one connection, the call record for the conversation, and the ring
//! timer, which comes back as [`Registry::timeout`].
//!
//! Rules:
//! - A participant is a (user, connection) pair: only the device that answered takes part, and
//!   signalling goes to that device alone.
//! - Every device of a callee rings; the first to accept wins and the others get
//!   `taken_elsewhere`.
//! - The one who joins sends the offers, to everyone already in the call (1:1 and mesh alike).
//! - A 1:1 call ends when either side hangs up (or drops). A group call ends when nobody is
//!   left, or when one person is left and nobody is ringing any more.
//! - Someone in a call, or ringing for a 1:1 call, is busy for 1:1 calls; busy members are not
//!   rung for group calls.
//! - A group has at most one call: inviting a group whose call goes on joins it.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::ids::{ConvId, UserId};
use crate::outcome::Refusal;
use crate::protocol::{CallEndReason, CallMedia, CallOutcome, IceCandidate, ServerFrame};

/// Settings the machine needs.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub ring_timeout: Duration,
    /// Most people in a mesh call.
    pub max_participants: usize,
    /// Groups with at least this many members call through the SFU; `None`: no SFU.
    pub sfu_from: Option<usize>,
    /// Most people in a video and in an audio call through the SFU.
    pub sfu_max_video: usize,
    pub sfu_max_audio: usize,
}

impl Settings {
    /// Most people in `c`.
    fn max_in(&self, c: &Call) -> usize {
        match (c.group, c.sfu, c.media) {
            (false, _, _) => 2,
            (true, false, _) => self.max_participants.max(1),
            (true, true, CallMedia::Video) => self.sfu_max_video.max(1),
            (true, true, CallMedia::Audio) => self.sfu_max_audio.max(1),
        }
    }
}

/// Something the transport must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Queue `frame` for every device of `users`, except connection `skip`.
    ToUsers { users: Vec<UserId>, frame: ServerFrame, skip: Option<u64> },
    /// Queue `frame` for one connection.
    ToConn { user: UserId, conn: u64, frame: ServerFrame },
    /// Ring `users` with `frame`, and tell the caller's device `call_ringing` for each user who
    /// has a device to ring.
    Ring { call: String, caller: (UserId, u64), users: Vec<UserId>, frame: ServerFrame },
    /// Record the call in its conversation.
    Log { conv: ConvId, caller: UserId, media: CallMedia, outcome: CallOutcome, duration_secs: u64 },
    /// Call [`Registry::timeout`] for `call` at `at`.
    Timer { call: String, at: Instant },
    /// `user` takes part in SFU call `call` from `conn`: the SFU accepts its offers.
    SfuAdmit { call: String, user: UserId, conn: u64 },
    /// `user` left SFU call `call`: its media session ends.
    SfuLeave { call: String, user: UserId },
    /// SFU call `call` ended.
    SfuClose { call: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Participant {
    user: UserId,
    conn: u64,
}

#[derive(Clone, Debug)]
struct Call {
    conv: ConvId,
    group: bool,
    /// Through the SFU rather than a mesh (decided when it starts).
    sfu: bool,
    media: CallMedia,
    caller: UserId,
    ring_deadline: Instant,
    answered_at: Option<Instant>,
    /// When a participant first reported media flowing (`call_connected`): the call's duration
    /// counts from here, and an answered call without it is recorded as failed.
    connected_at: Option<Instant>,
    participants: Vec<Participant>,
    ringing: Vec<UserId>,
    /// The media state each participant last announced, for newcomers.
    states: HashMap<UserId, MediaState>,
}

impl Call {
    fn participant_ids(&self) -> Vec<UserId> {
        self.participants.iter().map(|p| p.user).collect()
    }

    /// How long media flowed; `None` while it never did.
    fn duration(&self, now: Instant) -> Option<u64> {
        self.connected_at.map(|t| now.saturating_duration_since(t).as_secs())
    }
}

/// A WebRTC message for one other participant.
#[derive(Clone, Debug, PartialEq)]
pub enum Signal {
    Offer(String),
    Answer(String),
    Candidate(IceCandidate),
}

/// A participant's microphone, camera and screen-share state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaState {
    pub muted: bool,
    pub camera_off: bool,
    pub screen_sharing: bool,
}

const NO_SUCH_CALL: Refusal = Refusal::NotFound("No such call.");

/// Every call in progress.
#[derive(Debug)]
pub struct Registry {
    settings: Settings,
    calls: HashMap<String, Call>,
}

type Outcome = Result<Vec<Effect>, Refusal>;

impl Registry {
    pub fn new(settings: Settings) -> Registry {
        Registry { settings, calls: HashMap::new() }
    }

    pub fn set_settings(&mut self, settings: Settings) {
        self.settings = settings;
    }

    /// Calls in progress.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The conversation of a call, for the transport's access check before a join.
    pub fn conv_of(&self, call: &str) -> Option<ConvId> {
        self.calls.get(call).map(|c| c.conv)
    }

    /// Checks the rules every state of the machine keeps, whatever inputs led to it; the error
    /// names the broken one. For the fuzz target `call_signal` and the tests: the transport
    /// never needs it.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut in_calls: HashMap<UserId, &str> = HashMap::new();
        for (id, c) in &self.calls {
            if c.participants.is_empty() {
                return Err(format!("{id}: a call with nobody in it is still listed"));
            }
            for (i, p) in c.participants.iter().enumerate() {
                if c.participants[..i].iter().any(|q| q.user == p.user || q.conn == p.conn) {
                    return Err(format!("{id}: {} takes part on more than one device", p.user));
                }
                if let Some(other) = in_calls.insert(p.user, id) {
                    return Err(format!("{} is in two calls, {other} and {id}", p.user));
                }
                if c.ringing.contains(&p.user) {
                    return Err(format!("{id}: {} both rings and takes part", p.user));
                }
            }
            let max = self.settings.max_in(c);
            if c.participants.len() > max {
                return Err(format!("{id}: {} participants, at most {max}", c.participants.len()));
            }
            if c.answered_at.is_none() && (c.participants.len() != 1 || c.participants[0].user != c.caller) {
                return Err(format!("{id}: before an answer only the caller takes part"));
            }
            if c.connected_at.is_some() && c.answered_at.is_none() {
                return Err(format!("{id}: media connected before anyone answered"));
            }
            if c.ringing.contains(&c.caller) || c.ringing.iter().enumerate().any(|(i, u)| c.ringing[..i].contains(u)) {
                return Err(format!("{id}: the ringing list repeats a user or holds the caller"));
            }
            if c.group && self.calls.iter().any(|(other, o)| other != id && o.conv == c.conv) {
                return Err(format!("{id}: two calls in one group"));
            }
        }
        Ok(())
    }

    fn in_call(&self, user: UserId) -> bool {
        self.calls.values().any(|c| c.participants.iter().any(|p| p.user == user))
    }

    fn busy(&self, user: UserId) -> bool {
        self.in_call(user) || self.calls.values().any(|c| !c.group && c.ringing.contains(&user))
    }

    /// `caller` on connection `conn` calls `conv`, whose members are `members` (the caller
    /// included); `group` tells a group conversation from a 1:1 one. `id` is the new call's id.
    #[allow(clippy::too_many_arguments)]
    pub fn invite(
        &mut self,
        id: String,
        caller: UserId,
        conn: u64,
        conv: ConvId,
        group: bool,
        members: &[UserId],
        media: CallMedia,
        now: Instant,
    ) -> Outcome {
        if self.in_call(caller) {
            return Err(Refusal::Conflict("You are already in a call; hang up first."));
        }
        if group && let Some((ongoing, c)) = self.calls.iter().find(|(_, c)| c.conv == conv) {
            // One call per group: calling a group whose call goes on joins that call, so the
            // app's call button works whether or not the member saw it ring.
            let started = ServerFrame::CallStarted { call: ongoing.clone(), conv, media: c.media, sfu: c.sfu };
            let ongoing = ongoing.clone();
            let joined = self.accept(&ongoing, caller, conn, true, now)?;
            return Ok(std::iter::once(Effect::ToConn { user: caller, conn, frame: started }).chain(joined).collect());
        }
        let callees: Vec<UserId> = members.iter().copied().filter(|u| *u != caller).collect();
        let sfu = group && self.settings.sfu_from.is_some_and(|n| members.len() >= n);
        let started = ServerFrame::CallStarted { call: id.clone(), conv, media, sfu };
        if !group && callees.iter().any(|u| self.busy(*u)) {
            let ended = ServerFrame::CallEnded { call: id, reason: CallEndReason::Busy, duration_secs: None };
            return Ok(vec![
                Effect::ToConn { user: caller, conn, frame: started },
                Effect::ToConn { user: caller, conn, frame: ended },
                Effect::Log { conv, caller, media, outcome: CallOutcome::Busy, duration_secs: 0 },
            ]);
        }
        let ringing: Vec<UserId> = callees.into_iter().filter(|u| !group || !self.busy(*u)).collect();
        let at = now + self.settings.ring_timeout;
        let call = Call {
            conv,
            group,
            sfu,
            media,
            caller,
            ring_deadline: at,
            answered_at: None,
            connected_at: None,
            participants: vec![Participant { user: caller, conn }],
            ringing: ringing.clone(),
            states: HashMap::new(),
        };
        let incoming = ServerFrame::CallIncoming { call: id.clone(), conv, from: caller, media, participants: vec![caller], sfu };
        self.calls.insert(id.clone(), call);
        let mut out = vec![Effect::ToConn { user: caller, conn, frame: started }];
        if sfu {
            out.push(Effect::SfuAdmit { call: id.clone(), user: caller, conn });
        }
        out.push(Effect::Ring { call: id.clone(), caller: (caller, conn), users: ringing, frame: incoming });
        out.push(Effect::Timer { call: id, at });
        Ok(out)
    }

    /// A device of `user` connected: it rings for the calls that ring for `user`.
    pub fn connected(&self, user: UserId, conn: u64) -> Vec<Effect> {
        let mut out = Vec::new();
        for (id, c) in &self.calls {
            if c.ringing.contains(&user) {
                let frame = ServerFrame::CallIncoming {
                    call: id.clone(),
                    conv: c.conv,
                    from: c.caller,
                    media: c.media,
                    participants: c.participant_ids(),
                    sfu: c.sfu,
                };
                out.push(Effect::ToConn { user, conn, frame });
                if let Some(p) = c.participants.iter().find(|p| p.user == c.caller) {
                    out.push(Effect::ToConn { user: p.user, conn: p.conn, frame: ServerFrame::CallRinging { call: id.clone(), user } });
                }
            }
        }
        out
    }

    /// `user` answers on `conn`. `may_join` lets a group member who is not ringing (declined, or
    /// came later) join: the transport sets it after its access check.
    pub fn accept(&mut self, id: &str, user: UserId, conn: u64, may_join: bool, now: Instant) -> Outcome {
        let in_other = self.calls.iter().any(|(cid, c)| cid != id && c.participants.iter().any(|p| p.user == user));
        let max = self.calls.get(id).map_or(0, |c| self.settings.max_in(c));
        let c = self.calls.get_mut(id).ok_or(NO_SUCH_CALL)?;
        let was_ringing = c.ringing.contains(&user);
        if c.participants.iter().any(|p| p.user == user) {
            return Err(Refusal::Conflict("You are already in this call."));
        }
        if !(was_ringing || c.group && may_join) {
            return Err(NO_SUCH_CALL);
        }
        if in_other {
            return Err(Refusal::Conflict("You are already in a call; hang up first."));
        }
        if c.participants.len() >= max {
            return Err(Refusal::TooMany("This call is full."));
        }
        c.ringing.retain(|u| *u != user);
        c.participants.push(Participant { user, conn });
        c.answered_at.get_or_insert(now);
        let participants = c.participant_ids();
        let accepted = ServerFrame::CallAccepted { call: id.to_owned(), user, participants, sfu: c.sfu };
        let mut out = vec![Effect::ToUsers {
            users: vec![user],
            frame: ServerFrame::CallEnded { call: id.to_owned(), reason: CallEndReason::TakenElsewhere, duration_secs: None },
            skip: Some(conn),
        }];
        if c.sfu {
            out.push(Effect::SfuAdmit { call: id.to_owned(), user, conn });
        }
        out.extend(c.participants.iter().map(|p| Effect::ToConn { user: p.user, conn: p.conn, frame: accepted.clone() }));
        // The newcomer learns who is muted, has the camera off or shares a screen.
        let mut known: Vec<(&UserId, &MediaState)> = c.states.iter().filter(|(u, _)| **u != user).collect();
        known.sort_by_key(|(u, _)| **u);
        out.extend(known.into_iter().map(|(u, s)| Effect::ToConn { user, conn, frame: media_state_frame(id, *u, *s) }));
        Ok(out)
    }

    /// `user` declines a call that rings for them.
    pub fn reject(&mut self, id: &str, user: UserId, now: Instant) -> Outcome {
        let c = self.calls.get_mut(id).ok_or(NO_SUCH_CALL)?;
        if !c.ringing.contains(&user) {
            return Err(NO_SUCH_CALL);
        }
        c.ringing.retain(|u| *u != user);
        let stop = Effect::ToUsers {
            users: vec![user],
            frame: ServerFrame::CallEnded { call: id.to_owned(), reason: CallEndReason::Declined, duration_secs: None },
            skip: None,
        };
        if c.group && (c.answered_at.is_some() || !c.ringing.is_empty()) {
            return Ok(vec![stop]);
        }
        let mut out = vec![stop];
        out.extend(self.end(id, CallEndReason::Declined, now));
        Ok(out)
    }

    /// The caller stops a call before anyone answered; after an answer it is a hangup.
    pub fn cancel(&mut self, id: &str, user: UserId, conn: u64, now: Instant) -> Outcome {
        let c = self.calls.get(id).ok_or(NO_SUCH_CALL)?;
        if c.caller != user || !c.participants.contains(&Participant { user, conn }) {
            return Err(NO_SUCH_CALL);
        }
        if c.answered_at.is_some() {
            return self.hangup(id, user, conn, now);
        }
        Ok(self.end(id, CallEndReason::Cancelled, now))
    }

    /// `user` leaves the call from `conn`.
    pub fn hangup(&mut self, id: &str, user: UserId, conn: u64, now: Instant) -> Outcome {
        self.leave(id, Participant { user, conn }, CallEndReason::Hangup, now).ok_or(NO_SUCH_CALL)
    }

    /// `user`'s device in the call says media flows to another participant. Only the first
    /// report counts (it starts the duration); later ones, and reports before an answer (no
    /// other participant yet), change nothing.
    pub fn media_connected(&mut self, id: &str, user: UserId, conn: u64, now: Instant) -> Outcome {
        let c = self.calls.get_mut(id).ok_or(NO_SUCH_CALL)?;
        if !c.participants.contains(&Participant { user, conn }) {
            return Err(NO_SUCH_CALL);
        }
        if c.answered_at.is_some() {
            c.connected_at.get_or_insert(now);
        }
        Ok(Vec::new())
    }

    /// A connection closed: it leaves every call it was in.
    pub fn disconnected(&mut self, user: UserId, conn: u64, now: Instant) -> Vec<Effect> {
        let p = Participant { user, conn };
        let ids: Vec<String> = self.calls.iter().filter(|(_, c)| c.participants.contains(&p)).map(|(id, _)| id.clone()).collect();
        ids.iter().flat_map(|id| self.leave(id, p, CallEndReason::ConnectionLost, now).unwrap_or_default()).collect()
    }

    fn leave(&mut self, id: &str, p: Participant, reason: CallEndReason, now: Instant) -> Option<Vec<Effect>> {
        let c = self.calls.get_mut(id)?;
        if !c.participants.contains(&p) {
            return None;
        }
        if c.answered_at.is_none() {
            // Only the caller is in a call nobody answered: leaving it cancels it.
            return Some(self.end(id, CallEndReason::Cancelled, now));
        }
        if !c.group {
            return Some(self.end(id, reason, now));
        }
        c.participants.retain(|q| *q != p);
        c.states.remove(&p.user);
        if c.participants.is_empty() || (c.participants.len() == 1 && c.ringing.is_empty()) {
            let mut out = vec![Effect::ToConn {
                user: p.user,
                conn: p.conn,
                frame: ServerFrame::CallEnded { call: id.to_owned(), reason, duration_secs: c.duration(now) },
            }];
            out.extend(self.end(id, CallEndReason::Hangup, now));
            return Some(out);
        }
        let left = ServerFrame::CallLeft { call: id.to_owned(), user: p.user };
        let mut out: Vec<Effect> =
            c.participants.iter().map(|q| Effect::ToConn { user: q.user, conn: q.conn, frame: left.clone() }).collect();
        if c.sfu {
            out.push(Effect::SfuLeave { call: id.to_owned(), user: p.user });
        }
        out.push(Effect::ToConn {
            user: p.user,
            conn: p.conn,
            frame: ServerFrame::CallEnded { call: id.to_owned(), reason, duration_secs: c.duration(now) },
        });
        Some(out)
    }

    /// The ring timer of `id` fired: whoever still rings stops, and a call nobody answered ends.
    pub fn timeout(&mut self, id: &str, now: Instant) -> Vec<Effect> {
        let Some(c) = self.calls.get_mut(id) else { return Vec::new() };
        if now < c.ring_deadline {
            return Vec::new();
        }
        if c.answered_at.is_none() {
            return self.end(id, CallEndReason::NoAnswer, now);
        }
        let ringing = std::mem::take(&mut c.ringing);
        let mut out = Vec::new();
        if !ringing.is_empty() {
            out.push(Effect::ToUsers {
                users: ringing,
                frame: ServerFrame::CallEnded { call: id.to_owned(), reason: CallEndReason::NoAnswer, duration_secs: None },
                skip: None,
            });
        }
        if c.participants.len() <= 1 {
            out.extend(self.end(id, CallEndReason::Hangup, now));
        }
        out
    }

    /// Relays a WebRTC message from `user`'s device in the call to `to`'s.
    pub fn signal(&self, id: &str, user: UserId, conn: u64, to: UserId, signal: Signal) -> Outcome {
        let c = self.calls.get(id).ok_or(NO_SUCH_CALL)?;
        if !c.participants.contains(&Participant { user, conn }) {
            return Err(NO_SUCH_CALL);
        }
        if c.sfu {
            return Err(Refusal::Invalid("This call goes through the server: send call_sfu_offer.".into()));
        }
        let target =
            c.participants.iter().find(|p| p.user == to && p.user != user).ok_or(Refusal::NotFound("They are not in this call."))?;
        let call = id.to_owned();
        let frame = match signal {
            Signal::Offer(sdp) => ServerFrame::CallOffer { call, from: user, sdp },
            Signal::Answer(sdp) => ServerFrame::CallAnswer { call, from: user, sdp },
            Signal::Candidate(candidate) => ServerFrame::CallCandidate { call, from: user, candidate },
        };
        Ok(vec![Effect::ToConn { user: target.user, conn: target.conn, frame }])
    }

    /// Tells the others in the call about `user`'s microphone, camera and screen.
    pub fn media_state(&mut self, id: &str, user: UserId, conn: u64, state: MediaState) -> Outcome {
        let c = self.calls.get_mut(id).ok_or(NO_SUCH_CALL)?;
        if !c.participants.contains(&Participant { user, conn }) {
            return Err(NO_SUCH_CALL);
        }
        c.states.insert(user, state);
        let frame = media_state_frame(id, user, state);
        Ok(c.participants
            .iter()
            .filter(|p| p.user != user)
            .map(|p| Effect::ToConn { user: p.user, conn: p.conn, frame: frame.clone() })
            .collect())
    }

    /// Whether `user`'s device `conn` takes part in SFU call `id` (for its `call_sfu_*` frames).
    pub fn sfu_participant(&self, id: &str, user: UserId, conn: u64) -> Result<(), Refusal> {
        let c = self.calls.get(id).ok_or(NO_SUCH_CALL)?;
        if !c.participants.contains(&Participant { user, conn }) {
            return Err(NO_SUCH_CALL);
        }
        if !c.sfu {
            return Err(Refusal::Invalid("This call does not go through the server.".into()));
        }
        Ok(())
    }

    /// The calls `user` takes part in, with their conversations, for the cut-off after a change
    /// of who may write where.
    pub fn calls_of(&self, user: UserId) -> Vec<(String, ConvId, u64)> {
        self.calls
            .iter()
            .filter_map(|(id, c)| c.participants.iter().find(|p| p.user == user).map(|p| (id.clone(), c.conv, p.conn)))
            .collect()
    }

    /// The participants of the calls in `conv`.
    pub fn participants_in(&self, conv: ConvId) -> Vec<(String, UserId, u64)> {
        self.calls
            .iter()
            .filter(|(_, c)| c.conv == conv)
            .flat_map(|(id, c)| c.participants.iter().map(move |p| (id.clone(), p.user, p.conn)))
            .collect()
    }

    /// Ends a call for everyone in it or ringing for it, and records it.
    fn end(&mut self, id: &str, reason: CallEndReason, now: Instant) -> Vec<Effect> {
        let Some(c) = self.calls.remove(id) else { return Vec::new() };
        let duration = c.duration(now);
        let frame = ServerFrame::CallEnded { call: id.to_owned(), reason, duration_secs: duration };
        let mut out: Vec<Effect> =
            c.participants.iter().map(|p| Effect::ToConn { user: p.user, conn: p.conn, frame: frame.clone() }).collect();
        if !c.ringing.is_empty() {
            let stop = match reason {
                CallEndReason::NoAnswer => CallEndReason::NoAnswer,
                _ => CallEndReason::Cancelled,
            };
            out.push(Effect::ToUsers {
                users: c.ringing.clone(),
                frame: ServerFrame::CallEnded { call: id.to_owned(), reason: stop, duration_secs: None },
                skip: None,
            });
        }
        let outcome = match (duration, reason) {
            (Some(_), _) => CallOutcome::Answered,
            (None, _) if c.answered_at.is_some() => CallOutcome::Failed,
            (None, CallEndReason::Declined) => CallOutcome::Declined,
            (None, CallEndReason::NoAnswer) => CallOutcome::Missed,
            (None, _) => CallOutcome::Cancelled,
        };
        out.push(Effect::Log { conv: c.conv, caller: c.caller, media: c.media, outcome, duration_secs: duration.unwrap_or(0) });
        if c.sfu {
            out.push(Effect::SfuClose { call: id.to_owned() });
        }
        out
    }
}

fn media_state_frame(id: &str, user: UserId, state: MediaState) -> ServerFrame {
    ServerFrame::CallMediaState {
        call: id.to_owned(),
        user,
        muted: state.muted,
        camera_off: state.camera_off,
        screen_sharing: state.screen_sharing,
    }
}

#[cfg(test)]
mod tests;
