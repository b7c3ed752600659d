//! What happens in the sinks, each one [`Event`] that logs and counts.

use crate::compliance::fleet::Counts;
use crate::compliance::gauges::Labelled;
use sluice_common::{Event, Stats};
use std::path::Path;
use std::time::Duration;

sluice_common::metrics! {
    Counter FILES_WRITTEN["rule"] = "sluice_files_written_total", "Parquet files renamed into place";
    Counter PARTITIONS_FENCED = "sluice_parquet_partitions_fenced_total", "Checkpoints refused because another router had written the partition's ledger since (this router had lost the partition); the router restarts";
    Counter PARTITIONS_RECOVERED = "sluice_parquet_partitions_recovered_total", "Kafka partitions whose Parquet output was recovered from the ledger (on assignment)";
    Counter REPLAYED_ROWS_SKIPPED = "sluice_parquet_replayed_rows_skipped_total", "Rows not written again because the ledger shows their records already in Parquet";
    Counter DELTA_COMMITS["rule"] = "sluice_delta_commits_total", "Delta table commits (one per table per checkpoint), per rule";
    Counter DELTA_ROWS["rule"] = "sluice_delta_rows_committed_total", "Rows made visible in Delta tables, per rule";
    Histogram DELTA_COMMIT_SECONDS = "sluice_delta_commit_seconds", "Seconds to commit one Delta table at a checkpoint (files finished, log read, fence, log write)";
    Counter DELTA_FENCED = "sluice_delta_partitions_fenced_total", "Delta commits refused because another router had committed the partition since (this router had lost it); the router restarts";
    Counter DELTA_COLUMNS_DROPPED["rule"] = "sluice_delta_columns_dropped_total", "Columns of a batch left out of a Delta table because their name equals another's ignoring case (Delta column names are case-insensitive), per rule";
    Counter DELTA_TYPE_CONFLICTS["rule"] = "sluice_delta_type_conflicts_total", "Values written as NULL because their type differs from their Delta column's and does not convert, per rule";
    Counter FILES_EVICTED = "sluice_parquet_files_evicted_total", "Parquet files closed early to stay within max_open_files";
    Counter OUTSIDE_WINDOW = "sluice_event_time_outside_window_total", "Rows filed by receive time because their event time was outside the Parquet sink's window";
    Histogram FLUSH_SECONDS = "sluice_parquet_flush_seconds", "Seconds to write a Parquet file's footer and fsync it";
    Counter ALERTS_FIRED["rule"] = "sluice_alerts_fired_total", "Alerts that started firing and were notified, per rule";
    Counter ALERTS_RESOLVED["rule"] = "sluice_alerts_resolved_total", "Firing alerts resolved after the quiet period, per rule";
    Counter ALERTS_SUPPRESSED["rule"] = "sluice_alerts_suppressed_total", "Alert occurrences counted without a notification (dedup, cooldown), per rule";
    Counter ALERTS_FAILED["rule"] = "sluice_alerts_failed_total", "Alert notifications that failed after the retries, per rule";
    Counter WEBHOOK_ATTEMPTS_FAILED = "sluice_alert_webhook_attempts_failed_total", "Webhook attempts that failed (each retry counts)";
    Histogram DELIVERY_SECONDS = "sluice_alert_delivery_seconds", "Seconds to deliver one alert notification (retries included)";
    Gauge ALERT_BACKLOG["sink"] = "sluice_alert_backlog", "Alert notifications waiting for the delivery worker, per alert sink (at most queue_capacity)";
    Gauge ALERT_CIRCUIT_OPEN["sink"] = "sluice_alert_circuit_open", "1 while an alert sink's circuit breaker holds deliveries back from a failing destination";
    Counter ALERTS_OVERFLOWED = "sluice_alerts_overflowed_total", "Alert notifications sent straight to the error action because the outbox was full";
    Gauge ALERTS_FIRING["sink"] = "sluice_alerts_firing", "Alerts firing now, per alert sink";
    Counter RETIRED_REPORTS = "sluice_compliance_retired_reports_dropped_total", "Reports of retired devices ignored by the compliance tracker";
    Counter SNAPSHOTS = "sluice_compliance_snapshots_total", "Compliance Parquet snapshots written";
    Counter CHANGELOG_READ_ERRORS = "sluice_changelog_read_errors_total", "Errors reading a state changelog while restoring (the read goes on)";
    Counter CHANGELOG_SKIPPED["state"] = "sluice_changelog_records_skipped_total", "Changelog records that are not state of their kind (alert, compliance), skipped on restore";
    Counter ALERT_RESTORES["sink"] = "sluice_alert_restores_total", "Assignments whose alert keys were restored from the alert changelog before routing";
    Counter COMPLIANCE_RESTORES["sink"] = "sluice_compliance_restores_total", "Assignments whose device state was restored from the compliance changelog before routing";
    Gauge COMPLIANCE_DEVICES = "sluice_compliance_devices", "Devices per compliance state and group";
    Gauge COMPLIANCE_PERCENT = "sluice_compliance_percent", "Percent of a group's devices on the latest update";
    Gauge FLEET_DEVICES["sink"] = "sluice_compliance_fleet_devices", "Devices tracked (not retired)";
    Gauge FLEET_PERCENT["sink"] = "sluice_compliance_fleet_percent", "Percent of all devices on the latest update";
    Gauge DEPLOYMENT_FAILED = "sluice_deployment_failed_devices", "Devices whose last report says the deployment failed, per deployment and group";
    Counter ALERT_KEYS_REFUSED["sink"] = "sluice_alert_keys_refused_total", "Alert occurrences of a new key refused because the alert sink holds max_keys keys";
    Counter REPORTS_REFUSED["sink", "reason"] = "sluice_compliance_reports_refused_total", "Device reports the compliance tracker refused, per reason (max_devices: a new device past the limit)";
    Counter DEVICES_FORGOTTEN["sink"] = "sluice_compliance_devices_forgotten_total", "Devices the compliance tracker forgot after forget_after_days of silence";
    Histogram COMPLIANCE_CHECKPOINT_SECONDS["sink"] = "sluice_compliance_checkpoint_seconds", "Seconds a compliance checkpoint took (changelog records, state file, gauges)";
    Counter UNKNOWN_DEPLOYMENT["sink"] = "sluice_compliance_unknown_deployment_reports_total", "Device reports naming a deployment id the config does not define";
}

