//! Files and what refers to them: file records keyed by an unguessable id, the conversations a
//! file was sent in (who may download it), the uses that make a file readable by everyone logged
//! in (avatars and stickers), each user's storage use, and sticker packs.
//!
//! The bytes live outside the database, content-addressed by SHA-256 (`media::blobs`); a record
//! names its blob by hash only, so no user input ever reaches a path.

use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::messages::MessageRefusal;
use super::social::GroupRecord;
use super::tables::{FILE_MSGS, FILE_USES, FILES, GROUPS, META, STICKER_PACKS, USER_FILE_BYTES, USERS};
use super::users::{UserRecord, load_user};
use super::{Store, StoreError, now_ms};
use crate::ids::{ConvId, UserId};
use crate::protocol::Content;

/// A stored file as the server knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// 32 lowercase hex digits (128 random bits).
    pub id: String,
    /// Hex SHA-256 of the bytes as stored (after metadata was stripped).
    pub sha256: String,
    pub size: u64,
    /// Sniffed from the bytes, never taken from the client.
    pub mime: String,
    /// The client's name, sanitized: one path component, no control characters.
    pub name: String,
    pub uploader: UserId,
    pub created_at: u64,
    /// Present when the file decoded as an image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageMeta>,
    /// Present for audio-only Ogg and `WebM` files whose length could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioMeta>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioMeta {
    pub duration_ms: u64,
}

/// Types a voice message may be: the recorders' formats (`WebM` and Ogg, whose length is read
/// from their data, and MP4 or MP3, whose length is only bounded by their size).
const VOICE_TYPES: &[&str] = &["video/webm", "audio/ogg", "audio/mp4", "audio/mpeg"];
/// Highest bit rate a voice recording may have, bytes per second (256 kbit/s; recorders use
/// 32 to 128), plus room for the container's headers.
const VOICE_BYTES_PER_SEC: u64 = 32 * 1024;
const VOICE_SLACK_BYTES: u64 = 64 * 1024;
/// How far a claimed duration may be from the recording's own, milliseconds: a stop button
/// lags the recorder, and a recording's last frame starts before it ends.
const VOICE_TOLERANCE_MS: u64 = 1500;

/// Checks a voice message's claims against its stored file and returns the content as stored:
/// the duration the file's data gives where it can be read, its size and type.
fn voice_of(f: FileRecord, duration_ms: u64, waveform: Vec<u8>, max_ms: Option<u64>) -> Result<Content, MessageRefusal> {
    if !VOICE_TYPES.contains(&f.mime.as_str()) || (f.mime == "video/webm" || f.mime == "audio/ogg") && f.audio.is_none() {
        return Err(MessageRefusal::Rule("That file is not an audio recording."));
    }
    let max_ms = max_ms.unwrap_or(u64::MAX);
    let duration_ms = match &f.audio {
        Some(a) if a.duration_ms.abs_diff(duration_ms) > VOICE_TOLERANCE_MS => {
            return Err(MessageRefusal::Rule("The voice message's duration does not match its recording."));
        }
        Some(a) if a.duration_ms > max_ms.saturating_add(VOICE_TOLERANCE_MS) => {
            return Err(MessageRefusal::Rule("The voice message is longer than this server allows."));
        }
        Some(a) => a.duration_ms.clamp(1, max_ms),
        None => duration_ms,
    };
    if f.size > duration_ms.div_ceil(1000).saturating_add(1).saturating_mul(VOICE_BYTES_PER_SEC).saturating_add(VOICE_SLACK_BYTES) {
        return Err(MessageRefusal::Rule("The voice recording is too large for its duration."));
    }
    Ok(Content::Voice { file_id: f.id, duration_ms, waveform, size: f.size, mime: f.mime })
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMeta {
    pub width: u32,
    pub height: u32,
    /// Hex SHA-256 of the thumbnail blob.
    pub thumb_sha256: String,
    pub thumb_mime: String,
}

/// What makes a file readable by everyone logged in. Each use is checked against the live
/// record it names (the user's avatar, the group's avatar, the pack's stickers), so a use that
/// was replaced or deleted no longer counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileUse {
    UserAvatar(UserId),
    GroupAvatar(u64),
    Sticker {
        pack: u64,
    },
    /// The thumbnail of a link preview's image: a copy of public web content, stored by the
    /// server itself (uploader 0), readable by everyone logged in for as long as it exists.
    LinkPreview,
}

impl FileUse {
    pub(super) fn key(self) -> (u64, u64) {
        match self {
            FileUse::UserAvatar(u) => (1, u.0),
            FileUse::GroupAvatar(g) => (2, g),
            FileUse::Sticker { pack } => (3, pack),
            FileUse::LinkPreview => (4, 0),
        }
    }
}

