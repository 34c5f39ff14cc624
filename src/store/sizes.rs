//! How much room each table takes (entries, stored bytes, pages), read through one read
//! transaction: the disk figures of docs/benchmarks.md (`load scale`) come from here.

use redb::{ReadTransaction, ReadableTableMetadata};

// Every table, for `each_table!`: naming them again here would be a second list to keep.
#[allow(clippy::wildcard_imports)]
use super::tables::*;
use super::{Store, StoreError};

/// One table's size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSize {
    pub name: &'static str,
    pub entries: u64,
    /// Bytes of keys and values in its leaf pages.
    pub stored_bytes: u64,
    /// Bytes of its B-tree's own bookkeeping (branch pages, headers).
    pub metadata_bytes: u64,
    /// Bytes of its pages that hold nothing (partly filled pages).
    pub fragmented_bytes: u64,
    pub leaf_pages: u64,
    pub branch_pages: u64,
}

fn sizes_of(txn: &ReadTransaction) -> Result<Vec<TableSize>, StoreError> {
    let mut out = Vec::new();
    macro_rules! size {
        ($t:ident) => {
            let t = txn.open_table($t)?;
            let s = t.stats()?;
            out.push(TableSize {
                name: stringify!($t),
                entries: t.len()?,
                stored_bytes: s.stored_bytes(),
                metadata_bytes: s.metadata_bytes(),
                fragmented_bytes: s.fragmented_bytes(),
                leaf_pages: s.leaf_pages(),
                branch_pages: s.branch_pages(),
            });
        };
    }
    each_table!(size);
    Ok(out)
}

impl Store {
    /// Every table's size, largest (by stored bytes and overhead) first.
    pub async fn table_sizes(&self) -> Result<Vec<TableSize>, StoreError> {
        let mut sizes = self.read(sizes_of).await?;
        sizes.sort_by_key(|s| std::cmp::Reverse(s.stored_bytes + s.metadata_bytes + s.fragmented_bytes));
        Ok(sizes)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{NewUser, Store, StoreOptions};

    #[tokio::test]
    async fn every_table_is_measured_and_a_new_user_shows_in_users() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let before = s.table_sizes().await.unwrap();
        assert!(before.iter().any(|t| t.name == "MESSAGE_LOG") && before.iter().any(|t| t.name == "SEARCH"), "{before:?}");
        let new =
            NewUser { username: "ann".into(), password_hash: "-".into(), nickname: "Ann".into(), phone: None, email: None, invite: None };
        s.create_user(new, |_, _| Ok(crate::store::users::Admission::Admit)).await.unwrap().unwrap();
        let after = s.table_sizes().await.unwrap();
        let users = |v: &[super::TableSize]| v.iter().find(|t| t.name == "USERS").map(|t| (t.entries, t.stored_bytes)).unwrap();
        assert_eq!(users(&before), (0, 0));
        let (n, bytes) = users(&after);
        assert_eq!(n, 1);
        assert!(bytes > 8, "the record's bytes are counted: {bytes}");
    }
}
