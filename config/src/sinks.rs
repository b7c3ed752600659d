//! `[sinks.<name>]`: the destinations rules name in `actions`.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[sinks.<name>]`: a destination rules can name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    Parquet(ParquetSinkConfig),
    Alert(AlertSinkConfig),
    Compliance(ComplianceSinkConfig),
}

/// `type = "parquet"`: Hive-partitioned Parquet files, `rule=/date=/hour=`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSinkConfig {
    /// Output root: a directory (relative paths resolve under `data_dir`) or an object-store
    /// URL, `s3://bucket/prefix`, `gs://…`, `az://container/prefix`, `file:///abs/dir`.
    #[serde(default = "default_parquet_path")]
    pub path: PathBuf,
    /// Non-secret object-store settings (`endpoint`, `region`, `allow_http`, …) on top of the
    /// standard environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`), where credentials must come from.
    #[serde(default)]
    pub storage_options: std::collections::BTreeMap<String, String>,
    /// Column compression.
    #[serde(default)]
    pub compression: Compression,
    /// Roll a file after this many rows.
    #[serde(default = "default_file_rows")]
    pub max_rows: usize,
    /// Roll a file after about this many bytes.
    #[serde(default = "default_file_bytes")]
    pub max_bytes: usize,
    /// Payload field with the event time in ms since the epoch; receive time when absent.
    #[serde(default = "default_event_time")]
    pub event_time_field: String,
    /// An event time more than this many seconds before the receive time is not trusted: the
    /// row is filed under its receive time (and counted), so a device with a broken clock
    /// cannot scatter files over decades.
    #[serde(default = "default_event_max_age")]
    pub max_event_age_secs: u64,
    /// Likewise for an event time more than this many seconds after the receive time.
    #[serde(default = "default_event_max_lead")]
    pub max_event_lead_secs: u64,
    /// Open files at most (one per rule, hour and Kafka partition); past it the least
    /// recently written file is closed, so scattered event times cost files, never `EMFILE`.
    #[serde(default = "default_max_open_files")]
    pub max_open_files: usize,
    /// `files`: Parquet files published through Sluice's per-partition ledger. `delta`: one
    /// Delta Lake table per rule under `path`, whose transaction log is the ledger.
    #[serde(default)]
    pub format: OutputFormat,
    /// Delta tables: write a Delta checkpoint (the log's state in one Parquet file, so readers
    /// need not replay every commit) every this many commits.
    #[serde(default = "default_delta_checkpoint_interval")]
    pub delta_checkpoint_interval: u64,
}

/// How a Parquet sink publishes its files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// Hive-partitioned files (`rule=/date=/hour=`) and Sluice's ledger: any Parquet reader.
    #[default]
    Files,
    /// A Delta Lake table per rule (`<path>/<rule>`, partitioned by `date` and `hour`):
    /// snapshots, schema evolution, time travel, compaction, for Delta-aware readers.
    Delta,
}

const fn default_delta_checkpoint_interval() -> u64 {
    10
}

fn default_parquet_path() -> PathBuf {
    PathBuf::from("parquet")
}
const fn default_file_rows() -> usize {
    1_000_000
}
const fn default_file_bytes() -> usize {
    128 * 1024 * 1024
}
fn default_event_time() -> String {
    "ts".into()
}
const fn default_event_max_age() -> u64 {
    30 * 24 * 3600
}
const fn default_event_max_lead() -> u64 {
    3600
}
const fn default_max_open_files() -> usize {
    256
}

impl Default for ParquetSinkConfig {
    fn default() -> Self {
        Self {
            path: default_parquet_path(),
            storage_options: Default::default(),
            compression: Compression::default(),
            max_rows: default_file_rows(),
            max_bytes: default_file_bytes(),
            event_time_field: default_event_time(),
            max_event_age_secs: default_event_max_age(),
            max_event_lead_secs: default_event_max_lead(),
            max_open_files: default_max_open_files(),
            format: OutputFormat::default(),
            delta_checkpoint_interval: default_delta_checkpoint_interval(),
        }
    }
}

/// Parquet column compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    Zstd,
    Snappy,
    None,
}

