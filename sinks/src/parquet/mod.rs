//! The Parquet sink: one directory tree per rule, Hive-style partitions by event hour.
//!
//! ```text
//! <root>/rule=<name>/date=YYYY-MM-DD/hour=HH/part-p<partition>-o<first>-<last>-<id>.parquet
//! ```
//!
//! Rows are filed by event time (`event_time_field`) when it lies within
//! `max_event_age_secs` before and `max_event_lead_secs` after the receive time, else by
//! receive time (counted in `sluice_event_time_outside_window_total`).
//!
//! One open file per (rule, date, hour, Kafka partition), `max_open_files` at most: past it
//! the least recently written file is closed. A file is closed when it reaches `max_rows` or
//! `max_bytes`, when the rule's output schema changes (a new field), and at every
//! checkpoint. A closed file has its footer written and is fsynced under a temporary name;
//! it is renamed into place only at the checkpoint, after the partition's [`ledger`] names
//! it. That makes the output effectively-once: after any crash or rebalance, each Kafka
//! record's rows are in the output exactly once (see [`ledger`] for how). The root is a
//! local directory or an object-store URL ([`store`]).

pub mod ledger;
pub(crate) mod partition;
pub mod store;
pub(crate) mod writer;

#[cfg(test)]
mod tests;

use crate::events::{
    EventTimeOutsideWindow, ParquetFileEvicted, ParquetFileWritten, ParquetPartitionFenced,
    ParquetPartitionRecovered, ReplayedRowsSkipped,
};
use crate::{CheckpointStats, RuleOutput, Sink, SinkError};
use partition::PartitionKey;
use sluice_common::Event;
use sluice_common::Stats;
use sluice_config::ParquetSinkConfig;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use store::Store;
use writer::{Finished, OpenFile};

pub use partition::split_by_partition;

pub struct ParquetSink {
    name: String,
    store: Box<dyn Store>,
    config: ParquetSinkConfig,
    open: HashMap<PartitionKey, OpenFile>,
    /// When each open file was last written (a counter), to close the least recent at the cap.
    last_write: HashMap<PartitionKey, u64>,
    writes: u64,
    /// Closed files waiting for the checkpoint, by Kafka partition.
    finished: BTreeMap<i32, Vec<Finished>>,
    /// Per partition written since the last checkpoint: the offset after its last row.
    written_to: BTreeMap<i32, i64>,
    /// Per partition recovered: rows of records below this offset are already in the output.
    durable_to: HashMap<i32, i64>,
    stats: Arc<Stats>,
}

impl ParquetSink {
    /// A sink writing into a local directory.
    pub fn new(
        name: &str,
        root: PathBuf,
        config: ParquetSinkConfig,
        stats: Arc<Stats>,
    ) -> Result<Self, SinkError> {
        let store =
            store::local::Directory::open(root).map_err(|e| SinkError::external(name, e))?;
        Ok(Self::with_store(name, Box::new(store), config, stats))
    }

