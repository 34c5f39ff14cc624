//! The account routes under `/api/auth`, `/api/me` and `/api/users`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ldap::{Directory, Refusal, Unavailable};
use super::{Accounts, registration, validate};
use crate::config::{Config, OtpSender, Registration};
use crate::http::auth::{SESSION_COOKIE, new_token};
use crate::http::error::ErrorBody;
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery, AuthUser};
use crate::hub::Hub;
use crate::ids::{UserId, Username};
use crate::protocol::{Gender, UserView, close};
use crate::store::ldap::LinkRefusal;
use crate::store::messages::ConvHead;
use crate::store::sessions::SessionRecord;
use crate::store::users::{CreateRefusal, NameTaken};
use crate::store::{NewUser, ProfilePatch, Store, UserRecord, now_ms};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub username: String,
    pub password: String,
    pub nickname: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    /// An invite code, when the server registers by invitation.
    pub invite: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Username, phone number or e-mail address.
    pub username: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct AuthResponse {
    pub user: UserView,
    /// Bearer token for API clients; browsers use the cookie set alongside.
    pub token: String,
}

#[derive(Serialize, ToSchema)]
pub struct AuthOptions {
    pub otp_login: bool,
    pub registration: Registration,
    /// False when an administrator turned password registration off (single sign-on only).
    pub password_registration: bool,
    /// False when an administrator turned password login off; server administrators may still
    /// use theirs.
    pub password_login: bool,
    /// OpenID Connect providers, one "Sign in with {name}" button each.
    pub oidc: Vec<super::oidc::ProviderOption>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtpRequest {
    pub username: String,
}

#[derive(Serialize, ToSchema)]
pub struct OtpRequested {
    pub sent: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtpLogin {
    pub username: String,
    pub code: String,
}

/// Only the fields listed here can change; anything else (`id`, `is_admin`, ...) is a 400.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    pub nickname: Option<String>,
    pub signature: Option<String>,
    pub gender: Option<Gender>,
    /// `YYYY-MM-DD`, or null to clear.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub birthday: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// Hide whether you are online from everyone.
    pub hide_presence: Option<bool>,
}

/// Tells "absent" (outer `None`) from "null" (`Some(None)`).
#[expect(clippy::option_option, reason = "serde's absent-or-null field: absent keeps the value, null clears it")]
fn nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub old_password: String,
    pub new_password: String,
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Exact username, phone or e-mail, or the start of a nickname.
    pub q: String,
}

#[derive(Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<UserView>,
}

fn refused(r: CreateRefusal) -> ApiError {
    match r {
        CreateRefusal::Taken(which) => taken(which),
        CreateRefusal::Closed => ApiError::forbidden("Registration is closed on this server. Ask an administrator for an account.")
            .with_code("registration_closed"),
        CreateRefusal::BadInvite => {
            ApiError::forbidden("That invite code is not valid (it may have expired or been used up).").with_code("bad_invite")
        }
    }
}

fn taken(which: NameTaken) -> ApiError {
    match which {
        NameTaken::Username => ApiError::conflict("username_taken", "That username is taken."),
        NameTaken::Phone => ApiError::conflict("phone_taken", "That phone number belongs to another account."),
        NameTaken::Email => ApiError::conflict("email_taken", "That e-mail address belongs to another account."),
    }
}

/// Starts a session for `user`: its bearer token and the session cookie that carries it.
pub(super) async fn new_session(accounts: &Accounts, store: &Store, user: &UserRecord) -> Result<(String, HeaderValue), ApiError> {
    let (token, hash) = new_token();
    let now = now_ms();
    let ttl_ms = accounts.config.session_days * 86_400_000;
    store.create_session(hash, SessionRecord { user: user.id, created_at: now, expires_at: now + ttl_ms }).await?;
    let secure = if accounts.config.cookie_secure { "; Secure" } else { "" };
    let cookie = format!("{SESSION_COOKIE}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{secure}", ttl_ms / 1000);
    Ok((token, HeaderValue::from_str(&cookie).map_err(|_| ApiError::internal())?))
}

