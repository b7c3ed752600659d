//! The Parquet sink: one directory tree per rule, Hive-style partitions by event hour.
//!
//! ```text
//! <root>/rule=<name>/date=YYYY-MM-DD/hour=HH/part-p<partition>-o<first>-<last>.parquet
//! ```
//!
//! Rows are filed by event time (`event_time_field`) when it lies within
//! `max_event_age_secs` before and `max_event_lead_secs` after the receive time, else by
//! receive time (counted in `sluice_event_time_outside_window_total`).
//!
//! One open file per (rule, date, hour, Kafka partition), `max_open_files` at most: past it
//! the least recently written file is closed. A file is rolled when it reaches
//! `max_rows` or `max_bytes`, when the rule's output schema changes (a new field), and at
//! every checkpoint, which closes all open files together. Closing writes the footer,
//! fsyncs, renames `.<name>.tmp` to the final name and fsyncs the directory. Files are named
//! by Kafka partition and offset range, so a replay after a crash that covers the same range
//! replaces the file instead of adding a duplicate. Leftover temporary files from a crash are
//! removed when the sink starts.

mod partition;
mod writer;

#[cfg(test)]
mod tests;

use crate::events::{EventTimeOutsideWindow, ParquetFileEvicted, ParquetFileWritten};
use crate::{CheckpointStats, RuleOutput, Sink, SinkError};
use partition::PartitionKey;
use sluice_common::Event;
use sluice_common::Stats;
use sluice_config::ParquetSinkConfig;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use writer::OpenFile;

pub use partition::split_by_partition;

pub struct ParquetSink {
    name: String,
    root: PathBuf,
    config: ParquetSinkConfig,
    open: HashMap<PartitionKey, OpenFile>,
    /// When each open file was last written (a counter), to close the least recent at the cap.
    last_write: HashMap<PartitionKey, u64>,
    writes: u64,
    stats: Arc<Stats>,
}

impl ParquetSink {
    pub fn new(
        name: &str,
        root: PathBuf,
        config: ParquetSinkConfig,
        stats: Arc<Stats>,
    ) -> Result<Self, SinkError> {
        std::fs::create_dir_all(&root).map_err(|e| {
            SinkError::external(name, format!("cannot create {}: {e}", root.display()))
        })?;
        let removed = remove_temporary_files(&root);
        if removed > 0 {
            tracing::info!(
                sink = name,
                removed,
                "removed temporary files left by an earlier crash"
            );
        }
        Ok(Self {
            name: name.into(),
            root,
            config,
            open: HashMap::new(),
            last_write: HashMap::new(),
            writes: 0,
            stats,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
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

    fn close(&mut self, key: &PartitionKey) -> Result<u64, SinkError> {
        self.last_write.remove(key);
        let Some(file) = self.open.remove(key) else {
            return Ok(0);
        };
        let rows = file.rows();
        let started = Instant::now();
        let path = file
            .finish()
            .map_err(|e| SinkError::external(&self.name, e))?;
        ParquetFileWritten {
            rule: &key.rule,
            path: &path,
            rows,
            took: started.elapsed(),
            stats: &self.stats,
        }
        .emit();
        Ok(rows)
    }
}

impl Sink for ParquetSink {
    fn write(&mut self, rule: &str, output: &RuleOutput) -> Result<(), SinkError> {
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
                let dir = key.directory(&self.root);
                let file =
                    OpenFile::create(&dir, &key, batch.schema(), first, self.config.compression)
                        .map_err(|e| SinkError::external(&self.name, e))?;
                self.open.insert(key.clone(), file);
            }
            let file = self
                .open
                .get_mut(&key)
                .ok_or_else(|| SinkError::external(&self.name, "file vanished"))?;
            file.write(&batch, last)
                .map_err(|e| SinkError::external(&self.name, e))?;
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
        let mut stats = CheckpointStats::default();
        for key in keys {
            stats.rows += self.close(&key)?;
            stats.files += 1;
        }
        Ok(stats)
    }
}

/// Removes `.*.tmp` files under `root` (left by a crash between create and rename).
fn remove_temporary_files(root: &Path) -> usize {
    sluice_common::fs::files_under(root)
        .into_iter()
        .filter(|p| writer::is_temporary(p) && std::fs::remove_file(p).is_ok())
        .count()
}