    pub fn with_store(
        name: &str,
        store: Box<dyn Store>,
        config: ParquetSinkConfig,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            name: name.into(),
            store,
            config,
            open: HashMap::new(),
            last_write: HashMap::new(),
            writes: 0,
            finished: BTreeMap::new(),
            written_to: BTreeMap::new(),
            durable_to: HashMap::new(),
            stats,
        }
    }

    /// Where open files are written (the output root for a directory).
    pub fn root(&self) -> &Path {
        self.store.local_root()
    }

    /// (max age, max lead) of event times, in ms.
    fn event_window(&self) -> (i64, i64) {
        let ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        (
            ms(self.config.max_event_age_secs),
            ms(self.config.max_event_lead_secs),
        )
    }

    /// Makes room for one more open file by closing the least recently written one.
    fn make_room(&mut self) -> Result<(), SinkError> {
        while self.open.len() >= self.config.max_open_files.max(1) {
            let Some(oldest) = self
                .last_write
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone())
            else {
                return Ok(());
            };
            ParquetFileEvicted.emit();
            self.close(&oldest)?;
        }
        Ok(())
    }

    /// Finishes a file under its temporary name; the checkpoint publishes it.
    fn close(&mut self, key: &PartitionKey) -> Result<u64, SinkError> {
        self.last_write.remove(key);
        let Some(file) = self.open.remove(key) else {
            return Ok(0);
        };
        let partition = file.partition();
        let mut finished = file
            .finish()
            .map_err(|e| SinkError::external(&self.name, e))?;
        finished.tmp = self
            .store
            .stage(partition, &finished.tmp)
            .map_err(|e| SinkError::external(&self.name, e))?;
        let rows = finished.rows;
        self.finished.entry(partition).or_default().push(finished);
        Ok(rows)
    }

    /// The offset below which `partition`'s rows are already in the output, recovering the
    /// partition from its ledger the first time this sink sees it.
    fn durable_to(&mut self, partition: i32) -> Result<i64, SinkError> {
        if partition < 0 {
            return Ok(i64::MIN); // Rows from no Kafka record (a failed alert): no ledger.
        }
        if let Some(&offset) = self.durable_to.get(&partition) {
            return Ok(offset);
        }
        let recovered = ledger::recover(self.store.as_ref(), partition)
            .map_err(|e| SinkError::external(&self.name, e))?;
        ParquetPartitionRecovered {
            sink: &self.name,
            partition,
            recovered: &recovered,
        }
        .emit();
        self.durable_to.insert(partition, recovered.next_offset);
        Ok(recovered.next_offset)
    }

    /// Drops the rows of records whose rows a previous owner of the partition already wrote.
    fn skip_replayed(&mut self, output: &RuleOutput) -> Result<Option<RuleOutput>, SinkError> {
        let mut floors = HashMap::new();
        for p in partition::partitions_of(output).map_err(|e| SinkError::external(&self.name, e))? {
            floors.insert(p, self.durable_to(p)?);
        }
        let kept = partition::rows_at_or_after(output, &floors)
            .map_err(|e| SinkError::external(&self.name, e))?;
        if let Some(kept) = &kept {
            ReplayedRowsSkipped {
                rows: output.rows.num_rows() - kept.rows.num_rows(),
            }
            .emit();
        }
        Ok(kept)
    }

    /// Publishes one partition's finished files: ledger first (the commit point), then the
    /// renames.
    /// Rows from no Kafka record (partition -1: failed alerts) have no ledger: every router
    /// writes them, under names no other file has, and they are renamed at once.
    fn publish(&mut self, partition: i32, next_offset: i64) -> Result<CheckpointStats, SinkError> {
        let files = self.finished.remove(&partition).unwrap_or_default();
        let entry = ledger::Ledger { next_offset, files };
        if partition >= 0 {
            self.fence(partition, &entry.files)?;
            ledger::write(self.store.as_ref(), partition, &entry)
                .map_err(|e| SinkError::external(&self.name, e))?;
        }
        let mut stats = CheckpointStats::default();
        for file in &entry.files {
            self.store
                .publish(&file.tmp, &file.final_name)
                .map_err(|e| SinkError::external(&self.name, e))?;
            ParquetFileWritten {
                rule: &file.rule,
                path: &self.store.show(&file.final_name),
                rows: file.rows,
                took: file.took,
                stats: &self.stats,
            }
            .emit();
            stats.files += 1;
            stats.rows += file.rows;
        }
        if partition >= 0 {
            self.durable_to.insert(partition, next_offset);
        }
        Ok(stats)
    }
}

