//! Content-addressed blob storage under `<data_dir>/blobs`: an upload is written to `tmp/`,
//! hashed as it arrives, and renamed to `<first two hex digits>/<sha256 hex>`, so the same
//! content is stored once. Paths are built from hex hashes only, never from user input.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

#[derive(Debug)]
pub struct Blobs {
    root: PathBuf,
    tmp: PathBuf,
}

/// A file in `tmp/` that is removed when dropped unless it was kept.
#[derive(Debug)]
pub struct TempBlob {
    path: PathBuf,
}

impl TempBlob {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a temporary upload");
        }
    }
}

fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Blobs {
    /// Creates `blobs/` and `blobs/tmp/` and clears what a crash left in `tmp/`.
    pub fn open(data_dir: &Path) -> std::io::Result<Blobs> {
        let root = data_dir.join("blobs");
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        for entry in std::fs::read_dir(&tmp)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(Blobs { root, tmp })
    }

    /// Where the blob with this hash lives; `None` for anything that is not a hex SHA-256.
    pub fn path_of(&self, sha256: &str) -> Option<PathBuf> {
        is_hash(sha256).then(|| self.root.join(&sha256[..2]).join(sha256))
    }

    /// A fresh, empty temporary file's name.
    pub fn temp(&self) -> TempBlob {
        let mut r = [0u8; 16];
        rand::fill(&mut r);
        TempBlob { path: self.tmp.join(format!("{}.part", hex::encode(r))) }
    }

    /// Moves a complete temporary file into place under its hash; when that content is already
    /// stored, the temporary file is just removed. Blocking.
    #[expect(clippy::needless_pass_by_value, reason = "keeping spends the temporary file: its guard is dropped here")]
    pub fn keep(&self, temp: TempBlob, sha256: &str) -> std::io::Result<()> {
        let path = self.path_of(sha256).ok_or_else(|| std::io::Error::other("not a SHA-256"))?;
        if path.exists() {
            return Ok(());
        }
        std::fs::create_dir_all(path.parent().unwrap_or(&self.root))?;
        // Renaming over an existing blob is harmless: the content is the same.
        std::fs::rename(temp.path(), &path)
    }

    /// Stores `bytes` (a thumbnail, a re-encoded image) and returns their hash. Blocking.
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<String> {
        let sha = hex::encode(Sha256::digest(bytes));
        let temp = self.temp();
        let mut f = std::fs::File::create_new(temp.path())?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        self.keep(temp, &sha)?;
        Ok(sha)
    }
}
