//! The store-ceiling scenario: the throughput scenario's messages written straight through the
//! store's append path (`Store::append_message`, with the same in-transaction rule a `send` frame
//! gets), in this process, with no server, no sockets and no JSON frames. Its rate is the most
//! the message path can reach on this machine with this store, so the end-to-end figure can be
//! stated as a fraction of it, measured in the same run.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use chinwag::chat::{Want, gate};
use chinwag::config::DirectPolicy;
use chinwag::ids::{ConvId, UserId};
use chinwag::protocol::Content;
use chinwag::store::messages::Extras;
use chinwag::store::users::Admission;
use chinwag::store::{NewUser, Store, StoreOptions};
use clap::Args;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::client::{Percentiles, padding};
use super::server::{CpuWindow, Server, wait_quiet};
use super::{Common, machine_note};

// These doc comments are clap's --help text, printed as written: no Markdown.
#[allow(clippy::doc_markdown)]
#[derive(Args, Clone)]
pub struct CeilingArgs {
    /// Users, each sending to its partner (pairs), one message in flight each.
    #[arg(long, default_value_t = 1000)]
    pub senders: usize,
    /// Messages in total, spread evenly over the senders.
    #[arg(long, default_value_t = 50_000)]
    pub messages: usize,
    /// Bytes of text per message.
    #[arg(long, default_value_t = 100)]
    pub text_bytes: usize,
    /// Messages per commit at most (the server's limits.max_batch).
    #[arg(long, default_value_t = 2048)]
    pub max_batch: usize,
    /// Commits with redb's single-fsync checksum strategy instead of two-phase commit, to
    /// measure what two-phase commit costs (the server always uses two-phase commit).
    #[arg(long)]
    pub one_fsync: bool,
}

pub(crate) async fn ceiling(common: &Common, a: &CeilingArgs) -> anyhow::Result<(Value, u64)> {
    if a.senders < 2 || !a.senders.is_multiple_of(2) {
        bail!("--senders must be an even number of at least 2");
    }
    let dir = tempfile::tempdir().context("temporary data dir")?;
    let opts = StoreOptions { max_batch: a.max_batch, two_phase_commit: !a.one_fsync, ..StoreOptions::default() };
    let store = Store::open(dir.path(), &opts).context("opening the store")?;
    let mut users = Vec::with_capacity(a.senders);
    for i in 0..a.senders {
        let new = NewUser {
            username: format!("ceiling{i}"),
            // Never checked: nobody logs in.
            password_hash: "-".into(),
            nickname: format!("Ceiling {i}"),
            phone: None,
            email: None,
            invite: None,
        };
        let user = store.create_user(new, |_, _| Ok(Admission::Admit)).await?.map_err(|r| anyhow::anyhow!("{r:?}"))?;
        users.push(user.id);
    }
    let quiet_for = Duration::from_secs(common.wait_quiet);
    // The store runs in this process: the window's "load tool" CPU is the store's.
    let nobody = Server::attach(SocketAddr::from(([127, 0, 0, 1], 1)), None);
    let mut window = None;
    let (slot, srv) = (&mut window, &nobody);
    let written = write_through(&store, &users, a.messages, a.text_bytes, move || async move {
        let quiet = wait_quiet(quiet_for).await;
        *slot = Some(CpuWindow::start(srv));
        quiet
    })
    .await?;
    let (lat, errors, elapsed, quiet) = (written.lat_us, written.errors, written.seconds, written.quiet);
    let cpu = window.context("the window was started")?.end(&nobody);
    let stored = lat.len() as u64;
    let rate = stored as f64 / elapsed;
    let commits = store.stats.commits.load(std::sync::atomic::Ordering::Relaxed);
    let lat = Percentiles::of(lat);
    store.close().await;
    let disk = std::fs::metadata(dir.path().join("chinwag.redb")).map_or(0, |m| m.len());
    let commit = if a.one_fsync { "one fsync per commit" } else { "two-phase commit" };
    println!(
        "== store ceiling: {} senders in {} pairs, {} messages, straight through the store, {commit}",
        a.senders,
        a.senders / 2,
        a.messages
    );
    println!("  stored {stored} in {elapsed:.2} s: {rate:.0} durable messages/s in {commits} commits; {errors} refused or failed");
    println!("  append latency (closed loop): {}", lat.line_ms());
    println!("  store CPU {:.1} s ({:.1} µs per message); database file {} bytes", cpu.me, cpu.me * 1e6 / stored.max(1) as f64, disk);
    println!("  {}", cpu.line());
    let report = json!({
        "scenario": "ceiling",
        "two_phase_commit": !a.one_fsync,
        "senders": a.senders,
        "messages": a.messages,
        "stored": stored,
        "stored_per_sec": rate.round(),
        "commits": commits,
        "append_latency": lat.json_ms(),
        "store_cpu_secs": cpu.me,
        "store_cpu_us_per_msg": (cpu.me * 1e6 / stored.max(1) as f64 * 10.0).round() / 10.0,
        "others_cpu_secs": cpu.others,
        "waited_for_quiet_secs": quiet.0,
        "machine": machine_note(),
        "errors": errors,
    });
    Ok((report, errors + (a.messages as u64).saturating_sub(stored)))
}