/// Starts a session and answers with the user, the token and the cookie.
async fn start_session(accounts: &Accounts, store: &Store, user: &UserRecord, status: StatusCode) -> Result<Response, ApiError> {
    let (token, cookie) = new_session(accounts, store, user).await?;
    let mut headers = HeaderMap::new();
    headers.insert(header::SET_COOKIE, cookie);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok((status, headers, Json(AuthResponse { user: user.own_view(), token })).into_response())
}

fn clear_cookie() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::SET_COOKIE, HeaderValue::from_static("chinwag_session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0"));
    headers
}

/// Normalizes what a person typed as their login name.
fn login_key(s: &str) -> String {
    let t = s.trim();
    if t.contains('@') {
        t.to_lowercase()
    } else if t.starts_with('+') || t.bytes().all(|b| b.is_ascii_digit() || b == b' ' || b == b'-') {
        validate::phone(t).unwrap_or_else(|_| t.to_owned())
    } else {
        t.to_ascii_lowercase()
    }
}

#[utoipa::path(post, path = "/api/auth/register", tag = "accounts", security(()), request_body = RegisterRequest,
    responses((status = 201, body = AuthResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody, description = "`registration_closed`, `bad_invite` or `password_registration_disabled`"), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn register(
    State(accounts): State<Arc<Accounts>>,
    State(store): State<Store>,
    State(config): State<Arc<Config>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<Response, ApiError> {
    if !config.auth.password_registration {
        return Err(ApiError::forbidden("Accounts on this server are made by signing in with single sign-on.")
            .with_code("password_registration_disabled"));
    }
    let username = Username::parse(&req.username)
        .ok_or_else(|| ApiError::bad_request("invalid_username", "A username has 3 to 32 characters: letters, digits, _ . -"))?;
    validate::password(&req.password)?;
    let nickname = match &req.nickname {
        Some(n) => validate::nickname(n)?,
        None => req.username.trim().to_owned(),
    };
    let phone = req.phone.as_deref().map(validate::phone).transpose()?;
    let email = req.email.as_deref().map(validate::email).transpose()?;
    accounts.take_registration(peer.ip())?;
    let password_hash = accounts.hasher.hash(req.password).await?;
    let new = NewUser {
        username: username.as_str().to_owned(),
        password_hash,
        nickname,
        phone,
        email,
        invite: req.invite.map(|i| i.trim().to_owned()),
    };
    let mode = config.auth.registration;
    let user = store.create_user(new, move |first, invite| registration::admit(mode, first, invite, now_ms())).await?.map_err(refused)?;
    tracing::info!(user = %user.id, username = %user.username, admin = user.is_admin, "registered");
    start_session(&accounts, &store, &user, StatusCode::CREATED).await
}

#[utoipa::path(post, path = "/api/auth/login", tag = "accounts", security(()), request_body = LoginRequest,
    responses((status = 200, body = AuthResponse), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "`account_disabled`, `password_login_disabled` (a local password, not an administrator), or a directory entry that cannot be an account"),
        (status = 409, body = ErrorBody, description = "`local_account_exists`: the directory's username belongs to a local account"),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody, description = "`directory_unavailable`: the LDAP directory cannot be reached")))]
