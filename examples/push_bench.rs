//! Web Push benchmark: a group whose members are all subscribed and offline, so that every
//! message becomes one push per member, sent to a push service on loopback; measured are pushes
//! per second, server CPU per push (encryption and signing included), and the delivery latency to
//! the group's online members, once without any subscription and once with (it must not rise).
//!
//! ```text
//! cargo build --release
//! cargo run --release --example push_bench -- --offline 1000 --online 20 --messages 20 --interval-ms 500
//! ```
//!
//! It starts `target/release/chinwag serve` on a free 127.0.0.1 port with a temporary data dir
//! (through the load tool's server module), with `push.allow_http` and `push.endpoint_allow`
//! opened for 127.0.0.1 only. Loopback only; every loop is bounded in count and time.

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
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use clap::Parser;
use futures_util::{SinkExt, StreamExt, stream};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use client::{Frame, Percentiles, connect_many, register_many, run_prefix, send_frame};
use server::{CpuWindow, Server};

#[derive(Parser)]
#[command(about = "Chinwag Web Push benchmark")]
struct Cli {
    #[arg(long, default_value = "target/release/chinwag")]
    server: PathBuf,
    /// Members subscribed to push and not connected.
    #[arg(long, default_value_t = 1000)]
    offline: usize,
    /// Members connected (the sender is one of them); their delivery latency is measured.
    #[arg(long, default_value_t = 20)]
    online: usize,
    /// Messages per phase.
    #[arg(long, default_value_t = 20)]
    messages: usize,
    /// Time between two messages of a phase.
    #[arg(long, default_value_t = 500)]
    interval_ms: u64,
}

/// The loopback push service: counts what it gets, and when the last one came.
#[derive(Default)]
struct Received {
    count: AtomicU64,
    bytes: AtomicU64,
}

