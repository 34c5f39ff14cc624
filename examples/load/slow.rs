//! The slow-reader proof (R5): ten users send to a group at a steady rate while one more member's
//! socket never reads. Measured: the server's memory growth, how long until the server cuts the
//! slow socket off, and the other members' delivery latency with and without the slow reader.
//!
//! The run alternates windows on one server: a baseline without the slow reader, then the same
//! load with it (it connects again whenever it is cut off, and again never reads). The cut-off
//! is seen in the server's `chinwag_connections` gauge (polled in every window alike): the
//! client never reads, so it could not see a close frame or FIN queued behind the data it
//! refuses. (Reading `/proc/net/tcp` instead costs ~5 ms of CPU per read here, enough to
//! distort the others' p99.)

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

use super::client::{self, Frame, Percentiles, Ws, mib, padding, send_frame};
use super::server::CpuWindow;
use super::{Common, machine_note, opt_mib, server_env};

#[derive(Args, Clone)]
pub struct SlowArgs {
    /// Users sending to the group; each also reads every other sender's messages.
    #[arg(long, default_value_t = 10)]
    senders: usize,
    /// Messages per second per sender.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// Rounds of (baseline window, slow-reader window): alternating spreads the machine's noise
    /// over both.
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// Seconds of each baseline window (no slow reader).
    #[arg(long, default_value_t = 60)]
    baseline_secs: u64,
    /// Seconds of each window with the slow reader. When the server cuts it off, it connects
    /// again at once and again never reads.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Bytes of text per message.
    #[arg(long, default_value_t = 100)]
    text_bytes: usize,
    /// Pass bar: server memory growth the slow reader accounts for, MiB: what RSS grew during
    /// the slow-reader windows, less what it grew in as much time without it (the database's
    /// page cache grows with the data under any load).
    #[arg(long, default_value_t = 50.0)]
    max_growth_mib: f64,
    /// Pass bar: seconds from a slow socket's connect until the server has closed it.
    #[arg(long, default_value_t = 30.0)]
    max_cutoff_secs: f64,
    /// Pass bar: the others' delivery p99 with the slow reader over the baseline's (0: report
    /// it only; short runs on a shared machine measure the neighbours' noise).
    #[arg(long, default_value_t = 2.0)]
    max_p99_ratio: f64,
    /// p99s below this many milliseconds count as this much in the ratio: on a shared machine a
    /// 2x bar on a 2 ms baseline measures the neighbours, not the server.
    #[arg(long, default_value_t = 5.0)]
    p99_floor_ms: f64,
    /// Control run: the extra member's socket reads everything, to tell what a slow reader
    /// costs from what one more member costs (the cut-off bar is then not checked).
    #[arg(long)]
    control: bool,
    /// Kernel receive buffer of the slow socket, bytes (default: the system's).
    #[arg(long)]
    slow_rcvbuf: Option<u32>,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    send_failures: AtomicU64,
    acked: AtomicU64,
    delivered: AtomicU64,
    error_frames: AtomicU64,
    disconnects: AtomicU64,
}

/// One window of the run, in microseconds of the run's clock.
struct Window {
    slow: bool,
    from_us: u64,
    to_us: u64,
    /// Server RSS at the window's end, bytes.
    rss_end: u64,
    /// Busy CPU seconds of other processes during the window.
    others_cpu: Option<f64>,
}