/// A Parquet file was closed, fsynced and renamed into place.
pub struct ParquetFileWritten<'a> {
    pub rule: &'a str,
    /// A path or an object-store URL.
    pub path: &'a str,
    pub rows: u64,
    pub took: Duration,
    pub stats: &'a Stats,
}

impl Event for ParquetFileWritten<'_> {
    fn emit(self) {
        tracing::debug!(path = self.path, rows = self.rows, "parquet file closed");
        FLUSH_SECONDS.observe(self.took.as_secs_f64());
        FILES_WRITTEN.count_with(&[("rule", self.rule.to_string())], 1);
        Stats::add(&self.stats.files_written, 1);
    }
}

/// A partition's Parquet output was brought to the state its ledger describes (see
/// `parquet::ledger`): on assignment, or the first time a sink sees the partition.
pub struct ParquetPartitionRecovered<'a> {
    pub sink: &'a str,
    pub partition: i32,
    pub recovered: &'a crate::parquet::ledger::Recovered,
}

impl Event for ParquetPartitionRecovered<'_> {
    fn emit(self) {
        let r = self.recovered;
        // Info only when recovery did something a person may want to know about: a fresh
        // start printed one line per partition per sink for nothing.
        macro_rules! recovered {
            ($level:ident) => {
                tracing::$level!(
                    sink = self.sink,
                    partition = self.partition,
                    next_offset = r.next_offset,
                    republished = r.republished,
                    removed_temporary = r.removed_temporary,
                    "parquet partition recovered from its ledger"
                )
            };
        }
        if r.republished > 0 || r.removed_temporary > 0 {
            recovered!(info);
        } else {
            recovered!(debug);
        }
        PARTITIONS_RECOVERED.count(1);
    }
}

