//! The client side of the protocol: registration over HTTP, authenticated WebSockets, and a
//! cheap parse of the server's frames.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures_util::{StreamExt, stream};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long one WebSocket may take to open and say hello.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone, Debug)]
pub struct Account {
    pub id: u64,
    pub token: String,
}

/// The 1:1 conversation of two users.
pub fn dm(a: u64, b: u64) -> String {
    format!("d:{}:{}", a.min(b), a.max(b))
}

/// A short prefix that keeps usernames unique across runs against one server.
pub fn run_prefix() -> String {
    let mut n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64) % 36u64.pow(7);
    let mut s = Vec::new();
    for _ in 0..7 {
        s.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
    }
    s.reverse();
    format!("lt{}", String::from_utf8(s).unwrap_or_default())
}

/// Registers `n` users named `<prefix>x<i>`, `concurrency` at a time, and returns them in order.
/// Rate limiting (429) and "busy" (503) are waited out a bounded number of times.
pub async fn register_many(http: &reqwest::Client, base: &str, prefix: &str, n: usize, concurrency: usize) -> anyhow::Result<Vec<Account>> {
    let started = Instant::now();
    let url = format!("{base}/api/auth/register");
    let mut done = 0usize;
    let mut out: Vec<Option<Account>> = vec![None; n];
    let mut results = stream::iter(0..n)
        .map(|i| {
            let (http, url) = (http.clone(), url.clone());
            let name = format!("{prefix}x{i}");
            async move { (i, register_one(&http, &url, &name).await) }
        })
        .buffer_unordered(concurrency.max(1));
    while let Some((i, r)) = results.next().await {
        out[i] = Some(r?);
        done += 1;
        if done.is_multiple_of(500) && done < n {
            eprintln!("  registered {done}/{n} users ({:.1} s)", started.elapsed().as_secs_f64());
        }
    }
    eprintln!("  registered {n} users in {:.1} s", started.elapsed().as_secs_f64());
    Ok(out.into_iter().flatten().collect())
}

async fn register_one(http: &reqwest::Client, url: &str, name: &str) -> anyhow::Result<Account> {
    let body = json!({"username": name, "password": "load-test-password"});
    for _attempt in 0..10 {
        let resp = http.post(url).json(&body).send().await.with_context(|| format!("register {name}"))?;
        let status = resp.status().as_u16();
        if status == 429 || status == 503 {
            let wait =
                resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok()).unwrap_or(1).min(5);
            tokio::time::sleep(Duration::from_secs(wait)).await;
            continue;
        }
        let text = resp.text().await?;
        if status != 201 {
            bail!("register {name}: HTTP {status}: {text}");
        }
        let v: serde_json::Value = serde_json::from_str(&text)?;
        return Ok(Account {
            id: v["user"]["id"].as_u64().ok_or_else(|| anyhow!("register {name}: no user id in {text}"))?,
            token: v["token"].as_str().ok_or_else(|| anyhow!("register {name}: no token in {text}"))?.to_owned(),
        });
    }
    bail!("register {name}: still refused after 10 attempts")
}

/// Opens an authenticated WebSocket and waits for the server's `hello`.
pub async fn connect(addr: SocketAddr, token: &str) -> anyhow::Result<Ws> {
    connect_with(addr, token, None).await
}

/// Like [`connect`], with the client socket's kernel receive buffer set to `rcvbuf` bytes.
pub async fn connect_with(addr: SocketAddr, token: &str, rcvbuf: Option<u32>) -> anyhow::Result<Ws> {
    let mut req = format!("ws://{addr}/api/ws").into_client_request()?;
    req.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {token}"))?);
    // Small read buffers keep 10,000 client sockets cheap; no Nagle, as browsers do.
    let cfg = WebSocketConfig::default().read_buffer_size(4096);
    let open = async {
        let mut ws = match rcvbuf {
            None => tokio_tungstenite::connect_async_with_config(req, Some(cfg), true).await?.0,
            Some(size) => {
                let sock = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
                // Before connecting, so that the window it announces is already small.
                sock.set_recv_buffer_size(size)?;
                let stream = sock.connect(addr).await?;
                stream.set_nodelay(true)?;
                tokio_tungstenite::client_async_with_config(req, MaybeTlsStream::Plain(stream), Some(cfg)).await?.0
            }
        };
        loop {
            match ws.next().await {
                Some(Ok(WsMessage::Text(t))) => {
                    let f: Frame = serde_json::from_str(t.as_str())?;
                    if f.ty == "hello" {
                        return Ok(ws);
                    }
                    bail!("expected hello, got {}", t.as_str());
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
                other => bail!("expected hello, got {other:?}"),
            }
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, open).await.map_err(|_| anyhow!("websocket did not open within {CONNECT_TIMEOUT:?}"))?
}

/// Opens one socket per token, `concurrency` at a time; results keep the tokens' order.
pub async fn connect_many(addr: SocketAddr, tokens: Vec<String>, concurrency: usize) -> Vec<anyhow::Result<Ws>> {
    let started = Instant::now();
    let n = tokens.len();
    let mut out: Vec<Option<anyhow::Result<Ws>>> = (0..n).map(|_| None).collect();
    let mut results = stream::iter(tokens.into_iter().enumerate())
        .map(|(i, t)| async move { (i, connect(addr, &t).await) })
        .buffer_unordered(concurrency.max(1));
    let mut done = 0;
    while let Some((i, r)) = results.next().await {
        out[i] = Some(r);
        done += 1;
        if done % 2000 == 0 && done < n {
            eprintln!("  opened {done}/{n} sockets ({:.1} s)", started.elapsed().as_secs_f64());
        }
    }
    eprintln!("  opened {n} sockets in {:.1} s", started.elapsed().as_secs_f64());
    out.into_iter().map(|r| r.unwrap_or_else(|| Err(anyhow!("not attempted")))).collect()
}

/// The parts of a server frame the load tool looks at; everything else is skipped unparsed.
#[derive(Deserialize)]
pub struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    pub ty: Cow<'a, str>,
    #[serde(borrow, default)]
    pub client_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub message: Option<Msg<'a>>,
}

#[derive(Deserialize)]
pub struct Msg<'a> {
    pub seq: u64,
    pub sender: u64,
    /// Commit time, milliseconds since the Unix epoch.
    #[serde(default)]
    pub ts: u64,
    #[serde(borrow)]
    pub content: Content<'a>,
}

