//! The sfu scenario: group calls through the server's SFU with str0m participants
//! (`sfu_bot.rs`) sending frames of realistic sizes: server CPU per forwarded stream and per
//! participant, frames lost and their delay.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::client::{self, Account, Percentiles, Ws};
use super::server::{CpuWindow, wait_quiet};
use super::sfu_bot::{Bot, Media, Opts, summary};
use super::{Common, machine_note, server_env, server_for};

#[derive(Args, Clone)]
pub struct SfuArgs {
    /// Simultaneous group calls.
    #[arg(long, default_value_t = 1)]
    calls: usize,
    /// Participants in each call.
    #[arg(long, default_value_t = 6)]
    size: usize,
    /// Seconds measured (after every participant connected and a warm-up).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Seconds between the last connection and the measured window.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// The camera layer each participant asks for of every other (low: the SFU's default).
    #[arg(long, value_parser = ["low", "medium", "high"], default_value = "low")]
    layer: String,
    /// Audio-only calls: no camera.
    #[arg(long)]
    audio_only: bool,
    /// Keep the SFU's bandwidth adaptation on (off by default: exact layers, as on a LAN).
    #[arg(long)]
    adapt: bool,
}

/// One participant's counters at a moment.
#[derive(Clone, Default)]
struct Snap {
    /// (sender, source) → frames received so far.
    got: Vec<((u64, String), usize)>,
    delays: usize,
    sent_audio: u32,
    sent_video: u32,
    udp_in: u64,
    udp_out: u64,
}

fn snap(b: &Bot<Account>) -> Snap {
    b.seen(|s| Snap {
        got: s.got.iter().map(|(k, v)| (k.clone(), v.len())).collect(),
        delays: s.delays_us.len(),
        sent_audio: s.sent_audio,
        sent_video: s.sent_video,
        udp_in: s.udp_in,
        udp_out: s.udp_out,
    })
}

/// Reads a frame of type `ty` from `ws` (other frames are skipped); fails after 20 s.
async fn frame_of(ws: &mut Ws, ty: &str) -> anyhow::Result<Value> {
    let wait = async {
        while let Some(m) = ws.next().await {
            if let WsMessage::Text(t) = m? {
                let f: Value = serde_json::from_str(t.as_str())?;
                if f["type"] == ty {
                    return Ok(f);
                }
                if f["type"] == "error" {
                    bail!("waiting for {ty}: {f}");
                }
            }
        }
        bail!("the socket closed while waiting for {ty}")
    };
    tokio::time::timeout(Duration::from_secs(20), wait).await.map_err(|_| anyhow!("no {ty} within 20 s"))?
}

async fn send(ws: &mut Ws, v: &Value) -> anyhow::Result<()> {
    ws.send(WsMessage::Text(v.to_string().into())).await.context("websocket send")
}

/// Starts a group call among `users` (the first one calls, the others accept) and a bot for each.
async fn start_call(srv_addr: std::net::SocketAddr, users: &[Account], conv: &str, media: Media) -> anyhow::Result<Vec<Bot<Account>>> {
    let mut wss = Vec::new();
    for u in users {
        wss.push(client::connect(srv_addr, &u.token).await?);
    }
    let kind = if media.video_fps > 0 { "video" } else { "audio" };
    send(&mut wss[0], &json!({"type":"call_invite","conv":conv,"media":kind})).await?;
    let started = frame_of(&mut wss[0], "call_started").await?;
    if started["sfu"] != true {
        bail!("the call does not go through the SFU: {started}");
    }
    let call = started["call"].as_str().context("no call id")?.to_owned();
    for w in &mut wss[1..] {
        frame_of(w, "call_incoming").await?;
        send(w, &json!({"type":"call_accept","call":call})).await?;
        frame_of(w, "call_accepted").await?;
    }
    let mut bots = Vec::new();
    for (i, (u, ws)) in users.iter().zip(wss).enumerate() {
        // One speaker per call, the others silent, as in a meeting.
        let level = if i == 1 { -10 } else { -100 };
        let opts = Opts { level, tcp: false, media, rcvbuf: Some(4 << 20) };
        bots.push(Bot::start(u.clone(), u.id, &format!("user {}", u.id), ws, &call, opts));
    }
    Ok(bots)
}

/// Frames missing between consecutive counters received from each sender in the window
/// (`from`..`to` of each (sender, source) list, with the frame just before it as the base), and
/// frames received in it.
fn lost_in_window(b: &Bot<Account>, from: &Snap, to: &Snap) -> (u64, u64, u64) {
    b.seen(|s| {
        let (mut lost, mut got, mut reordered) = (0u64, 0u64, 0u64);
        for (key, end) in &to.got {
            let start = from.got.iter().find(|(k, _)| k == key).map_or(0, |(_, n)| *n);
            let Some(list) = s.got.get(key) else { continue };
            let run = &list[start.saturating_sub(1)..*end];
            got += (*end - start) as u64;
            for w in run.windows(2) {
                if w[1].1 > w[0].1 {
                    lost += u64::from(w[1].1 - w[0].1 - 1);
                } else {
                    reordered += 1;
                }
            }
        }
        (lost, got, reordered)
    })
}

