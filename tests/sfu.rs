//! Group calls through the SFU, with participants that are not browsers: each is a str0m
//! session on its own loopback UDP socket that sends synthetic Opus (with an audio level) and a
//! VP8 camera in three simulcast layers, and records every frame it receives. Each frame carries
//! its sender, layer and a counter, so the tests can tell who got what, at which layer, and
//! whether anything was lost.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TestServer, User, Ws};
use futures_util::StreamExt;
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const RIDS: [&str; 3] = ["q", "h", "f"];

/// What one participant saw.
#[derive(Default, Debug)]
struct Seen {
    connected: bool,
    /// mid → (user, source) as the server's last `tracks` list says.
    tracks: HashMap<String, (u64, String)>,
    /// (sender, source) → the (layer byte, counter) of every frame received, in order.
    got: HashMap<(u64, String), Vec<(u8, u32)>>,
    speakers: Vec<Vec<u64>>,
    /// Every other call frame, in order.
    frames: Vec<Value>,
    /// Audio frames this participant sent.
    sent_audio: u32,
    /// Packets that came over UDP and over TCP.
    udp_in: u32,
    tcp_in: u32,
}

impl Seen {
    fn layers_from(&self, user: u64, source: &str) -> Vec<u8> {
        self.got.get(&(user, source.to_owned())).map(|v| v.iter().map(|(l, _)| *l).collect()).unwrap_or_default()
    }
    fn count_from(&self, user: u64, source: &str) -> usize {
        self.got.get(&(user, source.to_owned())).map_or(0, Vec::len)
    }
}

enum Ctl {
    Send(Value),
}

