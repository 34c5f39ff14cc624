//! Accounts end to end on the real server: registration, login, sessions, profiles, one-time
//! codes, rate limits, and the Origin check.

mod common;

use std::time::Duration;

use common::{Ended, TestServer};
use serde_json::json;

#[tokio::test]
async fn register_login_logout_and_the_documented_shapes() {
    let s = TestServer::start().await;
    let http = s.http();
    let (status, body) =
        http.post("/api/auth/register", None, json!({"username":"Ann","password":"ann-password","nickname":"Ann A."})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["username"], "ann");
    assert_eq!(body["user"]["nickname"], "Ann A.");
    assert_eq!(body["user"]["is_admin"], true, "the first user administers the server");
    let token = body["token"].as_str().unwrap().to_owned();

    let (status, body) = http.post("/api/auth/register", None, json!({"username":"ann","password":"other-password"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("username_taken")));

    let bob = s.register("bob").await;
    let (_, me) = http.get("/api/me", Some(&bob.token)).await;
    assert_eq!(me["is_admin"], false, "only the first user is admin");

    let (status, body) = http.post("/api/auth/login", None, json!({"username":"ANN","password":"ann-password"})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["token"].as_str().unwrap() != token, "each login is a new session");
    assert_eq!(body["user"]["id"], me["id"].as_u64().unwrap() - 1);

    let (status, me) = http.get("/api/me", Some(&token)).await;
    assert_eq!((status, me["username"].as_str()), (200, Some("ann")));

    let (status, _) = http.post("/api/auth/logout", Some(&token), json!({})).await;
    assert_eq!(status, 204);
    let (status, body) = http.get("/api/me", Some(&token)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthenticated")));
    s.stop().await;
}

#[tokio::test]
async fn bad_credentials_look_the_same_for_unknown_users_and_wrong_passwords() {
    let s = TestServer::start().await;
    s.register("carol").await;
    let http = s.http();
    let (s1, b1) = http.post("/api/auth/login", None, json!({"username":"carol","password":"not-her-password"})).await;
    let (s2, b2) = http.post("/api/auth/login", None, json!({"username":"nobody","password":"not-her-password"})).await;
    assert_eq!(s1, 401);
    assert_eq!((s1, &b1), (s2, &b2));
    let (status, body) = http.post("/api/auth/login", None, json!({"username":"carol"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")), "{body}");
    s.stop().await;
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_account_with_retry_after() {
    let s = TestServer::start_with(|c| c.auth.failures_per_account = 3).await;
    s.register("dave").await;
    let http = s.http();
    for _ in 0..3 {
        let (status, _) = http.post("/api/auth/login", None, json!({"username":"dave","password":"wrong-password"})).await;
        assert_eq!(status, 401);
    }
    let resp =
        http.client.post(s.url("/api/auth/login")).json(&json!({"username":"dave","password":"dave-password"})).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 429, "even the right password waits out the window");
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 900, "{retry}");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Another account from the same address is not locked out by dave's failures.
    let erin = s.register("erin").await;
    let (status, _) = http.post("/api/auth/login", None, json!({"username":"erin","password":"erin-password"})).await;
    assert_eq!(status, 200, "{}", erin.name);
    s.stop().await;
}

#[tokio::test]
async fn the_session_cookie_is_httponly_and_works_for_http_and_websocket() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let s = TestServer::start().await;
    let resp =
        s.http().client.post(s.url("/api/auth/register")).json(&json!({"username":"fay","password":"fay-password"})).send().await.unwrap();
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_owned();
    let me: serde_json::Value = s.http().client.get(s.url("/api/me")).header("cookie", &pair).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["username"], "fay");

    let mut req = format!("ws://{}/api/ws", s.addr).into_client_request().unwrap();
    req.headers_mut().insert("cookie", pair.parse().unwrap());
    req.headers_mut().insert("origin", format!("http://{}", s.addr).parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("cookie opens the socket");
    let hello = ws.next().await.unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains("\"hello\""));
    s.stop().await;
}

#[tokio::test]
async fn revoked_tokens_are_refused_and_their_sockets_closed() {
    let s = TestServer::start().await;
    let gus = s.register("gus").await;
    let http = s.http();
    let (_, second) = http.post("/api/auth/login", None, json!({"username":"gus","password":"gus-password"})).await;
    let second = second["token"].as_str().unwrap().to_owned();
    let mut first_ws = s.ws(&gus).await;
    let mut second_ws = s.ws_with(&second, None).await.unwrap();

    // Logging out the first session closes only its socket.
    assert_eq!(http.post("/api/auth/logout", Some(&gus.token), json!({})).await.0, 204);
    assert_eq!(first_ws.until_end(Duration::from_secs(2)).await, Ended::Closed(Some(4001)));
    assert!(s.ws_with(&gus.token, None).await.is_err(), "a revoked token cannot open a socket");
    second_ws.send_json(json!({"type":"ping"})).await;
    assert_eq!(second_ws.next_json().await["type"], "pong");

    // A password change from a third session revokes every other one, the second included.
    let (_, third) = http.post("/api/auth/login", None, json!({"username":"gus","password":"gus-password"})).await;
    let third = third["token"].as_str().unwrap().to_owned();
    let (status, body) =
        http.post("/api/me/password", Some(&third), json!({"old_password":"gus-password","new_password":"new-gus-password"})).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(second_ws.until_end(Duration::from_secs(2)).await, Ended::Closed(Some(4001)));
    assert_eq!(http.get("/api/me", Some(&second)).await.0, 401);
    assert_eq!(http.get("/api/me", Some(&third)).await.0, 200, "the session that changed it stays");
    assert_eq!(http.post("/api/auth/login", None, json!({"username":"gus","password":"gus-password"})).await.0, 401);
    assert_eq!(http.post("/api/auth/login", None, json!({"username":"gus","password":"new-gus-password"})).await.0, 200);
    s.stop().await;
}

#[tokio::test]
async fn profiles_update_only_their_own_fields() {
    let s = TestServer::start().await;
    let hal = s.register("hal").await;
    let ida = s.register("ida").await;
    let http = s.http();
    let patch = |body| http.send(reqwest::Method::PATCH, "/api/me", Some(&ida.token), body);
    let (status, me) =
        patch(json!({"nickname":"Ida 艾达","signature":"hi","gender":"female","birthday":"1990-05-17","email":"Ida@Example.org"})).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        (me["nickname"].as_str(), me["birthday"].as_str(), me["email"].as_str()),
        (Some("Ida 艾达"), Some("1990-05-17"), Some("ida@example.org"))
    );
    for bad in
        [json!({"is_admin":true}), json!({"id":1}), json!({"role":"admin"}), json!({"birthday":"1990-13-01"}), json!({"nickname":""})]
    {
        let (status, body) = patch(bad.clone()).await;
        assert_eq!(status, 400, "{bad} -> {body}");
    }
    let (_, me) = http.get("/api/me", Some(&ida.token)).await;
    assert_eq!(me["is_admin"], false);
    // Others see the public view only, and can log in with the e-mail now.
    let (_, seen) = http.get(&format!("/api/users/{}", ida.id), Some(&hal.token)).await;
    assert_eq!(seen["nickname"], "Ida 艾达");
    assert!(seen.get("email").is_none(), "{seen}");
    assert_eq!(http.post("/api/auth/login", None, json!({"username":"ida@example.org","password":"ida-password"})).await.0, 200);
    // hal cannot take ida's address.
    let (status, body) = http.send(reqwest::Method::PATCH, "/api/me", Some(&hal.token), json!({"email":"ida@example.org"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("email_taken")));
    let (_, found) = http.get("/api/users?q=ida", Some(&hal.token)).await;
    assert_eq!(found["users"][0]["id"], ida.id);
    assert_eq!(http.get("/api/users?q=ida", None).await.0, 401);
    s.stop().await;
}

#[tokio::test]
async fn one_time_codes_reach_a_webhook_and_log_in_once() {
    use axum::{Json, Router, routing::post};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    let hook = Router::new().route(
        "/hook",
        post(move |Json(v): Json<serde_json::Value>| {
            let tx = tx.clone();
            async move {
                tx.send(v).unwrap();
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });

    let s = TestServer::start_with(|c| {
        c.auth.otp_sender = chinwag::config::OtpSender::Webhook;
        c.auth.otp_webhook_url = Some(format!("http://{hook_addr}/hook"));
        // The webhook goes through the outbound policy: loopback must be opened.
        c.auth.otp_webhook_allow = vec!["127.0.0.1/32".into()];
    })
    .await;
    let http = s.http();
    assert_eq!(http.get("/api/auth/options", None).await.1["otp_login"], true);
    let (st, _) =
        http.post("/api/auth/register", None, json!({"username":"joe","password":"joe-password","phone":"+44 7700 900123"})).await;
    assert_eq!(st, 201);
    let (status, body) = http.post("/api/auth/otp/request", None, json!({"username":"+447700900123"})).await;
    assert_eq!((status, body["sent"].as_bool()), (202, Some(true)));
    let (status, _) = http.post("/api/auth/otp/request", None, json!({"username":"nobody-here"})).await;
    assert_eq!(status, 202, "unknown accounts get the same answer");
    let sent = tokio::time::timeout(common::WAIT, rx.recv()).await.unwrap().unwrap();
    assert_eq!((sent["to"].as_str(), sent["username"].as_str()), (Some("+447700900123"), Some("joe")));
    let code = sent["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 6);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(http.post("/api/auth/otp/login", None, json!({"username":"joe","code":wrong})).await.0, 401);
    let (status, body) = http.post("/api/auth/otp/login", None, json!({"username":"joe","code":code})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["username"], "joe");
    assert_eq!(http.post("/api/auth/otp/login", None, json!({"username":"joe","code":code})).await.0, 401, "a code works once");
    assert!(rx.try_recv().is_err(), "no code was sent for the unknown account");
    s.stop().await;
}

#[tokio::test]
async fn foreign_origins_are_refused_before_any_effect() {
    let s = TestServer::start().await;
    let kim = s.register("kim").await;
    let err = s.ws_with(&kim.token, Some("https://evil.example")).await.err().expect("refused");
    let tokio_tungstenite::tungstenite::Error::Http(resp) = err else { panic!("expected an HTTP refusal, got {err}") };
    assert_eq!(resp.status().as_u16(), 403);
    assert!(s.ws_with(&kim.token, Some(&format!("http://{}", s.addr))).await.is_ok(), "the server's own origin is fine");

    let resp = s
        .http()
        .client
        .post(s.url("/api/auth/register"))
        .header("origin", "https://evil.example")
        .json(&json!({"username":"mallory","password":"mallory-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let (status, _) = s.http().post("/api/auth/login", None, json!({"username":"mallory","password":"mallory-password"})).await;
    assert_eq!(status, 401, "the refused registration created nothing");
    s.stop().await;
}

#[tokio::test]
async fn http_errors_are_json_with_real_status_codes() {
    let s = TestServer::start_with(|c| c.limits.max_body_bytes = 4096).await;
    let http = s.http();
    let (status, body) = http.get("/api/nope", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    let big = "x".repeat(10_000);
    let (status, body) = http.post("/api/auth/register", None, json!({"username":"big","password":big})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("too_large")), "{body}");
    let resp = http.client.post(s.url("/api/auth/login")).body("{}").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 415);
    let resp =
        http.client.post(s.url("/api/auth/login")).header("content-type", "application/json").body("{not json").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    // A path parameter that does not parse gets the same JSON shape (not axum's plain text).
    let ann = s.register("ann").await;
    let (status, body) = http.get("/api/users/-1", Some(&ann.token)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")), "{body}");
    assert_eq!(http.get("/healthz", None).await, (200, serde_json::Value::String("ok".into())));
    s.stop().await;
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let s = TestServer::start().await;
    let (status, doc) = s.http().get("/api/openapi.json", None).await;
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/auth/register",
        "/api/auth/login",
        "/api/auth/logout",
        "/api/auth/otp/request",
        "/api/auth/otp/login",
        "/api/me",
        "/api/me/password",
        "/api/users/{id}",
        "/api/users",
        "/api/conversations",
        "/api/conversations/{id}/messages",
        "/api/ws",
        "/healthz",
    ] {
        assert!(paths.contains_key(p), "missing {p}");
    }
    assert!(doc["paths"]["/api/me"]["patch"].is_object());
    // Every parameter declared "in": "path" must be in the path (query structs once were not).
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "path" {
                    let name = p["name"].as_str().unwrap();
                    assert!(path.contains(&format!("{{{name}}}")), "{method} {path}: path parameter {name} is not in the path");
                }
            }
        }
    }
    // Routes need a session unless they say otherwise, and list the shared extractors' errors.
    assert_eq!(doc["paths"]["/api/me"]["get"]["security"], json!([{"bearer": []}, {"session_cookie": []}]));
    assert!(doc["paths"]["/api/me"]["get"]["responses"]["401"].is_object());
    assert_eq!(doc["paths"]["/api/auth/login"]["post"]["security"], json!([{}]));
    assert!(doc["paths"]["/api/users/{id}"]["get"]["responses"]["400"].is_object());
    assert!(doc["paths"]["/api/auth/login"]["post"]["responses"]["415"].is_object());
    s.stop().await;
}
