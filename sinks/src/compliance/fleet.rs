//! The compliance model: catalog, deployments, device inventory, and the Azure Device Update
//! definitions applied to them. Pure state, unit-tested with in-memory values.
//!
//! Per device (docs/design.md, Compliance):
//! - **on latest update**: it runs the highest version, among *all* published updates
//!   compatible with its model, or a later one (a model with no compatible update is on latest);
//! - **update in progress**: not on latest, and an active deployment to its group delivers that
//!   highest update (unless the device reported that deployment as failed);
//! - **new updates available**: otherwise.
//!
//! "Failed" is a deployment state: counted per deployment and group, not a compliance state.

use serde::{Deserialize, Serialize};
use sluice_config::{DeploymentConfig, DeploymentStatus, UpdateConfig, Version};
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    OnLatestUpdate,
    UpdateInProgress,
    NewUpdatesAvailable,
}

impl UpdateState {
    pub const ALL: [UpdateState; 3] = [
        UpdateState::OnLatestUpdate,
        UpdateState::UpdateInProgress,
        UpdateState::NewUpdatesAvailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UpdateState::OnLatestUpdate => "on_latest_update",
            UpdateState::UpdateInProgress => "update_in_progress",
            UpdateState::NewUpdatesAvailable => "new_updates_available",
        }
    }

    pub fn parse(s: &str) -> Option<UpdateState> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// What the fleet last told us about one device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub model: Option<String>,
    pub version: Option<String>,
    pub group: Option<String>,
    pub deployment: Option<String>,
    pub deployment_state: Option<String>,
    pub last_seen_ms: i64,
    /// Whether the device said it is connected, if its reports say (an `online` column:
    /// Sparkplug B rows carry one, false on NDEATH/DDEATH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// The Kafka partition of its latest report: its changelog record lives there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
}

/// One device report (a row sent to the compliance sink); absent fields keep their value.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub device: String,
    pub model: Option<String>,
    pub version: Option<String>,
    pub group: Option<String>,
    pub deployment: Option<String>,
    pub deployment_state: Option<String>,
    pub seen_ms: i64,
    pub online: Option<bool>,
    pub partition: Option<i32>,
}

/// What [`Fleet::observe`] did with a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    Updated,
    /// A device not tracked before.
    Added,
    /// A new device past `max_devices`: not tracked.
    Refused,
}

/// Everything the tracker keeps; saved at every checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fleet {
    pub catalog: BTreeMap<String, UpdateConfig>,
    pub deployments: BTreeMap<String, DeploymentConfig>,
    pub devices: BTreeMap<String, DeviceRecord>,
    pub retired: BTreeSet<String>,
    pub default_group: String,
    /// Devices forgotten after `forget_after_days` of silence, since the state began.
    #[serde(default)]
    pub forgotten: u64,
    /// Devices tracked at most (`max_devices`; 0: no limit). Config, not state.
    #[serde(skip)]
    pub max_devices: usize,
}

/// One device as `/compliance` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceCompliance {
    pub device: String,
    pub model: Option<String>,
    pub version: Option<String>,
    pub group: String,
    pub state: UpdateState,
    pub latest_version: Option<String>,
    pub deployment: Option<String>,
    pub deployment_state: Option<String>,
    pub last_seen_ms: i64,
    /// `false` once a death (Sparkplug NDEATH/DDEATH) was its last word; absent when its
    /// reports never said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
}

/// Counts for a group or the whole fleet.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    pub devices: u64,
    pub on_latest_update: u64,
    pub update_in_progress: u64,
    pub new_updates_available: u64,
    /// on_latest_update ÷ devices × 100 (100 for no devices).
    pub compliance_percent: f64,
}

impl Counts {
    /// A group without devices (100 %, as an empty fleet).
    pub fn empty() -> Counts {
        Counts {
            compliance_percent: 100.0,
            ..Counts::default()
        }
    }

    /// Adds another group's counts (several groups under one label).
    pub fn merge(&mut self, other: &Counts) {
        self.devices += other.devices;
        self.on_latest_update += other.on_latest_update;
        self.update_in_progress += other.update_in_progress;
        self.new_updates_available += other.new_updates_available;
        self.compliance_percent = if self.devices == 0 {
            100.0
        } else {
            self.on_latest_update as f64 * 100.0 / self.devices as f64
        };
    }

