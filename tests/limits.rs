//! Resource limits at the edges (S6, R5, R6): oversized and deeply nested frames, a client that
//! never reads, and connections that never make a request. The measured, slow versions
//! (memory, cut-off times, latency) are the load tool's `slow-reader` and `idle` scenarios.

mod common;

use common::{Ended, TestServer, User, WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Opens a WebSocket by hand on a plain TCP stream (so that the test controls every byte it
/// sends afterwards) and reads up to the end of the server's `hello` frame.
async fn raw_socket(s: &TestServer, user: &User) -> TcpStream {
    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    let req = format!(
        "GET /api/ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {}\r\n\r\n",
        s.addr, user.token
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        tcp.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    let (op, payload) = read_frame(&mut tcp).await.expect("hello");
    assert_eq!(op, 1);
    assert!(String::from_utf8_lossy(&payload).contains(r#""type":"hello""#));
    tcp
}

/// One unfragmented server frame (servers do not mask): (opcode, payload); `None` at the end
/// of the stream (or a reset).
async fn read_frame(tcp: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    tcp.read_exact(&mut h).await.ok()?;
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
    Some((h[0] & 0x0f, payload))
}

#[tokio::test]
async fn a_64_mib_frame_is_refused_with_1009_without_being_read() {
    const LEN: u64 = 64 * 1024 * 1024;
    // The default limits: this is what a deployment gets.
    let s = TestServer::start().await;
    let ann = s.register("ann").await;
    let tcp = raw_socket(&s, &ann).await;
    let (mut rd, mut wr) = tcp.into_split();
    // A masked text frame that declares 64 MiB, then its payload in pieces for as long as the
    // server takes them.
    let writer = tokio::spawn(async move {
        let mut head = vec![0x81u8, 0x80 | 127];
        head.extend_from_slice(&LEN.to_be_bytes());
        head.extend_from_slice(&[1, 2, 3, 4]);
        if wr.write_all(&head).await.is_err() {
            return 0u64;
        }
        let chunk = vec![b'a' ^ 1; 64 * 1024];
        let mut sent = 0u64;
        while sent < LEN {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len() as u64;
        }
        sent
    });
    let mut close = None;
    loop {
        let mut h = [0u8; 2];
        if tokio::time::timeout(WAIT, rd.read_exact(&mut h)).await.expect("the server answers in time").is_err() {
            break;
        }
        let len = usize::from(h[1] & 0x7f);
        assert!(len < 126, "control frames are short");
        let mut payload = vec![0u8; len];
        rd.read_exact(&mut payload).await.unwrap();
        if h[0] & 0x0f == 8 {
            close = Some(u16::from_be_bytes([payload[0], payload[1]]));
            break;
        }
    }
    assert_eq!(close, Some(1009), "a close frame with 1009 arrives");
    drop(rd);
    let sent = tokio::time::timeout(WAIT, writer).await.expect("the writer gives up once the server is gone").unwrap();
    assert!(sent < LEN, "the server stopped taking the frame after {sent} bytes: it did not read 64 MiB");
    // The server is unharmed.
    let bob = s.register("bob").await;
    let mut ws = s.ws(&ann).await;
    assert_eq!(ws.send_text("after", &ann.dm(&bob), "still here").await["type"], "ack");
    s.stop().await;
}

#[tokio::test]
async fn json_nested_10000_deep_is_refused_and_the_socket_goes_on() {
    let s = TestServer::start().await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let conv = ann.dm(&bob);
    let mut ws = s.ws(&ann).await;
    let deep_arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_objects = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    let frames = [
        // Inside an otherwise valid send, where the content is parsed.
        format!(r#"{{"type":"send","client_id":"n1","conv":"{conv}","content":{{"kind":"text","text":"hi","extra":{deep_arrays}}}}}"#),
        format!(r#"{{"type":"send","client_id":"n2","conv":"{conv}","content":{deep_objects}}}"#),
        format!(r#"{{"type":"sync","cursors":{deep_objects}}}"#),
        deep_objects.clone(),
    ];
    for f in &frames {
        assert!(f.len() < 64 * 1024, "within the frame limit: the nesting is what is tested");
        ws.stream.send(WsMessage::Text(f.as_str().into())).await.unwrap();
        let v = ws.next_json().await;
        assert_eq!((v["type"].as_str(), v["code"].as_str()), (Some("error"), Some("bad_frame")), "{v}");
    }
    // Nothing of it was stored, and the socket still works.
    let ack = ws.send_text("ok", &conv, "fine").await;
    assert_eq!((ack["type"].as_str(), ack["message"]["seq"].as_u64()), (Some("ack"), Some(1)), "{ack}");

    // The same nesting in an HTTP body is a 400, not a crash or a 500.
    let body = format!(r#"{{"nickname":{deep_arrays}}}"#);
    let resp = s
        .http()
        .client
        .patch(s.url("/api/me"))
        .bearer_auth(&ann.token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(s.http().get("/healthz", None).await.0, 200);
    s.stop().await;
}

/// A gauge from `/metrics` (served on the main port to loopback clients).
async fn metric(s: &TestServer, name: &str) -> u64 {
    let text = s.http().client.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("{name} in {text}")) as u64
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_and_resyncs_while_others_keep_up() {
    let s = TestServer::start_with(|c| {
        c.limits.outbound_queue = 8;
        c.limits.write_timeout_secs = 1;
    })
    .await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let conv = ann.dm(&bob);
    let mut stalled = s.ws(&bob).await;
    let mut reader = s.ws(&bob).await;
    let mut ann_ws = s.ws(&ann).await;
    assert_eq!(metric(&s, "chinwag_connections").await, 3);
    let text = "z".repeat(7_000);
    // Send until the server has let go of the stalled device: its kernel buffers take some
    // megabytes first, so the count depends on the machine; the cap is far beyond that.
    let mut sent = 0u64;
    while metric(&s, "chinwag_connections").await == 3 {
        for _ in 0..50 {
            sent += 1;
            let ack = ann_ws.send_text(&format!("s{sent}"), &conv, &text).await;
            assert_eq!(ack["message"]["seq"].as_u64(), Some(sent), "{ack}");
            // The device that reads keeps getting every message, in order.
            let got = reader.next_of("message").await;
            assert_eq!(got["message"]["seq"].as_u64(), Some(sent));
        }
        assert!(sent < 20_000, "the stalled device was never cut off");
    }
    assert_eq!(metric(&s, "chinwag_connections").await, 2, "only the stalled device is gone");

    // What the stalled device had buffered, then the end.
    let mut last_seen = 0;
    let ended = loop {
        match tokio::time::timeout(WAIT, stalled.stream.next()).await.expect("ends") {
            Some(Ok(WsMessage::Text(t))) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "message" {
                    let seq = v["message"]["seq"].as_u64().unwrap();
                    assert_eq!(seq, last_seen + 1, "frames before the cut are in order, without holes");
                    last_seen = seq;
                }
            }
            Some(Ok(WsMessage::Close(f))) => break Ended::Closed(f.map(|f| u16::from(f.code))),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break Ended::Dropped,
        }
    };
    assert!(matches!(ended, Ended::Dropped | Ended::Closed(Some(4008))), "{ended:?}");
    assert!(last_seen < sent, "it was cut off before the end ({last_seen} of {sent})");

    // It reconnects and syncs from what it saw. A sync carries at most the newest 100 messages
    // of a conversation and names what it left out in `gaps`; the client pages the history for
    // those (or for everything after its cursor when the conversation is named in `reload`).
    let mut back = s.ws(&bob).await;
    back.send_json(json!({"type":"sync","cursors":{conv.clone(): last_seen}})).await;
    let frames = back.until("synced").await;
    let synced = frames.last().unwrap();
    let mut have: Vec<u64> = frames.iter().filter(|f| f["type"] == "message").map(|f| f["message"]["seq"].as_u64().unwrap()).collect();
    assert!(have.len() <= 100, "a sync carries at most 100 messages of a conversation");
    // `reload` and `gaps` are left out when empty.
    let (after, before) = if synced["reload"].as_array().is_some_and(|r| r.iter().any(|c| c == &json!(conv))) {
        have.clear();
        (last_seen, u64::MAX)
    } else if sent - last_seen > 100 {
        let gaps = synced["gaps"].as_array().unwrap_or_else(|| panic!("more than 100 missed, so a gap: {synced}"));
        assert_eq!(gaps.len(), 1, "{synced}");
        assert_eq!(gaps[0], json!({"conv": conv, "after": last_seen, "before": have[0]}), "the gap is exactly what was left out");
        (last_seen, have[0])
    } else {
        assert!(synced.get("gaps").is_none(), "no gap when everything fit: {synced}");
        assert_eq!(have.first(), Some(&(last_seen + 1)));
        (0, 0)
    };
    let mut paged = Vec::new();
    let mut after = after;
    while after + 1 < before {
        let upto = if before == u64::MAX { String::new() } else { format!("&before={before}") };
        let (st, page) = s.http().get(&format!("/api/conversations/{conv}/messages?after={after}{upto}&limit=100"), Some(&bob.token)).await;
        assert_eq!(st, 200, "{page}");
        let seqs: Vec<u64> = page["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        paged.extend(seqs.iter().copied());
        match seqs.last() {
            Some(l) if page["has_more"] == true => after = *l,
            _ => break,
        }
    }
    paged.extend(have);
    let have = paged;
    assert_eq!(have, (last_seen + 1..=sent).collect::<Vec<_>>(), "after the resync it has every message");
    assert_eq!(metric(&s, "chinwag_slow_clients_dropped").await, 1);
    s.stop().await;
}

#[tokio::test]
async fn idle_and_half_sent_connections_are_closed_after_the_header_deadline() {
    let s = TestServer::start_with(|c| c.limits.header_timeout_secs = 1).await;
    // A connection that made one request and then keeps the connection open without another:
    // it must not hold its slot (and a file descriptor) forever.
    let mut kept = TcpStream::connect(s.addr).await.unwrap();
    kept.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", s.addr).as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    // A WebSocket upgrade whose request head never ends.
    let mut half = TcpStream::connect(s.addr).await.unwrap();
    half.write_all(b"GET /api/ws HTTP/1.1\r\nUpgrade: websocket\r\n").await.unwrap();
    for conn in [&mut kept, &mut half] {
        let n = tokio::time::timeout(WAIT, conn.read(&mut buf)).await.expect("closed by the server in time").unwrap_or(0);
        assert_eq!(n, 0, "closed without an answer");
    }
    assert_eq!(s.http().get("/healthz", None).await.0, 200);
    s.stop().await;
}
