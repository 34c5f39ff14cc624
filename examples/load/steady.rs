//! The steady-load proof (R7): many users (in 1:1 pairs and in groups) send at a steady rate over
//! their WebSockets for a long time while HTTP requests that a real client makes run alongside.
//! Measured: server errors (HTTP 5xx and failed requests; sends refused or never acknowledged),
//! send -> delivery latency at the receivers, send -> ack latency, and the server's memory over
//! time, which must show no growth trend once the caches are warm.
//!
//! Memory: RSS is sampled every `--sample-secs`. The first half of the run is warm-up (the
//! database's page cache grows with the data up to `limits.db_cache_mib`, 128 MiB by default);
//! a least-squares line through the samples of the second half must rise by at most
//! `--max-slope-pct` % of their mean per hour, and the highest sample of the last quarter may
//! exceed the highest of the second quarter by at most `--max-late-growth-pct` %.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures_util::{SinkExt, StreamExt, stream};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

use super::client::{self, Account, Frame, Percentiles, Ws, connect_many, dm, padding, send_frame};
use super::server::{CpuUse, CpuWindow, wait_quiet};
use super::{CONNECT_CONCURRENCY, Common, Sink, join_drivers, machine_note, opt_mib, server_env};

#[derive(Args, Clone)]
pub struct SteadyArgs {
    /// Users, one socket each, in 1:1 pairs (an even number); each is also in one group.
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// Messages per second, all senders together, evenly spread over the users.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Minutes of sending.
    #[arg(long, default_value_t = 30)]
    minutes: u64,
    /// Seconds between samples of the server's memory.
    #[arg(long, default_value_t = 10)]
    sample_secs: u64,
    /// HTTP requests per second (conversation list, histories, contacts, profile, group members).
    #[arg(long, default_value_t = 20)]
    http_rate: u64,
    /// Members per group (the users are split into users / group-size groups, at least one).
    #[arg(long, default_value_t = 50)]
    group_size: usize,
    /// Share of the messages sent to the sender's group instead of its 1:1 partner (0 to 1).
    #[arg(long, default_value_t = 0.2)]
    group_share: f64,
    /// Bytes of text per message.
    #[arg(long, default_value_t = 100)]
    text_bytes: usize,
    /// Pass bar: server errors in percent, for HTTP (5xx and failed requests) and for sends
    /// (refused or never acknowledged) each.
    #[arg(long, default_value_t = 0.025)]
    max_error_pct: f64,
    /// Pass bar: delivery p99 over the whole run, milliseconds.
    #[arg(long, default_value_t = 500.0)]
    max_p99_ms: f64,
    /// Pass bar: slope of the RSS line through the second half, percent of its mean per hour.
    #[arg(long, default_value_t = 5.0)]
    max_slope_pct: f64,
    /// Pass bar: the last quarter's highest RSS over the second quarter's, percent.
    #[arg(long, default_value_t = 10.0)]
    max_late_growth_pct: f64,
    /// Report the memory trend without checking its bar: for runs too short for the caches to
    /// warm up (the quick proof), where the second half is still warm-up.
    #[arg(long)]
    report_memory_only: bool,
    /// Only check the memory-trend test on made-up series (flat, warming up, leaking, jumping)
    /// and exit; every run does this first.
    #[arg(long)]
    self_check: bool,
}

/// Seconds after a minute's end before its line is printed (its last deliveries arrive).
const LINE_GRACE: Duration = Duration::from_secs(2);
/// Sender drivers: each owns the write halves of a share of the sockets.
const DRIVERS: usize = 4;

/// What happened to the messages sent and the HTTP requests started in one minute.
#[derive(Default)]
struct Minute {
    sent: u64,
    to_groups: u64,
    acked: u64,
    /// Deliveries the acked messages call for (1 for a pair, members - 1 for a group).
    expected: u64,
    delivered: u64,
    deliver_us: Vec<u64>,
    ack_us: Vec<u64>,
    /// HTTP answers by status class (index 1-5); index 0: requests that failed without one.
    http: [u64; 6],
}

#[derive(Default)]
struct Counters {
    send_failures: AtomicU64,
    error_frames: AtomicU64,
    bad_frames: AtomicU64,
    disconnects: AtomicU64,
    /// HTTP failures printed so far (the first few are).
    http_logged: AtomicU64,
}

struct Shared {
    minutes: Mutex<Vec<Minute>>,
    c: Counters,
    clock: std::time::Instant,
    /// Messages per minute: message k belongs to minute `k / per_minute`.
    per_minute: u64,
    http_per_minute: u64,
    group_share: f64,
}

