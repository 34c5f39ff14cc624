//! Operations: health and readiness, Prometheus metrics (loopback-only on the main port, or on
//! their own address).

mod common;

use common::TestServer;

#[tokio::test]
async fn health_readiness_and_metrics() {
    let s = TestServer::start().await;
    let http = s.http();
    assert_eq!(http.get("/healthz", None).await.0, 200);
    assert_eq!(http.get("/readyz", None).await, (200, serde_json::Value::String("ready".into())));
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let mut ws = s.ws(&ann).await;
    ws.send_text("m", &ann.dm(&bob), "counted").await;
    let resp = http.client.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    for needle in [
        "chinwag_messages 1",
        "chinwag_connections 1",
        "chinwag_online_users 1",
        "chinwag_store_commit_batch_size_count",
        "chinwag_store_commit_seconds_bucket",
        "chinwag_turn_allocations 0",
        "chinwag_turn_bytes_to_peers 0",
        "chinwag_http_request_seconds_count{method=\"POST\",route=\"/api/auth/register\",status=\"201\"} 2",
    ] {
        assert!(text.contains(needle), "{needle} not in:\n{text}");
    }
    s.stop().await;
}

#[tokio::test]
async fn metrics_can_move_to_their_own_address_or_be_turned_off() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let s = TestServer::start_with(|c| c.metrics.listen = Some(port)).await;
    assert_eq!(s.http().get("/metrics", None).await.0, 404, "not on the main port any more");
    let text = reqwest::get(format!("http://{port}/metrics")).await.unwrap().text().await.unwrap();
    assert!(text.contains("chinwag_connections 0"), "{text}");
    s.stop().await;

    let s = TestServer::start_with(|c| c.metrics.enabled = false).await;
    assert_eq!(s.http().get("/metrics", None).await.0, 404);
    s.stop().await;
}

#[tokio::test]
async fn connections_that_never_send_a_request_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start_with(|c| c.limits.header_timeout_secs = 1).await;
    let started = std::time::Instant::now();
    let mut silent = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let mut slow = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    for conn in [&mut silent, &mut slow] {
        let n =
            tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut buf)).await.expect("closed by the server").unwrap_or(0);
        assert_eq!(n, 0, "no answer, just closed");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(s.http().get("/healthz", None).await.0, 200, "others are served as usual");
    s.stop().await;
}