/// A checkpoint found the partition's ledger moved on by another router (see
/// `ParquetSink::fence`): nothing published, the router restarts.
pub struct ParquetPartitionFenced<'a> {
    pub sink: &'a str,
    pub partition: i32,
    pub ledger: i64,
    pub this_router: i64,
}

impl Event for ParquetPartitionFenced<'_> {
    fn emit(self) {
        tracing::warn!(
            sink = self.sink,
            partition = self.partition,
            ledger_next_offset = self.ledger,
            this_router_next_offset = self.this_router,
            "partition taken over by another router; its files discarded, not published"
        );
        PARTITIONS_FENCED.count(1);
    }
}

/// Rows of records a previous owner of their partition already wrote (a replay after a
/// crash or rebalance) were not written again.
pub struct ReplayedRowsSkipped {
    pub rows: usize,
}

impl Event for ReplayedRowsSkipped {
    fn emit(self) {
        if self.rows > 0 {
            tracing::debug!(rows = self.rows, "replayed rows already in parquet skipped");
            REPLAYED_ROWS_SKIPPED.count(self.rows as u64);
        }
    }
}

/// A file was closed early to stay within `max_open_files`.
pub struct ParquetFileEvicted;

impl Event for ParquetFileEvicted {
    fn emit(self) {
        FILES_EVICTED.count(1);
    }
}

/// Rows whose event time was outside the window were filed by receive time.
pub struct EventTimeOutsideWindow {
    pub rows: usize,
}

impl Event for EventTimeOutsideWindow {
    fn emit(self) {
        if self.rows > 0 {
            OUTSIDE_WINDOW.count(self.rows as u64);
        }
    }
}

/// A batch's alert occurrences: how many fired a notification, how many were suppressed.
pub struct AlertsObserved<'a> {
    pub rule: &'a str,
    pub fired: usize,
    pub suppressed: u64,
}

impl Event for AlertsObserved<'_> {
    fn emit(self) {
        let labels = [("rule", self.rule.to_string())];
        ALERTS_SUPPRESSED.count_with(&labels, self.suppressed);
        ALERTS_FIRED.count_with(&labels, self.fired as u64);
    }
}

/// A firing alert resolved after its quiet period.
pub struct AlertResolved<'a> {
    pub rule: &'a str,
}

impl Event for AlertResolved<'_> {
    fn emit(self) {
        ALERTS_RESOLVED.count_with(&[("rule", self.rule.to_string())], 1);
    }
}

/// How many alerts of a sink fire after a checkpoint.
pub struct AlertsFiring<'a> {
    pub sink: &'a str,
    pub firing: usize,
}

impl Event for AlertsFiring<'_> {
    fn emit(self) {
        ALERTS_FIRING.gauge_set_with(&[("sink", self.sink.to_string())], self.firing as f64);
    }
}

/// The delivery backlog at a checkpoint.
pub struct AlertBacklog<'a> {
    pub sink: &'a str,
    pub waiting: usize,
}

impl Event for AlertBacklog<'_> {
    fn emit(self) {
        ALERT_BACKLOG.gauge_set_with(&[("sink", self.sink.to_string())], self.waiting as f64);
    }
}

/// An alert sink started: its circuit gauge exists from now on (closed).
pub struct AlertSinkStarted<'a> {
    pub sink: &'a str,
}

impl Event for AlertSinkStarted<'_> {
    fn emit(self) {
        ALERT_CIRCUIT_OPEN.gauge_set_with(&[("sink", self.sink.to_string())], 0.0);
    }
}

/// The circuit breaker opened (deliveries held back) or closed (a probe got through).
pub struct CircuitChanged<'a> {
    pub sink: &'a str,
    pub open: bool,
}

impl Event for CircuitChanged<'_> {
    fn emit(self) {
        if self.open {
            tracing::warn!(
                sink = self.sink,
                "alert destination failing; deliveries held back (circuit open)"
            );
        } else {
            tracing::info!(
                sink = self.sink,
                "alert destination back; delivering the backlog (circuit closed)"
            );
        }
        let open = if self.open { 1.0 } else { 0.0 };
        ALERT_CIRCUIT_OPEN.gauge_set_with(&[("sink", self.sink.to_string())], open);
    }
}

