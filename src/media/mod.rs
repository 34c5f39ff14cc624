//! Files, images, avatars and stickers.
//!
//! An upload streams to a temporary file while it is hashed and counted against the size limit
//! and the uploader's quota; its type is sniffed from its bytes; images are decoded under limits
//! (dimensions, thumbnail) and lose their metadata; the bytes are then stored once per content
//! (`blobs`) and the record under a random id (`store::media`). A file can be downloaded by its
//! uploader, by the current members of a conversation it was sent in (`chat::access`), and by
//! everyone logged in while it is an avatar or a sticker.
//!
//! Architecture invariants: no user input reaches a path (blobs are named by hash, records by
//! random hex ids); no upload is held in memory whole except an image being decoded, which is
//! bounded by the upload limit and runs on the blocking pool under a semaphore.

pub mod audio;
pub mod blobs;
pub mod images;
pub mod routes;
pub mod sniff;

use std::sync::Arc;

use axum::http::StatusCode;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;

use crate::chat::{self, Want};
use crate::config::Config;
use crate::http::ApiError;
use crate::ids::UserId;
use crate::store::media::{AudioMeta, FileRecord, ImageMeta};
use crate::store::{Store, now_ms};
use blobs::{Blobs, TempBlob};

/// Images decoded at once; each may take up to `images::MAX_DECODE_BYTES`.
const DECODE_CONCURRENCY: usize = 2;

/// The media feature's part of the application state.
#[derive(Debug)]
pub struct Media {
    pub blobs: Blobs,
    pub max_upload_bytes: u64,
    pub user_quota_bytes: u64,
    /// Held while an image is decoded (uploads and link preview images alike).
    pub(crate) decoding: tokio::sync::Semaphore,
}

impl Media {
    pub fn open(config: &Config) -> std::io::Result<Arc<Media>> {
        Ok(Arc::new(Media {
            blobs: Blobs::open(&config.data_dir)?,
            max_upload_bytes: config.media.max_upload_bytes,
            user_quota_bytes: config.media.user_quota_bytes,
            decoding: tokio::sync::Semaphore::new(DECODE_CONCURRENCY),
        }))
    }
}

/// A stored file as clients see it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FileView {
    /// Use in messages (`file_id`) and in `GET /api/files/{id}`.
    pub id: String,
    pub name: String,
    pub size: u64,
    /// Sniffed from the content.
    pub mime: String,
    /// Set for images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Whether `GET /api/files/{id}/thumb` has a thumbnail.
    pub thumb: bool,
    /// Set for audio-only Ogg and `WebM` recordings: their length as their data says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    pub created_at: u64,
}

impl From<&FileRecord> for FileView {
    fn from(f: &FileRecord) -> Self {
        FileView {
            id: f.id.clone(),
            name: f.name.clone(),
            size: f.size,
            mime: f.mime.clone(),
            width: f.image.as_ref().map(|i| i.width),
            height: f.image.as_ref().map(|i| i.height),
            thumb: f.image.is_some(),
            duration_ms: f.audio.as_ref().map(|a| a.duration_ms),
            created_at: f.created_at,
        }
    }
}

pub fn too_large(limit: u64) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("A file can be at most {}.", human(limit)))
}

pub fn quota_exceeded(used: u64, quota: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "quota_exceeded",
        format!("This file does not fit in your storage: you use {} of your {}.", human(used), human(quota)),
    )
}

fn human(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB { format!("{:.1} MiB", bytes as f64 / MIB as f64) } else { format!("{bytes} bytes") }
}

fn io_error(e: &std::io::Error) -> ApiError {
    tracing::error!(error = %e, "file storage failed");
    ApiError::internal()
}

/// An upload in progress: written to a temporary file, hashed and counted as it arrives.
pub struct Incoming {
    temp: TempBlob,
    file: tokio::fs::File,
    hasher: Sha256,
    size: u64,
    head: Vec<u8>,
    max: u64,
    quota_room: u64,
    used: u64,
    quota: u64,
}

impl Incoming {
    /// Starts an upload for someone who has used `used` of `quota` bytes.
    pub async fn start(media: &Media, used: u64, quota: u64) -> Result<Incoming, ApiError> {
        let temp = media.blobs.temp();
        let file = tokio::fs::File::create_new(temp.path()).await.map_err(|e| io_error(&e))?;
        Ok(Incoming {
            temp,
            file,
            hasher: Sha256::new(),
            size: 0,
            head: Vec::new(),
            max: media.max_upload_bytes,
            quota_room: quota.saturating_sub(used),
            used,
            quota,
        })
    }

