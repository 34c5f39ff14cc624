//! The embedded TURN server end to end, on loopback only: credentials, relaying between two
//! allocations, the default refusal of local peers, and the allocation quota; TURN over TCP and
//! TLS by hand (framing, screening, limits, an allocation freed with its connection) and with
//! coturn's own test client.
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
async fn a_user_holds_at_most_their_quota_of_allocations() {
    let s = TestServer::start_with(|c| c.turn.user_quota = 5).await;
    let (a, b) = (s.register("ann").await, s.register("bob").await);
    let (addr, u, p) = ice(&s, &a).await;
    let mut held = Vec::new();
    for i in 0..5 {
        let c = client(&addr, &u, &p).await;
        let r = allocate(&c).await.unwrap_or_else(|e| panic!("allocation {i}: {e}"));
        held.push((c, r));
    }
    // Fresh credentials do not reset the count: it is per user.
    let (_, u2, p2) = ice(&s, &a).await;
    let err = allocate(&client(&addr, &u2, &p2).await).await.err().expect("the 6th is refused");
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

// TURN over TCP and TLS.

/// The `turn:` / `turns:` URL of `scheme` and `transport` in the route's answer, as `host:port`.
fn url_addr(body: &serde_json::Value, prefix: &str, suffix: &str) -> Option<String> {
    body["ice_servers"][0]["urls"]
        .as_array()?
        .iter()
        .filter_map(|u| u.as_str())
        .find_map(|u| u.strip_prefix(prefix)?.strip_suffix(suffix))
        .map(str::to_owned)
}

/// A TURN server gauge from `/metrics`.
async fn gauge(s: &TestServer, name: &str) -> i64 {
    let (st, text) = s.http().get("/metrics", None).await;
    assert_eq!(st, 200);
    let text = text.as_str().unwrap().to_owned();
    let line = text.lines().find(|l| l.starts_with(&format!("chinwag_{name} "))).unwrap_or_else(|| panic!("no {name} in {text}"));
    line.rsplit_once(' ').unwrap().1.parse().unwrap()
}

/// Waits until gauge `name` reads `want`.
async fn until_gauge(s: &TestServer, name: &str, want: i64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = gauge(s, name).await;
        if now == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{name} stayed at {now}, not {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A self-signed certificate for `localhost`, written as PEM files into `dir`.
fn self_signed(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, tokio_rustls::rustls::pki_types::CertificateDer<'static>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.join("turn-cert.pem"), dir.join("turn-key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert, key, made.cert.der().clone())
}

fn stun_request(method: stun::message::Method, mut attrs: Vec<Box<dyn stun::message::Setter>>) -> Vec<u8> {
    use stun::message::{CLASS_REQUEST, Message, MessageType};
    let mut all: Vec<Box<dyn stun::message::Setter>> =
        vec![Box::new(stun::agent::TransactionId::new()), Box::new(MessageType::new(method, CLASS_REQUEST))];
    all.append(&mut attrs);
    let mut m = Message::new();
    m.build(&all).unwrap();
    m.raw
}

/// Reads one STUN message off a stream (answers over TCP are never `ChannelData` here).
async fn read_stun(s: &mut (impl tokio::io::AsyncRead + Unpin)) -> stun::message::Message {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 20];
    tokio::time::timeout(WAIT, s.read_exact(&mut head)).await.expect("an answer in time").expect("an answer");
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    let mut raw = head.to_vec();
    raw.resize(20 + len, 0);
    s.read_exact(&mut raw[20..]).await.unwrap();
    let mut m = stun::message::Message { raw, ..Default::default() };
    m.decode().unwrap();
    m
}

fn error_code(m: &stun::message::Message) -> Option<u16> {
    let mut code = stun::error_code::ErrorCodeAttribute::default();
    stun::message::Getter::get_from(&mut code, m).ok().map(|()| code.code.0)
}

fn text(m: &stun::message::Message, attr: stun::attributes::AttrType) -> String {
    let mut t = stun::textattrs::TextAttribute::new(attr, String::new());
    stun::message::Getter::get_from(&mut t, m).unwrap();
    t.text
}

/// Allocates over `s` the way a browser does: an Allocate without credentials for the nonce
/// and realm (a 401), then the signed one. Returns the relayed address, and the nonce and realm.
async fn allocate_over(
    s: &mut (impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin),
    user: &str,
    pass: &str,
) -> (SocketAddr, String, String) {
    use stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
    use stun::message::METHOD_ALLOCATE;
    use tokio::io::AsyncWriteExt;
    use turn::proto::reqtrans::RequestedTransport;
    let udp = || Box::new(RequestedTransport { protocol: turn::proto::PROTO_UDP });
    s.write_all(&stun_request(METHOD_ALLOCATE, vec![udp()])).await.unwrap();
    let challenge = read_stun(s).await;
    assert_eq!(error_code(&challenge), Some(401));
    let (nonce, realm) = (text(&challenge, ATTR_NONCE), text(&challenge, ATTR_REALM));
    assert!(!nonce.is_empty() && realm == "chinwag", "{nonce} {realm}");
    s.write_all(&stun_request(
        METHOD_ALLOCATE,
        vec![
            udp(),
            Box::new(stun::textattrs::TextAttribute::new(ATTR_USERNAME, user.into())),
            Box::new(stun::textattrs::TextAttribute::new(ATTR_REALM, realm.clone())),
            Box::new(stun::textattrs::TextAttribute::new(ATTR_NONCE, nonce.clone())),
            Box::new(stun::integrity::MessageIntegrity::new_long_term_integrity(user.into(), realm.clone(), pass.into())),
        ],
    ))
    .await
    .unwrap();
    let ok = read_stun(s).await;
    assert_eq!(ok.typ, stun::message::MessageType::new(METHOD_ALLOCATE, stun::message::CLASS_SUCCESS_RESPONSE), "{:?}", error_code(&ok));
    let mut relayed = turn::proto::relayaddr::RelayedAddress::default();
    stun::message::Getter::get_from(&mut relayed, &ok).unwrap();
    (SocketAddr::new(relayed.ip, relayed.port), nonce, realm)
}

/// Whether the server ended the connection (EOF or reset) before `WAIT` ran out.
async fn closed_by_server(s: &mut (impl tokio::io::AsyncRead + Unpin)) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn turn_over_tcp_allocates_screens_and_frees_on_close() {
    use stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
    use tokio::io::AsyncWriteExt;
    let s = TestServer::start().await;
    let a = s.register("ann").await;
    let (st, body) = s.http().get("/api/calls/ice-servers", Some(&a.token)).await;
    assert_eq!(st, 200);
    let addr = url_addr(&body, "turn:", "?transport=tcp").expect("a TCP URL");
    assert_eq!(Some(&addr), url_addr(&body, "turn:", "?transport=udp").as_ref(), "TCP shares the UDP port");
    assert!(url_addr(&body, "turns:", "?transport=tcp").is_none(), "no TLS URL without a certificate");
    let (user, pass) = (body["ice_servers"][0]["username"].as_str().unwrap(), body["ice_servers"][0]["credential"].as_str().unwrap());

    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (relayed, nonce, realm) = allocate_over(&mut tcp, user, pass).await;
    assert!(relayed.ip().is_loopback() && relayed.port() != 0, "{relayed}");
    until_gauge(&s, "turn_allocations", 1).await;
    assert_eq!(gauge(&s, "turn_stream_connections").await, 1);

    // A permission for this host is refused: loopback is not a public peer.
    tcp.write_all(&stun_request(
        stun::message::METHOD_CREATE_PERMISSION,
        vec![
            Box::new(turn::proto::peeraddr::PeerAddress { ip: "127.0.0.1".parse().unwrap(), port: 9 }),
            Box::new(stun::textattrs::TextAttribute::new(ATTR_USERNAME, user.into())),
            Box::new(stun::textattrs::TextAttribute::new(ATTR_REALM, realm)),
            Box::new(stun::textattrs::TextAttribute::new(ATTR_NONCE, nonce)),
            Box::new(stun::integrity::MessageIntegrity::new_long_term_integrity(user.into(), "chinwag".into(), pass.into())),
        ],
    ))
    .await
    .unwrap();
    assert_eq!(error_code(&read_stun(&mut tcp).await), Some(403));

    // Closing the connection deletes its allocation.
    drop(tcp);
    until_gauge(&s, "turn_allocations", 0).await;
    until_gauge(&s, "turn_stream_connections", 0).await;

    // Garbage ends a connection: first thing, or after a valid exchange.
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert!(closed_by_server(&mut tcp).await, "HTTP closes the connection");
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(&stun_request(stun::message::METHOD_BINDING, vec![])).await.unwrap();
    let mapped = read_stun(&mut tcp).await;
    assert_eq!(mapped.typ, stun::message::BINDING_SUCCESS);
    // The start of a TLS ClientHello: a STUN-like first byte, but no magic cookie.
    tcp.write_all(&[0x16, 0x03, 0x01, 0x00, 0xa4, 0x01, 0x00, 0x00, 0xa0, 0x03, 0x03, 0x00]).await.unwrap();
    assert!(closed_by_server(&mut tcp).await, "garbage closes the connection");
    // A STUN header announcing more than a STUN message may hold, too.
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut huge = stun_request(stun::message::METHOD_BINDING, vec![]);
    huge[2..4].copy_from_slice(&0xfff0u16.to_be_bytes());
    tcp.write_all(&huge).await.unwrap();
    assert!(closed_by_server(&mut tcp).await, "an oversized frame closes the connection");
    until_gauge(&s, "turn_stream_connections", 0).await;
    s.stop().await;
}

#[tokio::test]
async fn tcp_connections_are_capped_and_must_speak_soon() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start_with(|c| {
        c.turn.stream_connections_per_ip = 2;
        c.turn.stream_handshake_secs = 1;
    })
    .await;
    let a = s.register("ann").await;
    let (_, body) = s.http().get("/api/calls/ice-servers", Some(&a.token)).await;
    let addr = url_addr(&body, "turn:", "?transport=tcp").unwrap();
    let binding = stun_request(stun::message::METHOD_BINDING, vec![]);
    // Two connections that spoke STUN stay open (past the 1 s handshake deadline too).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        c.write_all(&binding).await.unwrap();
        assert_eq!(read_stun(&mut c).await.typ, stun::message::BINDING_SUCCESS);
        held.push(c);
    }
    // A third from the same address is closed without an answer.
    let mut third = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _ = third.write_all(&binding).await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(WAIT, third.read(&mut buf)).await.expect("the server closes it");
    assert!(matches!(read, Ok(0) | Err(_)), "no answer past the cap: {read:?}");
    assert_eq!(gauge(&s, "turn_stream_connections").await, 2, "a refused connection holds no place");
    // With room again, a connection that says nothing is closed after the handshake deadline.
    drop(held.pop());
    until_gauge(&s, "turn_stream_connections", 1).await;
    let mut quiet = tokio::net::TcpStream::connect(&addr).await.unwrap();
    until_gauge(&s, "turn_stream_connections", 2).await;
    assert!(closed_by_server(&mut quiet).await, "a silent connection is closed");
    until_gauge(&s, "turn_stream_connections", 1).await;
    // The one that spoke is still served.
    held[0].write_all(&binding).await.unwrap();
    assert_eq!(read_stun(&mut held[0]).await.typ, stun::message::BINDING_SUCCESS);
    s.stop().await;
}

