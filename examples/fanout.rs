//! Group fan-out benchmark: one message to a group of N members, every member connected; the
//! time until the LAST member has it, over many rounds; then a busy group where several members
//! send at once, reported as messages/s and deliveries/s.
//!
//! ```text
//! cargo build --release
//! cargo run --release --example fanout -- --members 1000 --rounds 200 --busy-senders 20 --busy-seconds 10
//! ```
//!
//! It starts `target/release/chinwag serve` on a free 127.0.0.1 port with a temporary data dir
//! (through the load tool's server module), registers the members, has them join one open group,
//! connects them all, and measures. Loopback only; every loop is bounded.

#[path = "load/client.rs"]
#[allow(dead_code)]
mod client;
#[path = "load/server.rs"]
#[allow(dead_code)]
mod server;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use futures_util::{SinkExt, StreamExt, stream};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use client::{Frame, Percentiles, connect_many, register_many, run_prefix, send_frame};
use server::Server;

#[derive(Parser)]
#[command(about = "Chinwag group fan-out benchmark")]
struct Cli {
    #[arg(long, default_value = "target/release/chinwag")]
    server: PathBuf,
    #[arg(long, default_value_t = 1000)]
    members: usize,
    /// Messages sent one at a time, each waited for until every member has it.
    #[arg(long, default_value_t = 200)]
    rounds: usize,
    /// Members sending at once in the busy-group phase (one message in flight each).
    #[arg(long, default_value_t = 20)]
    busy_senders: usize,
    #[arg(long, default_value_t = 10)]
    busy_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    if cli.members < 2 || cli.members > 2000 {
        bail!("--members must be 2 to 2000 (the default group size limit)");
    }
    let env =
        vec![("CHINWAG_TURN__ENABLED".to_owned(), "false".to_owned()), ("CHINWAG_LIMITS__OUTBOUND_QUEUE".to_owned(), "4096".to_owned())];
    let mut srv = Server::spawn(&cli.server, &env).await?;
    let base = srv.base_url();
    let http = reqwest::Client::new();
    eprintln!("registering {} members", cli.members);
    let accounts = register_many(&http, &base, &run_prefix(), cli.members, 4).await?;
    let owner = &accounts[0];
    let g: serde_json::Value = http
        .post(format!("{base}/api/groups"))
        .bearer_auth(&owner.token)
        .json(&json!({"name": "fan-out", "join_mode": "open"}))
        .send()
        .await?
        .json()
        .await?;
    let gid = g["id"].as_u64().context("no group id")?;
    let conv = format!("g:{gid}");
    let joined: Vec<anyhow::Result<()>> = stream::iter(accounts[1..].iter())
        .map(|a| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let r = http.post(format!("{base}/api/groups/{gid}/join")).bearer_auth(&a.token).json(&json!({})).send().await?;
                if !r.status().is_success() {
                    bail!("join: {}", r.status());
                }
                Ok(())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    if let Some(Err(e)) = joined.into_iter().find(Result::is_err) {
        return Err(e);
    }
    // A fresh process for the measurement (registration leaves hashing memory behind).
    srv.restart().await?;
    let sockets = connect_many(srv.addr, accounts.iter().map(|a| a.token.clone()).collect(), 64).await;
    let mut sockets: Vec<_> = sockets.into_iter().collect::<anyhow::Result<_>>()?;
    let rss_connected = srv.rss_bytes();

    // Every member's socket gets a reader that reports (seq, arrival) of group messages.
    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Instant)>();
    let mut writers = Vec::new();
    let acked = Arc::new(AtomicU64::new(0));
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<(String, Instant)>();
    for (i, ws) in sockets.drain(..).enumerate() {
        let (w, mut r) = ws.split();
        writers.push(w);
        let (tx, ack_tx, conv) = (tx.clone(), ack_tx.clone(), conv.clone());
        tokio::spawn(async move {
            while let Some(Ok(m)) = r.next().await {
                let WsMessage::Text(t) = m else { continue };
                let now = Instant::now();
                let Ok(f) = serde_json::from_str::<Frame>(t.as_str()) else { continue };
                match f.ty.as_ref() {
                    "message" if t.as_str().contains(&conv) => {
                        if let Some(msg) = f.message {
                            let _ = tx.send((msg.seq, now));
                        }
                    }
                    "ack" => {
                        let _ = ack_tx.send((f.client_id.map(std::borrow::Cow::into_owned).unwrap_or_default(), now));
                    }
                    _ => {}
                }
                let _ = i;
            }
        });
    }
    drop(tx);
    let receivers = (cli.members - 1) as u64;