/// `type = "alert"`: each row a rule sends here is an alert for a key (default: rule +
/// device). A key notifies once when it starts firing; repeats while it fires only raise its
/// count; after `resolve_after_ms` with no repeat it is sent again as resolved.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSinkConfig {
    /// Severity by rule name; rules not listed get `default_severity`.
    #[serde(default)]
    pub severity: std::collections::BTreeMap<String, String>,
    #[serde(default = "default_severity")]
    pub default_severity: String,
    /// Columns of the rule's output that, with the rule name, make the dedup key.
    /// Empty: the device id.
    #[serde(default)]
    pub key_columns: Vec<String>,
    /// A key that resolved does not notify again as firing within this many ms of its last
    /// firing notification (repeats are counted as suppressed).
    #[serde(default = "default_cooldown")]
    pub cooldown_ms: u64,
    /// Quiet period: a firing key with no repeat for this long is sent as resolved.
    #[serde(default = "default_resolve_after")]
    pub resolve_after_ms: u64,
    /// Where notifications go (one or more).
    pub destinations: Vec<AlertDestination>,
    /// Notifications waiting for delivery at most; past it a new notification goes straight to
    /// the rule's error action (the router never waits on a destination).
    #[serde(default = "default_alert_queue")]
    pub queue_capacity: usize,
    /// Firing/resolved state file, under `data_dir` (survives restarts). Default:
    /// `alerts/<sink name>.json`; no two sinks may share one.
    #[serde(default)]
    pub state_file: PathBuf,
    /// Keep each alert key's firing state in a compacted Kafka topic too, so a key keeps its
    /// dedup and resolve state when its partition moves to another router.
    #[serde(default = "crate::model::default_true")]
    pub changelog: bool,
    /// That topic; default `<kafka.raw_topic>.changelog.<sink name>`.
    #[serde(default)]
    pub changelog_topic: String,
    /// Alert keys (firing, or resolved within their cooldown) held at most. Keys come from
    /// device data, so a fleet could mint any number: past this, occurrences of a new key are
    /// refused and counted (`sluice_alert_keys_refused_total`), keeping the alert state and
    /// its checkpoints bounded.
    #[serde(default = "default_max_alert_keys")]
    pub max_keys: usize,
}

const fn default_max_alert_keys() -> usize {
    100_000
}

fn default_severity() -> String {
    "warning".into()
}
const fn default_cooldown() -> u64 {
    60_000
}
const fn default_resolve_after() -> u64 {
    300_000
}
const fn default_alert_queue() -> usize {
    10_000
}

/// One place an alert notification is delivered to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AlertDestination {
    /// HTTP POST of the alert as JSON; retried with exponential backoff.
    Webhook {
        url: String,
        #[serde(default = "default_webhook_timeout")]
        timeout_ms: u64,
        /// Attempts after the first one.
        #[serde(default = "default_webhook_retries")]
        retries: u32,
        /// First backoff; doubled after every failed attempt.
        #[serde(default = "default_webhook_backoff")]
        backoff_ms: u64,
    },
    /// A Kafka record keyed by the alert key (JSON value).
    Kafka {
        #[serde(default = "default_alert_topic")]
        topic: String,
    },
    /// A `tracing` line at WARN (firing) or INFO (resolved).
    Log,
}

const fn default_webhook_timeout() -> u64 {
    5_000
}
const fn default_webhook_retries() -> u32 {
    3
}
const fn default_webhook_backoff() -> u64 {
    200
}
fn default_alert_topic() -> String {
    "alerts".into()
}