    fn add(&mut self, s: UpdateState) {
        self.devices += 1;
        match s {
            UpdateState::OnLatestUpdate => self.on_latest_update += 1,
            UpdateState::UpdateInProgress => self.update_in_progress += 1,
            UpdateState::NewUpdatesAvailable => self.new_updates_available += 1,
        }
        self.compliance_percent = self.on_latest_update as f64 * 100.0 / self.devices as f64;
    }
}

/// Devices whose last report says a deployment failed, per deployment and group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedCount {
    pub deployment: String,
    pub group: String,
    pub devices: u64,
}

/// The whole compliance picture, as `GET /compliance` returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComplianceReport {
    pub total: Counts,
    pub groups: BTreeMap<String, Counts>,
    pub failed: Vec<FailedCount>,
    pub retired: usize,
    /// Devices forgotten after `forget_after_days` of silence (they count again if they
    /// report again).
    pub forgotten: u64,
    pub devices: Vec<DeviceCompliance>,
}

impl Fleet {
    /// Applies a report; a device not tracked yet is refused once `max_devices` are.
    pub fn observe(&mut self, r: Report) -> Observed {
        let added = !self.devices.contains_key(&r.device);
        if added && self.max_devices > 0 && self.devices.len() >= self.max_devices {
            return Observed::Refused;
        }
        let d = self.devices.entry(r.device).or_default();
        let keep = |new: Option<String>, old: &mut Option<String>| {
            if new.is_some() {
                *old = new;
            }
        };
        keep(r.model, &mut d.model);
        keep(r.version, &mut d.version);
        keep(r.group, &mut d.group);
        keep(r.deployment, &mut d.deployment);
        keep(r.deployment_state, &mut d.deployment_state);
        // The latest report's word on liveness, when it has one (reports arrive in order).
        if r.online.is_some() && r.seen_ms >= d.last_seen_ms {
            d.online = r.online;
        }
        d.last_seen_ms = d.last_seen_ms.max(r.seen_ms);
        if r.partition.is_some() {
            d.partition = r.partition;
        }
        if added {
            Observed::Added
        } else {
            Observed::Updated
        }
    }

    /// Forgets the devices last seen before `cutoff_ms`; returns each one's id and partition.
    pub fn forget_silent(&mut self, cutoff_ms: i64) -> Vec<(String, Option<i32>)> {
        let mut gone = Vec::new();
        self.devices.retain(|id, d| {
            let keep = d.last_seen_ms >= cutoff_ms;
            if !keep {
                gone.push((id.clone(), d.partition));
            }
            keep
        });
        self.forgotten += gone.len() as u64;
        gone
    }

    /// The state without its device inventory, as JSON (what the local file keeps when the
    /// changelog holds the devices): its size does not grow with the fleet.
    pub fn to_json_without_devices(&mut self) -> serde_json::Result<Vec<u8>> {
        let devices = std::mem::take(&mut self.devices);
        let json = serde_json::to_vec(self);
        self.devices = devices;
        json
    }

    /// The highest update compatible with `model` among all published updates.
    fn latest_for(&self, model: &str) -> Option<(&UpdateConfig, Version)> {
        self.catalog
            .values()
            .filter(|u| u.models.iter().any(|m| m == model))
            .filter_map(|u| Version::parse(&u.version).map(|v| (u, v)))
            .max_by(|a, b| a.1.cmp(&b.1))
    }

