//! Accounts: registration, password and one-time-code login, sessions, and profiles.
//!
//! Architecture invariant: nothing outside this folder creates or revokes sessions; other
//! features only read them through the `AuthUser` extractor.

pub mod ldap;
pub mod oidc;
mod otp;
mod password;
pub mod registration;
pub mod routes;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Auth;
use crate::http::ApiError;
use crate::http::ratelimit::Limiter;

pub use otp::Otp;
pub use password::Hasher;

/// The accounts service: hashing, codes and the limits around them.
pub struct Accounts {
    pub hasher: Hasher,
    pub otp: Otp,
    pub config: Auth,
    /// The LDAP directory logins are checked against, when `auth.ldap.url` is set.
    pub ldap: Option<Arc<ldap::Directory>>,
    login_failures_by_account: Limiter,
    login_failures_by_ip: Limiter,
    registrations_by_ip: Limiter,
    otp_requests_by_account: Limiter,
    otp_requests_by_ip: Limiter,
}

impl Accounts {
    pub fn new(config: &Auth) -> Result<Arc<Accounts>, ApiError> {
        let window = Duration::from_secs(config.failure_window_secs);
        Ok(Arc::new(Accounts {
            hasher: Hasher::new(config.hash_concurrency)?,
            otp: Otp::default(),
            config: config.clone(),
            ldap: ldap::Directory::new(&config.ldap)
                .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "ldap_config", e))?,
            login_failures_by_account: Limiter::new(config.failures_per_account, window),
            login_failures_by_ip: Limiter::new(config.failures_per_ip, window),
            registrations_by_ip: Limiter::new(config.registrations_per_ip_per_hour, Duration::from_secs(3600)),
            otp_requests_by_account: Limiter::new(3, Duration::from_secs(600)),
            otp_requests_by_ip: Limiter::new(30, Duration::from_secs(3600)),
        }))
    }

    /// 429 when this account or this address has failed too often lately.
    pub fn check_login_allowed(&self, login: &str, ip: IpAddr) -> Result<(), ApiError> {
        let now = Instant::now();
        self.login_failures_by_account.check(login, now).map_err(ApiError::rate_limited)?;
        self.login_failures_by_ip.check(&ip.to_string(), now).map_err(ApiError::rate_limited)
    }

    pub fn record_login_failure(&self, login: &str, ip: IpAddr) {
        let now = Instant::now();
        self.login_failures_by_account.hit(login, now);
        self.login_failures_by_ip.hit(&ip.to_string(), now);
    }

    pub fn record_login_success(&self, login: &str) {
        self.login_failures_by_account.reset(login);
    }

    pub fn take_registration(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.registrations_by_ip.take(&ip.to_string(), Instant::now()).map_err(ApiError::rate_limited)
    }

    pub fn take_otp_request(&self, login: &str, ip: IpAddr) -> Result<(), ApiError> {
        let now = Instant::now();
        self.otp_requests_by_ip.take(&ip.to_string(), now).map_err(ApiError::rate_limited)?;
        self.otp_requests_by_account.take(login, now).map_err(ApiError::rate_limited)
    }
}

/// Validation of what people type into the account forms.
pub mod validate {
    use crate::http::ApiError;

    pub fn password(p: &str) -> Result<(), ApiError> {
        let n = p.chars().count();
        if (8..=256).contains(&n) { Ok(()) } else { Err(ApiError::bad_request("weak_password", "A password needs 8 to 256 characters.")) }
    }

    fn plain_text(field: &'static str, s: &str, max: usize) -> Result<String, ApiError> {
        let s = s.trim();
        if s.chars().count() > max {
            return Err(ApiError::bad_request("invalid_field", format!("{field} can be at most {max} characters.")));
        }
        if s.chars().any(|c| c.is_control() && c != '\n') {
            return Err(ApiError::bad_request("invalid_field", format!("{field} cannot contain control characters.")));
        }
        Ok(s.to_owned())
    }

    pub fn nickname(s: &str) -> Result<String, ApiError> {
        let s = plain_text("The nickname", s, 64)?;
        if s.is_empty() || s.contains('\n') {
            return Err(ApiError::bad_request("invalid_field", "The nickname must be one line of 1 to 64 characters."));
        }
        Ok(s)
    }

    pub fn signature(s: &str) -> Result<String, ApiError> {
        plain_text("The signature", s, 256)
    }

    /// Digits with an optional leading `+`, spaces and dashes removed.
    pub fn phone(s: &str) -> Result<String, ApiError> {
        let cleaned: String = s.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let digits = cleaned.strip_prefix('+').unwrap_or(&cleaned);
        if (5..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(cleaned)
        } else {
            Err(ApiError::bad_request("invalid_field", "A phone number is 5 to 20 digits, optionally starting with +."))
        }
    }

    pub fn email(s: &str) -> Result<String, ApiError> {
        let s = s.trim().to_lowercase();
        let ok = s.len() <= 254
            && s.split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.') && !d.contains('@'))
            && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if ok { Ok(s) } else { Err(ApiError::bad_request("invalid_field", "That is not an e-mail address.")) }
    }

    /// `YYYY-MM-DD` with a plausible year, month and day.
    pub fn birthday(s: &str) -> Result<String, ApiError> {
        let bad = || ApiError::bad_request("invalid_field", "A birthday is written YYYY-MM-DD.");
        let parts: Vec<&str> = s.split('-').collect();
        let [y, m, d] = parts.as_slice() else {
            return Err(bad());
        };
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return Err(bad());
        }
        let (y, m, d): (u32, u32, u32) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        if !(1900..=2100).contains(&y) || !(1..=12).contains(&m) || d == 0 || d > days[(m - 1) as usize] {
            return Err(bad());
        }
        Ok(s.to_owned())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn fields() {
            assert!(password("short").is_err() && password("long enough").is_ok());
            assert_eq!(phone("+86 138-0000-0000").unwrap(), "+8613800000000");
            assert!(phone("12ab5").is_err());
            assert_eq!(email(" Ann@Example.org ").unwrap(), "ann@example.org");
            assert!(email("ann@").is_err() && email("a b@c.d").is_err() && email("@x.org").is_err());
            assert!(birthday("2000-02-29").is_ok() && birthday("2001-02-29").is_err() && birthday("99-1-1").is_err());
            assert!(nickname(" Ann ").unwrap() == "Ann" && nickname("").is_err() && nickname("a\u{0}b").is_err());
        }
    }
}