impl Shared {
    fn at<R>(&self, minute: u64, f: impl FnOnce(&mut Minute) -> R) -> Option<R> {
        let mut m = self.minutes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        m.get_mut(minute as usize).map(f)
    }
}

/// Whether message k goes to its sender's group: a fixed pseudo-random share of the messages,
/// uncorrelated with who sends them (splitmix64 of k).
fn to_group(k: u64, share: f64) -> bool {
    let mut z = k.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z % 1_000_000) as f64) < share * 1_000_000.0
}

/// The memory-trend test over RSS samples (seconds, MiB).
#[derive(Debug)]
pub struct Trend {
    pub samples: usize,
    /// Least-squares slope of the second half, MiB per hour.
    pub slope_mib_per_hour: f64,
    /// Mean RSS of the second half, MiB.
    pub mean_mib: f64,
    pub slope_limit_mib_per_hour: f64,
    pub q2_max_mib: f64,
    pub q4_max_mib: f64,
    pub q4_limit_mib: f64,
    pub slope_ok: bool,
    pub late_ok: bool,
}

impl Trend {
    pub fn pass(&self) -> bool {
        self.slope_ok && self.late_ok
    }
}

/// Fewer samples than this cannot show a trend: the test fails.
const MIN_TREND_SAMPLES: usize = 8;

/// Fits a least-squares line through the second half of `samples` (seconds, MiB): its slope may
/// be at most `max_slope_pct` % of that half's mean RSS per hour; and the highest sample of the
/// last quarter may exceed the highest of the second quarter by at most `max_late_pct` %.
pub fn memory_trend(samples: &[(f64, f64)], max_slope_pct: f64, max_late_pct: f64) -> Trend {
    let n = samples.len();
    let half = &samples[n / 2..];
    let max_of = |s: &[(f64, f64)]| s.iter().map(|p| p.1).fold(f64::NAN, f64::max);
    let mean = |v: &mut dyn Iterator<Item = f64>, len: usize| v.sum::<f64>() / len.max(1) as f64;
    let mx = mean(&mut half.iter().map(|p| p.0), half.len());
    let my = mean(&mut half.iter().map(|p| p.1), half.len());
    let sxy: f64 = half.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = half.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let slope = if sxx > 0.0 { sxy / sxx * 3600.0 } else { f64::NAN };
    let q2 = max_of(&samples[n / 4..n / 2]);
    let q4 = max_of(&samples[3 * n / 4..]);
    let enough = n >= MIN_TREND_SAMPLES;
    let slope_limit = my * max_slope_pct / 100.0;
    let q4_limit = q2 * (1.0 + max_late_pct / 100.0);
    Trend {
        samples: n,
        slope_mib_per_hour: slope,
        mean_mib: my,
        slope_limit_mib_per_hour: slope_limit,
        q2_max_mib: q2,
        q4_max_mib: q4,
        q4_limit_mib: q4_limit,
        // NaN (too few samples) compares false: a test that cannot be made fails.
        slope_ok: enough && slope <= slope_limit,
        late_ok: enough && q4 <= q4_limit,
    }
}

/// Samples of (seconds, MiB).
type Series = Vec<(f64, f64)>;

/// Runs [`memory_trend`] on made-up 30-minute series sampled every 10 s (with ±1.5 MiB of
/// wobble): a flat one and one that warms up in the first half must pass; one leaking 10 % of
/// its size per hour and one that jumps 20 % in the last quarter must fail.
pub fn self_check(max_slope_pct: f64, max_late_pct: f64) -> Result<String, String> {
    let series = |f: &dyn Fn(f64) -> f64| -> Series {
        (0..=180)
            .map(|i| {
                let t = f64::from(i) * 10.0;
                (t, f(t) + (t * 0.37).sin() * 1.5)
            })
            .collect()
    };
    // (name, series, should pass)
    let cases: [(&str, Series, bool); 5] = [
        ("flat at 200 MiB", series(&|_| 200.0), true),
        ("warming from 120 to 200 MiB in the first half", series(&|t| 120.0 + 80.0 * (t / 900.0).min(1.0)), true),
        ("leaking 20 MiB/h from 200 MiB", series(&|t| 200.0 + t * 20.0 / 3600.0), false),
        ("jumping from 200 to 240 MiB in the last quarter", series(&|t| if t > 1500.0 { 240.0 } else { 200.0 }), false),
        ("too few samples", vec![(0.0, 200.0), (10.0, 200.0), (20.0, 200.0), (30.0, 200.0)], false),
    ];
    let mut lines = Vec::new();
    for (name, s, want) in cases {
        let t = memory_trend(&s, max_slope_pct, max_late_pct);
        let line = format!(
            "{name}: slope {:+.1} MiB/h (bar {:.1}), last quarter max {:.1} MiB (bar {:.1}): {}",
            t.slope_mib_per_hour,
            t.slope_limit_mib_per_hour,
            t.q4_max_mib,
            t.q4_limit_mib,
            if t.pass() { "pass" } else { "fail" }
        );
        if t.pass() != want {
            return Err(format!("memory-trend self-check: expected {} for {line}", if want { "pass" } else { "fail" }));
        }
        lines.push(line);
    }
    Ok(lines.join("; "))
}

