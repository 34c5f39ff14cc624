//! The disk-full proof (R3): the server's data dir lives on a small tmpfs mount; a filler file
//! takes every free byte; messages sent then must be refused clearly (an `error` frame, never an
//! `ack` for something not stored) while the server stays up; once the filler is deleted, writes
//! must resume by themselves, and every message acknowledged before, during and after must be in
//! the history exactly once, also after a restart.
//!
//! Mounting needs root (`CAP_SYS_ADMIN`). Without it the proof says SKIPPED loudly and, unless
//! `--require-mount` is given, exits 0 so that unprivileged runs of the proof script go on.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::client::{self, Ws, dm, padding, send_frame};
use super::server::Server;
use super::throughput::fetch_history;
use super::{Common, machine_note, server_env};

#[derive(Args, Clone)]
pub struct DiskFullArgs {
    /// Size of the file system that holds the data dir, MiB.
    #[arg(long, default_value_t = 16)]
    size_mib: u64,
    /// `tmpfs`, or `ext4`: an image file on the real disk, loop-mounted (its journal and delayed
    /// allocation make a full disk show up differently from tmpfs).
    #[arg(long, default_value = "tmpfs")]
    fs: String,
    /// Bytes of text per message (large, so that the database needs new pages soon).
    #[arg(long, default_value_t = 4000)]
    text_bytes: usize,
    /// Most messages to send while the disk is full before giving up on seeing a refusal.
    #[arg(long, default_value_t = 3000)]
    max_full_sends: usize,
    /// Refusals to collect while the disk is full.
    #[arg(long, default_value_t = 20)]
    refusals: usize,
    /// Fail (exit 2) instead of skipping when the tmpfs cannot be mounted.
    #[arg(long)]
    require_mount: bool,
}

/// Unmounts (and removes) the file system when dropped, whatever happened.
struct Mount {
    dir: PathBuf,
    /// The ext4 image, removed after unmounting.
    image: Option<PathBuf>,
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let o = cmd.output().with_context(|| format!("cannot run {cmd:?}"))?;
    if !o.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&o.stderr).trim());
    }
    Ok(())
}

impl Mount {
    fn new(fs: &str, size_mib: u64) -> anyhow::Result<Mount> {
        let dir = std::env::temp_dir().join(format!("chinwag-diskfull-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut m = Mount { dir, image: None };
        let mounted = match fs {
            "tmpfs" => run(Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size_mib}m,mode=0700"), "tmpfs"]).arg(&m.dir)),
            "ext4" => {
                let image = m.dir.with_extension("img");
                m.image = Some(image.clone());
                std::fs::File::create(&image)?.set_len(size_mib * 1024 * 1024)?;
                run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image))
                    .and_then(|()| run(Command::new("mount").args(["-o", "loop"]).arg(&image).arg(&m.dir)))
            }
            other => bail!("--fs {other}: expected tmpfs or ext4"),
        };
        match mounted {
            Ok(()) => Ok(m),
            Err(e) => {
                // Not mounted: Drop's umount fails harmlessly and the dir and image go.
                drop(m);
                Err(e)
            }
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.dir).stderr(std::process::Stdio::null()).status().is_ok_and(|s| s.success());
        if !ok {
            // Something still holds a file there: detach it, the kernel frees it when let go.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).stderr(std::process::Stdio::null()).status();
        }
        let _ = std::fs::remove_dir(&self.dir);
        if let Some(image) = &self.image {
            let _ = std::fs::remove_file(image);
        }
    }
}

/// Writes zeros to `path` until the file system says it is full; returns the bytes written.
fn fill(path: &Path) -> anyhow::Result<u64> {
    let mut f = std::fs::File::create(path)?;
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => return Err(e).context("filling the disk"),
        }
    }
    // Smaller pieces take what is left of the last page.
    loop {
        match f.write(&[0u8; 512]) {
            Ok(n) if n > 0 => written += n as u64,
            _ => break,
        }
    }
    let _ = f.sync_all();
    Ok(written)
}

/// How the server answered one `send`.
enum Answer {
    Ack(u64),
    Refused(String, String),
}

