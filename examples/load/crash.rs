//! The crash proof (R1, R2): clients send continuously and keep an ack log while the server is
//! killed with SIGKILL at random moments and started again on the same data dir (in some runs killed a
//! second time within half a second of that start). Clients reconnect and resend every message
//! not yet acknowledged, with its first client id. After every run and at the end, each
//! conversation's history is read back over the API: every acknowledged message must be there
//! exactly once at the seq its ack named, no client id twice, seqs 1..N without gaps.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

use super::client::{self, Frame, Percentiles, dm, padding, send_frame};
use super::{Common, machine_note, server_env};

#[derive(Args, Clone)]
pub struct CrashArgs {
    /// Runs with one SIGKILL each (R1).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Further runs whose restarted server is killed again within --second-kill-ms of its start
    /// (R2).
    #[arg(long, default_value_t = 10)]
    double_runs: usize,
    /// Clients, in pairs sharing a 1:1 conversation that both write to.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Sends in flight per client (unacknowledged messages on its socket).
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// New messages per second per client (0: as fast as the window allows).
    #[arg(long, default_value_t = 20)]
    rate: u64,
    /// The SIGKILL comes at a random moment this many milliseconds (MIN-MAX) after the clients
    /// are sending again.
    #[arg(long, default_value = "200-3000")]
    kill_after_ms: String,
    /// In double runs, the second SIGKILL comes at a random moment up to this many milliseconds
    /// after the restarted process was started.
    #[arg(long, default_value_t = 500)]
    second_kill_ms: u64,
    /// Seed for the random kill moments (default: from the clock; printed for replays).
    #[arg(long)]
    seed: Option<u64>,
    /// Bytes of text per message.
    #[arg(long, default_value_t = 100)]
    text_bytes: usize,
    /// Seconds the clients have at the end to get every message acknowledged.
    #[arg(long, default_value_t = 60)]
    drain_secs: u64,
}

/// Answers that mean "not stored, try again": the message stays in the outbox.
const TRANSIENT: &[&str] = &["unavailable", "busy", "shutting_down", "rate_limited", "internal"];
/// New messages wait while this many are unacknowledged (the server is down).
const MAX_OUTBOX: usize = 5_000;

/// One acknowledged message as its ack described it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Acked {
    seq: u64,
    sender: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    resent: AtomicU64,
    acked: AtomicU64,
    /// Acks for a client id that was already acknowledged (allowed when the seq is the same).
    reacked: AtomicU64,
    /// Acks of a resend whose message had been stored before that resend was sent: its first
    /// ack was lost with the killed server, and the server answered from its client-id index.
    acked_from_earlier_send: AtomicU64,
    transient_errors: AtomicU64,
    connects: AtomicU64,
    disconnects: AtomicU64,
}

struct Shared {
    addr: SocketAddr,
    counters: Counters,
    /// conversation -> client id -> what its ack said.
    acks: Mutex<HashMap<String, HashMap<String, Acked>>>,
    /// Violations seen by the clients themselves (an ack that contradicts an earlier one, a
    /// refusal that is not transient).
    problems: Mutex<Vec<String>>,
    /// No new messages after this; outstanding ones are still resent until acknowledged.
    stop_new: CancellationToken,
    /// Give up (the drain deadline passed).
    abort: CancellationToken,
}

impl Shared {
    fn problem(&self, p: String) {
        let mut v = self.problems.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if v.len() < 1000 {
            v.push(p);
        }
    }

    fn acks_snapshot(&self) -> HashMap<String, HashMap<String, Acked>> {
        self.acks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

struct Spec {
    me: u64,
    token: String,
    conv: String,
}

struct Entry {
    cid: String,
    text: String,
    in_flight: bool,
    sent_before: bool,
    /// When it was last sent, milliseconds since the Unix epoch.
    last_sent_ms: u64,
}

/// What a client had left at the end.
struct ClientOut {
    unacked: usize,
}

pub async fn crash(common: &Common, a: &CrashArgs) -> anyhow::Result<(Value, u64)> {
    if a.clients < 2 || !a.clients.is_multiple_of(2) {
        bail!("--clients must be an even number of at least 2");
    }
    if common.addr.is_some() {
        bail!("the crash proof kills and restarts the server: it must spawn it (no --addr)");
    }
    let (kill_min, kill_max) = parse_range(&a.kill_after_ms)?;
    let seed =
        a.seed.unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64));
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    eprintln!("load: crash proof, seed {seed} (replay with --seed {seed})");

