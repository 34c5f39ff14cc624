//! The throughput scenario: closed-loop senders in pairs, one message in flight each, count
//! durable (acknowledged) messages per second, then check a sample of conversations through the
//! history route against what was acknowledged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures_util::{SinkExt, StreamExt, stream};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

use super::client::{self, Frame, Percentiles, Ws, connect_many, dm, padding, send_frame};
use super::server::{CpuWindow, wait_quiet};
use super::{CONNECT_CONCURRENCY, Common, after_registration, machine_note, opt_mib, server_env, server_for};

// These doc comments are clap's --help text, printed as written: no Markdown.
#[allow(clippy::doc_markdown)]
#[derive(Args, Clone)]
pub struct ThroughputArgs {
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
    /// Afterwards, writes the same messages straight through the store in this process (the
    /// ceiling scenario) and prints the end-to-end rate as a fraction of it.
    #[arg(long)]
    ceiling: bool,
}

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

pub(crate) async fn throughput(common: &Common, a: &ThroughputArgs) -> anyhow::Result<(Value, u64)> {
    if a.senders < 2 || !a.senders.is_multiple_of(2) {
        bail!("--senders must be an even number of at least 2");
    }
    if a.ceiling {
        let (e2e, e1) = throughput_once(common, a, a.max_batch).await?;
        eprintln!("load: the same messages straight through the store");
        let args = super::ceiling::CeilingArgs {
            senders: a.senders,
            messages: a.messages,
            text_bytes: a.text_bytes,
            max_batch: a.max_batch.unwrap_or(2048),
            one_fsync: false,
        };
        let (store, e2) = super::ceiling::ceiling(common, &args).await?;
        let (e, s) = (e2e["acked_per_sec"].as_f64().unwrap_or(0.0), store["stored_per_sec"].as_f64().unwrap_or(0.0));
        let fraction = if s > 0.0 { e / s } else { 0.0 };
        println!("== end to end {e:.0}/s is {:.0}% of the store alone ({s:.0}/s) on this machine in this run", fraction * 100.0);
        return Ok((
            json!({
                "scenario": "throughput_vs_ceiling",
                "end_to_end": e2e,
                "ceiling": store,
                "fraction_of_ceiling": (fraction * 1000.0).round() / 1000.0,
                "errors_total": e1 + e2,
            }),
            e1 + e2,
        ));
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
pub(crate) async fn fetch_history(
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