pub async fn steady(common: &Common, a: &SteadyArgs) -> anyhow::Result<(Value, u64)> {
    let checked = self_check(a.max_slope_pct, a.max_late_growth_pct).map_err(anyhow::Error::msg)?;
    if a.self_check {
        println!("== steady self-check: the memory-trend test passes flat and warming series and fails growing ones");
        for l in checked.split("; ") {
            println!("  {l}");
        }
        println!("  PASS");
        return Ok((json!({"scenario": "steady_self_check", "cases": checked.split("; ").collect::<Vec<_>>(), "pass": true}), 0));
    }
    if a.users < 2 || !a.users.is_multiple_of(2) {
        bail!("--users must be an even number of at least 2");
    }
    if a.rate == 0 || a.minutes == 0 || a.sample_secs == 0 {
        bail!("--rate, --minutes and --sample-secs must be positive");
    }
    if !(0.0..=1.0).contains(&a.group_share) || (a.group_share > 0.0 && a.group_size < 2) {
        bail!("--group-share must be 0 to 1, and --group-size at least 2 when it is above 0");
    }
    let mut srv = super::server_for(common, &[]).await?;
    if srv.pid.is_none() {
        bail!("the steady proof reads server memory: spawn the server, or give --pid with --addr");
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let base_url = srv.base_url();
    let users = client::register_many(&http, &base_url, &client::run_prefix(), a.users, common.register_concurrency).await?;

    // Groups: user i is in group i % n_groups; the first member owns it.
    let n_groups = if a.group_share > 0.0 { (a.users / a.group_size).max(1) } else { 0 };
    let members: Vec<Vec<Account>> =
        (0..n_groups).map(|g| users.iter().enumerate().filter(|(i, _)| i % n_groups == g).map(|(_, u)| u.clone()).collect()).collect();
    let made = std::time::Instant::now();
    let groups: Vec<String> = stream::iter(members.iter().enumerate())
        .map(|(g, m)| {
            let (http, base_url) = (&http, &base_url);
            async move { client::make_group(http, base_url, &m[0], &m[1..], &format!("steady {g}")).await }
        })
        .buffered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    eprintln!(
        "  made {n_groups} groups of {}-{} members in {:.1} s",
        a.users / n_groups.max(1),
        a.users.div_ceil(n_groups.max(1)),
        made.elapsed().as_secs_f64()
    );
    let rss_registered = super::after_registration(&mut srv, common).await?;
    let base_url = srv.base_url();
    let rss_empty = srv.rss_bytes();

    let socks = connect_many(srv.addr, users.iter().map(|u| u.token.clone()).collect(), CONNECT_CONCURRENCY).await;
    let per_minute = a.rate * 60;
    let total = per_minute * a.minutes;
    let sh = Arc::new(Shared {
        minutes: Mutex::new((0..a.minutes).map(|_| Minute::default()).collect()),
        c: Counters::default(),
        clock: std::time::Instant::now(),
        per_minute,
        http_per_minute: a.http_rate * 60,
        group_share: a.group_share,
    });
    let stop = CancellationToken::new();
    let mut drivers: Vec<Vec<Sender>> = (0..DRIVERS.min(a.users)).map(|_| Vec::new()).collect();
    let n_drivers = drivers.len();
    let mut readers = Vec::with_capacity(a.users);
    for (i, s) in socks.into_iter().enumerate() {
        let ws = s.with_context(|| format!("socket of user {i}"))?;
        let (sink, stream) = ws.split();
        let group = (n_groups > 0).then(|| groups[i % n_groups].clone());
        let fanout = (n_groups > 0).then(|| members[i % n_groups].len() as u64 - 1);
        drivers[i % n_drivers].push(Sender { i, dm: dm(users[i].id, users[i ^ 1].id), group, sink });
        readers.push(tokio::spawn(reader(stream, users[i].id, fanout, stop.clone(), sh.clone())));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_connected = srv.rss_bytes();
    println!(
        "== steady: {} users ({} pairs, {n_groups} groups), {} messages/s ({:.0} % to groups) and {} HTTP requests/s for {} min; server RSS sampled every {} s",
        a.users,
        a.users / 2,
        a.rate,
        a.group_share * 100.0,
        a.http_rate,
        a.minutes,
        a.sample_secs
    );

    let quiet = wait_quiet(Duration::from_secs(common.wait_quiet)).await;
    let cpu_all = CpuWindow::start(&srv);
    let base = Instant::now() + Duration::from_millis(200);
    let run = Duration::from_secs(a.minutes * 60);
    let hard_end = base + run + Duration::from_secs(60);
    let mut driver_tasks = Vec::new();
    for senders in drivers {
        let plan = Plan { users: a.users as u64, total, rate: a.rate, base, hard_end, text_bytes: a.text_bytes };
        driver_tasks.push(tokio::spawn(driver(senders, plan, sh.clone())));
    }
    let http_task = tokio::spawn(http_load(
        http.clone(),
        base_url.clone(),
        Arc::new(HttpPlan::new(&users, &groups)),
        a.http_rate,
        base,
        run,
        sh.clone(),
    ));

    // Memory samples and one line per minute until the end of sending.
    let mut rss: Vec<(f64, u64)> = Vec::new();
    let mut minute_rows: Vec<Value> = Vec::new();
    let mut next_sample = base;
    let mut line_m = 0u64;
    let mut cpu_minute = CpuWindow::start(&srv);
    let mut server_died = false;
    loop {
        let next_line = base + Duration::from_secs((line_m + 1) * 60) + LINE_GRACE;
        let sampling = next_sample <= base + run;
        if !sampling && line_m >= a.minutes {
            break;
        }
        let wake = if sampling { next_sample.min(next_line) } else { next_line };
        tokio::time::sleep_until(wake).await;
        if sampling && Instant::now() >= next_sample {
            let t = next_sample.saturating_duration_since(base).as_secs_f64();
            match srv.rss_bytes() {
                Some(b) => rss.push((t, b)),
                None => server_died = true,
            }
            next_sample += Duration::from_secs(a.sample_secs);
        }
        if line_m < a.minutes && Instant::now() >= next_line {
            let cpu = cpu_minute.end(&srv);
            cpu_minute = CpuWindow::start(&srv);
            let row = minute_line(&sh, line_m, a.minutes, srv.rss_bytes(), &cpu);
            minute_rows.push(row);
            line_m += 1;
        }
        if srv.check_alive().is_err() {
            server_died = true;
        }
        if server_died {
            eprintln!("load: the server is gone; stopping early");
            break;
        }
    }

    let (lag_us, sinks) = join_drivers(driver_tasks).await;
    let http_lat = http_task.await.unwrap_or_default();
    // The last deliveries and acks.
    let totals = |sh: &Shared| {
        let m = sh.minutes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        m.iter().fold((0, 0, 0, 0, 0), |t, m| (t.0 + m.sent, t.1 + m.to_groups, t.2 + m.acked, t.3 + m.expected, t.4 + m.delivered))
    };
    let drain_until = Instant::now() + Duration::from_secs(10);
    loop {
        let (sent, _, acked, expected, delivered) = totals(&sh);
        if (acked + sh.c.error_frames.load(Relaxed) >= sent && delivered >= expected) || Instant::now() > drain_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu = cpu_all.end(&srv);
    let rss_end = srv.rss_bytes();
    let alive = srv.check_alive();
    stop.cancel();
    for r in readers {
        let _ = tokio::time::timeout(Duration::from_secs(10), r).await;
    }
    for mut s in sinks {
        let _ = tokio::time::timeout(Duration::from_secs(1), s.close()).await;
    }

    let (sent, to_groups, acked, expected, delivered) = totals(&sh);
    let (deliver, ack, http_by_class) = {
        let mut m = sh.minutes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut classes = [0u64; 6];
        for x in m.iter() {
            for (c, n) in classes.iter_mut().zip(x.http) {
                *c += n;
            }
        }
        (
            Percentiles::of(m.iter_mut().flat_map(|x| std::mem::take(&mut x.deliver_us)).collect()),
            Percentiles::of(m.iter_mut().flat_map(|x| std::mem::take(&mut x.ack_us)).collect()),
            classes,
        )
    };
    let http_lat = Percentiles::of(http_lat);
    let lag = Percentiles::of(lag_us);
    let c = &sh.c;
    let http_total: u64 = http_by_class.iter().sum();
    let http_bad = http_by_class[5] + http_by_class[0];
    let http_pct = 100.0 * http_bad as f64 / http_total.max(1) as f64;
    let send_bad = sent.saturating_sub(acked);
    let send_pct = 100.0 * send_bad as f64 / sent.max(1) as f64;
    let undelivered = expected.saturating_sub(delivered);
    let samples: Vec<(f64, f64)> = rss.iter().map(|&(t, b)| (t, b as f64 / 1_048_576.0)).collect();
    let trend = memory_trend(&samples, a.max_slope_pct, a.max_late_growth_pct);

    let pct = |x: f64| format!("{x:.4} %");
    // (bar, verdict (None: reported, not checked), figures)
    let mut bars: Vec<(String, Option<bool>, String)> = Vec::new();
    bars.push((
        format!("server errors <= {} %", a.max_error_pct),
        Some(http_pct <= a.max_error_pct && send_pct <= a.max_error_pct && sent > 0),
        format!(
            "HTTP {} ({http_bad} of {http_total}: {} 5xx, {} failed without an answer); sends {} ({send_bad} of {sent} refused or not acknowledged, {} error frames)",
            pct(http_pct),
            http_by_class[5],
            http_by_class[0],
            pct(send_pct),
            c.error_frames.load(Relaxed)
        ),
    ));
    bars.push((
        format!("delivery p99 <= {} ms", a.max_p99_ms),
        Some(deliver.n > 0 && (deliver.p99 as f64 / 1000.0) <= a.max_p99_ms),
        format!("p99 {:.2} ms over {} deliveries", deliver.p99 as f64 / 1000.0, deliver.n),
    ));
    bars.push((
        format!(
            "memory: second-half slope <= {} % of its mean per hour, last quarter max <= second quarter max + {} %",
            a.max_slope_pct, a.max_late_growth_pct
        ),
        (!a.report_memory_only).then(|| trend.pass()),
        format!(
            "slope {:+.2} MiB/h over {} samples from {:.0} s (bar {:.2} MiB/h: {} % of the mean {:.1} MiB){}; last quarter max {:.1} MiB vs second quarter max {:.1} MiB (bar {:.1} MiB)",
            trend.slope_mib_per_hour,
            samples.len() - samples.len() / 2,
            samples.get(samples.len() / 2).map_or(0.0, |s| s.0),
            trend.slope_limit_mib_per_hour,
            a.max_slope_pct,
            trend.mean_mib,
            if samples.len() < MIN_TREND_SAMPLES { format!(", too few samples (need {MIN_TREND_SAMPLES})") } else { String::new() },
            trend.q4_max_mib,
            trend.q2_max_mib,
            trend.q4_limit_mib
        ),
    ));
    let failed_bars = bars.iter().filter(|b| b.1 == Some(false)).count() as u64;
    let hard = c.send_failures.load(Relaxed)
        + c.bad_frames.load(Relaxed)
        + c.disconnects.load(Relaxed)
        + undelivered
        + http_by_class[4]
        + u64::from(alive.is_err() || server_died);
    let errors = failed_bars + hard;

    let secs = run.as_secs_f64();
    println!(
        "== steady: {} users ({} pairs, {n_groups} groups), {} messages/s and {} HTTP requests/s for {} min",
        a.users,
        a.users / 2,
        a.rate,
        a.http_rate,
        a.minutes
    );
    println!("  sent {sent} ({:.1}/s, {to_groups} to groups), acked {acked}, delivered {delivered} of {expected}", sent as f64 / secs);
    println!("  send -> deliver: {}", deliver.line_ms());
    println!("  send -> ack:     {}", ack.line_ms());
    println!("  sender lag behind schedule: {}", lag.line_ms());
    println!(
        "  HTTP: {http_total} requests ({:.1}/s): {} 2xx, {} 3xx, {} 4xx, {} 5xx, {} failed; {}",
        http_total as f64 / secs,
        http_by_class[2],
        http_by_class[3],
        http_by_class[4],
        http_by_class[5],
        http_by_class[0],
        http_lat.line_ms()
    );
    println!(
        "  server RSS {} MiB after registration, {} MiB restarted, {} MiB connected, {} MiB at the end",
        opt_mib(rss_registered),
        opt_mib(rss_empty),
        opt_mib(rss_connected),
        opt_mib(rss_end)
    );
    println!("  RSS samples (MiB): {}", samples.iter().map(|s| format!("{:.1}", s.1)).collect::<Vec<_>>().join(" "));
    println!("  {}", cpu.line());
    println!(
        "  errors: {errors} (failed bars {failed_bars}; send failures {}, bad frames {}, disconnects {}, undelivered {undelivered}, HTTP 4xx {}, server exited {})",
        c.send_failures.load(Relaxed),
        c.bad_frames.load(Relaxed),
        c.disconnects.load(Relaxed),
        http_by_class[4],
        alive.is_err() || server_died
    );
    let problems_logged = srv.log_problems();
    if problems_logged > 0 {
        println!("  server log: {problems_logged} WARN/ERROR lines");
    }
    for (bar, ok, detail) in &bars {
        let verdict = match ok {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "REPORTED, NOT CHECKED (--report-memory-only)",
        };
        println!("  {verdict}: {bar}: {detail}");
    }
    println!("  {}", if errors == 0 { "PASS".to_owned() } else { format!("FAIL: {errors} errors") });

    let r2 = |x: f64| if x.is_finite() { json!((x * 100.0).round() / 100.0) } else { Value::Null };
    let http_v = json!({
        "requests": http_total,
        "failed": http_by_class[0],
        "1xx": http_by_class[1], "2xx": http_by_class[2], "3xx": http_by_class[3],
        "4xx": http_by_class[4], "5xx": http_by_class[5],
        "latency": http_lat.json_ms(),
    });
    let memory_v = json!({
        "samples": trend.samples,
        "second_half_slope_mib_per_hour": r2(trend.slope_mib_per_hour),
        "second_half_mean_mib": r2(trend.mean_mib),
        "slope_limit_mib_per_hour": r2(trend.slope_limit_mib_per_hour),
        "second_quarter_max_mib": r2(trend.q2_max_mib),
        "last_quarter_max_mib": r2(trend.q4_max_mib),
        "last_quarter_limit_mib": r2(trend.q4_limit_mib),
        "slope_ok": trend.slope_ok,
        "late_ok": trend.late_ok,
    });
    let errors_v = json!({
        "total": errors,
        "failed_bars": failed_bars,
        "send_failures": c.send_failures.load(Relaxed),
        "error_frames": c.error_frames.load(Relaxed),
        "bad_frames": c.bad_frames.load(Relaxed),
        "disconnects": c.disconnects.load(Relaxed),
        "undelivered": undelivered,
        "unacked": send_bad,
        "http_4xx": http_by_class[4],
        "server_exited": alive.is_err() || server_died,
    });
    let bars_v: Vec<Value> =
        bars.iter().map(|(bar, ok, detail)| json!({"bar": bar, "checked": ok.is_some(), "pass": ok, "detail": detail})).collect();
    let report = json!({
        "scenario": "steady",
        "users": a.users,
        "pairs": a.users / 2,
        "groups": n_groups,
        "group_size": a.group_size,
        "group_share": a.group_share,
        "rate": a.rate,
        "http_rate": a.http_rate,
        "minutes": a.minutes,
        "sample_secs": a.sample_secs,
        "text_bytes": a.text_bytes,
        "sent": sent,
        "sent_to_groups": to_groups,
        "acked": acked,
        "expected_deliveries": expected,
        "delivered": delivered,
        "achieved_rate": r2(sent as f64 / secs),
        "deliver_latency": deliver.json_ms(),
        "ack_latency": ack.json_ms(),
        "sender_lag": lag.json_ms(),
        "http": http_v,
        "http_error_pct": http_pct,
        "send_error_pct": send_pct,
        "per_minute": minute_rows,
        "rss_samples": samples.iter().map(|s| json!([s.0.round(), (s.1 * 10.0).round() / 10.0])).collect::<Vec<_>>(),
        "memory_trend": memory_v,
        "server_rss_mib_after_registration": opt_mib(rss_registered),
        "restarted_after_registration": srv.is_spawned() && !common.no_restart,
        "server_rss_mib_empty": opt_mib(rss_empty),
        "server_rss_mib_connected": opt_mib(rss_connected),
        "server_rss_mib_end": opt_mib(rss_end),
        "cpu": cpu.json(),
        "waited_for_quiet_s": quiet.0.round(),
        "machine_was_quiet": quiet.1,
        "server_cpu_us_per_msg": cpu.server.map(|s| (s * 1e6 / sent.max(1) as f64).round()),
        "server_log_warnings": problems_logged,
        "bars": bars_v,
        "errors": errors_v,
        "pass": errors == 0,
        "server_env": server_env(&srv),
        "machine": machine_note(),
    });
    srv.stop();
    Ok((report, errors))
}

/// Prints the line of minute `m` (messages sent in it and what became of them so far, HTTP
/// requests started in it, RSS and CPU now) and returns it for the report.
fn minute_line(sh: &Shared, m: u64, minutes: u64, rss: Option<u64>, cpu: &CpuUse) -> Value {
    let (sent, to_groups, acked, expected, delivered, http, deliver, ack) = sh
        .at(m, |x| (x.sent, x.to_groups, x.acked, x.expected, x.delivered, x.http, x.deliver_us.clone(), x.ack_us.clone()))
        .unwrap_or_default();
    let (deliver, ack) = (Percentiles::of(deliver), Percentiles::of(ack));
    let share = |s: Option<f64>| s.map_or("?".to_owned(), |s| format!("{:.0}%", s / cpu.wall.max(1e-9) * 100.0));
    println!(
        "  minute {}/{minutes}: sent {sent} ({to_groups} to groups), acked {acked}, delivered {delivered}/{expected}; deliver p99 {:.1} ms (max {:.0}), ack p99 {:.1} ms; HTTP {} ({} 5xx, {} failed); RSS {} MiB; CPU server {}, tool {}, others {}",
        m + 1,
        deliver.p99 as f64 / 1000.0,
        deliver.max as f64 / 1000.0,
        ack.p99 as f64 / 1000.0,
        http.iter().sum::<u64>(),
        http[5],
        http[0],
        opt_mib(rss),
        share(cpu.server),
        share(Some(cpu.me)),
        share(cpu.others)
    );
    json!({
        "minute": m + 1,
        "sent": sent, "sent_to_groups": to_groups, "acked": acked, "expected_deliveries": expected, "delivered": delivered,
        "deliver_p99_ms": deliver.p99 as f64 / 1000.0, "deliver_max_ms": deliver.max as f64 / 1000.0,
        "ack_p99_ms": ack.p99 as f64 / 1000.0,
        "http_requests": http.iter().sum::<u64>(), "http_5xx": http[5], "http_failed": http[0],
        "rss_mib": opt_mib(rss),
        "cpu": cpu.json(),
    })
}

struct Sender {
    i: usize,
    dm: String,
    group: Option<String>,
    sink: Sink,
}

struct Plan {
    users: u64,
    total: u64,
    rate: u64,
    base: Instant,
    hard_end: Instant,
    text_bytes: usize,
}

/// Sends message k at `base + k / rate` from user `k % users`, to its group or its partner, for
/// the users it owns. Open loop: it never waits for acks. Returns how late each send was.
async fn driver(mut senders: Vec<Sender>, p: Plan, sh: Arc<Shared>) -> (Vec<u64>, Vec<Sink>) {
    senders.sort_by_key(|s| s.i);
    let mut alive = vec![true; senders.len()];
    let mut lag = Vec::with_capacity((p.total / DRIVERS as u64 + 1) as usize);
    'rounds: for round in 0u64.. {
        for (idx, s) in senders.iter_mut().enumerate() {
            let k = round * p.users + s.i as u64;
            if k >= p.total || Instant::now() > p.hard_end {
                break 'rounds;
            }
            let due = p.base + Duration::from_nanos((u128::from(k) * 1_000_000_000 / u128::from(p.rate)) as u64);
            tokio::time::sleep_until(due).await;
            if !alive[idx] {
                continue;
            }
            lag.push(Instant::now().saturating_duration_since(due).as_micros() as u64);
            let group = s.group.as_deref().filter(|_| to_group(k, sh.group_share));
            let sent_us = sh.clock.elapsed().as_micros() as u64;
            let head = format!("{k} {sent_us} ");
            let text = format!("{head}{}", padding(head.len(), p.text_bytes));
            let frame = send_frame(&format!("k{k}"), group.unwrap_or(&s.dm), &text);
            match tokio::time::timeout(Duration::from_secs(5), s.sink.send(frame)).await {
                Ok(Ok(())) => {
                    sh.at(k / sh.per_minute, |m| {
                        m.sent += 1;
                        m.to_groups += u64::from(group.is_some());
                    });
                }
                _ => {
                    sh.c.send_failures.fetch_add(1, Relaxed);
                    alive[idx] = false;
                }
            }
        }
    }
    (lag, senders.into_iter().map(|s| s.sink).collect())
}

/// Reads one user's socket: acks of its sends and deliveries from others, each timed from the
/// send time in the text. `fanout`: the other members of this user's group.
async fn reader(mut stream: futures_util::stream::SplitStream<Ws>, me: u64, fanout: Option<u64>, stop: CancellationToken, sh: Arc<Shared>) {
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => break,
            n = stream.next() => n,
        };
        let now_us = sh.clock.elapsed().as_micros() as u64;
        match next {
            Some(Ok(WsMessage::Text(t))) => {
                let Ok(f) = serde_json::from_str::<Frame>(t.as_str()) else {
                    sh.c.bad_frames.fetch_add(1, Relaxed);
                    continue;
                };
                let stamp = f.message.as_ref().and_then(|m| {
                    let mut parts = m.content.text.as_deref()?.split(' ');
                    let k: u64 = parts.next()?.parse().ok()?;
                    let sent: u64 = parts.next()?.parse().ok()?;
                    Some((m.sender, k, now_us.saturating_sub(sent)))
                });
                match (&*f.ty, stamp) {
                    ("ack", Some((_, k, lat))) => {
                        let expect = match fanout {
                            Some(n) if to_group(k, sh.group_share) => n,
                            _ => 1,
                        };
                        sh.at(k / sh.per_minute, |m| {
                            m.acked += 1;
                            m.expected += expect;
                            m.ack_us.push(lat);
                        });
                    }
                    ("message", Some((sender, k, lat))) if sender != me => {
                        sh.at(k / sh.per_minute, |m| {
                            m.delivered += 1;
                            m.deliver_us.push(lat);
                        });
                    }
                    ("error", _) => {
                        let seen = sh.c.error_frames.fetch_add(1, Relaxed);
                        if seen < 5 {
                            eprintln!("  user {me} got an error frame: {}", t.as_str());
                        }
                    }
                    _ => {}
                }
            }
            Some(Ok(WsMessage::Close(_)) | Err(_)) | None => {
                sh.c.disconnects.fetch_add(1, Relaxed);
                eprintln!("  user {me}'s socket ended after {:.1} s: {next:?}", now_us as f64 / 1e6);
                break;
            }
            Some(Ok(_)) => {}
        }
    }
}