    let mut srv = super::server_for(common, &[]).await?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let users = client::register_many(&http, &srv.base_url(), &client::run_prefix(), a.clients, common.register_concurrency).await?;
    let shared = Arc::new(Shared {
        addr: srv.addr,
        counters: Counters::default(),
        acks: Mutex::new(HashMap::new()),
        problems: Mutex::new(Vec::new()),
        stop_new: CancellationToken::new(),
        abort: CancellationToken::new(),
    });
    let convs: Vec<(String, String)> =
        (0..a.clients / 2).map(|p| (dm(users[2 * p].id, users[2 * p + 1].id), users[2 * p].token.clone())).collect();
    let mut tasks = Vec::with_capacity(a.clients);
    for (i, u) in users.iter().enumerate() {
        let spec = Spec { me: u.id, token: u.token.clone(), conv: dm(u.id, users[i ^ 1].id) };
        tasks.push(tokio::spawn(crash_client(spec, a.clone(), shared.clone())));
    }

    let c = &shared.counters;
    let mut violations: Vec<String> = Vec::new();
    let mut runs = Vec::new();
    let mut restart_ms = Vec::new();
    let mut recovery_ms = Vec::new();
    let mut acked_by_short_lived = 0u64;
    let mut log_offset = srv.log_len();
    let mut seen = Seen::default();
    // Double runs are spread among the single ones in a seeded order.
    let mut kinds: Vec<bool> = std::iter::repeat_n(false, a.runs).chain(std::iter::repeat_n(true, a.double_runs)).collect();
    for i in (1..kinds.len()).rev() {
        kinds.swap(i, rng.random_range(0..=i));
    }
    let total = kinds.len();
    for (run, double) in kinds.into_iter().enumerate() {
        // Under load: wait until acks flow, then a random moment.
        let progress_from = c.acked.load(Relaxed);
        if !wait_for(Duration::from_secs(30), || c.acked.load(Relaxed) >= progress_from + a.clients as u64).await {
            violations.push(format!("run {}: no progress within 30 s after the restart", run + 1));
        }
        let delay = rng.random_range(kill_min..=kill_max);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let acked_at_kill = c.acked.load(Relaxed);
        srv.check_alive().with_context(|| format!("run {}: the server died by itself\n{}", run + 1, srv.log_tail()))?;
        srv.kill()?;
        let killed_at = Instant::now();
        let mut second_kill = None;
        if double {
            let before = c.acked.load(Relaxed);
            srv.launch_again()?;
            let d = rng.random_range(0..=a.second_kill_ms);
            tokio::time::sleep(Duration::from_millis(d)).await;
            if srv.check_alive().is_err() {
                violations.push(format!("run {}: the restarted server exited by itself before the second kill", run + 1));
            }
            srv.kill()?;
            acked_by_short_lived += c.acked.load(Relaxed) - before;
            second_kill = Some(d);
        }
        let started = Instant::now();
        srv.start_again().await.with_context(|| format!("run {}: restart", run + 1))?;
        restart_ms.push(started.elapsed().as_millis() as u64);
        let log = srv.log_since(log_offset);
        log_offset = srv.log_len();
        let panics = log.lines().filter(|l| l.contains("panicked")).count();
        let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
        if panics > 0 || !errors.is_empty() {
            violations.push(format!(
                "run {}: {panics} panics and {} errors in the server log since the last start, first: {}",
                run + 1,
                errors.len(),
                errors.first().map_or("", |l| l.trim())
            ));
        }
        let resumed_from = c.acked.load(Relaxed);
        let resumed = wait_for(Duration::from_secs(30), || c.acked.load(Relaxed) > resumed_from).await;
        if resumed {
            recovery_ms.push(killed_at.elapsed().as_millis() as u64);
        }
        // Every ack given so far must be in the histories now (later messages may be there too).
        let report = seen.check(&http, &srv.base_url(), &convs, &shared.acks_snapshot()).await;
        for p in report.problems.iter().take(20) {
            violations.push(format!("run {}: {p}", run + 1));
        }
        eprintln!(
            "  run {}/{total}{}: killed {delay} ms into sending{} with {acked_at_kill} acked; restarted in {} ms; checked {} acked messages: lost {}, duplicates {}, gaps {}",
            run + 1,
            if double { " (double)" } else { "" },
            second_kill.map_or(String::new(), |d| format!(", again {d} ms after its restart")),
            restart_ms.last().copied().unwrap_or(0),
            report.checked,
            report.lost,
            report.duplicates,
            report.gaps
        );
        runs.push(json!({
            "run": run + 1,
            "double": double,
            "kill_after_ms": delay,
            "second_kill_after_start_ms": second_kill,
            "acked_at_kill": acked_at_kill,
            "restart_ms": restart_ms.last(),
            "checked": report.checked,
            "lost": report.lost,
            "duplicates": report.duplicates,
            "gaps": report.gaps,
        }));
    }