/// Sends one message and waits for its answer (skipping other frames).
async fn send_one(ws: &mut Ws, cid: &str, conv: &str, text: &str) -> anyhow::Result<Answer> {
    ws.send(send_frame(cid, conv, text)).await.context("send")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next()).await.with_context(|| format!("no answer to {cid} within 30 s"))?;
        let t = match next {
            Some(Ok(WsMessage::Text(t))) => t,
            Some(Ok(WsMessage::Close(f))) => bail!("the server closed the socket: {f:?}"),
            Some(Err(e)) => bail!("socket error: {e}"),
            None => bail!("the socket ended"),
            Some(Ok(_)) => continue,
        };
        let v: Value = serde_json::from_str(t.as_str())?;
        if v["client_id"] != cid {
            continue;
        }
        match v["type"].as_str() {
            Some("ack") => return Ok(Answer::Ack(v["message"]["seq"].as_u64().unwrap_or(0))),
            Some("error") => {
                return Ok(Answer::Refused(v["code"].as_str().unwrap_or("").to_owned(), v["message"].as_str().unwrap_or("").to_owned()));
            }
            _ => {}
        }
    }
}

pub async fn disk_full(common: &Common, a: &DiskFullArgs) -> anyhow::Result<(Value, u64)> {
    if common.addr.is_some() {
        bail!("the disk-full proof puts the server's data dir on its own mount: it must spawn it (no --addr)");
    }
    let mount = match Mount::new(&a.fs, a.size_mib) {
        Ok(m) => m,
        Err(e) if !a.require_mount => {
            println!("== disk-full: SKIPPED: cannot mount a {} MiB {} ({e:#}); run as root", a.size_mib, a.fs);
            return Ok((json!({"scenario": "disk_full", "skipped": true, "reason": format!("{e:#}")}), 0));
        }
        Err(e) => return Err(e),
    };
    let env = super::parse_env(&common.server_env)?;
    let mut srv = Server::spawn_in(&common.server, &env, Some(mount.dir.join("data"))).await?;
    eprintln!(
        "load: spawned {} (pid {}) on {} with its data dir on a {} MiB {}",
        common.server.display(),
        srv.pid.unwrap_or(0),
        srv.addr,
        a.size_mib,
        a.fs
    );
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let users = client::register_many(&http, &srv.base_url(), &client::run_prefix(), 2, 1).await?;
    let conv = dm(users[0].id, users[1].id);
    let mut ws = client::connect(srv.addr, &users[0].token).await?;
    let mut violations: Vec<String> = Vec::new();
    // client id -> seq, of every acknowledged message.
    let mut acked: Vec<(String, u64)> = Vec::new();
    let text = |cid: &str| format!("{cid} {}", padding(cid.len() + 1, a.text_bytes));

    // 1. Room to spare: every message is acknowledged.
    for i in 0..20 {
        let cid = format!("before-{i}");
        match send_one(&mut ws, &cid, &conv, &text(&cid)).await? {
            Answer::Ack(seq) => acked.push((cid, seq)),
            Answer::Refused(code, m) => violations.push(format!("{cid} refused before the disk was full: {code}: {m}")),
        }
    }

    // 2. The disk fills up.
    let filler = mount.dir.join("filler");
    let filled = fill(&filler)?;
    eprintln!("  filled the mount with {:.1} MiB", filled as f64 / 1_048_576.0);
    let mut refused: Vec<String> = Vec::new();
    let mut refusal_texts: HashSet<String> = HashSet::new();
    let mut acked_while_full = 0usize;
    let mut sent_full = 0usize;
    while refused.len() < a.refusals && sent_full < a.max_full_sends {
        let cid = format!("full-{sent_full}");
        sent_full += 1;
        match send_one(&mut ws, &cid, &conv, &text(&cid)).await {
            // The database may still have free pages inside its file.
            Ok(Answer::Ack(seq)) => {
                acked_while_full += 1;
                acked.push((cid, seq));
            }
            Ok(Answer::Refused(code, m)) => {
                refusal_texts.insert(format!("{code}: {m}"));
                refused.push(cid);
            }
            Err(e) => {
                violations.push(format!("while the disk was full: {e:#}"));
                break;
            }
        }
    }
    if refused.is_empty() {
        violations.push(format!("no refusal after {sent_full} messages on a full disk: the proof did not reach the failure"));
    }
    let refusal_clear = refusal_texts.iter().all(|t| t.starts_with("unavailable:"));
    let names_full = refusal_texts.iter().any(|t| t.contains("full"));
    if !refusal_clear || !names_full {
        violations.push(format!("refusals were not the clear `unavailable` error naming the full disk: {refusal_texts:?}"));
    }
    let healthz_full = status(&http, &format!("{}/healthz", srv.base_url()), None).await;
    let readyz_full = status(&http, &format!("{}/readyz", srv.base_url()), None).await;
    // An HTTP write: refused with a clear code, or (free pages inside the file) truly saved.
    let profile_full = match http
        .patch(format!("{}/api/me", srv.base_url()))
        .bearer_auth(&users[0].token)
        .json(&json!({"nickname": "full disk"}))
        .send()
        .await
    {
        Ok(r) => {
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            Some((status, v["error"]["code"].as_str().unwrap_or("").to_owned()))
        }
        Err(_) => None,
    };
    let history_full = status(&http, &format!("{}/api/conversations/{conv}/messages?limit=1", srv.base_url()), Some(&users[0].token)).await;
    if healthz_full != Some(200) {
        violations.push(format!("/healthz answered {healthz_full:?} while the disk was full"));
    }
    if srv.check_alive().is_err() {
        violations.push("the server exited while the disk was full".into());
    }
    match &profile_full {
        Some((200, _)) => {}
        Some((503, code)) if code == "storage_full" || code == "storage_unavailable" => {}
        other => violations.push(format!("a profile change on a full disk was answered {other:?}, not 503 storage_full")),
    }

    let refused_while_full = refused.len();

    // 3. Space returns: writes resume by themselves (the writer reopens the database).
    std::fs::remove_file(&filler)?;
    let freed = Instant::now();
    let mut first_ack_after: Option<f64> = None;
    let mut tries = 0;
    while first_ack_after.is_none() && freed.elapsed() < Duration::from_secs(30) {
        let cid = format!("after-{tries}");
        tries += 1;
        match send_one(&mut ws, &cid, &conv, &text(&cid)).await {
            Ok(Answer::Ack(seq)) => {
                acked.push((cid, seq));
                first_ack_after = Some(freed.elapsed().as_secs_f64());
            }
            Ok(Answer::Refused(..)) => {
                refused.push(cid);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                violations.push(format!("after space returned: {e:#}"));
                break;
            }
        }
    }
    if first_ack_after.is_none() {
        violations.push("writes did not resume within 30 s of deleting the filler".into());
    }
    // Nothing refused was stored: the refusals were true.
    let stored = fetch_history(&http, &srv.base_url(), &conv, &users[0].token, acked.len() + refused.len()).await?;
    let stored_ids: HashSet<&str> = stored.iter().map(|(_, _, c)| c.as_str()).collect();
    let refused_but_stored: Vec<&String> = refused.iter().filter(|c| stored_ids.contains(c.as_str())).collect();
    if !refused_but_stored.is_empty() {
        violations.push(format!(
            "{} refused messages were stored anyway: {:?}",
            refused_but_stored.len(),
            &refused_but_stored[..refused_but_stored.len().min(5)]
        ));
    }
    // A client sends what was refused again, with the same ids, and new messages.
    let resend = refused.clone();
    for cid in resend.iter().chain((0..20).map(|i| format!("new-{i}")).collect::<Vec<_>>().iter()) {
        match send_one(&mut ws, cid, &conv, &text(cid)).await? {
            Answer::Ack(seq) => acked.push((cid.clone(), seq)),
            Answer::Refused(code, m) => violations.push(format!("{cid} refused after space returned: {code}: {m}")),
        }
    }
    let check_now = check_history(&http, &srv.base_url(), &conv, &users[0].token, &acked).await;
    if matches!(profile_full, Some((200, _))) {
        let me: Value = http.get(format!("{}/api/me", srv.base_url())).bearer_auth(&users[0].token).send().await?.json().await?;
        if me["nickname"] != "full disk" {
            violations.push(format!("a profile change was reported saved on the full disk but is not stored: {me}"));
        }
    }
    violations.extend(check_now.iter().map(|p| format!("after recovery: {p}")));

    // 4. And after a restart on the same data dir.
    drop(ws);
    let log = srv.log_since(0);
    let status_stop = srv.terminate();
    if !status_stop.is_some_and(|s| s.success()) {
        violations.push(format!("the server did not stop cleanly on SIGTERM: {status_stop:?}"));
    }
    srv.start_again().await.context("restart after the disk-full episode")?;
    let check_restart = check_history(&http, &srv.base_url(), &conv, &users[0].token, &acked).await;
    violations.extend(check_restart.iter().map(|p| format!("after restart: {p}")));
    let log_all = format!("{log}{}", srv.log_since(log.len() as u64));
    let panics = log_all.lines().filter(|l| l.contains("panicked")).count();
    if panics > 0 {
        violations.push(format!("{panics} panics in the server log"));
    }
    let commit_failures = log_all.lines().filter(|l| l.contains("commit failed")).count();
    let reopened = log_all.lines().filter(|l| l.contains("database reopened")).count();
    let reopen_failures = log_all.lines().filter(|l| l.contains("reopening the database failed")).count();
    let sample_log: Vec<&str> = log_all.lines().filter(|l| l.contains("commit failed") || l.contains("reopen")).take(3).collect();

    let ok = violations.is_empty();
    println!("== disk-full: data dir on a {} MiB {}, filled with a {:.1} MiB file", a.size_mib, a.fs, filled as f64 / 1_048_576.0);
    println!(
        "  while full: {sent_full} sends, {acked_while_full} acknowledged (free pages inside the database file), {refused_while_full} refused as {refusal_texts:?}"
    );
    println!(
        "  while full: /healthz {}, /readyz {}, history {}, PATCH /api/me {}",
        show(healthz_full),
        show(readyz_full),
        show(history_full),
        profile_full.as_ref().map_or("no answer".into(), |(s, c)| format!("{s} {c}"))
    );
    println!(
        "  space back: first ack {} after deleting the filler ({} refusals meanwhile); {} refused messages resent and acknowledged",
        first_ack_after.map_or("never".into(), |t| format!("{t:.2} s")),
        tries - 1,
        resend.len()
    );
    println!(
        "  history: {} acknowledged messages checked after recovery and after a restart: {} problems; refused but stored: {}",
        acked.len(),
        check_now.len() + check_restart.len(),
        refused_but_stored.len()
    );
    println!("  server log: {commit_failures} failed commits, {reopen_failures} failed reopens, {reopened} reopens, {panics} panics");
    for l in &sample_log {
        println!("    {}", l.chars().take(220).collect::<String>());
    }
    println!("  {}", if ok { "PASS".to_owned() } else { format!("FAIL: {}", violations.len()) });
    for v in violations.iter().take(20) {
        println!("    {v}");
    }
    let report = json!({
        "scenario": "disk_full",
        "skipped": false,
        "size_mib": a.size_mib,
        "fs": a.fs,
        "filler_mib": (filled as f64 / 1_048_576.0 * 10.0).round() / 10.0,
        "sent_while_full": sent_full,
        "acked_while_full": acked_while_full,
        "refused_while_full": refused_while_full,
        "refusals": refusal_texts.iter().collect::<Vec<_>>(),
        "healthz_while_full": healthz_full,
        "readyz_while_full": readyz_full,
        "history_while_full": history_full,
        "profile_patch_while_full": profile_full.as_ref().map(|(s, c)| json!({"status": s, "code": c})),
        "first_ack_after_space_returned_s": first_ack_after,
        "refusals_after_space_returned": tries - 1,
        "acked_total": acked.len(),
        "refused_but_stored": refused_but_stored.len(),
        "history_problems": check_now.len() + check_restart.len(),
        "log": {"commit_failures": commit_failures, "reopen_failures": reopen_failures, "reopens": reopened, "panics": panics},
        "violations": violations,
        "pass": ok,
        "server_env": server_env(&srv),
        "machine": machine_note(),
    });
    srv.stop();
    drop(mount);
    Ok((report, violations.len() as u64))
}

