//! Link previews: the cache of fetched pages (and of failed fetches) per URL, and the storing of
//! a preview's image thumbnail as a file readable by everyone logged in.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::media::{FileRecord, FileUse};
use super::tables::{FILE_USES, FILES, LINK_PREVIEWS};
use super::{Store, StoreError};

/// What a linked page says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LinkPreview {
    /// The URL as asked for (normalized: no fragment).
    pub url: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub site_name: Option<String>,
    /// A thumbnail of the page's image, stored on this server: `GET /api/files/{image}`.
    pub image: Option<String>,
}

/// A cache entry: the preview, or the error code of the fetch that failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedPreview {
    /// Milliseconds since the Unix epoch.
    pub fetched_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<LinkPreview>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Store {
    /// The cached entry for `url`, however old.
    pub async fn cached_link_preview(&self, url: String) -> Result<Option<CachedPreview>, StoreError> {
        self.read(move |txn| {
            // Created by the migration to schema 4; a database made before the table was added
            // to it simply has no previews yet.
            let t = match txn.open_table(LINK_PREVIEWS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let v = t.get(url.as_str())?;
            v.map(|v| serde_json::from_slice(v.value()).map_err(StoreError::from)).transpose()
        })
        .await
    }

    /// Caches `entry` for `url`, with the record of its image thumbnail (if any) in the same
    /// transaction, marked readable by everyone logged in.
    pub async fn put_link_preview(&self, url: String, entry: CachedPreview, image: Option<FileRecord>) -> Result<(), StoreError> {
        self.write(move |txn| {
            if let Some(rec) = &image {
                let mut files = txn.open_table(FILES)?;
                if files.get(rec.id.as_str())?.is_some() {
                    return Err(StoreError::Corrupt("a new file id is already taken".into()));
                }
                let bytes = serde_json::to_vec(rec)?;
                files.insert(rec.id.as_str(), bytes.as_slice())?;
                let (kind, owner) = FileUse::LinkPreview.key();
                txn.open_table(FILE_USES)?.insert((rec.id.as_str(), kind, owner), ())?;
            }
            let bytes = serde_json::to_vec(&entry)?;
            txn.open_table(LINK_PREVIEWS)?.insert(url.as_str(), bytes.as_slice())?;
            Ok(())
        })
        .await
    }
}
