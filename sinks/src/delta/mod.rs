//! The Parquet sink's `format = "delta"`: one Delta Lake table per rule.
//!
//! ```text
//! <path>/<rule>/_delta_log/00000000000000000000.json …     the transaction log
//! <path>/<rule>/date=YYYY-MM-DD/hour=HH/part-….parquet       the data files
//! ```
//!
//! Rows are filed by event date and hour exactly as the Parquet sink files them (same event
//! time field and window), as the table's partition columns `date` and `hour`. Each
//! checkpoint is one commit per table that received rows, with a `txn` action per Kafka
//! partition ([`table`] says how that makes the table its own ledger, and how two routers
//! are fenced). Columns only ever widen ([`conform`]). [`lake`] is the maintenance an
//! operator runs while routers write: compaction and vacuum.
//!
//! Layout: [`location`] (URLs, object stores, the runtime), [`conform`] (rows → the table's
//! columns), [`table`] (one table: write, commit, fence), [`lake`] (`sluice lake`).

mod conform;
pub mod lake;
pub mod location;
mod log;
mod table;

#[cfg(test)]
mod tests;

use crate::events::{
    DeltaCommitted, DeltaPartitionFenced, DeltaTypeConflict, EventTimeOutsideWindow,
    ReplayedRowsSkipped,
};
use crate::parquet::partition::{partitions_of, rows_at_or_after, split_by_partition};
use crate::{CheckpointStats, RuleOutput, Sink, SinkError};
use sluice_common::{Event, Stats};
use sluice_config::{ParquetLocation, ParquetSinkConfig};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use table::{Settings, Table, TableError};
use url::Url;

pub struct DeltaSink {
    name: String,
    root: Url,
    config: ParquetSinkConfig,
    settings: Settings,
    tables: BTreeMap<String, Table>,
    /// Checkpoints so far (in each commit's `commitInfo`).
    checkpoints: u64,
    runtime: location::Runtime,
    stats: Arc<Stats>,
}

impl DeltaSink {
    /// A sink writing tables under `location` (a directory already resolved under `data_dir`,
    /// or an object-store URL).
    pub fn new(
        name: &str,
        location: &ParquetLocation,
        config: ParquetSinkConfig,
        stats: Arc<Stats>,
    ) -> Result<Self, SinkError> {
        location::register_stores();
        let root = location::root_url(location).map_err(|e| SinkError::config(name, e))?;
        if let ParquetLocation::ObjectStore(url) = location {
            // Building the client connects to nothing: what fails here is the URL or a
            // storage option, a configuration mistake (as for Parquet files).
            crate::parquet::store::object::client(url, &config.storage_options)
                .map_err(|e| SinkError::config(name, e))?;
        }
        let settings = Settings {
            sink: name.to_string(),
            options: location::options(&config.storage_options),
            compression: config.compression,
            max_rows: config.max_rows as u64,
            max_bytes: config.max_bytes as u64,
            checkpoint_interval: config.delta_checkpoint_interval,
            writer_id: uuid::Uuid::new_v4().to_string(),
        };
        let runtime = location::Runtime::new().map_err(|e| SinkError::external(name, e))?;
        Ok(Self {
            name: name.into(),
            root,
            config,
            settings,
            tables: BTreeMap::new(),
            checkpoints: 0,
            runtime,
            stats,
        })
    }

    /// The table URL for `rule`.
    pub fn table_url(&self, rule: &str) -> Result<Url, SinkError> {
        location::table_url(&self.root, rule).map_err(|e| SinkError::config(&self.name, e))
    }

    fn error(&self, e: TableError) -> SinkError {
        match e {
            TableError::Rule(m) => SinkError::config(&self.name, m),
            TableError::Fenced {
                partition,
                log,
                mine,
            } => {
                DeltaPartitionFenced {
                    sink: &self.name,
                    partition,
                    log,
                    this_router: mine,
                }
                .emit();
                SinkError::external(&self.name, e)
            }
            e => SinkError::external(&self.name, e),
        }
    }

    /// (max age, max lead) of event times, in ms.
    fn event_window(&self) -> (i64, i64) {
        let ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        (
            ms(self.config.max_event_age_secs),
            ms(self.config.max_event_lead_secs),
        )
    }

