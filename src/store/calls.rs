//! What calls keep in the database: the TURN server's shared secret.

use redb::ReadableTable;

use super::tables::SETTINGS;
use super::{Store, StoreError};

/// Where the secret lives in `SETTINGS`.
const TURN_SECRET: &str = "turn_secret";

impl Store {
    /// The secret that signs TURN credentials: made from 32 random bytes on first use and kept,
    /// so every install has its own and there is no default.
    pub async fn turn_secret(&self) -> Result<String, StoreError> {
        self.write(|txn| {
            let mut t = txn.open_table(SETTINGS)?;
            if let Some(v) = t.get(TURN_SECRET)? {
                return Ok(serde_json::from_slice::<String>(v.value())?);
            }
            let mut raw = [0u8; 32];
            rand::fill(&mut raw);
            let secret = hex::encode(raw);
            t.insert(TURN_SECRET, serde_json::to_vec(&secret)?.as_slice())?;
            Ok(secret)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{Store, StoreOptions};

    #[tokio::test]
    async fn the_secret_is_random_per_install_and_stable() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let sa = Store::open(a.path(), &StoreOptions::default()).unwrap();
        let sb = Store::open(b.path(), &StoreOptions::default()).unwrap();
        let first = sa.turn_secret().await.unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(sa.turn_secret().await.unwrap(), first, "kept once made");
        assert_ne!(sb.turn_secret().await.unwrap(), first, "two installs, two secrets");
    }
}
