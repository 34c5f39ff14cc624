//! Authentication as an extractor: `AuthUser` reads the session cookie or a Bearer token, looks
//! up the session, and refuses expired sessions and disabled accounts.
//!
//! Tokens are 32 random bytes, base64url-encoded; only their SHA-256 is stored, so a copy of
//! the database does not let anyone log in.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::ApiError;
use crate::store::sessions::TokenHash;
use crate::store::{Store, UserRecord, now_ms};

pub const SESSION_COOKIE: &str = "chinwag_session";

/// A fresh session token and the hash under which it is stored.
pub fn new_token() -> (String, TokenHash) {
    let mut raw = [0u8; 32];
    rand::fill(&mut raw);
    let token = URL_SAFE_NO_PAD.encode(raw);
    let hash = hash_token(&token);
    (token, hash)
}

pub fn hash_token(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// The token a request carries: `Authorization: Bearer` first, then the session cookie.
pub fn token_from_parts(parts: &Parts) -> Option<String> {
    if let Some(v) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some(t) = v.strip_prefix("Bearer ")
    {
        return Some(t.trim().to_owned());
    }
    for v in parts.headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for pair in v.split(';') {
            if let Some((k, val)) = pair.trim().split_once('=')
                && k == SESSION_COOKIE
                && !val.is_empty()
            {
                return Some(val.to_owned());
            }
        }
    }
    None
}

/// A logged-in user and the session they used.
#[derive(Clone, Debug)]
pub struct AuthUser {
    pub user: UserRecord,
    pub session: TokenHash,
}

impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    Store: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = token_from_parts(parts).ok_or_else(ApiError::unauthorized)?;
        // Tokens are 43 characters; anything much longer is not one of ours.
        if token.len() > 128 {
            return Err(ApiError::unauthorized());
        }
        let store = Store::from_ref(state);
        let hash = hash_token(&token);
        let session = store.session(hash).await?.ok_or_else(ApiError::unauthorized)?;
        if session.expires_at <= now_ms() {
            return Err(ApiError::unauthorized());
        }
        let user = store.user(session.user).await?.ok_or_else(ApiError::unauthorized)?;
        if user.disabled {
            return Err(ApiError::new(axum::http::StatusCode::UNAUTHORIZED, "account_disabled", "This account has been disabled."));
        }
        Ok(AuthUser { user, session: hash })
    }
}
