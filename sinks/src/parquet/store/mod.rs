//! Where a Parquet sink's files and ledger live: a local directory ([`local::Directory`]) or
//! an object store ([`object::Bucket`]: S3, GCS, Azure Blob).
//!
//! Both give the [`super::ledger`] the same four moves, so effectively-once output works the
//! same way on either: *stage* a finished file where a crash cannot lose it but readers do not
//! see it, *write the ledger* atomically (the commit point), *publish* staged files under
//! their final names, and *list and remove* a partition's staged files on recovery.

pub mod local;
pub mod object;

use std::path::{Path, PathBuf};

/// A storage operation that failed (the sink reports it as a [`crate::SinkError`]; the
/// router retries the stage, replaying from the last commit).
#[derive(Debug, thiserror::Error)]
#[error("{action} {name}: {message}")]
pub struct StoreError {
    pub action: &'static str,
    pub name: String,
    pub message: String,
}

impl StoreError {
    pub fn new(
        action: &'static str,
        name: impl std::fmt::Display,
        e: impl std::fmt::Display,
    ) -> Self {
        Self {
            action,
            name: name.to_string(),
            message: e.to_string(),
        }
    }
}

/// The output root of one Parquet sink. Names are relative to the root, `/`-separated.
pub trait Store: Send {
    /// The local directory open files are written in: the output root itself, or a staging
    /// directory under `data_dir` for an object store.
    fn local_root(&self) -> &Path;

    /// Makes a finished (footer written, fsynced) local file durable where readers do not
    /// see it, and returns the staged name the ledger records.
    fn stage(&self, partition: i32, local: &Path) -> Result<PathBuf, StoreError>;

    /// The partition's ledger, `None` before its first checkpoint.
    fn read_ledger(&self, partition: i32) -> Result<Option<Vec<u8>>, StoreError>;

    /// Replaces the partition's ledger atomically: readers see the old one or the new one.
    fn write_ledger(&self, partition: i32, bytes: &[u8]) -> Result<(), StoreError>;

    /// Moves a staged file to its final name. A file already moved (a roll-forward after a
    /// crash in an earlier publish) is fine.
    fn publish(&self, staged: &Path, final_name: &Path) -> Result<(), StoreError>;

    /// The staged files of one partition still in the store.
    fn staged(&self, partition: i32) -> Result<Vec<PathBuf>, StoreError>;

    /// Whether all of these staged files of `partition` are still there (another router's
    /// recovery of the partition removes them). The default lists the partition's staged files.
    fn all_staged(&self, partition: i32, files: &[&Path]) -> Result<bool, StoreError> {
        let staged = self.staged(partition)?;
        Ok(files.iter().all(|f| staged.iter().any(|s| s == f)))
    }

    /// Removes a staged file.
    fn remove(&self, staged: &Path) -> Result<(), StoreError>;

    /// How to show a name in logs: a path or a URL.
    fn show(&self, name: &Path) -> String;
}

/// The ledger's name under the root; `_sluice` is skipped by Hive-style readers.
pub fn ledger_name(partition: i32) -> PathBuf {
    PathBuf::from(format!("_sluice/ledger/p{partition}.json"))
}
