//! The embedded TURN server end to end, on loopback only: credentials, relaying between two
//! allocations, the default refusal of local peers, and the allocation quota.
//!
//! Every packet here goes to 127.0.0.1 (or to an address that means this host). Non-loopback
//! ranges are proven refused by the filter's unit tests, which send nothing.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chinwag::calls::credentials;
use chinwag::ids::UserId;
use chinwag::store::{Store, StoreOptions};
use common::{TestServer, User, WAIT};
use tokio::net::UdpSocket;
use turn::client::{Client, ClientConfig};
use webrtc_util::Conn;

/// Reads the server's TURN secret before it starts (the test knows it only to forge expired
/// credentials), then starts the server on that data dir.
async fn server_with_secret(tweak: impl FnOnce(&mut chinwag::config::Config)) -> (TestServer, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let secret = store.turn_secret().await.unwrap();
    store.close().await;
    let s = TestServer::start_in(dir.path(), tweak).await;
    (s, dir, secret)
}

/// The TURN address and the credentials the route gives `user`.
async fn ice(s: &TestServer, user: &User) -> (String, String, String) {
    let (st, body) = s.http().get("/api/calls/ice-servers", Some(&user.token)).await;
    assert_eq!(st, 200, "{body}");
    let server = &body["ice_servers"][0];
    let turn_url = server["urls"][1].as_str().unwrap();
    let addr = turn_url.strip_prefix("turn:").unwrap().strip_suffix("?transport=udp").unwrap().to_owned();
    (addr, server["username"].as_str().unwrap().into(), server["credential"].as_str().unwrap().into())
}

async fn client(addr: &str, username: &str, password: &str) -> Client {
    let conn = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let c = Client::new(ClientConfig {
        stun_serv_addr: addr.into(),
        turn_serv_addr: addr.into(),
        username: username.into(),
        password: password.into(),
        realm: String::new(),
        software: String::new(),
        rto_in_ms: 0,
        conn: Arc::new(conn),
        vnet: None,
    })
    .await
    .unwrap();
    c.listen().await.unwrap();
    c
}

async fn allocate(c: &Client) -> Result<impl Conn + use<>, String> {
    tokio::time::timeout(WAIT, c.allocate()).await.expect("the server answers").map_err(|e| e.to_string())
}

/// Sends `data` from `from` to `to` until `to` receives it (the first packets may arrive before
/// the receiving side's permission exists), and returns where it came from.
async fn relay_once(from: &impl Conn, from_to: SocketAddr, to: &impl Conn, data: &[u8]) -> SocketAddr {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut buf = [0u8; 1500];
    loop {
        assert!(tokio::time::Instant::now() < deadline, "nothing was relayed");
        from.send_to(data, from_to).await.unwrap();
        // Earlier packets may still arrive (a permission can be created while they travel).
        if let Ok(Ok((n, src))) = tokio::time::timeout(Duration::from_millis(200), to.recv_from(&mut buf)).await
            && &buf[..n] == data
        {
            return src;
        }
    }
}