async fn push_service() -> anyhow::Result<(std::net::SocketAddr, Arc<Received>)> {
    let got = Arc::new(Received::default());
    let state = got.clone();
    let app = axum::Router::new().route(
        "/p/{id}",
        axum::routing::post(move |body: axum::body::Bytes| {
            let got = state.clone();
            async move {
                got.count.fetch_add(1, Relaxed);
                got.bytes.fetch_add(body.len() as u64, Relaxed);
                axum::http::StatusCode::CREATED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((addr, got))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    if cli.online < 2 || cli.offline + cli.online > 2000 {
        bail!("--online must be at least 2, and --offline plus --online at most 2000 (the default group size limit)");
    }
    let (push_addr, received) = push_service().await?;
    let env = vec![
        ("CHINWAG_TURN__ENABLED".to_owned(), "false".to_owned()),
        ("CHINWAG_LIMITS__OUTBOUND_QUEUE".to_owned(), "4096".to_owned()),
        ("CHINWAG_PUSH__ALLOW_HTTP".to_owned(), "true".to_owned()),
        ("CHINWAG_PUSH__ENDPOINT_ALLOW".to_owned(), r#"["127.0.0.1/32"]"#.to_owned()),
        ("CHINWAG_PUSH__QUEUE".to_owned(), (cli.offline * cli.messages + 1000).to_string()),
    ];
    let mut srv = Server::spawn(&cli.server, &env).await?;
    let base = srv.base_url();
    let http = reqwest::Client::new();
    let n = cli.offline + cli.online;
    eprintln!("registering {n} members");
    let accounts = register_many(&http, &base, &run_prefix(), n, 4).await?;
    let owner = &accounts[0];
    let g: serde_json::Value = http
        .post(format!("{base}/api/groups"))
        .bearer_auth(&owner.token)
        .json(&json!({"name": "push", "join_mode": "open"}))
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
    srv.restart().await?;
    let base = srv.base_url();

    // The online members (the first `online` accounts; the first one sends).
    let online: Vec<String> = accounts[..cli.online].iter().map(|a| a.token.clone()).collect();
    let sockets: Vec<_> = connect_many(srv.addr, online, 32).await.into_iter().collect::<anyhow::Result<_>>()?;
    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Instant)>();
    let mut writers = Vec::new();
    for ws in sockets {
        let (w, mut r) = ws.split();
        writers.push(w);
        let (tx, conv) = (tx.clone(), conv.clone());
        tokio::spawn(async move {
            while let Some(Ok(m)) = r.next().await {
                let WsMessage::Text(t) = m else { continue };
                let now = Instant::now();
                let Ok(f) = serde_json::from_str::<Frame>(t.as_str()) else { continue };
                if f.ty == "message"
                    && t.as_str().contains(&conv)
                    && let Some(msg) = f.message
                {
                    let _ = tx.send((msg.seq, now));
                }
            }
        });
    }
    drop(tx);
    let receivers = (cli.online - 1) as u64;

    let mut phase = async |name: &str| -> anyhow::Result<(Percentiles, f64)> {
        let mut last = Vec::with_capacity(cli.messages);
        let start = Instant::now();
        for i in 0..cli.messages {
            let t0 = Instant::now();
            writers[0].send(send_frame(&format!("{name}-{i}"), &conv, "push benchmark")).await?;
            let (mut seq, mut got, mut latest) = (None, 0u64, t0);
            let deadline = t0 + Duration::from_secs(10);
            while got < receivers {
                tokio::select! {
                    Some((s, at)) = rx.recv() => if seq.is_none() || seq == Some(s) { seq = Some(s); got += 1; latest = latest.max(at); },
                    () = tokio::time::sleep_until(deadline) => bail!("{name} message {i}: only {got}/{receivers} online members got it within 10 s"),
                }
            }
            last.push(u64::try_from((latest - t0).as_micros()).unwrap_or(u64::MAX));
            tokio::time::sleep_until(t0 + Duration::from_millis(cli.interval_ms)).await;
        }
        Ok((Percentiles::of(last), start.elapsed().as_secs_f64()))
    };

    // Phase 1: nobody subscribed.
    let (quiet, _) = phase("quiet").await?;

    // Every offline member subscribes (one key pair for all: the client's cost is not measured).
    let mut raw = [0u8; 32];
    let secret = loop {
        rand::fill(&mut raw);
        if let Ok(k) = p256::SecretKey::from_slice(&raw) {
            break k;
        }
    };
    let p256dh = B64.encode(secret.public_key().to_encoded_point(false).as_bytes());
    let auth = B64.encode([7u8; 16]);
    let subscribed: Vec<anyhow::Result<()>> = stream::iter(accounts[cli.online..].iter().enumerate())
        .map(|(i, a)| {
            let (http, base, p256dh, auth) = (http.clone(), base.clone(), p256dh.clone(), auth.clone());
            async move {
                let body = json!({"endpoint": format!("http://{push_addr}/p/{i}"), "expirationTime": null, "keys": {"p256dh": p256dh, "auth": auth}});
                let r = http.post(format!("{base}/api/push/subscriptions")).bearer_auth(&a.token).json(&body).send().await?;
                if r.status() != 201 {
                    bail!("subscribe: {}", r.status());
                }
                Ok(())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    if let Some(Err(e)) = subscribed.into_iter().find(Result::is_err) {
        return Err(e);
    }

    // Phase 2: every message pushed to every offline member.
    let cpu = CpuWindow::start(&srv);
    let t0 = Instant::now();
    let (busy, sending_secs) = phase("pushed").await?;
    let expected = (cli.offline * cli.messages) as u64;
    let deadline = Instant::now() + Duration::from_secs(300);
    while received.count.load(Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_secs = t0.elapsed().as_secs_f64();
    let used = cpu.end(&srv);
    let pushes = received.count.load(Relaxed);
    let metrics = http.get(format!("{base}/metrics")).send().await?.text().await?;
    let metric = |name: &str| metrics.lines().find_map(|l| l.strip_prefix(&format!("chinwag_{name} "))).unwrap_or("?").to_owned();

    println!(
        "web push: {} offline subscribed members, {} online, {} messages {} ms apart",
        cli.offline, cli.online, cli.messages, cli.interval_ms
    );
    println!(
        "  pushes received:   {pushes}/{expected} in {all_secs:.1} s ({:.0} pushes/s; messages sent over {sending_secs:.1} s)",
        pushes as f64 / all_secs
    );
    println!("  server CPU:        {} ({:.0} us per push)", used.line(), used.server.unwrap_or(0.0) * 1e6 / pushes.max(1) as f64);
    println!("  payload:           {:.0} bytes per push on the wire", received.bytes.load(Relaxed) as f64 / pushes.max(1) as f64);
    println!("  failed/dropped:    {}/{}", metric("push_failed"), metric("push_dropped"));
    println!("  online delivery without pushes: {}", quiet.line_ms());
    println!("  online delivery while pushing:  {}", busy.line_ms());
    println!(
        "{}",
        json!({"scenario":"push","offline":cli.offline,"online":cli.online,"messages":cli.messages,"pushes":pushes,"expected":expected,
            "pushes_per_sec": pushes as f64 / all_secs,"server_cpu_us_per_push": used.server.unwrap_or(0.0) * 1e6 / pushes.max(1) as f64,
            "cpu":used.json(),"quiet_p50_us":quiet.p50,"quiet_p99_us":quiet.p99,"pushing_p50_us":busy.p50,"pushing_p99_us":busy.p99})
    );
    srv.stop();
    if pushes < expected {
        bail!("only {pushes} of {expected} pushes arrived");
    }
    Ok(())
}
