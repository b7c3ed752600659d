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
//! A JSON file under `data_dir` keeps the catalog, deployments and retirements (and the
//! devices too when `changelog = false`, its only store then).
//!
//! Device ids come from the fleet, so the state is bounded: at most `max_devices` are tracked
//! (reports of further devices are refused and counted), devices silent `forget_after_days`
//! are forgotten (tombstoned in the changelog), and a checkpoint writes only the devices that
//! changed: its cost follows the traffic since the last one, not the fleet's size.

pub mod fleet;
pub mod gauges;
pub mod snapshot;
#[cfg(test)]
mod tests;

use crate::events::{
    ComplianceCheckpointed, ComplianceReportsRefused, RetiredReportsDropped,
    UnknownDeploymentReported,
};
use crate::{CheckpointStats, RuleOutput, Sink, SinkError};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use fleet::{ComplianceReport, Fleet, Observed, Report};
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
    /// Retirements and catalog changes made here, for the next checkpoint to put in the
    /// changelog, where every router (and this one after losing its data directory) reads them.
    fleet_changes: Mutex<Vec<(String, Option<Vec<u8>>)>>,
}

/// The changelog key of a retirement.
fn retired_key(device: &str) -> String {
    format!("{}retired/{device}", crate::changelog::FLEET_WIDE)
}

