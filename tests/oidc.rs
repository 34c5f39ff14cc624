//! OpenID Connect sign-in against a small provider written here (discovery, JWKS, token
//! endpoint, ES256 ID tokens signed with a test key), so that each test decides what the ID
//! token says: a wrong nonce, an expired token, a wrong signature, another audience. The whole
//! browser flow against a certified provider (`oidc-provider` from npm) is `web/e2e/oidc.mjs`.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use chinwag::config::{Config, OidcProvider};
use common::TestServer;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};
use sha2::Digest as _;

const CLIENT_ID: &str = "chinwag";
const CLIENT_SECRET: &str = "chinwag-secret";

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32].into()).unwrap()
}

/// What the next ID token for a code says, and how it is signed.
#[derive(Clone)]
struct Grant {
    claims: Value,
    key: SigningKey,
    /// The PKCE challenge the authorization request carried, checked at the token endpoint.
    challenge: String,
}

#[derive(Clone, Default)]
struct Provider {
    issuer: String,
    grants: Arc<Mutex<HashMap<String, Grant>>>,
    exchanged: Arc<Mutex<Vec<String>>>,
}

fn sign(claims: &Value, key: &SigningKey) -> String {
    let head = b64(json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}).to_string().as_bytes());
    let body = b64(claims.to_string().as_bytes());
    let input = format!("{head}.{body}");
    let sig: Signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&sig.to_bytes()))
}

async fn discovery(State(p): State<Provider>) -> Json<Value> {
    let i = &p.issuer;
    Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    }))
}

