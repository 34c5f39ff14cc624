//! A participant in a group call through the SFU that is not a browser: a str0m session on its
//! own loopback UDP socket (or over ICE-TCP) that sends synthetic Opus (with an audio level) and
//! a VP8 camera in three simulcast layers, and records every frame it receives. Each frame
//! carries its sender, layer, a counter and its send time, so that who got what, at which layer,
//! what was lost and how late it came can be told.
//!
//! Shared by `tests/sfu.rs` (small frames) and the load tool's `sfu` scenario (frames of
//! realistic sizes, [`Media::realistic`]).

#![allow(dead_code)] // each of the two users takes a part of it

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// An authenticated WebSocket to the server, as both users open it.
pub type RawWs = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const RIDS: [&str; 3] = ["q", "h", "f"];

/// The marker's length: "CW", sender (8), layer (1), counter (4), send time in µs (8).
const MARK: usize = 23;

/// What a participant sends.
#[derive(Clone, Copy, Debug)]
pub struct Media {
    /// Bytes of one Opus frame, and frames per second.
    pub audio_bytes: usize,
    pub audio_fps: u32,
    /// Bytes of one frame of each layer (q, h, f); no camera when `video_fps` is 0.
    pub video_bytes: [usize; 3],
    pub video_fps: u32,
    /// A keyframe on each layer every this many frames (and whenever the SFU asks for one).
    pub keyframe_every: u32,
}

impl Media {
    /// Small frames: enough for the tests, cheap to run 16 of.
    pub const SMALL: Media = Media { audio_bytes: 80, audio_fps: 50, video_bytes: [90, 90, 90], video_fps: 10, keyframe_every: 30 };

    /// Frames of a real call: Opus at 50 packets/s (~40 kbit/s), the camera at 30 fps with
    /// q ≈ 150, h ≈ 500 and f ≈ 1,500 kbit/s, a keyframe every 3 s; no camera without `video`.
    pub fn realistic(video: bool) -> Media {
        Media { audio_bytes: 100, audio_fps: 50, video_bytes: [625, 2083, 6250], video_fps: if video { 30 } else { 0 }, keyframe_every: 90 }
    }

    /// Payload kilobits per second of the audio and of each video layer.
    pub fn kbps(&self) -> (f64, [f64; 3]) {
        let k = |bytes: usize, fps: u32| (bytes * 8) as f64 * f64::from(fps) / 1000.0;
        (k(self.audio_bytes, self.audio_fps), self.video_bytes.map(|b| k(b, self.video_fps)))
    }
}

/// How a participant takes part.
#[derive(Clone, Copy, Debug)]
pub struct Opts {
    /// Its audio level (dBov, -127..0; closer to 0 is louder).
    pub level: i8,
    /// Offer no UDP candidate: reach the SFU over ICE-TCP.
    pub tcp: bool,
    pub media: Media,
    /// The kernel receive buffer of its UDP socket (the default when `None`).
    pub rcvbuf: Option<usize>,
}

/// What one participant saw.
#[derive(Default, Debug)]
pub struct Seen {
    pub connected: bool,
    /// mid → (user, source) as the server's last `tracks` list says.
    pub tracks: HashMap<String, (u64, String)>,
    /// (sender, source) → the (layer byte, counter) of every frame received, in order.
    pub got: HashMap<(u64, String), Vec<(u8, u32)>>,
    /// Send-to-receive time of every frame received, µs (sender and receiver share a clock).
    pub delays_us: Vec<u32>,
    pub speakers: Vec<Vec<u64>>,
    /// Every other call frame, in order.
    pub frames: Vec<Value>,
    /// Audio and video frames (counting each layer) this participant sent.
    pub sent_audio: u32,
    pub sent_video: u32,
    /// Frames str0m refused to send.
    pub write_errors: u32,
    /// Datagrams sent; packets that came over UDP and over TCP.
    pub udp_out: u64,
    pub udp_in: u64,
    pub tcp_in: u64,
}

impl Seen {
    pub fn layers_from(&self, user: u64, source: &str) -> Vec<u8> {
        self.got.get(&(user, source.to_owned())).map(|v| v.iter().map(|(l, _)| *l).collect()).unwrap_or_default()
    }
    pub fn count_from(&self, user: u64, source: &str) -> usize {
        self.got.get(&(user, source.to_owned())).map_or(0, Vec::len)
    }
}

enum Ctl {
    Send(Value),
}