/// A sticker pack that server administrators keep.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StickerPack {
    pub id: u64,
    pub name: String,
    pub created_by: UserId,
    pub created_at: u64,
    pub stickers: Vec<StickerRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StickerRecord {
    pub file_id: String,
    pub width: u32,
    pub height: u32,
}

/// Why a change involving a file was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileRefusal {
    /// No such file, or not one the caller uploaded (the two look the same).
    NoSuchFile,
    NotAnImage,
    NoSuchPack,
    /// The user's storage quota would be exceeded; carries the bytes already used.
    QuotaExceeded {
        used: u64,
    },
    /// A count limit (stickers per pack) is reached.
    TooMany,
}

/// Most stickers in one pack.
pub const MAX_STICKERS_PER_PACK: usize = 200;

fn json<T: serde::de::DeserializeOwned>(v: &[u8]) -> Result<T, StoreError> {
    Ok(serde_json::from_slice(v)?)
}

fn load_file(t: &impl ReadableTable<&'static str, &'static [u8]>, id: &str) -> Result<Option<FileRecord>, StoreError> {
    t.get(id)?.map(|v| json(v.value())).transpose()
}

fn load_pack(t: &impl ReadableTable<u64, &'static [u8]>, id: u64) -> Result<Option<StickerPack>, StoreError> {
    t.get(id)?.map(|v| json(v.value())).transpose()
}

/// A file `user` uploaded, or the refusal that hides whether it exists.
fn own_file(txn: &WriteTransaction, user: UserId, id: &str) -> Result<Result<FileRecord, FileRefusal>, StoreError> {
    Ok(match load_file(&txn.open_table(FILES)?, id)? {
        Some(f) if f.uploader == user => Ok(f),
        _ => Err(FileRefusal::NoSuchFile),
    })
}

