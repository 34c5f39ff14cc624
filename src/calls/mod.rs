//! Audio and video calls: signalling over the WebSocket, the call record in the conversation,
//! and the embedded TURN/STUN relay with its credentials and peer filter.
//!
//! - [`signal`]: the call state machine, pure (typed input, effects out), unit-tested.
//! - [`Calls`] (here): the transport around it. It checks who may call (`chat::access`),
//!   feeds the machine, and carries out its effects: frames through the hub, the `call` message
//!   through the store, ring timers as tasks.
//! - [`turn`]: the TURN server; [`filter`]: which peers it may relay to; [`credentials`]: the
//!   time-limited TURN REST credentials; [`routes`]: `GET /api/calls/ice-servers`.
//!
//! - [`sfu`]: the selective forwarding unit that carries group calls (one UDP media port).
//!
//! Architecture invariant: 1:1 and mesh calls never pass media through the chat server (it only
//! relays their signalling); group calls through the SFU do, decrypted and encrypted again per
//! receiver, on the one media port, and only for the current participants. The TURN relay never
//! reaches a non-public address unless `turn.allow_peers` opens it.

pub mod credentials;
pub mod filter;
pub mod routes;
pub mod sfu;
pub mod signal;
pub mod turn;

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::chat::{self, Want};
use crate::config::{Config, LiveConfig};
use crate::http::ratelimit::Limiter;
use crate::hub::{Frame, Hub};
use crate::ids::{ConvId, UserId};
use crate::outcome::Refusal;
use crate::protocol::{CallMedia, ClientFrame, Content, Message, ServerFrame};
use crate::push::Push;
use crate::store::Store;
use crate::store::messages::Extras;
use sfu::Sfu;
use signal::{Effect, MediaState, Registry, Settings, Signal};

pub use self::turn::TurnInfo;

/// Groups larger than this cannot start a call: every member's devices would ring.
pub const MAX_GROUP_FOR_CALLS: usize = 500;

/// `RTCConfiguration.iceTransportPolicy` for the browsers in a call, given out with the ICE
/// servers: `relay` sends all media through the TURN relay, so that the people in a call never
/// learn each other's addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IceTransportPolicy {
    All,
    Relay,
}

impl IceTransportPolicy {
    /// `relay` when `calls.relay_only` is set and a relay runs; without a relay, forcing it
    /// would make every call fail, so the browsers may then connect directly.
    pub fn of(config: &Config, relay_running: bool) -> IceTransportPolicy {
        if config.calls.relay_only && relay_running { IceTransportPolicy::Relay } else { IceTransportPolicy::All }
    }
}

/// Calls in progress and what carrying them out needs.
pub struct Calls {
    registry: Mutex<Registry>,
    hub: Arc<Hub>,
    store: Store,
    live: LiveConfig,
    shutdown: CancellationToken,
    /// The running TURN server, when there is one.
    pub turn: Option<TurnInfo>,
    /// `GET /api/calls/ice-servers` per user.
    pub ice_limiter: Limiter,
    me: Weak<Calls>,
    /// Rings pushed to closed devices, and withdrawn when the call is answered or over.
    push: Arc<Push>,
    /// The SFU for group calls, unless `calls.sfu` is off or its port could not be opened.
    pub sfu: Option<Sfu>,
}

fn settings(config: &Config, sfu_running: bool) -> Settings {
    Settings {
        ring_timeout: Duration::from_secs(config.calls.ring_timeout_secs),
        max_participants: config.calls.max_group_participants,
        sfu_from: (config.calls.sfu && sfu_running).then_some(config.calls.sfu_from_members),
        sfu_max_video: config.calls.sfu_max_video,
        sfu_max_audio: config.calls.sfu_max_audio,
    }
}

fn refusal_frame(r: &Refusal) -> ServerFrame {
    ServerFrame::error(None, r.code(), r.message())
}

/// A fresh call id: 16 random hex digits (also part of the call record's client id, which
/// must never repeat).
fn new_call_id() -> String {
    let mut raw = [0u8; 8];
    rand::fill(&mut raw);
    hex::encode(raw)
}

