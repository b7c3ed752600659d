//! Sluice sinks: where rule outputs go.
//!
//! Layout:
//! - [`Sink`]: the one trait every destination implements. `write` takes a rule's
//!   [`RuleOutput`] (an Arrow batch); `checkpoint` makes everything written so far durable
//!   and is the only point after which the router may commit Kafka offsets.
//! - [`parquet`]: Hive-partitioned Parquet files (`rule=/date=/hour=`), written to a
//!   temporary name, fsynced and renamed, so a reader never sees a partial file.
//! - [`build_sinks`]: config → runtime sinks, by name.
//!
//! Errors carry their [`ErrorDomain`] and whether a retry may help.

pub mod parquet;

use sluice_config::{Config, SinkConfig};
pub use sluice_processors::rule::RuleOutput;
use sluice_processors::stats::Stats;
pub use sluice_processors::ErrorDomain;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A sink failure: whose fault, and whether to retry.
#[derive(Debug, thiserror::Error)]
#[error("sink '{sink}': {message}")]
pub struct SinkError {
    pub sink: String,
    pub message: String,
    pub domain: ErrorDomain,
    pub retryable: bool,
}

impl SinkError {
    pub fn external(sink: &str, message: impl Into<String>) -> Self {
        Self {
            sink: sink.into(),
            message: message.into(),
            domain: ErrorDomain::External,
            retryable: true,
        }
    }
}

/// What a checkpoint made durable.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointStats {
    pub files: u64,
    pub rows: u64,
}

/// A destination for rule outputs.
pub trait Sink: Send {
    /// Accepts the rows `rule` selected from one batch.
    fn write(&mut self, rule: &str, output: &RuleOutput) -> Result<(), SinkError>;

    /// Makes everything written so far durable. Offsets are committed only after this returns.
    fn checkpoint(&mut self) -> Result<CheckpointStats, SinkError> {
        Ok(CheckpointStats::default())
    }
}

/// Builds every configured sink, keyed by its name in `[sinks]`.
pub fn build_sinks(
    config: &Config,
    stats: Arc<Stats>,
) -> Result<BTreeMap<String, Box<dyn Sink>>, SinkError> {
    let mut sinks: BTreeMap<String, Box<dyn Sink>> = BTreeMap::new();
    for (name, sink) in &config.sinks {
        let built: Box<dyn Sink> = match sink {
            SinkConfig::Parquet(p) => {
                let root = config.under_data_dir(&p.path);
                Box::new(parquet::ParquetSink::new(
                    name,
                    root,
                    p.clone(),
                    stats.clone(),
                )?)
            }
        };
        sinks.insert(name.clone(), built);
    }
    Ok(sinks)
}