pub async fn slow_reader(common: &Common, a: &SlowArgs) -> anyhow::Result<(Value, u64)> {
    if a.senders < 2 || a.rate == 0 || a.seconds == 0 || a.rounds == 0 {
        bail!("--senders must be at least 2; --rate, --seconds and --rounds positive");
    }
    let mut srv = super::server_for(common, &[]).await?;
    if srv.pid.is_none() {
        bail!("the slow-reader proof reads server memory: spawn the server, or give --pid with --addr");
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let users = client::register_many(&http, &srv.base_url(), &client::run_prefix(), a.senders + 1, common.register_concurrency).await?;
    let (senders, slow_user) = (&users[..a.senders], &users[a.senders]);
    let mut members: Vec<client::Account> = senders[1..].to_vec();
    members.push(slow_user.clone());
    let conv = client::make_group(&http, &srv.base_url(), &senders[0], &members, "slow reader proof").await?;
    super::after_registration(&mut srv, common).await?;

    let counters = Arc::new(Counters::default());
    let stop = CancellationToken::new();
    let clock = std::time::Instant::now();
    let mut readers = Vec::new();
    let mut drivers = Vec::new();
    let base = Instant::now() + Duration::from_millis(500);
    let total = u64::from(a.rounds) * (a.baseline_secs + a.seconds);
    let end = base + Duration::from_secs(total);
    for (i, u) in senders.iter().enumerate() {
        let ws = client::connect(srv.addr, &u.token).await.with_context(|| format!("socket of sender {i}"))?;
        let (sink, stream) = ws.split();
        readers.push(tokio::spawn(reader(stream, u.id, clock, stop.clone(), counters.clone())));
        // Senders start spread over one period so that they do not all send at once.
        let start = base + Duration::from_micros(1_000_000 / a.rate * i as u64 / a.senders as u64);
        drivers.push(tokio::spawn(driver(sink, conv.clone(), i, a.rate, a.text_bytes, start, end, clock, counters.clone())));
    }
    eprintln!(
        "load: {} senders x {} msg/s into {conv} ({} members); {} rounds of {} s without and {} s with a member that never reads",
        a.senders,
        a.rate,
        a.senders + 1,
        a.rounds,
        a.baseline_secs,
        a.seconds
    );

    let rss_start = srv.rss_bytes();
    let mut rss_baseline: Option<u64> = None;
    let mut rss_max = 0u64;
    let mut rss_ends = Vec::new();
    let mut windows: Vec<Window> = Vec::new();
    let mut cutoffs: Vec<f64> = Vec::new();
    let mut still_open_at_end: Vec<f64> = Vec::new();
    let dropped_before = slow_dropped(&http, &srv.base_url()).await;
    let mut at = base;
    for round in 0..a.rounds {
        for slow in [false, true] {
            let len = Duration::from_secs(if slow { a.seconds } else { a.baseline_secs });
            if len.is_zero() {
                continue;
            }
            let until = at + len;
            let cpu = CpuWindow::start(&srv);
            let from_us = clock.elapsed().as_micros() as u64;
            let mut slow_sock: Option<(Ws, Instant)> = None;
            let mut next_sample = Instant::now();
            let reading = CancellationToken::new();
            if slow && a.control {
                let mut ws = client::connect(srv.addr, &slow_user.token).await.context("the control reader's socket")?;
                let done = reading.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            () = done.cancelled() => break,
                            f = ws.next() => if !matches!(f, Some(Ok(_))) { break },
                        }
                    }
                });
            }
            while Instant::now() < until {
                if slow && !a.control && slow_sock.is_none() {
                    // Connects (reading only its hello), then never reads again.
                    let ws = client::connect_with(srv.addr, &slow_user.token, a.slow_rcvbuf).await.context("the slow reader's socket")?;
                    slow_sock = Some((ws, Instant::now()));
                }
                next_sample += Duration::from_millis(100);
                tokio::time::sleep_until(next_sample.min(until)).await;
                if let Some(r) = srv.rss_bytes() {
                    rss_max = rss_max.max(r);
                }
                // Polled in every window, so that its cost falls on both kinds alike.
                let open = gauge(&http, &srv.base_url(), "chinwag_connections").await;
                if let Some((_, since)) = &slow_sock
                    && open.is_some_and(|n| n < a.senders as f64 + 1.0)
                {
                    let t = since.elapsed().as_secs_f64();
                    eprintln!("  round {}: the server closed the slow socket {t:.1} s after it connected", round + 1);
                    cutoffs.push(t);
                    slow_sock = None;
                }
            }
            reading.cancel();
            if let Some((ws, since)) = slow_sock.take() {
                still_open_at_end.push(since.elapsed().as_secs_f64());
                // Never read: dropping it resets the connection.
                drop(ws);
            }
            let used = cpu.end(&srv);
            let rss = srv.rss_bytes().context("cannot read the server's memory")?;
            windows.push(Window { slow, from_us, to_us: clock.elapsed().as_micros() as u64, others_cpu: used.others, rss_end: rss });
            rss_ends.push(mib(rss));
            if rss_baseline.is_none() {
                // The reference: the server warmed up under the same load, without a slow reader.
                rss_baseline = Some(rss);
                rss_max = rss;
            }
            at = until;
        }
    }
    let rss_baseline = rss_baseline.unwrap_or(0);
    let rss_end = srv.rss_bytes();
    let dropped = match (dropped_before, slow_dropped(&http, &srv.base_url()).await) {
        (Some(b), Some(e)) => Some(e - b),
        _ => None,
    };
    let mut lag = Vec::new();
    let mut sinks = Vec::new();
    for d in drivers {
        if let Ok((l, sink)) = d.await {
            lag.extend(l);
            sinks.push(sink);
        }
    }
    // The last messages are still on their way to the others.
    let expected_deliveries = counters.sent.load(Relaxed) * (a.senders as u64 - 1);
    let drain_until = Instant::now() + Duration::from_secs(10);
    while counters.delivered.load(Relaxed) < expected_deliveries && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    // The readers stop before the sockets close, or they would count the close as a disconnect.
    let mut samples: Vec<(u64, u64)> = Vec::new();
    for r in readers {
        if let Ok(s) = r.await {
            samples.extend(s);
        }
    }
    for mut sink in sinks {
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    }
    let alive = srv.check_alive();
    let in_windows = |slow: bool| -> Vec<u64> {
        samples
            .iter()
            .filter(|(sent, _)| windows.iter().any(|w| w.slow == slow && (w.from_us..w.to_us).contains(sent)))
            .map(|(_, l)| *l)
            .collect()
    };
    let (p_before, p_with) = (Percentiles::of(in_windows(false)), Percentiles::of(in_windows(true)));
    // Each window's p99 and the CPU other processes took meanwhile, to tell the slow reader's
    // effect from the neighbours'.
    let per_window: Vec<(bool, f64, Option<f64>)> = windows
        .iter()
        .map(|w| {
            let lat: Vec<u64> = samples.iter().filter(|(sent, _)| (w.from_us..w.to_us).contains(sent)).map(|(_, l)| *l).collect();
            let secs = (w.to_us - w.from_us) as f64 / 1e6;
            (w.slow, ms(Percentiles::of(lat).p99), w.others_cpu.map(|c| c / secs.max(1e-9)))
        })
        .collect();
    // p99 of each second of the run (by send time), for the report's JSON.
    let secs_total = windows.last().map_or(0, |w| w.to_us / 1_000_000 + 1) as usize;
    let mut per_sec: Vec<Vec<u64>> = vec![Vec::new(); secs_total];
    for (sent, l) in &samples {
        if let Some(b) = per_sec.get_mut((*sent / 1_000_000) as usize) {
            b.push(*l);
        }
    }
    let p99_per_sec: Vec<f64> = per_sec.into_iter().map(|v| (ms(Percentiles::of(v).p99) * 10.0).round() / 10.0).collect();
    let others = |slow: bool| -> Option<f64> {
        let (mut cpu, mut secs) = (0.0, 0.0);
        for w in windows.iter().filter(|w| w.slow == slow) {
            cpu += w.others_cpu?;
            secs += (w.to_us - w.from_us) as f64 / 1e6;
        }
        (secs > 0.0).then(|| cpu / secs)
    };
    let floor_us = (a.p99_floor_ms * 1000.0) as u64;
    let ratio = p_with.p99.max(floor_us) as f64 / p_before.p99.max(floor_us).max(1) as f64;
    let raw_ratio = p_with.p99 as f64 / p_before.p99.max(1) as f64;
    let growth = mib(rss_max.saturating_sub(rss_baseline));
    // RSS growth per second in each kind of window, after the first (warm-up) one.
    let rate = |slow: bool| -> (f64, f64) {
        let (mut grew, mut secs) = (0.0, 0.0);
        for pair in windows.windows(2).filter(|p| p[1].slow == slow) {
            grew += pair[1].rss_end as f64 - pair[0].rss_end as f64;
            secs += (pair[1].to_us - pair[1].from_us) as f64 / 1e6;
        }
        (grew / (1024.0 * 1024.0), secs)
    };
    let ((grew_with, secs_with), (grew_without, secs_without)) = (rate(true), rate(false));
    let per_sec_without = if secs_without > 0.0 { grew_without / secs_without } else { 0.0 };
    let attributable = ((grew_with - per_sec_without * secs_with) * 10.0).round() / 10.0;
    let c = &*counters;
    let worst_cutoff = cutoffs.iter().copied().fold(0.0, f64::max);

    let mut violations = Vec::new();
    if attributable > a.max_growth_mib {
        violations.push(format!(
            "server memory grew {grew_with:.1} MiB in {secs_with:.0} s with the slow reader against {grew_without:.1} MiB in {secs_without:.0} s without: {attributable} MiB more (bar {} MiB)",
            a.max_growth_mib
        ));
    }
    if cutoffs.is_empty() && !a.control {
        violations.push("the server never closed the slow socket".into());
    }
    if worst_cutoff > a.max_cutoff_secs {
        violations.push(format!("a slow socket was closed only {worst_cutoff:.1} s after it connected (bar {} s)", a.max_cutoff_secs));
    }
    if let Some(t) = still_open_at_end.iter().copied().find(|t| *t > a.max_cutoff_secs) {
        violations.push(format!("a slow socket was still open {t:.1} s after it connected (bar {} s)", a.max_cutoff_secs));
    }
    if a.max_p99_ratio > 0.0 && ratio > a.max_p99_ratio {
        violations.push(format!(
            "others' p99 went from {:.2} ms to {:.2} ms ({ratio:.2}x, bar {}x)",
            ms(p_before.p99),
            ms(p_with.p99),
            a.max_p99_ratio
        ));
    }
    let errors = c.send_failures.load(Relaxed) + c.error_frames.load(Relaxed) + c.disconnects.load(Relaxed) + u64::from(alive.is_err());
    if errors > 0 {
        violations.push(format!(
            "errors among the others: send failures {}, error frames {}, disconnects {}, server exited {}",
            c.send_failures.load(Relaxed),
            c.error_frames.load(Relaxed),
            c.disconnects.load(Relaxed),
            alive.is_err()
        ));
    }
    if c.delivered.load(Relaxed) < expected_deliveries {
        violations.push(format!("the others received {} of {expected_deliveries} messages", c.delivered.load(Relaxed)));
    }

    let slow_secs = u64::from(a.rounds) * a.seconds;
    println!(
        "== slow-reader: {} senders x {} msg/s into a group of {}; {} rounds of {} s without and {} s with a member that never reads ({slow_secs} s in all)",
        a.senders,
        a.rate,
        a.senders + 1,
        a.rounds,
        a.baseline_secs,
        a.seconds
    );
    println!(
        "  server RSS {} MiB at the start, {} MiB after the first baseline window, at most {} MiB after it (+{growth} MiB), {} MiB at the end; at each window's end: {rss_ends:?}",
        opt_mib(rss_start),
        mib(rss_baseline),
        mib(rss_max),
        opt_mib(rss_end)
    );
    println!(
        "  RSS grew {grew_with:.1} MiB in {secs_with:.0} s of slow-reader windows and {grew_without:.1} MiB in {secs_without:.0} s of baseline windows (after the first): the slow reader accounts for {attributable} MiB"
    );
    println!(
        "  slow sockets closed by the server {} times (slow_clients_dropped +{}), seconds from connect to close: {}",
        cutoffs.len(),
        dropped.map_or("?".into(), |d| d.to_string()),
        cutoffs.iter().map(|t| format!("{t:.1}")).collect::<Vec<_>>().join(" ")
    );
    println!("  others' delivery without the slow reader: {}", p_before.line_ms());
    println!("  others' delivery with the slow reader:    {}", p_with.line_ms());
    println!(
        "  p99 ratio {ratio:.2} (p99s below {} ms count as {} ms; as measured {raw_ratio:.2}); other processes used {} / {} of a core in those windows",
        a.p99_floor_ms,
        a.p99_floor_ms,
        others(false).map_or("?".into(), |o| format!("{:.0}%", o * 100.0)),
        others(true).map_or("?".into(), |o| format!("{:.0}%", o * 100.0))
    );
    println!(
        "  per window (without/with the slow reader): p99 ms, others' share of a core: {}",
        per_window
            .iter()
            .map(|(slow, p99, o)| format!(
                "{}{p99:.1}/{}",
                if *slow { "with " } else { "without " },
                o.map_or("?".into(), |o| format!("{:.0}%", o * 100.0))
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  sent {}, acked {}, delivered {} of {expected_deliveries}",
        c.sent.load(Relaxed),
        c.acked.load(Relaxed),
        c.delivered.load(Relaxed)
    );
    println!("  sender lag behind schedule: {}", Percentiles::of(lag).line_ms());
    println!("  {}", if violations.is_empty() { "PASS".to_owned() } else { format!("FAIL: {}", violations.join("; ")) });
    let report = json!({
        "scenario": "slow_reader",
        "control": a.control,
        "senders": a.senders,
        "rate_per_sender": a.rate,
        "rounds": a.rounds,
        "baseline_secs": a.baseline_secs,
        "seconds": a.seconds,
        "text_bytes": a.text_bytes,
        "rss_mib_start": opt_mib(rss_start),
        "rss_mib_baseline": mib(rss_baseline),
        "rss_mib_max_after_baseline": mib(rss_max),
        "rss_mib_end": opt_mib(rss_end),
        "rss_mib_window_ends": rss_ends,
        "rss_growth_mib": growth,
        "rss_growth_mib_in_slow_windows": (grew_with * 10.0).round() / 10.0,
        "rss_growth_mib_in_baseline_windows": (grew_without * 10.0).round() / 10.0,
        "rss_growth_mib_due_to_slow_reader": attributable,
        "slow_cutoffs_s": cutoffs.iter().map(|t| (t * 10.0).round() / 10.0).collect::<Vec<_>>(),
        "slow_clients_dropped": dropped,
        "deliver_without_slow": p_before.json_ms(),
        "deliver_with_slow": p_with.json_ms(),
        "p99_ratio": (ratio * 100.0).round() / 100.0,
        "p99_ratio_raw": (raw_ratio * 100.0).round() / 100.0,
        "other_processes_cores_without": others(false),
        "other_processes_cores_with": others(true),
        "window_starts_s": windows.iter().map(|w| w.from_us / 1_000_000).collect::<Vec<_>>(),
        "deliver_p99_ms_per_second": p99_per_sec,
        "per_window": per_window.iter().map(|(slow, p99, o)| json!({"slow_reader": slow, "p99_ms": p99, "other_processes_cores": o})).collect::<Vec<_>>(),
        "sent": c.sent.load(Relaxed),
        "delivered": c.delivered.load(Relaxed),
        "expected_deliveries": expected_deliveries,
        "violations": violations,
        "pass": violations.is_empty(),
        "server_env": server_env(&srv),
        "machine": machine_note(),
    });
    srv.stop();
    Ok((report, violations.len() as u64))
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// `chinwag_slow_clients_dropped` from `/metrics` (served to loopback clients).
async fn slow_dropped(http: &reqwest::Client, base: &str) -> Option<f64> {
    gauge(http, base, "chinwag_slow_clients_dropped").await
}

/// A gauge from `/metrics`.
async fn gauge(http: &reqwest::Client, base: &str, name: &str) -> Option<f64> {
    let text = http.get(format!("{base}/metrics")).send().await.ok()?.text().await.ok()?;
    text.lines()
        .find(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ')))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
}

/// Sends message k of this sender at `start + k / rate` until `end`; returns how late each send
/// was against that schedule, and the sink (closed only after the last deliveries are read).
#[allow(clippy::too_many_arguments)]
async fn driver(
    mut sink: futures_util::stream::SplitSink<Ws, WsMessage>,
    conv: String,
    me: usize,
    rate: u64,
    text_bytes: usize,
    start: Instant,
    end: Instant,
    clock: std::time::Instant,
    c: Arc<Counters>,
) -> (Vec<u64>, futures_util::stream::SplitSink<Ws, WsMessage>) {
    let mut lag = Vec::new();
    for k in 0u64.. {
        let due = start + Duration::from_nanos(k * 1_000_000_000 / rate);
        if due >= end {
            break;
        }
        tokio::time::sleep_until(due).await;
        lag.push(Instant::now().saturating_duration_since(due).as_micros() as u64);
        let sent_us = clock.elapsed().as_micros() as u64;
        let head = format!("{k} {sent_us} ");
        let text = format!("{head}{}", padding(head.len(), text_bytes));
        match tokio::time::timeout(Duration::from_secs(5), sink.send(send_frame(&format!("s{me}-{k}"), &conv, &text))).await {
            Ok(Ok(())) => {
                c.sent.fetch_add(1, Relaxed);
            }
            _ => {
                c.send_failures.fetch_add(1, Relaxed);
                break;
            }
        }
    }
    (lag, sink)
}

/// Reads one sender's socket: acks, and the other senders' messages, each delivery timed from
/// the send time in its text. Returns (send time, latency) of every delivery.
async fn reader(
    mut stream: futures_util::stream::SplitStream<Ws>,
    me: u64,
    clock: std::time::Instant,
    stop: CancellationToken,
    c: Arc<Counters>,
) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => break,
            n = stream.next() => n,
        };
        let now_us = clock.elapsed().as_micros() as u64;
        match next {
            Some(Ok(WsMessage::Text(t))) => {
                let Ok(f) = serde_json::from_str::<Frame>(t.as_str()) else { continue };
                match &*f.ty {
                    "ack" => {
                        c.acked.fetch_add(1, Relaxed);
                    }
                    "error" => {
                        c.error_frames.fetch_add(1, Relaxed);
                    }
                    "message" => {
                        let Some(m) = f.message else { continue };
                        if m.sender == me {
                            continue;
                        }
                        let sent = m.content.text.as_deref().and_then(|t| t.split(' ').nth(1)?.parse::<u64>().ok());
                        if let Some(sent) = sent {
                            c.delivered.fetch_add(1, Relaxed);
                            out.push((sent, now_us.saturating_sub(sent)));
                        }
                    }
                    _ => {}
                }
            }
            Some(Ok(WsMessage::Close(_)) | Err(_)) | None => {
                c.disconnects.fetch_add(1, Relaxed);
                eprintln!("  sender {me}'s socket ended after {:.1} s: {next:?}", now_us as f64 / 1e6);
                break;
            }
            Some(Ok(_)) => {}
        }
    }
    out
}
