//! Periodic Parquet snapshots of the compliance inventory: one file per snapshot,
//! `date=YYYY-MM-DD/compliance-<ms>.parquet`, written atomically, for analysts to query the
//! fleet's update state over time.

use super::fleet::ComplianceReport;
use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use parquet::arrow::ArrowWriter;
use sluice_common::Event;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A snapshot that could not be written (the compliance sink's checkpoint fails with it).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot batch: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("snapshot parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

pub struct Snapshots {
    root: PathBuf,
    interval: Option<Duration>,
    last: Option<Instant>,
}

impl Snapshots {
    pub fn new(root: PathBuf, interval_ms: u64) -> Snapshots {
        Snapshots {
            root,
            interval: (interval_ms > 0).then(|| Duration::from_millis(interval_ms)),
            last: None,
        }
    }

    /// Whether a snapshot is due: the interval passed since the last one (the first is
    /// immediate). The caller builds the full device list only then.
    pub fn due(&self) -> bool {
        self.interval
            .is_some_and(|i| self.last.is_none_or(|l| l.elapsed() >= i))
    }

    /// Writes a snapshot if the interval passed since the last one (the first is immediate).
    pub fn maybe_write(&mut self, report: &ComplianceReport) -> Result<(), SnapshotError> {
        let Some(interval) = self.interval else {
            return Ok(());
        };
        if self.last.is_some_and(|l| l.elapsed() < interval) || report.devices.is_empty() {
            return Ok(());
        }
        self.last = Some(Instant::now());
        let now = chrono::Utc::now();
        let path = self
            .root
            .join(format!("date={}", now.format("%Y-%m-%d")))
            .join(format!("compliance-{}.parquet", now.timestamp_millis()));
        let batch = to_batch(report, now.timestamp_millis())?;
        let mut bytes = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), None)?;
        writer.write(&batch)?;
        writer.close()?;
        crate::atomic_write(&path, &bytes).map_err(|source| SnapshotError::Io {
            path: path.clone(),
            source,
        })?;
        crate::events::SnapshotWritten { path: &path }.emit();
        Ok(())
    }
}

/// One row per device: the inventory and its compliance state at `taken_ms`.
pub fn to_batch(
    report: &ComplianceReport,
    taken_ms: i64,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let d = &report.devices;
    let text = |f: &dyn Fn(&super::fleet::DeviceCompliance) -> Option<String>| -> ArrayRef {
        Arc::new(d.iter().map(f).collect::<StringArray>())
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "snapshot_at",
            Arc::new(TimestampMillisecondArray::from(vec![taken_ms; d.len()]).with_timezone("UTC")),
        ),
        ("device_id", text(&|c| Some(c.device.clone()))),
        ("model", text(&|c| c.model.clone())),
        ("version", text(&|c| c.version.clone())),
        ("group", text(&|c| Some(c.group.clone()))),
        ("state", text(&|c| Some(c.state.as_str().to_string()))),
        ("latest_version", text(&|c| c.latest_version.clone())),
        ("deployment", text(&|c| c.deployment.clone())),
        ("deployment_state", text(&|c| c.deployment_state.clone())),
        (
            "last_seen_ms",
            Arc::new(d.iter().map(|c| c.last_seen_ms).collect::<Int64Array>()),
        ),
    ];
    RecordBatch::try_from_iter(columns)
}