    /// Writes one rule's output into its table (opened or created on first use).
    async fn write_output(
        table: &mut Table,
        rule: &str,
        output: &RuleOutput,
        settings: &Settings,
        event: (&str, (i64, i64)),
    ) -> Result<(usize, usize, table::Written), TableError> {
        let mut floors = HashMap::new();
        for p in partitions_of(output)? {
            floors.insert(p, table.floor(p, settings).await?);
        }
        let kept = rows_at_or_after(output, &floors)?;
        let skipped = kept
            .as_ref()
            .map_or(0, |k| output.rows.num_rows() - k.rows.num_rows());
        let output = kept.as_ref().unwrap_or(output);
        if output.rows.num_rows() == 0 {
            return Ok((skipped, 0, table::Written::default()));
        }
        let split = split_by_partition(rule, output, event.0, event.1)?;
        let mut changed = table::Written::default();
        for (key, batch, (_, last)) in split.parts {
            let (date, hour) = key.date_and_hour();
            let written = table
                .write(key.partition, last, &batch, [&date, &hour], settings)
                .await?;
            changed.nulled_values += written.nulled_values;
            changed.dropped_columns = changed.dropped_columns.max(written.dropped_columns);
        }
        Ok((skipped, split.outside_window, changed))
    }
}

impl Sink for DeltaSink {
    fn write(&mut self, rule: &str, output: &RuleOutput) -> Result<(), SinkError> {
        if output.rows.num_rows() == 0 {
            return Ok(());
        }
        if !self.tables.contains_key(rule) {
            let url = self.table_url(rule)?;
            let opened = self
                .runtime
                .block(Table::open(url, &output.rows, &self.settings));
            let table = opened.map_err(|e| self.error(e))?;
            self.tables.insert(rule.to_string(), table);
        }
        let event = (self.config.event_time_field.as_str(), self.event_window());
        let Some(table) = self.tables.get_mut(rule) else {
            return Ok(());
        };
        let written = self.runtime.block(Self::write_output(
            table,
            rule,
            output,
            &self.settings,
            event,
        ));
        let (skipped, outside, lost) = written.map_err(|e| self.error(e))?;
        ReplayedRowsSkipped { rows: skipped }.emit();
        EventTimeOutsideWindow { rows: outside }.emit();
        DeltaTypeConflict {
            rule,
            values: lost.nulled_values,
            columns_dropped: lost.dropped_columns,
        }
        .emit();
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<CheckpointStats, SinkError> {
        let mut stats = CheckpointStats::default();
        self.checkpoints += 1;
        let rules: Vec<String> = self.tables.keys().cloned().collect();
        for rule in rules {
            let Some(table) = self.tables.get_mut(&rule) else {
                continue;
            };
            if !table.has_pending() {
                continue;
            }
            let started = std::time::Instant::now();
            let committed = self
                .runtime
                .block(table.commit(&self.settings, self.checkpoints));
            let Some(done) = committed.map_err(|e| self.error(e))? else {
                continue;
            };
            DeltaCommitted {
                sink: &self.name,
                rule: &rule,
                version: done.version,
                files: done.files,
                rows: done.rows,
                took: started.elapsed(),
                stats: &self.stats,
            }
            .emit();
            stats.files += done.files;
            stats.rows += done.rows;
        }
        Ok(stats)
    }

    /// Starts the partitions afresh: their floors are read from each table's log when their
    /// first rows for it arrive.
    fn assigned(&mut self, partitions: &[i32]) -> Result<(), SinkError> {
        self.revoked(partitions);
        Ok(())
    }

    /// Gives up the partitions' uncommitted rows: their new owner replays those records.
    fn revoked(&mut self, partitions: &[i32]) {
        let _runtime = self.runtime.enter();
        for table in self.tables.values_mut() {
            table.drop_partitions(partitions);
        }
    }
}

impl Drop for DeltaSink {
    /// Uncommitted files are abandoned (the records are replayed); their writers may need a
    /// runtime to abort uploads.
    fn drop(&mut self) {
        let _runtime = self.runtime.enter();
        self.tables.clear();
    }
}