pub async fn login(
    State(accounts): State<Arc<Accounts>>,
    State(store): State<Store>,
    State(config): State<Arc<Config>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let key = login_key(&req.username);
    accounts.check_login_allowed(&key, peer.ip())?;
    let user = if key.is_empty() || key.len() > 254 { None } else { store.user_by_login(key.clone()).await? };
    // Names that are not local accounts are the directory's; local accounts (the first
    // administrator, say) keep their own password, and keep working while the directory is down.
    if let Some(dir) = &accounts.ldap
        && user.as_ref().is_none_or(|u| u.ldap_id.is_some())
    {
        // A linked account found by its e-mail address signs in under its directory username.
        let name = user.map_or_else(|| req.username.clone(), |u| u.username);
        return directory_login(&accounts, &store, dir, &key, &name, &req.password, peer).await;
    }
    let ok = accounts.hasher.verify(req.password.clone(), user.as_ref().map(|u| u.password_hash.clone())).await?;
    match user {
        Some(user) if ok => {
            if user.disabled {
                return Err(ApiError::forbidden("This account has been disabled.").with_code("account_disabled"));
            }
            // Administrators keep their password, so that the server always has a way in.
            if !config.auth.password_login && !user.is_admin {
                return Err(ApiError::forbidden("Password login is turned off on this server: sign in with single sign-on.")
                    .with_code("password_login_disabled"));
            }
            accounts.record_login_success(&key);
            start_session(&accounts, &store, &user, StatusCode::OK).await
        }
        _ => {
            accounts.record_login_failure(&key, peer.ip());
            // A directory password for a local account's name does not open the local account,
            // but it earns a clearer answer than "wrong password".
            if let Some(dir) = &accounts.ldap
                && matches!(dir.authenticate(&req.username, &req.password).await, Ok(Ok(_)))
            {
                return Err(local_account_exists());
            }
            Err(bad_credentials())
        }
    }
}

fn bad_credentials() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "bad_credentials", "Wrong username or password.")
}

fn local_account_exists() -> ApiError {
    ApiError::conflict(
        "local_account_exists",
        "A local account already has this username, so your directory account cannot sign in with it. Ask an administrator.",
    )
}

/// A login checked against the LDAP directory: first login makes the account, every login
/// re-syncs it.
async fn directory_login(
    accounts: &Accounts,
    store: &Store,
    dir: &Arc<Directory>,
    key: &str,
    username: &str,
    password: &str,
    peer: SocketAddr,
) -> Result<Response, ApiError> {
    let refused = || {
        accounts.record_login_failure(key, peer.ip());
        bad_credentials()
    };
    if key.is_empty() || key.len() > 254 {
        return Err(refused());
    }
    let found = match dir.authenticate(username, password).await {
        Ok(Ok(found)) => found,
        Ok(Err(Refusal::BadCredentials)) => return Err(refused()),
        Ok(Err(Refusal::UnusableEntry(why))) => {
            tracing::warn!(username = %key, reason = %why, "LDAP login: the entry cannot be an account");
            return Err(ApiError::forbidden(format!("Your directory account cannot be used here: {why}. Ask an administrator."))
                .with_code("directory_account_unusable"));
        }
        Err(Unavailable(e)) => {
            tracing::warn!(error = %e, "LDAP login: the directory is unavailable");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "directory_unavailable",
                "The sign-in directory cannot be reached right now. Try again in a moment.",
            ));
        }
    };
    let user = store.ldap_login(found).await?.map_err(|LinkRefusal::LocalAccountExists| local_account_exists())?;
    if user.disabled {
        return Err(ApiError::forbidden("This account has been disabled.").with_code("account_disabled"));
    }
    accounts.record_login_success(key);
    tracing::info!(user = %user.id, username = %user.username, admin = user.is_admin, "signed in through LDAP");
    start_session(accounts, store, &user, StatusCode::OK).await
}

#[utoipa::path(post, path = "/api/auth/logout", tag = "accounts", responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(auth: AuthUser, State(store): State<Store>, State(hub): State<Arc<Hub>>) -> Result<Response, ApiError> {
    store.delete_session(auth.session).await?;
    hub.close_sessions(&[auth.session], close::SESSION_REVOKED);
    Ok((StatusCode::NO_CONTENT, clear_cookie()).into_response())
}

#[utoipa::path(get, path = "/api/auth/options", tag = "accounts", security(()), responses((status = 200, body = AuthOptions)))]
pub async fn options(State(config): State<Arc<Config>>, State(oidc): State<Arc<super::oidc::Oidc>>) -> Json<AuthOptions> {
    Json(AuthOptions {
        otp_login: config.auth.otp_sender != OtpSender::Off,
        registration: config.auth.registration,
        password_registration: config.auth.password_registration,
        password_login: config.auth.password_login,
        oidc: oidc.options(),
    })
}