/// A participant: its task owns the WebSocket and the session.
struct Bot {
    user: User,
    ctl: mpsc::Sender<Ctl>,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Bot {
    /// Starts sending to SFU call `call`, which `ws` (of `user`) has just joined.
    async fn start(user: &User, ws: Ws, call: &str, level: i8) -> Bot {
        Bot::start_over(user, ws, call, level, false).await
    }

    /// With `tcp`, the participant offers no UDP candidate and reaches the SFU over ICE-TCP.
    async fn start_over(user: &User, ws: Ws, call: &str, level: i8, tcp: bool) -> Bot {
        let (ctl, rx) = mpsc::channel(16);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let task = tokio::spawn(run(ws, user.id, call.to_owned(), level, tcp, seen.clone(), rx));
        Bot { user: user.clone(), ctl, seen, task }
    }

    async fn send(&self, v: Value) {
        self.ctl.send(Ctl::Send(v)).await.unwrap();
    }

    fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().unwrap())
    }

    /// Waits until `cond` holds of what this participant saw.
    async fn wait(&self, what: &str, cond: impl Fn(&Seen) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.seen(&cond) {
            assert!(Instant::now() < deadline, "{}: {what}: not within 20 s; saw {:?}", self.user.name, self.seen(summary));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn summary(s: &Seen) -> String {
    let got: Vec<String> = s
        .got
        .iter()
        .map(|((u, src), v)| {
            format!(
                "{u}/{src}:{} ending {:?}",
                v.len(),
                v.iter().rev().take(8).map(|(l, n)| format!("{}{n}", *l as char)).collect::<Vec<_>>()
            )
        })
        .collect();
    format!(
        "connected={} speakers={:?} tracks={:?} got={got:?} frames={:?}",
        s.connected,
        s.speakers.iter().rev().take(3).collect::<Vec<_>>(),
        s.tracks,
        s.frames.iter().map(|f| f["type"].clone()).collect::<Vec<_>>()
    )
}

/// The payload marker: "CW", the sender, the layer (`a` for audio) and a counter.
fn payload(user: u64, layer: u8, n: u32, keyframe: bool) -> Vec<u8> {
    // A VP8 frame tag (bit 0 clear: a keyframe) and, for keyframes, the start code and size.
    let mut p = if layer == b'a' {
        Vec::new()
    } else if keyframe {
        vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]
    } else {
        vec![0x11, 0x02, 0x00]
    };
    p.extend_from_slice(b"CW");
    p.extend_from_slice(&user.to_le_bytes());
    p.push(layer);
    p.extend_from_slice(&n.to_le_bytes());
    p.resize(p.len() + 60, 0xab);
    p
}

/// The SDP without its `a=ssrc` lines: browsers tell simulcast layers by rid alone, while str0m
/// lists their SSRCs, and an SFU that binds those SSRCs before it sees a rid cannot tell the
/// layers apart.
fn without_ssrcs(sdp: &str) -> String {
    sdp.split("\r\n").filter(|l| !l.is_empty() && !l.starts_with("a=ssrc")).map(|l| format!("{l}\r\n")).collect()
}

fn parse(data: &[u8]) -> Option<(u64, u8, u32)> {
    let at = data.windows(2).position(|w| w == b"CW")?;
    let rest = data.get(at + 2..at + 15)?;
    Some((u64::from_le_bytes(rest[..8].try_into().ok()?), rest[8], u32::from_le_bytes(rest[9..13].try_into().ok()?)))
}

#[allow(clippy::too_many_lines)]
/// The SFU's passive TCP candidate in an answer.
fn tcp_candidate(sdp: &str) -> Option<std::net::SocketAddr> {
    let line = sdp.lines().find(|l| l.starts_with("a=candidate") && l.contains(" tcp ") && l.contains("tcptype passive"))?;
    let f: Vec<&str> = line.split(' ').collect();
    format!("{}:{}", f.get(4)?, f.get(5)?).parse().ok()
}

#[allow(clippy::too_many_arguments)]
async fn run(mut ws: Ws, me: u64, call: String, level: i8, tcp: bool, seen: Arc<Mutex<Seen>>, mut rx: mpsc::Receiver<Ctl>) {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = sock.local_addr().unwrap();
    let mut rtc = Rtc::builder().clear_codecs().enable_opus(true).enable_vp8(true).build(Instant::now());
    if !tcp {
        rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
    }
    // Over TCP: (server address, our address, the write half, the packets read).
    let mut stream: Option<(std::net::SocketAddr, std::net::SocketAddr, tokio::net::tcp::OwnedWriteHalf, mpsc::Receiver<Vec<u8>>)> = None;
    let mut api = rtc.sdp_api();
    let amid = api.add_media(MediaKind::Audio, Direction::SendOnly, Some("s".into()), Some("a".into()), None);
    let mut sim = Simulcast::new();
    for r in RIDS {
        sim.add_send_layer(SimulcastLayer::new(r));
    }
    let vmid = api.add_media(MediaKind::Video, Direction::SendOnly, Some("s".into()), Some("v".into()), Some(sim));
    let (offer, pending) = api.apply().unwrap();
    let mut pending = Some(pending);
    ws.send_json(json!({"type":"call_sfu_offer","call":call,"sdp":without_ssrcs(&offer.to_sdp_string()),
        "sources":{amid.to_string():"audio", vmid.to_string():"camera"}}))
        .await;
    let mut audio = tokio::time::interval(Duration::from_millis(20));
    let mut video = tokio::time::interval(Duration::from_millis(100));
    audio.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    video.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut an, mut vn) = (0u32, 0u32);
    let mut keyframes: HashSet<Rid> = RIDS.iter().map(|r| Rid::from(*r)).collect();
    let mut buf = vec![0u8; 2048];
    loop {
        let timeout = loop {
            match rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    if t.proto == Protocol::Tcp {
                        if let Some((_, _, w, _)) = &mut stream {
                            let mut framed = u16::try_from(t.contents.len()).unwrap().to_be_bytes().to_vec();
                            framed.extend_from_slice(&t.contents);
                            let _ = w.write_all(&framed).await;
                        }
                        continue;
                    }
                    let _ = sock.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Event(e)) => match e {
                    Event::Connected => seen.lock().unwrap().connected = true,
                    Event::MediaData(d) => {
                        let mut s = seen.lock().unwrap();
                        if let (Some((_, source)), Some((from, layer, n))) = (s.tracks.get(&d.mid.to_string()).cloned(), parse(&d.data)) {
                            s.got.entry((from, source)).or_default().push((layer, n));
                        }
                    }
                    Event::KeyframeRequest(r) => {
                        if let Some(rid) = r.rid {
                            keyframes.insert(rid);
                        }
                    }
                    _ => {}
                },
                Err(e) => panic!("session failed: {e}"),
            }
        };
        tokio::select! {
            Some(data) = async { match &mut stream { Some((_, _, _, r)) => r.recv().await, None => std::future::pending().await } } => {
                let (server, mine) = stream.as_ref().map(|(s, m, _, _)| (*s, *m)).unwrap();
                seen.lock().unwrap().tcp_in += 1;
                if let Ok(contents) = data.as_slice().try_into() {
                    let _ = rtc.handle_input(Input::Receive(Instant::now(), Receive { proto: Protocol::Tcp, source: server, destination: mine, contents }));
                }
            }
            r = sock.recv_from(&mut buf) => {
                let (n, source) = r.unwrap();
                seen.lock().unwrap().udp_in += 1;
                if let Ok(contents) = buf[..n].try_into() {
                    let _ = rtc.handle_input(Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents }));
                }
            }
            msg = ws.stream.next() => {
                let Some(Ok(WsMessage::Text(t))) = msg else { return };
                let f: Value = serde_json::from_str(t.as_str()).unwrap();
                match f["type"].as_str().unwrap_or("") {
                    "call_sfu_answer" => {
                        let sdp = f["sdp"].as_str().unwrap();
                        if tcp && stream.is_none() {
                            let server = tcp_candidate(sdp).expect("the SFU offers a TCP candidate");
                            let s = tokio::net::TcpStream::connect(server).await.unwrap();
                            let mine = s.local_addr().unwrap();
                            let (mut rd, wr) = s.into_split();
                            let (tx, packets) = mpsc::channel(256);
                            tokio::spawn(async move {
                                let mut len = [0u8; 2];
                                while rd.read_exact(&mut len).await.is_ok() {
                                    let mut data = vec![0u8; usize::from(u16::from_be_bytes(len))];
                                    if rd.read_exact(&mut data).await.is_err() || tx.send(data).await.is_err() {
                                        return;
                                    }
                                }
                            });
                            rtc.add_local_candidate(Candidate::builder().tcp().host(mine).tcptype(str0m::net::TcpType::Active).build().unwrap());
                            stream = Some((server, mine, wr, packets));
                        }
                        let answer = SdpAnswer::from_sdp_string(sdp).unwrap();
                        if let Some(p) = pending.take() {
                            rtc.sdp_api().accept_answer(p, answer).unwrap();
                        }
                    }
                    "call_sfu_offer" => {
                        let tracks = f["tracks"].as_array().unwrap().iter()
                            .map(|t| (t["mid"].as_str().unwrap().to_owned(), (t["user"].as_u64().unwrap(), t["source"].as_str().unwrap().to_owned())))
                            .collect();
                        seen.lock().unwrap().tracks = tracks;
                        let offer = SdpOffer::from_sdp_string(f["sdp"].as_str().unwrap()).unwrap();
                        let answer = rtc.sdp_api().accept_offer(offer).unwrap();
                        ws.send_json(json!({"type":"call_sfu_answer","call":call,"sdp":without_ssrcs(&answer.to_sdp_string())})).await;
                    }
                    "call_sfu_speakers" => {
                        let list = f["speakers"].as_array().unwrap().iter().map(|u| u.as_u64().unwrap()).collect();
                        seen.lock().unwrap().speakers.push(list);
                    }
                    _ => seen.lock().unwrap().frames.push(f),
                }
            }
            c = rx.recv() => match c {
                Some(Ctl::Send(v)) => ws.send_json(v).await,
                None => return,
            },
            _ = audio.tick() => {
                if rtc.is_connected() && let Some(w) = rtc.writer(amid) {
                    let pt = w.payload_params().find(|p| p.spec().codec == Codec::Opus).unwrap().pt();
                    let t = MediaTime::new(u64::from(an) * 960, Frequency::FORTY_EIGHT_KHZ);
                    if w.audio_level(level, true).write(pt, Instant::now(), t, payload(me, b'a', an, false)).is_ok() {
                        an += 1;
                        seen.lock().unwrap().sent_audio = an;
                    }
                }
            }
            _ = video.tick() => {
                if rtc.is_connected() {
                    for r in RIDS {
                        let rid = Rid::from(r);
                        let key = vn % 30 == 0 || keyframes.remove(&rid);
                        let Some(w) = rtc.writer(vmid) else { break };
                        let pt = w.payload_params().find(|p| p.spec().codec == Codec::Vp8).unwrap().pt();
                        let t = MediaTime::from_90khz(u64::from(vn) * 3000);
                        if let Err(e) = w.rid(rid).write(pt, Instant::now(), t, payload(me, r.as_bytes()[0], vn, key)) {
                            eprintln!("bot {me}: write {r} {vn}: {e}");
                        }
                    }
                    vn += 1;
                }
            }
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(timeout)) => {
                let _ = rtc.handle_input(Input::Timeout(Instant::now()));
            }
        }
    }
}

