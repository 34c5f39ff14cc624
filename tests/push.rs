//! Web Push end to end, against a push service of our own on loopback (opened through
//! `push.allow_http` and `push.endpoint_allow`). The service decrypts every request with the
//! subscription's private key and auth secret (RFC 8291, written here independently of the
//! server's crate and checked against the RFC's own example) and verifies the VAPID token
//! (RFC 8292: ES256, `aud`, `exp`, `k`).

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::{TestServer, User, WAIT};
use p256::ecdsa::signature::Verifier as _;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Decrypts an `aes128gcm` Web Push body (RFC 8291 section 3, RFC 8188) for the holder of
/// `ua_secret` and `auth`.
fn decrypt(body: &[u8], ua_secret: &p256::SecretKey, auth: &[u8]) -> Vec<u8> {
    let (salt, rs, idlen) = (&body[..16], u32::from_be_bytes(body[16..20].try_into().unwrap()), usize::from(body[20]));
    assert_eq!(idlen, 65, "the key id is the sender's public key");
    let as_public = p256::PublicKey::from_sec1_bytes(&body[21..21 + idlen]).unwrap();
    let records = &body[21 + idlen..];
    assert!(records.len() <= rs as usize, "one record");
    let shared = p256::ecdh::diffie_hellman(ua_secret.to_nonzero_scalar(), as_public.as_affine());
    let ua_public = ua_secret.public_key().to_encoded_point(false);
    let mut key_info = b"WebPush: info\0".to_vec();
    key_info.extend_from_slice(ua_public.as_bytes());
    key_info.extend_from_slice(as_public.to_encoded_point(false).as_bytes());
    let mut ikm = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(auth), shared.raw_secret_bytes()).expand(&key_info, &mut ikm).unwrap();
    let prk = hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), &ikm);
    let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek).unwrap();
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce).unwrap();
    let mut plain = Aes128Gcm::new_from_slice(&cek).unwrap().decrypt(Nonce::from_slice(&nonce), records).expect("the push decrypts");
    let pad = plain.iter().rposition(|b| *b != 0).unwrap();
    assert_eq!(plain[pad], 2, "the last record ends with the delimiter 0x02");
    plain.truncate(pad);
    plain
}

#[test]
fn the_decryption_here_matches_rfc_8291s_example() {
    let ua = p256::SecretKey::from_slice(&B64.decode("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94").unwrap()).unwrap();
    let auth = B64.decode("BTBZMqHH6r4Tts7J_aSIgg").unwrap();
    let body = B64
        .decode(
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
        )
        .unwrap();
    assert_eq!(decrypt(&body, &ua, &auth), b"When I grow up, I want to be a watermelon");
}

/// One request the push service got.
#[derive(Debug)]
struct Got {
    path: String,
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

/// How the push service answers the next requests (then 201).
#[derive(Clone, Copy)]
enum Reply {
    Status(u16, Option<u64>),
    /// Keeps the request open and never answers.
    Hang,
    Redirect(SocketAddr),
}

#[derive(Clone)]
struct Service {
    got: mpsc::UnboundedSender<Got>,
    script: Arc<Mutex<VecDeque<Reply>>>,
}

async fn receive(State(s): State<Service>, Path(path): Path<String>, headers: HeaderMap, body: Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    let reply = s.script.lock().unwrap().pop_front().unwrap_or(Reply::Status(201, None));
    let _ = s.got.send(Got { path, headers, body, at: Instant::now() });
    match reply {
        Reply::Status(code, retry) => {
            let mut h = HeaderMap::new();
            if let Some(r) = retry {
                h.insert("retry-after", r.into());
            }
            (StatusCode::from_u16(code).unwrap(), h).into_response()
        }
        Reply::Hang => std::future::pending::<axum::response::Response>().await,
        Reply::Redirect(to) => (StatusCode::TEMPORARY_REDIRECT, [("location", format!("http://{to}/p/redirected"))]).into_response(),
    }
}

struct PushService {
    addr: SocketAddr,
    got: mpsc::UnboundedReceiver<Got>,
    script: Arc<Mutex<VecDeque<Reply>>>,
}

impl PushService {
    async fn start(ip: &str) -> PushService {
        let (tx, got) = mpsc::unbounded_channel();
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let app =
            axum::Router::new().route("/p/{*path}", axum::routing::post(receive)).with_state(Service { got: tx, script: script.clone() });
        let listener = tokio::net::TcpListener::bind(format!("{ip}:0")).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        PushService { addr, got, script }
    }

