//! OpenID Connect sign-in: the authorization code flow with PKCE (S256), `state` and `nonce`,
//! and the ID token checked against the provider's keys (signature, `iss`, `aud`, `exp`,
//! `nonce`) by the `openidconnect` crate.
//!
//! Architecture invariant: nothing a user sends steers the server's requests. The redirect URI
//! is built from `public_url`; the provider's documents come from the configured issuer's
//! discovery and only from the issuer's own origin (or hosts the administrator listed in
//! `allow_hosts`), through the one outbound client (`crate::outbound`), which follows no
//! redirects. The issuer's host may be on the LAN (the administrator chose it); every other
//! host must be public. A login in progress lives only in memory: short-lived, single use, a
//! bounded number of them, and tied to the browser that started it by a cookie.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata};
use openidconnect::{
    AsyncHttpClient, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest,
    HttpResponse, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse as _,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Accounts;
use crate::address::AddressPolicy;
use crate::config::{Config, OidcProvider, check_issuer};
use crate::http::ApiPath;
use crate::http::ratelimit::Limiter;
use crate::outbound::{Outbound, OutboundError};
use crate::store::Store;
use crate::store::oidc::{OidcIdentity, OidcLogin};

/// The cookie that ties a login in progress to the browser that started it.
const STATE_COOKIE: &str = "chinwag_oidc";
/// How long a login may take at the provider.
const PENDING_TTL: Duration = Duration::from_secs(600);
/// Logins in progress held at once; more are refused until some finish or expire.
const MAX_PENDING: usize = 10_000;
/// How long a provider's discovery document and keys are used before they are fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(900);
/// The largest answer read from a provider.
const MAX_ANSWER: usize = 256 * 1024;

/// ID token signatures accepted: public-key algorithms only, checked with the provider's JWKS
/// (never the client secret, never `none`).
const SIGNING_ALGS: [CoreJwsSigningAlgorithm; 5] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

type Client = CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// A provider as `GET /api/auth/options` lists it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ProviderOption {
    pub id: String,
    pub name: String,
}

/// The HTTP client the `openidconnect` crate sends its requests with: the issuer's origin (any
/// address) and the listed extra hosts (public addresses only), nothing else.
#[derive(Clone)]
struct ProviderHttp {
    issuer: url::Url,
    allow_hosts: Vec<String>,
    /// For the issuer's own origin, which the administrator chose (it may be on the LAN).
    trusted: Outbound,
    /// For the extra hosts: public addresses only.
    public: Outbound,
}

impl ProviderHttp {
    fn new(p: &OidcProvider, issuer: url::Url) -> ProviderHttp {
        let timeout = Duration::from_secs(10);
        let everywhere =
            AddressPolicy::parse("oidc", &["0.0.0.0/0".into(), "::/0".into()]).unwrap_or_else(|_| AddressPolicy::new(Vec::new()));
        ProviderHttp {
            trusted: Outbound::new(everywhere, issuer.scheme() == "http", timeout),
            public: Outbound::new(AddressPolicy::new(Vec::new()), false, timeout),
            allow_hosts: p.allow_hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            issuer,
        }
    }

    /// Which client may fetch `url`, or why none may.
    fn client_for(&self, url: &str) -> Result<&Outbound, OutboundError> {
        let u = url::Url::parse(url).map_err(|_| OutboundError::Refused("not a URL".into()))?;
        if u.origin() == self.issuer.origin() {
            return Ok(&self.trusted);
        }
        let host = u.host_str().unwrap_or("").to_ascii_lowercase();
        if u.scheme() == "https" && self.allow_hosts.contains(&host) {
            return Ok(&self.public);
        }
        Err(OutboundError::Refused(format!("{host} is neither the issuer's host nor listed in allow_hosts")))
    }

    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, OutboundError> {
        let url = req.uri().to_string();
        let out = self.client_for(&url)?;
        let target = out.check_url(&url)?;
        let answer = out.send(&target, req, MAX_ANSWER).await?;
        // Content types are not passed on: the crate accepts an answer without one and parses
        // the body as JSON whatever it is labelled.
        http::Response::builder().status(answer.status).body(answer.body.to_vec()).map_err(|e| OutboundError::Failed(e.to_string()))
    }
}

