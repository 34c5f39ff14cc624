//! Password hashing with argon2id on a few dedicated threads, with a bounded queue.
//!
//! Each hash holds about 19 MiB for ~20 ms. Running them on `hash_concurrency` threads of
//! their own (not tokio's blocking pool, which may grow to hundreds of threads, each keeping its
//! own allocator arena) bounds both the CPU and the memory a login flood can take: at most that
//! many hashes' memory is ever held. Unknown users are checked against a dummy hash so that
//! "no such user" and "wrong password" take the same time.

use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::oneshot;

use crate::http::ApiError;

/// How long a request waits for its hash before it is told the server is busy.
const QUEUE_WAIT: Duration = Duration::from_secs(10);
/// Hashes waiting for a thread; more than this and new requests are turned away at once.
const QUEUE_LEN: usize = 256;

type Job = Box<dyn FnOnce() + Send>;

pub struct Hasher {
    jobs: SyncSender<Job>,
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
        let (jobs, rx) = sync_channel::<Job>(QUEUE_LEN);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..concurrency {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("chinwag-hash-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only to take the next job; the channel closes when
                        // the hasher is dropped, which ends the thread.
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| {
                    tracing::error!(error = %e, "cannot start a hashing thread");
                    ApiError::internal()
                })?;
        }
        Ok(Hasher { jobs, dummy: hash_blocking("chinwag-timing-equaliser")? })
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller may have given up waiting; the result is simply dropped then.
            let _ = tx.send(f());
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(ApiError::busy()),
            Err(TrySendError::Disconnected(_)) => return Err(ApiError::internal()),
        }
        tokio::time::timeout(QUEUE_WAIT, rx).await.map_err(|_| ApiError::busy())?.map_err(|_| ApiError::internal())
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
