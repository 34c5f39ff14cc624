//! The hostile-frames proof (S6): many sockets at once send JSON nested 10,000 deep (within the
//! frame limit), then a frame that declares 64 MiB. Each deep frame must be answered with a
//! `bad_frame` error, each huge one with close 1009 before the server has read it, and the
//! server's memory must grow by at most 10 MB meanwhile.
//!
//! The frames are written by hand on plain TCP sockets (masked with a zero key, which the
//! protocol allows), so that the tool controls every byte and never holds 64 MiB itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::client::{self, mib};
use super::{Common, machine_note, server_env};

#[derive(Args, Clone)]
pub struct FramesArgs {
    /// Sockets sending at once.
    #[arg(long, default_value_t = 100)]
    sockets: usize,
    /// Deeply nested frames per socket before its huge one.
    #[arg(long, default_value_t = 20)]
    nested: usize,
    /// Nesting depth of those frames.
    #[arg(long, default_value_t = 10_000)]
    depth: usize,
    /// Bytes the huge frame declares.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    huge_bytes: u64,
    /// Pass bar: server memory growth at the peak, MiB.
    #[arg(long, default_value_t = 10.0)]
    max_growth_mib: f64,
}

#[derive(Default)]
struct Counters {
    bad_frame: AtomicU64,
    other_answers: AtomicU64,
    closed_1009: AtomicU64,
    /// Bytes of huge-frame payload the server took before it closed.
    huge_sent: AtomicU64,
    /// Sockets whose writer finished the whole huge frame (the server read it all).
    huge_completed: AtomicU64,
    failures: AtomicU64,
}