#[tokio::test]
async fn two_allocations_relay_to_each_other_on_loopback_when_it_is_allowed() {
    let s = TestServer::start_with(|c| c.turn.allow_peers = vec!["127.0.0.0/8".into()]).await;
    let (a, b) = (s.register("ann").await, s.register("bob").await);
    let (addr, ua, pa) = ice(&s, &a).await;
    let (_, ub, pb) = ice(&s, &b).await;
    let (ca, cb) = (client(&addr, &ua, &pa).await, client(&addr, &ub, &pb).await);
    let (ra, rb) = (allocate(&ca).await.unwrap(), allocate(&cb).await.unwrap());
    let (addr_a, addr_b) = (ra.local_addr().unwrap(), rb.local_addr().unwrap());
    assert!(addr_a.ip().is_loopback() && addr_b.ip().is_loopback(), "{addr_a} {addr_b}");
    assert_ne!(addr_a, addr_b);
    // B opens a permission for A's relay; then A's data reaches B through both relays, and back.
    let _ = rb.send_to(b"hello a", addr_a).await;
    assert_eq!(relay_once(&ra, addr_b, &rb, b"hello b").await, addr_a);
    assert_eq!(relay_once(&rb, addr_a, &ra, b"and back").await, addr_b);
    // A STUN binding request tells a client its address.
    let mapped = tokio::time::timeout(WAIT, ca.send_binding_request()).await.unwrap().unwrap();
    assert!(mapped.ip().is_loopback());
    ra.close().await.unwrap();
    rb.close().await.unwrap();
    ca.close().await.unwrap();
    cb.close().await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn by_default_relaying_to_this_host_is_refused() {
    let s = TestServer::start().await;
    let a = s.register("ann").await;
    let (addr, u, p) = ice(&s, &a).await;
    let c = client(&addr, &u, &p).await;
    let relay = allocate(&c).await.unwrap();
    // A listener on loopback that must hear nothing.
    let victim = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = victim.local_addr().unwrap().port();
    let turn_port: u16 = addr.rsplit_once(':').unwrap().1.parse().unwrap();
    for peer in [
        format!("127.0.0.1:{port}"),
        format!("0.0.0.0:{port}"),
        format!("[::1]:{port}"),
        format!("[::ffff:127.0.0.1]:{port}"),
        format!("[::]:{port}"),
        format!("127.0.0.1:{turn_port}"),
        format!("{}", s.addr),
    ] {
        let peer: SocketAddr = peer.parse().unwrap();
        let sent = tokio::time::timeout(WAIT, relay.send_to(b"let me in", peer)).await.expect("an answer");
        let err = sent.expect_err(&format!("relaying to {peer} must be refused")).to_string();
        assert!(err.contains("403") || err.contains("443"), "{peer}: {err}");
    }
    let mut buf = [0u8; 64];
    assert!(victim.try_recv_from(&mut buf).is_err(), "nothing reached the loopback listener");
    relay.close().await.unwrap();
    c.close().await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn wrong_expired_and_missing_credentials_are_refused_with_401() {
    let (s, _dir, secret) = server_with_secret(|_| {}).await;
    let a = s.register("ann").await;
    let (addr, u, p) = ice(&s, &a).await;
    // Wrong password.
    let err = allocate(&client(&addr, &u, "not-the-password").await).await.err().unwrap();
    assert!(err.contains("401"), "{err}");
    // Signed with the right secret, but expired a minute ago.
    let past = credentials::issue(&secret, UserId(a.id), credentials::now_secs() - 60);
    let err = allocate(&client(&addr, &past.username, &past.password).await).await.err().unwrap();
    assert!(err.contains("401"), "{err}");
    // A username that is not `expiry:userid` (the crate's own format is a bare timestamp).
    let bare = format!("{}", credentials::now_secs() + 600);
    let err = allocate(&client(&addr, &bare, &credentials::password(&secret, &bare)).await).await.err().unwrap();
    assert!(err.contains("401"), "{err}");
    // A username changed after signing (another user id, a later expiry).
    let forged = format!("{}:{}", credentials::now_secs() + 999_999, a.id);
    let err = allocate(&client(&addr, &forged, &p).await).await.err().unwrap();
    assert!(err.contains("401"), "{err}");
    // No credentials at all: an Allocate without MESSAGE-INTEGRITY gets 401 with a nonce.
    let raw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut m = stun::message::Message::new();
    m.build(&[
        Box::new(stun::agent::TransactionId::new()),
        Box::new(stun::message::MessageType::new(stun::message::METHOD_ALLOCATE, stun::message::CLASS_REQUEST)),
        Box::new(turn::proto::reqtrans::RequestedTransport { protocol: turn::proto::PROTO_UDP }),
    ])
    .unwrap();
    raw.send_to(&m.raw, &addr).await.unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = tokio::time::timeout(WAIT, raw.recv_from(&mut buf)).await.unwrap().unwrap();
    let mut res = stun::message::Message { raw: buf[..n].to_vec(), ..Default::default() };
    res.decode().unwrap();
    let mut code = stun::error_code::ErrorCodeAttribute::default();
    stun::message::Getter::get_from(&mut code, &res).unwrap();
    assert_eq!(code.code.0, 401);
    assert!(res.contains(stun::attributes::ATTR_NONCE) && res.contains(stun::attributes::ATTR_REALM));
    // And the real credentials work.
    let ok = client(&addr, &u, &p).await;
    allocate(&ok).await.unwrap();
    ok.close().await.unwrap();
    let fresh = credentials::issue(&secret, UserId(a.id), credentials::now_secs() + 60);
    allocate(&client(&addr, &fresh.username, &fresh.password).await).await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn a_user_holds_at_most_twelve_allocations() {
    let s = TestServer::start().await;
    let (a, b) = (s.register("ann").await, s.register("bob").await);
    let (addr, u, p) = ice(&s, &a).await;
    let mut held = Vec::new();
    for i in 0..12 {
        let c = client(&addr, &u, &p).await;
        let r = allocate(&c).await.unwrap_or_else(|e| panic!("allocation {i}: {e}"));
        held.push((c, r));
    }
    // Fresh credentials do not reset the count: it is per user.
    let (_, u2, p2) = ice(&s, &a).await;
    let err = allocate(&client(&addr, &u2, &p2).await).await.err().expect("the 13th is refused");
    assert!(err.contains("486"), "{err}");
    // Someone else is not affected.
    let (_, ub, pb) = ice(&s, &b).await;
    allocate(&client(&addr, &ub, &pb).await).await.unwrap();
    // Giving one back makes room.
    let (c, r) = held.pop().unwrap();
    r.close().await.unwrap();
    c.close().await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match allocate(&client(&addr, &u, &p).await).await {
            Ok(_) => break,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "no room after a release: {e}"),
        }
    }
    s.stop().await;
}
