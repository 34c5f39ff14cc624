//! Backups: one `.tar.zst` archive holding a consistent snapshot of the database, every file
//! blob, and a manifest of SHA-256 sums; and restoring such an archive into an empty data dir,
//! checking every sum.
//!
//! A backup can be taken while the server runs: the snapshot comes from a read transaction,
//! and blobs are immutable once written (a blob is in place before the record that names it
//! commits), so every blob the snapshot refers to is there.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{SCHEMA_VERSION, Store, now_ms};

pub const DB_NAME: &str = "chinwag.redb";
const MANIFEST: &str = "manifest.json";

#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub schema_version: u64,
    pub created_at: u64,
    pub files: Vec<FileSum>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileSum {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// Progress reports: (what, done, total).
pub type Progress<'a> = &'a mut (dyn FnMut(&str, u64, u64) + Send);
/// The same, owned, for work that moves to another thread.
pub type BoxedProgress = Box<dyn FnMut(&str, u64, u64) + Send>;

fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(h.finalize()), size))
}

/// Every blob file under `<data_dir>/blobs`, except uploads still in progress.
fn blob_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![data_dir.join("blobs")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "tmp") {
                    stack.push(p);
                }
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Writes a backup archive of `store` (whose data dir is `data_dir`) to `out`.
pub async fn create(store: &Store, data_dir: &Path, out: impl Write + Send + 'static, progress: BoxedProgress) -> anyhow::Result<Manifest> {
    let mut progress = progress;
    let mut r = [0u8; 6];
    rand::fill(&mut r);
    let snap = data_dir.join(format!("backup-{}.redb.tmp", hex::encode(r)));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, u64)>();
    let snap2 = snap.clone();
    let copying = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .snapshot_to(snap2, move |d, t| {
                    // Progress is advisory; a closed receiver only means nobody is watching.
                    let _ = tx.send((d, t));
                })
                .await
        }
    });
    while let Some((d, t)) = rx.recv().await {
        progress("database", d, t);
    }
    let result = copying.await.map_err(|e| anyhow::anyhow!("snapshot task failed: {e}"));
    let snapshot = match result {
        Ok(Ok(_)) => snap.clone(),
        Ok(Err(e)) => {
            let _ = std::fs::remove_file(&snap);
            return Err(e.into());
        }
        Err(e) => {
            let _ = std::fs::remove_file(&snap);
            return Err(e);
        }
    };
    let data_dir = data_dir.to_path_buf();
    let written = tokio::task::spawn_blocking(move || write_archive(&data_dir, &snapshot, out, &mut *progress)).await;
    let _ = std::fs::remove_file(&snap);
    written.map_err(|e| anyhow::anyhow!("archive task failed: {e}"))?
}

fn write_archive(data_dir: &Path, snapshot: &Path, out: impl Write, progress: Progress<'_>) -> anyhow::Result<Manifest> {
    let enc = zstd::Encoder::new(out, 3)?;
    let mut tar = tar::Builder::new(enc);
    let mut files = Vec::new();
    let mut add = |tar: &mut tar::Builder<zstd::Encoder<'static, _>>, src: &Path, name: &str| -> anyhow::Result<()> {
        let (sha256, size) = sha256_file(src)?;
        tar.append_path_with_name(src, name)?;
        files.push(FileSum { path: name.to_owned(), size, sha256 });
        Ok(())
    };
    add(&mut tar, snapshot, DB_NAME)?;
    let blobs = blob_files(data_dir);
    let total = blobs.len() as u64;
    for (i, b) in blobs.iter().enumerate() {
        let rel = b.strip_prefix(data_dir)?.to_string_lossy().replace('\\', "/");
        add(&mut tar, b, &rel)?;
        progress("files", i as u64 + 1, total);
    }
    let manifest = Manifest { format: 1, schema_version: SCHEMA_VERSION, created_at: now_ms(), files };
    let bytes = serde_json::to_vec_pretty(&manifest)?;
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(manifest.created_at / 1000);
    header.set_cksum();
    tar.append_data(&mut header, MANIFEST, bytes.as_slice())?;
    let enc = tar.into_inner()?;
    let mut inner = enc.finish()?;
    inner.flush()?;
    Ok(manifest)
}

/// Restores an archive into `data_dir`, which must be empty or absent. Every file's SHA-256 is
/// checked against the manifest; on any mismatch the restored files are removed again.
pub fn restore(archive: impl Read, data_dir: &Path, progress: Progress<'_>) -> anyhow::Result<Manifest> {
    if data_dir.exists() && std::fs::read_dir(data_dir)?.next().is_some() {
        anyhow::bail!("{} is not empty: restore only into an empty data directory", data_dir.display());
    }
    std::fs::create_dir_all(data_dir)?;
    let result = extract(archive, data_dir, progress);
    if result.is_err() {
        // Leave no half-restored data dir that a server could start on.
        for e in std::fs::read_dir(data_dir).into_iter().flatten().flatten() {
            let p = e.path();
            let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        }
    }
    result
}

fn extract(archive: impl Read, data_dir: &Path, progress: Progress<'_>) -> anyhow::Result<Manifest> {
    let dec = zstd::Decoder::new(archive)?;
    let mut tar = tar::Archive::new(dec);
    let mut seen: Vec<FileSum> = Vec::new();
    let mut manifest: Option<Manifest> = None;
    for entry in tar.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        if name == MANIFEST {
            let mut s = String::new();
            entry.read_to_string(&mut s)?;
            manifest = Some(serde_json::from_str(&s)?);
            continue;
        }
        // Only the names a backup writes; nothing may escape the data dir.
        let safe = name == DB_NAME
            || (name.starts_with("blobs/")
                && name.split('/').all(|p| {
                    !p.is_empty()
                        && p != ".."
                        && p != "."
                        && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
                }));
        if !safe {
            anyhow::bail!("the archive holds an unexpected entry: {name:?}");
        }
        let dest = data_dir.join(&name);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut out = std::fs::File::create(&dest)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = entry.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            out.write_all(&buf[..n])?;
            size += n as u64;
        }
        out.sync_all()?;
        seen.push(FileSum { path: name, size, sha256: hex::encode(h.finalize()) });
        progress("files", seen.len() as u64, 0);
    }
    let manifest = manifest.ok_or_else(|| anyhow::anyhow!("the archive has no manifest: it is incomplete or not a Chinwag backup"))?;
    if manifest.schema_version > SCHEMA_VERSION {
        anyhow::bail!("the backup comes from a newer Chinwag (schema {}); upgrade Chinwag first", manifest.schema_version);
    }
    for want in &manifest.files {
        match seen.iter().find(|s| s.path == want.path) {
            Some(got) if got == want => {}
            Some(_) => anyhow::bail!("{} does not match its checksum: the backup is damaged", want.path),
            None => anyhow::bail!("{} is missing from the backup", want.path),
        }
    }
    if seen.len() != manifest.files.len() {
        anyhow::bail!("the backup holds files its manifest does not list");
    }
    Ok(manifest)
}