#[tokio::test]
async fn turn_over_tls_allocates_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der) = self_signed(dir.path());
    let s = TestServer::start_with(|c| {
        c.turn.tls_listen = Some("127.0.0.1:0".parse().unwrap());
        c.turn.tls_cert = Some(cert);
        c.turn.tls_key = Some(key);
        c.turn.public_host = Some("localhost".into());
    })
    .await;
    let a = s.register("ann").await;
    let (_, body) = s.http().get("/api/calls/ice-servers", Some(&a.token)).await;
    let at = url_addr(&body, "turns:localhost:", "?transport=tcp").expect("a turns: URL with the certificate's name");
    let (user, pass) = (body["ice_servers"][0]["username"].as_str().unwrap(), body["ice_servers"][0]["credential"].as_str().unwrap());

    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let client = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(format!("127.0.0.1:{at}")).await.unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio::time::timeout(WAIT, connector.connect(name, tcp)).await.unwrap().expect("the certificate is accepted");
    let (relayed, _, _) = allocate_over(&mut tls, user, pass).await;
    assert!(relayed.ip().is_loopback(), "{relayed}");
    until_gauge(&s, "turn_allocations", 1).await;
    drop(tls);
    until_gauge(&s, "turn_allocations", 0).await;
    s.stop().await;
}

