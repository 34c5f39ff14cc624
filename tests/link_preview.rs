//! Link previews end to end, against a web site of our own on 127.0.0.1 (opened through
//! `links.allow`): the fields and the stored thumbnail, redirects judged hop by hop, refused
//! addresses, caps, types, deadlines, the cache and shared fetches. Other ranges are refused by
//! the unit tests of `address` and `outbound`, which send no packet.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::{TestServer, User};
use image::DynamicImage;
use serde_json::Value;

type Hits = Arc<Mutex<HashMap<String, u32>>>;

/// A 640 x 400 PNG with a text chunk (which must not survive).
fn png() -> Vec<u8> {
    let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(640, 400, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 77])));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

const PAGE: &str = r#"<!doctype html><html><head><meta charset="utf-8">
<title>Fallback title</title>
<meta property="og:title" content="Fish &amp; Chips">
<meta property="og:description" content="The best   chips
 in town &#8212; crispy.">
<meta property="og:site_name" content="Chippy">
<meta property="og:image" content="/img.png">
</head><body>hello</body></html>"#;

fn html(body: String) -> Response {
    ([("content-type", "text/html; charset=utf-8")], body).into_response()
}

async fn site(State(hits): State<Hits>, Path(path): Path<String>) -> Response {
    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    match path.as_str() {
        "page" | "page2" => html(PAGE.into()),
        "slow" => {
            tokio::time::sleep(Duration::from_millis(400)).await;
            html(PAGE.replace("Fish", "Slow fish"))
        }
        "img.png" => ([("content-type", "image/png")], png()).into_response(),
        // The image is on an address that is not opened: the preview comes without it.
        "private-image" => html(PAGE.replace("/img.png", "http://127.0.0.2/img.png")),
        "r1" => (StatusCode::FOUND, [("location", "/r2")]).into_response(),
        "r2" => (StatusCode::MOVED_PERMANENTLY, [("location", "r3")]).into_response(),
        "r3" => (StatusCode::TEMPORARY_REDIRECT, [("location", "/page2")]).into_response(),
        "loop" => (StatusCode::FOUND, [("location", "/loop")]).into_response(),
        // 8 MiB: the title comes first, the description after the 512 KiB that are read.
        "big" => {
            let mut body = String::from("<html><head><meta property=\"og:title\" content=\"Big page\">");
            body.push_str(&format!("<!--{}-->", "x".repeat(8 * 1024 * 1024)));
            body.push_str("<meta name=\"description\" content=\"Too late\"></head></html>");
            html(body)
        }
        "json" => ([("content-type", "application/json")], "{\"title\":\"no\"}").into_response(),
        "hang" => std::future::pending::<Response>().await,
        "missing" => (StatusCode::NOT_FOUND, [("content-type", "text/html")], "<title>404</title>").into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn to_other(State(hits): State<Hits>, Path(port): Path<u16>) -> Response {
    *hits.lock().unwrap().entry("to-other".into()).or_default() += 1;
    (StatusCode::FOUND, [("location", format!("http://127.0.0.2:{port}/page"))]).into_response()
}

struct Site {
    addr: SocketAddr,
    hits: Hits,
}

impl Site {
    async fn start() -> Site {
        let hits: Hits = Arc::default();
        let app = axum::Router::new()
            .route("/other/{port}", axum::routing::get(to_other))
            .route("/{*path}", axum::routing::get(site))
            .with_state(hits.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Site { addr, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    fn hits(&self, path: &str) -> u32 {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    fn total(&self) -> u32 {
        self.hits.lock().unwrap().values().sum()
    }
}

async fn preview(s: &TestServer, user: &User, url: &str) -> (u16, Value) {
    let q: String = url::form_urlencoded::byte_serialize(url.as_bytes()).collect();
    s.http().get(&format!("/api/link-preview?url={q}"), Some(&user.token)).await
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

async fn opened() -> TestServer {
    TestServer::start_with(|c| {
        c.links.allow = vec!["127.0.0.1/32".into()];
        c.links.fetches_per_minute = 1000;
    })
    .await
}

#[tokio::test]
async fn a_page_becomes_a_preview_with_a_stored_thumbnail_that_any_signed_in_user_can_read() {
    let site = Site::start().await;
    let s = opened().await;
    let (ann, bob) = (s.register("ann").await, s.register("bob").await);
    let url = site.url("page#section");
    let (st, body) = preview(&s, &ann, &url).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["url"], site.url("page"), "the fragment is not part of the URL");
    assert_eq!(body["title"], "Fish & Chips");
    assert_eq!(body["description"], "The best chips in town — crispy.");
    assert_eq!(body["site_name"], "Chippy");
    let image = body["image"].as_str().expect("an image file id").to_owned();
    assert_eq!((site.hits("page"), site.hits("img.png")), (1, 1));

    // The thumbnail is on this server, re-encoded, and readable by another user.
    let resp = reqwest::Client::new().get(s.url(&format!("/api/files/{image}"))).bearer_auth(&bob.token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    let bytes = resp.bytes().await.unwrap();
    let img = image::load_from_memory(&bytes).unwrap();
    assert_eq!((img.width(), img.height()), (320, 200), "a thumbnail, not the 640 x 400 original");
    let (st, _) = s.http().get(&format!("/api/files/{image}/thumb"), Some(&bob.token)).await;
    assert_eq!(st, 200);
    let (st, _) = s.http().get(&format!("/api/files/{image}"), None).await;
    assert_eq!(st, 401, "signed-in users only");

    // A second request, by anyone, is answered from the cache: the site sees nothing.
    let (st, again) = preview(&s, &bob, &site.url("page")).await;
    assert_eq!((st, &again), (200, &body));
    assert_eq!((site.hits("page"), site.hits("img.png")), (1, 1), "a cache hit does not refetch");

    let (st, body) = preview(&s, &ann, &site.url("private-image")).await;
    assert_eq!((st, body["title"].as_str(), &body["image"]), (200, Some("Fish & Chips"), &Value::Null), "{body}");

    let metrics = reqwest::get(s.url("/metrics")).await.unwrap().text().await.unwrap();
    for line in ["chinwag_link_previews_fetched 2", "chinwag_link_previews_cached 1"] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }

    // Nobody can send the preview image as their own file.
    let mut ws = s.ws(&bob).await;
    s.befriend(&ann, &bob).await;
    ws.send_json(
        serde_json::json!({"type": "send", "client_id": "c1", "conv": ann.dm(&bob), "content": {"kind": "image", "file_id": image}}),
    )
    .await;
    let answer = ws.until_client_id("c1").await;
    assert_ne!(answer["type"], "ack", "{answer}");
    s.stop().await;
}

#[tokio::test]
async fn concurrent_requests_for_one_url_share_one_fetch() {
    let site = Site::start().await;
    let s = opened().await;
    let ann = s.register("ann").await;
    let url = site.url("slow");
    let all = futures_util::future::join_all((0..6).map(|_| preview(&s, &ann, &url))).await;
    for (st, body) in &all {
        assert_eq!((*st, body["title"].as_str()), (200, Some("Slow fish & Chips")), "{body}");
    }
    assert_eq!(site.hits("slow"), 1, "one fetch for six requests");
    s.stop().await;
}

#[tokio::test]
async fn redirects_are_followed_three_times_and_each_hop_is_judged() {
    let site = Site::start().await;
    let s = opened().await;
    let ann = s.register("ann").await;
    let (st, body) = preview(&s, &ann, &site.url("r1")).await;
    assert_eq!(st, 200, "three redirects are fine: {body}");
    assert_eq!((body["url"].as_str(), body["title"].as_str()), (Some(site.url("r1").as_str()), Some("Fish & Chips")));
    assert_eq!(site.hits("page2"), 1);

    let (st, body) = preview(&s, &ann, &site.url("loop")).await;
    assert_eq!((st, code(&body)), (422, "too_many_redirects"), "{body}");
    assert_eq!(site.hits("loop"), 4, "the first request and three redirects, no more");

    // A public-looking hop to an address outside the allow-list is refused before any packet.
    let (st, body) = preview(&s, &ann, &site.url(&format!("other/{}", site.addr.port()))).await;
    assert_eq!((st, code(&body)), (400, "url_refused"), "{body}");
    assert_eq!(site.hits("to-other"), 1);
    s.stop().await;
}

#[tokio::test]
async fn only_html_is_read_and_only_its_first_512_kib() {
    let site = Site::start().await;
    let s = opened().await;
    let ann = s.register("ann").await;
    let started = Instant::now();
    let (st, body) = preview(&s, &ann, &site.url("big")).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["title"], "Big page");
    assert!(body["description"].is_null(), "what follows the first 512 KiB is never read: {body}");
    assert!(started.elapsed() < Duration::from_secs(4));

    let (st, body) = preview(&s, &ann, &site.url("json")).await;
    assert_eq!((st, code(&body)), (422, "not_html"), "{body}");
    let (st, body) = preview(&s, &ann, &site.url("missing")).await;
    assert_eq!((st, code(&body)), (502, "unreachable"), "{body}");

    // A site that never answers is given up on after the 5 s deadline.
    let started = Instant::now();
    let (st, body) = preview(&s, &ann, &site.url("hang")).await;
    assert_eq!((st, code(&body)), (502, "unreachable"), "{body}");
    assert!((Duration::from_secs(4)..Duration::from_secs(7)).contains(&started.elapsed()), "{:?}", started.elapsed());

    // Failures are cached for a while: the bad URL is not fetched again.
    let (st, _) = preview(&s, &ann, &site.url("json")).await;
    assert_eq!(st, 422);
    assert_eq!(site.hits("json"), 1);
    s.stop().await;
}

#[tokio::test]
async fn loopback_and_unspecified_addresses_are_refused_without_the_allow_list() {
    let site = Site::start().await;
    let s = TestServer::start_with(|c| c.links.fetches_per_minute = 5).await;
    let ann = s.register("ann").await;
    let port = site.addr.port();
    for url in [
        format!("http://localhost:{port}/page"),
        format!("http://0.0.0.0:{port}/page"),
        format!("http://[::1]:{port}/page"),
        format!("http://[::ffff:127.0.0.1]:{port}/page"),
        format!("http://127.0.0.1:{port}/page"),
        // 127.0.0.1 spelled as one number and in hex: normalized to the URL above, so these are
        // answered from its cached refusal.
        format!("http://2130706433:{port}/page"),
        format!("http://0x7f.1:{port}/page"),
        format!("ftp://127.0.0.1:{port}/page"),
        "file:///etc/passwd".into(),
        "javascript:alert(1)".into(),
    ] {
        let (st, body) = preview(&s, &ann, &url).await;
        assert_eq!((st, code(&body)), (400, "url_refused"), "{url}: {body}");
    }
    assert_eq!(site.total(), 0, "no request reached the site");
    // Five fetch attempts a minute: the sixth new URL waits (schemes refused up front and cache
    // hits do not count).
    let (st, body) = preview(&s, &ann, &format!("http://127.0.0.3:{port}/x")).await;
    assert_eq!((st, code(&body)), (429, "rate_limited"), "{body}");
    let (st, _) = s.http().get("/api/link-preview?url=http%3A%2F%2F127.0.0.1%2F", None).await;
    assert_eq!(st, 401);
    let (_, doc) = s.http().get("/api/openapi.json", None).await;
    assert!(doc["paths"]["/api/link-preview"]["get"].is_object(), "the route is in the OpenAPI document");
    s.stop().await;

    let off = TestServer::start_with(|c| c.links.previews = false).await;
    let ann = off.register("ann").await;
    let (st, body) = preview(&off, &ann, &site.url("page")).await;
    assert_eq!((st, code(&body)), (404, "previews_disabled"), "{body}");
    off.stop().await;
}