impl<'c> AsyncHttpClient<'c> for ProviderHttp {
    type Error = OutboundError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, OutboundError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

struct Provider {
    config: OidcProvider,
    http: ProviderHttp,
    redirect: RedirectUrl,
    /// The client built from the last discovery, and when it was built. Held across the fetch
    /// so that one discovery runs at a time per provider.
    client: tokio::sync::Mutex<Option<(Instant, Arc<Client>)>>,
}

impl Provider {
    async fn client(&self, fresh: bool) -> Result<Arc<Client>, String> {
        let mut cached = self.client.lock().await;
        if let Some((at, c)) = cached.as_ref()
            && at.elapsed() < if fresh { Duration::from_secs(60) } else { DISCOVERY_TTL }
        {
            return Ok(c.clone());
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone()).map_err(|e| e.to_string())?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http).await.map_err(|e| describe(&e))?;
        let client = Arc::new(
            CoreClient::from_provider_metadata(
                metadata,
                ClientId::new(self.config.client_id.clone()),
                Some(ClientSecret::new(self.config.client_secret.clone())),
            )
            .set_redirect_uri(self.redirect.clone()),
        );
        *cached = Some((Instant::now(), client.clone()));
        Ok(client)
    }
}

/// An error with its sources, for the log.
fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

struct Pending {
    provider: usize,
    verifier: String,
    nonce: String,
    expires: Instant,
}

/// The OpenID Connect service: the configured providers and the logins in progress.
pub struct Oidc {
    providers: Vec<Provider>,
    pending: Mutex<HashMap<String, Pending>>,
    /// Logins started per client address in ten minutes (loopback, a reverse proxy, is exempt).
    starts_by_ip: Limiter,
    cookie_secure: bool,
}

impl Oidc {
    /// # Errors
    /// When a provider's issuer or the public URL is not usable (also checked when the
    /// configuration is loaded).
    pub fn new(config: &Config) -> anyhow::Result<Arc<Oidc>> {
        let mut providers = Vec::new();
        for p in &config.auth.oidc {
            let issuer = check_issuer(&p.issuer).map_err(|e| anyhow::anyhow!("auth.oidc `{}`: {e}", p.id))?;
            let base = config.public_url.as_deref().ok_or_else(|| anyhow::anyhow!("auth.oidc needs public_url"))?;
            let redirect = RedirectUrl::new(format!("{base}/api/auth/oidc/{}/callback", p.id))?;
            providers.push(Provider {
                http: ProviderHttp::new(p, issuer),
                config: p.clone(),
                redirect,
                client: tokio::sync::Mutex::new(None),
            });
        }
        Ok(Arc::new(Oidc {
            providers,
            pending: Mutex::new(HashMap::new()),
            starts_by_ip: Limiter::new(120, Duration::from_secs(600)),
            cookie_secure: config.auth.cookie_secure,
        }))
    }

    pub fn options(&self) -> Vec<ProviderOption> {
        self.providers.iter().map(|p| ProviderOption { id: p.config.id.clone(), name: p.config.name.clone() }).collect()
    }

    fn provider(&self, id: &str) -> Option<(usize, &Provider)> {
        self.providers.iter().enumerate().find(|(_, p)| p.config.id == id)
    }

    /// Keeps a login in progress, or refuses when too many are.
    fn remember(&self, state: String, p: Pending) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if pending.len() >= MAX_PENDING {
            let now = Instant::now();
            pending.retain(|_, v| v.expires > now);
            if pending.len() >= MAX_PENDING {
                return false;
            }
        }
        pending.insert(state, p);
        true
    }

    /// Takes a login in progress out (each state is used once), if it has not expired.
    fn take(&self, state: &str) -> Option<Pending> {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        pending.remove(state).filter(|p| p.expires > Instant::now())
    }
}

/// A redirect to the login page with an error code the page explains.
fn fail(code: &'static str) -> Response {
    redirect(&format!("/login?sso_error={code}"), HeaderMap::new())
}

