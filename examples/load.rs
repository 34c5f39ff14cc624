//! Load tool: simulates many users over the real protocol (HTTP registration, WebSocket `send`,
//! `ack` and `message` frames, the history route) against a real `chinwag serve` process.
//!
//! ```text
//! cargo build --release
//! cargo run --release --example load -- throughput --senders 1000 --messages 50000 [--compare]
//! cargo run --release --example load -- latency --clients 10000 --active 1000 --rate 5000 --seconds 20
//! cargo run --release --example load -- idle --connections 5000,10000
//! cargo run --release --example load -- crash --runs 20 --double-runs 10 --clients 50 --rate 0
//! cargo run --release --example load -- disk-full          # as root: mounts a small tmpfs
//! cargo run --release --example load -- slow-reader --rounds 5 --baseline-secs 60 --seconds 60
//! cargo run --release --example load -- frames --sockets 100
//! cargo run --release --example load -- steady --users 1000 --rate 200 --minutes 30
//! ```
//!
//! `crash`, `disk-full`, `slow-reader` and `frames` are the proofs R1/R2, R3, R5 and S6 of
//! docs/reliability.md (`scripts/proof` runs them); they print PASS or FAIL against their bars.
//!
//! By default it starts `target/release/chinwag serve` on a free 127.0.0.1 port with a
//! temporary data dir and stops it at the end; `--addr HOST:PORT` (and `--pid` for memory)
//! measures a server that is already running. Traffic is loopback only, every loop is bounded
//! in count and time, and each scenario prints a short report followed by one JSON line.
//! The exit code is 0 when no errors were counted, 1 when some were, 2 when a run failed.

#[path = "load/client.rs"]
mod client;
#[path = "load/crash.rs"]
mod crash;
#[path = "load/diskfull.rs"]
mod diskfull;
#[path = "load/frames.rs"]
mod frames;
#[path = "load/server.rs"]
mod server;
#[path = "load/slow.rs"]
mod slow;
#[path = "load/steady.rs"]
mod steady;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use futures_util::{SinkExt, StreamExt, stream};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

use client::{Frame, Percentiles, Ws, connect_many, dm, mib, padding, send_frame};
use server::{CpuWindow, Server, wait_quiet};

/// Sockets one process may hold here (the hard limit on this machine is 20,000 files).
const SOCKET_CEILING: u64 = 20_000;
/// Files kept free for everything else (HTTP clients, the runtime, stdio).
const FD_MARGIN: u64 = 500;
/// Sockets opened at once.
const CONNECT_CONCURRENCY: usize = 64;

#[derive(Parser)]
#[command(
    about = "Chinwag load tool: throughput, latency and idle-memory scenarios, and the crash, disk-full, slow-reader and frames proofs"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    scenario: Scenario,
}

// These doc comments are clap's --help text, printed as written: no Markdown.
#[allow(clippy::doc_markdown)]
#[derive(Args, Clone)]
struct Common {
    /// The server binary to spawn.
    #[arg(long, global = true, default_value = "target/release/chinwag")]
    server: PathBuf,
    /// Use an already running server on this loopback address instead of spawning one.
    #[arg(long, global = true)]
    addr: Option<SocketAddr>,
    /// Process id of the server given with --addr, to read its memory and CPU time.
    #[arg(long, global = true)]
    pid: Option<u32>,
    /// Extra setting for the spawned server, as CHINWAG_SECTION__KEY=VALUE (repeatable).
    #[arg(long = "server-env", global = true, value_name = "VAR=VALUE")]
    server_env: Vec<String>,
    /// Keep the spawned server running after registration instead of restarting it on its data
    /// dir (the restart drops the ~0.5-1 GiB of heap that password hashing leaves behind).
    #[arg(long, global = true)]
    no_restart: bool,
    /// Before measuring, wait up to this many seconds for the machine to be idle (other builds
    /// and tests share the cores); 0 measures at once.
    #[arg(long, global = true, default_value_t = 0)]
    wait_quiet: u64,
    /// Registrations in flight at once (the server hashes two passwords at a time).
    #[arg(long, global = true, default_value_t = 4)]
    register_concurrency: usize,
}

// These doc comments are clap's --help text, printed as written: no Markdown.
#[allow(clippy::doc_markdown)]
#[derive(Subcommand)]
enum Scenario {
    /// Closed-loop senders in pairs: durable (acked) messages per second.
    Throughput(ThroughputArgs),
    /// Open-loop sends at a fixed rate among many idle sockets: delivery latency.
    Latency(LatencyArgs),
    /// Server memory per idle authenticated WebSocket.
    Idle(IdleArgs),
    /// SIGKILL at random moments under load, restart, resend: nothing acknowledged lost or
    /// stored twice (R1, R2).
    Crash(crash::CrashArgs),
    /// One group member never reads while the others send: memory, cut-off time, others'
    /// latency (R5).
    SlowReader(slow::SlowArgs),
    /// The data dir on a small tmpfs that fills up: clear refusals, no panic, writes resume, nothing
    /// acknowledged lost (R3; needs root to mount).
    DiskFull(diskfull::DiskFullArgs),
    /// Sockets at once sending JSON nested 10,000 deep and frames declaring 64 MiB: bad_frame,
    /// close 1009, server memory (S6).
    Frames(frames::FramesArgs),
    /// Users in pairs and groups at a steady rate with HTTP requests alongside for many minutes:
    /// server errors, delivery p99, no memory growth trend (R7).
    Steady(steady::SteadyArgs),
}

