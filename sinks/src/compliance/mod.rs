//! `type = "compliance"`: the device-update compliance tracker.
//!
//! Layout:
//! - [`fleet`]: catalog, deployments, inventory and the compliance definitions (pure state).
//! - [`snapshot`]: the periodic Parquet snapshot of the inventory, for analytics.
//! - [`gauges`]: the compliance gauges, with bounded group labels and no stale series.
//! - [`ComplianceSink`]: rows from rules → device reports; state saved at each checkpoint.
//! - [`ComplianceBoard`]: the state shared with the HTTP API (`/compliance`, retire, catalog).
//!
//! Device state is saved at each checkpoint to a compacted Kafka topic ([`crate::changelog`],
//! on by default): a device's record goes to the partition its reports come from, the router
//! assigned that partition restores it before routing the partition's records, and every
//! router tails the others' records, so `/compliance` on any router covers the whole fleet.
//! A JSON file under `data_dir` is written too, as a cache (and the only store when
//! `changelog = false`).

pub mod fleet;
pub mod gauges;
pub mod snapshot;
#[cfg(test)]
mod tests;

use crate::events::{RetiredReportsDropped, UnknownDeploymentReported};
use crate::{CheckpointStats, RuleOutput, Sink, SinkError};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use fleet::{ComplianceReport, Fleet, Report};
use sluice_common::Event;
use sluice_config::{ComplianceSinkConfig, Config, UpdateConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

pub use sluice_core::RetiredDevices;

/// Compliance state shared by the sink and the HTTP API.
pub struct ComplianceBoard {
    fleet: Mutex<Fleet>,
    retired: Arc<RetiredDevices>,
}

impl ComplianceBoard {
    fn fleet(&self) -> MutexGuard<'_, Fleet> {
        self.fleet.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn report(&self) -> ComplianceReport {
        self.fleet().report()
    }

    /// Retires a device: excluded from counts from now on, its messages dropped.
    pub fn retire(&self, device: &str) {
        self.fleet().retired.insert(device.to_string());
        self.retired.insert(device);
    }

    /// Adds or replaces a catalog entry (an update published at run time).
    pub fn publish_update(&self, update: UpdateConfig) {
        self.fleet().catalog.insert(update.id.clone(), update);
    }

    /// Removes a catalog entry; false when there was none.
    pub fn withdraw_update(&self, id: &str) -> bool {
        self.fleet().catalog.remove(id).is_some()
    }

    pub fn catalog(&self) -> Vec<UpdateConfig> {
        self.fleet().catalog.values().cloned().collect()
    }
}

pub struct ComplianceSink {
    name: String,
    board: Arc<ComplianceBoard>,
    state_path: PathBuf,
    snapshots: snapshot::Snapshots,
    changelog: Option<crate::changelog::Changelog>,
    /// Devices changed since the last checkpoint, with the Kafka partition of their reports.
    changed: BTreeMap<String, i32>,
    gauges: gauges::ComplianceGauges,
    /// Unknown deployment ids already logged (at most [`MAX_UNKNOWN_LOGGED`]).
    unknown_logged: BTreeSet<String>,
}

/// Unknown deployment ids remembered for "log once"; past this, they are only counted.
const MAX_UNKNOWN_LOGGED: usize = 1000;

impl ComplianceSink {
    /// Loads the saved state; the config's catalog, deployments and retirements apply on top.
    pub fn new(
        name: &str,
        c: &ComplianceSinkConfig,
        config: &Config,
        retired: Arc<RetiredDevices>,
        kafka: &rdkafka::ClientConfig,
    ) -> Result<(ComplianceSink, Arc<ComplianceBoard>), SinkError> {
        let file = sluice_config::state_file_or_default(&c.state_file, "compliance", name);
        let state_path = config.under_data_dir(&file);
        let mut fleet: Fleet = crate::read_state(&state_path).map_err(|e| {
            SinkError::external(name, format!("reading {}: {e}", state_path.display()))
        })?;
        fleet.default_group = c.default_group.clone();
        for u in &c.updates {
            fleet.catalog.insert(u.id.clone(), u.clone());
        }
        for d in &c.deployments {
            fleet.deployments.insert(d.id.clone(), d.clone());
        }
        fleet.retired.extend(c.retired.iter().cloned());
        for device in &fleet.retired {
            retired.insert(device);
        }
        let board = Arc::new(ComplianceBoard {
            fleet: Mutex::new(fleet),
            retired,
        });
        let snapshots = snapshot::Snapshots::new(
            config.under_data_dir(&c.snapshot_path),
            c.snapshot_interval_ms,
        );
        let changelog = match config.changelog_topic(name) {
            Some(topic) => Some(
                crate::changelog::Changelog::start(&topic, kafka, apply_to(&board))
                    .map_err(|e| SinkError::external(name, e))?,
            ),
            None => None,
        };
        let sink = ComplianceSink {
            name: name.into(),
            board: board.clone(),
            state_path,
            snapshots,
            changelog,
            changed: BTreeMap::new(),
            gauges: gauges::ComplianceGauges::new(
                name,
                c.max_group_labels,
                c.deployments
                    .iter()
                    .map(|d| d.group.clone())
                    .chain([c.default_group.clone()]),
            ),
            unknown_logged: BTreeSet::new(),
        };
        Ok((sink, board))
    }
}

/// Applies another router's changelog record to the fleet view.
fn apply_to(board: &Arc<ComplianceBoard>) -> crate::changelog::Apply {
    let board = Arc::downgrade(board);
    Box::new(move |device, value| {
        let Some(board) = board.upgrade() else {
            return;
        };
        let mut fleet = board.fleet();
        match value.map(serde_json::from_slice::<fleet::DeviceRecord>) {
            Some(Ok(record)) => {
                fleet.devices.insert(device.to_string(), record);
            }
            None => {
                fleet.devices.remove(device);
            }
            Some(Err(e)) => crate::events::ChangelogRecordSkipped {
                state: "compliance",
                key: device,
                error: &e,
            }
            .emit(),
        }
    })
}

/// A column of the rule's output as text (any type cast), if the rule selected it.
fn text_column(rows: &RecordBatch, name: &str) -> Option<arrow::array::StringArray> {
    let col = rows.column_by_name(name)?;
    let cast = arrow::compute::cast(col, &DataType::Utf8).ok()?;
    Some(cast.as_string::<i32>().clone())
}

fn value(col: &Option<arrow::array::StringArray>, i: usize) -> Option<String> {
    col.as_ref()
        .filter(|c| c.is_valid(i))
        .map(|c| c.value(i).to_string())
}

/// The device reports in one rule output, with the Kafka partition of each one's record.
fn reports(output: &RuleOutput) -> Vec<(i32, Report)> {
    let rows = &output.rows;
    let named = text_column(rows, "device_id");
    let meta = sluice_core::Meta::of(&output.source);
    let [model, version, group, deployment, deployment_state] = [
        "model",
        "version",
        "group",
        "deployment",
        "deployment_state",
    ]
    .map(|c| text_column(rows, c));

    (0..rows.num_rows())
        .filter_map(|i| {
            let report = Report {
                device: value(&named, i).or_else(|| meta.device_id(i).map(str::to_string))?,
                model: value(&model, i),
                version: value(&version, i),
                group: value(&group, i),
                deployment: value(&deployment, i),
                deployment_state: value(&deployment_state, i),
                seen_ms: meta.received_ms(i).unwrap_or(0),
            };
            Some((meta.partition(i), report))
        })
        .collect()
}

impl Sink for ComplianceSink {
    fn write(&mut self, _rule: &str, output: &RuleOutput) -> Result<(), SinkError> {
        let reports = reports(output);
        let mut fleet = self.board.fleet();
        let mut dropped = 0u64;
        let mut unknown: BTreeMap<String, u64> = BTreeMap::new();
        for (partition, r) in reports {
            if fleet.retired.contains(&r.device) {
                dropped += 1;
                continue;
            }
            if let Some(d) = r.deployment.as_ref() {
                if !fleet.deployments.contains_key(d) {
                    *unknown.entry(d.clone()).or_default() += 1;
                }
            }
            self.changed.insert(r.device.clone(), partition);
            fleet.observe(r);
        }
        drop(fleet);
        RetiredReportsDropped { reports: dropped }.emit();
        for (deployment, reports) in unknown {
            let first = self.unknown_logged.len() < MAX_UNKNOWN_LOGGED
                && self.unknown_logged.insert(deployment.clone());
            UnknownDeploymentReported {
                sink: &self.name,
                deployment: &deployment,
                reports,
                first,
            }
            .emit();
        }
        Ok(())
    }

    /// Saves the state, updates the gauges, and writes a snapshot when one is due.
    fn checkpoint(&mut self) -> Result<CheckpointStats, SinkError> {
        let fleet = self.board.fleet().clone();
        let err = |m: String| SinkError::external(&self.name, m);
        if let Some(changelog) = &self.changelog {
            let records =
                self.changed
                    .iter()
                    .filter(|(_, p)| **p >= 0)
                    .filter_map(|(device, p)| {
                        let record = fleet.devices.get(device)?;
                        Some((*p, device.clone(), Some(serde_json::to_vec(record).ok()?)))
                    });
            changelog.checkpoint(records).map_err(err)?;
        }
        self.changed.clear();
        let json = serde_json::to_vec(&fleet).map_err(|e| err(e.to_string()))?;
        crate::atomic_write(&self.state_path, &json)
            .map_err(|e| err(format!("saving {}: {e}", self.state_path.display())))?;
        let report = fleet.report();
        self.gauges.publish(&report);
        self.snapshots
            .maybe_write(&report)
            .map_err(|e| err(e.to_string()))?;
        Ok(CheckpointStats::default())
    }

    /// Waits for the previous owner's device state of these partitions.
    fn assigned(&mut self, partitions: &[i32]) -> Result<(), SinkError> {
        let Some(changelog) = &self.changelog else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        let read = changelog
            .restore(partitions)
            .map_err(|e| SinkError::external(&self.name, e))?;
        crate::events::ComplianceStateRestored {
            sink: &self.name,
            partitions,
            changelog_records: read,
            devices: self.board.fleet().devices.len(),
            took: started.elapsed(),
        }
        .emit();
        Ok(())
    }

    /// The new owner saves these partitions' devices from now on.
    fn revoked(&mut self, partitions: &[i32]) {
        self.changed.retain(|_, p| !partitions.contains(p));
        if let Some(changelog) = &self.changelog {
            changelog.release(partitions);
        }
    }
}