    // The end: no new messages; everything outstanding is resent until acknowledged.
    shared.stop_new.cancel();
    let drain_deadline = Instant::now() + Duration::from_secs(a.drain_secs);
    let mut unacked_at_end = 0usize;
    for t in tasks {
        let left = drain_deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, t).await {
            Ok(Ok(out)) => unacked_at_end += out.unacked,
            Ok(Err(e)) => violations.push(format!("a client task failed: {e}")),
            Err(_) => {
                shared.abort.cancel();
                violations.push("clients did not get every message acknowledged within --drain-secs".into());
                break;
            }
        }
    }
    if unacked_at_end > 0 {
        violations.push(format!("{unacked_at_end} messages were never acknowledged"));
    }
    let fin = verify(&http, &srv.base_url(), &convs, &shared.acks_snapshot(), true).await;
    violations.extend(fin.problems.iter().take(50).cloned());
    violations.extend(shared.problems.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().take(50).cloned());
    let log = srv.log_since(log_offset);
    let status = srv.terminate();
    if !status.is_some_and(|s| s.success()) {
        violations.push(format!("the server did not stop cleanly on SIGTERM at the end: {status:?}"));
    }
    let panics = log.lines().filter(|l| l.contains("panicked")).count();
    if panics > 0 {
        violations.push(format!("{panics} panics in the server log of the last run"));
    }

    let restart = Percentiles::of(restart_ms.iter().map(|ms| ms * 1000).collect());
    let recovery = Percentiles::of(recovery_ms.iter().map(|ms| ms * 1000).collect());
    let ok = violations.is_empty();
    println!(
        "== crash: {total} runs ({} with one SIGKILL, {} killed again within {} ms of the restart), {} clients in {} conversations, seed {seed}",
        a.runs,
        a.double_runs,
        a.second_kill_ms,
        a.clients,
        convs.len()
    );
    println!(
        "  acknowledged {} messages ({} sends, {} resends after reconnects of which {} had been stored by an earlier send, {} reconnects); {} acked by servers that lived < {} ms",
        c.acked.load(Relaxed),
        c.sent.load(Relaxed),
        c.resent.load(Relaxed),
        c.acked_from_earlier_send.load(Relaxed),
        c.connects.load(Relaxed).saturating_sub(a.clients as u64),
        acked_by_short_lived,
        a.second_kill_ms
    );
    println!(
        "  final check of {} acknowledged messages: missing {}, duplicates {}, seq gaps {}, stored but never acknowledged {}",
        fin.checked, fin.lost, fin.duplicates, fin.gaps, fin.unacked_stored
    );
    println!("  restart to /healthz: {}", restart.line_ms());
    println!("  SIGKILL to the next ack: {}", recovery.line_ms());
    println!("  {}", if ok { "PASS".to_owned() } else { format!("FAIL: {} violations", violations.len()) });
    for v in violations.iter().take(30) {
        println!("    {v}");
    }
    let report = json!({
        "scenario": "crash",
        "seed": seed,
        "runs": a.runs,
        "double_runs": a.double_runs,
        "clients": a.clients,
        "conversations": convs.len(),
        "acked": c.acked.load(Relaxed),
        "sent": c.sent.load(Relaxed),
        "resent": c.resent.load(Relaxed),
        "reacked": c.reacked.load(Relaxed),
        "acked_from_earlier_send": c.acked_from_earlier_send.load(Relaxed),
        "transient_errors": c.transient_errors.load(Relaxed),
        "acked_by_short_lived_servers": acked_by_short_lived,
        "final": {"checked": fin.checked, "missing": fin.lost, "duplicates": fin.duplicates, "gaps": fin.gaps, "stored_unacked": fin.unacked_stored},
        "restart_to_healthz": restart.json_ms(),
        "kill_to_next_ack": recovery.json_ms(),
        "per_run": runs,
        "violations": violations,
        "pass": ok,
        "server_env": server_env(&srv),
        "machine": machine_note(),
    });
    srv.stop();
    Ok((report, violations.len() as u64))
}