#[tokio::test]
async fn a_tls_setting_that_cannot_work_stops_the_start() {
    let s = TestServer::start_with(|c| {
        c.turn.tls_listen = Some("127.0.0.1:0".parse().unwrap());
        c.turn.tls_cert = Some("/nonexistent/turn-cert.pem".into());
        c.turn.tls_key = Some("/nonexistent/turn-key.pem".into());
    })
    .await;
    let err = tokio::time::timeout(WAIT, s.task).await.unwrap().unwrap().expect_err("the server refuses to start").to_string();
    assert!(err.contains("turn.tls_cert"), "{err}");
    let mut c = chinwag::config::Config::default();
    c.turn.tls_cert = Some("/etc/chinwag/turn.pem".into());
    let err = c.validate().expect_err("a certificate without a key and a port").to_string();
    assert!(err.contains("turn.tls_listen"), "{err}");
}

/// coturn's own test client (`turnutils_uclient`, Debian's `coturn`), or `None` with a loud
/// note when it is missing outside CI. `scripts/test` installs it, so CI always runs this.
fn uclient() -> Option<&'static str> {
    let found = std::process::Command::new("turnutils_uclient").arg("-h").output().is_ok();
    if !found {
        assert!(std::env::var_os("CI").is_none(), "turnutils_uclient is missing in CI: scripts/test installs coturn");
        eprintln!("\n*** SKIPPED: turnutils_uclient not found (apt-get install coturn) — TURN over TCP/TLS interop not tested ***\n");
        return None;
    }
    Some("turnutils_uclient")
}