fn gauge(metrics: &str, name: &str) -> u64 {
    metrics.lines().find_map(|l| l.strip_prefix(&format!("chinwag_{name} "))).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

pub(crate) async fn sfu(common: &Common, a: &SfuArgs) -> anyhow::Result<(Value, u64)> {
    if a.calls == 0 || a.size < 2 {
        bail!("--calls must be at least 1 and --size at least 2");
    }
    let media = Media::realistic(!a.audio_only);
    let mut extra = vec![
        ("CHINWAG_CALLS__MEDIA_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("CHINWAG_CALLS__SFU_ADAPT_TO_BANDWIDTH".to_owned(), a.adapt.to_string()),
        ("CHINWAG_CALLS__SFU_MAX_PARTICIPANTS".to_owned(), (a.calls * a.size).max(2).to_string()),
    ];
    if a.audio_only {
        extra.push(("CHINWAG_CALLS__SFU_MAX_AUDIO".to_owned(), a.size.max(2).to_string()));
    } else {
        extra.push(("CHINWAG_CALLS__SFU_MAX_VIDEO".to_owned(), a.size.max(2).to_string()));
    }
    let srv = server_for(common, &extra).await?;
    let http = reqwest::Client::new();
    let base = srv.base_url();
    let users = client::register_many(&http, &base, &client::run_prefix(), a.calls * a.size, common.register_concurrency).await?;
    let mut bots = Vec::new();
    for (c, group) in users.chunks(a.size).enumerate() {
        let conv = client::make_group(&http, &base, &group[0], &group[1..], &format!("call {c}")).await?;
        bots.push(start_call(srv.addr, group, &conv, media).await?);
    }
    let all: Vec<&Bot<Account>> = bots.iter().flatten().collect();
    let connect_by = Duration::from_secs(30);
    for b in &all {
        if !b.wait_for(connect_by, |s| s.connected).await {
            bail!("{} did not connect within {connect_by:?}; it saw {}", b.label(), b.seen(summary));
        }
    }
    if a.layer != "low" && !a.audio_only {
        for call in &bots {
            for b in call {
                let videos: Vec<Value> =
                    call.iter().filter(|o| o.id != b.id).map(|o| json!({"user":o.id,"source":"camera","layer":a.layer})).collect();
                b.send(json!({"type":"call_sfu_view","call":b.call,"videos":videos})).await;
            }
        }
    }
    // Every participant gets every other's audio (and camera) before the window opens; in calls
    // over SELECT_AUDIO_ABOVE the server forwards only the loudest voices, here the one speaker
    // (the second participant of each call).
    let speakers_only = a.size > chinwag::calls::sfu::speakers::SELECT_AUDIO_ABOVE;
    for call in &bots {
        let speaker = call[1].id;
        for b in call {
            let others: Vec<u64> = call.iter().filter(|o| o.id != b.id).map(|o| o.id).collect();
            let ok = b
                .wait_for(Duration::from_secs(30), |s| {
                    others.iter().all(|u| {
                        (s.count_from(*u, "audio") > 0 || speakers_only && *u != speaker)
                            && (a.audio_only || s.count_from(*u, "camera") > 0)
                    })
                })
                .await;
            if !ok {
                bail!("{} did not get every other's media within 30 s", b.label());
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(a.warmup)).await;
    let (waited, quiet) = wait_quiet(Duration::from_secs(common.wait_quiet)).await;
    let load_before = load_average();
    let m0 = http.get(format!("{base}/metrics")).send().await?.text().await?;
    let s0: Vec<Snap> = all.iter().map(|b| snap(b)).collect();
    let cpu = CpuWindow::start(&srv);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    let s1: Vec<Snap> = all.iter().map(|b| snap(b)).collect();
    let used = cpu.end(&srv);
    let wall = started.elapsed().as_secs_f64();
    let m1 = http.get(format!("{base}/metrics")).send().await?.text().await?;
    let load_after = load_average();
    // Wait out the frames in flight, then count what arrived of the window.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mut lost, mut got, mut reordered) = (0u64, 0u64, 0u64);
    let (mut sent_audio, mut sent_video, mut dgram_in, mut dgram_out) = (0u64, 0u64, 0u64, 0u64);
    let mut delays = Vec::new();
    for (i, b) in all.iter().enumerate() {
        let (l, g, r) = lost_in_window(b, &s0[i], &s1[i]);
        lost += l;
        got += g;
        reordered += r;
        sent_audio += u64::from(s1[i].sent_audio - s0[i].sent_audio);
        sent_video += u64::from(s1[i].sent_video - s0[i].sent_video);
        dgram_in += s1[i].udp_in - s0[i].udp_in;
        dgram_out += s1[i].udp_out - s0[i].udp_out;
        b.seen(|s| delays.extend(s.delays_us[s0[i].delays..s1[i].delays].iter().map(|d| u64::from(*d))));
    }
    let write_errors: u64 = all.iter().map(|b| u64::from(b.seen(|s| s.write_errors))).sum();
    let participants = all.len() as u64;
    let pairs = (a.size * (a.size - 1)) as u64;
    let audio_streams = if speakers_only { (a.size - 1) as u64 } else { pairs };
    let streams = a.calls as u64 * (audio_streams + if a.audio_only { 0 } else { pairs });
    let forwarded = gauge(&m1, "sfu_frames_forwarded").saturating_sub(gauge(&m0, "sfu_frames_forwarded"));
    let dropped = gauge(&m1, "sfu_dropped_sends").saturating_sub(gauge(&m0, "sfu_dropped_sends"));
    let server_cpu = used.server.context("the server's CPU time: spawn it, or give --pid with --addr")?;
    let us_per_stream = server_cpu * 1e6 / (streams as f64 * wall);
    let us_per_participant = server_cpu * 1e6 / (participants as f64 * wall);
    let us_per_frame = server_cpu * 1e6 / forwarded.max(1) as f64;
    // Frames each receiver should get: every other's audio and one layer of every other's camera.
    let video_frames_per_layer = sent_video / 3;
    let expected = (sent_audio + video_frames_per_layer) * (a.size as u64 - 1);
    let p = Percentiles::of(delays);
    let (akbps, vkbps) = media.kbps();
    let layer_i = match a.layer.as_str() {
        "medium" => 1,
        "high" => 2,
        _ => 0,
    };
    let up_sfu = akbps + if a.audio_only { 0.0 } else { vkbps.iter().sum::<f64>() };
    let up_mesh = (a.size as f64 - 1.0) * (akbps + if a.audio_only { 0.0 } else { vkbps[layer_i] });
    let down = (a.size as f64 - 1.0) * (akbps + if a.audio_only { 0.0 } else { vkbps[layer_i] });
    println!(
        "== sfu: {} call(s) of {} ({}), {participants} participants, {streams} forwarded streams, {:.1} s",
        a.calls,
        a.size,
        if a.audio_only { "audio".to_owned() } else { format!("video, {} layer", a.layer) },
        wall
    );
    println!("  {}", used.line());
    println!(
        "  server CPU: {us_per_stream:.1} µs per forwarded stream-second, {us_per_participant:.0} µs per participant-second, {us_per_frame:.2} µs per forwarded frame ({forwarded} frames)"
    );
    println!(
        "  frames: sent {sent_audio} audio + {sent_video} video (all layers); expected at receivers ≈{expected}, received {got}, lost {lost} ({:.3} %), out of order {reordered}; SFU dropped sends {dropped}; write errors {write_errors}",
        lost as f64 * 100.0 / (got + lost).max(1) as f64
    );
    println!("  datagrams: bots sent {dgram_out}, received {dgram_in}");
    println!("  delay send→receive (frames): {}", p.line_ms());
    println!(
        "  per-client upload (payload, arithmetic): SFU {up_sfu:.0} kbit/s ({}), mesh {up_mesh:.0} kbit/s (the asked layer to each of {} others); download {down:.0} kbit/s either way",
        if a.audio_only { "audio" } else { "all 3 layers + audio" },
        a.size - 1
    );
    println!("  load average: before {load_before}, after {load_after}");
    let report = json!({
        "scenario": "sfu",
        "calls": a.calls,
        "size": a.size,
        "media": if a.audio_only { "audio" } else { "video" },
        "layer": a.layer,
        "adapt": a.adapt,
        "participants": participants,
        "forwarded_streams": streams,
        "cpu": used.json(),
        "server_us_per_stream_second": (us_per_stream * 10.0).round() / 10.0,
        "server_us_per_participant_second": us_per_participant.round(),
        "server_us_per_forwarded_frame": (us_per_frame * 100.0).round() / 100.0,
        "frames_forwarded": forwarded,
        "sent_audio": sent_audio,
        "sent_video": sent_video,
        "expected": expected,
        "received": got,
        "lost": lost,
        "reordered": reordered,
        "sfu_dropped_sends": dropped,
        "write_errors": write_errors,
        "datagrams_out": dgram_out,
        "datagrams_in": dgram_in,
        "delay": p.json_ms(),
        "upload_kbps": {"sfu": up_sfu.round(), "mesh": up_mesh.round()},
        "load_average": {"before": load_before, "after": load_after},
        "waited_quiet_s": waited, "quiet": quiet,
        "server_env": server_env(&srv),
        "machine": machine_note(),
    });
    for b in &all {
        b.task.abort();
    }
    Ok((report, lost + dropped + write_errors))
}
