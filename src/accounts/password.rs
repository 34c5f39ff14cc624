//! Password hashing with argon2id, on the blocking pool, with a cap on hashes in flight.
//!
//! Each hash holds about 19 MiB for ~20 ms, so a login flood is bounded by the semaphore rather
//! than by memory. Unknown users are checked against a dummy hash so that "no such user" and
//! "wrong password" take the same time.

use std::sync::Arc;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

use crate::http::ApiError;

/// How long a request waits for a hashing slot before it is told the server is busy.
const QUEUE_WAIT: Duration = Duration::from_secs(10);

pub struct Hasher {
    permits: Arc<Semaphore>,
    dummy: String,
}

fn hash_blocking(password: &str) -> Result<String, ApiError> {
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| {
        tracing::error!(error = %e, "password hashing failed");
        ApiError::internal()
    })
}

impl Hasher {
    pub fn new(concurrency: usize) -> Result<Hasher, ApiError> {
        Ok(Hasher { permits: Arc::new(Semaphore::new(concurrency)), dummy: hash_blocking("chinwag-timing-equaliser")? })
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        let permit = tokio::time::timeout(QUEUE_WAIT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| ApiError::busy())?
            .map_err(|_| ApiError::busy())?;
        tokio::task::spawn_blocking(move || {
            let out = f();
            drop(permit);
            out
        })
        .await
        .map_err(|_| ApiError::internal())
    }

    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.run(move || hash_blocking(&password)).await?
    }

    /// Whether `password` matches `stored`; with no stored hash, does the same work and says no.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, ApiError> {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.dummy.clone());
        let ok = self
            .run(move || PasswordHash::new(&phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok()))
            .await?;
        Ok(ok && known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_unknown_users_never_match() {
        let h = Hasher::new(2).unwrap();
        let stored = h.hash("correct horse".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(h.verify("correct horse".into(), Some(stored.clone())).await.unwrap());
        assert!(!h.verify("wrong horse".into(), Some(stored)).await.unwrap());
        assert!(!h.verify("chinwag-timing-equaliser".into(), None).await.unwrap());
    }
}