    fn then(&self, r: Reply) {
        self.script.lock().unwrap().push_back(r);
    }

    /// The next push the service receives. The deadline is three times the frames' `WAIT`: a push
    /// is one queue and one signed, encrypted request away, but the one push worker
    /// shares a debug build's CPU with every other test of this file, and once (a fresh-clone run
    /// beside a build) it took longer than 10 s.
    async fn next(&mut self) -> Got {
        tokio::time::timeout(WAIT * 3, self.got.recv()).await.expect("a push arrives in time").unwrap()
    }
}

/// A browser's side of a subscription.
struct Device {
    secret: p256::SecretKey,
    auth: [u8; 16],
    endpoint: String,
}

impl Device {
    fn new(service: &PushService, name: &str) -> Device {
        let mut auth = [0u8; 16];
        rand::fill(&mut auth);
        let mut raw = [0u8; 32];
        let secret = loop {
            rand::fill(&mut raw);
            if let Ok(k) = p256::SecretKey::from_slice(&raw) {
                break k;
            }
        };
        Device { secret, auth, endpoint: format!("http://{}/p/{name}", service.addr) }
    }

    fn subscription(&self) -> Value {
        let public = self.secret.public_key().to_encoded_point(false);
        json!({"endpoint": self.endpoint, "expirationTime": null, "keys": {"p256dh": B64.encode(public.as_bytes()), "auth": B64.encode(self.auth)}})
    }

    /// Decrypts and checks a request the push service got, returning the payload.
    fn open(&self, got: &Got, vapid_key: &str) -> Value {
        assert_eq!(got.headers["content-encoding"], "aes128gcm");
        assert!(got.headers.contains_key("ttl"));
        let auth = got.headers["authorization"].to_str().unwrap();
        let (t, k) = auth.strip_prefix("vapid t=").unwrap().split_once(", k=").unwrap();
        assert_eq!(k, vapid_key, "the token names the server's key");
        let parts: Vec<&str> = t.split('.').collect();
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&B64.decode(k).unwrap()).unwrap();
        let sig = p256::ecdsa::Signature::from_slice(&B64.decode(parts[2]).unwrap()).unwrap();
        key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig).expect("the VAPID signature verifies");
        let header: Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        let claims: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
        let origin = self.endpoint.split("/p/").next().unwrap();
        assert_eq!(claims["aud"], origin);
        let exp = claims["exp"].as_u64().unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert!(exp > now && exp <= now + 24 * 3600, "exp within 24 hours");
        assert!(claims["sub"].as_str().unwrap().starts_with("mailto:"));
        serde_json::from_slice(&decrypt(&got.body, &self.secret, &self.auth)).unwrap()
    }
}

/// A server whose pushes may go to `allow` (one worker, so pushes leave in the order of their
/// events and a push that was not sent shows as the next one being another).
async fn server(allow: &[&str]) -> TestServer {
    let allow: Vec<String> = allow.iter().map(|s| (*s).to_owned()).collect();
    TestServer::start_with(move |c| {
        c.push.allow_http = true;
        c.push.endpoint_allow = allow;
        c.push.workers = 1;
        c.push.timeout_secs = 3;
    })
    .await
}

async fn subscribe(s: &TestServer, u: &User, d: &Device) {
    let (st, body) = s.http().post("/api/push/subscriptions", Some(&u.token), d.subscription()).await;
    assert_eq!(st, 201, "{body}");
}

async fn vapid_key(s: &TestServer, u: &User) -> String {
    let (st, body) = s.http().get("/api/push/vapid", Some(&u.token)).await;
    assert_eq!(st, 200, "{body}");
    body["public_key"].as_str().unwrap().to_owned()
}