/// What [`write_through`] did.
pub struct Written {
    /// Each stored message's append latency, µs.
    pub lat_us: Vec<u64>,
    /// Appends refused or failed.
    pub errors: u64,
    /// From the start to the last stored message.
    pub seconds: f64,
    /// What the `ready` callback returned (the quiet wait).
    pub quiet: (f64, bool),
}

/// Appends `messages` text messages of `text_bytes` through `store`, the users in pairs, each
/// with one message in flight, as `chat::send` does (same gate, same append). `ready` runs once
/// every sender waits at the start line, right before the clock starts.
pub async fn write_through<R, F>(store: &Store, users: &[UserId], messages: usize, text_bytes: usize, ready: R) -> anyhow::Result<Written>
where
    R: FnOnce() -> F,
    F: std::future::Future<Output = (f64, bool)>,
{
    let per = messages / users.len();
    let extra = messages % users.len();
    let (go_tx, go_rx) = watch::channel(false);
    let mut tasks = Vec::with_capacity(users.len());
    for (i, &me) in users.iter().enumerate() {
        let peer = users[i ^ 1];
        let conv = ConvId::direct(me, peer).context("a 1:1 chat")?;
        let n = per + usize::from(i < extra);
        let (store, mut go) = (store.clone(), go_rx.clone());
        tasks.push(tokio::spawn(async move {
            let _ = go.wait_for(|g| *g).await;
            let mut lat_us = Vec::with_capacity(n);
            let mut errors = 0u64;
            for k in 0..n {
                let client_id = format!("c{}-{k}", me.0);
                let text = format!("{client_id} {}", padding(client_id.len() + 1, text_bytes));
                let t = Instant::now();
                let out = store
                    .append_message(
                        me,
                        conv,
                        vec![me, peer],
                        client_id,
                        Content::Text { text },
                        Extras::default(),
                        gate(Want::Write, DirectPolicy::Anyone),
                        |_| {},
                    )
                    .await;
                match out {
                    Ok(Ok(_)) => lat_us.push(t.elapsed().as_micros() as u64),
                    _ => errors += 1,
                }
            }
            (lat_us, errors, Instant::now())
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let quiet = ready().await;
    let t0 = Instant::now();
    go_tx.send_replace(true);
    let (mut lat_us, mut errors, mut last) = (Vec::with_capacity(messages), 0u64, t0);
    for t in tasks {
        let (l, e, done) = t.await?;
        lat_us.extend(l);
        errors += e;
        last = last.max(done);
    }
    Ok(Written { lat_us, errors, seconds: last.duration_since(t0).as_secs_f64().max(1e-9), quiet })
}