fn redirect(to: &str, mut headers: HeaderMap) -> Response {
    if let Ok(v) = HeaderValue::from_str(to) {
        headers.insert(header::LOCATION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (StatusCode::FOUND, headers).into_response()
}

fn state_cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{STATE_COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/api/auth/oidc/; Max-Age={max_age}{secure}"))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[utoipa::path(get, path = "/api/auth/oidc/{id}/start", tag = "accounts", security(()), params(("id" = String, Path, description = "the provider's `id` from the configuration")),
    responses((status = 302, description = "to the provider's login page (PKCE S256, `state`, `nonce`); on an error, to `/login?sso_error=CODE`")))]
pub async fn start(State(oidc): State<Arc<Oidc>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, ApiPath(id): ApiPath<String>) -> Response {
    let Some((index, provider)) = oidc.provider(&id) else { return fail("unknown_provider") };
    // Loopback is a reverse proxy, whose clients all share its address (the bounded number of
    // logins in progress still holds there).
    let ip: IpAddr = peer.ip().to_canonical();
    if !ip.is_loopback() && oidc.starts_by_ip.take(&ip.to_string(), Instant::now()).is_err() {
        return fail("rate_limited");
    }
    let client = match provider.client(false).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(provider = %id, error = %e, "OpenID Connect discovery failed");
            return fail("provider_unreachable");
        }
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random);
    for s in &provider.config.scopes {
        request = request.add_scope(Scope::new(s.clone()));
    }
    let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
    let pending = Pending {
        provider: index,
        verifier: verifier.secret().clone(),
        nonce: nonce.secret().clone(),
        expires: Instant::now() + PENDING_TTL,
    };
    if !oidc.remember(state.secret().clone(), pending) {
        return fail("too_many_logins");
    }
    let mut headers = HeaderMap::new();
    headers.insert(header::SET_COOKIE, state_cookie(state.secret(), PENDING_TTL.as_secs(), oidc.cookie_secure));
    redirect(url.as_str(), headers)
}

/// What the provider sends back (other parameters, such as `iss` or `session_state`, are ignored).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    /// Set by the provider when the login did not happen (`access_denied`, ...).
    pub error: Option<String>,
}

#[utoipa::path(get, path = "/api/auth/oidc/{id}/callback", tag = "accounts", security(()), params(("id" = String, Path), CallbackQuery),
    responses((status = 302, description = "into the app with the session cookie set, or to `/login?sso_error=CODE`: `bad_state`, `provider_error`, `token_failed`, `invalid_id_token`, `account_disabled`, ...")))]
pub async fn callback(
    State(oidc): State<Arc<Oidc>>,
    State(accounts): State<Arc<Accounts>>,
    State(store): State<Store>,
    State(config): State<Arc<Config>>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else { return fail("bad_state") };
    let Some((index, provider)) = oidc.provider(&id) else { return fail("unknown_provider") };
    let Some(state) = q.state.filter(|s| (1..=512).contains(&s.len())) else { return fail("bad_state") };
    // The state must be this browser's: a callback URL made by someone else is refused.
    let same_browser =
        cookie_value(&headers, STATE_COOKIE).is_some_and(|c| subtle::ConstantTimeEq::ct_eq(c.as_bytes(), state.as_bytes()).into());
    if !same_browser {
        return fail("bad_state");
    }
    let Some(pending) = oidc.take(&state).filter(|p| p.provider == index) else { return fail("bad_state") };
    if let Some(e) = q.error {
        tracing::info!(provider = %id, error = %e.chars().take(64).collect::<String>(), "the provider did not sign the user in");
        return fail(if e == "access_denied" { "access_denied" } else { "provider_error" });
    }
    let Some(code) = q.code.filter(|c| (1..=4096).contains(&c.len())) else { return fail("provider_error") };
    match finish(&oidc, provider, pending, code, &accounts, &store, &config).await {
        Ok(session_cookie) => {
            let mut headers = HeaderMap::new();
            headers.append(header::SET_COOKIE, session_cookie);
            headers.append(header::SET_COOKIE, state_cookie("", 0, oidc.cookie_secure));
            redirect("/", headers)
        }
        Err(code) => fail(code),
    }
}