#[derive(Deserialize)]
pub struct Content<'a> {
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
}

/// A `send` frame with a text message. The text holds no characters that need escaping.
pub fn send_frame(client_id: &str, conv: &str, text: &str) -> WsMessage {
    WsMessage::Text(
        format!(r#"{{"type":"send","client_id":"{client_id}","conv":"{conv}","content":{{"kind":"text","text":"{text}"}}}}"#).into(),
    )
}

/// Filler that brings a text up to `len` bytes.
pub fn padding(used: usize, len: usize) -> String {
    "x".repeat(len.saturating_sub(used))
}

/// Latency summary of microsecond samples.
pub struct Percentiles {
    pub n: usize,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(mut v: Vec<u64>) -> Percentiles {
        v.sort_unstable();
        let at = |p: f64| -> u64 {
            if v.is_empty() {
                return 0;
            }
            let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
            v[rank - 1]
        };
        Percentiles {
            n: v.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: v.last().copied().unwrap_or(0),
            mean: if v.is_empty() { 0.0 } else { v.iter().sum::<u64>() as f64 / v.len() as f64 },
        }
    }

    /// In milliseconds, for reports.
    pub fn json_ms(&self) -> serde_json::Value {
        let ms = |us: u64| (us as f64 / 10.0).round() / 100.0;
        json!({
            "n": self.n, "p50_ms": ms(self.p50), "p90_ms": ms(self.p90), "p99_ms": ms(self.p99),
            "p999_ms": ms(self.p999), "max_ms": ms(self.max), "mean_ms": (self.mean / 10.0).round() / 100.0,
        })
    }

    pub fn line_ms(&self) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        format!(
            "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms (n={})",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.p999),
            ms(self.max),
            self.n
        )
    }
}

pub fn mib(bytes: u64) -> f64 {
    (bytes as f64 / (1024.0 * 1024.0) * 10.0).round() / 10.0
}

/// Makes `owner` a contact of every member (a request and its acceptance) and creates a group
/// of them all; returns the group's conversation id (`g:<id>`).
pub async fn make_group(http: &reqwest::Client, base: &str, owner: &Account, members: &[Account], name: &str) -> anyhow::Result<String> {
    for m in members {
        let r = http
            .post(format!("{base}/api/contacts/requests"))
            .bearer_auth(&owner.token)
            .json(&json!({"user": m.id, "message": "hi"}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("contact request to {}: HTTP {}: {}", m.id, r.status(), r.text().await.unwrap_or_default());
        }
        let r =
            http.post(format!("{base}/api/contacts/requests/{}/accept", owner.id)).bearer_auth(&m.token).json(&json!({})).send().await?;
        if !r.status().is_success() {
            bail!("accepting the contact request of {}: HTTP {}: {}", owner.id, r.status(), r.text().await.unwrap_or_default());
        }
    }
    let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
    let r = http.post(format!("{base}/api/groups")).bearer_auth(&owner.token).json(&json!({"name": name, "members": ids})).send().await?;
    let status = r.status();
    let v: serde_json::Value = r.json().await?;
    if status.as_u16() != 201 {
        bail!("creating the group: HTTP {status}: {v}");
    }
    Ok(format!("g:{}", v["id"].as_u64().ok_or_else(|| anyhow!("no group id in {v}"))?))
}
