//! Login sessions, keyed by the SHA-256 of their opaque token (the token itself is never stored).

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::tables::{SESSIONS, USER_SESSIONS};
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
            Ok(true)
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
            for hash in &gone {
                sessions.remove(hash)?;
                index.remove((user.0, hash))?;
            }
            Ok(gone)
        })
        .await
    }
}