fn show(s: Option<u16>) -> String {
    s.map_or("no answer".into(), |s| s.to_string())
}

async fn status(http: &reqwest::Client, url: &str, token: Option<&str>) -> Option<u16> {
    let mut r = http.get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.ok().map(|r| r.status().as_u16())
}

/// Every acknowledged message is stored once, at its acknowledged seq; seqs are 1..N; nothing
/// else is stored.
async fn check_history(http: &reqwest::Client, base: &str, conv: &str, token: &str, acked: &[(String, u64)]) -> Vec<String> {
    let stored = match fetch_history(http, base, conv, token, acked.len()).await {
        Ok(s) => s,
        Err(e) => return vec![format!("history failed: {e:#}")],
    };
    let mut problems = Vec::new();
    if stored.len() != acked.len() {
        problems.push(format!("{} messages stored, {} acknowledged", stored.len(), acked.len()));
    }
    for (i, (seq, _, _)) in stored.iter().enumerate() {
        if *seq != i as u64 + 1 {
            problems.push(format!("position {} holds seq {seq}", i + 1));
            break;
        }
    }
    for (cid, seq) in acked {
        let n = stored.iter().filter(|(_, _, c)| c == cid).count();
        if n != 1 || !stored.iter().any(|(s, _, c)| c == cid && s == seq) {
            problems.push(format!("{cid} acknowledged as seq {seq}, stored {n} times"));
        }
    }
    problems
}