impl Calls {
    pub fn new(
        hub: Arc<Hub>,
        store: Store,
        live: LiveConfig,
        shutdown: CancellationToken,
        turn: Option<TurnInfo>,
        push: Arc<Push>,
    ) -> Arc<Calls> {
        let config = live.get();
        let per_10_min = config.calls.ice_servers_per_10_min.max(1);
        let (connected_tx, connected_rx) = tokio::sync::mpsc::channel(1024);
        let sfu = if config.calls.sfu {
            Sfu::start(&config, hub.clone(), connected_tx, shutdown.clone())
                .inspect_err(
                    |e| tracing::error!(error = %e, "the SFU is off; group calls are a mesh of at most calls.max_group_participants"),
                )
                .ok()
        } else {
            None
        };
        let (access_tx, access_rx) = tokio::sync::mpsc::channel(1024);
        hub.watch_access(access_tx);
        let calls = Arc::new_cyclic(|me| Calls {
            registry: Mutex::new(Registry::new(settings(&config, sfu.is_some()))),
            hub,
            store,
            live,
            shutdown,
            turn,
            ice_limiter: Limiter::new(per_10_min, Duration::from_secs(600)),
            me: me.clone(),
            push,
            sfu,
        });
        tokio::spawn(cut_off_loop(Arc::downgrade(&calls), access_rx, calls.shutdown.clone()));
        tokio::spawn(sfu_connected_loop(Arc::downgrade(&calls), connected_rx, calls.shutdown.clone()));
        calls
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the machine with the settings in force, then carries out its effects.
    fn run<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        let config = self.live.get();
        let mut reg = self.registry();
        reg.set_settings(settings(&config, self.sfu.is_some()));
        f(&mut reg)
    }

    /// Handles one call frame from `user`'s connection `conn`; the answer is a frame for that
    /// connection (an error, or the SFU's answer to an offer), if any.
    pub async fn handle(&self, user: UserId, conn: u64, frame: ClientFrame) -> Option<ServerFrame> {
        let now = Instant::now();
        let outcome = match frame {
            ClientFrame::CallInvite { conv, media } => self.invite(user, conn, conv, media, now).await,
            ClientFrame::CallAccept { call } => self.run(|r| r.accept(&call, user, conn, false, now)),
            ClientFrame::CallJoin { call } => self.join(user, conn, &call, now).await,
            ClientFrame::CallReject { call } => self.run(|r| r.reject(&call, user, now)),
            ClientFrame::CallCancel { call } => self.run(|r| r.cancel(&call, user, conn, now)),
            ClientFrame::CallHangup { call } => self.run(|r| r.hangup(&call, user, conn, now)),
            ClientFrame::CallConnected { call } => self.run(|r| r.media_connected(&call, user, conn, now)),
            ClientFrame::CallMediaState { call, muted, camera_off, screen_sharing } => {
                self.run(|r| r.media_state(&call, user, conn, MediaState { muted, camera_off, screen_sharing }))
            }
            ClientFrame::CallOffer { call, to, sdp } => self.run(|r| r.signal(&call, user, conn, to, Signal::Offer(sdp))),
            ClientFrame::CallAnswer { call, to, sdp } => self.run(|r| r.signal(&call, user, conn, to, Signal::Answer(sdp))),
            ClientFrame::CallCandidate { call, to, candidate } => {
                self.run(|r| r.signal(&call, user, conn, to, Signal::Candidate(candidate)))
            }
            ClientFrame::CallSfuOffer { call, sdp, sources } => {
                let sfu = match self.sfu_frame(&call, user, conn) {
                    Ok(sfu) => sfu,
                    Err(r) => return Some(refusal_frame(&r)),
                };
                return Some(match sfu.offer(call.clone(), user, conn, sdp, sources).await {
                    Ok(sdp) => ServerFrame::CallSfuAnswer { call, sdp },
                    Err(r) => refusal_frame(&r),
                });
            }
            ClientFrame::CallSfuAnswer { call, sdp } => self.sfu_frame(&call, user, conn).map(|sfu| {
                sfu.answer(call, user, conn, sdp);
                Vec::new()
            }),
            ClientFrame::CallSfuView { call, videos } => self.sfu_frame(&call, user, conn).map(|sfu| {
                sfu.view(call, user, conn, videos);
                Vec::new()
            }),
            other => {
                tracing::error!(?other, "a non-call frame reached the calls feature");
                return Some(ServerFrame::error(None, "internal", "internal error"));
            }
        };
        match outcome {
            Ok(effects) => {
                self.apply(effects);
                None
            }
            Err(r) => Some(refusal_frame(&r)),
        }
    }

