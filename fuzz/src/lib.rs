//! The properties the fuzz targets check, one function per target, each taking the raw input.
//!
//! This file is also compiled into the main crate's `tests/hostile_input.rs`, which replays the
//! committed corpus (`fuzz/corpus/<target>/`) and mutations of it through the same functions,
//! so `cargo test` checks every property without libFuzzer. It may therefore use only what the
//! `chinwag` package itself depends on (serde_json, redb, stun, turn, tokio).
//!
//! Each function panics when a property breaks; a panic inside the library under test is a
//! finding too.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use chinwag::calls::filter::PeerFilter;
use chinwag::calls::signal::{Effect, MediaState, Registry, Settings, Signal};
use chinwag::calls::turn::{decode_xor_address, xor_peer_addresses};
use chinwag::ids::{ConvId, UserId, Username};
use chinwag::protocol::{CallMedia, ClientFrame, IceCandidate, MAX_CLIENT_ID, ServerFrame};
use chinwag::store::search::{self, MAX_TOKENS, QueryToken};
use redb::{Key, Value};

/// Reads an input a byte or a number at a time; past the end everything is 0, so every input
/// decodes to something.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |n, _| (n << 8) | u64::from(self.byte()))
    }

    /// Up to `max` bytes as text (lossy, so any input is usable).
    fn text(&mut self, max: usize) -> String {
        let n = usize::from(self.byte()) % (max + 1);
        let n = n.min(self.0.len());
        let (t, rest) = self.0.split_at(n);
        self.0 = rest;
        String::from_utf8_lossy(t).into_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// client_frame: a WebSocket text frame as the socket loop decodes it.

/// `ClientFrame::decode` never panics; a decoded frame survives the first checks a feature runs
/// and re-encodes to JSON that decodes to the same frame; a refusal is a `bad_frame` error whose
/// `client_id`, when present, is the one the client sent.
pub fn client_frame(data: &[u8]) {
    // The socket hands over text frames only (tungstenite checks UTF-8 before we see them).
    let Ok(text) = std::str::from_utf8(data) else { return };
    match ClientFrame::decode(text) {
        Ok(frame) => {
            if let ClientFrame::Send { client_id, content, .. } = &frame {
                // What `chat::send` does before any I/O.
                let _ = content.validate_from_client();
                let _ = content.preview();
                let shown: String = client_id.chars().take(MAX_CLIENT_ID).collect();
                assert!(shown.chars().count() <= MAX_CLIENT_ID);
            }
            let json = serde_json::to_string(&frame).expect("a decoded frame serializes");
            match ClientFrame::decode(&json) {
                Ok(again) => assert_eq!(again, frame, "re-encoded as {json}"),
                Err(e) => panic!("a decoded frame re-encoded as {json} does not decode: {e:?}"),
            }
        }
        Err(answer) => {
            let ServerFrame::Error { client_id, code, message } = *answer else {
                panic!("decode refused with a frame that is not an error: {answer:?}");
            };
            assert_eq!(code, "bad_frame");
            // Echoed exactly as sent (however long: the frame size limit bounds it), so that the
            // client can match the refusal to its message.
            if let Some(c) = &client_id {
                let sent: serde_json::Value = serde_json::from_str(text).expect("a client_id is only echoed from JSON");
                assert!(!c.is_empty() && sent["client_id"] == c.as_str(), "{client_id:?}");
            }
            let answer = ServerFrame::Error { client_id, code, message }.to_json();
            let v: serde_json::Value = serde_json::from_str(&answer).expect("the error frame is JSON");
            assert_eq!(v["type"], "error");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// call_signal: call frames from several devices, connects, drops and timers, in any order,
// through the pure call state machine.

const RING: Duration = Duration::from_secs(45);
const MAX_PARTICIPANTS: usize = 3;

/// Conversations of the model: users 1 to 5, three 1:1 chats and two groups.
fn conversations() -> Vec<(ConvId, bool, Vec<UserId>)> {
    let u = |n: &[u64]| n.iter().map(|n| UserId(*n)).collect::<Vec<_>>();
    vec![
        (ConvId::Direct(UserId(1), UserId(2)), false, u(&[1, 2])),
        (ConvId::Direct(UserId(1), UserId(3)), false, u(&[1, 3])),
        (ConvId::Direct(UserId(4), UserId(5)), false, u(&[4, 5])),
        (ConvId::Group(1), true, u(&[1, 2, 3, 4, 5])),
        (ConvId::Group(2), true, u(&[2, 3, 4])),
    ]
}

struct Model {
    reg: Registry,
    convs: Vec<(ConvId, bool, Vec<UserId>)>,
    /// Every connection ever opened and its user; the open ones.
    owner: HashMap<u64, UserId>,
    open: Vec<u64>,
    next_conn: u64,
    /// Ids of every call started (live or ended), and the ring timers the machine asked for.
    calls: Vec<String>,
    timers: Vec<(String, tokio::time::Instant)>,
    now: tokio::time::Instant,
}

impl Model {
    /// The call id input `b` names: mostly one that exists or existed, sometimes a made-up one.
    fn call_id(&self, b: u8) -> String {
        if self.calls.is_empty() || b >= 240 { format!("bogus{b}") } else { self.calls[usize::from(b) % self.calls.len()].clone() }
    }

    /// A call frame a device could send, built from the input; encoded and decoded as the socket
    /// would, so the machine only ever sees frames that made it through `ClientFrame::decode`.
    fn frame(&self, inp: &mut Input) -> ClientFrame {
        let call = self.call_id(inp.byte());
        let to = UserId(1 + u64::from(inp.byte() % 6));
        let frame = match inp.byte() % 10 {
            0 => ClientFrame::CallInvite {
                conv: self.convs[usize::from(inp.byte()) % self.convs.len()].0,
                media: if inp.byte().is_multiple_of(2) { CallMedia::Audio } else { CallMedia::Video },
            },
            1 => ClientFrame::CallAccept { call },
            2 => ClientFrame::CallReject { call },
            3 => ClientFrame::CallCancel { call },
            4 => ClientFrame::CallHangup { call },
            5 => {
                if inp.byte().is_multiple_of(2) {
                    ClientFrame::CallJoin { call }
                } else {
                    ClientFrame::CallConnected { call }
                }
            }
            6 => {
                let b = inp.byte();
                ClientFrame::CallMediaState { call, muted: b & 1 != 0, camera_off: b & 2 != 0, screen_sharing: b & 4 != 0 }
            }
            7 => ClientFrame::CallOffer { call, to, sdp: inp.text(32) },
            8 => ClientFrame::CallAnswer { call, to, sdp: inp.text(32) },
            _ => ClientFrame::CallCandidate {
                call,
                to,
                candidate: IceCandidate {
                    candidate: inp.text(32),
                    sdp_mid: Some("0".into()),
                    sdp_mline_index: Some(0),
                    username_fragment: None,
                },
            },
        };
        let json = serde_json::to_string(&frame).expect("frames serialize");
        let decoded = ClientFrame::decode(&json).unwrap_or_else(|e| panic!("{json} does not decode: {e:?}"));
        assert_eq!(decoded, frame);
        decoded
    }

    fn members(&self, conv: ConvId) -> Option<&(ConvId, bool, Vec<UserId>)> {
        self.convs.iter().find(|c| c.0 == conv)
    }

    /// What `Calls::handle` does with a frame from `user`'s connection `conn`, with the model's
    /// membership standing in for `chat::access`. `None`: refused before the machine saw it.
    fn dispatch(&mut self, user: UserId, conn: u64, frame: ClientFrame) -> Option<Result<Vec<Effect>, chinwag::outcome::Refusal>> {
        let now = self.now;
        let r = &mut self.reg;
        Some(match frame {
            ClientFrame::CallInvite { conv, media } => {
                let (_, group, members) = self.convs.iter().find(|c| c.0 == conv)?.clone();
                if !members.contains(&user) {
                    return None;
                }
                let id = format!("c{}", self.calls.len());
                self.calls.push(id.clone());
                r.invite(id, user, conn, conv, group, &members, media, now)
            }
            ClientFrame::CallAccept { call } => r.accept(&call, user, conn, false, now),
            ClientFrame::CallJoin { call } => {
                let conv = r.conv_of(&call)?;
                if !self.convs.iter().any(|c| c.0 == conv && c.2.contains(&user)) {
                    return None;
                }
                r.accept(&call, user, conn, true, now)
            }
            ClientFrame::CallReject { call } => r.reject(&call, user, now),
            ClientFrame::CallCancel { call } => r.cancel(&call, user, conn, now),
            ClientFrame::CallHangup { call } => r.hangup(&call, user, conn, now),
            ClientFrame::CallConnected { call } => r.media_connected(&call, user, conn, now),
            ClientFrame::CallMediaState { call, muted, camera_off, screen_sharing } => {
                r.media_state(&call, user, conn, MediaState { muted, camera_off, screen_sharing })
            }
            ClientFrame::CallOffer { call, to, sdp } => r.signal(&call, user, conn, to, Signal::Offer(sdp)),
            ClientFrame::CallAnswer { call, to, sdp } => r.signal(&call, user, conn, to, Signal::Answer(sdp)),
            ClientFrame::CallCandidate { call, to, candidate } => r.signal(&call, user, conn, to, Signal::Candidate(candidate)),
            _ => unreachable!("the model builds call frames only"),
        })
    }

    fn live_calls(&self) -> HashSet<String> {
        self.calls.iter().filter(|id| self.reg.conv_of(id).is_some()).cloned().collect()
    }

    /// Checks one step's effects against the state before (`before`: live calls) and after it.
    /// `dropped`: a connection that just closed, which may still be told its call ended.
    fn check(&mut self, effects: &[Effect], before: &HashSet<String>, dropped: Option<u64>) {
        if let Err(e) = self.reg.check_invariants() {
            panic!("invariant broken: {e}");
        }
        let after = self.live_calls();
        let ended = before.difference(&after).count();
        let started = after.difference(before).count();
        let mut logs = 0;
        for effect in effects {
            match effect {
                Effect::ToConn { user, conn, frame } => {
                    assert_eq!(self.owner.get(conn), Some(user), "a frame for {user} went to connection {conn} of someone else");
                    let open = self.open.contains(conn);
                    let goodbye = matches!(frame, ServerFrame::CallEnded { .. }) && dropped == Some(*conn);
                    assert!(open || goodbye, "{frame:?} to closed connection {conn}");
                    if let ServerFrame::CallAccepted { participants, .. } = frame {
                        let unique: HashSet<_> = participants.iter().collect();
                        assert_eq!(unique.len(), participants.len(), "one user twice in a call: {participants:?}");
                        assert!(participants.len() <= MAX_PARTICIPANTS);
                    }
                }
                Effect::Timer { call, at } => {
                    assert!(after.contains(call), "a timer for {call}, which is not going on");
                    assert_eq!(*at, self.now + RING);
                    self.timers.push((call.clone(), *at));
                }
                Effect::Log { conv, .. } => {
                    assert!(self.members(*conv).is_some());
                    logs += 1;
                }
                Effect::Ring { caller: (user, conn), .. } => {
                    assert_eq!(self.owner.get(conn), Some(user));
                    assert!(self.open.contains(conn), "ringing for a closed connection");
                }
                Effect::ToUsers { .. } => {}
                Effect::SfuAdmit { .. } | Effect::SfuLeave { .. } | Effect::SfuClose { .. } => {
                    panic!("an SFU effect from a registry without an SFU: {effect:?}");
                }
            }
        }
        // Every call that ends is recorded once; a busy 1:1 invite is recorded without starting.
        let busy = effects.iter().any(|e| {
            matches!(e, Effect::ToConn { frame: ServerFrame::CallEnded { reason: chinwag::protocol::CallEndReason::Busy, .. }, .. })
        });
        assert_eq!(logs, ended + usize::from(busy), "records: {logs}, ended: {ended}, busy: {busy}, effects: {effects:?}");
        assert!(started <= 1);
    }
}

/// Runs the input as a sequence of steps through [`Registry`], checking its invariants
/// (`Registry::check_invariants`: one device per user per call, a user in one call at a time,
/// at most the maximum in a call, only the caller before an answer) and the effects of each
/// step: frames go only to open connections of their own user, every ended call is recorded
/// exactly once, timers are asked for live calls only.
pub fn call_signal(data: &[u8]) {
    let mut inp = Input(data);
    let start = tokio::time::Instant::now();
    let mut m = Model {
        reg: Registry::new(Settings {
            ring_timeout: RING,
            max_participants: MAX_PARTICIPANTS,
            sfu_from: None,
            sfu_max_video: 16,
            sfu_max_audio: 50,
        }),
        convs: conversations(),
        owner: HashMap::new(),
        open: Vec::new(),
        next_conn: 1,
        calls: Vec::new(),
        timers: Vec::new(),
        now: start,
    };
    let mut steps = 0;
    while !inp.is_empty() && steps < 1000 {
        steps += 1;
        let before = m.live_calls();
        let op = inp.byte();
        let (effects, dropped) = match op % 8 {
            // A device of a user connects: it rings for the calls ringing for its user.
            0 => {
                let user = UserId(1 + u64::from(inp.byte() % 5));
                let conn = m.next_conn;
                m.next_conn += 1;
                m.owner.insert(conn, user);
                m.open.push(conn);
                (m.reg.connected(user, conn), None)
            }
            // An open connection closes.
            1 => {
                if m.open.is_empty() {
                    continue;
                }
                let conn = m.open.remove(usize::from(inp.byte()) % m.open.len());
                (m.reg.disconnected(m.owner[&conn], conn, m.now), Some(conn))
            }
            // Time passes; the ring timers that are due fire, as the transport's timer tasks do.
            2 => {
                m.now += Duration::from_secs(u64::from(inp.byte() % 64));
                let now = m.now;
                let (due, later): (Vec<_>, Vec<_>) = m.timers.drain(..).partition(|(_, at)| *at <= now);
                m.timers = later;
                (due.iter().flat_map(|(id, _)| m.reg.timeout(id, now)).collect(), None)
            }
            // A timer fires for any call at any time (early, late, twice): the machine must cope.
            3 => {
                let id = m.call_id(inp.byte());
                (m.reg.timeout(&id, m.now), None)
            }
            // A call frame from an open connection.
            _ => {
                if m.open.is_empty() {
                    continue;
                }
                let conn = m.open[usize::from(inp.byte()) % m.open.len()];
                let user = m.owner[&conn];
                let frame = m.frame(&mut inp);
                match m.dispatch(user, conn, frame) {
                    Some(Ok(effects)) => (effects, None),
                    Some(Err(_)) | None => (Vec::new(), None),
                }
            }
        };
        m.check(&effects, &before, dropped);
    }
    // Whatever happened, dropping every connection and letting every timer fire ends every call.
    while let Some(conn) = m.open.pop() {
        let before = m.live_calls();
        let effects = m.reg.disconnected(m.owner[&conn], conn, m.now);
        m.check(&effects, &before, Some(conn));
    }
    m.now += RING;
    let before = m.live_calls();
    let effects: Vec<Effect> = before.iter().flat_map(|id| m.reg.timeout(id, m.now)).collect();
    m.check(&effects, &before, None);
    assert!(m.reg.is_empty(), "calls left with nobody connected");
}

// ---------------------------------------------------------------------------------------------
// keys: conversation ids (wire form and store key), usernames, search tokens and the redb
// tuple keys built from them.

/// The store's order of two message keys `(conversation key, seq)`, from their encoded bytes.
fn message_order(a: (u64, u64, u64), b: (u64, u64, u64)) -> std::cmp::Ordering {
    type K = (u64, u64, u64);
    <K as Key>::compare(&<K as Value>::as_bytes(&a), &<K as Value>::as_bytes(&b))
}

/// The store's order of two search keys `(token, conversation key, seq)`.
fn search_order(a: (&str, u64, u64, u64), b: (&str, u64, u64, u64)) -> std::cmp::Ordering {
    type K = (&'static str, u64, u64, u64);
    <K as Key>::compare(&<K as Value>::as_bytes(&a), &<K as Value>::as_bytes(&b))
}

/// A valid conversation id from numbers (users and groups start at 1).
fn conv_from(kind: u8, a: u64, b: u64) -> ConvId {
    if kind.is_multiple_of(2) {
        ConvId::Group(a.max(1))
    } else {
        let a = a.clamp(1, u64::MAX - 1);
        ConvId::direct(UserId(a), UserId(b.max(1))).unwrap_or(ConvId::Direct(UserId(a), UserId(a + 1)))
    }
}

/// Text inputs: parsing a conversation id never panics and accepts one spelling per id (what it
/// accepts prints back as the same text, and maps to a store key and back); usernames parse to a
/// normal form that parses to itself; a text is found by searching for itself, and every token
/// lies inside the range scan of each of its prefixes. Number inputs: conversation ids survive
/// wire form, JSON and store key, and the store's byte order of message and search keys is the
/// order of the tuples, so one conversation's messages are contiguous and in seq order.
pub fn keys(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = text.parse::<ConvId>() {
            assert_eq!(c.to_string(), text, "two spellings of one conversation id");
            assert_eq!(ConvId::from_key(c.key()), c);
        }
        if let Some(u) = Username::parse(text) {
            assert_eq!(Username::parse(u.as_str()).as_ref(), Some(&u));
            assert!((3..=32).contains(&u.as_str().len()));
        }
        let indexed = search::index_tokens(text);
        assert!(indexed.len() <= MAX_TOKENS);
        if indexed.len() < MAX_TOKENS {
            for q in search::query_tokens(text) {
                match q {
                    QueryToken::Exact(t) => assert!(indexed.contains(&t), "{text:?}: {t:?} not indexed"),
                    QueryToken::Prefix(p) => assert!(indexed.iter().any(|t| t.starts_with(&p)), "{text:?}: nothing starts with {p:?}"),
                }
            }
        }
        for t in &indexed {
            assert!(!t.is_empty());
            for (i, _) in t.char_indices().skip(1).chain([(t.len(), ' ')]) {
                let p = &t[..i];
                let end = search::prefix_end(p);
                let key = (t.as_str(), 7, 9, 42);
                assert_ne!(search_order((p, 0, 0, 0), key), std::cmp::Ordering::Greater, "{t:?} before its prefix {p:?}");
                assert_eq!(search_order(key, (end.as_str(), 0, 0, 0)), std::cmp::Ordering::Less, "{t:?} past the scan of {p:?}");
            }
        }
    }
    let mut inp = Input(data);
    let (k1, a1, b1, s1) = (inp.byte(), inp.u64(), inp.u64(), inp.u64());
    let (k2, a2, b2, s2) = (inp.byte(), inp.u64(), inp.u64(), inp.u64());
    let (c1, c2) = (conv_from(k1, a1, b1), conv_from(k2, a2, b2));
    for c in [c1, c2] {
        assert_eq!(c.to_string().parse::<ConvId>(), Ok(c));
        assert_eq!(ConvId::from_key(c.key()), c);
        let json = serde_json::to_string(&c).expect("conversation ids serialize");
        assert_eq!(serde_json::from_str::<ConvId>(&json).ok(), Some(c), "{json}");
    }
    let (x1, x2) = (c1.key(), c2.key());
    let (m1, m2) = ((x1.0, x1.1, s1), (x2.0, x2.1, s2));
    assert_eq!(message_order(m1, m2), m1.cmp(&m2), "{m1:?} vs {m2:?}");
    if c1 != c2 {
        // Contiguous: where another conversation's messages fall does not depend on seqs.
        let low = message_order((x1.0, x1.1, 0), (x2.0, x2.1, u64::MAX));
        let high = message_order((x1.0, x1.1, u64::MAX), (x2.0, x2.1, 0));
        assert_eq!(low, high);
        assert_eq!(message_order(m1, m2), low);
    }
    let (t1, t2) = (inp.text(8), inp.text(8));
    let (p1, p2) = ((t1.as_str(), x1.0, x1.1, s1), (t2.as_str(), x2.0, x2.1, s2));
    assert_eq!(search_order(p1, p2), p1.cmp(&p2), "{p1:?} vs {p2:?}");
}

// ---------------------------------------------------------------------------------------------
// turn_message: a datagram as the TURN screening decodes it.

/// Decoding a STUN message and its XOR-PEER-ADDRESS attributes never panics; whenever the
/// screening's decoder and the one the `turn` crate later uses both read an address from the
/// same attribute, they read the same address (otherwise the filter would judge one peer and
/// the relay would use another); the filter gives a verdict on anything decoded.
pub fn turn_message(data: &[u8]) {
    use stun::message::{Getter, Message};
    let filter = PeerFilter::default();
    let tid: [u8; 12] = std::array::from_fn(|i| data.get(i).copied().unwrap_or(0));
    if let Some(addr) = decode_xor_address(data, &tid) {
        let _ = filter.allows(addr);
    }
    let mut m = Message { raw: data.to_vec(), ..Message::default() };
    if m.decode().is_err() {
        return;
    }
    let ours = xor_peer_addresses(&m);
    for addr in ours.iter().flatten() {
        let _ = filter.allows(*addr);
    }
    let mut theirs = turn::proto::peeraddr::PeerAddress::default();
    if theirs.get_from(&m).is_ok() {
        let first: Option<SocketAddr> = ours.first().copied().flatten();
        if let Some(ours) = first {
            assert_eq!(ours, SocketAddr::new(theirs.ip, theirs.port), "the screening and the relay read different peers");
        }
    }
}