async fn call_frame(ws: &mut Ws, ty: &str) -> Value {
    loop {
        let f = ws.next_json().await;
        if f["type"] == ty {
            return f;
        }
    }
}

/// `n` users, all in one group owned by the first; a video call started by the first and
/// answered by the rest; a bot for each. The loudest speaker is the second.
async fn call_of(s: &TestServer, n: usize) -> (String, u64, Vec<Bot>) {
    let mut users = Vec::new();
    for i in 0..n {
        users.push(s.register(&format!("p{i:02}")).await);
    }
    for u in &users[1..] {
        s.befriend(&users[0], u).await;
    }
    let others: Vec<&User> = users[1..].iter().collect();
    let g = s.group(&users[0], "team", &others).await;
    let mut wss = Vec::new();
    for u in &users {
        wss.push(s.ws(u).await);
    }
    wss[0].send_json(json!({"type":"call_invite","conv":format!("g:{g}"),"media":"video"})).await;
    let started = call_frame(&mut wss[0], "call_started").await;
    assert_eq!(started["sfu"], true, "group calls go through the SFU: {started}");
    let call = started["call"].as_str().unwrap().to_owned();
    for w in &mut wss[1..] {
        let ring = call_frame(w, "call_incoming").await;
        assert_eq!(ring["sfu"], true);
        w.send_json(json!({"type":"call_accept","call":call})).await;
        assert_eq!(call_frame(w, "call_accepted").await["sfu"], true);
    }
    let mut bots = Vec::new();
    for (i, (u, w)) in users.iter().zip(wss).enumerate() {
        bots.push(Bot::start(u, w, &call, if i == 1 { -5 } else { -110 }).await);
    }
    (call, g, bots)
}

