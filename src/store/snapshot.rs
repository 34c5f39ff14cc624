//! Consistent copies of the database: every table read through one read transaction and
//! written into a fresh redb file. The live file is never copied, so a snapshot taken while
//! the server writes is exactly the state of one commit.

use std::path::Path;

use redb::{Database, Key, ReadTransaction, ReadableTable, TableDefinition, Value, WriteTransaction};

// Every table, for `each_table!`: naming them again here would be a second list to keep.
#[allow(clippy::wildcard_imports)]
use super::tables::*;
use super::{Store, StoreError};

fn copy<K: Key + 'static, V: Value + 'static>(
    src: &ReadTransaction,
    dst: &WriteTransaction,
    def: TableDefinition<K, V>,
    progress: &mut dyn FnMut(u64),
) -> Result<(), StoreError> {
    let from = src.open_table(def)?;
    let mut to = dst.open_table(def)?;
    let mut n = 0u64;
    for entry in from.iter()? {
        let (k, v) = entry?;
        to.insert(k.value(), v.value())?;
        n += 1;
        if n.is_multiple_of(1024) {
            progress(1024);
        }
    }
    progress(n % 1024);
    Ok(())
}

/// Copies every table of `src` into a new database at `path`; `progress` hears entry counts.
pub(crate) fn copy_all(src: &ReadTransaction, path: &Path, progress: &mut dyn FnMut(u64)) -> Result<(), StoreError> {
    // A small cache: the copy is written once and never read back here (redb's default of 1 GiB
    // would hold much of a large database in the server's memory while a backup runs).
    let db = Database::builder().set_cache_size(32 << 20).create(path)?;
    let mut txn = db.begin_write()?;
    txn.set_two_phase_commit(true);
    macro_rules! copy_table {
        ($t:ident) => {
            copy(src, &txn, $t, progress)?;
        };
    }
    each_table!(copy_table);
    txn.commit()?;
    Ok(())
}

/// Entries in every table of `src`.
pub(crate) fn count_all(src: &ReadTransaction) -> Result<u64, StoreError> {
    use redb::ReadableTableMetadata;
    let mut n = 0;
    macro_rules! count {
        ($t:ident) => {
            n += src.open_table($t)?.len()?;
        };
    }
    each_table!(count);
    Ok(n)
}

impl Store {
    /// Writes a consistent copy of the database to `path` (which must not exist), on the
    /// blocking pool. Returns the number of entries copied.
    pub async fn snapshot_to(&self, path: std::path::PathBuf, progress: impl FnMut(u64, u64) + Send + 'static) -> Result<u64, StoreError> {
        let mut progress = progress;
        self.read(move |txn| {
            let total = count_all(txn)?;
            let mut done = 0;
            let mut tick = |n: u64| {
                done += n;
                progress(done, total);
            };
            copy_all(txn, &path, &mut tick)?;
            Ok(total)
        })
        .await
    }
}
