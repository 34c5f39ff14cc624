//! Load tool: simulates many users over the real protocol (HTTP registration, WebSocket `send`,
//! `ack` and `message` frames, the history route) against a real `chinwag serve` process.
//!
//! ```text
//! cargo build --release
//! cargo run --release --example load -- throughput --senders 1000 --messages 50000 [--compare] [--ceiling]
//! cargo run --release --example load -- ceiling --senders 1000 --messages 50000
//! cargo run --release --example load -- scale --messages 1000000
//! cargo run --release --example load -- latency --clients 10000 --active 1000 --rate 5000 --seconds 20
//! cargo run --release --example load -- idle --connections 5000,10000
//! cargo run --release --example load -- crash --runs 20 --double-runs 10 --clients 50 --rate 0
//! cargo run --release --example load -- disk-full          # as root: mounts a small tmpfs
//! cargo run --release --example load -- slow-reader --rounds 5 --baseline-secs 60 --seconds 60
//! cargo run --release --example load -- frames --sockets 100
//! cargo run --release --example load -- steady --users 1000 --rate 200 --minutes 30
//! cargo run --release --example load -- sfu --calls 4 --size 6 --seconds 20 [--layer medium] [--audio-only]
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

#[path = "load/ceiling.rs"]
mod ceiling;
#[path = "load/client.rs"]
mod client;
#[path = "load/crash.rs"]
mod crash;
#[path = "load/diskfull.rs"]
mod diskfull;
#[path = "load/frames.rs"]
mod frames;
#[path = "load/idle.rs"]
mod idle;
#[path = "load/latency.rs"]
mod latency;
#[path = "load/scale.rs"]
mod scale;
#[path = "load/server.rs"]
mod server;
#[path = "load/sfu.rs"]
mod sfu;
#[path = "load/sfu_bot.rs"]
mod sfu_bot;
#[path = "load/slow.rs"]
mod slow;
#[path = "load/steady.rs"]
mod steady;
#[path = "load/store_metrics.rs"]
mod store_metrics;
#[path = "load/throughput.rs"]
mod throughput;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use client::{Ws, mib};
use server::Server;

// The server binary's allocator, so that the ceiling scenario's store (in this process) runs
// as it does in the server.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    Throughput(throughput::ThroughputArgs),
    /// The throughput scenario's messages straight through the store's append path in this
    /// process (no server, no sockets): the most the message path can reach here.
    Ceiling(ceiling::CeilingArgs),
    /// A database with many messages (1,000,000 by default): bytes on disk per message and per
    /// table, cold start to /healthz, history page latency over HTTP.
    Scale(scale::ScaleArgs),
    /// Open-loop sends at a fixed rate among many idle sockets: delivery latency, and the store's
    /// part of it from the server's /metrics.
    Latency(latency::LatencyArgs),
    /// Server memory per idle authenticated WebSocket.
    Idle(idle::IdleArgs),
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
    /// Group calls through the SFU with str0m participants sending realistic audio and three
    /// simulcast camera layers: server CPU per forwarded stream and per participant, loss, delay.
    Sfu(sfu::SfuArgs),
    /// Users in pairs and groups at a steady rate with HTTP requests alongside for many minutes:
    /// server errors, delivery p99, no memory growth trend (R7).
    Steady(steady::SteadyArgs),
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
        Scenario::Throughput(a) => throughput::throughput(&cli.common, a).await?,
        Scenario::Ceiling(a) => ceiling::ceiling(&cli.common, a).await?,
        Scenario::Scale(a) => scale::scale(&cli.common, a).await?,
        Scenario::Latency(a) => latency::latency(&cli.common, a, budget).await?,
        Scenario::Idle(a) => idle::idle(&cli.common, a, budget).await?,
        Scenario::Crash(a) => crash::crash(&cli.common, a).await?,
        Scenario::SlowReader(a) => slow::slow_reader(&cli.common, a).await?,
        Scenario::DiskFull(a) => diskfull::disk_full(&cli.common, a).await?,
        Scenario::Frames(a) => frames::frames(&cli.common, a).await?,
        Scenario::Steady(a) => steady::steady(&cli.common, a).await?,
        Scenario::Sfu(a) => sfu::sfu(&cli.common, a).await?,
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