// These doc comments are clap's --help text, printed as written: no Markdown.
#[allow(clippy::doc_markdown)]
#[derive(Args, Clone)]
struct ThroughputArgs {
    /// Users, each sending to its partner (pairs), one message in flight each.
    #[arg(long, default_value_t = 1000)]
    senders: usize,
    /// Messages in total, spread evenly over the senders.
    #[arg(long, default_value_t = 50_000)]
    messages: usize,
    /// Passes CHINWAG_LIMITS__MAX_BATCH to the spawned server.
    #[arg(long)]
    max_batch: Option<usize>,
    /// Runs twice, with the default max_batch and with max_batch=1, and prints the ratio.
    #[arg(long)]
    compare: bool,
    /// Conversations checked through the history route afterwards (0: none).
    #[arg(long, default_value_t = 100)]
    verify: usize,
    /// Bytes of text per message.
    #[arg(long, default_value_t = 100)]
    text_bytes: usize,
    /// Longest the sending phase may take, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

#[derive(Args, Clone)]
struct LatencyArgs {
    /// WebSocket connections in total (active plus idle).
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    /// Active users (in pairs), one socket each; they send and receive.
    #[arg(long, default_value_t = 1000)]
    active: usize,
    /// Users whose devices make up the idle sockets.
    #[arg(long, default_value_t = 100)]
    idle_users: usize,
    /// Messages per second, all senders together, evenly spread.
    #[arg(long, default_value_t = 5000)]
    rate: u64,
    /// Measured seconds of sending.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Seconds of sending before the measured window (excluded from the figures).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Bytes of text per message.
    #[arg(long, default_value_t = 100)]
    text_bytes: usize,
}

#[derive(Args, Clone)]
struct IdleArgs {
    /// Idle sockets to hold, cumulative steps (e.g. 5000,10000).
    #[arg(long, value_delimiter = ',', default_value = "5000")]
    connections: Vec<usize>,
    /// Users whose devices make up the sockets.
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// Seconds to wait before reading memory.
    #[arg(long, default_value_t = 3)]
    settle: u64,
    /// Pass bar: server memory per idle socket at the largest step, KiB (the plan's target).
    #[arg(long, default_value_t = 8.0)]
    max_kib_per_connection: f64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let fd_limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("load: cannot raise the open-file limit: {e}");
            1024
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("load: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = rt.block_on(run(cli, fd_limit));
    rt.shutdown_timeout(Duration::from_secs(2));
    match outcome {
        Ok(0) => ExitCode::SUCCESS,
        Ok(errors) => {
            eprintln!("load: {errors} errors counted");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("load: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli, fd_limit: u64) -> anyhow::Result<u64> {
    let budget = fd_limit.min(SOCKET_CEILING).saturating_sub(FD_MARGIN) as usize;
    let cmd: Vec<String> = std::env::args().skip(1).collect();
    eprintln!(
        "load: open-file limit {fd_limit}, socket budget {budget}; {} cores",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    let (report, errors) = match &cli.scenario {
        Scenario::Throughput(a) => throughput(&cli.common, a).await?,
        Scenario::Latency(a) => latency(&cli.common, a, budget).await?,
        Scenario::Idle(a) => idle(&cli.common, a, budget).await?,
        Scenario::Crash(a) => crash::crash(&cli.common, a).await?,
        Scenario::SlowReader(a) => slow::slow_reader(&cli.common, a).await?,
        Scenario::DiskFull(a) => diskfull::disk_full(&cli.common, a).await?,
        Scenario::Frames(a) => frames::frames(&cli.common, a).await?,
        Scenario::Steady(a) => steady::steady(&cli.common, a).await?,
    };
    let mut report = report;
    report["command"] = json!(format!("load {}", cmd.join(" ")));
    println!("{}", serde_json::to_string(&report)?);
    Ok(errors)
}

fn parse_env(list: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    list.iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').with_context(|| format!("--server-env {kv}: expected VAR=VALUE"))?;
            Ok((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// Spawns or attaches to the server, with extra settings for a spawned one.
async fn server_for(common: &Common, extra: &[(String, String)]) -> anyhow::Result<Server> {
    if let Some(addr) = common.addr {
        if !addr.ip().is_loopback() {
            bail!("--addr must be a loopback address (127.0.0.0/8 or ::1)");
        }
        if !extra.is_empty() {
            bail!("server settings (--max-batch, --compare, --server-env) need a spawned server, not --addr");
        }
        return Ok(Server::attach(addr, common.pid));
    }
    let mut env = parse_env(&common.server_env)?;
    env.extend(extra.iter().cloned());
    let s = Server::spawn(&common.server, &env).await?;
    eprintln!("load: spawned {} (pid {}) on {}", common.server.display(), s.pid.unwrap_or(0), s.addr);
    Ok(s)
}

/// Called after registration: returns the server's memory at that point, then restarts a spawned
/// server on the same data dir so that the figures start from a fresh process.
async fn after_registration(srv: &mut Server, common: &Common) -> anyhow::Result<Option<u64>> {
    let rss = srv.rss_bytes();
    if srv.is_spawned() && !common.no_restart {
        srv.restart().await?;
        eprintln!(
            "load: server RSS after registration {} MiB; restarted it on the same data dir (pid {}, {} MiB)",
            opt_mib(rss),
            srv.pid.unwrap_or(0),
            opt_mib(srv.rss_bytes())
        );
    }
    Ok(rss)
}

fn server_env(s: &Server) -> Value {
    s.env.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

fn machine_note() -> Value {
    json!({
        "cores": std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        "note": "load tool and server share the machine",
    })
}

fn opt_mib(b: Option<u64>) -> Value {
    b.map_or(Value::Null, |b| json!(mib(b)))
}

// ---------------------------------------------------------------------------------------------
// throughput

#[derive(Default)]
struct TpCounters {
    acked: AtomicU64,
    delivered: AtomicU64,
    error_frames: AtomicU64,
    timeouts: AtomicU64,
    disconnects: AtomicU64,
    order_violations: AtomicU64,
    bad_frames: AtomicU64,
}

struct SenderOut {
    conv_index: usize,
    lat_us: Vec<u64>,
    /// (client id, seq, sender) of every acked message.
    acked: Vec<(String, u64, u64)>,
    finished: Option<Instant>,
}

async fn throughput(common: &Common, a: &ThroughputArgs) -> anyhow::Result<(Value, u64)> {
    if a.senders < 2 || !a.senders.is_multiple_of(2) {
        bail!("--senders must be an even number of at least 2");
    }
    if !a.compare {
        return throughput_once(common, a, a.max_batch).await;
    }
    eprintln!("load: run 1 of 2, default max_batch (group commit)");
    let (group, e1) = throughput_once(common, a, a.max_batch).await?;
    eprintln!("load: run 2 of 2, max_batch=1 (one commit per message)");
    let (single, e2) = throughput_once(common, a, Some(1)).await?;
    let (g, s) = (group["acked_per_sec"].as_f64().unwrap_or(0.0), single["acked_per_sec"].as_f64().unwrap_or(0.0));
    let ratio = if s > 0.0 { g / s } else { 0.0 };
    println!("== compare: group commit {g:.0}/s vs one commit per message {s:.0}/s: ratio {ratio:.1}x");
    Ok((
        json!({
            "scenario": "throughput_compare",
            "group_commit": group,
            "single_commit": single,
            "ratio": (ratio * 100.0).round() / 100.0,
            "errors_total": e1 + e2,
        }),
        e1 + e2,
    ))
}

async fn throughput_once(common: &Common, a: &ThroughputArgs, max_batch: Option<usize>) -> anyhow::Result<(Value, u64)> {
    let extra: Vec<(String, String)> = max_batch.map(|b| vec![("CHINWAG_LIMITS__MAX_BATCH".to_owned(), b.to_string())]).unwrap_or_default();
    let mut srv = server_for(common, &extra).await?;
    let http = reqwest::Client::new();
    let users = client::register_many(&http, &srv.base_url(), &client::run_prefix(), a.senders, common.register_concurrency).await?;
    let rss_registered = after_registration(&mut srv, common).await?;
    let socks = connect_many(srv.addr, users.iter().map(|u| u.token.clone()).collect(), CONNECT_CONCURRENCY).await;
    let mut wss = Vec::with_capacity(socks.len());
    for (i, s) in socks.into_iter().enumerate() {
        wss.push(s.with_context(|| format!("socket of sender {i}"))?);
    }
    let rss_before = srv.rss_bytes();
    let counters = Arc::new(TpCounters::default());
    let stop = CancellationToken::new();
    let (go_tx, go_rx) = watch::channel(false);
    let deadline = Instant::now() + Duration::from_secs(a.timeout + common.wait_quiet + 10);
    let per = a.messages / a.senders;
    let extra_msgs = a.messages % a.senders;
    let mut tasks = Vec::with_capacity(a.senders);
    for (i, ws) in wss.into_iter().enumerate() {
        let me = users[i].id;
        let peer = users[i ^ 1].id;
        let n = per + usize::from(i < extra_msgs);
        let job = SenderJob { me, peer, conv: dm(me, peer), conv_index: i / 2, n, text_bytes: a.text_bytes };
        tasks.push(tokio::spawn(tp_sender(ws, job, go_rx.clone(), stop.clone(), counters.clone(), deadline)));
    }
    // Let every task reach its starting line, then go.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let quiet = wait_quiet(Duration::from_secs(common.wait_quiet)).await;
    let cpu = CpuWindow::start(&srv);
    let t0 = Instant::now();
    go_tx.send_replace(true);
    let send_deadline = t0 + Duration::from_secs(a.timeout);
    let mut outs: Vec<SenderOut> = Vec::with_capacity(tasks.len());
    // Wait for the senders to finish sending (they report `finished`) by polling the counters;
    // the tasks themselves keep reading deliveries until `stop`.
    let total_expected = a.messages as u64;
    loop {
        let c = &*counters;
        let settled = c.acked.load(Relaxed) + c.error_frames.load(Relaxed) + c.timeouts.load(Relaxed) >= total_expected;
        if settled || Instant::now() > send_deadline || c.disconnects.load(Relaxed) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall_hint = t0.elapsed();
    let cpu = cpu.end(&srv);
    // Deliveries of the last acks.
    let drain_until = Instant::now() + Duration::from_secs(5);
    while counters.delivered.load(Relaxed) < counters.acked.load(Relaxed) && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(40), t).await {
            Ok(Ok(o)) => outs.push(o),
            _ => {
                counters.timeouts.fetch_add(1, Relaxed);
            }
        }
    }
    let alive = srv.check_alive();
    let rss_after = srv.rss_bytes();
    let last = outs.iter().filter_map(|o| o.finished).max();
    let elapsed = last.map_or(wall_hint, |l| l.duration_since(t0));
    let c = &*counters;
    let acked = c.acked.load(Relaxed);
    let delivered = c.delivered.load(Relaxed);
    let rate = acked as f64 / elapsed.as_secs_f64().max(1e-9);
    let lat = Percentiles::of(outs.iter().flat_map(|o| o.lat_us.iter().copied()).collect());

    // Every acked message is stored: count and seq 1..N, through the history route.
    let (verified, problems) = if a.verify > 0 {
        let pairs = a.senders / 2;
        let step = (pairs as f64 / a.verify.min(pairs) as f64).max(1.0);
        let picks: Vec<usize> = (0..a.verify.min(pairs)).map(|j| ((j as f64 * step) as usize).min(pairs - 1)).collect();
        let mut by_conv: Vec<Vec<(String, u64, u64)>> = vec![Vec::new(); pairs];
        for o in &outs {
            by_conv[o.conv_index].extend(o.acked.iter().cloned());
        }
        let checks = picks
            .iter()
            .map(|&p| {
                let u = &users[2 * p];
                (dm(users[2 * p].id, users[2 * p + 1].id), u.token.clone(), std::mem::take(&mut by_conv[p]))
            })
            .collect();
        verify_history(&http, &srv.base_url(), checks).await
    } else {
        (0, Vec::new())
    };

    let errors = c.error_frames.load(Relaxed)
        + c.timeouts.load(Relaxed)
        + c.disconnects.load(Relaxed)
        + c.order_violations.load(Relaxed)
        + c.bad_frames.load(Relaxed)
        + (acked.saturating_sub(delivered))
        + problems.len() as u64
        + (total_expected.saturating_sub(acked))
        + u64::from(alive.is_err());
    let batch_label = max_batch.map_or("default".to_owned(), |b| b.to_string());
    println!("== throughput: {} senders in {} pairs, {} messages, max_batch {batch_label}", a.senders, a.senders / 2, a.messages);
    println!("  acked {acked} in {:.2} s: {rate:.0} durable messages/s; delivered to partner {delivered}", elapsed.as_secs_f64());
    println!("  ack latency (closed loop): {}", lat.line_ms());
    println!("  server RSS {} MiB before, {} MiB after", opt_mib(rss_before), opt_mib(rss_after));
    println!("  {}", cpu.line());
    println!("  verified {verified} conversations through history: {} problems", problems.len());
    for p in problems.iter().take(10) {
        println!("    {p}");
    }
    println!(
        "  errors: {errors} (error frames {}, timeouts {}, disconnects {}, order violations {}, undelivered {}, unacked {}, server exited {})",
        c.error_frames.load(Relaxed),
        c.timeouts.load(Relaxed),
        c.disconnects.load(Relaxed),
        c.order_violations.load(Relaxed),
        acked.saturating_sub(delivered),
        total_expected.saturating_sub(acked),
        alive.is_err()
    );
    let problems_logged = srv.log_problems();
    if problems_logged > 0 {
        println!("  server log: {problems_logged} WARN/ERROR lines");
    }
    let report = json!({
        "scenario": "throughput",
        "senders": a.senders,
        "messages": a.messages,
        "max_batch": batch_label,
        "text_bytes": a.text_bytes,
        "acked": acked,
        "delivered": delivered,
        "seconds": (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        "acked_per_sec": rate.round(),
        "ack_latency": lat.json_ms(),
        "server_rss_mib_after_registration": opt_mib(rss_registered),
        "restarted_after_registration": srv.is_spawned() && !common.no_restart,
        "server_rss_mib_before": opt_mib(rss_before),
        "server_rss_mib_after": opt_mib(rss_after),
        "cpu": cpu.json(),
        "waited_for_quiet_s": quiet.0.round(),
        "machine_was_quiet": quiet.1,
        "server_cpu_us_per_msg": cpu.server.map(|s| (s * 1e6 / acked.max(1) as f64).round()),
        "load_tool_cpu_us_per_msg": (cpu.me * 1e6 / acked.max(1) as f64).round(),
        "verified_conversations": verified,
        "verify_problems": problems.len(),
        "server_log_warnings": problems_logged,
        "errors": {
            "total": errors,
            "error_frames": c.error_frames.load(Relaxed),
            "timeouts": c.timeouts.load(Relaxed),
            "disconnects": c.disconnects.load(Relaxed),
            "order_violations": c.order_violations.load(Relaxed),
            "undelivered": acked.saturating_sub(delivered),
            "unacked": total_expected.saturating_sub(acked),
        },
        "server_env": server_env(&srv),
        "machine": machine_note(),
    });
    srv.stop();
    Ok((report, errors))
}

struct SenderJob {
    me: u64,
    peer: u64,
    conv: String,
    conv_index: usize,
    n: usize,
    text_bytes: usize,
}

/// What a frame read while waiting means to a closed-loop sender.
enum Seen {
    Ack(u64),
    Refused,
    Other,
    Gone,
}

/// One closed-loop sender: send, wait for its ack (counting deliveries from the partner on the
/// way), repeat; then keep reading deliveries until `stop`.
async fn tp_sender(
    mut ws: Ws,
    job: SenderJob,
    mut go: watch::Receiver<bool>,
    stop: CancellationToken,
    c: Arc<TpCounters>,
    deadline: Instant,
) -> SenderOut {
    let mut out =
        SenderOut { conv_index: job.conv_index, lat_us: Vec::with_capacity(job.n), acked: Vec::with_capacity(job.n), finished: None };
    let mut last_peer_seq = 0u64;
    let _ = go.wait_for(|g| *g).await;
    let mut gone = false;
    'msgs: for j in 0..job.n {
        if stop.is_cancelled() {
            break;
        }
        let cid = format!("{}-{j}", job.me);
        let head = format!("m{j} ");
        let text = format!("{head}{}", padding(head.len(), job.text_bytes));
        let t = Instant::now();
        if ws.send(send_frame(&cid, &job.conv, &text)).await.is_err() {
            c.disconnects.fetch_add(1, Relaxed);
            gone = true;
            break;
        }
        let wait_until = deadline.min(t + Duration::from_secs(30));
        loop {
            let next = tokio::time::timeout_at(wait_until, ws.next()).await;
            let Ok(next) = next else {
                c.timeouts.fetch_add(1, Relaxed);
                break 'msgs;
            };
            match tp_frame(next, Some(&cid), job.peer, &mut last_peer_seq, &c) {
                Seen::Ack(seq) => {
                    out.lat_us.push(t.elapsed().as_micros() as u64);
                    out.acked.push((cid, seq, job.me));
                    c.acked.fetch_add(1, Relaxed);
                    break;
                }
                Seen::Refused => break,
                Seen::Other => {}
                Seen::Gone => {
                    gone = true;
                    break 'msgs;
                }
            }
        }
    }
    out.finished = Some(Instant::now());
    if !gone {
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                next = ws.next() => {
                    if let Seen::Gone = tp_frame(next, None, job.peer, &mut last_peer_seq, &c) {
                        break;
                    }
                }
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    }
    out
}

fn tp_frame(
    next: Option<Result<WsMessage, tokio_tungstenite::tungstenite::Error>>,
    want: Option<&str>,
    peer: u64,
    last_peer_seq: &mut u64,
    c: &TpCounters,
) -> Seen {
    match next {
        Some(Ok(WsMessage::Text(t))) => {
            let Ok(f) = serde_json::from_str::<Frame>(t.as_str()) else {
                c.bad_frames.fetch_add(1, Relaxed);
                return Seen::Other;
            };
            let mine = want.is_some() && f.client_id.as_deref() == want;
            match &*f.ty {
                "ack" if mine => Seen::Ack(f.message.map_or(0, |m| m.seq)),
                "error" => {
                    c.error_frames.fetch_add(1, Relaxed);
                    if mine { Seen::Refused } else { Seen::Other }
                }
                "message" => {
                    if let Some(m) = f.message
                        && m.sender == peer
                    {
                        c.delivered.fetch_add(1, Relaxed);
                        if m.seq <= *last_peer_seq {
                            c.order_violations.fetch_add(1, Relaxed);
                        }
                        *last_peer_seq = m.seq;
                    }
                    Seen::Other
                }
                _ => Seen::Other,
            }
        }
        Some(Ok(WsMessage::Close(_)) | Err(_)) | None => {
            c.disconnects.fetch_add(1, Relaxed);
            Seen::Gone
        }
        Some(Ok(_)) => Seen::Other,
    }
}

/// A conversation to check: (conversation id, a member's token, the acked (client id, seq, sender)).
type HistoryCheck = (String, String, Vec<(String, u64, u64)>);

/// Reads each conversation through `GET /api/conversations/{id}/messages` and checks that it
/// holds exactly the acked messages, with seq 1..N and no gaps. Returns (checked, problems).
async fn verify_history(http: &reqwest::Client, base: &str, checks: Vec<HistoryCheck>) -> (usize, Vec<String>) {
    let n = checks.len();
    let results: Vec<Vec<String>> = stream::iter(checks)
        .map(|(conv, token, acked)| async move {
            match fetch_history(http, base, &conv, &token, acked.len()).await {
                Err(e) => vec![format!("{conv}: history failed: {e:#}")],
                Ok(stored) => compare_history(&conv, &stored, &acked),
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    (n, results.into_iter().flatten().collect())
}

/// Every message of a conversation as (seq, sender, client id), oldest first.
async fn fetch_history(
    http: &reqwest::Client,
    base: &str,
    conv: &str,
    token: &str,
    expect: usize,
) -> anyhow::Result<Vec<(u64, u64, String)>> {
    let mut out = Vec::with_capacity(expect);
    let mut after = 0u64;
    // Bounded: a few pages more than the expected count needs.
    for _ in 0..(expect / 100 + 5) {
        let resp = http.get(format!("{base}/api/conversations/{conv}/messages?after={after}&limit=100")).bearer_auth(token).send().await?;
        let status = resp.status();
        let v: Value = resp.json().await?;
        if !status.is_success() {
            bail!("HTTP {status}: {v}");
        }
        let msgs = v["messages"].as_array().cloned().unwrap_or_default();
        for m in &msgs {
            out.push((m["seq"].as_u64().unwrap_or(0), m["sender"].as_u64().unwrap_or(0), m["client_id"].as_str().unwrap_or("").to_owned()));
        }
        match out.last() {
            Some(&(seq, _, _)) if v["has_more"] == true => after = seq,
            _ => return Ok(out),
        }
    }
    bail!("more pages than expected")
}

fn compare_history(conv: &str, stored: &[(u64, u64, String)], acked: &[(String, u64, u64)]) -> Vec<String> {
    let mut problems = Vec::new();
    if stored.len() != acked.len() {
        problems.push(format!("{conv}: {} messages stored, {} acked", stored.len(), acked.len()));
    }
    for (i, (seq, _, _)) in stored.iter().enumerate() {
        if *seq != i as u64 + 1 {
            problems.push(format!("{conv}: position {} holds seq {seq} (gap or disorder)", i + 1));
            break;
        }
    }
    for (cid, seq, sender) in acked {
        let ok = stored.get((*seq as usize).wrapping_sub(1)).is_some_and(|(s, who, c)| s == seq && who == sender && c == cid);
        if !ok {
            problems.push(format!("{conv}: acked {cid} as seq {seq}, history differs"));
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// latency

#[derive(Default)]
struct LatCounters {
    sent: AtomicU64,
    sent_measured: AtomicU64,
    send_failures: AtomicU64,
    received: AtomicU64,
    received_measured: AtomicU64,
    acked: AtomicU64,
    acked_measured: AtomicU64,
    error_frames: AtomicU64,
    bad_frames: AtomicU64,
    active_disconnects: AtomicU64,
    idle_disconnects: AtomicU64,
}

struct ReaderOut {
    /// (message number, latency) of every measured delivery.
    deliver_us: Vec<(u64, u64)>,
    ack_us: Vec<u64>,
}

/// Sender drivers: each owns the write halves of a share of the active sockets.
const DRIVERS: usize = 4;

async fn latency(common: &Common, a: &LatencyArgs, budget: usize) -> anyhow::Result<(Value, u64)> {
    if a.active < 2 || !a.active.is_multiple_of(2) {
        bail!("--active must be an even number of at least 2");
    }
    if a.clients < a.active {
        bail!("--clients must be at least --active");
    }
    if a.clients > budget {
        bail!("{} sockets exceed this process's budget of {budget}; run several load processes", a.clients);
    }
    if a.rate == 0 || a.seconds == 0 {
        bail!("--rate and --seconds must be positive");
    }
    let idle_n = a.clients - a.active;
    let idle_users = if idle_n == 0 { 0 } else { a.idle_users.max(1) };
    let mut srv = server_for(common, &[]).await?;
    let http = reqwest::Client::new();
    let prefix = client::run_prefix();
    let users = client::register_many(&http, &srv.base_url(), &prefix, a.active + idle_users, common.register_concurrency).await?;
    let (active_users, idle_accounts) = users.split_at(a.active);
    let rss_registered = after_registration(&mut srv, common).await?;
    let rss_empty = srv.rss_bytes();

    let stop = CancellationToken::new();
    let counters = Arc::new(LatCounters::default());
    // Idle devices first, so that the active sockets are fresh when the clock starts.
    let idle_tokens: Vec<String> = (0..idle_n).map(|i| idle_accounts[i % idle_users].token.clone()).collect();
    let mut idle_failed = 0u64;
    let mut keepers = Vec::with_capacity(idle_n);
    for r in connect_many(srv.addr, idle_tokens, CONNECT_CONCURRENCY).await {
        match r {
            Ok(ws) => keepers.push(tokio::spawn(keep_idle(ws, stop.clone(), counters.clone()))),
            Err(e) => {
                if idle_failed == 0 {
                    eprintln!("  idle socket failed: {e:#}");
                }
                idle_failed += 1;
            }
        }
    }
    let socks = connect_many(srv.addr, active_users.iter().map(|u| u.token.clone()).collect(), CONNECT_CONCURRENCY).await;
    let clock = std::time::Instant::now();
    let total_msgs = a.rate * (a.warmup + a.seconds);
    let warm_k = a.rate * a.warmup;
    let mut drivers: Vec<Vec<(usize, String, Sink)>> = (0..DRIVERS.min(a.active)).map(|_| Vec::new()).collect();
    let n_drivers = drivers.len();
    let mut readers = Vec::with_capacity(a.active);
    for (i, s) in socks.into_iter().enumerate() {
        let ws = s.with_context(|| format!("socket of active user {i}"))?;
        let (sink, stream) = ws.split();
        let conv = dm(active_users[i].id, active_users[i ^ 1].id);
        drivers[i % n_drivers].push((i, conv, sink));
        readers.push(tokio::spawn(lat_reader(stream, clock, warm_k, stop.clone(), counters.clone())));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let connected = a.active as u64 + keepers.len() as u64;
    let rss_connected = srv.rss_bytes();
    eprintln!("load: {connected} sockets open; sending {} messages/s for {} s (+{} s warm-up)", a.rate, a.seconds, a.warmup);

    let quiet = wait_quiet(Duration::from_secs(common.wait_quiet)).await;
    let cpu = CpuWindow::start(&srv);
    let base = Instant::now() + Duration::from_millis(100);
    let hard_end = base + Duration::from_secs(a.warmup + a.seconds + 30);
    // Every second: CPU that other processes on the machine used, to tell the server's own
    // tail from interference (builds and browsers of other work share these cores).
    let sampler = tokio::spawn(others_per_second(base, a.warmup + a.seconds, srv.pid));
    let mut driver_tasks = Vec::new();
    for senders in drivers {
        let plan = DriverPlan {
            active: a.active as u64,
            total: total_msgs,
            warm_k,
            rate: a.rate,
            base,
            hard_end,
            clock,
            text_bytes: a.text_bytes,
        };
        driver_tasks.push(tokio::spawn(lat_driver(senders, plan, counters.clone())));
    }
    let (lag_us, sinks) = join_drivers(driver_tasks).await;
    let send_wall = base.elapsed();
    // Wait for the last deliveries and acks.
    let drain_until = Instant::now() + Duration::from_secs(5);
    let c = &*counters;
    while (c.received_measured.load(Relaxed) < c.sent_measured.load(Relaxed) || c.acked.load(Relaxed) < c.sent.load(Relaxed))
        && Instant::now() < drain_until
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu = cpu.end(&srv);
    let rss_after = srv.rss_bytes();
    let alive = srv.check_alive();
    stop.cancel();
    let mut deliver_us = Vec::new();
    let mut ack_us = Vec::new();
    for r in readers {
        if let Ok(Ok(o)) = tokio::time::timeout(Duration::from_secs(10), r).await {
            deliver_us.extend(o.deliver_us);
            ack_us.extend(o.ack_us);
        }
    }
    for k in keepers {
        let _ = tokio::time::timeout(Duration::from_secs(10), k).await;
    }
    drop(sinks);

    // The worst latency of each second of sending, to tell steady slowness from stalls.
    let secs = (a.warmup + a.seconds) as usize;
    let mut per_sec: Vec<Vec<u64>> = vec![Vec::new(); secs];
    for &(k, lat) in &deliver_us {
        if let Some(v) = per_sec.get_mut((k / a.rate) as usize) {
            v.push(lat);
        }
    }
    let others = sampler.await.unwrap_or_default();
    // Deliveries in the measured seconds when other processes used under 10% of a core.
    let quiet_secs: Vec<usize> = (a.warmup as usize..secs).filter(|&i| others.get(i).is_some_and(|&o| o < QUIET_CORES)).collect();
    let quiet_lat = Percentiles::of(quiet_secs.iter().flat_map(|&i| per_sec[i].iter().copied()).collect());
    let timeline: Vec<(f64, f64)> = per_sec
        .into_iter()
        .skip(a.warmup as usize)
        .map(|v| {
            let p = Percentiles::of(v);
            (p.p99 as f64 / 1000.0, p.max as f64 / 1000.0)
        })
        .collect();
    let deliver = Percentiles::of(deliver_us.into_iter().map(|(_, l)| l).collect());
    let ack = Percentiles::of(ack_us);
    let lag = Percentiles::of(lag_us);
    let sent = c.sent.load(Relaxed);
    let sent_m = c.sent_measured.load(Relaxed);
    let recv_m = c.received_measured.load(Relaxed);
    let acked = c.acked.load(Relaxed);
    let errors = c.send_failures.load(Relaxed)
        + c.error_frames.load(Relaxed)
        + c.bad_frames.load(Relaxed)
        + c.active_disconnects.load(Relaxed)
        + c.idle_disconnects.load(Relaxed)
        + idle_failed
        + sent_m.saturating_sub(recv_m)
        + sent.saturating_sub(acked)
        + u64::from(alive.is_err());
    let achieved = sent_m as f64 / a.seconds as f64;
    println!(
        "== latency: {connected} sockets ({} active users in {} pairs, {} idle sockets of {idle_users} users), {} messages/s for {} s after {} s warm-up",
        a.active,
        a.active / 2,
        connected - a.active as u64,
        a.rate,
        a.seconds,
        a.warmup
    );
    println!("  send -> deliver: {}", deliver.line_ms());
    println!("  send -> ack:     {}", ack.line_ms());
    println!("  measured window: sent {sent_m} ({achieved:.0}/s), received {recv_m}; all: sent {sent}, acked {acked}");
    println!("  sender lag behind schedule: {}", lag.line_ms());
    println!("  delivery p99 per second (ms): {}", timeline.iter().map(|(p, _)| format!("{p:.1}")).collect::<Vec<_>>().join(" "));
    println!("  delivery max per second (ms): {}", timeline.iter().map(|(_, m)| format!("{m:.0}")).collect::<Vec<_>>().join(" "));
    println!(
        "  other processes per second (% of a core): {}",
        others.iter().skip(a.warmup as usize).map(|o| format!("{:.0}", o * 100.0)).collect::<Vec<_>>().join(" ")
    );
    println!("  send -> deliver in the {} quiet seconds (others < 10% of a core): {}", quiet_secs.len(), quiet_lat.line_ms());
    println!("  {}", cpu.line());
    println!(
        "  server RSS {} MiB with no sockets, {} MiB connected, {} MiB at the end",
        opt_mib(rss_empty),
        opt_mib(rss_connected),
        opt_mib(rss_after)
    );
    println!(
        "  errors: {errors} (send failures {}, error frames {}, active disconnects {}, idle disconnects {}, idle sockets not opened {idle_failed}, undelivered {}, unacked {}, server exited {})",
        c.send_failures.load(Relaxed),
        c.error_frames.load(Relaxed),
        c.active_disconnects.load(Relaxed),
        c.idle_disconnects.load(Relaxed),
        sent_m.saturating_sub(recv_m),
        sent.saturating_sub(acked),
        alive.is_err()
    );
    let problems_logged = srv.log_problems();
    if problems_logged > 0 {
        println!("  server log: {problems_logged} WARN/ERROR lines");
    }
    let report = json!({
        "scenario": "latency",
        "clients": connected,
        "active": a.active,
        "idle_sockets": connected - a.active as u64,
        "idle_users": idle_users,
        "rate": a.rate,
        "seconds": a.seconds,
        "warmup": a.warmup,
        "text_bytes": a.text_bytes,
        "sent_measured": sent_m,
        "received_measured": recv_m,
        "achieved_rate": achieved.round(),
        "sent": sent,
        "acked": acked,
        "deliver_latency": deliver.json_ms(),
        "ack_latency": ack.json_ms(),
        "sender_lag": lag.json_ms(),
        "deliver_p99_ms_per_second": timeline.iter().map(|t| (t.0 * 100.0).round() / 100.0).collect::<Vec<_>>(),
        "other_processes_cores_per_second": others.iter().skip(a.warmup as usize).map(|o| (o * 100.0).round() / 100.0).collect::<Vec<_>>(),
        "quiet_seconds": quiet_secs.len(),
        "deliver_latency_quiet_seconds": quiet_lat.json_ms(),
        "cpu": cpu.json(),
        "waited_for_quiet_s": quiet.0.round(),
        "machine_was_quiet": quiet.1,
        "server_cpu_us_per_msg": cpu.server.map(|s| (s * 1e6 / sent.max(1) as f64).round()),
        "send_wall_s": (send_wall.as_secs_f64() * 10.0).round() / 10.0,
        "server_rss_mib_after_registration": opt_mib(rss_registered),
        "restarted_after_registration": srv.is_spawned() && !common.no_restart,
        "server_rss_mib_empty": opt_mib(rss_empty),
        "server_rss_mib_connected": opt_mib(rss_connected),
        "server_rss_mib_after": opt_mib(rss_after),
        "server_log_warnings": problems_logged,
        "errors": {
            "total": errors,
            "send_failures": c.send_failures.load(Relaxed),
            "error_frames": c.error_frames.load(Relaxed),
            "active_disconnects": c.active_disconnects.load(Relaxed),
            "idle_disconnects": c.idle_disconnects.load(Relaxed),
            "idle_not_opened": idle_failed,
            "undelivered": sent_m.saturating_sub(recv_m),
            "unacked": sent.saturating_sub(acked),
        },
        "server_env": server_env(&srv),
        "machine": machine_note(),
    });
    srv.stop();
    Ok((report, errors))
}

/// Other processes below this many cores count as a quiet second.
const QUIET_CORES: f64 = 0.1;

/// Cores used by every process but this one and the server, for each second from `base`.
async fn others_per_second(base: Instant, secs: u64, server_pid: Option<u32>) -> Vec<f64> {
    let sample = || (server::machine_busy_secs().map(|m| m.0), server::self_cpu_secs(), server_pid.and_then(server::cpu_secs_of));
    tokio::time::sleep_until(base).await;
    let mut prev = sample();
    let mut out = Vec::with_capacity(secs as usize);
    for i in 1..=secs {
        tokio::time::sleep_until(base + Duration::from_secs(i)).await;
        let now = sample();
        let others = match (prev.0, now.0) {
            (Some(a), Some(b)) => (b - a) - (now.1 - prev.1) - now.2.zip(prev.2).map_or(0.0, |(x, y)| x - y),
            _ => f64::NAN,
        };
        out.push(others.max(0.0));
        prev = now;
    }
    out
}

struct DriverPlan {
    active: u64,
    total: u64,
    warm_k: u64,
    rate: u64,
    base: Instant,
    hard_end: Instant,
    clock: std::time::Instant,
    text_bytes: usize,
}

type Sink = futures_util::stream::SplitSink<Ws, WsMessage>;

/// Waits for sender tasks that each return their schedule lags (µs) and their sockets' write
/// halves, and gathers both.
async fn join_drivers(tasks: Vec<tokio::task::JoinHandle<(Vec<u64>, Vec<Sink>)>>) -> (Vec<u64>, Vec<Sink>) {
    let (mut lag_us, mut sinks) = (Vec::new(), Vec::new());
    for t in tasks {
        if let Ok((lag, s)) = t.await {
            lag_us.extend(lag);
            sinks.extend(s);
        }
    }
    (lag_us, sinks)
}

/// Sends message k at `base + k / rate` from active user `k % active`, for the users it owns.
/// Open loop: it never waits for acks. Returns how late each send was against the schedule.
async fn lat_driver(mut senders: Vec<(usize, String, Sink)>, p: DriverPlan, c: Arc<LatCounters>) -> (Vec<u64>, Vec<Sink>) {
    senders.sort_by_key(|s| s.0);
    let mut alive = vec![true; senders.len()];
    let mut lag = Vec::with_capacity((p.total / DRIVERS as u64 + 1) as usize);
    'rounds: for round in 0u64.. {
        for (idx, (i, conv, sink)) in senders.iter_mut().enumerate() {
            let k = round * p.active + *i as u64;
            if k >= p.total || Instant::now() > p.hard_end {
                break 'rounds;
            }
            let offset = Duration::from_nanos((u128::from(k) * 1_000_000_000 / u128::from(p.rate)) as u64);
            let due = p.base + offset;
            tokio::time::sleep_until(due).await;
            if !alive[idx] {
                continue;
            }
            let now = Instant::now();
            lag.push(now.saturating_duration_since(due).as_micros() as u64);
            let sent_us = p.clock.elapsed().as_micros() as u64;
            let head = format!("{k} {sent_us} ");
            let text = format!("{head}{}", padding(head.len(), p.text_bytes));
            let frame = send_frame(&format!("k{k}"), conv, &text);
            match tokio::time::timeout(Duration::from_secs(5), sink.send(frame)).await {
                Ok(Ok(())) => {
                    c.sent.fetch_add(1, Relaxed);
                    if k >= p.warm_k {
                        c.sent_measured.fetch_add(1, Relaxed);
                    }
                }
                _ => {
                    c.send_failures.fetch_add(1, Relaxed);
                    alive[idx] = false;
                }
            }
        }
    }
    (lag, senders.into_iter().map(|s| s.2).collect())
}

/// Reads an active socket: deliveries and acks, each timed from the send time in its text.
async fn lat_reader(
    mut stream: futures_util::stream::SplitStream<Ws>,
    clock: std::time::Instant,
    warm_k: u64,
    stop: CancellationToken,
    c: Arc<LatCounters>,
) -> ReaderOut {
    let mut out = ReaderOut { deliver_us: Vec::new(), ack_us: Vec::new() };
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => break,
            n = stream.next() => n,
        };
        let now_us = clock.elapsed().as_micros() as u64;
        match next {
            Some(Ok(WsMessage::Text(t))) => {
                let Ok(f) = serde_json::from_str::<Frame>(t.as_str()) else {
                    c.bad_frames.fetch_add(1, Relaxed);
                    continue;
                };
                let stamp = f.message.as_ref().and_then(|m| {
                    let text = m.content.text.as_deref()?;
                    let mut parts = text.split(' ');
                    let k: u64 = parts.next()?.parse().ok()?;
                    let sent: u64 = parts.next()?.parse().ok()?;
                    Some((k, now_us.saturating_sub(sent)))
                });
                match (&*f.ty, stamp) {
                    ("message", Some((k, lat))) => {
                        c.received.fetch_add(1, Relaxed);
                        if k >= warm_k {
                            c.received_measured.fetch_add(1, Relaxed);
                            out.deliver_us.push((k, lat));
                        }
                    }
                    ("ack", Some((k, lat))) => {
                        c.acked.fetch_add(1, Relaxed);
                        if k >= warm_k {
                            c.acked_measured.fetch_add(1, Relaxed);
                            out.ack_us.push(lat);
                        }
                    }
                    ("error", _) => {
                        c.error_frames.fetch_add(1, Relaxed);
                    }
                    _ => {}
                }
            }
            Some(Ok(WsMessage::Close(_)) | Err(_)) | None => {
                c.active_disconnects.fetch_add(1, Relaxed);
                break;
            }
            Some(Ok(_)) => {}
        }
    }
    out
}

/// Holds an idle socket open (answering the server's pings by reading) until `stop`.
async fn keep_idle(mut ws: Ws, stop: CancellationToken, c: Arc<LatCounters>) {
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                return;
            }
            next = ws.next() => match next {
                Some(Ok(WsMessage::Close(_)) | Err(_)) | None => {
                    c.idle_disconnects.fetch_add(1, Relaxed);
                    return;
                }
                Some(Ok(_)) => {}
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// idle

async fn idle(common: &Common, a: &IdleArgs, budget: usize) -> anyhow::Result<(Value, u64)> {
    let mut steps = a.connections.clone();
    steps.sort_unstable();
    steps.dedup();
    let top = steps.last().copied().unwrap_or(0);
    if top == 0 {
        bail!("--connections must name at least one positive count");
    }
    if top > budget {
        bail!("{top} sockets exceed this process's budget of {budget}; run several load processes");
    }
    let mut srv = server_for(common, &[]).await?;
    if srv.pid.is_none() {
        bail!("the idle scenario reads server memory: spawn the server, or give --pid with --addr");
    }
    let http = reqwest::Client::new();
    let users = client::register_many(&http, &srv.base_url(), &client::run_prefix(), a.users.max(1), common.register_concurrency).await?;
    let rss_registered = after_registration(&mut srv, common).await?;
    // One socket through the whole path first, so one-time allocations are in the baseline.
    let warm = client::connect(srv.addr, &users[0].token).await?;
    drop(warm);
    tokio::time::sleep(Duration::from_secs(a.settle)).await;
    let rss0 = srv.rss_bytes().context("cannot read the server's memory")?;
    println!("== idle: server RSS {} MiB with {} users and no sockets", mib(rss0), users.len());
    let stop = CancellationToken::new();
    let counters = Arc::new(LatCounters::default());
    let mut keepers = Vec::new();
    let mut failed = 0u64;
    let mut open = 0usize;
    let mut rows = Vec::new();
    for &n in &steps {
        let tokens: Vec<String> = (open..n).map(|i| users[i % users.len()].token.clone()).collect();
        for r in connect_many(srv.addr, tokens, CONNECT_CONCURRENCY).await {
            match r {
                Ok(ws) => keepers.push(tokio::spawn(keep_idle(ws, stop.clone(), counters.clone()))),
                Err(e) => {
                    if failed == 0 {
                        eprintln!("  socket failed: {e:#}");
                    }
                    failed += 1;
                }
            }
        }
        open = n;
        tokio::time::sleep(Duration::from_secs(a.settle)).await;
        let rss = srv.rss_bytes().context("cannot read the server's memory")?;
        let held = keepers.len() as u64 - counters.idle_disconnects.load(Relaxed);
        let per = rss.saturating_sub(rss0) as f64 / held.max(1) as f64;
        println!(
            "  {held} idle sockets: RSS {} MiB, +{} MiB, {per:.0} bytes ({:.2} KiB) per socket",
            mib(rss),
            mib(rss.saturating_sub(rss0)),
            per / 1024.0
        );
        rows.push(json!({
            "connections": held,
            "rss_mib": mib(rss),
            "bytes_per_connection": per.round(),
            "kib_per_connection": (per / 1024.0 * 100.0).round() / 100.0,
        }));
    }
    stop.cancel();
    for k in keepers {
        let _ = tokio::time::timeout(Duration::from_secs(10), k).await;
    }
    tokio::time::sleep(Duration::from_secs(a.settle)).await;
    let rss_closed = srv.rss_bytes();
    let alive = srv.check_alive();
    println!("  after closing every socket: RSS {} MiB", opt_mib(rss_closed));
    let drops = counters.idle_disconnects.load(Relaxed);
    let errors = failed + drops + u64::from(alive.is_err());
    println!("  errors: {errors} (not opened {failed}, dropped by the server {drops}, server exited {})", alive.is_err());
    let top_kib = rows.last().and_then(|r| r["kib_per_connection"].as_f64()).unwrap_or(f64::INFINITY);
    let over = top_kib > a.max_kib_per_connection;
    if over {
        println!("  FAIL: {top_kib:.2} KiB per idle socket (bar {} KiB)", a.max_kib_per_connection);
    } else {
        println!("  PASS: {top_kib:.2} KiB per idle socket (bar {} KiB)", a.max_kib_per_connection);
    }
    let report = json!({
        "scenario": "idle",
        "users": users.len(),
        "settle_s": a.settle,
        "rss_mib_after_registration": opt_mib(rss_registered),
        "restarted_after_registration": srv.is_spawned() && !common.no_restart,
        "rss_mib_baseline": mib(rss0),
        "steps": rows,
        "rss_mib_after_close": opt_mib(rss_closed),
        "errors": {"total": errors, "not_opened": failed, "dropped": drops},
        "max_kib_per_connection": a.max_kib_per_connection,
        "pass": errors == 0 && !over,
        "server_env": server_env(&srv),
        "machine": machine_note(),
    });
    srv.stop();
    Ok((report, errors + u64::from(over)))
}
