//! One-time login codes and the pluggable senders that deliver them (`log`, `webhook`).
//!
//! Codes are six digits, live five minutes, allow five tries, and are kept only in memory,
//! hashed: a restart simply invalidates them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngExt;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::address::AddressPolicy;
use crate::config::{Auth, OtpSender};
use crate::ids::UserId;
use crate::outbound::{Outbound, OutboundError};
use crate::store::UserRecord;

pub const CODE_TTL: Duration = Duration::from_secs(300);
const TRIES: u8 = 5;
/// The whole exchange with the webhook, resolving its host included.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

struct Pending {
    hash: [u8; 32],
    expires: Instant,
    tries_left: u8,
}

#[derive(Default)]
pub struct Otp {
    pending: Mutex<HashMap<UserId, Pending>>,
}

fn digest(user: UserId, code: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(user.0.to_be_bytes());
    h.update(code.as_bytes());
    h.finalize().into()
}

impl Otp {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Pending>> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes a new code for `user` (replacing any earlier one) and hands it to the sender.
    /// Makes a new code and hands it to the sender that `auth` names.
    pub fn issue(&self, auth: &Auth, user: &UserRecord, now: Instant) {
        let code = self.new_code(user.id, now);
        deliver(auth, user, &code);
    }

    fn new_code(&self, user: UserId, now: Instant) -> String {
        let code = format!("{:06}", rand::rng().random_range(0..1_000_000u32));
        let mut map = self.lock();
        map.retain(|_, p| p.expires > now);
        map.insert(user, Pending { hash: digest(user, &code), expires: now + CODE_TTL, tries_left: TRIES });
        code
    }

    /// Whether `code` is `user`'s current code. Each wrong guess uses a try; the code is gone
    /// after success, expiry or the last try.
    pub fn verify(&self, user: UserId, code: &str, now: Instant) -> bool {
        let mut map = self.lock();
        let Some(p) = map.get_mut(&user) else {
            return false;
        };
        if p.expires <= now {
            map.remove(&user);
            return false;
        }
        if bool::from(p.hash.ct_eq(&digest(user, code.trim()))) {
            map.remove(&user);
            return true;
        }
        p.tries_left -= 1;
        if p.tries_left == 0 {
            map.remove(&user);
        }
        false
    }
}

fn deliver(auth: &Auth, user: &UserRecord, code: &str) {
    match auth.otp_sender {
        OtpSender::Off => {}
        OtpSender::Log => {
            tracing::warn!(target: "chinwag::otp", user = %user.username, code = %code, "one-time login code (auth.otp_sender = \"log\")");
        }
        OtpSender::Webhook => {
            let Some(url) = auth.otp_webhook_url.clone() else { return };
            let to = user.phone.clone().or_else(|| user.email.clone()).unwrap_or_default();
            let body = serde_json::json!({
                "to": to, "username": user.username, "code": code, "expires_in_secs": CODE_TTL.as_secs(),
            });
            let (outbound, token, username) = (webhook_client(auth), auth.otp_webhook_token.clone(), user.username.clone());
            // Fire and forget: the HTTP answer must not depend on the gateway (it would tell
            // a caller whether the account exists).
            tokio::spawn(async move {
                match post_webhook(&outbound, &url, token.as_deref(), &body).await {
                    Ok(()) => tracing::info!(user = %username, "one-time code handed to the webhook"),
                    Err(e) => tracing::error!(user = %username, error = %e, "the one-time code webhook failed"),
                }
            });
        }
    }
}

/// The outbound client for the webhook: the one outbound policy, with the ranges that
/// `auth.otp_webhook_allow` opens, and plain http when the configured URL asks for it (the
/// administrator chose it; the address rules still apply).
fn webhook_client(auth: &Auth) -> Outbound {
    // Validated when the configuration was loaded; an unparsable list opens nothing.
    let policy = AddressPolicy::parse("auth.otp_webhook_allow", &auth.otp_webhook_allow).unwrap_or_default();
    let http = auth.otp_webhook_url.as_deref().is_some_and(|u| u.starts_with("http://"));
    Outbound::new(policy, http, WEBHOOK_TIMEOUT)
}

/// POSTs the code to the webhook; any answer but a 2xx is an error.
async fn post_webhook(outbound: &Outbound, url: &str, token: Option<&str>, body: &serde_json::Value) -> Result<(), OutboundError> {
    let target = outbound.check_url(url)?;
    let mut req = http::Request::post(target.uri.clone()).header(http::header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req.body(body.to_string().into_bytes()).map_err(|e| OutboundError::Failed(e.to_string()))?;
    let answer = outbound.send(&target, req, 4096).await?;
    if (200..300).contains(&answer.status) { Ok(()) } else { Err(OutboundError::Failed(format!("the webhook answered {}", answer.status))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserRecord {
        serde_json::from_value(serde_json::json!({
            "id": 4, "username": "ann", "password_hash": "", "nickname": "Ann", "is_admin": false, "created_at": 0
        }))
        .unwrap()
    }

    /// No packet: a literal address is judged without a lookup, before any connection.
    #[tokio::test]
    async fn the_webhook_goes_through_the_outbound_policy() {
        let auth = |url: &str, allow: &[&str]| Auth {
            otp_sender: OtpSender::Webhook,
            otp_webhook_url: Some(url.to_owned()),
            otp_webhook_allow: allow.iter().map(|s| (*s).to_owned()).collect(),
            ..Auth::default()
        };
        let judge = |a: Auth| async move {
            let c = webhook_client(&a);
            let t = c.check_url(a.otp_webhook_url.as_deref().unwrap())?;
            c.resolve(&t).await.map(|_| ())
        };
        for url in
            ["http://127.0.0.1:9/hook", "http://[::1]/h", "https://10.1.2.3/h", "https://169.254.169.254/latest", "http://192.168.1.5/sms"]
        {
            assert!(matches!(judge(auth(url, &[])).await, Err(OutboundError::Refused(_))), "{url} is refused by default");
        }
        assert!(judge(auth("http://192.168.1.5/sms", &["192.168.1.0/24"])).await.is_ok(), "a LAN gateway opened by otp_webhook_allow");
        assert!(judge(auth("http://127.0.0.1:9/hook", &["192.168.1.0/24"])).await.is_err(), "only the ranges opened");
        assert!(judge(auth("https://93.184.216.34/sms", &[])).await.is_ok(), "public addresses need no setting");
    }

    #[test]
    fn a_code_works_once_within_its_lifetime() {
        let otp = Otp::default();
        let (u, t0) = (user(), Instant::now());
        let code = otp.new_code(u.id, t0);
        assert!(otp.verify(u.id, &code, t0));
        assert!(!otp.verify(u.id, &code, t0), "used up");
        let code = otp.new_code(u.id, t0);
        assert!(!otp.verify(u.id, &code, t0 + CODE_TTL), "expired");
    }

    #[test]
    fn five_wrong_tries_burn_the_code() {
        let otp = Otp::default();
        let (u, t0) = (user(), Instant::now());
        let code = otp.new_code(u.id, t0);
        let wrong = if code == "000000" { "000001" } else { "000000" };
        for _ in 0..5 {
            assert!(!otp.verify(u.id, wrong, t0));
        }
        assert!(!otp.verify(u.id, &code, t0));
    }
}
