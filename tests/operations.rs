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