/// Exchanges the code, checks the ID token, finds or makes the account and starts a session;
/// returns the session cookie, or the error code for the login page.
async fn finish(
    _oidc: &Oidc,
    provider: &Provider,
    pending: Pending,
    code: String,
    accounts: &Accounts,
    store: &Store,
    config: &Config,
) -> Result<HeaderValue, &'static str> {
    let id = &provider.config.id;
    let client = provider.client(false).await.map_err(|e| {
        tracing::warn!(provider = %id, error = %e, "OpenID Connect discovery failed");
        "provider_unreachable"
    })?;
    let request = client.exchange_code(AuthorizationCode::new(code)).map_err(|_| "provider_error")?;
    let token = request.set_pkce_verifier(PkceCodeVerifier::new(pending.verifier)).request_async(&provider.http).await.map_err(|e| {
        tracing::warn!(provider = %id, error = %describe(&e), "OpenID Connect code exchange failed");
        "token_failed"
    })?;
    let Some(id_token) = token.id_token() else { return Err("invalid_id_token") };
    let nonce = Nonce::new(pending.nonce);
    let verify = |c: &Client| id_token.claims(&c.id_token_verifier().set_allowed_algs(SIGNING_ALGS), &nonce).cloned();
    let mut verified = verify(&client);
    if verified.is_err() {
        // The provider may have rotated its keys since the last discovery: fetch them again
        // (at most once a minute) and check once more.
        if let Ok(fresh) = provider.client(true).await {
            verified = verify(&fresh);
        }
    }
    let claims = verified.map_err(|e| {
        tracing::warn!(provider = %id, error = %describe(&e), "an ID token was refused");
        "invalid_id_token"
    })?;
    let email = claims.email().map(|e| e.as_str().trim().to_lowercase()).filter(|e| e.len() <= 254 && e.contains('@'));
    let identity = OidcIdentity {
        issuer: claims.issuer().as_str().to_owned(),
        subject: claims.subject().as_str().to_owned(),
        preferred_username: claims.preferred_username().map(|u| u.as_str().to_owned()),
        name: claims.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_owned()),
        verified_email: email.filter(|_| claims.email_verified() == Some(true)),
        admin: admin_from(&provider.config, &id_token.to_string()),
    };
    if identity.subject.is_empty() || identity.subject.len() > 255 {
        return Err("invalid_id_token");
    }
    let outcome = store.oidc_login(identity, config.auth.oidc_link_by_email).await.map_err(|e| {
        tracing::error!(error = %e, "OpenID Connect login: the store failed");
        "server_error"
    })?;
    let user = match outcome {
        OidcLogin::Disabled => return Err("account_disabled"),
        OidcLogin::Created(u) => {
            tracing::info!(user = %u.id, username = %u.username, provider = %id, "account created at a first OpenID Connect login");
            u
        }
        OidcLogin::LinkedByEmail(u) => {
            tracing::info!(user = %u.id, provider = %id, "OpenID Connect identity linked to a local account by its verified e-mail");
            u
        }
        OidcLogin::Linked(u) => u,
    };
    let (_, cookie) = super::routes::new_session(accounts, store, &user).await.map_err(|_| "server_error")?;
    tracing::info!(user = %user.id, provider = %id, "signed in with OpenID Connect");
    Ok(cookie)
}