    // Phase 1: one message at a time from the owner; time until every other member has it.
    let mut last_member = Vec::with_capacity(cli.rounds);
    let mut ack_lat = Vec::with_capacity(cli.rounds);
    let cpu_at = |srv: &server::Server| (srv.cpu_secs().unwrap_or(0.0), server::self_cpu_secs());
    let rounds_cpu = cpu_at(&srv);
    for round in 0..cli.rounds {
        let cid = format!("round-{round}");
        let t0 = Instant::now();
        writers[0].send(send_frame(&cid, &conv, "fan-out")).await?;
        let mut seq = None;
        let mut got = 0u64;
        let mut latest = t0;
        let deadline = t0 + Duration::from_secs(10);
        loop {
            tokio::select! {
                Some((c, at)) = ack_rx.recv() => if c == cid { ack_lat.push(u64::try_from((at - t0).as_micros()).unwrap_or(u64::MAX)); },
                Some((s, at)) = rx.recv() => {
                    if seq.is_none() || seq == Some(s) {
                        seq = Some(s);
                        got += 1;
                        latest = latest.max(at);
                    }
                }
                () = tokio::time::sleep_until(deadline) => bail!("round {round}: only {got}/{receivers} members got the message within 10 s"),
            }
            if got == receivers && ack_lat.len() == round + 1 {
                break;
            }
        }
        last_member.push(u64::try_from((latest - t0).as_micros()).unwrap_or(u64::MAX));
    }
    let (server_s, tool_s) = cpu_at(&srv);
    let rounds_cpu = (server_s - rounds_cpu.0, tool_s - rounds_cpu.1);
    let fan = Percentiles::of(last_member);
    let acks = Percentiles::of(ack_lat);
    println!("fan-out to {receivers} connected members, {} rounds", cli.rounds);
    println!("  time until the last member has it: {}", fan.line_ms());
    println!("  sender's ack:                      {}", acks.line_ms());
    let per_round_ms = |cpu: f64| cpu * 1000.0 / cli.rounds as f64;
    println!(
        "  CPU per round: server {:.2} ms, load tool {:.2} ms (its 1,000 readers parse every delivery)",
        per_round_ms(rounds_cpu.0),
        per_round_ms(rounds_cpu.1)
    );

    // Phase 2: a busy group: several members send as fast as acks come back.
    let busy = cli.busy_senders.min(cli.members - 1).max(1);
    let deliveries = Arc::new(AtomicU64::new(0));
    let counter = deliveries.clone();
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            counter.fetch_add(1, Relaxed);
        }
    });
    let stop = Instant::now() + Duration::from_secs(cli.busy_seconds);
    let start = Instant::now();
    let busy_cpu = cpu_at(&srv);
    let delivered_before = deliveries.load(Relaxed);
    let mut senders = Vec::new();
    let mut ack_chans = Vec::new();
    let mut route: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for i in 0..busy {
        let (atx, arx) = mpsc::unbounded_channel::<()>();
        ack_chans.push(atx);
        route.insert(format!("busy-{i}-"), i);
        let mut w = writers.pop().context("not enough sockets")?;
        let conv = conv.clone();
        let acked = acked.clone();
        senders.push(tokio::spawn(async move {
            let mut arx = arx;
            let mut n = 0u64;
            while Instant::now() < stop {
                if w.send(send_frame(&format!("busy-{i}-{n}"), &conv, "busy group")).await.is_err() {
                    break;
                }
                if tokio::time::timeout(Duration::from_secs(10), arx.recv()).await.ok().flatten().is_none() {
                    break;
                }
                n += 1;
                acked.fetch_add(1, Relaxed);
            }
        }));
    }
    tokio::spawn(async move {
        while let Some((cid, _)) = ack_rx.recv().await {
            if let Some(rest) = cid.strip_prefix("busy-")
                && let Some(i) = rest.split('-').next().and_then(|s| s.parse::<usize>().ok())
                && let Some(ch) = ack_chans.get(i)
            {
                let _ = ch.send(());
            }
        }
    });
    for s in senders {
        let _ = s.await;
    }
    let secs = start.elapsed().as_secs_f64();
    // Let deliveries in flight land before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = acked.load(Relaxed);
    let delivered = deliveries.load(Relaxed) - delivered_before;
    let (server_s, tool_s) = cpu_at(&srv);
    let busy_cpu = (server_s - busy_cpu.0, tool_s - busy_cpu.1);
    let per_delivery_us = |cpu: f64| cpu * 1e6 / delivered.max(1) as f64;
    println!("busy group: {busy} members sending, {secs:.1} s");
    println!(
        "  {:.0} messages/s stored, {:.0} deliveries/s ({} of {} expected)",
        sent as f64 / secs,
        delivered as f64 / secs,
        delivered,
        sent * receivers
    );
    println!(
        "  CPU: server {:.1} s ({:.2} µs per delivery), load tool {:.1} s ({:.2} µs per delivery), over {secs:.1} s on {} cores",
        busy_cpu.0,
        per_delivery_us(busy_cpu.0),
        busy_cpu.1,
        per_delivery_us(busy_cpu.1),
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    let rss = srv.rss_bytes();
    println!(
        "{}",
        json!({
            "scenario": "fanout", "members": cli.members, "rounds": cli.rounds,
            "last_member_ms": fan.json_ms(), "ack_ms": acks.json_ms(),
            "busy_senders": busy, "busy_msgs_per_s": sent as f64 / secs, "busy_deliveries_per_s": delivered as f64 / secs,
            "server_rss_connected": rss_connected, "server_rss_end": rss,
            "rounds_cpu_ms_per_round": {"server": per_round_ms(rounds_cpu.0), "load_tool": per_round_ms(rounds_cpu.1)},
            "busy_cpu_s": {"server": busy_cpu.0, "load_tool": busy_cpu.1},
            "busy_cpu_us_per_delivery": {"server": per_delivery_us(busy_cpu.0), "load_tool": per_delivery_us(busy_cpu.1)},
        })
    );
    srv.stop();
    Ok(())
}
