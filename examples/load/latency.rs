//! The latency scenario: open-loop sends at a fixed rate among many idle sockets; measures send
//! -> delivery and send -> ack latency, and the machine's other load for each second.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

use super::client::{self, Frame, Percentiles, Ws, connect_many, dm, padding, send_frame};
use super::server::{self, CpuWindow, wait_quiet};
use super::{CONNECT_CONCURRENCY, Common, Sink, after_registration, join_drivers, machine_note, opt_mib, server_env, server_for};

#[derive(Args, Clone)]
pub struct LatencyArgs {
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

#[derive(Default)]
pub(crate) struct LatCounters {
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
    pub(crate) idle_disconnects: AtomicU64,
}

struct ReaderOut {
    /// (message number, latency) of every measured delivery.
    deliver_us: Vec<(u64, u64)>,
    ack_us: Vec<u64>,
}

/// Sender drivers: each owns the write halves of a share of the active sockets.
const DRIVERS: usize = 4;

pub(crate) async fn latency(common: &Common, a: &LatencyArgs, budget: usize) -> anyhow::Result<(Value, u64)> {
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
    let store_before = crate::store_metrics::read(&http, &srv.base_url()).await;
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
    // The store's share of the delay, over the whole sending window (warm-up included).
    let store = match (store_before, crate::store_metrics::read(&http, &srv.base_url()).await) {
        (Some(before), Some(after)) => after.json_since(&before),
        _ => Value::Null,
    };
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
    if !store.is_null() {
        println!(
            "  store (server's /metrics): write wait mean {} ms, p99 at most {} ms; commit mean {} ms, p99 at most {} ms; {} writes per commit",
            store["write_wait_ms"]["mean"],
            store["write_wait_ms"]["p99_at_most"],
            store["commit_ms"]["mean"],
            store["commit_ms"]["p99_at_most"],
            store["writes_per_commit_mean"]
        );
    }
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
    let mut report = json!({
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
    report["store"] = store;
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
pub(crate) async fn keep_idle(mut ws: Ws, stop: CancellationToken, c: Arc<LatCounters>) {
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