/// A notification went straight to the error action: the outbox was full.
pub struct AlertOverflowed<'a> {
    pub sink: &'a str,
    pub capacity: usize,
}

impl Event for AlertOverflowed<'_> {
    fn emit(self) {
        tracing::warn!(
            sink = self.sink,
            capacity = self.capacity,
            "alert outbox full; notification handed to the error action"
        );
        ALERTS_OVERFLOWED.count(1);
    }
}

/// One webhook attempt failed (it may be retried).
pub struct WebhookAttemptFailed<'a> {
    pub webhook: &'a str,
    pub problem: &'a str,
    pub attempt: u32,
}

impl Event for WebhookAttemptFailed<'_> {
    fn emit(self) {
        tracing::debug!(webhook = %self.webhook, problem = %self.problem, attempt = self.attempt,
            "webhook failed; retrying");
        WEBHOOK_ATTEMPTS_FAILED.count(1);
    }
}

/// A notification was delivered everywhere, or failed somewhere after the retries.
pub struct AlertDelivered<'a> {
    pub rule: &'a str,
    pub key: &'a str,
    pub took: Duration,
    pub failures: &'a [String],
}

impl Event for AlertDelivered<'_> {
    fn emit(self) {
        DELIVERY_SECONDS.observe(self.took.as_secs_f64());
        if !self.failures.is_empty() {
            tracing::warn!(rule = %self.rule, key = %self.key, problems = %self.failures.join("; "),
                "alert delivery failed after retries; handing it to the error action");
            ALERTS_FAILED.count_with(&[("rule", self.rule.to_string())], 1);
        }
    }
}

/// Reports of retired devices were ignored.
pub struct RetiredReportsDropped {
    pub reports: u64,
}

impl Event for RetiredReportsDropped {
    fn emit(self) {
        RETIRED_REPORTS.count(self.reports);
    }
}

/// Reports of new devices refused because the tracker holds `max_devices` already (logged
/// once per sink and process, counted always).
pub struct ComplianceReportsRefused<'a> {
    pub sink: &'a str,
    pub reason: &'static str,
    pub reports: u64,
    pub first: bool,
}

impl Event for ComplianceReportsRefused<'_> {
    fn emit(self) {
        if self.reports == 0 {
            return;
        }
        if self.first {
            tracing::warn!(
                sink = self.sink,
                reason = self.reason,
                "compliance tracker full: reports of devices it does not track yet are refused \
                 (raise max_devices, or enable gateway.device_auth so only provisioned ids exist)"
            );
        }
        REPORTS_REFUSED.count_with(
            &[
                ("sink", self.sink.to_string()),
                ("reason", self.reason.to_string()),
            ],
            self.reports,
        );
    }
}

/// Occurrences of new alert keys refused because the sink holds `max_keys` (logged once per
/// sink and process, counted always).
pub struct AlertKeysRefused<'a> {
    pub sink: &'a str,
    pub occurrences: u64,
    pub first: bool,
}

impl Event for AlertKeysRefused<'_> {
    fn emit(self) {
        if self.occurrences == 0 {
            return;
        }
        if self.first {
            tracing::warn!(
                sink = self.sink,
                "alert sink full: occurrences of keys it does not hold yet are refused (raise max_keys)"
            );
        }
        ALERT_KEYS_REFUSED.count_with(&[("sink", self.sink.to_string())], self.occurrences);
    }
}

/// A compliance checkpoint: devices forgotten for silence, and what it cost.
pub struct ComplianceCheckpointed<'a> {
    pub sink: &'a str,
    pub forgotten: u64,
    pub took: Duration,
}

impl Event for ComplianceCheckpointed<'_> {
    fn emit(self) {
        if self.forgotten > 0 {
            tracing::info!(
                sink = self.sink,
                devices = self.forgotten,
                "silent devices forgotten"
            );
            DEVICES_FORGOTTEN.count_with(&[("sink", self.sink.to_string())], self.forgotten);
        }
        COMPLIANCE_CHECKPOINT_SECONDS
            .observe_with(&[("sink", self.sink.to_string())], self.took.as_secs_f64());
    }
}