impl ParquetSink {
    /// Fencing, just before the ledger write: this sink must still own the partition. It has
    /// lost it if the ledger moved on since this sink last read or wrote it (the partition's new
    /// owner has published), or if its staged files are gone (the new owner's recovery removed
    /// them). Either happens when a router misses its revocation (a stall, a long rebalance);
    /// publishing then would write records twice, or list files that no longer exist. The files
    /// are discarded and the checkpoint fails, so the router restarts, rejoins its group and
    /// replays from what the ledger says.
    fn fence(&mut self, partition: i32, files: &[Finished]) -> Result<(), SinkError> {
        let Some(&mine) = self.durable_to.get(&partition) else {
            return Ok(());
        };
        let err = |e: String| SinkError::external(&self.name, e);
        let current = ledger::read(self.store.as_ref(), partition)
            .map_err(|e| err(e.to_string()))?
            .next_offset;
        let tmp: Vec<&Path> = files.iter().map(|f| f.tmp.as_path()).collect();
        let staged = self
            .store
            .all_staged(partition, &tmp)
            .map_err(|e| err(e.to_string()))?;
        if current == mine && staged {
            return Ok(());
        }
        for file in files {
            let _ = self.store.remove(&file.tmp);
        }
        self.durable_to.remove(&partition);
        ParquetPartitionFenced {
            sink: &self.name,
            partition,
            ledger: current,
            this_router: mine,
        }
        .emit();
        Err(SinkError::external(
            &self.name,
            format!(
                "partition {partition} was taken over: its ledger is at offset {current}, this \
                 router's at {mine}, staged files {}; not publishing",
                if staged { "in place" } else { "removed" }
            ),
        ))
    }
}

impl Sink for ParquetSink {
    fn write(&mut self, rule: &str, output: &RuleOutput) -> Result<(), SinkError> {
        let replayed = self.skip_replayed(output)?;
        let output = replayed.as_ref().unwrap_or(output);
        if output.rows.num_rows() == 0 {
            return Ok(());
        }
        let split = split_by_partition(
            rule,
            output,
            &self.config.event_time_field,
            self.event_window(),
        )
        .map_err(|e| SinkError::external(&self.name, e.to_string()))?;
        EventTimeOutsideWindow {
            rows: split.outside_window,
        }
        .emit();
        for (key, batch, (first, last)) in split.parts {
            let schema_changed = self
                .open
                .get(&key)
                .is_some_and(|f| f.schema() != batch.schema());
            if schema_changed {
                self.close(&key)?;
            }
            if !self.open.contains_key(&key) {
                self.make_room()?;
                let root = self.store.local_root();
                let dir = key.directory(root);
                let file = OpenFile::create(
                    root,
                    &dir,
                    &key,
                    batch.schema(),
                    first,
                    self.config.compression,
                )
                .map_err(|e| SinkError::external(&self.name, e))?;
                self.open.insert(key.clone(), file);
            }
            let file = self
                .open
                .get_mut(&key)
                .ok_or_else(|| SinkError::external(&self.name, "file vanished"))?;
            file.write(&batch, last)
                .map_err(|e| SinkError::external(&self.name, e))?;
            let next = self.written_to.entry(key.partition).or_insert(last + 1);
            *next = (*next).max(last + 1);
            let full = file.rows() as usize >= self.config.max_rows
                || file.bytes() >= self.config.max_bytes;
            self.writes += 1;
            self.last_write.insert(key.clone(), self.writes);
            if full {
                self.close(&key)?;
            }
        }
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<CheckpointStats, SinkError> {
        let keys: Vec<PartitionKey> = self.open.keys().cloned().collect();
        for key in keys {
            self.close(&key)?;
        }
        let mut stats = CheckpointStats::default();
        for (partition, next_offset) in std::mem::take(&mut self.written_to) {
            let published = self.publish(partition, next_offset)?;
            stats.files += published.files;
            stats.rows += published.rows;
        }
        Ok(stats)
    }

    /// Starts the partitions afresh from their ledgers (what this sink held of them, if
    /// anything, is dropped: the router replays from the committed offset).
    fn assigned(&mut self, partitions: &[i32]) -> Result<(), SinkError> {
        self.revoked(partitions);
        for &p in partitions {
            self.durable_to(p)?;
        }
        Ok(())
    }

    /// Gives up the partitions' unpublished files: their new owner replays those records.
    fn revoked(&mut self, partitions: &[i32]) {
        let keys: Vec<PartitionKey> = self
            .open
            .keys()
            .filter(|k| partitions.contains(&k.partition))
            .cloned()
            .collect();
        for key in keys {
            self.last_write.remove(&key);
            if let Some(file) = self.open.remove(&key) {
                file.discard();
            }
        }
        for p in partitions {
            for file in self.finished.remove(p).unwrap_or_default() {
                let _ = self.store.remove(&file.tmp);
            }
            self.written_to.remove(p);
            self.durable_to.remove(p);
        }
    }
}