fn others(bots: &[Bot], me: usize) -> impl Iterator<Item = &Bot> {
    bots.iter().enumerate().filter(move |(i, _)| *i != me).map(|(_, b)| b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_people_each_get_every_voice_and_camera_and_nothing_is_lost() {
    let s = TestServer::start().await;
    let (_, _, bots) = call_of(&s, 16).await;
    for (i, b) in bots.iter().enumerate() {
        let ids: Vec<u64> = others(&bots, i).map(|o| o.user.id).collect();
        b.wait("every other's audio and camera, 10 frames each", |seen| {
            ids.iter().all(|u| seen.count_from(*u, "audio") >= 10 && seen.count_from(*u, "camera") >= 10)
        })
        .await;
    }
    // Without a view, cameras come at the low layer.
    let b0 = &bots[0];
    assert!(b0.seen(|s| s.layers_from(bots[3].user.id, "camera").iter().all(|l| *l == b'q')), "{}", b0.seen(summary));
    // Loss on loopback: every receiver got an unbroken run of each sender's audio frames.
    for b in &bots {
        b.seen(|s| {
            for ((from, source), frames) in &s.got {
                if source == "audio" {
                    let ns: Vec<u32> = frames.iter().map(|(_, n)| *n).collect();
                    assert!(ns.windows(2).all(|w| w[1] == w[0] + 1), "{} lost audio of {from}: {ns:?}", b.user.name);
                }
            }
        });
    }
    // The loud one speaks.
    let loud = bots[1].user.id;
    bots[0].wait("the loudest first among the speakers", |s| s.speakers.last().is_some_and(|l| l.first() == Some(&loud))).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_gets_the_layer_it_asks_for_and_nothing_of_what_it_hides() {
    // Exact layers: the synthetic streams are too small for the bandwidth estimate to mean
    // anything (the rule itself is unit-tested in calls::sfu::layers).
    let s = TestServer::start_with(|c| c.calls.sfu_adapt_to_bandwidth = false).await;
    let (call, _, bots) = call_of(&s, 3).await;
    let (a, b, c) = (&bots[0], bots[1].user.id, bots[2].user.id);
    a.wait("both cameras", |s| s.count_from(b, "camera") > 5 && s.count_from(c, "camera") > 5).await;
    a.send(json!({"type":"call_sfu_view","call":call,"videos":[{"user":b,"source":"camera","layer":"high"}]})).await;
    a.wait("b's camera at the high layer", |s| s.layers_from(b, "camera").ends_with(b"ffffff")).await;
    let hidden = a.seen(|s| s.count_from(c, "camera"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(a.seen(|s| s.count_from(c, "camera")) <= hidden + 1, "c's camera is paused while a hides it");
    a.send(json!({"type":"call_sfu_view","call":call,"videos":[{"user":b,"source":"camera","layer":"medium"},{"user":c,"source":"camera","layer":"low"}]})).await;
    a.wait("b's at medium, c's again at low", |s| {
        s.layers_from(b, "camera").ends_with(b"hhhhh") && s.layers_from(c, "camera").ends_with(b"qqqqq")
    })
    .await;
    // Between the two views c's camera was paused: a gap of about a second in its counters.
    a.seen(|s| {
        let ns: Vec<u32> = s.got[&(c, "camera".to_owned())].iter().map(|(_, n)| *n).collect();
        assert!(ns.windows(2).any(|w| w[1] >= w[0] + 8), "paused while hidden: {ns:?}");
    });
    // Audio flows whatever the view.
    let before = a.seen(|s| s.count_from(c, "audio"));
    a.wait("c's audio goes on", |s| s.count_from(c, "audio") > before + 10).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_who_leaves_or_is_removed_is_cut_off_and_can_come_back_only_while_a_member() {
    let s = TestServer::start().await;
    let (call, g, bots) = call_of(&s, 4).await;
    let owner = &bots[0];
    let (b, c) = (&bots[1], &bots[2]);
    for bot in &bots {
        bot.wait("connected", |s| s.connected).await;
    }
    owner.wait("c's camera", |s| s.count_from(c.user.id, "camera") > 5).await;
    // c hangs up: the others stop getting c's tracks.
    c.send(json!({"type":"call_hangup","call":call})).await;
    owner.wait("c left", |s| s.frames.iter().any(|f| f["type"] == "call_left" && f["user"] == c.user.id)).await;
    owner.wait("c's tracks are gone from the list", |s| s.tracks.values().all(|(u, _)| *u != c.user.id)).await;
    let n = owner.seen(|s| s.count_from(c.user.id, "audio"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(owner.seen(|s| s.count_from(c.user.id, "audio")) <= n + 2, "nothing of c after leaving");
    // c comes back: a new session.
    c.task.abort();
    let mut ws = s.ws(&c.user).await;
    ws.send_json(json!({"type":"call_join","call":call})).await;
    assert_eq!(call_frame(&mut ws, "call_accepted").await["sfu"], true);
    let c2 = Bot::start(&c.user, ws, &call, -110).await;
    c2.wait("b's camera again", |s| s.count_from(b.user.id, "camera") > 5).await;
    owner.wait("c's audio again", |s| s.count_from(c.user.id, "audio") > n + 10).await;
    // The owner removes b from the group: b is out of the call at once.
    let (st, body) = s.http().delete(&format!("/api/groups/{g}/members/{}", b.user.id), Some(&owner.user.token)).await;
    assert!(st == 200 || st == 204, "{st} {body}");
    b.wait("b's call ended", |s| s.frames.iter().any(|f| f["type"] == "call_ended")).await;
    owner.wait("b left", |s| s.frames.iter().any(|f| f["type"] == "call_left" && f["user"] == b.user.id)).await;
    let n = owner.seen(|s| s.count_from(b.user.id, "audio"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(owner.seen(|s| s.count_from(b.user.id, "audio")) <= n + 2, "nothing of b after the removal");
    // And cannot come back.
    let mut ws = s.ws(&b.user).await;
    ws.send_json(json!({"type":"call_join","call":call})).await;
    let refused = call_frame(&mut ws, "error").await;
    assert_eq!(refused["code"], "not_found", "{refused}");
    // A stranger's offer for the call is refused too.
    ws.send_json(json!({"type":"call_sfu_offer","call":call,"sdp":"v=0","sources":{}})).await;
    assert_eq!(call_frame(&mut ws, "error").await["code"], "not_found");
    let _ = ws.stream.close(None).await;
    // Everyone hangs up: the call is recorded as answered, since media flowed through the SFU
    // (the server saw the sessions connect; these participants never send call_connected).
    for bot in [owner, &bots[3]] {
        bot.send(json!({"type":"call_hangup","call":call})).await;
    }
    c2.wait("the call ended, c being the last one in it", |s| s.frames.iter().any(|f| f["type"] == "call_ended")).await;
    // Nobody got an error while in the call (a frame in flight as one hangs up may get one).
    for bot in [owner, &bots[3], &c2] {
        bot.seen(|s| assert!(s.frames.iter().take_while(|f| f["type"] != "call_ended").all(|f| f["type"] != "error"), "{}", summary(s)));
    }
    owner
        .wait("the call record", |s| {
            s.frames.iter().any(|f| {
                f["type"] == "message" && f["message"]["content"]["kind"] == "call" && f["message"]["content"]["outcome"] == "answered"
            })
        })
        .await;
    s.stop().await;
}

#[tokio::test]
async fn mesh_frames_are_refused_in_an_sfu_call_and_bad_offers_get_clear_errors() {
    let s = TestServer::start().await;
    let a = s.register("ann").await;
    let b = s.register("bob").await;
    s.befriend(&a, &b).await;
    let g = s.group(&a, "pair", &[&b]).await;
    let (mut wa, mut wb) = (s.ws(&a).await, s.ws(&b).await);
    wa.send_json(json!({"type":"call_invite","conv":format!("g:{g}"),"media":"audio"})).await;
    let call = call_frame(&mut wa, "call_started").await["call"].as_str().unwrap().to_owned();
    call_frame(&mut wb, "call_incoming").await;
    wb.send_json(json!({"type":"call_accept","call":call})).await;
    call_frame(&mut wb, "call_accepted").await;
    wb.send_json(json!({"type":"call_offer","call":call,"to":a.id,"sdp":"v=0"})).await;
    assert_eq!(call_frame(&mut wb, "error").await["code"], "invalid");
    wb.send_json(json!({"type":"call_sfu_offer","call":call,"sdp":"not sdp","sources":{}})).await;
    assert_eq!(call_frame(&mut wb, "error").await["code"], "invalid");
    wb.send_json(json!({"type":"call_sfu_offer","call":call,"sdp":"v=0","sources":{"0":"camera","1":"camera"}})).await;
    assert_eq!(call_frame(&mut wb, "error").await["code"], "invalid");
    // A mid a track list would not name is refused, and nothing crashed: a real offer works.
    let _mid = Mid::from("0");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_whose_network_blocks_udp_gets_through_over_tcp_on_the_media_port() {
    let s = TestServer::start().await;
    let a = s.register("ann").await;
    let b = s.register("bob").await;
    s.befriend(&a, &b).await;
    let g = s.group(&a, "pair", &[&b]).await;
    let (mut wa, mut wb) = (s.ws(&a).await, s.ws(&b).await);
    wa.send_json(json!({"type":"call_invite","conv":format!("g:{g}"),"media":"video"})).await;
    let call = call_frame(&mut wa, "call_started").await["call"].as_str().unwrap().to_owned();
    call_frame(&mut wb, "call_incoming").await;
    wb.send_json(json!({"type":"call_accept","call":call})).await;
    call_frame(&mut wb, "call_accepted").await;
    let udp = Bot::start(&a, wa, &call, -20).await;
    let tcp = Bot::start_over(&b, wb, &call, -20, true).await;
    tcp.wait("ann's audio and camera over TCP", |s| s.count_from(a.id, "audio") > 20 && s.count_from(a.id, "camera") > 5).await;
    udp.wait("bob's audio and camera, sent over TCP", |s| s.count_from(b.id, "audio") > 20 && s.count_from(b.id, "camera") > 5).await;
    tcp.seen(|s| assert!(s.udp_in == 0 && s.tcp_in > 50, "bob used TCP only: {} over UDP, {} over TCP", s.udp_in, s.tcp_in));
    s.stop().await;
}