/// A compliance snapshot file was written.
pub struct SnapshotWritten<'a> {
    pub path: &'a Path,
}

impl Event for SnapshotWritten<'_> {
    fn emit(self) {
        tracing::debug!(path = %self.path.display(), "compliance snapshot written");
        SNAPSHOTS.count(1);
    }
}

/// The compliance report after a checkpoint, as gauges (labels bounded and emptied label
/// sets zeroed by `compliance::gauges`).
pub struct ComplianceMeasured<'a> {
    pub sink: &'a str,
    pub total: &'a Counts,
    pub labelled: &'a Labelled,
}

impl Event for ComplianceMeasured<'_> {
    fn emit(self) {
        let s = self.sink.to_string();
        for (group, c) in &self.labelled.groups {
            for (state, n) in [
                ("on_latest_update", c.on_latest_update),
                ("update_in_progress", c.update_in_progress),
                ("new_updates_available", c.new_updates_available),
            ] {
                let labels = [
                    ("sink", s.clone()),
                    ("group", group.clone()),
                    ("state", state.to_string()),
                ];
                COMPLIANCE_DEVICES.gauge_set_with(&labels, n as f64);
            }
            let labels = [("sink", s.clone()), ("group", group.clone())];
            COMPLIANCE_PERCENT.gauge_set_with(&labels, c.compliance_percent);
        }
        FLEET_PERCENT.gauge_set_with(&[("sink", s.clone())], self.total.compliance_percent);
        FLEET_DEVICES.gauge_set_with(&[("sink", s.clone())], self.total.devices as f64);
        for ((deployment, group), n) in &self.labelled.failed {
            let labels = [
                ("sink", s.clone()),
                ("deployment", deployment.clone()),
                ("group", group.clone()),
            ];
            DEPLOYMENT_FAILED.gauge_set_with(&labels, *n as f64);
        }
    }
}

/// Device reports named more groups than the gauges give labels to; the rest are counted
/// under `group="_overflow"` from now on (logged once per sink).
pub struct ComplianceGroupsOverflowed<'a> {
    pub sink: &'a str,
    pub limit: usize,
    /// The first group that did not get its own label.
    pub group: &'a str,
}

impl Event for ComplianceGroupsOverflowed<'_> {
    fn emit(self) {
        tracing::warn!(
            sink = self.sink,
            limit = self.limit,
            group = self.group,
            "more device groups than max_group_labels; further groups are counted as group=\"_overflow\""
        );
    }
}

/// Devices reported a deployment id the config does not define. Their reports still count
/// (model, version, group); the deployment is not counted as theirs. Logged once per id.
pub struct UnknownDeploymentReported<'a> {
    pub sink: &'a str,
    pub deployment: &'a str,
    pub reports: u64,
    /// Whether this id is logged now (its first sighting).
    pub first: bool,
}

impl Event for UnknownDeploymentReported<'_> {
    fn emit(self) {
        if self.first {
            tracing::warn!(
                sink = self.sink,
                deployment = self.deployment,
                "a device reported a deployment id that is not in the config; counted, not logged again"
            );
        }
        UNKNOWN_DEPLOYMENT.count_with(&[("sink", self.sink.to_string())], self.reports);
    }
}

/// A router was assigned partitions and restored their devices' compliance state from the
/// changelog before routing their records.
pub struct ComplianceStateRestored<'a> {
    pub sink: &'a str,
    pub partitions: &'a [i32],
    /// Changelog records the tailer has read in all (every partition).
    pub changelog_records: u64,
    /// Devices the fleet view holds after the restore.
    pub devices: usize,
    pub took: Duration,
}

impl Event for ComplianceStateRestored<'_> {
    fn emit(self) {
        tracing::info!(
            sink = self.sink,
            partitions = ?self.partitions,
            changelog_records = self.changelog_records,
            devices = self.devices,
            took_ms = self.took.as_millis() as u64,
            "compliance state restored from the changelog"
        );
        COMPLIANCE_RESTORES.count_with(&[("sink", self.sink.to_string())], 1);
    }
}

