//! A local directory (or a mounted file system): staged files are `.part-…parquet.tmp` next
//! to their final name, published by a durable rename.

use super::{Store, StoreError};
use crate::parquet::writer::temporary_partition;
use std::path::{Path, PathBuf};

pub struct Directory {
    root: PathBuf,
}

impl Directory {
    pub fn open(root: PathBuf) -> Result<Self, StoreError> {
        sluice_common::fs::create_dir_durably(&root)
            .map_err(|e| StoreError::new("create", root.display(), e))?;
        // A file already there passes the creation; every ledger read would then fail.
        if !root.is_dir() {
            return Err(StoreError::new("open", root.display(), "not a directory"));
        }
        Ok(Self { root })
    }
}

impl Store for Directory {
    fn local_root(&self) -> &Path {
        &self.root
    }

    /// Already durable: `finish` fsynced it under its temporary name.
    fn stage(&self, _partition: i32, local: &Path) -> Result<PathBuf, StoreError> {
        Ok(local.to_path_buf())
    }

    fn read_ledger(&self, partition: i32) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.root.join(super::ledger_name(partition));
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::new("read", path.display(), e)),
        }
    }

    fn write_ledger(&self, partition: i32, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.root.join(super::ledger_name(partition));
        sluice_common::fs::atomic_write(&path, bytes)
            .map_err(|e| StoreError::new("write", path.display(), e))
    }

    fn publish(&self, staged: &Path, final_name: &Path) -> Result<(), StoreError> {
        let (tmp, target) = (self.root.join(staged), self.root.join(final_name));
        match sluice_common::fs::rename_durably(&tmp, &target) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && target.exists() => Ok(()),
            other => other.map_err(|e| StoreError::new("rename to", target.display(), e)),
        }
    }

    fn staged(&self, partition: i32) -> Result<Vec<PathBuf>, StoreError> {
        Ok(sluice_common::fs::files_under(&self.root)
            .into_iter()
            .filter(|p| temporary_partition(p) == Some(partition))
            .filter_map(|p| p.strip_prefix(&self.root).ok().map(Path::to_path_buf))
            .collect())
    }

    /// One `stat` per file: the default's listing walks the whole output tree.
    fn all_staged(&self, _: i32, files: &[&Path]) -> Result<bool, StoreError> {
        Ok(files.iter().all(|f| self.root.join(f).is_file()))
    }

    fn remove(&self, staged: &Path) -> Result<(), StoreError> {
        let path = self.root.join(staged);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StoreError::new("remove", path.display(), e))
            }
            _ => Ok(()),
        }
    }

    fn show(&self, name: &Path) -> String {
        self.root.join(name).display().to_string()
    }
}
