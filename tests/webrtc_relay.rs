//! Two webrtc-rs peers, forced to relay-only, connect through the embedded TURN server and
//! exchange data, with the call set up by Chinwag's own signalling over the WebSocket
//! (`call_invite`, `call_accept`, then `call_offer` / `call_answer` carrying the SDP).
//!
//! This is the proof that the relay, its REST credentials (`/api/calls/ice-servers`) and its
//! peer filter work together for a real WebRTC stack, not only for a bare TURN client
//! (tests/turn.rs): ICE, DTLS and SCTP all run through two allocations.
//!
//! Everything stays on loopback: the relay is advertised on 127.0.0.1, so relaying between the
//! two allocations is relaying to 127.0.0.1, which the filter refuses unless `turn.allow_peers`
//! opens it. The second test shows exactly that refusal making the call fail.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestServer, User, WAIT, Ws};
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceCandidateType, RTCIceGatheringState,
    RTCIceServer, RTCIceTransportPolicy, RTCPeerConnectionState, RTCSessionDescription, RTCStatsReportEntry, SettingEngineBuilder,
    StatsSelector,
};

/// What a peer connection reports, in order.
enum Event {
    State(RTCPeerConnectionState),
    Gathered,
    Channel(Arc<dyn DataChannel>),
}

struct Handler(UnboundedSender<Event>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.0.send(Event::State(state));
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.0.send(Event::Gathered);
        }
    }

    async fn on_data_channel(&self, dc: Arc<dyn DataChannel>) {
        let _ = self.0.send(Event::Channel(dc));
    }
}

struct Peer {
    pc: Arc<dyn PeerConnection>,
    events: UnboundedReceiver<Event>,
}

impl Peer {
    /// A peer configured with the ICE servers and the transport policy the server handed
    /// `user` (relay-only: every server here runs with `calls.relay_only`).
    async fn new(s: &TestServer, user: &User) -> Peer {
        let (st, body) = s.http().get("/api/calls/ice-servers", Some(&user.token)).await;
        assert_eq!(st, 200, "{body}");
        let servers: Vec<RTCIceServer> = body["ice_servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| RTCIceServer {
                urls: e["urls"].as_array().unwrap().iter().map(|u| u.as_str().unwrap().to_owned()).collect(),
                username: e["username"].as_str().unwrap().to_owned(),
                credential: e["credential"].as_str().unwrap().to_owned(),
            })
            .collect();
        assert!(!servers.is_empty(), "the server runs a relay: {body}");
        assert_eq!(body["ice_transport_policy"], "relay", "calls.relay_only is set");
        let config =
            RTCConfigurationBuilder::new().with_ice_servers(servers).with_ice_transport_policy(RTCIceTransportPolicy::Relay).build();
        // Short ICE timers so that the refused case fails in seconds rather than the default 30.
        let settings = SettingEngineBuilder::new()
            .with_ice_timeouts(Some(Duration::from_secs(2)), Some(Duration::from_secs(3)), Some(Duration::from_millis(500)))
            // Relay candidates are all there is: no reason to wait for better ones.
            .with_relay_acceptance_min_wait(Some(Duration::ZERO))
            .build();
        let (tx, events) = unbounded_channel();
        // webrtc's futures are large (about 20 KB); boxed, they stay off the test's stack.
        let pc = Box::pin(
            PeerConnectionBuilder::new()
                .with_configuration(config)
                .with_setting_engine(settings)
                .with_handler(Arc::new(Handler(tx)))
                // The peer's own socket, from which it reaches the TURN server on loopback.
                .with_udp_addrs(vec!["127.0.0.1:0"])
                .build(),
        )
        .await
        .expect("peer connection");
        Peer { pc: Arc::new(pc), events }
    }

    async fn next_event(&mut self, deadline: Instant) -> Event {
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::timeout(left, self.events.recv()).await.expect("a peer event in time").expect("the peer is alive")
    }

    /// Sets `desc` locally and returns the SDP once gathering finished (so it carries the
    /// relay candidates and no trickling is needed).
    async fn gathered_sdp(&mut self, desc: RTCSessionDescription) -> String {
        self.pc.set_local_description(desc).await.unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Event::Gathered = self.next_event(deadline).await {
                break;
            }
        }
        let sdp = self.pc.local_description().await.expect("a local description").sdp;
        assert!(sdp.contains("typ relay"), "relay candidates only:\n{sdp}");
        assert!(!sdp.contains("typ host") && !sdp.contains("typ srflx"), "nothing but relay candidates:\n{sdp}");
        sdp
    }

    /// Waits for `connected` (true) or `failed` (false), whichever comes first, keeping any data
    /// channel the peer was offered.
    async fn outcome(&mut self, within: Duration) -> (bool, Option<Arc<dyn DataChannel>>) {
        let deadline = Instant::now() + within;
        let mut channel = None;
        loop {
            match self.next_event(deadline).await {
                Event::State(RTCPeerConnectionState::Connected) => return (true, channel),
                Event::State(RTCPeerConnectionState::Failed) => return (false, channel),
                Event::Channel(dc) => channel = Some(dc),
                _ => {}
            }
        }
    }

    /// The type of the local candidate of the selected candidate pair, and the pair's bytes
    /// sent and received.
    async fn selected_pair(&self) -> (RTCIceCandidateType, u64, u64) {
        let report = self.pc.get_stats(Instant::now(), StatsSelector::None).await;
        let pair_id = &report.transport().expect("transport stats").selected_candidate_pair_id;
        let Some(RTCStatsReportEntry::IceCandidatePair(pair)) = report.get(pair_id) else {
            panic!("no selected candidate pair ({pair_id:?})")
        };
        // webrtc 0.21 files local candidates under `RTCLocalIceCandidate_<id>` while the pair
        // names them by `<id>` alone (and reports no remote candidates): match on either.
        let local = report
            .iter()
            .find_map(|e| match e {
                RTCStatsReportEntry::LocalCandidate(c)
                    if c.stats.id == pair.local_candidate_id
                        || c.stats.id.strip_prefix("RTCLocalIceCandidate_") == Some(pair.local_candidate_id.as_str()) =>
                {
                    Some(c.candidate_type)
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("no stats for local candidate {}", pair.local_candidate_id));
        (local, pair.bytes_sent, pair.bytes_received)
    }
}

/// Reads text messages from `dc` into a channel, so both sides can be read with a deadline.
fn messages(dc: Arc<dyn DataChannel>) -> (UnboundedReceiver<String>, UnboundedReceiver<()>) {
    let (tx, rx) = unbounded_channel();
    let (open_tx, open_rx) = unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = dc.poll().await {
            match event {
                DataChannelEvent::OnOpen => {
                    let _ = open_tx.send(());
                }
                DataChannelEvent::OnMessage(m) => {
                    let _ = tx.send(String::from_utf8_lossy(&m.data).into_owned());
                }
                DataChannelEvent::OnClose => break,
                _ => {}
            }
        }
    });
    (rx, open_rx)
}

