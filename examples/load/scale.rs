//! The scale scenario: a server whose database holds many messages. Users register over HTTP;
//! the messages are then written straight through the store's append path on that data dir (the
//! same writes a `send` makes, far faster than over sockets); then it measures the database on
//! disk (bytes per message, and per table), the cold start (process start to the first `/healthz`
//! answer, several times), and the history route's latency over HTTP for pages anywhere in the
//! conversations.

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use anyhow::{Context, bail};
use chinwag::ids::UserId;
use chinwag::store::{Store, StoreOptions};
use clap::Args;
use rand::RngExt;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::ceiling::write_through;
use super::client::{self, Percentiles, dm};
use super::server::wait_quiet;
use super::{Common, machine_note, server_env, server_for};

// These doc comments are clap's --help text, printed as written: no Markdown.
#[allow(clippy::doc_markdown)]
#[derive(Args, Clone)]
pub struct ScaleArgs {
    /// Messages stored before measuring.
    #[arg(long, default_value_t = 1_000_000)]
    messages: usize,
    /// Users, in pairs (each pair one conversation).
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// Bytes of text per message.
    #[arg(long, default_value_t = 100)]
    text_bytes: usize,
    /// Cold starts timed.
    #[arg(long, default_value_t = 5)]
    starts: usize,
    /// History pages read (50 messages each, one request at a time).
    #[arg(long, default_value_t = 2000)]
    history_reads: usize,
    /// Pass bar: process start to the first /healthz answer, ms.
    #[arg(long, default_value_t = 50.0)]
    max_start_ms: f64,
}