/// Runs the uclient client to client (two allocations relaying to each other through their
/// relay addresses) and returns (sent, received, lost) from its summary.
async fn uclient_run(flags: &[&str], port: u16, user: &str, pass: &str) -> (u64, u64, u64) {
    let mut cmd = tokio::process::Command::new(uclient().unwrap());
    cmd.args(flags).args(["-y", "-c", "-m", "1", "-n", "40", "-l", "200", "-z", "5", "-u", user, "-w", pass, "-p"]);
    cmd.arg(port.to_string()).arg("127.0.0.1").kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output()).await.expect("the uclient finishes").unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let number_after = |key: &str| -> Option<u64> {
        let at = text.rfind(key)? + key.len();
        text[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
    };
    let counts = (number_after("tot_send_msgs="), number_after("tot_recv_msgs="), number_after("Total lost packets "));
    match counts {
        (Some(sent), Some(received), Some(lost)) => (sent, received, lost),
        _ => panic!("no summary from turnutils_uclient {flags:?}:\n{text}"),
    }
}

#[tokio::test]
async fn coturns_client_relays_over_tcp_and_tls() {
    if uclient().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = self_signed(dir.path());
    let s = TestServer::start_with(|c| {
        c.turn.allow_peers = vec!["127.0.0.1/32".into()];
        c.turn.tls_listen = Some("127.0.0.1:0".parse().unwrap());
        c.turn.tls_cert = Some(cert);
        c.turn.tls_key = Some(key);
    })
    .await;
    let a = s.register("ann").await;
    let (_, body) = s.http().get("/api/calls/ice-servers", Some(&a.token)).await;
    let port = |prefix, suffix| -> u16 { url_addr(&body, prefix, suffix).unwrap().rsplit_once(':').unwrap().1.parse().unwrap() };
    let (tcp, tls) = (port("turn:", "?transport=tcp"), port("turns:", "?transport=tcp"));
    let (user, pass) = (body["ice_servers"][0]["username"].as_str().unwrap(), body["ice_servers"][0]["credential"].as_str().unwrap());
    let (over_tcp, over_tls) = tokio::join!(uclient_run(&["-t"], tcp, user, pass), uclient_run(&["-t", "-S"], tls, user, pass));
    for (name, (sent, received, lost)) in [("TCP", over_tcp), ("TLS", over_tls)] {
        assert!(sent > 0 && received == sent && lost == 0, "{name}: sent {sent}, received {received}, lost {lost}");
    }
    until_gauge(&s, "turn_allocations", 0).await;
    until_gauge(&s, "turn_stream_connections", 0).await;
    s.stop().await;
}
