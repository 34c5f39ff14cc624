//! Password hashing with argon2id on a few dedicated threads, with a bounded queue.
//!
//! Each hash works through about 19 MiB for ~20 ms. Running them on `hash_concurrency` threads of
//! their own (not tokio's blocking pool, which may grow to hundreds of threads) bounds the CPU a
//! login flood can take, and each thread hashes in one block of memory it keeps from its first
//! hash on: so the server holds at most `hash_concurrency` × 19 MiB for hashing, however many
//! logins come. (Allocating it per hash left hundreds of MiB with the allocator after a burst of
//! registrations: 378 MiB after 100.) Unknown users are checked against a dummy hash so that "no such user" and "wrong
//! password" take the same time.

use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::oneshot;

use crate::http::ApiError;

/// How long a request waits for its hash before it is told the server is busy.
const QUEUE_WAIT: Duration = Duration::from_secs(10);
/// Hashes waiting for a thread; more than this and new requests are turned away at once.
const QUEUE_LEN: usize = 256;
/// The most memory a stored hash may ask for (KiB); a bigger one never matches. Chinwag writes
/// 19 MiB hashes; this leaves room for hashes made with stronger settings elsewhere.
const MAX_MEMORY_KIB: u32 = 256 * 1024;

/// A hashing thread's working memory, kept between hashes.
#[derive(Default)]
struct Memory(Vec<Block>);

impl Memory {
    fn blocks(&mut self, params: &Params) -> &mut [Block] {
        let n = params.block_count();
        if self.0.len() < n {
            self.0.resize(n, Block::default());
        }
        &mut self.0[..n]
    }

    /// A new argon2id hash of `password` as a PHC string.
    fn hash(&mut self, password: &str) -> Result<String, ApiError> {
        self.new_hash(password).map(|phc| phc.to_string()).map_err(|e| {
            tracing::error!(error = %e, "password hashing failed");
            ApiError::internal()
        })
    }

    fn new_hash(&mut self, password: &str) -> Result<PasswordHash, String> {
        let (algorithm, version) = (Algorithm::Argon2id, Version::V0x13);
        let argon = Argon2::new(algorithm, version, Params::default());
        let salt = argon2::password_hash::generate_salt();
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        argon
            .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, self.blocks(argon.params()))
            .map_err(|x| x.to_string())?;
        Ok(PasswordHash {
            algorithm: algorithm.ident(),
            version: Some(version.into()),
            params: ParamsString::try_from(argon.params()).map_err(|x| x.to_string())?,
            salt: Some(Salt::new(&salt).map_err(|x| x.to_string())?),
            hash: Some(Output::new(&out).map_err(|x| x.to_string())?),
        })
    }

    /// Whether `password` hashes to the stored PHC string `phc` (compared in constant time).
    fn verify(&mut self, password: &str, phc: &str) -> bool {
        let Ok(stored) = PasswordHash::new(phc) else { return false };
        let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else { return false };
        let Ok(algorithm) = Algorithm::try_from(stored.algorithm.as_str()) else { return false };
        let Ok(version) = stored.version.map_or(Ok(Version::default()), Version::try_from) else { return false };
        let Ok(params) = Params::try_from(&stored) else { return false };
        if params.m_cost() > MAX_MEMORY_KIB {
            tracing::warn!(m_cost = params.m_cost(), "a stored password hash asks for too much memory; refused");
            return false;
        }
        let argon = Argon2::new(algorithm, version, params);
        let mut out = vec![0u8; expected.len()];
        if argon.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, self.blocks(argon.params())).is_err() {
            return false;
        }
        // `Output`'s equality is constant-time.
        Output::new(&out).is_ok_and(|computed| &computed == expected)
    }
}

type Job = Box<dyn FnOnce(&mut Memory) + Send>;

pub struct Hasher {
    jobs: SyncSender<Job>,
    dummy: String,
}

impl Hasher {
    pub fn new(concurrency: usize) -> Result<Hasher, ApiError> {
        let (jobs, rx) = sync_channel::<Job>(QUEUE_LEN);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..concurrency.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("chinwag-hash-{i}"))
                .spawn(move || {
                    let mut memory = Memory::default();
                    loop {
                        // The lock is held only to take the next job; the channel closes when
                        // the hasher is dropped, which ends the thread.
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| {
                    tracing::error!(error = %e, "cannot start a hashing thread");
                    ApiError::internal()
                })?;
        }
        // Made with memory of its own, given back at once: a server nobody has logged in to yet
        // holds no hashing memory.
        let dummy = Memory::default().hash("chinwag-timing-equaliser")?;
        Ok(Hasher { jobs, dummy })
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce(&mut Memory) -> T + Send + 'static) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |m| {
            // The caller may have given up waiting; the result is simply dropped then.
            let _ = tx.send(f(m));
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(ApiError::busy()),
            Err(TrySendError::Disconnected(_)) => return Err(ApiError::internal()),
        }
        tokio::time::timeout(QUEUE_WAIT, rx).await.map_err(|_| ApiError::busy())?.map_err(|_| ApiError::internal())
    }

    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.run(move |m| m.hash(&password)).await?
    }

    /// Whether `password` matches `stored`; with no stored hash, does the same work and says no.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, ApiError> {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.dummy.clone());
        let ok = self.run(move |m| m.verify(&password, &phc)).await?;
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

    #[test]
    fn hashes_agree_with_the_argon2_crates_own_and_other_settings_verify() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let mut m = Memory::default();
        // Ours verify with the crate's verifier, and the crate's (as written before) with ours.
        let ours = m.hash("pa55word").unwrap();
        assert!(Argon2::default().verify_password(b"pa55word", &PasswordHash::new(&ours).unwrap()).is_ok());
        let theirs = Argon2::default().hash_password(b"pa55word").unwrap().to_string();
        assert!(m.verify("pa55word", &theirs));
        assert!(!m.verify("pa55wore", &theirs));
        // Other costs and algorithms than ours, smaller and larger than the memory kept.
        for (alg, m_cost, t_cost) in [(Algorithm::Argon2id, 8 * 1024, 3), (Algorithm::Argon2i, 32 * 1024, 1), (Algorithm::Argon2d, 1024, 2)]
        {
            let params = Params::new(m_cost, t_cost, 1, None).unwrap();
            let other = Argon2::new(alg, Version::V0x13, params).hash_password(b"other").unwrap().to_string();
            assert!(m.verify("other", &other), "{other}");
            assert!(!m.verify("0ther", &other), "{other}");
        }
        assert!(m.0.len() >= 32 * 1024, "memory grows to the largest hash and is kept");
        // A stored hash asking for more memory than allowed never matches, and takes none.
        let greedy = ours.replace("m=19456", "m=1048576");
        assert!(!m.verify("pa55word", &greedy));
        assert!(m.0.len() < 1024 * 1024);
        for broken in ["", "$argon2id$", "plain", &ours[..ours.len() - 4]] {
            assert!(!m.verify("pa55word", broken), "{broken}");
        }
    }
}