fn parse_range(s: &str) -> anyhow::Result<(u64, u64)> {
    let (a, b) = s.split_once('-').with_context(|| format!("{s}: expected MIN-MAX"))?;
    let (a, b): (u64, u64) = (a.trim().parse()?, b.trim().parse()?);
    if a > b {
        bail!("{s}: MIN is above MAX");
    }
    Ok((a, b))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

async fn wait_for(within: Duration, cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// One client: sends at its rate with up to `window` unacknowledged on the socket; on any
/// disconnect it reconnects (the server may be down for a while) and sends every message still
/// unacknowledged again, first ones first, with the same client ids.
async fn crash_client(spec: Spec, a: CrashArgs, sh: Arc<Shared>) -> ClientOut {
    let c = &sh.counters;
    let mut outbox: VecDeque<Entry> = VecDeque::new();
    let mut next = 0u64;
    let period = if a.rate == 0 { None } else { Some(Duration::from_secs_f64(1.0 / a.rate as f64)) };
    let mut next_new = Instant::now();
    // After a transient refusal, wait a little before sending again.
    let mut hold_until = Instant::now();
    'connections: loop {
        if sh.abort.is_cancelled() || (sh.stop_new.is_cancelled() && outbox.is_empty()) {
            break;
        }
        let mut ws = tokio::select! {
            () = sh.abort.cancelled() => break,
            r = client::connect(sh.addr, &spec.token) => match r {
                Ok(ws) => ws,
                Err(_) => {
                    // Down or starting: try again shortly.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        c.connects.fetch_add(1, Relaxed);
        for e in &mut outbox {
            e.in_flight = false;
        }
        loop {
            // New messages, at the client's pace (or to keep the window full).
            let now = Instant::now();
            if !sh.stop_new.is_cancelled() && outbox.len() < MAX_OUTBOX {
                let due = match period {
                    None => outbox.len() < a.window,
                    Some(_) => now >= next_new,
                };
                if due {
                    let cid = format!("{}-{next}", spec.me);
                    let head = format!("{cid} ");
                    outbox.push_back(Entry {
                        text: format!("{head}{}", padding(head.len(), a.text_bytes)),
                        cid,
                        in_flight: false,
                        sent_before: false,
                        last_sent_ms: 0,
                    });
                    next += 1;
                    if let Some(p) = period {
                        // Catch up at most one period: the server being down is not made up for.
                        next_new = (next_new + p).max(now);
                    }
                }
            }
            if sh.stop_new.is_cancelled() && outbox.is_empty() {
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                break 'connections;
            }
            // Fill the window, oldest first.
            if now >= hold_until {
                let mut in_flight = outbox.iter().filter(|e| e.in_flight).count();
                for e in &mut outbox {
                    if in_flight >= a.window {
                        break;
                    }
                    if e.in_flight {
                        continue;
                    }
                    if ws.send(send_frame(&e.cid, &spec.conv, &e.text)).await.is_err() {
                        c.disconnects.fetch_add(1, Relaxed);
                        continue 'connections;
                    }
                    e.in_flight = true;
                    in_flight += 1;
                    if e.sent_before {
                        c.resent.fetch_add(1, Relaxed);
                        e.last_sent_ms = now_ms();
                    } else {
                        e.sent_before = true;
                        c.sent.fetch_add(1, Relaxed);
                    }
                }
            }
            let wake = match period {
                Some(_) if !sh.stop_new.is_cancelled() => next_new.max(hold_until),
                _ => hold_until.max(Instant::now() + Duration::from_millis(100)),
            };
            let frame = tokio::select! {
                () = sh.abort.cancelled() => break 'connections,
                () = tokio::time::sleep_until(wake) => continue,
                f = ws.next() => f,
            };
            let text = match frame {
                Some(Ok(WsMessage::Text(t))) => t,
                Some(Ok(WsMessage::Close(_)) | Err(_)) | None => {
                    c.disconnects.fetch_add(1, Relaxed);
                    continue 'connections;
                }
                Some(Ok(_)) => continue,
            };
            let Ok(f) = serde_json::from_str::<Frame>(text.as_str()) else {
                sh.problem(format!("client {}: unreadable frame {:.80}", spec.me, text.as_str()));
                continue;
            };
            match &*f.ty {
                "ack" => {
                    let (Some(cid), Some(m)) = (f.client_id.as_deref(), f.message.as_ref()) else {
                        sh.problem(format!("client {}: ack without client id or message: {:.120}", spec.me, text.as_str()));
                        continue;
                    };
                    let Some(pos) = outbox.iter().position(|e| e.cid == cid) else {
                        sh.problem(format!("client {}: ack for {cid}, which is not outstanding", spec.me));
                        continue;
                    };
                    let entry = outbox.remove(pos).expect("found above");
                    // Committed before its last resend went out: stored by an earlier send.
                    if entry.last_sent_ms > 0 && m.ts > 0 && m.ts < entry.last_sent_ms {
                        c.acked_from_earlier_send.fetch_add(1, Relaxed);
                    }
                    let got = Acked { seq: m.seq, sender: m.sender };
                    if m.sender != spec.me {
                        sh.problem(format!("client {}: ack for {cid} names sender {}", spec.me, m.sender));
                    }
                    let mut acks = sh.acks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    match acks.entry(spec.conv.clone()).or_default().insert(cid.to_owned(), got) {
                        None => {
                            c.acked.fetch_add(1, Relaxed);
                        }
                        Some(prev) if prev == got => {
                            c.reacked.fetch_add(1, Relaxed);
                        }
                        Some(prev) => {
                            drop(acks);
                            sh.problem(format!("client {}: {cid} acknowledged as seq {} and later as seq {}", spec.me, prev.seq, got.seq));
                        }
                    }
                }
                "error" => {
                    let code = serde_json::from_str::<Value>(text.as_str())
                        .ok()
                        .and_then(|v| v["code"].as_str().map(str::to_owned))
                        .unwrap_or_default();
                    let entry = f.client_id.as_deref().and_then(|cid| outbox.iter_mut().find(|e| e.cid == cid));
                    match entry {
                        Some(e) if TRANSIENT.contains(&code.as_str()) => {
                            c.transient_errors.fetch_add(1, Relaxed);
                            e.in_flight = false;
                            hold_until = Instant::now() + Duration::from_millis(100);
                        }
                        _ => sh.problem(format!("client {}: refused: {:.200}", spec.me, text.as_str())),
                    }
                }
                _ => {}
            }
        }
    }
    ClientOut { unacked: outbox.len() }
}

/// The histories as read after earlier runs, so that each run reads only what is new. The
/// final check reads everything again from scratch.
#[derive(Default)]
struct Seen {
    /// conversation -> (sender, client id) at each seq (index seq - 1).
    history: HashMap<String, Vec<(u64, String)>>,
}

impl Seen {
    /// Reads what each conversation gained since the last check (seqs must go on without a gap,
    /// no client id twice) and checks every acknowledged message against it.
    async fn check(
        &mut self,
        http: &reqwest::Client,
        base: &str,
        convs: &[(String, String)],
        acks: &HashMap<String, HashMap<String, Acked>>,
    ) -> Verified {
        let mut out = Verified::default();
        let empty = HashMap::new();
        for (conv, token) in convs {
            let known = self.history.entry(conv.clone()).or_default();
            let acked = acks.get(conv).unwrap_or(&empty);
            out.checked += acked.len();
            let new = match fetch_history_after(http, base, conv, token, known.len() as u64).await {
                Ok(s) => s,
                Err(e) => {
                    out.problems.push(format!("{conv}: history failed: {e:#}"));
                    continue;
                }
            };
            for (seq, sender, cid) in new {
                if seq != known.len() as u64 + 1 {
                    out.gaps += 1;
                    out.problems.push(format!("{conv}: seq {seq} follows seq {}", known.len()));
                    break;
                }
                known.push((sender, cid));
            }
            let mut ids: HashMap<(u64, &str), usize> = HashMap::with_capacity(known.len());
            for (i, (sender, cid)) in known.iter().enumerate() {
                if let Some(first) = ids.insert((*sender, cid.as_str()), i + 1) {
                    out.duplicates += 1;
                    out.problems.push(format!("{conv}: {cid} of user {sender} stored twice, as seq {first} and {}", i + 1));
                }
            }
            for (cid, a) in acked {
                let at = usize::try_from(a.seq).ok().and_then(|s| known.get(s.wrapping_sub(1)));
                if at.is_none_or(|(sender, c)| *sender != a.sender || c != cid) {
                    out.lost += 1;
                    out.problems.push(format!("{conv}: {cid} was acknowledged as seq {}, which holds {at:?}", a.seq));
                }
            }
        }
        out
    }
}

/// Every message after `after`, as (seq, sender, client id), oldest first.
async fn fetch_history_after(
    http: &reqwest::Client,
    base: &str,
    conv: &str,
    token: &str,
    after: u64,
) -> anyhow::Result<Vec<(u64, u64, String)>> {
    let mut out = Vec::new();
    let mut after = after;
    loop {
        let resp = http.get(format!("{base}/api/conversations/{conv}/messages?after={after}&limit=100")).bearer_auth(token).send().await?;
        let status = resp.status();
        let v: Value = resp.json().await?;
        if !status.is_success() {
            bail!("HTTP {status}: {v}");
        }
        for m in v["messages"].as_array().map(Vec::as_slice).unwrap_or_default() {
            out.push((m["seq"].as_u64().unwrap_or(0), m["sender"].as_u64().unwrap_or(0), m["client_id"].as_str().unwrap_or("").to_owned()));
        }
        match out.last() {
            Some(&(seq, _, _)) if v["has_more"] == true && seq > after => after = seq,
            _ => return Ok(out),
        }
    }
}

#[derive(Default)]
struct Verified {
    checked: usize,
    lost: usize,
    duplicates: usize,
    gaps: usize,
    unacked_stored: usize,
    problems: Vec<String>,
}

/// Reads every conversation's history and compares it with the ack log. With `exact`, every
/// stored message must also have been acknowledged (the end, when nothing is in flight).
async fn verify(
    http: &reqwest::Client,
    base: &str,
    convs: &[(String, String)],
    acks: &HashMap<String, HashMap<String, Acked>>,
    exact: bool,
) -> Verified {
    let mut out = Verified::default();
    let empty = HashMap::new();
    for (conv, token) in convs {
        let acked = acks.get(conv).unwrap_or(&empty);
        out.checked += acked.len();
        let stored = match fetch_history_after(http, base, conv, token, 0).await {
            Ok(s) => s,
            Err(e) => {
                out.problems.push(format!("{conv}: history failed: {e:#}"));
                continue;
            }
        };
        let mut seen: HashMap<(u64, &str), u64> = HashMap::with_capacity(stored.len());
        for (i, (seq, sender, cid)) in stored.iter().enumerate() {
            if *seq != i as u64 + 1 {
                out.gaps += 1;
                out.problems.push(format!("{conv}: position {} holds seq {seq}", i + 1));
                break;
            }
            if let Some(first) = seen.insert((*sender, cid.as_str()), *seq) {
                out.duplicates += 1;
                out.problems.push(format!("{conv}: {cid} of user {sender} stored twice, as seq {first} and {seq}"));
            }
            if exact && !acked.contains_key(cid) {
                out.unacked_stored += 1;
                out.problems.push(format!("{conv}: seq {seq} ({cid}) is stored but was never acknowledged"));
            }
        }
        for (cid, a) in acked {
            match seen.get(&(a.sender, cid.as_str())) {
                Some(seq) if *seq == a.seq => {}
                Some(seq) => {
                    out.lost += 1;
                    out.problems.push(format!("{conv}: {cid} was acknowledged as seq {} but is stored as seq {seq}", a.seq));
                }
                None => {
                    out.lost += 1;
                    out.problems.push(format!("{conv}: {cid} was acknowledged as seq {} but is missing", a.seq));
                }
            }
        }
    }
    out
}