async fn metric(s: &TestServer, name: &str) -> u64 {
    let text = reqwest::get(s.url("/metrics")).await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(&format!("chinwag_{name} "))).map_or(0, |v| v.trim().parse().unwrap())
}

async fn until_metric(s: &TestServer, name: &str, at_least: u64) {
    let deadline = Instant::now() + WAIT;
    while metric(s, name).await < at_least {
        assert!(Instant::now() < deadline, "{name} reached {at_least}");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn messages_mentions_calls_and_requests_reach_closed_devices_as_the_user_allows() {
    let mut svc = PushService::start("127.0.0.1").await;
    let s = server(&["127.0.0.1/32"]).await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    s.befriend(&ann, &bob).await;
    let key = vapid_key(&s, &bob).await;
    assert_eq!(B64.decode(&key).unwrap().len(), 65, "an uncompressed P-256 point");
    let phone = Device::new(&svc, "bob-phone");
    subscribe(&s, &bob, &phone).await;
    let mut ann_ws = s.ws(&ann).await;
    let dm = ann.dm(&bob);

    // Bob's app is closed: the message reaches his phone, with sender and text.
    let ack = ann_ws.send_text("m1", &dm, "hello bob").await;
    let got = svc.next().await;
    assert_eq!(got.path, "bob-phone");
    assert_eq!(got.headers["urgency"], "normal");
    let p = phone.open(&got, &key);
    assert_eq!(
        (p["type"].as_str(), p["conv"].as_str(), p["seq"].as_u64()),
        (Some("message"), Some(dm.as_str()), ack["message"]["seq"].as_u64())
    );
    assert_eq!((p["sender_name"].as_str(), p["text"].as_str(), p["unread"].as_u64()), (Some("ann"), Some("hello bob"), Some(1)));
    assert_eq!(p["total_unread"], 1);

    // While his app is on screen (a socket counts as visible until it says otherwise), nothing;
    // once it says it is hidden, pushes come again. One worker: the next push is the next one sent.
    let mut bob_ws = s.ws(&bob).await;
    ann_ws.send_text("m2", &dm, "you are here").await;
    until_metric(&s, "push_considered", 2).await;
    bob_ws.send_json(json!({"type":"visibility","visible":false})).await;
    bob_ws.send_json(json!({"type":"ping"})).await;
    bob_ws.next_of("pong").await;
    ann_ws.send_text("m3", &dm, "now hidden").await;
    let p = phone.open(&svc.next().await, &key);
    assert_eq!(p["text"], "now hidden", "nothing was pushed while the app was visible");
    drop(bob_ws);

    // A muted group stays quiet, except for a mention.
    let gid = s.group(&ann, "team", &[&bob]).await;
    let conv = format!("g:{gid}");
    let (st, _) = s.http().patch(&format!("/api/conversations/{conv}"), Some(&bob.token), json!({"muted": true})).await;
    assert_eq!(st, 200);
    ann_ws.send_text("g1", &conv, "not for bob").await;
    ann_ws
        .send_json(json!({"type":"send","client_id":"g2","conv":conv,"content":{"kind":"text","text":"@bob look"},"mentions":[bob.id]}))
        .await;
    ann_ws.until_client_id("g2").await;
    let p = phone.open(&svc.next().await, &key);
    assert_eq!((p["text"].as_str(), p["mention"].as_bool(), p["group_name"].as_str()), (Some("@bob look"), Some(true), Some("team")));
    // The badge counts the three unread direct messages, not the muted group.
    assert_eq!(p["total_unread"], 3, "{p}");

    // Privacy: "nothing but New message".
    let (st, body) =
        s.http().send(reqwest::Method::PUT, "/api/push/settings", Some(&bob.token), json!({"preview":"none","dnd":null})).await;
    assert_eq!(st, 200, "{body}");
    let secret = ann_ws.send_text("m4", &dm, "secret").await["message"]["seq"].as_u64().unwrap();
    let p = phone.open(&svc.next().await, &key);
    for k in ["text", "sender_name", "group_name"] {
        assert!(p.get(k).is_none(), "{k} must not be in {p}");
    }
    assert_eq!(p["type"], "message");
    assert_eq!((p["unread"].as_u64(), p["total_unread"].as_u64()), (Some(4), Some(4)));

    // A recall takes the chat's notification down (it may show the text), under the chat's topic.
    let (st, _) = s.http().post(&format!("/api/conversations/{dm}/messages/{secret}/recall"), Some(&ann.token), json!({})).await;
    assert_eq!(st, 200);
    let got = svc.next().await;
    assert!(got.headers.contains_key("topic"), "{:?}", got.headers);
    assert_eq!(phone.open(&got, &key), json!({"type":"recall","conv":dm,"seq":secret}));
    s.http().send(reqwest::Method::PUT, "/api/push/settings", Some(&bob.token), json!({"preview":"full","dnd":null})).await;

    // A call rings his phone urgently, and is withdrawn when it ends unanswered.
    ann_ws.send_json(json!({"type":"call_invite","conv":dm,"media":"video"})).await;
    let call = ann_ws.next_of("call_started").await["call"].as_str().unwrap().to_owned();
    let got = svc.next().await;
    assert_eq!(got.headers["urgency"], "high");
    let p = phone.open(&got, &key);
    assert_eq!((p["type"].as_str(), p["call"].as_str(), p["media"].as_str()), (Some("call"), Some(call.as_str()), Some("video")));
    ann_ws.send_json(json!({"type":"call_cancel","call":call})).await;
    // The ring's withdrawal and the call's record in the chat, in either order.
    let (a, b) = (phone.open(&svc.next().await, &key), phone.open(&svc.next().await, &key));
    let (withdrawn, record) = if a["type"] == "call_end" { (a, b) } else { (b, a) };
    assert_eq!((withdrawn["type"].as_str(), withdrawn["call"].as_str()), (Some("call_end"), Some(call.as_str())));
    assert_eq!((record["type"].as_str(), record["conv"].as_str()), (Some("message"), Some(dm.as_str())), "{record}");

    // A contact request.
    let cat = s.register("cat").await;
    let (st, _) = s.http().post("/api/contacts/requests", Some(&cat.token), json!({"user": bob.id, "message": "hi"})).await;
    assert_eq!(st, 200);
    let p = phone.open(&svc.next().await, &key);
    assert_eq!((p["type"].as_str(), p["user"].as_u64(), p["from_name"].as_str()), (Some("contact_request"), Some(cat.id), Some("cat")));

    // Logging out ends the device's subscription.
    let (st, _) = s.http().post("/api/auth/logout", Some(&bob.token), json!({})).await;
    assert_eq!(st, 204);
    let bob2 = {
        let (st, body) = s.http().post("/api/auth/login", None, json!({"username":"bob","password":"bob-password"})).await;
        assert_eq!(st, 200);
        User { id: bob.id, token: body["token"].as_str().unwrap().to_owned(), name: "bob".into() }
    };
    let laptop = Device::new(&svc, "bob-laptop");
    subscribe(&s, &bob2, &laptop).await;
    ann_ws.send_text("m5", &dm, "after logout").await;
    let got = svc.next().await;
    assert_eq!(got.path, "bob-laptop", "the logged-out phone gets nothing");
    assert_eq!(laptop.open(&got, &key)["text"], "after logout");
    s.stop().await;
}

#[tokio::test]
async fn gone_subscriptions_are_removed_retry_after_is_honoured_and_a_hung_service_does_not_slow_chat() {
    let mut svc = PushService::start("127.0.0.1").await;
    let s = server(&["127.0.0.1/32"]).await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let key = vapid_key(&s, &bob).await;
    let mut ann_ws = s.ws(&ann).await;
    let dm = ann.dm(&bob);

    // 429 with Retry-After: the same push again after the wait.
    let d = Device::new(&svc, "one");
    subscribe(&s, &bob, &d).await;
    svc.then(Reply::Status(429, Some(1)));
    ann_ws.send_text("a", &dm, "retry me").await;
    let (first, second) = (svc.next().await, svc.next().await);
    assert_eq!(d.open(&first, &key)["text"], "retry me");
    assert_eq!(d.open(&second, &key)["text"], "retry me");
    assert!(second.at.duration_since(first.at) >= Duration::from_millis(900), "waited for Retry-After");

    // 410: the subscription is removed; the next push after a new subscription is the next message.
    svc.then(Reply::Status(410, None));
    ann_ws.send_text("b", &dm, "to a gone device").await;
    assert_eq!(d.open(&svc.next().await, &key)["text"], "to a gone device");
    until_metric(&s, "push_gone", 1).await;
    ann_ws.send_text("c", &dm, "nobody hears this").await;
    let d2 = Device::new(&svc, "two");
    subscribe(&s, &bob, &d2).await;
    ann_ws.send_text("d", &dm, "new device").await;
    let got = svc.next().await;
    assert_eq!((got.path.as_str(), d2.open(&got, &key)["text"].as_str()), ("two", Some("new device")));

    // A push service that never answers holds the only push worker; chat goes on regardless.
    svc.then(Reply::Hang);
    ann_ws.send_text("e", &dm, "into the void").await;
    let hung = svc.next().await;
    assert_eq!(d2.open(&hung, &key)["text"], "into the void");
    for i in 0..20 {
        let ack = ann_ws.send_text(&format!("f{i}"), &dm, "still chatting").await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    assert_eq!(metric(&s, "push_sent").await, 2, "the hung push is still in flight while all 20 messages were acknowledged");
    s.stop().await;
}

#[tokio::test]
async fn endpoints_off_the_public_internet_are_refused_and_redirects_are_not_followed() {
    // Without the allow setting, loopback in every spelling, and a name that resolves to it.
    let s = TestServer::start_with(|c| c.push.allow_http = true).await;
    let bob = s.register("bob").await;
    let svc = PushService::start("127.0.0.1").await;
    let port = svc.addr.port();
    for endpoint in [
        format!("http://127.0.0.1:{port}/p/x"),
        format!("http://0.0.0.0:{port}/p/x"),
        format!("http://[::1]:{port}/p/x"),
        format!("http://[::ffff:127.0.0.1]:{port}/p/x"),
        format!("http://localhost:{port}/p/x"),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://10.0.0.1/p".to_owned(),
        "ftp://127.0.0.1/p".to_owned(),
    ] {
        let mut sub = Device::new(&svc, "x").subscription();
        sub["endpoint"] = json!(endpoint);
        let (st, body) = s.http().post("/api/push/subscriptions", Some(&bob.token), sub).await;
        assert_eq!((st, body["error"]["code"].as_str()), (400, Some("endpoint_refused")), "{endpoint}: {body}");
    }
    s.stop().await;
    // Plain http is refused unless allowed, whatever the address.
    let s = TestServer::start_with(|c| c.push.endpoint_allow = vec!["127.0.0.1/32".into()]).await;
    let bob = s.register("bob").await;
    let (st, body) = s.http().post("/api/push/subscriptions", Some(&bob.token), Device::new(&svc, "x").subscription()).await;
    assert_eq!((st, body["error"]["code"].as_str()), (400, Some("endpoint_refused")), "{body}");
    s.stop().await;

    // A push service on an allowed address redirects to loopback: the server does not follow.
    let mut allowed = PushService::start("127.0.0.2").await;
    let mut target = PushService::start("127.0.0.1").await;
    let s = server(&["127.0.0.2/32"]).await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    subscribe(&s, &bob, &Device::new(&allowed, "r")).await;
    allowed.then(Reply::Redirect(target.addr));
    let mut ann_ws = s.ws(&ann).await;
    ann_ws.send_text("r", &ann.dm(&bob), "follow me").await;
    allowed.next().await;
    until_metric(&s, "push_failed", 1).await;
    assert!(target.got.try_recv().is_err(), "the redirect was not followed");
    s.stop().await;
}