async fn recv<T>(rx: &mut UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv()).await.expect("in time").expect("the channel is alive")
}

/// The value of a Prometheus gauge in the server's /metrics.
async fn metric(s: &TestServer, name: &str) -> u64 {
    let text = s.http().client.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} not in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// The next frame of type `ty` for `call`.
async fn call_frame(ws: &mut Ws, ty: &str, call: &str) -> Value {
    loop {
        let v = ws.next_of(ty).await;
        if v["call"] == call {
            return v;
        }
    }
}

/// Ann calls Bob over the chat socket and Bob answers: then Bob, who joined, offers (the
/// documented rule) and Ann answers, both through `call_offer` / `call_answer`. Returns both
/// peers, Bob's data channel, and the call id.
async fn call_through_chinwag(s: &TestServer) -> (Peer, Peer, Arc<dyn DataChannel>, String, Ws, Ws, User) {
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    s.befriend(&ann, &bob).await;
    let (mut wa, mut wb) = (s.ws(&ann).await, s.ws(&bob).await);
    wa.send_json(json!({"type":"call_invite","conv":ann.dm(&bob),"media":"audio"})).await;
    let call = wa.next_of("call_started").await["call"].as_str().unwrap().to_owned();
    call_frame(&mut wb, "call_incoming", &call).await;
    wb.send_json(json!({"type":"call_accept","call":call})).await;
    call_frame(&mut wa, "call_accepted", &call).await;
    call_frame(&mut wb, "call_accepted", &call).await;

    let mut pb = Box::pin(Peer::new(s, &bob)).await;
    let channel = pb.pc.create_data_channel("chat", None).await.unwrap();
    let offer = pb.pc.create_offer(None).await.unwrap();
    let sdp = pb.gathered_sdp(offer).await;
    wb.send_json(json!({"type":"call_offer","call":call,"to":ann.id,"sdp":sdp})).await;

    let offer = call_frame(&mut wa, "call_offer", &call).await;
    assert_eq!(offer["from"], bob.id);
    let mut pa = Box::pin(Peer::new(s, &ann)).await;
    pa.pc.set_remote_description(RTCSessionDescription::offer(offer["sdp"].as_str().unwrap().to_owned()).unwrap()).await.unwrap();
    let answer = pa.pc.create_answer(None).await.unwrap();
    let sdp = pa.gathered_sdp(answer).await;
    wa.send_json(json!({"type":"call_answer","call":call,"to":bob.id,"sdp":sdp})).await;

    let answer = call_frame(&mut wb, "call_answer", &call).await;
    pb.pc.set_remote_description(RTCSessionDescription::answer(answer["sdp"].as_str().unwrap().to_owned()).unwrap()).await.unwrap();
    (pa, pb, channel, call, wa, wb, ann)
}