/// A participant: its task owns the WebSocket and the session.
pub struct Bot<U> {
    pub user: U,
    pub id: u64,
    pub call: String,
    label: String,
    ctl: mpsc::Sender<Ctl>,
    seen: Arc<Mutex<Seen>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl<U> Bot<U> {
    /// Starts sending to SFU call `call`, which `ws` (of user `id`) has just joined.
    pub fn start(user: U, id: u64, label: &str, ws: RawWs, call: &str, opts: Opts) -> Bot<U> {
        let (ctl, rx) = mpsc::channel(16);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let task = tokio::spawn(run(ws, id, call.to_owned(), opts, seen.clone(), rx));
        Bot { user, id, call: call.to_owned(), label: label.to_owned(), ctl, seen, task }
    }

    /// Sends a frame over the participant's WebSocket.
    pub async fn send(&self, v: Value) {
        self.ctl.send(Ctl::Send(v)).await.unwrap();
    }

    pub fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().unwrap())
    }

    /// Waits until `cond` holds of what this participant saw; false after `within`.
    pub async fn wait_for(&self, within: Duration, cond: impl Fn(&Seen) -> bool) -> bool {
        let deadline = Instant::now() + within;
        while !self.seen(&cond) {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// Waits until `cond` holds, or panics after 20 s with what was seen.
    pub async fn wait(&self, what: &str, cond: impl Fn(&Seen) -> bool) {
        let ok = self.wait_for(Duration::from_secs(20), cond).await;
        assert!(ok, "{}: {what}: not within 20 s; saw {:?}", self.label, self.seen(summary));
    }

    pub fn label(&self) -> &str {
        &self.label
    }
}

pub fn summary(s: &Seen) -> String {
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
        // Errors whole (their code says what was refused), other frames by type.
        s.frames.iter().map(|f| if f["type"] == "error" { f.clone() } else { f["type"].clone() }).collect::<Vec<_>>()
    )
}

/// The clock every participant of this process stamps its frames with.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_us() -> u64 {
    epoch().elapsed().as_micros() as u64
}

/// A frame of `size` bytes: for video a VP8 frame tag (bit 0 clear: a keyframe) and, for
/// keyframes, the start code and size; then the marker: "CW", the sender, the layer (`a` for
/// audio), a counter and the send time; then padding.
pub fn payload(user: u64, layer: u8, n: u32, keyframe: bool, size: usize) -> Vec<u8> {
    let mut p = if layer == b'a' {
        Vec::with_capacity(size)
    } else if keyframe {
        vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]
    } else {
        vec![0x11, 0x02, 0x00]
    };
    p.extend_from_slice(b"CW");
    p.extend_from_slice(&user.to_le_bytes());
    p.push(layer);
    p.extend_from_slice(&n.to_le_bytes());
    p.extend_from_slice(&now_us().to_le_bytes());
    p.resize(p.len().max(size), 0xab);
    p
}

/// The marker of a received frame: sender, layer, counter and send time (µs).
pub fn parse(data: &[u8]) -> Option<(u64, u8, u32, u64)> {
    let at = data.windows(2).position(|w| w == b"CW")?;
    let rest = data.get(at + 2..at + MARK)?;
    Some((
        u64::from_le_bytes(rest[..8].try_into().ok()?),
        rest[8],
        u32::from_le_bytes(rest[9..13].try_into().ok()?),
        u64::from_le_bytes(rest[13..21].try_into().ok()?),
    ))
}

/// The SDP without its `a=ssrc` lines: browsers tell simulcast layers by rid alone, while str0m
/// lists their SSRCs, and an SFU that binds those SSRCs before it sees a rid cannot tell the
/// layers apart.
pub fn without_ssrcs(sdp: &str) -> String {
    sdp.split("\r\n").filter(|l| !l.is_empty() && !l.starts_with("a=ssrc")).map(|l| format!("{l}\r\n")).collect()
}

/// The SFU's passive TCP candidate in an answer.
fn tcp_candidate(sdp: &str) -> Option<SocketAddr> {
    let line = sdp.lines().find(|l| l.starts_with("a=candidate") && l.contains(" tcp ") && l.contains("tcptype passive"))?;
    let f: Vec<&str> = line.split(' ').collect();
    format!("{}:{}", f.get(4)?, f.get(5)?).parse().ok()
}

async fn send_json(ws: &mut RawWs, v: &Value) {
    let _ = ws.send(WsMessage::Text(v.to_string().into())).await;
}

fn udp_socket(rcvbuf: Option<usize>) -> std::io::Result<tokio::net::UdpSocket> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if let Some(size) = rcvbuf {
        s.set_recv_buffer_size(size)?;
        s.set_send_buffer_size(size)?;
    }
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    s.set_nonblocking(true)?;
    tokio::net::UdpSocket::from_std(s.into())
}

/// Over TCP: (server address, our address, the write half, the packets read).
type Stream = (SocketAddr, SocketAddr, tokio::net::tcp::OwnedWriteHalf, mpsc::Receiver<Vec<u8>>);

fn interval(per_second: u32) -> tokio::time::Interval {
    let mut i = tokio::time::interval(Duration::from_secs(1) / per_second.max(1));
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    i
}