async fn jwks() -> Json<Value> {
    let point = key(1).verifying_key().to_encoded_point(false);
    Json(json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
        "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())}]}))
}

/// A code is good once, with the right verifier and redirect URI.
async fn token(State(p): State<Provider>, Form(f): Form<HashMap<String, String>>) -> (axum::http::StatusCode, Json<Value>) {
    let bad = |e: &str| (axum::http::StatusCode::BAD_REQUEST, Json(json!({"error": e})));
    let code = f.get("code").cloned().unwrap_or_default();
    p.exchanged.lock().unwrap().push(code.clone());
    let Some(grant) = p.grants.lock().unwrap().remove(&code) else { return bad("invalid_grant") };
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    if b64(sha2::Sha256::digest(verifier.as_bytes()).as_slice()) != grant.challenge {
        return bad("invalid_grant");
    }
    if f.get("redirect_uri").map(String::as_str) != Some("http://chat.test/api/auth/oidc/test/callback") {
        return bad("invalid_grant");
    }
    let id_token = sign(&grant.claims, &grant.key);
    (axum::http::StatusCode::OK, Json(json!({"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": id_token})))
}

async fn start_provider() -> Provider {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let p = Provider { issuer: format!("http://{}", listener.local_addr().unwrap()), ..Provider::default() };
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/token", post(token))
        .with_state(p.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    p
}

fn provider_config(issuer: &str) -> OidcProvider {
    OidcProvider {
        id: "test".into(),
        name: "Test ID".into(),
        issuer: issuer.into(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        scopes: vec!["profile".into(), "email".into()],
        admin_claim: Some("groups".into()),
        admin_value: Some("chat-admins".into()),
        allow_hosts: Vec::new(),
    }
}

async fn server(p: &Provider, tweak: impl FnOnce(&mut Config)) -> TestServer {
    let issuer = p.issuer.clone();
    TestServer::start_with(move |c| {
        c.public_url = Some("http://chat.test".into());
        c.auth.oidc = vec![provider_config(&issuer)];
        tweak(c);
    })
    .await
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A login begun in a browser: its state cookie and what the authorization URL carried.
struct Begun {
    state: String,
    nonce: String,
    challenge: String,
}

async fn begin(s: &TestServer) -> Begun {
    let res = no_redirects().get(s.url("/api/auth/oidc/test/start")).send().await.unwrap();
    assert_eq!(res.status(), 302);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    let url = url::Url::parse(&location).unwrap();
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert!(location.contains("/authorize?"), "{location}");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["redirect_uri"], "http://chat.test/api/auth/oidc/test/callback", "built from public_url");
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["scope"].split(' ').any(|s| s == "openid"));
    assert!(cookie.starts_with(&format!("chinwag_oidc={}", q["state"])) && cookie.contains("HttpOnly"), "{cookie}");
    Begun { state: q["state"].clone(), nonce: q["nonce"].clone(), challenge: q["code_challenge"].clone() }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn claims(p: &Provider, b: &Begun, sub: &str) -> Value {
    json!({"iss": p.issuer, "sub": sub, "aud": CLIENT_ID, "exp": now() + 300, "iat": now(), "nonce": b.nonce,
        "preferred_username": "Mei.Lin", "name": "Mei Lin", "email": "mei@example.org", "email_verified": true})
}

/// Calls the callback as the browser would (with or without its state cookie); returns the
/// redirect target and the session token it set, if any.
async fn finish(s: &TestServer, code: &str, state: &str, cookie: Option<&str>) -> (String, Option<String>) {
    let mut req = no_redirects().get(s.url(&format!("/api/auth/oidc/test/callback?code={code}&state={state}")));
    if let Some(c) = cookie {
        req = req.header("cookie", format!("chinwag_oidc={c}"));
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 302);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let session = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("chinwag_session=").map(|t| t.split(';').next().unwrap().to_owned()));
    (location, session)
}

/// One whole login whose ID token has `claims` signed by `signer`.
async fn login_with(
    s: &TestServer,
    p: &Provider,
    code: &str,
    edit: impl FnOnce(&mut Value, &Begun),
    signer: SigningKey,
) -> (String, Option<String>) {
    let b = begin(s).await;
    let mut c = claims(p, &b, "sub-1");
    edit(&mut c, &b);
    p.grants.lock().unwrap().insert(code.into(), Grant { claims: c, key: signer, challenge: b.challenge.clone() });
    finish(s, code, &b.state, Some(&b.state)).await
}

#[tokio::test]
async fn a_provider_login_creates_an_account_starts_a_session_and_shows_in_the_admin_list() {
    let p = start_provider().await;
    let s = server(&p, |_| {}).await;
    let (_, options) = s.http().get("/api/auth/options", None).await;
    assert_eq!(options["oidc"], json!([{"id": "test", "name": "Test ID"}]));
    assert_eq!((options["password_login"].clone(), options["registration"].clone()), (json!(true), json!("open")));

    let admin = s.register("admin1").await;
    let (to, token) = login_with(&s, &p, "c1", |_, _| {}, key(1)).await;
    assert_eq!(to, "/");
    let token = token.expect("a session cookie");
    let (st, me) = s.http().get("/api/me", Some(&token)).await;
    assert_eq!(st, 200);
    assert_eq!(
        (me["username"].as_str(), me["nickname"].as_str(), me["email"].as_str()),
        (Some("mei.lin"), Some("Mei Lin"), Some("mei@example.org"))
    );
    assert_eq!(me["is_admin"], false);

    // The same person again: the same account.
    let (_, again) = login_with(&s, &p, "c2", |_, _| {}, key(1)).await;
    let (_, me2) = s.http().get("/api/me", Some(&again.unwrap())).await;
    assert_eq!(me2["id"], me["id"]);

    // The account has no password: password login fails.
    let (st, _) = s.http().post("/api/auth/login", None, json!({"username": "mei.lin", "password": ""})).await;
    assert_eq!(st, 401);
    let (st, _) = s.http().post("/api/auth/login", None, json!({"username": "mei.lin", "password": "whatever123"})).await;
    assert_eq!(st, 401);

    let (st, page) = s.http().get("/api/admin/users", Some(&admin.token)).await;
    assert_eq!(st, 200);
    let users = page["users"].as_array().unwrap();
    let find = |name: &str| users.iter().find(|u| u["username"] == name).unwrap()["sign_in"].clone();
    assert_eq!(find("mei.lin"), json!([{"kind": "oidc", "provider": "Test ID"}]));
    assert_eq!(find("admin1"), json!([{"kind": "password"}]));
}

#[tokio::test]
async fn the_admin_claim_makes_and_unmakes_an_administrator_at_each_login() {
    let p = start_provider().await;
    let s = server(&p, |_| {}).await;
    let _first = s.register("first").await;
    let with_groups = |g: Value| move |c: &mut Value, _: &Begun| c["groups"] = g;
    let (_, t) = login_with(&s, &p, "a1", with_groups(json!(["staff", "chat-admins"])), key(1)).await;
    assert_eq!(s.http().get("/api/me", Some(&t.unwrap())).await.1["is_admin"], true);
    let (_, t) = login_with(&s, &p, "a2", with_groups(json!(["staff"])), key(1)).await;
    assert_eq!(s.http().get("/api/me", Some(&t.unwrap())).await.1["is_admin"], false);
}

#[tokio::test]
async fn a_bad_missing_or_foreign_state_is_refused() {
    let p = start_provider().await;
    let s = server(&p, |_| {}).await;
    let b = begin(&s).await;
    p.grants.lock().unwrap().insert("code".into(), Grant { claims: claims(&p, &b, "x"), key: key(1), challenge: b.challenge.clone() });
    // A state nobody issued, with a matching cookie.
    assert_eq!(finish(&s, "code", "forged", Some("forged")).await, ("/login?sso_error=bad_state".into(), None));
    // The real state, but from another browser (no cookie, or another login's cookie): a
    // callback URL sent to a victim cannot log them in as someone else.
    assert_eq!(finish(&s, "code", &b.state, None).await, ("/login?sso_error=bad_state".into(), None));
    assert_eq!(finish(&s, "code", &b.state, Some("other")).await, ("/login?sso_error=bad_state".into(), None));
    // No code was sent to the provider for any of those.
    assert!(p.exchanged.lock().unwrap().is_empty());
    // A provider's error ends the login too.
    let b = begin(&s).await;
    let res = no_redirects()
        .get(s.url(&format!("/api/auth/oidc/test/callback?error=access_denied&state={}", b.state)))
        .header("cookie", format!("chinwag_oidc={}", b.state))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "/login?sso_error=access_denied");
    // Unknown providers.
    let res = no_redirects().get(s.url("/api/auth/oidc/nope/start")).send().await.unwrap();
    assert_eq!(res.headers()["location"], "/login?sso_error=unknown_provider");
}

#[tokio::test]
async fn a_replayed_callback_or_code_is_refused() {
    let p = start_provider().await;
    let s = server(&p, |_| {}).await;
    let b = begin(&s).await;
    p.grants.lock().unwrap().insert("once".into(), Grant { claims: claims(&p, &b, "r"), key: key(1), challenge: b.challenge.clone() });
    let (to, token) = finish(&s, "once", &b.state, Some(&b.state)).await;
    assert_eq!((to.as_str(), token.is_some()), ("/", true));
    // The same callback again: the state was used up.
    assert_eq!(finish(&s, "once", &b.state, Some(&b.state)).await, ("/login?sso_error=bad_state".into(), None));
    // The used code with a new state: the provider refuses it, and so does the server.
    let b2 = begin(&s).await;
    assert_eq!(finish(&s, "once", &b2.state, Some(&b2.state)).await, ("/login?sso_error=token_failed".into(), None));
    assert_eq!(p.exchanged.lock().unwrap().as_slice(), ["once", "once"]);
}

#[tokio::test]
async fn id_tokens_with_a_wrong_nonce_audience_issuer_or_signature_or_expired_are_refused() {
    let p = start_provider().await;
    let s = server(&p, |_| {}).await;
    let refused = ("/login?sso_error=invalid_id_token".to_owned(), None);
    assert_eq!(login_with(&s, &p, "n", |c, _| c["nonce"] = json!("another-nonce"), key(1)).await, refused, "wrong nonce");
    assert_eq!(
        login_with(&s, &p, "n2", |c, _| c.as_object_mut().unwrap().remove("nonce").map(drop).unwrap(), key(1)).await,
        refused,
        "no nonce"
    );
    assert_eq!(login_with(&s, &p, "e", |c, _| c["exp"] = json!(now() - 600), key(1)).await, refused, "expired");
    assert_eq!(login_with(&s, &p, "k", |_, _| {}, key(2)).await, refused, "signed with another key");
    assert_eq!(login_with(&s, &p, "a", |c, _| c["aud"] = json!("someone-else"), key(1)).await, refused, "unknown audience");
    assert_eq!(login_with(&s, &p, "i", |c, _| c["iss"] = json!("http://127.0.0.1:1"), key(1)).await, refused, "another issuer");
    // And the same flow with a good token works, so the refusals above are about the token.
    let (to, token) = login_with(&s, &p, "ok", |_, _| {}, key(1)).await;
    assert_eq!((to.as_str(), token.is_some()), ("/", true));
}

#[tokio::test]
async fn a_verified_email_links_to_a_local_account_only_when_the_admin_allows_it() {
    let p = start_provider().await;
    let s = server(&p, |_| {}).await;
    let admin = s.register("boss").await;
    let (st, _) = s.http().patch("/api/me", Some(&admin.token), json!({"email": "mei@example.org"})).await;
    assert_eq!(st, 200);
    // Not allowed: a new account, without the e-mail (it is the admin's).
    let (_, t) = login_with(&s, &p, "l1", |_, _| {}, key(1)).await;
    let (_, me) = s.http().get("/api/me", Some(&t.unwrap())).await;
    assert_ne!(me["id"], admin.id);
    // Allowed, and another subject with the same verified e-mail: the admin's account.
    let (st, _) = s.http().patch("/api/admin/settings", Some(&admin.token), json!({"oidc_link_by_email": true})).await;
    assert_eq!(st, 200);
    let (_, t) = login_with(&s, &p, "l2", |c, _| c["sub"] = json!("sub-2"), key(1)).await;
    assert_eq!(s.http().get("/api/me", Some(&t.unwrap())).await.1["id"], admin.id);
    // An unverified e-mail never links.
    let (_, t) = login_with(
        &s,
        &p,
        "l3",
        |c, _| {
            c["sub"] = json!("sub-3");
            c["email_verified"] = json!(false);
        },
        key(1),
    )
    .await;
    assert_ne!(s.http().get("/api/me", Some(&t.unwrap())).await.1["id"], admin.id);
}

#[tokio::test]
async fn password_login_and_registration_can_be_turned_off_when_sso_is_set_but_admins_keep_theirs() {
    let p = start_provider().await;
    let s = server(&p, |_| {}).await;
    let admin = s.register("root1").await;
    let _user = s.register("plain").await;
    let (st, v) =
        s.http().patch("/api/admin/settings", Some(&admin.token), json!({"password_login": false, "password_registration": false})).await;
    assert_eq!((st, v["password_login"].clone(), v["sso_configured"].clone()), (200, json!(false), json!(true)));
    let (_, o) = s.http().get("/api/auth/options", None).await;
    assert_eq!((o["password_login"].clone(), o["password_registration"].clone()), (json!(false), json!(false)));
    let (st, v) = s.http().post("/api/auth/login", None, json!({"username": "plain", "password": "plain-password"})).await;
    assert_eq!((st, v["error"]["code"].as_str()), (403, Some("password_login_disabled")));
    let (st, _) = s.http().post("/api/auth/login", None, json!({"username": "root1", "password": "root1-password"})).await;
    assert_eq!(st, 200, "an administrator keeps a way in");
    let (st, v) = s.http().post("/api/auth/register", None, json!({"username": "newbie", "password": "password123"})).await;
    assert_eq!((st, v["error"]["code"].as_str()), (403, Some("password_registration_disabled")));
    // Provider logins still create accounts.
    let (to, _) = login_with(&s, &p, "p1", |_, _| {}, key(1)).await;
    assert_eq!(to, "/");

    // Without single sign-on the switches cannot be turned off.
    let plain = TestServer::start().await;
    let root = plain.register("root2").await;
    let (st, _) = plain.http().patch("/api/admin/settings", Some(&root.token), json!({"password_login": false})).await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn an_http_issuer_that_is_not_loopback_stops_the_server_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    let toml = "public_url = \"https://chat.example.org\"\n[[auth.oidc]]\nid = \"corp\"\nname = \"Corp\"\nissuer = \"ISSUER\"\nclient_id = \"c\"\nclient_secret = \"s\"\n";
    let load = |issuer: &str| {
        std::fs::write(&file, toml.replace("ISSUER", issuer)).unwrap();
        Config::load(Some(&file), Vec::new(), &chinwag::config::Overrides::default())
    };
    // What `chinwag serve` does first: load and check the settings.
    for bad in ["http://id.example.org", "http://192.168.1.5:8080", "http://10.0.0.1"] {
        let err = load(bad).unwrap_err().to_string();
        assert!(err.contains("must be an https:// URL (http:// only on a loopback address)"), "{err}");
    }
    let ok = load("http://127.0.0.1:9").unwrap();
    assert!(ok.to_toml_redacted().contains("client_secret = \"<hidden>\""));
    // A configuration that skipped the check is refused by the server itself.
    let mut config = common::test_config(&dir.path().join("data"));
    config.public_url = Some("https://chat.example.org".into());
    config.auth.oidc = vec![provider_config("http://id.example.org")];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = chinwag::run(config, listener, tokio_util::sync::CancellationToken::new()).await.unwrap_err();
    assert!(format!("{err:#}").contains("must be an https:// URL"), "{err:#}");
}

#[tokio::test]
async fn a_server_whose_sso_was_removed_turns_password_sign_in_back_on() {
    let p = start_provider().await;
    let dir = tempfile::tempdir().unwrap();
    let issuer = p.issuer.clone();
    let s = TestServer::start_in(dir.path(), move |c| {
        c.public_url = Some("http://chat.test".into());
        c.auth.oidc = vec![provider_config(&issuer)];
    })
    .await;
    let admin = s.register("keeper").await;
    let _member = s.register("member").await;
    let (st, _) = s.http().patch("/api/admin/settings", Some(&admin.token), json!({"password_login": false})).await;
    assert_eq!(st, 200);
    s.stop().await;
    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let (st, _) = s.http().post("/api/auth/login", None, json!({"username": "member", "password": "member-password"})).await;
    assert_eq!(st, 200, "no single sign-on any more: passwords work again");
    s.stop().await;
}