/// The changelog key of a catalog entry.
fn catalog_key(id: &str) -> String {
    format!("{}catalog/{id}", crate::changelog::FLEET_WIDE)
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
        self.changed(retired_key(device), Some(br#"{"retired":true}"#.to_vec()));
    }

    /// Adds or replaces a catalog entry (an update published at run time).
    pub fn publish_update(&self, update: UpdateConfig) {
        let value = serde_json::to_vec(&update).ok();
        self.changed(catalog_key(&update.id), value);
        self.fleet().catalog.insert(update.id.clone(), update);
    }

    /// Removes a catalog entry; false when there was none.
    pub fn withdraw_update(&self, id: &str) -> bool {
        let removed = self.fleet().catalog.remove(id).is_some();
        if removed {
            self.changed(catalog_key(id), None);
        }
        removed
    }

    fn changed(&self, key: String, value: Option<Vec<u8>>) {
        let mut changes = self.fleet_changes.lock().unwrap_or_else(|p| p.into_inner());
        changes.push((key, value));
    }

    fn take_fleet_changes(&self) -> Vec<(String, Option<Vec<u8>>)> {
        std::mem::take(&mut *self.fleet_changes.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Puts changes a failed checkpoint took back in front of any made since.
    fn requeue_fleet_changes(&self, mut taken: Vec<(String, Option<Vec<u8>>)>) {
        let mut changes = self.fleet_changes.lock().unwrap_or_else(|p| p.into_inner());
        taken.append(&mut changes);
        *changes = taken;
    }

    /// A fleet-wide changelog record (another router's, or this one's read back).
    fn apply_fleet_wide(&self, key: &str, value: Option<&[u8]>) -> Result<(), serde_json::Error> {
        let key = &key[crate::changelog::FLEET_WIDE.len()..];
        if let Some(device) = key.strip_prefix("retired/") {
            if value.is_some() {
                self.fleet().retired.insert(device.to_string());
                self.retired.insert(device);
            }
        } else if let Some(id) = key.strip_prefix("catalog/") {
            match value {
                Some(v) => {
                    let update: UpdateConfig = serde_json::from_slice(v)?;
                    self.fleet().catalog.insert(id.to_string(), update);
                }
                None => {
                    self.fleet().catalog.remove(id);
                }
            }
        }
        Ok(())
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
    /// Kafka partitions this router owns: only their devices' tombstones are its to write.
    owned: BTreeSet<i32>,
    /// Silence after which a device is forgotten, in ms (0: never).
    forget_after_ms: i64,
    /// When silent devices were last looked for (a pass reads every device: once a minute).
    last_forget_pass: Option<std::time::Instant>,
    /// Whether the "tracker full" warning was logged.
    refusal_logged: bool,
}

/// How often the tracker looks for devices to forget.
const FORGET_PASS_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

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
        fleet.max_devices = c.max_devices;
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
            fleet_changes: Mutex::new(Vec::new()),
        });
        let snapshots = snapshot::Snapshots::new(
            config.under_data_dir(&c.snapshot_path),
            c.snapshot_interval_ms,
        );
        let changelog = match config.changelog_topic(name) {
            Some(topic) => {
                let changelog = crate::changelog::Changelog::start(&topic, kafka, apply_to(&board))
                    .map_err(|e| SinkError::external(name, e))?;
                // The devices live in the changelog, not the state file: read it before the
                // tracker answers for the fleet.
                changelog
                    .catch_up()
                    .map_err(|e| SinkError::external(name, e))?;
                Some(changelog)
            }
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
            owned: BTreeSet::new(),
            forget_after_ms: i64::try_from(c.forget_after_days)
                .unwrap_or(i64::MAX / 86_400_000)
                .saturating_mul(86_400_000),
            last_forget_pass: None,
            refusal_logged: false,
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
        if device.starts_with(crate::changelog::FLEET_WIDE) {
            if let Err(e) = board.apply_fleet_wide(device, value) {
                let error = &e;
                crate::events::ChangelogRecordSkipped {
                    state: "compliance",
                    key: device,
                    error,
                }
                .emit();
            }
            return;
        }
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
    let online = text_column(rows, "online");

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
                online: value(&online, i).and_then(|v| v.parse().ok()),
                partition: Some(meta.partition(i)).filter(|p| *p >= 0),
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
        let mut refused = 0u64;
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
            let device = r.device.clone();
            match fleet.observe(r) {
                Observed::Refused => refused += 1,
                Observed::Added | Observed::Updated => {
                    self.changed.insert(device, partition);
                }
            }
        }
        drop(fleet);
        RetiredReportsDropped { reports: dropped }.emit();
        ComplianceReportsRefused {
            sink: &self.name,
            reason: "max_devices",
            reports: refused,
            first: refused > 0 && !std::mem::replace(&mut self.refusal_logged, true),
        }
        .emit();
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

    /// Saves what changed (and tombstones for forgotten devices), the state file, the gauges,
    /// and a snapshot when one is due. Nothing here copies or writes the whole inventory
    /// while the changelog holds it.
    fn checkpoint(&mut self) -> Result<CheckpointStats, SinkError> {
        let started = std::time::Instant::now();
        let name = self.name.clone();
        let err = |m: String| SinkError::external(&name, m);
        let with_changelog = self.changelog.is_some();
        let board = self.board.clone();
        // Taken whatever the store: without a changelog the state file is their only home,
        // and a list nobody drains would grow with every API call.
        let fleet_wide = board.take_fleet_changes();
        let (records, forgotten, file, counts, snapshot) = {
            let mut fleet = board.fleet();
            let forgotten = self.forget_silent(&mut fleet);
            let records: Vec<(i32, String, Option<Vec<u8>>)> = if with_changelog {
                let changed = self.changed.iter().filter(|(_, p)| **p >= 0);
                let saved = changed.filter_map(|(device, p)| {
                    let record = fleet.devices.get(device)?;
                    Some((*p, device.clone(), Some(serde_json::to_vec(record).ok()?)))
                });
                let owned = |p: &Option<i32>| p.filter(|p| self.owned.contains(p));
                let tombstones = forgotten
                    .iter()
                    .filter_map(|(device, p)| Some((owned(p)?, device.clone(), None)));
                let fleet_wide = fleet_wide.iter().map(|(k, v)| (0, k.clone(), v.clone()));
                saved.chain(tombstones).chain(fleet_wide).collect()
            } else {
                Vec::new()
            };
            let file = if with_changelog {
                fleet.to_json_without_devices()
            } else {
                serde_json::to_vec(&*fleet)
            }
            .map_err(|e| err(e.to_string()))?;
            let snapshot = self.snapshots.due().then(|| fleet.report());
            (records, forgotten.len(), file, fleet.counts(), snapshot)
        };
        if let Some(changelog) = &self.changelog {
            if let Err(e) = changelog.checkpoint(records) {
                // Retirements and catalog changes are not replayed from Kafka: keep them for
                // the next checkpoint (device records are, through the uncommitted offsets).
                board.requeue_fleet_changes(fleet_wide);
                return Err(err(e));
            }
        }
        self.changed.clear();
        crate::atomic_write(&self.state_path, &file)
            .map_err(|e| err(format!("saving {}: {e}", self.state_path.display())))?;
        self.gauges.publish(&counts);
        if let Some(report) = snapshot {
            self.snapshots
                .maybe_write(&report)
                .map_err(|e| err(e.to_string()))?;
        }
        ComplianceCheckpointed {
            sink: &self.name,
            forgotten: forgotten as u64,
            took: started.elapsed(),
        }
        .emit();
        Ok(CheckpointStats::default())
    }

    /// Waits for the previous owner's device state of these partitions.
    fn assigned(&mut self, partitions: &[i32]) -> Result<(), SinkError> {
        let Some(changelog) = &self.changelog else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        self.owned.extend(partitions.iter().copied());
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
        self.owned.retain(|p| !partitions.contains(p));
        if let Some(changelog) = &self.changelog {
            changelog.release(partitions);
        }
    }
}

impl ComplianceSink {
    /// Forgets devices silent past `forget_after_days` (a pass at most once a minute): every
    /// router forgets them from its view; the tombstones are the owning router's to write.
    fn forget_silent(&mut self, fleet: &mut Fleet) -> Vec<(String, Option<i32>)> {
        let due = self
            .last_forget_pass
            .is_none_or(|at| at.elapsed() >= FORGET_PASS_EVERY);
        if self.forget_after_ms <= 0 || !due {
            return Vec::new();
        }
        self.last_forget_pass = Some(std::time::Instant::now());
        let gone = fleet.forget_silent(sluice_common::clock::now_ms() - self.forget_after_ms);
        for (device, _) in &gone {
            self.changed.remove(device);
        }
        gone
    }
}