fn loopback_relay(c: &mut chinwag::config::Config) {
    c.turn.public_ip = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    c.calls.relay_only = true;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_peers_connect_through_the_embedded_turn_and_exchange_data() {
    let s = TestServer::start_with(|c| {
        loopback_relay(c);
        c.turn.allow_peers = vec!["127.0.0.1/32".into()];
    })
    .await;
    let (mut pa, mut pb, bob_channel, call, mut wa, mut wb, ann) = Box::pin(call_through_chinwag(&s)).await;

    let (a_up, ann_channel) = pa.outcome(WAIT).await;
    let (b_up, _) = pb.outcome(WAIT).await;
    assert!(a_up && b_up, "both peers connect through the relay");

    // Data both ways over the data channel Bob opened.
    let (mut to_bob, mut bob_open) = messages(bob_channel.clone());
    recv(&mut bob_open).await;
    let ann_channel = match ann_channel {
        Some(dc) => dc,
        None => loop {
            if let Event::Channel(dc) = pa.next_event(Instant::now() + WAIT).await {
                break dc;
            }
        },
    };
    let (mut to_ann, _) = messages(ann_channel.clone());
    bob_channel.send_text("hello from bob").await.unwrap();
    assert_eq!(recv(&mut to_ann).await, "hello from bob");
    ann_channel.send_text("hello from ann").await.unwrap();
    assert_eq!(recv(&mut to_bob).await, "hello from ann");

    // Each side's selected pair starts at its relay candidate (and, relay-only on both sides,
    // ends at the other's), and carried the data.
    for p in [&pa, &pb] {
        let (local, sent, received) = p.selected_pair().await;
        assert_eq!(local, RTCIceCandidateType::Relay);
        assert!(sent > 0 && received > 0, "sent {sent}, received {received}");
    }
    // The server's relay carried it: two allocations (one each) and bytes both ways.
    assert!(metric(&s, "chinwag_turn_allocations").await >= 2);
    assert!(metric(&s, "chinwag_turn_bytes_to_peers").await > 0);
    assert!(metric(&s, "chinwag_turn_bytes_from_peers").await > 0);
    assert_eq!(metric(&s, "chinwag_turn_refused_peers").await, 0);

    // Media flowed (as a client reports it), so hanging up ends the call for both and records
    // it as answered.
    wa.send_json(json!({"type":"call_connected","call":call})).await;
    wa.send_json(json!({"type":"call_hangup","call":call})).await;
    assert_eq!(call_frame(&mut wb, "call_ended", &call).await["reason"], "hangup");
    loop {
        let m = wa.next_of("message").await;
        if m["message"]["content"]["kind"] == "call" {
            assert_eq!(m["message"]["content"]["outcome"], "answered");
            assert_eq!(m["message"]["sender"], ann.id);
            break;
        }
    }
    pa.pc.close().await.unwrap();
    pb.pc.close().await.unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_allow_peers_the_relay_refuses_loopback_and_the_call_cannot_connect() {
    // The same setup, but `turn.allow_peers` left at its default: relaying to the other peer's
    // relay address (127.0.0.1) is refused, and relay-only ICE has nothing else to try.
    let s = TestServer::start_with(loopback_relay).await;
    let (mut pa, mut pb, _, _, _wa, _wb, _) = Box::pin(call_through_chinwag(&s)).await;
    let (a_up, _) = pa.outcome(WAIT + WAIT).await;
    let (b_up, _) = pb.outcome(WAIT + WAIT).await;
    assert!(!a_up && !b_up, "relay-only ICE fails when the relay may not reach the peer");
    assert!(metric(&s, "chinwag_turn_refused_peers").await > 0, "the filter refused the permissions");
    assert_eq!(metric(&s, "chinwag_turn_bytes_to_peers").await, 0, "nothing was relayed");
    pa.pc.close().await.unwrap();
    pb.pc.close().await.unwrap();
    s.stop().await;
}