#[utoipa::path(post, path = "/api/auth/otp/request", tag = "accounts", security(()), request_body = OtpRequest,
    responses((status = 202, body = OtpRequested), (status = 404, body = ErrorBody, description = "one-time codes are off"), (status = 429, body = ErrorBody)))]
pub async fn otp_request(
    State(accounts): State<Arc<Accounts>>,
    State(store): State<Store>,
    State(config): State<Arc<Config>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(req): ApiJson<OtpRequest>,
) -> Result<(StatusCode, Json<OtpRequested>), ApiError> {
    if config.auth.otp_sender == OtpSender::Off {
        return Err(ApiError::not_found("One-time code login is not enabled on this server.").with_code("otp_disabled"));
    }
    let key = login_key(&req.username);
    accounts.take_otp_request(&key, peer.ip())?;
    // Directory accounts sign in through the directory only, which may have disabled them.
    if let Some(user) = store.user_by_login(key).await?
        && !user.disabled
        && user.ldap_id.is_none()
    {
        accounts.otp.issue(&config.auth, &user, Instant::now());
    }
    // The same answer whether or not the account exists.
    Ok((StatusCode::ACCEPTED, Json(OtpRequested { sent: true })))
}

#[utoipa::path(post, path = "/api/auth/otp/login", tag = "accounts", security(()), request_body = OtpLogin,
    responses((status = 200, body = AuthResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn otp_login(
    State(accounts): State<Arc<Accounts>>,
    State(store): State<Store>,
    State(config): State<Arc<Config>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(req): ApiJson<OtpLogin>,
) -> Result<Response, ApiError> {
    let key = login_key(&req.username);
    accounts.check_login_allowed(&key, peer.ip())?;
    let user = store.user_by_login(key.clone()).await?;
    match user {
        Some(user) if !user.disabled && user.ldap_id.is_none() && accounts.otp.verify(user.id, &req.code, Instant::now()) => {
            if !config.auth.password_login && !user.is_admin {
                return Err(ApiError::forbidden("Login with a code is turned off on this server: sign in with single sign-on.")
                    .with_code("password_login_disabled"));
            }
            accounts.record_login_success(&key);
            start_session(&accounts, &store, &user, StatusCode::OK).await
        }
        _ => {
            accounts.record_login_failure(&key, peer.ip());
            Err(ApiError::new(StatusCode::UNAUTHORIZED, "bad_code", "That code is wrong or has expired."))
        }
    }
}

#[utoipa::path(get, path = "/api/me", tag = "accounts", responses((status = 200, body = UserView), (status = 401, body = ErrorBody)))]
pub async fn me(auth: AuthUser) -> Json<UserView> {
    Json(auth.user.own_view())
}

#[utoipa::path(patch, path = "/api/me", tag = "accounts", request_body = ProfileUpdate,
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_me(
    auth: AuthUser,
    State(store): State<Store>,
    ApiJson(req): ApiJson<ProfileUpdate>,
) -> Result<Json<UserView>, ApiError> {
    let clean = |v: Option<Option<String>>, f: fn(&str) -> Result<String, ApiError>| -> Result<Option<Option<String>>, ApiError> {
        v.map(|o| o.filter(|s| !s.trim().is_empty()).map(|s| f(&s)).transpose()).transpose()
    };
    let patch = ProfilePatch {
        nickname: req.nickname.as_deref().map(validate::nickname).transpose()?,
        signature: req.signature.as_deref().map(validate::signature).transpose()?,
        gender: req.gender,
        birthday: clean(req.birthday, validate::birthday)?,
        phone: clean(req.phone, validate::phone)?,
        email: clean(req.email, validate::email)?,
        hide_presence: req.hide_presence,
    };
    let user = store.update_profile(auth.user.id, patch).await?.map_err(taken)?;
    Ok(Json(user.own_view()))
}

#[utoipa::path(post, path = "/api/me/password", tag = "accounts", request_body = PasswordChange,
    responses((status = 204, description = "changed; every other session is revoked"), (status = 401, body = ErrorBody), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "`password_in_directory`: an LDAP account's password is changed in the directory")))]
