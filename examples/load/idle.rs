//! The idle scenario: the server's memory per idle authenticated WebSocket, in steps.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::client::{self, connect_many, mib};
use super::latency::{LatCounters, keep_idle};
use super::{CONNECT_CONCURRENCY, Common, after_registration, machine_note, opt_mib, server_env, server_for};

#[derive(Args, Clone)]
pub struct IdleArgs {
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

pub(crate) async fn idle(common: &Common, a: &IdleArgs, budget: usize) -> anyhow::Result<(Value, u64)> {
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
