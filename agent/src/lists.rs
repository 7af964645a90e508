//! The named lists this node holds: `state_dir/lists/<sha256>.gz`, the
//! collector's stored form (gzip of the canonical text), fetched in chunks
//! into `<sha256>.gz.part` and renamed only once its content hashes to its
//! name. A transfer cut by a reconnect or a restart resumes at the part
//! file's length.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use simpul_core::lists::{valid_sha256, Sha256};

/// A list larger than this (stored form) is refused: no policy needs it and
/// a hostile collector must not fill the disk.
pub const MAX_LIST_BYTES: u64 = 1 << 30;

pub const DIR: &str = "lists";

/// What to do after a chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// Ask for the bytes from this offset on.
    Need(u64),
    /// Whole and verified: the list is held.
    Complete,
}

#[derive(Debug, thiserror::Error)]
pub enum ListFileError {
    #[error("{0:?} is not a SHA-256")]
    Name(String),
    #[error("the list is {0} bytes; at most {MAX_LIST_BYTES}")]
    TooLarge(u64),
    #[error("the received list hashes to {got}, not {want}: discarded, fetched again")]
    Mismatch { want: String, got: String },
    #[error("the received list does not decompress: {0}")]
    Gzip(String),
    #[error("list file: {0}")]
    Io(#[from] std::io::Error),
}

pub struct ListFiles {
    dir: PathBuf,
}

impl ListFiles {
    pub fn new(state_dir: &Path) -> ListFiles {
        ListFiles {
            dir: state_dir.join(DIR),
        }
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.gz"))
    }

    fn part(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.gz.part"))
    }

    pub fn has(&self, sha256: &str) -> bool {
        valid_sha256(sha256) && self.path(sha256).is_file()
    }

    /// Where a transfer of `sha256` resumes.
    pub fn resume_at(&self, sha256: &str) -> u64 {
        std::fs::metadata(self.part(sha256)).map_or(0, |m| m.len())
    }

    /// Take bytes `offset..` of a list of `total` bytes.
    pub fn accept(
        &self,
        sha256: &str,
        offset: u64,
        total: u64,
        data: &[u8],
    ) -> Result<Progress, ListFileError> {
        if !valid_sha256(sha256) {
            return Err(ListFileError::Name(sha256.chars().take(80).collect()));
        }
        if total > MAX_LIST_BYTES {
            return Err(ListFileError::TooLarge(total));
        }
        if self.has(sha256) {
            return Ok(Progress::Complete);
        }
        crate::state_files::create_private_dir(&self.dir)?;
        let part = self.part(sha256);
        let have = self.resume_at(sha256);
        if offset != have {
            // A chunk of another request (before a reconnect): ask again
            // from where the file really ends.
            return Ok(Progress::Need(have));
        }
        let end = offset + data.len() as u64;
        if end > total || (data.is_empty() && end < total) {
            let _ = std::fs::remove_file(&part);
            return Ok(Progress::Need(0));
        }
        let mut f = OpenOptions::new().create(true).append(true).open(&part)?;
        f.write_all(data)?;
        if end < total {
            return Ok(Progress::Need(end));
        }
        f.sync_all()?;
        drop(f);
        match verify(&part, sha256) {
            Ok(()) => {
                std::fs::rename(&part, self.path(sha256))?;
                if let Ok(d) = File::open(&self.dir) {
                    let _ = d.sync_all();
                }
                Ok(Progress::Complete)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                Err(e)
            }
        }
    }

    /// The canonical text of a held list.
    pub fn open(&self, sha256: &str) -> Option<Box<dyn BufRead>> {
        if !valid_sha256(sha256) {
            return None;
        }
        let f = File::open(self.path(sha256)).ok()?;
        Some(Box::new(BufReader::with_capacity(
            256 << 10,
            flate2::read::GzDecoder::new(BufReader::with_capacity(256 << 10, f)),
        )))
    }

    /// Remove every list and partial transfer but those of `keep`.
    pub fn keep_only(&self, keep: &[&str]) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            let sha = name.split('.').next().unwrap_or("");
            if !keep.contains(&sha) {
                if let Err(err) = std::fs::remove_file(e.path()) {
                    tracing::warn!(file = %name, error = %err, "cannot remove a list no policy names");
                } else {
                    tracing::info!(file = %name, "list no policy names removed");
                }
            }
        }
    }
}

/// Whether the gzip at `path` decompresses to text whose SHA-256 is `want`.
fn verify(path: &Path, want: &str) -> Result<(), ListFileError> {
    let mut gz = flate2::read::GzDecoder::new(BufReader::new(File::open(path)?));
    let mut h = Sha256::default();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = gz
            .read(&mut buf)
            .map_err(|e| ListFileError::Gzip(e.to_string()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let got = h.hex();
    if got == want {
        Ok(())
    } else {
        Err(ListFileError::Mismatch {
            want: want.to_string(),
            got,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gz(text: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(text).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn chunks_resume_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let files = ListFiles::new(dir.path());
        let text = b"a.example\nb.example\n";
        let sha = simpul_core::lists::sha256_hex(text);
        let blob = gz(text);
        let total = blob.len() as u64;
        let (a, b) = blob.split_at(7);
        assert_eq!(files.accept(&sha, 0, total, a).unwrap(), Progress::Need(7));
        // A stale chunk (another offset) asks again from the file's end.
        assert_eq!(files.accept(&sha, 3, total, b).unwrap(), Progress::Need(7));
        // A restart resumes at the part file's length.
        let files = ListFiles::new(dir.path());
        assert_eq!(files.resume_at(&sha), 7);
        assert_eq!(files.accept(&sha, 7, total, b).unwrap(), Progress::Complete);
        assert!(files.has(&sha));
        let mut got = String::new();
        files.open(&sha).unwrap().read_to_string(&mut got).unwrap();
        assert_eq!(got.as_bytes(), text);
        files.keep_only(&[]);
        assert!(!files.has(&sha));
    }

    #[test]
    fn content_that_does_not_match_its_name_is_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let files = ListFiles::new(dir.path());
        let sha = simpul_core::lists::sha256_hex(b"x.example\n");
        let blob = gz(b"forged.example\n");
        let e = files.accept(&sha, 0, blob.len() as u64, &blob).unwrap_err();
        assert!(matches!(e, ListFileError::Mismatch { .. }), "{e}");
        assert!(!files.has(&sha));
        assert_eq!(files.resume_at(&sha), 0);
        let e = files.accept(&sha, 0, 3, b"abc").unwrap_err();
        assert!(matches!(e, ListFileError::Gzip(_)), "{e}");
        assert!(files.accept("../x", 0, 1, b"a").is_err());
    }
}