/// What the HTTP load asks for: per user, its token, its 1:1 conversation and its group.
struct HttpPlan {
    users: Vec<(String, String, Option<String>)>,
}

impl HttpPlan {
    fn new(users: &[Account], groups: &[String]) -> HttpPlan {
        let users = users
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let group = (!groups.is_empty()).then(|| groups[i % groups.len()].clone());
                (u.token.clone(), dm(u.id, users[i ^ 1].id), group)
            })
            .collect();
        HttpPlan { users }
    }

    /// Request j: a path a real client asks for, and the user who asks.
    fn request(&self, j: u64) -> (String, &str) {
        // A stride coprime with most user counts, so that consecutive requests come from
        // different users.
        let (token, dm, group) = &self.users[(j.wrapping_mul(7919) % self.users.len() as u64) as usize];
        let path = match (j % 6, group) {
            (1, _) | (2, None) => format!("/api/conversations/{dm}/messages?limit=50"),
            (2, Some(g)) => format!("/api/conversations/{g}/messages?limit=50"),
            (3, _) => "/api/contacts".to_owned(),
            (4, _) => "/api/me".to_owned(),
            (5, Some(g)) => format!("/api/groups/{}/members", g.trim_start_matches("g:")),
            _ => "/api/conversations".to_owned(),
        };
        (path, token)
    }
}