/// Whether some use of `id` is still live.
fn is_public(txn: &ReadTransaction, id: &str) -> Result<bool, StoreError> {
    let uses = txn.open_table(FILE_USES)?;
    for e in uses.range((id, 0, 0)..=(id, u64::MAX, u64::MAX))? {
        let (k, _) = e?;
        let (_, kind, owner) = k.value();
        let live = match kind {
            1 => load_user(&txn.open_table(USERS)?, owner)?.is_some_and(|u| u.avatar.as_deref() == Some(id)),
            2 => txn
                .open_table(GROUPS)?
                .get(owner)?
                .map(|v| json::<GroupRecord>(v.value()))
                .transpose()?
                .is_some_and(|g| g.avatar.as_deref() == Some(id)),
            3 => load_pack(&txn.open_table(STICKER_PACKS)?, owner)?.is_some_and(|p| p.stickers.iter().any(|s| s.file_id == id)),
            4 => true,
            _ => false,
        };
        if live {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Checks a client's media content against the stored file and fills in what the server knows
/// (name, size, type, dimensions); clients cannot claim other values. Other content passes
/// through. Reads only: a refusal writes nothing.
pub(super) fn attach_in_txn(
    txn: &WriteTransaction,
    sender: UserId,
    content: Content,
    voice_max_ms: Option<u64>,
) -> Result<Result<Content, MessageRefusal>, StoreError> {
    const NOT_YOURS: MessageRefusal = MessageRefusal::Rule("You can only send files you uploaded.");
    Ok(match content {
        Content::Image { file_id, .. } => match own_file(txn, sender, &file_id)? {
            Err(_) => Err(NOT_YOURS),
            Ok(FileRecord { image: None, .. }) => Err(MessageRefusal::Rule("That file is not an image; send it as a file.")),
            Ok(f) => {
                let img = f.image.as_ref().map_or((0, 0), |i| (i.width, i.height));
                Ok(Content::Image { file_id, name: f.name, size: f.size, width: img.0, height: img.1 })
            }
        },
        Content::File { file_id, .. } => match own_file(txn, sender, &file_id)? {
            Err(_) => Err(NOT_YOURS),
            Ok(f) => Ok(Content::File { file_id, name: f.name, size: f.size, mime: f.mime }),
        },
        Content::Voice { file_id, duration_ms, waveform, .. } => match own_file(txn, sender, &file_id)? {
            Err(_) => Err(NOT_YOURS),
            Ok(f) => voice_of(f, duration_ms, waveform, voice_max_ms),
        },
        Content::Sticker { file_id, .. } => {
            let packs = txn.open_table(STICKER_PACKS)?;
            let mut found = None;
            for e in txn.open_table(FILE_USES)?.range((file_id.as_str(), 3, 0)..=(file_id.as_str(), 3, u64::MAX))? {
                let (k, _) = e?;
                if let Some(p) = load_pack(&packs, k.value().2)?
                    && let Some(s) = p.stickers.into_iter().find(|s| s.file_id == file_id)
                {
                    found = Some(s);
                    break;
                }
            }
            match found {
                Some(s) => Ok(Content::Sticker { file_id, width: s.width, height: s.height }),
                None => Err(MessageRefusal::Rule("No such sticker.")),
            }
        }
        other => Ok(other),
    })
}

/// Records that message `seq` of the conversation `key` carries its files (a card's too), so
/// that the conversation's members may download it.
pub(super) fn share_in_txn(txn: &WriteTransaction, content: &Content, key: (u64, u64), seq: u64) -> Result<(), StoreError> {
    let files = content.files();
    if files.is_empty() {
        // Most messages: no table to open (opening one is a lookup in redb's table tree).
        return Ok(());
    }
    let mut shares = txn.open_table(FILE_MSGS)?;
    for file_id in files {
        shares.insert((file_id, key.0, key.1, seq), ())?;
    }
    Ok(())
}

/// Undoes [`share_in_txn`] for a recalled message: once no message of the conversation
/// carries the file, its members can no longer download it (the uploader still can).
pub(super) fn unshare_in_txn(txn: &WriteTransaction, content: &Content, key: (u64, u64), seq: u64) -> Result<(), StoreError> {
    let mut shares = txn.open_table(FILE_MSGS)?;
    for file_id in content.files() {
        shares.remove((file_id, key.0, key.1, seq))?;
    }
    Ok(())
}

impl Store {
    /// Stores a new file record if the uploader's quota allows its size.
    pub async fn create_file(&self, rec: FileRecord, quota: u64) -> Result<Result<FileRecord, FileRefusal>, StoreError> {
        self.write(move |txn| {
            let mut usage = txn.open_table(USER_FILE_BYTES)?;
            let used = usage.get(rec.uploader.0)?.map_or(0, |v| v.value());
            if used.saturating_add(rec.size) > quota {
                return Ok(Err(FileRefusal::QuotaExceeded { used }));
            }
            let mut files = txn.open_table(FILES)?;
            if files.get(rec.id.as_str())?.is_some() {
                // 128 random bits do not collide; a repeat means the random source is broken.
                return Err(StoreError::Corrupt("a new file id is already taken".into()));
            }
            let bytes = serde_json::to_vec(&rec)?;
            files.insert(rec.id.as_str(), bytes.as_slice())?;
            usage.insert(rec.uploader.0, used + rec.size)?;
            Ok(Ok(rec))
        })
        .await
    }

    pub async fn file(&self, id: String) -> Result<Option<FileRecord>, StoreError> {
        self.read(move |txn| load_file(&txn.open_table(FILES)?, &id)).await
    }

    /// Bytes of the files `user` uploaded.
    pub async fn file_usage(&self, user: UserId) -> Result<u64, StoreError> {
        self.read(move |txn| Ok(txn.open_table(USER_FILE_BYTES)?.get(user.0)?.map_or(0, |v| v.value()))).await
    }

    /// Whether the file is readable by everyone logged in (a current avatar or sticker), and the
    /// conversations it was sent in (by a message not recalled).
    pub async fn file_audience(&self, id: String) -> Result<(bool, Vec<ConvId>), StoreError> {
        self.read(move |txn| {
            if is_public(txn, &id)? {
                return Ok((true, Vec::new()));
            }
            let mut convs = Vec::new();
            for e in txn.open_table(FILE_MSGS)?.range((id.as_str(), 0, 0, 0)..=(id.as_str(), u64::MAX, u64::MAX, u64::MAX))? {
                let (k, _) = e?;
                let (_, a, b, _) = k.value();
                let conv = ConvId::from_key((a, b));
                if convs.last() != Some(&conv) {
                    convs.push(conv);
                }
            }
            Ok((false, convs))
        })
        .await
    }

    /// Sets (or with `None` clears) `user`'s avatar to an image they uploaded.
    pub async fn set_user_avatar(&self, user: UserId, file: Option<String>) -> Result<Result<UserRecord, FileRefusal>, StoreError> {
        self.write(move |txn| {
            if let Some(id) = &file {
                match own_file(txn, user, id)? {
                    Err(r) => return Ok(Err(r)),
                    Ok(f) if f.image.is_none() => return Ok(Err(FileRefusal::NotAnImage)),
                    Ok(_) => {}
                }
            }
            let mut users = txn.open_table(USERS)?;
            let Some(mut rec) = load_user(&users, user.0)? else { return Err(StoreError::Corrupt(format!("user {user} vanished"))) };
            if let Some(id) = &file {
                let (kind, owner) = FileUse::UserAvatar(user).key();
                txn.open_table(FILE_USES)?.insert((id.as_str(), kind, owner), ())?;
            }
            rec.avatar = file;
            let bytes = serde_json::to_vec(&rec)?;
            users.insert(user.0, bytes.as_slice())?;
            Ok(Ok(rec))
        })
        .await
    }

    /// Notes that `use_` may refer to `id`, an image `user` uploaded. Written before the change
    /// that makes the use real (a group's avatar): a use whose owner never points at the file
    /// grants nothing.
    pub async fn add_file_use(&self, user: UserId, id: String, use_: FileUse) -> Result<Result<FileRecord, FileRefusal>, StoreError> {
        self.write(move |txn| {
            let f = match own_file(txn, user, &id)? {
                Err(r) => return Ok(Err(r)),
                Ok(f) if f.image.is_none() => return Ok(Err(FileRefusal::NotAnImage)),
                Ok(f) => f,
            };
            let (kind, owner) = use_.key();
            txn.open_table(FILE_USES)?.insert((id.as_str(), kind, owner), ())?;
            Ok(Ok(f))
        })
        .await
    }

    pub async fn sticker_packs(&self) -> Result<Vec<StickerPack>, StoreError> {
        self.read(|txn| {
            let mut out = Vec::new();
            for e in txn.open_table(STICKER_PACKS)?.iter()? {
                let (_, v) = e?;
                out.push(json(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    pub async fn create_sticker_pack(&self, by: UserId, name: String) -> Result<StickerPack, StoreError> {
        self.write(move |txn| {
            let mut meta = txn.open_table(META)?;
            let id = meta.get("next_sticker_pack_id")?.map_or(1, |v| v.value());
            meta.insert("next_sticker_pack_id", id + 1)?;
            let pack = StickerPack { id, name, created_by: by, created_at: now_ms(), stickers: Vec::new() };
            let bytes = serde_json::to_vec(&pack)?;
            txn.open_table(STICKER_PACKS)?.insert(id, bytes.as_slice())?;
            Ok(pack)
        })
        .await
    }

    /// Deletes a pack; returns whether it existed. Stickers already sent stay readable in their
    /// conversations.
    pub async fn delete_sticker_pack(&self, id: u64) -> Result<bool, StoreError> {
        self.write(move |txn| {
            let mut packs = txn.open_table(STICKER_PACKS)?;
            let Some(pack) = load_pack(&packs, id)? else { return Ok(false) };
            packs.remove(id)?;
            let mut uses = txn.open_table(FILE_USES)?;
            for s in &pack.stickers {
                uses.remove((s.file_id.as_str(), 3, id))?;
            }
            Ok(true)
        })
        .await
    }

    /// Adds an image `by` uploaded to pack `pack`.
    pub async fn add_sticker(&self, by: UserId, pack: u64, file: String) -> Result<Result<StickerPack, FileRefusal>, StoreError> {
        self.write(move |txn| {
            let mut packs = txn.open_table(STICKER_PACKS)?;
            let Some(mut p) = load_pack(&packs, pack)? else { return Ok(Err(FileRefusal::NoSuchPack)) };
            let f = match own_file(txn, by, &file)? {
                Err(r) => return Ok(Err(r)),
                Ok(f) => f,
            };
            let Some(img) = f.image else { return Ok(Err(FileRefusal::NotAnImage)) };
            if p.stickers.iter().any(|s| s.file_id == file) {
                return Ok(Ok(p));
            }
            if p.stickers.len() >= MAX_STICKERS_PER_PACK {
                return Ok(Err(FileRefusal::TooMany));
            }
            let (kind, owner) = FileUse::Sticker { pack }.key();
            txn.open_table(FILE_USES)?.insert((file.as_str(), kind, owner), ())?;
            p.stickers.push(StickerRecord { file_id: file, width: img.width, height: img.height });
            let bytes = serde_json::to_vec(&p)?;
            packs.insert(pack, bytes.as_slice())?;
            Ok(Ok(p))
        })
        .await
    }

    /// Removes a sticker from a pack; `None` when there is no such pack.
    pub async fn remove_sticker(&self, pack: u64, file: String) -> Result<Option<StickerPack>, StoreError> {
        self.write(move |txn| {
            let mut packs = txn.open_table(STICKER_PACKS)?;
            let Some(mut p) = load_pack(&packs, pack)? else { return Ok(None) };
            p.stickers.retain(|s| s.file_id != file);
            txn.open_table(FILE_USES)?.remove((file.as_str(), 3, pack))?;
            let bytes = serde_json::to_vec(&p)?;
            packs.insert(pack, bytes.as_slice())?;
            Ok(Some(p))
        })
        .await
    }
}