pub async fn frames(common: &Common, a: &FramesArgs) -> anyhow::Result<(Value, u64)> {
    let mut srv = super::server_for(common, &[]).await?;
    if srv.pid.is_none() {
        bail!("the frames proof reads server memory: spawn the server, or give --pid with --addr");
    }
    let http = reqwest::Client::new();
    let users = client::register_many(&http, &srv.base_url(), &client::run_prefix(), 1, 1).await?;
    super::after_registration(&mut srv, common).await?;
    let token = users[0].token.clone();
    // One socket through the whole path first, so that one-time allocations are in the baseline.
    let mut warm = handshake(srv.addr, &token).await?;
    send_frame(&mut warm, b"{\"type\":\"ping\"}").await?;
    let _ = read_frame(&mut warm).await;
    drop(warm);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss0 = srv.rss_bytes().context("cannot read the server's memory")?;

    let c = Arc::new(Counters::default());
    let deep = Arc::new(format!("{}{}", "[".repeat(a.depth), "]".repeat(a.depth)).into_bytes());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.sockets {
        let (addr, token, deep, c, a) = (srv.addr, token.clone(), deep.clone(), c.clone(), a.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = hostile(addr, &token, &deep, &a, &c).await {
                c.failures.fetch_add(1, Relaxed);
                eprintln!("  socket failed: {e:#}");
            }
        }));
    }
    let mut rss_peak = rss0;
    while tasks.iter().any(|t| !t.is_finished()) {
        if let Some(r) = srv.rss_bytes() {
            rss_peak = rss_peak.max(r);
        }
        if started.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for t in tasks {
        if tokio::time::timeout(Duration::from_secs(10), t).await.is_err() {
            c.failures.fetch_add(1, Relaxed);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = srv.rss_bytes().unwrap_or(0);
    // The server still serves.
    let mut check = handshake(srv.addr, &token).await?;
    send_frame(&mut check, b"{\"type\":\"ping\"}").await?;
    let pong = read_frame(&mut check).await.is_some_and(|(_, p)| String::from_utf8_lossy(&p).contains("pong"));
    let alive = srv.check_alive().is_ok() && pong;

    let growth = mib(rss_peak.saturating_sub(rss0));
    let n = a.sockets as u64;
    let mut violations = Vec::new();
    if c.bad_frame.load(Relaxed) != n * a.nested as u64 {
        violations.push(format!("{} of {} deep frames answered with bad_frame", c.bad_frame.load(Relaxed), n * a.nested as u64));
    }
    if c.closed_1009.load(Relaxed) != n {
        violations.push(format!("{} of {n} huge frames closed with 1009", c.closed_1009.load(Relaxed)));
    }
    if c.huge_completed.load(Relaxed) > 0 {
        violations.push(format!("the server read {} huge frames to their end", c.huge_completed.load(Relaxed)));
    }
    if growth > a.max_growth_mib {
        violations.push(format!("server memory grew {growth} MiB at the peak (bar {} MiB)", a.max_growth_mib));
    }
    if c.failures.load(Relaxed) > 0 || !alive {
        violations.push(format!("{} sockets failed; server still serving: {alive}", c.failures.load(Relaxed)));
    }
    let per_socket = c.huge_sent.load(Relaxed) as f64 / n.max(1) as f64;
    println!(
        "== frames: {} sockets at once, each {} frames nested {} deep then one declaring {:.0} MiB, in {secs:.1} s",
        a.sockets,
        a.nested,
        a.depth,
        a.huge_bytes as f64 / 1_048_576.0
    );
    println!(
        "  deep frames answered bad_frame: {} of {}; other answers {}; huge frames closed with 1009: {} of {n}, after the server took {:.1} MiB of each on average",
        c.bad_frame.load(Relaxed),
        n * a.nested as u64,
        c.other_answers.load(Relaxed),
        c.closed_1009.load(Relaxed),
        per_socket / 1_048_576.0
    );
    println!("  server RSS {} MiB before, {} MiB at the peak (+{growth} MiB), {} MiB after", mib(rss0), mib(rss_peak), mib(rss_after));
    println!("  {}", if violations.is_empty() { "PASS".to_owned() } else { format!("FAIL: {}", violations.join("; ")) });
    let report = json!({
        "scenario": "frames",
        "sockets": a.sockets,
        "nested_per_socket": a.nested,
        "depth": a.depth,
        "huge_bytes": a.huge_bytes,
        "bad_frame_answers": c.bad_frame.load(Relaxed),
        "closed_1009": c.closed_1009.load(Relaxed),
        "huge_mib_taken_per_socket": (per_socket / 1_048_576.0 * 100.0).round() / 100.0,
        "rss_mib_before": mib(rss0),
        "rss_mib_peak": mib(rss_peak),
        "rss_mib_after": mib(rss_after),
        "rss_growth_mib": growth,
        "violations": violations,
        "pass": violations.is_empty(),
        "server_env": server_env(&srv),
        "machine": machine_note(),
    });
    srv.stop();
    Ok((report, violations.len() as u64))
}

/// One hostile socket: the deep frames one by one (each answered), then the huge one.
async fn hostile(addr: SocketAddr, token: &str, deep: &[u8], a: &FramesArgs, c: &Counters) -> anyhow::Result<()> {
    let mut tcp = handshake(addr, token).await?;
    for _ in 0..a.nested {
        send_frame(&mut tcp, deep).await?;
        let (op, payload) = read_frame(&mut tcp).await.context("no answer to a deep frame")?;
        let v: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
        if op == 1 && v["type"] == "error" && v["code"] == "bad_frame" {
            c.bad_frame.fetch_add(1, Relaxed);
        } else {
            c.other_answers.fetch_add(1, Relaxed);
        }
    }
    let (mut rd, mut wr) = tcp.into_split();
    let huge = a.huge_bytes;
    let writer = tokio::spawn(async move {
        let mut head = vec![0x81u8, 0x80 | 127];
        head.extend_from_slice(&huge.to_be_bytes());
        head.extend_from_slice(&[0, 0, 0, 0]);
        if wr.write_all(&head).await.is_err() {
            return (0, false);
        }
        let chunk = vec![b'a'; 64 * 1024];
        let mut sent = 0u64;
        while sent < huge {
            if wr.write_all(&chunk).await.is_err() {
                return (sent, false);
            }
            sent += chunk.len() as u64;
        }
        (sent, true)
    });
    let mut closed = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut h = [0u8; 2];
        match tokio::time::timeout_at(deadline, rd.read_exact(&mut h)).await {
            Ok(Ok(_)) => {}
            _ => break,
        }
        let len = usize::from(h[1] & 0x7f);
        if len >= 126 {
            bail!("an unexpected long frame from the server");
        }
        let mut payload = vec![0u8; len];
        rd.read_exact(&mut payload).await?;
        if h[0] & 0x0f == 8 {
            closed = payload.len() >= 2 && u16::from_be_bytes([payload[0], payload[1]]) == 1009;
            break;
        }
    }
    drop(rd);
    let (sent, completed) = tokio::time::timeout(Duration::from_secs(30), writer).await.context("the writer did not stop")??;
    c.huge_sent.fetch_add(sent, Relaxed);
    if completed {
        c.huge_completed.fetch_add(1, Relaxed);
    }
    if closed {
        c.closed_1009.fetch_add(1, Relaxed);
    }
    Ok(())
}

/// Opens `/api/ws` by hand and reads up to the end of the server's `hello`.
async fn handshake(addr: SocketAddr, token: &str) -> anyhow::Result<TcpStream> {
    let mut tcp = TcpStream::connect(addr).await?;
    let req = format!(
        "GET /api/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        tcp.read_exact(&mut b).await?;
        head.push(b[0]);
        if head.len() > 8192 {
            bail!("no end to the response head");
        }
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        bail!("upgrade refused: {}", String::from_utf8_lossy(&head));
    }
    let (_, hello) = read_frame(&mut tcp).await.context("no hello")?;
    if !String::from_utf8_lossy(&hello).contains(r#""type":"hello""#) {
        bail!("expected hello, got {}", String::from_utf8_lossy(&hello));
    }
    Ok(tcp)
}

/// A masked (zero key) text frame.
async fn send_frame(tcp: &mut TcpStream, payload: &[u8]) -> anyhow::Result<()> {
    let mut head = vec![0x81u8];
    match payload.len() {
        n if n < 126 => head.push(0x80 | n as u8),
        n if n <= 0xffff => {
            head.push(0x80 | 0x7E); // 126: a 16-bit length follows
            head.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            head.push(0x80 | 0x7F); // 127: a 64-bit length follows
            head.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    head.extend_from_slice(&[0, 0, 0, 0]);
    tcp.write_all(&head).await?;
    tcp.write_all(payload).await?;
    Ok(())
}

/// One unfragmented server frame: (opcode, payload), skipping pings; `None` at the end.
async fn read_frame(tcp: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    loop {
        let mut h = [0u8; 2];
        tokio::time::timeout(Duration::from_secs(30), tcp.read_exact(&mut h)).await.ok()?.ok()?;
        let len = match h[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                tcp.read_exact(&mut b).await.ok()?;
                u64::from(u16::from_be_bytes(b))
            }
            127 => {
                let mut b = [0u8; 8];
                tcp.read_exact(&mut b).await.ok()?;
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        };
        let mut payload = vec![0u8; usize::try_from(len).ok()?];
        tcp.read_exact(&mut payload).await.ok()?;
        if h[0] & 0x0f != 9 {
            return Some((h[0] & 0x0f, payload));
        }
    }
}
