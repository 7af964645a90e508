//! Small files in the agent's state directory: written whole (temp file,
//! fsync, rename) and readable by the agent's user only, so a power cut
//! leaves the old or the new file and nobody else reads credentials,
//! policies or the spool.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use serde::{de::DeserializeOwned, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("{path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    #[error("{path}: {cause}")]
    Json {
        path: String,
        cause: serde_json::Error,
    },
}

/// Create `dir` (and parents) as 0700.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Write `bytes` to `path` atomically, 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StateFileError> {
    let io = |cause| StateFileError::Io {
        path: path.display().to_string(),
        cause,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir).map_err(io)?;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StateFileError> {
    let body = serde_json::to_vec_pretty(value).map_err(|cause| StateFileError::Json {
        path: path.display().to_string(),
        cause,
    })?;
    write_private(path, &body)
}

/// `Ok(None)` when the file does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateFileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(cause) => {
            return Err(StateFileError::Io {
                path: path.display().to_string(),
                cause,
            })
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|cause| StateFileError::Json {
            path: path.display().to_string(),
            cause,
        })
}

pub fn write_hex(path: &Path, bytes: &[u8]) -> Result<(), StateFileError> {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(path, format!("{hex}\n").as_bytes())
}

/// The bytes of a hex file; None when absent or not hex.
pub fn read_hex(path: &Path) -> Option<Vec<u8>> {
    let text = std::fs::read_to_string(path).ok()?;
    let t = text.trim();
    if t.len() % 2 != 0 {
        return None;
    }
    (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(t.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_and_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("state").join("x.json");
        write_json(&p, &vec![1, 2, 3]).unwrap();
        assert_eq!(read_json::<Vec<u8>>(&p).unwrap(), Some(vec![1, 2, 3]));
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(p.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        assert_eq!(
            read_json::<Vec<u8>>(&tmp.path().join("none")).unwrap(),
            None
        );
        let k = tmp.path().join("key");
        write_hex(&k, &[0, 255, 16]).unwrap();
        assert_eq!(read_hex(&k), Some(vec![0, 255, 16]));
        std::fs::write(&k, "zz").unwrap();
        assert_eq!(read_hex(&k), None);
    }
}
