//! The ledger: what of each Kafka partition is already in the Parquet output, so a replay
//! after a crash or a rebalance writes every record's rows exactly once.
//!
//! ```text
//! <root>/_sluice/ledger/p<partition>.json   {"next_offset": N, "files": [{"tmp", "final"}]}
//! ```
//!
//! A checkpoint finishes the partition's files under temporary names, writes the partition's
//! ledger atomically (the commit point: records below `next_offset` are in the output once
//! the files it lists are in place), renames the files into place, and only then does the
//! router commit Kafka offsets. Whoever is next assigned the partition (this router after a
//! crash, or another one after a rebalance) calls [`recover`]: files the ledger lists that
//! are still temporary are renamed into place (a crash between ledger and rename), every
//! other temporary file of that partition is deleted (a crash before the ledger), and rows
//! of records below `next_offset` are skipped when Kafka replays them. Only the partition's
//! own files are touched, so several routers can share one output root.
//!
//! The `_sluice` directory starts with `_`, which Hive-style readers (pyarrow, Spark, DuckDB's
//! `hive_partitioning`) skip.

use super::writer::{self, Finished, WriteError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One partition's ledger entry.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ledger {
    /// Every record of the partition below this offset has its rows in the output.
    pub next_offset: i64,
    /// The files the last checkpoint published (re-published by [`recover`] if a crash cut
    /// the renames short).
    pub files: Vec<Finished>,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] WriteError),
}

pub fn path(root: &Path, partition: i32) -> PathBuf {
    root.join("_sluice")
        .join("ledger")
        .join(format!("p{partition}.json"))
}

pub fn read(root: &Path, partition: i32) -> Result<Ledger, LedgerError> {
    let path = path(root, partition);
    crate::read_state(&path).map_err(|source| LedgerError::Io { path, source })
}

/// The commit point of a checkpoint for one partition.
pub fn write(root: &Path, partition: i32, ledger: &Ledger) -> Result<(), LedgerError> {
    let path = path(root, partition);
    let bytes = serde_json::to_vec(ledger).unwrap_or_default();
    sluice_common::fs::atomic_write(&path, &bytes)
        .map_err(|source| LedgerError::Io { path, source })
}

/// What [`recover`] did for a partition.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub next_offset: i64,
    pub republished: usize,
    pub removed_temporary: usize,
}

/// Brings a partition's output to the state its ledger describes (see the module docs).
pub fn recover(root: &Path, partition: i32) -> Result<Recovered, LedgerError> {
    let ledger = read(root, partition)?;
    let mut republished = 0;
    for file in &ledger.files {
        if root.join(&file.tmp).exists() {
            file.publish(root)?;
            republished += 1;
        }
    }
    let removed_temporary = sluice_common::fs::files_under(root)
        .into_iter()
        .filter(|p| writer::temporary_partition(p) == Some(partition))
        .filter(|p| std::fs::remove_file(p).is_ok())
        .count();
    Ok(Recovered {
        next_offset: ledger.next_offset,
        republished,
        removed_temporary,
    })
}
