//! TURN credentials in the TURN REST scheme (as coturn's `use-auth-secret`): the username is
//! `expiry:userid` and the password is base64(HMAC-SHA1(secret, username)). The server checks
//! them without storing anything per user, and they stop working at `expiry`.

use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;

use crate::ids::UserId;

/// Credentials one user gets for the TURN server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// The password for `username`.
pub fn password(secret: &str, username: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    STANDARD.encode(hmac::sign(&key, username.as_bytes()).as_ref())
}

/// Credentials for `user` valid until `expires_at` (Unix seconds).
pub fn issue(secret: &str, user: UserId, expires_at: u64) -> Credentials {
    let username = format!("{expires_at}:{}", user.0);
    Credentials { password: password(secret, &username), username }
}

/// The expiry and user of a TURN username, if it has the `expiry:userid` form.
pub fn parse_username(username: &str) -> Option<(u64, UserId)> {
    let (exp, user) = username.split_once(':')?;
    Some((exp.parse().ok()?, UserId(user.parse().ok()?)))
}

/// Why credentials were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the username is not `expiry:userid`")]
    Malformed,
    #[error("the credentials expired")]
    Expired,
    #[error("wrong realm")]
    Realm,
}

/// The long-term key (MD5 of `username:realm:password`) the server checks a request's
/// MESSAGE-INTEGRITY with, or why there is none.
pub fn key_for(secret: &str, realm: &str, username: &str, their_realm: &str, now_secs: u64) -> Result<Vec<u8>, Refused> {
    let (expiry, _) = parse_username(username).ok_or(Refused::Malformed)?;
    if expiry <= now_secs {
        return Err(Refused::Expired);
    }
    if their_realm != realm {
        return Err(Refused::Realm);
    }
    Ok(turn::auth::generate_auth_key(username, realm, &password(secret, username)))
}

/// The `AuthHandler` the TURN server asks for every authenticated request.
pub struct RestAuth {
    pub secret: String,
    pub realm: String,
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl turn::auth::AuthHandler for RestAuth {
    fn auth_handle(&self, username: &str, realm: &str, src_addr: SocketAddr) -> Result<Vec<u8>, turn::Error> {
        key_for(&self.secret, &self.realm, username, realm, now_secs()).map_err(|e| {
            tracing::debug!(%src_addr, username, error = %e, "TURN credentials refused");
            turn::Error::Other(e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_round_trip_and_expire() {
        let c = issue("s3cret", UserId(7), 2_000_000_000);
        assert_eq!(c.username, "2000000000:7");
        assert_eq!(parse_username(&c.username), Some((2_000_000_000, UserId(7))));
        // The same formula as coturn's REST API: HMAC-SHA1 over the username, base64.
        assert_eq!(c.password, password("s3cret", "2000000000:7"));
        assert_eq!(c.password.len(), 28);
        let key = key_for("s3cret", "chinwag", &c.username, "chinwag", 1_999_999_999).unwrap();
        assert_eq!(key, turn::auth::generate_auth_key(&c.username, "chinwag", &c.password));
        assert_eq!(key_for("s3cret", "chinwag", &c.username, "chinwag", 2_000_000_000), Err(Refused::Expired));
        assert_eq!(key_for("s3cret", "chinwag", "7", "chinwag", 0), Err(Refused::Malformed));
        assert_eq!(key_for("s3cret", "chinwag", "x:7", "chinwag", 0), Err(Refused::Malformed));
        assert_eq!(key_for("s3cret", "chinwag", &c.username, "other", 0), Err(Refused::Realm));
        assert_ne!(password("other", &c.username), c.password, "another secret, another password");
    }
}