/// `type = "compliance"`: the device-update compliance tracker. Rows sent here are device
/// reports: `device_id` (or the device of the message), `model`, `version` (installed update),
/// and optionally `group`, `deployment` and `deployment_state` (`failed`, `succeeded`, …).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplianceSinkConfig {
    /// Published updates (the catalog); can also change at run time (`PUT /compliance/catalog`).
    #[serde(default)]
    pub updates: Vec<UpdateConfig>,
    /// Deployments of an update to a device group.
    #[serde(default)]
    pub deployments: Vec<DeploymentConfig>,
    /// Devices excluded from counts; their messages are dropped (and counted).
    #[serde(default)]
    pub retired: Vec<String>,
    /// Group of a device whose reports carry none.
    #[serde(default = "default_group_name")]
    pub default_group: String,
    /// State file (inventory, catalog changes, retirements), under `data_dir`. Default:
    /// `compliance/<sink name>.json`; no two sinks may share one.
    #[serde(default)]
    pub state_file: PathBuf,
    /// Directory of periodic Parquet snapshots of the inventory, under `data_dir`.
    #[serde(default = "default_snapshot_path")]
    pub snapshot_path: PathBuf,
    /// How often a snapshot is written, in ms (0 = never).
    #[serde(default = "default_snapshot_interval")]
    pub snapshot_interval_ms: u64,
    /// Keep the device inventory in a compacted Kafka topic too, so it follows its partition
    /// to whichever router is assigned it and every router answers for the whole fleet.
    #[serde(default = "crate::model::default_true")]
    pub changelog: bool,
    /// That topic; default `<kafka.raw_topic>.changelog.<sink name>`.
    #[serde(default)]
    pub changelog_topic: String,
    /// Distinct `group` label values on the compliance gauges at most. Groups come from device
    /// reports, so a misbehaving fleet could invent thousands: past this many, further groups
    /// are counted under `group="_overflow"` (groups named in `deployments` and
    /// `default_group` always get their own label).
    #[serde(default = "default_max_group_labels")]
    pub max_group_labels: usize,
    /// Devices tracked at most. Ids come from the fleet (any client can mint them without
    /// `gateway.device_auth`): reports of a further device are refused and counted
    /// (`sluice_compliance_reports_refused_total{reason="max_devices"}`), so the tracker's
    /// memory and its checkpoints stay bounded.
    #[serde(default = "default_max_devices")]
    pub max_devices: usize,
    /// A device silent this many days is forgotten (counted in `/compliance` as `forgotten`,
    /// removed from the changelog); it is tracked anew if it reports again. 0: never.
    #[serde(default = "default_forget_after_days")]
    pub forget_after_days: u64,
}

const fn default_max_group_labels() -> usize {
    100
}

const fn default_max_devices() -> usize {
    1_000_000
}

const fn default_forget_after_days() -> u64 {
    30
}

/// A published update: its id, version and the device models it is compatible with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    pub id: String,
    pub version: String,
    pub models: Vec<String>,
}

/// A deployment of update `update` to the devices of `group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    pub id: String,
    pub group: String,
    pub update: String,
    #[serde(default)]
    pub status: DeploymentStatus,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    #[default]
    Active,
    Cancelled,
}

fn default_group_name() -> String {
    "default".into()
}
fn default_snapshot_path() -> PathBuf {
    PathBuf::from("compliance/snapshots")
}
const fn default_snapshot_interval() -> u64 {
    60_000
}

impl crate::Config {
    /// The changelog topic of a stateful sink, if it keeps one.
    pub fn changelog_topic(&self, sink: &str) -> Option<String> {
        let (on, topic) = match self.sinks.get(sink)? {
            SinkConfig::Compliance(c) => (c.changelog, &c.changelog_topic),
            SinkConfig::Alert(a) => (a.changelog, &a.changelog_topic),
            SinkConfig::Parquet(_) => return None,
        };
        on.then(|| match topic.is_empty() {
            true => format!("{}.changelog.{sink}", self.kafka.raw_topic),
            false => topic.clone(),
        })
    }

    /// Every changelog topic (created at start, compacted, partitioned like the raw topic).
    pub fn changelog_topics(&self) -> Vec<String> {
        self.sinks
            .keys()
            .filter_map(|name| self.changelog_topic(name))
            .chain(self.sparkplug_changelog_topic())
            .collect()
    }

    /// The topic Sparkplug edge nodes' aliases are kept in, when some topics carry
    /// Sparkplug B: `<kafka.raw_topic>.changelog.sparkplug`.
    pub fn sparkplug_changelog_topic(&self) -> Option<String> {
        let sparkplug = self
            .payloads
            .iter()
            .any(|p| p.format == crate::PayloadFormat::Sparkplug);
        sparkplug.then(|| format!("{}.changelog.sparkplug", self.kafka.raw_topic))
    }

    /// Kafka topics alert sinks deliver to (created at start with the others).
    pub fn alert_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .sinks
            .values()
            .filter_map(|s| match s {
                SinkConfig::Alert(a) => Some(&a.destinations),
                _ => None,
            })
            .flatten()
            .filter_map(|d| match d {
                AlertDestination::Kafka { topic } => Some(topic.clone()),
                _ => None,
            })
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }
}