    /// The SFU, when `user`'s device `conn` takes part in SFU call `call`.
    fn sfu_frame(&self, call: &str, user: UserId, conn: u64) -> Result<&Sfu, Refusal> {
        self.registry().sfu_participant(call, user, conn)?;
        self.sfu.as_ref().ok_or(Refusal::NotFound("No such call."))
    }

    /// Who may write to `conv` may have changed: participants of its call who may no longer
    /// write there leave it at once (their SFU session ends with it).
    async fn cut_off(&self, conv: ConvId) {
        let participants = self.registry().participants_in(conv);
        if participants.is_empty() {
            return;
        }
        let config = self.live.get();
        for (call, user, conn) in participants {
            let may = matches!(chat::access(&self.store, &config, user, conv, Want::Write).await, Ok(Ok(_)));
            if !may {
                tracing::info!(%user, %conv, "cut off from a call: may no longer write to its conversation");
                let effects = self.run(|r| r.hangup(&call, user, conn, Instant::now())).unwrap_or_default();
                self.apply(effects);
            }
        }
    }

    async fn invite(&self, user: UserId, conn: u64, conv: ConvId, media: CallMedia, now: Instant) -> Result<Vec<Effect>, Refusal> {
        let config = self.live.get();
        let acc = match chat::access(&self.store, &config, user, conv, Want::Write).await {
            Ok(Ok(a)) => a,
            Ok(Err(r)) => return Err(r),
            Err(e) => {
                tracing::error!(error = %e, "call access check failed");
                return Err(Refusal::Invalid("The call could not be started; try again.".into()));
            }
        };
        let group = acc.role.is_some();
        if group && acc.members.len() > MAX_GROUP_FOR_CALLS {
            return Err(Refusal::Forbidden("Group calls are possible in groups of up to 500 members."));
        }
        let id = new_call_id();
        self.run(|r| r.invite(id, user, conn, conv, group, &acc.members, media, now))
    }

    async fn join(&self, user: UserId, conn: u64, call: &str, now: Instant) -> Result<Vec<Effect>, Refusal> {
        let conv = self.registry().conv_of(call).ok_or(Refusal::NotFound("No such call."))?;
        let config = self.live.get();
        let may = matches!(chat::access(&self.store, &config, user, conv, Want::Write).await, Ok(Ok(_)));
        if !may {
            return Err(Refusal::NotFound("No such call."));
        }
        self.run(|r| r.accept(call, user, conn, true, now))
    }

    /// A device connected: it rings for the calls ringing for its user.
    pub fn connected(&self, user: UserId, conn: u64) {
        let effects = self.registry().connected(user, conn);
        self.apply(effects);
    }

    /// A connection closed: it leaves its calls.
    pub fn disconnected(&self, user: UserId, conn: u64) {
        let effects = self.registry().disconnected(user, conn, Instant::now());
        self.apply(effects);
    }

    /// Calls in progress.
    pub fn active(&self) -> usize {
        self.registry().len()
    }

    fn apply(&self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::ToUsers { users, frame, skip } => {
                    // Answered or over: a pushed ring is withdrawn from closed devices.
                    if let ServerFrame::CallEnded { call, .. } | ServerFrame::CallAccepted { call, .. } = &frame {
                        self.push.call_ended(call);
                    }
                    let f: Frame = Arc::from(frame.to_json());
                    self.hub.deliver(&users, &f, skip);
                }
                Effect::ToConn { user, conn, frame } => {
                    self.hub.send_to_conn(user, conn, &frame);
                }
                Effect::Ring { call, caller, users, frame } => {
                    if let ServerFrame::CallIncoming { conv, from, media, .. } = &frame {
                        self.push.call(&users, &call, *conv, *media == CallMedia::Video, *from);
                    }
                    let f: Frame = Arc::from(frame.to_json());
                    self.hub.deliver(&users, &f, None);
                    for u in users.into_iter().filter(|u| self.hub.is_online(*u)) {
                        self.hub.send_to_conn(caller.0, caller.1, &ServerFrame::CallRinging { call: call.clone(), user: u });
                    }
                }
                Effect::Log { conv, caller, media, outcome, duration_secs } => {
                    let content = Content::Call { media, outcome, duration_secs };
                    let (store, hub, config, push) = (self.store.clone(), self.hub.clone(), self.live.get(), self.push.clone());
                    tokio::spawn(async move { log_call(&store, &hub, &push, &config, conv, caller, content).await });
                }
                Effect::SfuAdmit { call, user, conn } => {
                    if let Some(sfu) = &self.sfu {
                        sfu.admit(&call, user, conn);
                    }
                }
                Effect::SfuLeave { call, user } => {
                    if let Some(sfu) = &self.sfu {
                        sfu.leave(&call, user);
                    }
                }
                Effect::SfuClose { call } => {
                    if let Some(sfu) = &self.sfu {
                        sfu.close(&call);
                    }
                }
                Effect::Timer { call, at } => {
                    let (me, shutdown) = (self.me.clone(), self.shutdown.clone());
                    tokio::spawn(async move {
                        tokio::select! {
                            () = shutdown.cancelled() => {}
                            () = tokio::time::sleep_until(at) => {
                                if let Some(calls) = me.upgrade() {
                                    let effects = calls.registry().timeout(&call, Instant::now());
                                    calls.apply(effects);
                                }
                            }
                        }
                    });
                }
            }
        }
    }
}

