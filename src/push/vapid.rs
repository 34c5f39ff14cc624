//! VAPID (RFC 8292): the server's P-256 key pair and the ES256 token that identifies it to push
//! services. Written here over `p256` (a JWT is three base64url parts) rather than pulling a JWT
//! library for one fixed header.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};

/// How long a token is valid; RFC 8292 allows at most 24 hours.
pub const TOKEN_SECS: u64 = 12 * 3600;

/// 32 random bytes that are a valid P-256 private key.
pub fn new_private_key() -> [u8; 32] {
    loop {
        let mut raw = [0u8; 32];
        rand::fill(&mut raw);
        if SigningKey::from_slice(&raw).is_ok() {
            return raw;
        }
    }
}

/// The server's key pair.
#[derive(Clone)]
pub struct Vapid {
    key: SigningKey,
    /// The public key, uncompressed, base64url: what browsers take as `applicationServerKey`.
    pub public_key: String,
}

impl Vapid {
    pub fn new(private: &[u8; 32]) -> Result<Vapid, String> {
        let key = SigningKey::from_slice(private).map_err(|e| format!("the stored VAPID key is not a P-256 key: {e}"))?;
        let point = key.verifying_key().to_encoded_point(false);
        Ok(Vapid { public_key: URL_SAFE_NO_PAD.encode(point.as_bytes()), key })
    }

    /// The `Authorization` header for a request to a push service at `origin`
    /// (`https://host[:port]`), valid until `now_secs + TOKEN_SECS`.
    pub fn authorization(&self, origin: &str, subject: &str, now_secs: u64) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({"aud": origin, "exp": now_secs + TOKEN_SECS, "sub": subject});
        let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
        let sig: Signature = self.key.sign(signing_input.as_bytes());
        format!("vapid t={signing_input}.{}, k={}", URL_SAFE_NO_PAD.encode(sig.to_bytes()), self.public_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier as _;

    #[test]
    fn the_token_verifies_with_the_public_key_it_names_and_carries_the_claims() {
        let v = Vapid::new(&new_private_key()).unwrap();
        let auth = v.authorization("https://push.example.net", "mailto:ops@example.org", 1_000);
        let (t, k) = auth.strip_prefix("vapid t=").unwrap().split_once(", k=").unwrap();
        assert_eq!(k, v.public_key);
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        let key = VerifyingKey::from_sec1_bytes(&URL_SAFE_NO_PAD.decode(k).unwrap()).unwrap();
        let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims, serde_json::json!({"aud":"https://push.example.net","exp":1_000 + TOKEN_SECS,"sub":"mailto:ops@example.org"}));
        assert_eq!(URL_SAFE_NO_PAD.decode(k).unwrap().len(), 65, "an uncompressed point");
    }
}