/// An update version compared part by part as numbers (`1.10` > `1.9`, `2` == `2.0`).
/// A part with a suffix after its number (`0-rc1` in `1.2.0-rc1`) is a pre-release: before
/// the plain number, and ordered by the suffix text among pre-releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(Vec<(u64, String)>);

impl Version {
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.trim().trim_start_matches(['v', 'V']);
        if text.is_empty() {
            return None;
        }
        let mut parts = Vec::new();
        for part in text.split('.') {
            let digits = part.len() - part.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let number = part[..digits].parse::<u64>().ok()?;
            parts.push((number, part[digits..].to_string()));
        }
        while parts.len() > 1 && parts.last() == Some(&(0, String::new())) {
            parts.pop();
        }
        Some(Version(parts))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let zero = (0, String::new());
        let n = self.0.len().max(other.0.len());
        (0..n)
            .map(|i| {
                let a = self.0.get(i).unwrap_or(&zero);
                let b = other.0.get(i).unwrap_or(&zero);
                // A plain number sorts after the same number with a suffix (a pre-release).
                (a.0, a.1.is_empty(), &a.1).cmp(&(b.0, b.1.is_empty(), &b.1))
            })
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    }
}

#[cfg(test)]
mod version_tests {
    use super::Version;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn versions_compare_by_number_not_text() {
        assert!(v("1.10") > v("1.9"));
        assert!(v("1.10.0") == v("1.10"));
        assert!(v("2") > v("1.99.99"));
        assert!(v("v1.2.3") == v("1.2.3"));
        assert!(v("1.2.0-rc1") < v("1.2.0"));
        assert!(v("1.2.0-rc1") > v("1.1.9"));
        assert!(Version::parse("").is_none());
        assert!(Version::parse("one.two").is_none());
    }
}

/// Where a Parquet sink writes: a local directory or an object store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParquetLocation {
    Directory(PathBuf),
    ObjectStore(url::Url),
}

/// URL schemes a Parquet `path` may use (`file` is a directory).
pub const OBJECT_STORE_SCHEMES: [&str; 6] = ["s3", "s3a", "gs", "az", "abfs", "abfss"];

/// `storage_options` keys that would put a secret in the config file.
pub fn is_secret_option(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "secret",
        "access_key",
        "token",
        "password",
        "sas",
        "credential",
        "account_key",
        "service_account_key",
    ]
    .iter()
    .any(|s| k.contains(s))
}

impl ParquetSinkConfig {
    /// The configured `path` as a location; an error names what is wrong with a URL.
    pub fn location(&self) -> Result<ParquetLocation, String> {
        let text = self.path.to_string_lossy();
        if !text.contains("://") {
            return Ok(ParquetLocation::Directory(self.path.clone()));
        }
        let url = url::Url::parse(&text).map_err(|e| format!("not a URL: {e}"))?;
        match url.scheme() {
            "file" => url
                .to_file_path()
                .map(ParquetLocation::Directory)
                .map_err(|()| "a file:// URL needs an absolute path".into()),
            s if OBJECT_STORE_SCHEMES.contains(&s) => match url.host_str() {
                Some(h) if !h.is_empty() => Ok(ParquetLocation::ObjectStore(url)),
                _ => Err("needs a bucket or container: s3://bucket/prefix".into()),
            },
            s => Err(format!(
                "unsupported scheme '{s}' (expected a directory, file://, s3://, gs:// or az://)"
            )),
        }
    }
}

impl SinkConfig {
    /// The state file this sink keeps under `data_dir`, if it keeps one: the configured
    /// path, else one named after the sink (so two sinks never share one by default).
    pub fn state_file(&self, name: &str) -> Option<PathBuf> {
        let (set, kind) = match self {
            SinkConfig::Alert(a) => (&a.state_file, "alerts"),
            SinkConfig::Compliance(c) => (&c.state_file, "compliance"),
            SinkConfig::Parquet(_) => return None,
        };
        Some(state_file_or_default(set, kind, name))
    }
}

/// `set` unless empty, else `<kind>/<sink name>.json`.
pub fn state_file_or_default(set: &std::path::Path, kind: &str, name: &str) -> PathBuf {
    match set.as_os_str().is_empty() {
        true => PathBuf::from(format!("{kind}/{name}.json")),
        false => set.to_path_buf(),
    }
}