/// Cuts people off from calls as changes of who may write where arrive.
async fn cut_off_loop(me: Weak<Calls>, mut rx: tokio::sync::mpsc::Receiver<ConvId>, shutdown: CancellationToken) {
    loop {
        let conv = tokio::select! {
            () = shutdown.cancelled() => return,
            c = rx.recv() => match c { Some(c) => c, None => return },
        };
        let Some(calls) = me.upgrade() else { return };
        calls.cut_off(conv).await;
    }
}

/// Media flows in an SFU call once a participant's session with the SFU connects: the server
/// knows it first-hand, so SFU clients need not send `call_connected`.
async fn sfu_connected_loop(me: Weak<Calls>, mut rx: tokio::sync::mpsc::Receiver<sfu::Connected>, shutdown: CancellationToken) {
    loop {
        let c = tokio::select! {
            () = shutdown.cancelled() => return,
            c = rx.recv() => match c { Some(c) => c, None => return },
        };
        let Some(calls) = me.upgrade() else { return };
        // A session of someone who left meanwhile is no news.
        let _ = calls.run(|r| r.media_connected(&c.call, c.user, c.conn, Instant::now()));
    }
}

/// Writes the call record into its conversation through the store, so that it syncs like any
/// message, and delivers it to every member's devices.
async fn log_call(store: &Store, hub: &Arc<Hub>, push: &Arc<Push>, config: &Config, conv: ConvId, caller: UserId, content: Content) {
    let members = match conv {
        ConvId::Direct(a, b) => vec![a, b],
        ConvId::Group(g) => match store.group(g).await {
            Ok(Some(state)) => state.member_ids(),
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "cannot record a call");
                return;
            }
        },
    };
    let direct = if matches!(conv, ConvId::Group(_)) { Vec::new() } else { members.clone() };
    let client_id = format!("call-{}", new_call_id());
    let (fanout, push) = (hub.clone(), push.clone());
    let deliver = move |m: &Message| {
        let frame: Frame = Arc::from(ServerFrame::message_json(m));
        fanout.deliver(&members, &frame, None);
        push.message(&members, m);
    };
    // The caller's place is checked again as the record is written: a call in a group that was
    // dissolved or disabled meanwhile, or that the caller left, leaves no record there.
    let gate = chat::gate(Want::Record, config.chat.direct_policy);
    match store.append_message(caller, conv, direct, client_id, content, Extras::default(), gate, deliver).await {
        Ok(Ok(_)) => {}
        Ok(Err(r)) => tracing::warn!(?r, "call record refused"),
        Err(e) => tracing::error!(error = %e, "cannot record a call"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_only_is_the_policy_only_when_a_relay_runs() {
        let mut c = Config::default();
        assert_eq!(IceTransportPolicy::of(&c, true), IceTransportPolicy::All, "off by default");
        c.calls.relay_only = true;
        assert_eq!(IceTransportPolicy::of(&c, true), IceTransportPolicy::Relay);
        assert_eq!(IceTransportPolicy::of(&c, false), IceTransportPolicy::All, "no relay: calls may still connect directly");
        assert_eq!(serde_json::to_value(IceTransportPolicy::Relay).unwrap(), "relay");
    }
}
