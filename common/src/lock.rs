//! One process per data directory: two processes sharing `data_dir` would corrupt each
//! other's broker storage, state files and Parquet ledgers.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Held while the process runs; the OS releases the lock when the process exits, however
/// it exits (a `kill -9` included), so a stale lock file never blocks a restart.
#[derive(Debug)]
pub struct DataDirLock {
    _file: std::fs::File,
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "data_dir {} is in use by another Sluice process ({holder}); give each process its own \
         data_dir (config `data_dir` or SLUICE_DATA_DIR)",
        dir.display()
    )]
    Held { dir: PathBuf, holder: String },
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl DataDirLock {
    /// Locks `<dir>/sluice.lock` (creating `dir`) and records this process as its holder.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let path = dir.join("sluice.lock");
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        crate::fs::create_dir_durably(dir).map_err(io)?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = match holder.trim() {
                    "" => "holder unknown".to_string(),
                    h => h.to_string(),
                };
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let args: Vec<String> = std::env::args().collect();
        let holder = format!("pid {}: {}", std::process::id(), args.join(" "));
        file.set_len(0).map_err(io)?;
        file.write_all(holder.as_bytes()).map_err(io)?;
        Ok(Self { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_named_until_it_lets_go() {
        let dir = std::env::temp_dir().join(format!("sluice-lock-{}", std::process::id()));
        let first = DataDirLock::acquire(&dir).unwrap();
        let err = DataDirLock::acquire(&dir).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        DataDirLock::acquire(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