async fn run(mut ws: RawWs, me: u64, call: String, opts: Opts, seen: Arc<Mutex<Seen>>, mut rx: mpsc::Receiver<Ctl>) {
    let media = opts.media;
    let sock = udp_socket(opts.rcvbuf).unwrap();
    let local = sock.local_addr().unwrap();
    let mut rtc = Rtc::builder().clear_codecs().enable_opus(true).enable_vp8(true).build(Instant::now());
    if !opts.tcp {
        rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
    }
    let mut stream: Option<Stream> = None;
    let mut api = rtc.sdp_api();
    let amid = api.add_media(MediaKind::Audio, Direction::SendOnly, Some("s".into()), Some("a".into()), None);
    let mut sources = serde_json::Map::new();
    sources.insert(amid.to_string(), json!("audio"));
    let vmid = (media.video_fps > 0).then(|| {
        let mut sim = Simulcast::new();
        for r in RIDS {
            sim.add_send_layer(SimulcastLayer::new(r));
        }
        let mid = api.add_media(MediaKind::Video, Direction::SendOnly, Some("s".into()), Some("v".into()), Some(sim));
        sources.insert(mid.to_string(), json!("camera"));
        mid
    });
    let (offer, pending) = api.apply().unwrap();
    let mut pending = Some(pending);
    send_json(&mut ws, &json!({"type":"call_sfu_offer","call":call,"sdp":without_ssrcs(&offer.to_sdp_string()),"sources":sources})).await;
    let mut audio = interval(media.audio_fps);
    let mut video = interval(media.video_fps);
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
                    if sock.send_to(&t.contents, t.destination).await.is_ok() {
                        seen.lock().unwrap().udp_out += 1;
                    }
                }
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Event(e)) => match e {
                    Event::Connected => seen.lock().unwrap().connected = true,
                    Event::MediaData(d) => {
                        let mut s = seen.lock().unwrap();
                        if let (Some((_, source)), Some((from, layer, n, t))) = (s.tracks.get(&d.mid.to_string()).cloned(), parse(&d.data))
                        {
                            s.got.entry((from, source)).or_default().push((layer, n));
                            s.delays_us.push(now_us().saturating_sub(t).min(u64::from(u32::MAX)) as u32);
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
            msg = ws.next() => {
                // The server's pings are answered by tungstenite; only a closed socket ends the participant.
                let t = match msg {
                    Some(Ok(WsMessage::Text(t))) => t,
                    Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Binary(_) | WsMessage::Frame(_))) => continue,
                    _ => return,
                };
                let Ok(f) = serde_json::from_str::<Value>(t.as_str()) else { continue };
                match f["type"].as_str().unwrap_or("") {
                    "call_sfu_answer" => {
                        let sdp = f["sdp"].as_str().unwrap();
                        if opts.tcp && stream.is_none() {
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
                        send_json(&mut ws, &json!({"type":"call_sfu_answer","call":call,"sdp":without_ssrcs(&answer.to_sdp_string())})).await;
                    }
                    "call_sfu_speakers" => {
                        let list = f["speakers"].as_array().unwrap().iter().map(|u| u.as_u64().unwrap()).collect();
                        seen.lock().unwrap().speakers.push(list);
                    }
                    _ => seen.lock().unwrap().frames.push(f),
                }
            }
            c = rx.recv() => match c {
                Some(Ctl::Send(v)) => send_json(&mut ws, &v).await,
                None => return,
            },
            _ = audio.tick() => {
                if rtc.is_connected() && let Some(w) = rtc.writer(amid) {
                    let pt = w.payload_params().find(|p| p.spec().codec == Codec::Opus).unwrap().pt();
                    let t = MediaTime::new(u64::from(an) * u64::from(48_000 / media.audio_fps.max(1)), Frequency::FORTY_EIGHT_KHZ);
                    let data = payload(me, b'a', an, false, media.audio_bytes);
                    if w.audio_level(opts.level, true).write(pt, Instant::now(), t, data).is_ok() {
                        an += 1;
                        seen.lock().unwrap().sent_audio = an;
                    }
                }
            }
            _ = video.tick(), if vmid.is_some() => {
                if rtc.is_connected() && let Some(vmid) = vmid {
                    let mut written = 0;
                    for (i, r) in RIDS.iter().enumerate() {
                        let rid = Rid::from(*r);
                        let key = vn.is_multiple_of(media.keyframe_every.max(1)) || keyframes.remove(&rid);
                        let Some(w) = rtc.writer(vmid) else { break };
                        let pt = w.payload_params().find(|p| p.spec().codec == Codec::Vp8).unwrap().pt();
                        let t = MediaTime::from_90khz(u64::from(vn) * u64::from(90_000 / media.video_fps.max(1)));
                        let data = payload(me, r.as_bytes()[0], vn, key, media.video_bytes[i]);
                        match w.rid(rid).write(pt, Instant::now(), t, data) {
                            Ok(()) => written += 1,
                            Err(e) => {
                                let mut s = seen.lock().unwrap();
                                if s.write_errors == 0 {
                                    eprintln!("bot {me}: write {r} {vn}: {e}");
                                }
                                s.write_errors += 1;
                            }
                        }
                    }
                    seen.lock().unwrap().sent_video += written;
                    vn += 1;
                }
            }
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(timeout)) => {
                let _ = rtc.handle_input(Input::Timeout(Instant::now()));
            }
        }
    }
}