    /// A device's state (the definitions in this module's header), with each model's latest
    /// update and each version text worked out once per `memo`.
    fn state_in<'a>(
        &'a self,
        d: &'a DeviceRecord,
        group: &str,
        memo: &mut Memo<'a>,
    ) -> (UpdateState, Option<&'a UpdateConfig>) {
        let latest = match d.model.as_deref() {
            Some(m) => memo
                .latest
                .entry(m)
                .or_insert_with(|| self.latest_for(m))
                .as_ref(),
            None => None,
        };
        let installed = match d.version.as_deref() {
            Some(v) => memo
                .versions
                .entry(v)
                .or_insert_with(|| Version::parse(v))
                .as_ref(),
            None => None,
        };
        let state = match latest {
            None => UpdateState::OnLatestUpdate,
            Some((_, v)) if installed.is_some_and(|i| i >= v) => UpdateState::OnLatestUpdate,
            Some((update, v)) => {
                let delivering = self.deployments.values().any(|dep| {
                    dep.status == DeploymentStatus::Active
                        && dep.group == group
                        && self.catalog.get(&dep.update).is_some_and(|u| {
                            u.id == update.id || Version::parse(&u.version).as_ref() == Some(v)
                        })
                        && !(d.deployment.as_deref() == Some(&dep.id)
                            && d.deployment_state.as_deref() == Some("failed"))
                });
                if delivering {
                    UpdateState::UpdateInProgress
                } else {
                    UpdateState::NewUpdatesAvailable
                }
            }
        };
        (state, latest.map(|(u, _)| *u))
    }

    pub fn evaluate(&self, device: &str, d: &DeviceRecord) -> DeviceCompliance {
        let group = d.group.as_deref().unwrap_or(&self.default_group);
        let (state, latest) = self.state_in(d, group, &mut Memo::default());
        describe(device, d, group, state, latest)
    }

    /// Every non-retired device evaluated, with per-group and total counts.
    pub fn report(&self) -> ComplianceReport {
        self.evaluate_all(true)
    }

    /// [`Fleet::report`]'s counts without the device list (what the gauges need at every
    /// checkpoint): no allocation per device, so a million devices cost a pass over a map.
    pub fn counts(&self) -> ComplianceReport {
        self.evaluate_all(false)
    }

    fn evaluate_all(&self, list_devices: bool) -> ComplianceReport {
        let mut total = Counts::default();
        let mut groups: BTreeMap<String, Counts> = BTreeMap::new();
        let mut failed: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut devices = Vec::new();
        let mut memo = Memo::default();
        for (id, d) in &self.devices {
            if self.retired.contains(id) {
                continue;
            }
            let group = d.group.as_deref().unwrap_or(&self.default_group);
            let (state, latest) = self.state_in(d, group, &mut memo);
            total.add(state);
            match groups.get_mut(group) {
                Some(c) => c.add(state),
                None => {
                    let mut c = Counts::default();
                    c.add(state);
                    groups.insert(group.to_string(), c);
                }
            }
            // Only configured deployments: an id a device made up is no label value.
            if let (Some(dep), Some("failed")) = (&d.deployment, d.deployment_state.as_deref()) {
                if self.deployments.contains_key(dep) {
                    *failed.entry((dep.clone(), group.to_string())).or_default() += 1;
                }
            }
            if list_devices {
                devices.push(describe(id, d, group, state, latest));
            }
        }
        if total.devices == 0 {
            total.compliance_percent = 100.0;
        }
        ComplianceReport {
            total,
            groups,
            failed: failed
                .into_iter()
                .map(|((deployment, group), devices)| FailedCount {
                    deployment,
                    group,
                    devices,
                })
                .collect(),
            retired: self.retired.len(),
            forgotten: self.forgotten,
            devices,
        }
    }
}

/// What evaluating many devices shares: each model's latest update, each version text parsed.
#[derive(Default)]
struct Memo<'a> {
    latest: HashMap<&'a str, Option<(&'a UpdateConfig, Version)>>,
    versions: HashMap<&'a str, Option<Version>>,
}

fn describe(
    device: &str,
    d: &DeviceRecord,
    group: &str,
    state: UpdateState,
    latest: Option<&UpdateConfig>,
) -> DeviceCompliance {
    DeviceCompliance {
        device: device.to_string(),
        model: d.model.clone(),
        version: d.version.clone(),
        group: group.to_string(),
        state,
        latest_version: latest.map(|u| u.version.clone()),
        deployment: d.deployment.clone(),
        deployment_state: d.deployment_state.clone(),
        last_seen_ms: d.last_seen_ms,
        online: d.online,
    }
}