/// Whether the (already verified) ID token says administrator: `admin_claim` equals
/// `admin_value`, or is a list that contains it. `None` when the provider has no such rule.
fn admin_from(p: &OidcProvider, jwt: &str) -> Option<bool> {
    let (claim, value) = (p.admin_claim.as_ref()?, p.admin_value.as_ref()?);
    let payload = jwt.split('.').nth(1).and_then(|b| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b).ok());
    let claims: serde_json::Value = payload.and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let matches = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s == value,
        serde_json::Value::Bool(b) => b.to_string() == *value,
        serde_json::Value::Number(n) => n.to_string() == *value,
        _ => false,
    };
    Some(match claims.get(claim) {
        Some(serde_json::Value::Array(items)) => items.iter().any(matches),
        Some(v) => matches(v),
        None => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(issuer: &str, allow_hosts: &[&str]) -> ProviderHttp {
        let p = OidcProvider {
            id: "t".into(),
            name: "T".into(),
            issuer: issuer.into(),
            client_id: "c".into(),
            client_secret: "s".into(),
            scopes: Vec::new(),
            admin_claim: Some("groups".into()),
            admin_value: Some("admins".into()),
            allow_hosts: allow_hosts.iter().map(|s| (*s).to_owned()).collect(),
        };
        ProviderHttp::new(&p, check_issuer(issuer).unwrap())
    }

    /// No packet: the URL is judged before any lookup or connection.
    #[test]
    fn only_the_issuers_origin_and_listed_https_hosts_may_be_fetched() {
        let h = provider("https://id.example.org/realms/team", &["keys.example.net"]);
        assert!(h.client_for("https://id.example.org/realms/team/.well-known/openid-configuration").is_ok());
        assert!(h.client_for("https://id.example.org/other/jwks").is_ok(), "any path on the issuer's origin");
        assert!(h.client_for("https://keys.example.net/jwks").is_ok());
        for bad in [
            "http://id.example.org/jwks",
            "https://id.example.org:8443/jwks",
            "https://evil.example.org/jwks",
            "http://keys.example.net/jwks",
            "http://169.254.169.254/latest/meta-data",
            "https://10.0.0.1/",
            "not a url",
        ] {
            assert!(matches!(h.client_for(bad), Err(OutboundError::Refused(_))), "{bad}");
        }
    }

    /// No packet: a listed extra host that resolves to a private address is refused.
    #[tokio::test]
    async fn extra_hosts_must_be_on_public_addresses() {
        let h = provider("https://id.example.org", &["10.1.2.3", "192.168.1.1", "169.254.169.254"]);
        for url in ["https://10.1.2.3/jwks", "https://192.168.1.1/jwks", "https://169.254.169.254/jwks"] {
            let out = h.client_for(url).unwrap();
            let t = out.check_url(url).unwrap();
            assert!(matches!(out.resolve(&t).await, Err(OutboundError::Refused(_))), "{url}");
        }
    }

    #[test]
    fn issuers_are_https_or_http_on_loopback_only() {
        for ok in ["https://id.example.org", "http://127.0.0.1:9000", "http://[::1]:9000/x", "http://localhost:1"] {
            assert!(check_issuer(ok).is_ok(), "{ok}");
        }
        for bad in
            ["http://id.example.org", "http://192.168.1.5", "http://10.0.0.1:8080", "ftp://x", "https://u:p@x.org", "https://x.org/?q=1"]
        {
            assert!(check_issuer(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_admin_claim_matches_a_value_or_a_list_member() {
        let p = OidcProvider {
            id: "t".into(),
            name: "T".into(),
            issuer: "https://x.org".into(),
            client_id: "c".into(),
            client_secret: "s".into(),
            scopes: Vec::new(),
            admin_claim: Some("groups".into()),
            admin_value: Some("admins".into()),
            allow_hosts: Vec::new(),
        };
        let jwt =
            |claims: serde_json::Value| format!("e30.{}.sig", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string()));
        assert_eq!(admin_from(&p, &jwt(serde_json::json!({"groups": ["staff", "admins"]}))), Some(true));
        assert_eq!(admin_from(&p, &jwt(serde_json::json!({"groups": "admins"}))), Some(true));
        assert_eq!(admin_from(&p, &jwt(serde_json::json!({"groups": ["staff"]}))), Some(false));
        assert_eq!(admin_from(&p, &jwt(serde_json::json!({}))), Some(false));
        let no_rule = OidcProvider { admin_claim: None, admin_value: None, ..p };
        assert_eq!(admin_from(&no_rule, &jwt(serde_json::json!({"groups": "admins"}))), None);
    }
}
