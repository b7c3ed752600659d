//! Sluice sinks: where rule outputs go.
//!
//! Layout:
//! - [`Sink`]: the one trait every destination implements. `write` takes a rule's
//!   [`RuleOutput`] (an Arrow batch); `checkpoint` makes everything written so far durable
//!   and is the only point after which the router may commit Kafka offsets.
//! - [`parquet`]: Hive-partitioned Parquet files (`rule=/date=/hour=`), written to a
//!   temporary name, fsynced and renamed at the checkpoint after a per-partition ledger, so
//!   a reader never sees a partial file and each record's rows land exactly once.
//! - [`delta`]: the Parquet sink's `format = "delta"`: a Delta Lake table per rule, one
//!   commit per table per checkpoint carrying a `txn` per Kafka partition (the table is the
//!   ledger); and `sluice lake` maintenance (optimize, vacuum).
//! - [`alert`]: alerts deduplicated by key, notified by webhook, Kafka or log.
//! - [`compliance`]: the device-update compliance tracker.
//! - [`changelog`]: sink state in a compacted Kafka topic, restored when a partition moves.
//! - [`build_sinks`]: config → runtime sinks, by name, and the boards the HTTP API reads.
//!
//! A [`SinkError`] is always outside trouble (disk, HTTP, Kafka): the router hands the rows
//! to the rule's error action when it has one, and otherwise fails its stage, which the
//! supervisor restarts with backoff, replaying from the last committed offset.

pub mod alert;
pub mod changelog;
pub mod compliance;
pub mod delta;
pub mod events;
pub mod parquet;
#[cfg(test)]
mod test_rows;

use sluice_common::Stats;
use sluice_config::{Config, OutputFormat, ParquetLocation, SinkConfig};
use sluice_core::Whose;
pub use sluice_processors::rule::RuleOutput;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A sink could not write or make durable what it was given (see the crate docs for what
/// the router does about it), and whose fault that is: the supervisor backs off from an
/// outside system (a disk, an object store, Kafka) and stops the router on a configuration
/// that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("sink '{sink}': {message}")]
pub struct SinkError {
    pub sink: String,
    pub message: String,
    pub whose: Whose,
}

impl SinkError {
    /// Something outside Sluice failed; it may come back.
    pub fn external(sink: &str, message: impl std::fmt::Display) -> Self {
        Self {
            sink: sink.into(),
            message: message.to_string(),
            whose: Whose::Outside,
        }
    }

    /// The sink's configuration cannot work (an output path that is not a directory, a URL
    /// or storage option the store refuses): nothing changes until the config does.
    pub fn config(sink: &str, message: impl std::fmt::Display) -> Self {
        Self {
            whose: Whose::User,
            ..Self::external(sink, message)
        }
    }
}

impl sluice_core::Classify for SinkError {
    fn whose(&self) -> Whose {
        self.whose
    }
}

/// What a checkpoint made durable.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointStats {
    pub files: u64,
    pub rows: u64,
}

/// Rows a sink accepted but could not deliver (an alert the webhook kept refusing). The
/// router sends `rows` to the rule's error action, else the payload to the dead-letter topic.
#[derive(Debug, Clone)]
pub struct DeliveryFailure {
    pub rule: String,
    pub device: String,
    pub reason: String,
    /// The input row(s) the failed output came from, when still known.
    pub rows: Option<arrow::array::RecordBatch>,
    /// What could not be delivered (JSON).
    pub payload: Vec<u8>,
}

/// A destination for rule outputs.
pub trait Sink: Send {
    /// Accepts the rows `rule` selected from one batch. Blocking is allowed (file writes,
    /// fsyncs, a full queue): the router calls sinks through `sluice_common::blocking`.
    fn write(&mut self, rule: &str, output: &RuleOutput) -> Result<(), SinkError>;

    /// Makes everything written so far durable. Offsets are committed only after this returns.
    fn checkpoint(&mut self) -> Result<CheckpointStats, SinkError> {
        Ok(CheckpointStats::default())
    }

    /// The router was assigned these Kafka partitions of the raw topic: recover their state
    /// before their records arrive (the Parquet sink's ledger).
    fn assigned(&mut self, _partitions: &[i32]) -> Result<(), SinkError> {
        Ok(())
    }

    /// The router lost these partitions and will not checkpoint their records: forget what
    /// was written for them since the last checkpoint (the new owner replays it).
    fn revoked(&mut self, _partitions: &[i32]) {}

    /// Deliveries that failed since the last call (asynchronous sinks only).
    fn take_failures(&mut self) -> Vec<DeliveryFailure> {
        vec![]
    }
}

pub use sluice_common::fs::atomic_write;

