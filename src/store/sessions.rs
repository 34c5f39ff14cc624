//! Login sessions, keyed by the SHA-256 of their opaque token (the token itself is never stored).
//! A session's push subscription ends with it.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::tables::{PUSH_SUBS, SESSIONS, USER_SESSIONS};
use super::{Store, StoreError};
use crate::ids::UserId;

pub type TokenHash = [u8; 32];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionRecord {
    pub user: UserId,
    pub created_at: u64,
    pub expires_at: u64,
}

impl Store {
    pub async fn create_session(&self, hash: TokenHash, rec: SessionRecord) -> Result<(), StoreError> {
        self.write(move |txn| {
            let bytes = serde_json::to_vec(&rec)?;
            txn.open_table(SESSIONS)?.insert(&hash, bytes.as_slice())?;
            txn.open_table(USER_SESSIONS)?.insert((rec.user.0, &hash), ())?;
            Ok(())
        })
        .await
    }

    pub async fn session(&self, hash: TokenHash) -> Result<Option<SessionRecord>, StoreError> {
        self.read(move |txn| {
            Ok(match txn.open_table(SESSIONS)?.get(&hash)? {
                Some(v) => Some(serde_json::from_slice(v.value())?),
                None => None,
            })
        })
        .await
    }

    /// Revokes one session; returns whether it existed.
    pub async fn delete_session(&self, hash: TokenHash) -> Result<bool, StoreError> {
        self.write(move |txn| {
            let mut sessions = txn.open_table(SESSIONS)?;
            let Some(rec) = sessions.remove(&hash)? else {
                return Ok(false);
            };
            let rec: SessionRecord = serde_json::from_slice(rec.value())?;
            txn.open_table(USER_SESSIONS)?.remove((rec.user.0, &hash))?;
            txn.open_table(PUSH_SUBS)?.remove((rec.user.0, &hash))?;
            Ok(true)
        })
        .await
    }

    /// Removes sessions that expired before `now`; returns how many.
    pub async fn delete_expired_sessions(&self, now: u64) -> Result<usize, StoreError> {
        self.write(move |txn| {
            let mut sessions = txn.open_table(SESSIONS)?;
            let mut expired = Vec::new();
            for entry in sessions.iter()? {
                let (k, v) = entry?;
                let rec: SessionRecord = serde_json::from_slice(v.value())?;
                if rec.expires_at <= now {
                    expired.push((*k.value(), rec.user));
                }
            }
            let mut index = txn.open_table(USER_SESSIONS)?;
            let mut subs = txn.open_table(PUSH_SUBS)?;
            for (hash, user) in &expired {
                sessions.remove(hash)?;
                index.remove((user.0, hash))?;
                subs.remove((user.0, hash))?;
            }
            Ok(expired.len())
        })
        .await
    }

    /// Revokes every session of `user` except `keep`; returns the revoked token hashes.
    pub async fn delete_user_sessions(&self, user: UserId, keep: Option<TokenHash>) -> Result<Vec<TokenHash>, StoreError> {
        self.write(move |txn| {
            let mut index = txn.open_table(USER_SESSIONS)?;
            let mut gone = Vec::new();
            for entry in index.range((user.0, &[0u8; 32])..=(user.0, &[0xffu8; 32]))? {
                let (k, _) = entry?;
                let hash = *k.value().1;
                if Some(hash) != keep {
                    gone.push(hash);
                }
            }
            let mut sessions = txn.open_table(SESSIONS)?;
            let mut subs = txn.open_table(PUSH_SUBS)?;
            for hash in &gone {
                sessions.remove(hash)?;
                index.remove((user.0, hash))?;
                subs.remove((user.0, hash))?;
            }
            Ok(gone)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    #[tokio::test]
    async fn expired_sessions_are_swept_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        s.create_session([1; 32], SessionRecord { user: UserId(1), created_at: 0, expires_at: 10 }).await.unwrap();
        s.create_session([2; 32], SessionRecord { user: UserId(1), created_at: 0, expires_at: 1_000 }).await.unwrap();
        assert_eq!(s.delete_expired_sessions(500).await.unwrap(), 1);
        assert!(s.session([1; 32]).await.unwrap().is_none());
        assert!(s.session([2; 32]).await.unwrap().is_some());
        assert_eq!(s.delete_user_sessions(UserId(1), None).await.unwrap(), vec![[2; 32]], "the index was kept in step");
    }
}
