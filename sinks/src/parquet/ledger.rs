//! The ledger: what of each Kafka partition is already in the Parquet output, so a replay
//! after a crash or a rebalance writes every record's rows exactly once.
//!
//! ```text
//! <root>/_sluice/ledger/p<partition>.json   {"next_offset": N, "files": [{"tmp", "final"}]}
//! ```
//!
//! `<root>` is a directory or an object-store prefix: the moves below go through
//! [`super::store::Store`], which does each one atomically on either.
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

use super::store::{Store, StoreError};
use super::writer::Finished;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

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
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("ledger of partition {partition} is not valid: {source}")]
    Invalid {
        partition: i32,
        source: serde_json::Error,
    },
}

pub fn read(store: &dyn Store, partition: i32) -> Result<Ledger, LedgerError> {
    match store.read_ledger(partition)? {
        None => Ok(Ledger::default()),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map_err(|source| LedgerError::Invalid { partition, source }),
    }
}

/// The commit point of a checkpoint for one partition.
pub fn write(store: &dyn Store, partition: i32, ledger: &Ledger) -> Result<(), LedgerError> {
    let bytes = serde_json::to_vec(ledger).unwrap_or_default();
    Ok(store.write_ledger(partition, &bytes)?)
}

/// What [`recover`] did for a partition.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub next_offset: i64,
    pub republished: usize,
    pub removed_temporary: usize,
}

/// Brings a partition's output to the state its ledger describes (see the module docs).
pub fn recover(store: &dyn Store, partition: i32) -> Result<Recovered, LedgerError> {
    let ledger = read(store, partition)?;
    let mut staged: BTreeSet<_> = store.staged(partition)?.into_iter().collect();
    let mut republished = 0;
    for file in &ledger.files {
        if staged.remove(&file.tmp) {
            store.publish(&file.tmp, &file.final_name)?;
            republished += 1;
        }
    }
    for leftover in &staged {
        store.remove(leftover)?;
    }
    Ok(Recovered {
        next_offset: ledger.next_offset,
        republished,
        removed_temporary: staged.len(),
    })
}