pub(crate) async fn scale(common: &Common, a: &ScaleArgs) -> anyhow::Result<(Value, u64)> {
    if a.users < 2 || !a.users.is_multiple_of(2) {
        bail!("--users must be an even number of at least 2");
    }
    if common.addr.is_some() {
        bail!("the scale scenario writes into the server's data dir: it spawns its own server");
    }
    let mut srv = server_for(common, &[]).await?;
    let data = srv.data_path().context("a spawned server has a data dir")?;
    let http = reqwest::Client::new();
    let accounts = client::register_many(&http, &srv.base_url(), &client::run_prefix(), a.users, common.register_concurrency).await?;
    srv.terminate().context("the server did not stop cleanly")?;

    // The messages, through the store on the server's data dir (the server is stopped).
    let store = Store::open(&data, &StoreOptions::default()).context("opening the server's store")?;
    let users: Vec<UserId> = accounts.iter().map(|u| UserId(u.id)).collect();
    let t = Instant::now();
    let written = write_through(&store, &users, a.messages, a.text_bytes, || async { (0.0, false) }).await?;
    let write_secs = t.elapsed().as_secs_f64();
    // The search index follows the messages (store/indexer.rs): measured whole.
    let t = Instant::now();
    store.index_search().await?;
    eprintln!("load: the search index caught up in {:.1} s", t.elapsed().as_secs_f64());
    let tables = store.table_sizes().await?;
    store.close().await;
    let stored = written.lat_us.len() as u64;
    eprintln!("load: stored {stored} messages in {write_secs:.1} s ({:.0}/s)", stored as f64 / write_secs);

    let file = data.join("chinwag.redb");
    let meta = std::fs::metadata(&file).with_context(|| format!("{}", file.display()))?;
    let (apparent, on_disk) = (meta.len(), meta.blocks() * 512);
    let per_msg = |b: u64| (b as f64 / stored.max(1) as f64).round();

    // Cold starts: the process is started and /healthz polled every millisecond.
    let mut starts_ms = Vec::with_capacity(a.starts);
    for _ in 0..a.starts {
        let t = Instant::now();
        srv.launch_again()?;
        starts_ms.push(first_answer(&mut srv, t).await?);
        srv.terminate();
    }
    srv.launch_again()?;
    srv.wait_healthy(Duration::from_secs(30)).await?;
    let rss_started = srv.rss_bytes();

    // History pages anywhere in the conversations, one request at a time (keep-alive).
    let quiet = wait_quiet(Duration::from_secs(common.wait_quiet)).await;
    let pairs = a.users / 2;
    let per_conv = (stored / pairs as u64).max(1);
    let mut lat_us = Vec::with_capacity(a.history_reads);
    let mut errors = 0u64;
    let base = srv.base_url();
    for _ in 0..a.history_reads {
        let (p, before) = {
            let mut rng = rand::rng();
            (rng.random_range(0..pairs), rng.random_range(2..=per_conv + 1))
        };
        let (u, peer) = (&accounts[2 * p], &accounts[2 * p + 1]);
        let url = format!("{base}/api/conversations/{}/messages?before={before}&limit=50", dm(u.id, peer.id));
        let t = Instant::now();
        let ok = match http.get(&url).bearer_auth(&u.token).send().await {
            Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
            _ => false,
        };
        if ok {
            lat_us.push(t.elapsed().as_micros() as u64);
        } else {
            errors += 1;
        }
    }
    let history = Percentiles::of(lat_us);
    let rss_after = srv.rss_bytes();
    srv.stop();

    let slow_starts = starts_ms.iter().filter(|&&ms| ms > a.max_start_ms).count() as u64;
    let errors = errors + written.errors + slow_starts;
    println!("== scale: {stored} messages of {} bytes in {pairs} conversations", a.text_bytes);
    println!("  database {apparent} bytes ({} per message), {on_disk} on disk ({} per message)", per_msg(apparent), per_msg(on_disk));
    for t in tables.iter().take(8) {
        println!(
            "    {:<16} {:>9} entries {:>11} stored {:>10} overhead {:>10} unfilled ({} per message)",
            t.name,
            t.entries,
            t.stored_bytes,
            t.metadata_bytes,
            t.fragmented_bytes,
            per_msg(t.stored_bytes + t.metadata_bytes + t.fragmented_bytes)
        );
    }
    println!("  cold start to /healthz: {starts_ms:?} ms (bar {} ms)", a.max_start_ms);
    println!("  history page (50 messages) over HTTP, one at a time: {}", history.line_ms());
    println!("  server RSS {} MiB started, {} MiB after the reads", super::opt_mib(rss_started), super::opt_mib(rss_after));
    let report = json!({
        "scenario": "scale",
        "messages": stored,
        "text_bytes": a.text_bytes,
        "conversations": pairs,
        "write_seconds": write_secs,
        "db_apparent_bytes": apparent,
        "db_on_disk_bytes": on_disk,
        "apparent_bytes_per_message": per_msg(apparent),
        "on_disk_bytes_per_message": per_msg(on_disk),
        "tables": tables.iter().map(|t| json!({
            "name": t.name, "entries": t.entries, "stored": t.stored_bytes,
            "metadata": t.metadata_bytes, "fragmented": t.fragmented_bytes,
            "leaf_pages": t.leaf_pages, "branch_pages": t.branch_pages,
        })).collect::<Vec<_>>(),
        "cold_start_ms": starts_ms,
        "history_page_latency": history.json_ms(),
        "server_rss_mib_started": super::opt_mib(rss_started),
        "server_rss_mib_after": super::opt_mib(rss_after),
        "waited_for_quiet_s": quiet.0.round(),
        "server_env": server_env(&srv),
        "machine": machine_note(),
        "errors": errors,
    });
    Ok((report, errors))
}

/// Milliseconds from `t` to the first successful `/healthz` answer, polling every millisecond.
async fn first_answer(srv: &mut super::server::Server, t: Instant) -> anyhow::Result<f64> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(1)).build()?;
    let addr: SocketAddr = srv.addr;
    let deadline = t + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("http://{addr}/healthz")).send().await
            && r.status().is_success()
        {
            return Ok((t.elapsed().as_secs_f64() * 1e4).round() / 10.0);
        }
        srv.check_alive()?;
        if Instant::now() > deadline {
            bail!("no /healthz answer within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