    /// Takes the next piece; refuses as soon as the size limit or the quota is passed, so a
    /// huge upload costs no more than the limit.
    pub async fn push(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        let size = self.size + chunk.len() as u64;
        if size > self.max {
            return Err(too_large(self.max));
        }
        if size > self.quota_room {
            return Err(quota_exceeded(self.used, self.quota));
        }
        self.file.write_all(chunk).await.map_err(|e| io_error(&e))?;
        self.hasher.update(chunk);
        if self.head.len() < sniff::HEAD_BYTES {
            let take = (sniff::HEAD_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.size = size;
        Ok(())
    }

    /// Completes the upload: sniffs, processes images, stores the blobs and the record.
    pub async fn finish(mut self, media: &Arc<Media>, store: &Store, uploader: UserId, name: String) -> Result<FileRecord, ApiError> {
        if self.size == 0 {
            return Err(ApiError::bad_request("empty_file", "The file is empty."));
        }
        self.file.flush().await.map_err(|e| io_error(&e))?;
        self.file.sync_all().await.map_err(|e| io_error(&e))?;
        let Incoming { temp, file, hasher, size, head, .. } = self;
        drop(file);
        let sha = hex::encode(hasher.finalize());
        let mime = sniff::sniff(&head);
        let is_image = images::format_of(mime).is_some();
        // Only images are decoded; the permit bounds the memory that decoding takes at once.
        let permit = if is_image { Some(media.decoding.acquire().await.map_err(|_| ApiError::busy())?) } else { None };
        let m = media.clone();
        let stored = tokio::task::spawn_blocking(move || store_blobs(&m.blobs, temp, sha, size, mime)).await.map_err(|e| {
            tracing::error!(error = %e, "upload processing failed");
            ApiError::internal()
        })??;
        drop(permit);
        let quota = media.user_quota_bytes;
        let mut id = [0u8; 16];
        rand::fill(&mut id);
        let rec = FileRecord {
            id: hex::encode(id),
            sha256: stored.sha256,
            size: stored.size,
            mime: stored.mime,
            name,
            uploader,
            created_at: now_ms(),
            image: stored.image,
            audio: stored.audio,
        };
        // A refusal here (a race with another upload of the same user) can leave a blob that no
        // record names; it costs disk space, never correctness.
        store.create_file(rec, quota).await?.map_err(|r| match r {
            crate::store::media::FileRefusal::QuotaExceeded { used } => quota_exceeded(used, quota),
            _ => ApiError::internal(),
        })
    }
}

/// What was stored for an upload.
struct Stored {
    sha256: String,
    size: u64,
    mime: String,
    image: Option<ImageMeta>,
    audio: Option<AudioMeta>,
}

/// Blocking: strips image metadata, decodes images, and moves the blobs into place.
fn store_blobs(blobs: &Blobs, temp: TempBlob, sha: String, size: u64, mime: &'static str) -> Result<Stored, ApiError> {
    let Some(format) = images::format_of(mime) else {
        // Recordings small enough to be voice messages get their length read from their data.
        let audio = if matches!(mime, "audio/ogg" | "video/webm") && size <= audio::MAX_PARSE_BYTES as u64 {
            let bytes = std::fs::read(temp.path()).map_err(|e| io_error(&e))?;
            audio::probe(mime, &bytes).map(|a| AudioMeta { duration_ms: a.duration_ms })
        } else {
            None
        };
        blobs.keep(temp, &sha).map_err(|e| io_error(&e))?;
        return Ok(Stored { sha256: sha, size, mime: mime.into(), image: None, audio });
    };
    let original = std::fs::read(temp.path()).map_err(|e| io_error(&e))?;
    let stripped = images::strip_metadata(format, &original)
        .map_err(|_| ApiError::bad_request("bad_image", "This image is damaged and cannot be stored."))?;
    let (decoded, mime) = match images::decode(format, &original) {
        Ok(d) => (Some(d), mime),
        Err(e) => {
            // Not decodable within the limits: kept as a plain file, without metadata.
            tracing::info!(error = %e, "an uploaded image was not decoded");
            (None, "application/octet-stream")
        }
    };
    let upright = decoded.as_ref().and_then(|d| d.upright.clone());
    let (sha, size) = match upright.or(stripped) {
        Some(bytes) => {
            let sha = blobs.put(&bytes).map_err(|e| io_error(&e))?;
            drop(temp);
            (sha, bytes.len() as u64)
        }
        None => {
            blobs.keep(temp, &sha).map_err(|e| io_error(&e))?;
            (sha, size)
        }
    };
    let image = match decoded {
        Some(d) => Some(ImageMeta {
            width: d.width,
            height: d.height,
            thumb_sha256: blobs.put(&d.thumb).map_err(|e| io_error(&e))?,
            thumb_mime: d.thumb_mime.into(),
        }),
        None => None,
    };
    Ok(Stored { sha256: sha, size, mime: mime.into(), image, audio: None })
}

/// The file `id` if `user` may read it: its uploader, anyone while it is an avatar or a
/// sticker, the current members of a conversation it was sent in (a forward's included), and
/// whoever saved a message carrying it to their favourites. Anything else is
/// `not_found`, so that nobody learns whether a file exists.
pub async fn readable(store: &Store, config: &Config, user: UserId, id: &str) -> Result<FileRecord, ApiError> {
    let not_found = || ApiError::not_found("No such file.");
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(not_found());
    }
    let rec = store.file(id.to_owned()).await?.ok_or_else(not_found)?;
    if rec.uploader == user {
        return Ok(rec);
    }
    let (public, convs) = store.file_audience(id.to_owned()).await?;
    if public {
        return Ok(rec);
    }
    for conv in convs {
        if chat::access(store, config, user, conv, Want::Read).await?.is_ok() {
            return Ok(rec);
        }
    }
    // A favourite is the user's own copy: its files stay theirs to read.
    if store.file_saved_by(id.to_owned(), user).await? {
        return Ok(rec);
    }
    Err(not_found())
}