/// Reads JSON state written with [`atomic_write`]; no file yet (a first start) is the default.
pub fn read_state<T: serde::de::DeserializeOwned + Default>(
    path: &std::path::Path,
) -> std::io::Result<T> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(e),
    }
}

/// What sinks need from the process around them.
#[derive(Clone)]
pub struct SinkContext {
    pub stats: Arc<Stats>,
    /// Client settings for sinks that produce to Kafka (bootstrap servers included).
    pub kafka: rdkafka::ClientConfig,
}

/// The live state of alert and compliance sinks, by sink name, for the HTTP API.
#[derive(Clone, Default)]
pub struct Boards {
    pub alerts: BTreeMap<String, Arc<alert::AlertBoard>>,
    pub compliance: BTreeMap<String, Arc<compliance::ComplianceBoard>>,
    /// Devices retired in any compliance sink: the router drops their messages.
    pub retired: Arc<compliance::RetiredDevices>,
}

/// The runtime sinks and their boards.
pub struct BuiltSinks {
    pub sinks: BTreeMap<String, Box<dyn Sink>>,
    pub boards: Boards,
}

/// A Parquet sink on its configured directory or object store.
fn parquet_sink(
    name: &str,
    p: &sluice_config::ParquetSinkConfig,
    config: &Config,
    ctx: &SinkContext,
) -> Result<parquet::ParquetSink, SinkError> {
    use parquet::store::{local::Directory, object::Bucket, Store};
    let location = p.location().map_err(|e| SinkError::config(name, e))?;
    let store: Box<dyn Store> = match location {
        ParquetLocation::Directory(dir) => {
            let root = config.under_data_dir(&dir);
            Box::new(Directory::open(root.clone()).map_err(|e| {
                match is_not_a_directory(&root) {
                    true => SinkError::config(name, format!("{e} (`path` must name a directory)")),
                    false => SinkError::external(name, e),
                }
            })?)
        }
        ParquetLocation::ObjectStore(url) => {
            let staging = config.data_dir.join("staging").join(name);
            // Building the client connects to nothing: what fails to "open" is the URL or
            // the storage options, not the store.
            Box::new(Bucket::open(url, &p.storage_options, staging).map_err(
                |e| match e.action {
                    "open" => SinkError::config(name, e),
                    _ => SinkError::external(name, e),
                },
            )?)
        }
    };
    Ok(parquet::ParquetSink::with_store(
        name,
        store,
        p.clone(),
        ctx.stats.clone(),
    ))
}

/// A Parquet sink with `format = "delta"`: Delta tables under its directory or object store.
fn delta_sink(
    name: &str,
    p: &sluice_config::ParquetSinkConfig,
    config: &Config,
    ctx: &SinkContext,
) -> Result<delta::DeltaSink, SinkError> {
    let location = match p.location().map_err(|e| SinkError::config(name, e))? {
        ParquetLocation::Directory(dir) => ParquetLocation::Directory(config.under_data_dir(&dir)),
        other => other,
    };
    delta::DeltaSink::new(name, &location, p.clone(), ctx.stats.clone())
}

/// Whether `path`, or a folder on the way to it, exists and is not a directory (a mistake
/// in `path`, not a disk that may recover).
fn is_not_a_directory(path: &std::path::Path) -> bool {
    path.ancestors()
        .find(|p| p.exists())
        .is_some_and(|p| !p.is_dir())
}

/// Builds every configured sink, keyed by its name in `[sinks]`.
pub fn build_sinks(config: &Config, ctx: &SinkContext) -> Result<BuiltSinks, SinkError> {
    let mut sinks: BTreeMap<String, Box<dyn Sink>> = BTreeMap::new();
    let mut boards = Boards::default();
    for (name, sink) in &config.sinks {
        let built: Box<dyn Sink> = match sink {
            SinkConfig::Parquet(p) if p.format == OutputFormat::Delta => {
                Box::new(delta_sink(name, p, config, ctx)?)
            }
            SinkConfig::Parquet(p) => Box::new(parquet_sink(name, p, config, ctx)?),
            SinkConfig::Alert(a) => {
                let state = config.under_data_dir(&sink.state_file(name).unwrap_or_default());
                let changelog = config.changelog_topic(name);
                let (sink, board) =
                    alert::AlertSink::new(name, a.clone(), state, &ctx.kafka, changelog)?;
                boards.alerts.insert(name.clone(), board);
                Box::new(sink)
            }
            SinkConfig::Compliance(c) => {
                let (sink, board) = compliance::ComplianceSink::new(
                    name,
                    c,
                    config,
                    boards.retired.clone(),
                    &ctx.kafka,
                )?;
                boards.compliance.insert(name.clone(), board);
                Box::new(sink)
            }
        };
        sinks.insert(name.clone(), built);
    }
    Ok(BuiltSinks { sinks, boards })
}
