//! S10, login enumeration: a failed login must not tell an unknown username from a wrong
//! password, neither by its answer nor by its timing.
//!
//! Starts the release server (`--server`, default `target/release/chinwag`) on a free loopback
//! port with a temporary data dir and the failed-login limits lifted, registers one user, then
//! sends `--n` logins with a wrong password for that user and `--n` logins for usernames that do
//! not exist, interleaved (ABBA, so drift in the machine's speed falls on both alike), one at a
//! time over one kept-alive connection. Every answer must have the same status and the same
//! body, byte for byte; the medians of the two kinds must be less than `--max-gap-ms` apart.
//! Prints the figures, then one JSON line with all of them; exits 1 when a bar is missed.
//!
//! ```text
//! cargo build --release --bin chinwag --example login_timing
//! target/release/examples/login_timing --n 1000
//! ```

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// The chinwag binary to start.
    #[arg(long, default_value = "target/release/chinwag")]
    server: PathBuf,
    /// Logins of each kind.
    #[arg(long, default_value_t = 1000)]
    n: usize,
    /// Logins of each kind sent first and not counted (caches, connection, allocator).
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// The pass bar: the medians must differ by less than this.
    #[arg(long, default_value_t = 5.0)]
    max_gap_ms: f64,
}

/// The spawned server; killed when dropped, so an early return cannot leave it running.
struct Server {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(binary: &PathBuf) -> anyhow::Result<(Server, String)> {
    if !binary.is_file() {
        bail!("no server binary at {} (cargo build --release --bin chinwag, or --server PATH)", binary.display());
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let dir = tempfile::Builder::new().prefix("chinwag-login-timing-").tempdir()?;
    let log = std::fs::File::create(dir.path().join("server.log"))?;
    let child = Command::new(binary)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path().join("data"))
        // Thousands of failed logins from one address would otherwise be refused with 429
        // long before the measurement ends; the answers compared here are the 401s.
        .env("CHINWAG_AUTH__FAILURES_PER_ACCOUNT", "1000000000")
        .env("CHINWAG_AUTH__FAILURES_PER_IP", "1000000000")
        // No TURN relay: it is not measured, and its UDP port is shared with other servers here.
        .env("CHINWAG_TURN__ENABLED", "false")
        .env("RUST_LOG", "warn")
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let mut server = Server { child, _dir: dir };
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return Ok((server, base));
        }
        if let Some(status) = server.child.try_wait()? {
            bail!("the server exited with {status}");
        }
        if Instant::now() > deadline {
            bail!("the server did not answer /healthz within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Answer {
    status: u16,
    body: Vec<u8>,
    ms: f64,
}

async fn login(client: &reqwest::Client, base: &str, username: &str, password: &str) -> anyhow::Result<Answer> {
    let body = serde_json::json!({ "username": username, "password": password });
    let started = Instant::now();
    let r = client.post(format!("{base}/api/auth/login")).json(&body).send().await?;
    let status = r.status().as_u16();
    let body = r.bytes().await?.to_vec();
    Ok(Answer { status, body, ms: started.elapsed().as_secs_f64() * 1000.0 })
}

/// The value below which `q` of the sorted samples lie (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (server, base) = start(&args.server).await?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
    let (user, password) = ("timing_user", "the right password 1");
    let r = client
        .post(format!("{base}/api/auth/register"))
        .json(&serde_json::json!({ "username": user, "password": password }))
        .send()
        .await?;
    if r.status().as_u16() != 201 {
        bail!("registration failed: {} {}", r.status(), r.text().await?);
    }

    let mut wrong = Vec::with_capacity(args.n);
    let mut unknown = Vec::with_capacity(args.n);
    let mut reference: Option<(u16, Vec<u8>)> = None;
    let mut mismatches = Vec::new();
    for i in 0..args.warmup + args.n {
        // ABBA: which kind goes first alternates.
        let order = if i % 2 == 0 { [false, true] } else { [true, false] };
        for unknown_user in order {
            let a = if unknown_user {
                // A fresh unknown name each time, as an attacker probing names would send.
                login(&client, &base, &format!("nobody_{i}"), "a wrong password 1").await?
            } else {
                login(&client, &base, user, &format!("a wrong password {i}")).await?
            };
            match &reference {
                None => reference = Some((a.status, a.body.clone())),
                Some((s, b)) if *s != a.status || *b != a.body => {
                    mismatches.push(format!(
                        "{} login {i}: {} {}",
                        if unknown_user { "unknown-user" } else { "wrong-password" },
                        a.status,
                        String::from_utf8_lossy(&a.body)
                    ));
                }
                Some(_) => {}
            }
            if i >= args.warmup {
                if unknown_user { unknown.push(a.ms) } else { wrong.push(a.ms) }
            }
        }
    }
    drop(server);

    let (status, body) = reference.context("no answers")?;
    for v in [&mut wrong, &mut unknown] {
        v.sort_by(f64::total_cmp);
    }
    let (mw, mu) = (quantile(&wrong, 0.5), quantile(&unknown, 0.5));
    let (pw, pu) = (quantile(&wrong, 0.9), quantile(&unknown, 0.9));
    let gap = (mw - mu).abs();
    println!("answer to every failed login: {status} {}", String::from_utf8_lossy(&body));
    println!("wrong password  (n={}): median {mw:.2} ms, p90 {pw:.2} ms", wrong.len());
    println!("unknown user    (n={}): median {mu:.2} ms, p90 {pu:.2} ms", unknown.len());
    println!("median gap {gap:.3} ms (bar: < {} ms); answers that differed: {}", args.max_gap_ms, mismatches.len());
    for m in mismatches.iter().take(5) {
        println!("  differs: {m}");
    }
    let pass = status == 401 && mismatches.is_empty() && gap < args.max_gap_ms;
    println!(
        "{}",
        serde_json::json!({
            "proof": "login_timing",
            "n": args.n,
            "status": status,
            "differing_answers": mismatches.len(),
            "wrong_password_ms": { "median": mw, "p90": pw },
            "unknown_user_ms": { "median": mu, "p90": pu },
            "median_gap_ms": gap,
            "max_gap_ms": args.max_gap_ms,
            "pass": pass,
        })
    );
    if !pass {
        eprintln!("LOGIN TIMING FAILED: status {status}, {} differing answers, median gap {gap:.3} ms", mismatches.len());
        std::process::exit(1);
    }
    Ok(())
}