/// Starts request j at `base + j / rate` (open loop, each in its own task, bounded by the
/// client's 10 s timeout) and counts every answer by status class in the minute it started.
/// Returns each answered request's latency.
async fn http_load(
    http: reqwest::Client,
    base_url: String,
    plan: Arc<HttpPlan>,
    rate: u64,
    base: Instant,
    run: Duration,
    sh: Arc<Shared>,
) -> Vec<u64> {
    if rate == 0 {
        return Vec::new();
    }
    let lat = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    let total = rate * run.as_secs();
    for j in 0..total {
        tokio::time::sleep_until(base + Duration::from_nanos(j * 1_000_000_000 / rate)).await;
        let (http, url, plan, sh, lat) = (http.clone(), base_url.clone(), plan.clone(), sh.clone(), lat.clone());
        tasks.push(tokio::spawn(async move {
            let (path, token) = plan.request(j);
            let t = Instant::now();
            let class = match http.get(format!("{url}{path}")).bearer_auth(token).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let class = usize::from(status / 100).min(5);
                    if status >= 400 {
                        let body = r.text().await.unwrap_or_default();
                        if sh.c.http_logged.fetch_add(1, Relaxed) < 5 {
                            eprintln!("  GET {path}: HTTP {status}: {body}");
                        }
                        class
                    } else if r.bytes().await.is_ok() {
                        class
                    } else {
                        0
                    }
                }
                Err(e) => {
                    if sh.c.http_logged.fetch_add(1, Relaxed) < 5 {
                        eprintln!("  GET {path} failed: {e}");
                    }
                    0
                }
            };
            if class != 0 {
                lat.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(t.elapsed().as_micros() as u64);
            }
            sh.at(j / sh.http_per_minute, |m| m.http[class] += 1);
        }));
        tasks.retain(|t| !t.is_finished());
    }
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
    }
    std::mem::take(&mut *lat.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
}