pub async fn change_password(
    auth: AuthUser,
    State(accounts): State<Arc<Accounts>>,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(req): ApiJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    if auth.user.ldap_id.is_some() {
        return Err(ApiError::forbidden("Your password belongs to your organisation's directory (LDAP); change it there.")
            .with_code("password_in_directory"));
    }
    validate::password(&req.new_password)?;
    let key = auth.user.username.clone();
    accounts.check_login_allowed(&key, peer.ip())?;
    if !accounts.hasher.verify(req.old_password, Some(auth.user.password_hash.clone())).await? {
        accounts.record_login_failure(&key, peer.ip());
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "bad_credentials", "The current password is wrong."));
    }
    let hash = accounts.hasher.hash(req.new_password).await?;
    store.set_password_hash(auth.user.id, hash).await?;
    let revoked = store.delete_user_sessions(auth.user.id, Some(auth.session)).await?;
    hub.close_sessions(&revoked, close::SESSION_REVOKED);
    tracing::info!(user = %auth.user.id, revoked = revoked.len(), "password changed");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/users/{id}", tag = "accounts", params(("id" = u64, Path)),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)))]
pub async fn get_user(_auth: AuthUser, State(store): State<Store>, ApiPath(id): ApiPath<u64>) -> Result<Json<UserView>, ApiError> {
    let user = store.user(UserId(id)).await?.filter(|u| !u.disabled).ok_or_else(|| ApiError::not_found("No such user."))?;
    Ok(Json(user.public_view()))
}

#[utoipa::path(get, path = "/api/users", tag = "accounts", params(UserQuery), responses((status = 200, body = UserList)))]
pub async fn search_users(
    _auth: AuthUser,
    State(store): State<Store>,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> Result<Json<UserList>, ApiError> {
    if q.q.trim().is_empty() || q.q.len() > 254 {
        return Ok(Json(UserList { users: Vec::new() }));
    }
    let users = store.search_users(login_key(&q.q), 20).await?;
    Ok(Json(UserList { users: users.iter().map(UserRecord::public_view).collect() }))
}

#[derive(Serialize, ToSchema)]
pub struct Presence {
    pub online: bool,
    /// When the user was last connected, ms (absent while online or never seen).
    pub last_seen: Option<u64>,
}

#[utoipa::path(get, path = "/api/users/{id}/presence", tag = "accounts", params(("id" = u64, Path)),
    responses((status = 200, body = Presence), (status = 403, body = ErrorBody, description = "hidden, or not a contact, chat partner or fellow group member"), (status = 404, body = ErrorBody)))]
pub async fn presence(
    auth: AuthUser,
    State(store): State<Store>,
    State(hub): State<Arc<Hub>>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<Presence>, ApiError> {
    let me = auth.user.id;
    let user = store.user(UserId(id)).await?.filter(|u| !u.disabled).ok_or_else(|| ApiError::not_found("No such user."))?;
    if user.id != me {
        let allowed = !user.hide_presence && crate::social::contacts::related(&store, me, user.id).await?
            || shares_group(&store, me, user.id).await?;
        if !allowed || user.hide_presence {
            return Err(ApiError::forbidden("You cannot see this user's presence."));
        }
    }
    let online = hub.is_online(user.id);
    Ok(Json(Presence { online, last_seen: if online { None } else { user.last_seen } }))
}

async fn shares_group(store: &Store, a: UserId, b: UserId) -> Result<bool, ApiError> {
    for ConvHead { conv, .. } in store.conversation_heads(a).await? {
        if let crate::ids::ConvId::Group(gid) = conv
            && store.group(gid).await?.is_some_and(|g| g.members.contains_key(&b))
        {
            return Ok(true);
        }
    }
    Ok(false)
}