/// A router was assigned partitions and took over their alert keys from the changelog.
pub struct AlertStateRestored<'a> {
    pub sink: &'a str,
    pub partitions: &'a [i32],
    /// Alert keys (firing or in cooldown) handed over.
    pub keys: usize,
}

impl Event for AlertStateRestored<'_> {
    fn emit(self) {
        tracing::info!(
            sink = self.sink,
            partitions = ?self.partitions,
            keys = self.keys,
            "alert state restored from the changelog"
        );
        ALERT_RESTORES.count_with(&[("sink", self.sink.to_string())], 1);
    }
}

/// Reading a state changelog failed once; the restore reads on.
pub struct ChangelogReadFailed<'a> {
    pub error: &'a dyn std::fmt::Display,
}

impl Event for ChangelogReadFailed<'_> {
    fn emit(self) {
        tracing::warn!(error = %self.error, "changelog read failed; retrying");
        CHANGELOG_READ_ERRORS.count(1);
    }
}

/// A changelog record that is not state of its kind (`alert`, `compliance`) was skipped.
pub struct ChangelogRecordSkipped<'a> {
    pub state: &'static str,
    pub key: &'a str,
    pub error: &'a dyn std::fmt::Display,
}

impl Event for ChangelogRecordSkipped<'_> {
    fn emit(self) {
        tracing::warn!(state = self.state, key = %self.key.escape_debug(), error = %self.error,
            "changelog record is not state of its kind; skipped");
        CHANGELOG_SKIPPED.count_with(&[("state", self.state.to_string())], 1);
    }
}

/// A checkpoint committed rows to one Delta table.
pub struct DeltaCommitted<'a> {
    pub sink: &'a str,
    pub rule: &'a str,
    pub version: i64,
    pub files: u64,
    pub rows: u64,
    pub took: Duration,
    pub stats: &'a Stats,
}

impl Event for DeltaCommitted<'_> {
    fn emit(self) {
        tracing::debug!(
            sink = self.sink,
            rule = self.rule,
            version = self.version,
            files = self.files,
            rows = self.rows,
            "delta table commit"
        );
        DELTA_COMMIT_SECONDS.observe(self.took.as_secs_f64());
        DELTA_COMMITS.count_with(&[("rule", self.rule.to_string())], 1);
        DELTA_ROWS.count_with(&[("rule", self.rule.to_string())], self.rows);
        Stats::add(&self.stats.files_written, self.files);
    }
}

/// A Delta commit found a partition's `txn` moved on by another router (see
/// `delta::table`): nothing committed, the router restarts.
pub struct DeltaPartitionFenced<'a> {
    pub sink: &'a str,
    pub partition: i32,
    pub log: Option<i64>,
    pub this_router: Option<i64>,
}

impl Event for DeltaPartitionFenced<'_> {
    fn emit(self) {
        tracing::warn!(
            sink = self.sink,
            partition = self.partition,
            log_txn = ?self.log,
            this_router_txn = ?self.this_router,
            "partition taken over by another router; its rows not committed to the delta table"
        );
        DELTA_FENCED.count(1);
    }
}

/// What a rule output had to give up to fit its Delta table: values whose type differs from
/// their column's (stored as NULL), columns whose Delta name clashes with another's ignoring
/// case (left out of the batch).
pub struct DeltaTypeConflict<'a> {
    pub rule: &'a str,
    pub values: usize,
    pub columns_dropped: usize,
}

impl Event for DeltaTypeConflict<'_> {
    fn emit(self) {
        let rule = || [("rule", self.rule.to_string())];
        if self.values > 0 {
            tracing::debug!(
                rule = self.rule,
                values = self.values,
                "delta type conflict: NULL"
            );
            DELTA_TYPE_CONFLICTS.count_with(&rule(), self.values as u64);
        }
        if self.columns_dropped > 0 {
            tracing::debug!(
                rule = self.rule,
                columns = self.columns_dropped,
                "delta column names equal ignoring case: later ones left out"
            );
            DELTA_COLUMNS_DROPPED.count_with(&rule(), self.columns_dropped as u64);
        }
    }
}
