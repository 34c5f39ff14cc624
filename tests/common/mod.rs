//! Test harness: the real server on `127.0.0.1:0` with a temporary data dir, plus small HTTP
//! and WebSocket clients. No sleeps: every wait is for a concrete event, with a deadline.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chinwag::config::Config;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub data_dir: PathBuf,
    temp_dir: Option<tempfile::TempDir>,
}

pub fn test_config(data_dir: &Path) -> Config {
    let mut c = Config { data_dir: data_dir.to_path_buf(), listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() };
    // Tests register many users from one address.
    c.auth.registrations_per_ip_per_hour = 10_000;
    // Many servers run at once: each gets its own TURN port, on loopback only.
    c.turn.listen = "127.0.0.1:0".parse().unwrap();
    c.turn.sockets = 1;
    // And its own group-call media port.
    c.calls.media_listen = "127.0.0.1:0".parse().unwrap();
    c
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let mut s = Self::start_in(&path, tweak).await;
        s.temp_dir = Some(dir);
        s
    }

    /// Starts a server on an existing data dir (for restart tests); the caller keeps the dir.
    pub async fn start_in(data_dir: &Path, tweak: impl FnOnce(&mut Config)) -> TestServer {
        if let Ok(filter) = std::env::var("CHINWAG_TEST_LOG") {
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        }
        let mut config = test_config(data_dir);
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(chinwag::run(config, listener, shutdown.clone()));
        TestServer { addr, shutdown, task, data_dir: data_dir.to_path_buf(), temp_dir: None }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the server and waits until it has let go of its data dir.
    pub async fn stop(self) -> Option<tempfile::TempDir> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task).await.expect("server stops in time").unwrap().unwrap();
        self.temp_dir
    }

    pub fn http(&self) -> Http {
        Http { base: format!("http://{}", self.addr), client: reqwest::Client::new() }
    }

    /// Registers `name` with a password of `name-password` and returns the user.
    pub async fn register(&self, name: &str) -> User {
        let (status, body) =
            self.http().post("/api/auth/register", None, json!({"username": name, "password": format!("{name}-password")})).await;
        assert_eq!(status, 201, "register {name}: {body}");
        User { id: body["user"]["id"].as_u64().unwrap(), token: body["token"].as_str().unwrap().to_owned(), name: name.into() }
    }

    /// Makes `a` and `b` contacts through a request and its acceptance.
    pub async fn befriend(&self, a: &User, b: &User) {
        let http = self.http();
        let (st, body) = http.post("/api/contacts/requests", Some(&a.token), json!({"user": b.id, "message": "hi"})).await;
        assert_eq!(st, 200, "{body}");
        let (st, body) = http.post(&format!("/api/contacts/requests/{}/accept", a.id), Some(&b.token), json!({})).await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["contact"]["state"], "normal");
    }

    /// Creates a group owned by `owner` with `members` (who must be the owner's contacts).
    pub async fn group(&self, owner: &User, name: &str, members: &[&User]) -> u64 {
        let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
        let (st, body) = self.http().post("/api/groups", Some(&owner.token), json!({"name": name, "members": ids})).await;
        assert_eq!(st, 201, "{body}");
        body["id"].as_u64().unwrap()
    }

    pub async fn ws(&self, user: &User) -> Ws {
        self.ws_with(&user.token, None).await.expect("websocket opens")
    }

    pub async fn ws_with(&self, token: &str, origin: Option<&str>) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let mut req = format!("ws://{}/api/ws", self.addr).into_client_request().unwrap();
        req.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
        if let Some(o) = origin {
            req.headers_mut().insert("origin", HeaderValue::from_str(o).unwrap());
        }
        let (stream, _) = tokio_tungstenite::connect_async(req).await?;
        let mut ws = Ws { stream };
        let hello = ws.next_json().await;
        assert_eq!(hello["type"], "hello", "{hello}");
        Ok(ws)
    }
}

#[derive(Clone, Debug)]
pub struct User {
    pub id: u64,
    pub token: String,
    pub name: String,
}

impl User {
    pub fn dm(&self, other: &User) -> String {
        format!("d:{}:{}", self.id.min(other.id), self.id.max(other.id))
    }
}

pub struct Http {
    pub base: String,
    pub client: reqwest::Client,
}

impl Http {
    async fn finish(resp: reqwest::Response) -> (u16, Value) {
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut r = self.client.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        Self::finish(r.send().await.unwrap()).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, token, body).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, token, body).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut r = self.client.delete(format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        Self::finish(r.send().await.unwrap()).await
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut r = self.client.request(method, format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        Self::finish(r.send().await.unwrap()).await
    }
}

pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a socket ended, as the client saw it.
#[derive(Debug, PartialEq)]
pub enum Ended {
    Closed(Option<u16>),
    Dropped,
}

impl Ws {
    pub async fn send_json(&mut self, v: Value) {
        self.stream.send(WsMessage::Text(v.to_string().into())).await.unwrap();
    }

    /// The next JSON frame, skipping pings; panics on close or after the deadline.
    pub async fn next_json(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.stream.next()).await.expect("a frame arrives in time");
            match msg {
                Some(Ok(WsMessage::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
                other => panic!("expected a frame, got {other:?}"),
            }
        }
    }

    /// Frames until one of type `ty`, returning all of them (the last is the match).
    pub async fn until(&mut self, ty: &str) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let v = self.next_json().await;
            let done = v["type"] == ty;
            seen.push(v);
            if done {
                return seen;
            }
        }
    }

    pub async fn send_text(&mut self, client_id: &str, conv: &str, text: &str) -> Value {
        self.send_json(json!({"type":"send","client_id":client_id,"conv":conv,"content":{"kind":"text","text":text}})).await;
        self.until_client_id(client_id).await
    }

    /// The answer (`ack` or `error`) carrying `client_id`, skipping other frames.
    pub async fn until_client_id(&mut self, client_id: &str) -> Value {
        loop {
            let v = self.next_json().await;
            if v["client_id"] == client_id && (v["type"] == "ack" || v["type"] == "error") {
                return v;
            }
        }
    }

    pub async fn sync(&mut self, cursors: Value) -> Vec<Value> {
        self.send_json(json!({"type":"sync","cursors":cursors})).await;
        let mut frames = self.until("synced").await;
        frames.pop();
        frames
    }

    /// The next frame of type `ty`, skipping others.
    pub async fn next_of(&mut self, ty: &str) -> Value {
        loop {
            let v = self.next_json().await;
            if v["type"] == ty {
                return v;
            }
        }
    }

    /// Asserts that no frame of type `ty` arrives before a ping-pong round trip completes.
    pub async fn assert_none_of(&mut self, ty: &str) {
        self.send_json(json!({"type":"ping"})).await;
        loop {
            let v = self.next_json().await;
            assert_ne!(v["type"], ty, "unexpected {v}");
            if v["type"] == "pong" {
                return;
            }
        }
    }

    /// Reads until the socket ends, discarding frames; returns how it ended.
    pub async fn until_end(&mut self, within: Duration) -> Ended {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next()).await.expect("the socket ends in time");
            match msg {
                Some(Ok(WsMessage::Close(frame))) => {
                    return Ended::Closed(frame.map(|f: CloseFrame| f.code.into()));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Ended::Dropped,
            }
        }
    }
}
