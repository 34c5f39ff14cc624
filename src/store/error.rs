//! `StoreError`, the store's one error type, and how redb's errors map onto it (a full disk and a
//! latched I/O failure get variants of their own, so callers can tell them apart).

use std::path::PathBuf;

#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the data dir {0} is in use by another Chinwag process")]
    InUse(PathBuf),
    #[error("the data dir was written by a newer Chinwag (schema {found}, this build knows {known}); upgrade Chinwag")]
    TooNew { found: u64, known: u64 },
    #[error("database error: {0}")]
    Db(String),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error("the store is shutting down")]
    Closed,
    /// The disk holding the data dir is full (or a file size limit was reached); nothing of the
    /// failed write was stored. Writes resume by themselves once there is room.
    #[error("the disk holding the data dir is full; nothing was written")]
    Full,
    /// An earlier storage failure made the database unusable and it is being opened again.
    #[error("the database is unavailable after a storage failure; it is being reopened")]
    Unavailable,
}

impl StoreError {
    /// Whether the failure is the storage's (a full disk, a failed reopen) rather than the
    /// request's, so that trying again later may work.
    pub fn is_storage_failure(&self) -> bool {
        matches!(self, StoreError::Full | StoreError::Unavailable)
    }
}

/// Out of space: the disk, a quota, or a file size limit.
fn is_disk_full(io: &std::io::Error) -> bool {
    use std::io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
    matches!(io.kind(), StorageFull | QuotaExceeded | FileTooLarge)
}

/// A full disk and a latched earlier I/O failure get their own variants; everything else is
/// reported with redb's text.
fn from_storage(e: &redb::StorageError) -> Option<StoreError> {
    match e {
        redb::StorageError::Io(io) if is_disk_full(io) => Some(StoreError::Full),
        redb::StorageError::PreviousIo => Some(StoreError::Unavailable),
        _ => None,
    }
}

macro_rules! db_error_from {
    ($($t:ty => $storage:path),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                match &e {
                    $storage(s) => from_storage(s).unwrap_or_else(|| StoreError::Db(e.to_string())),
                    _ => StoreError::Db(e.to_string()),
                }
            }
        }
    )*};
}
db_error_from!(
    redb::TransactionError => redb::TransactionError::Storage,
    redb::TableError => redb::TableError::Storage,
    redb::CommitError => redb::CommitError::Storage,
    redb::DatabaseError => redb::DatabaseError::Storage
);

impl From<redb::StorageError> for StoreError {
    fn from(e: redb::StorageError) -> Self {
        from_storage(&e).unwrap_or_else(|| StoreError::Db(e.to_string()))
    }
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        match &e {
            redb::Error::Io(io) if is_disk_full(io) => StoreError::Full,
            redb::Error::PreviousIo => StoreError::Unavailable,
            _ => StoreError::Db(e.to_string()),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}
