//! What happens in the router, each one [`Event`] that logs and counts.

use sluice_common::{Event, Stats};
use std::time::Duration;

sluice_common::metrics! {
    Counter CONSUMED = "sluice_router_consumed_total", "Records the router decoded and routed";
    Counter KAFKA_ERRORS = "sluice_router_kafka_errors_total", "Kafka consumer errors in the router";
    Counter PARTITIONS_ASSIGNED = "sluice_router_partitions_assigned_total", "Raw-topic partitions assigned to this router by its consumer group";
    Counter PARTITIONS_REVOKED = "sluice_router_partitions_revoked_total", "Raw-topic partitions taken from this router (their unwritten rows dropped, replayed by the new owner)";
    Gauge PARTITIONS_OWNED = "sluice_router_partitions_owned", "Raw-topic partitions this router owns now";
    Counter REBALANCE_ERRORS = "sluice_router_rebalance_errors_total", "Rebalances librdkafka reported as failed";
    Counter REJOINS = "sluice_router_rejoins_total", "Times the router rejoined its group after sitting unassigned";
    Counter COMMIT_FAILURES = "sluice_router_commit_failures_total", "Offset commits that failed (retried at the next checkpoint; the records are replayed if the router stops first)";
    Counter SUSPECT_STARTS = "sluice_router_suspect_starts_total", "Router starts after a router failed while processing a batch (its offsets are suspect)";
    Counter DLQ_PAYLOADS_DROPPED = "sluice_dlq_payloads_dropped_total", "Dead letters sent without their payload because Kafka refused the record's size";
    Counter RAW_TOPIC_MISSING = "sluice_raw_topic_missing_total", "Times the raw topic was found without partitions (deleted while running); /readyz says so until it is back";
    Counter SCALING_SAMPLE_FAILURES = "sluice_scaling_sample_failures_total", "Lag and rate samples that failed (retried at the next interval)";
    Counter DEVICES_LOAD_FAILURES = "sluice_devices_load_failures_total", "Reads of the devices file that failed (the previous table is kept)";
    Counter DEVICES_SKIPPED = "sluice_devices_skipped_total", "Devices file rows past devices.max_devices, ignored";
    Counter RETIRED_DROPPED = "sluice_retired_messages_dropped_total", "Messages of retired devices dropped by the router";
    Counter POISON = "sluice_poison_messages_total", "Messages the router failed on repeatedly, isolated by bisecting their batch and dead-lettered";
    Counter POISON_REDELIVERED = "sluice_poison_redelivered_total", "Isolated poison messages delivered again before their offsets were committed, dead-lettered again without another failure";
    Counter UNMATCHED = "sluice_unmatched_total", "Rows no rule matched (sent to the fallback action)";
    Counter RULE_ROWS["rule"] = "sluice_rule_rows_total", "Rows each rule selected";
    Counter ACTION_ROWS["rule", "action"] = "sluice_rule_action_rows_total", "Rows written per rule and action";
    Counter ACTION_FAILURES["rule", "action"] = "sluice_rule_action_failures_total", "Failed writes per rule and action";
    Counter RELOADS["outcome"] = "sluice_rules_reloads_total", "Rule reloads by outcome";
    Gauge RULES_VERSION = "sluice_rules_version", "Version (hash) of the active rule set";
    Gauge RULES_ACTIVE = "sluice_rules_active", "Rules in the active rule set";
    Gauge RELOAD_FAILED = "sluice_rules_reload_failed", "1 when the last rule reload failed";
    Gauge DEVICES_KNOWN = "sluice_devices_known", "Devices in the device metadata table";
    Histogram BATCH_SECONDS = "sluice_batch_seconds", "Seconds to decode and route one batch";
    Histogram CHECKPOINT_SECONDS = "sluice_checkpoint_seconds", "Seconds per checkpoint (sinks durable, offsets committed)";
    Gauge PARTITION_LAG["partition"] = "sluice_kafka_partition_lag", "Records behind per raw-topic partition (high watermark - committed)";
    Gauge GROUP_LAG = "sluice_kafka_group_lag", "Records behind, all partitions";
    Gauge PRODUCE_RATE = "sluice_kafka_produce_rate", "Records per second written to the raw topic (EWMA)";
    Gauge CONSUME_RATE = "sluice_kafka_consume_rate", "Records per second the router group commits (EWMA)";
    Gauge LAG_SECONDS = "sluice_kafka_lag_seconds", "Lag divided by the consume rate (+Inf when nothing is consumed)";
    Gauge ROUTER_DESIRED = "sluice_router_desired_replicas", "Router replicas advised (capped at partitions, stabilized)";
    Gauge PARTITION_LIMITED = "sluice_router_partition_limited", "1 when the partition count caps the advice: add partitions";
    Gauge INGEST_RATE = "sluice_ingest_message_rate", "MQTT messages per second received by this process (EWMA)";
    Gauge INGEST_DESIRED = "sluice_ingest_desired_replicas", "Ingest replicas advised";
}

/// A record was read from the raw topic.
pub struct RecordConsumed<'a> {
    pub stats: &'a Stats,
}

impl Event for RecordConsumed<'_> {
    fn emit(self) {
        Stats::add(&self.stats.consumed, 1);
    }
}

/// A batch was decoded and routed.
pub struct BatchRouted<'a> {
    pub records: usize,
    pub stats: &'a Stats,
}

impl Event for BatchRouted<'_> {
    fn emit(self) {
        CONSUMED.count(self.records as u64);
        Stats::add(&self.stats.routed, self.records as u64);
    }
}

/// How long a batch took to decode, route and hand to the sinks.
pub struct BatchTimed {
    pub took: Duration,
}

impl Event for BatchTimed {
    fn emit(self) {
        BATCH_SECONDS.observe(self.took.as_secs_f64());
    }
}

/// The consumer reported an error (it keeps polling).
pub struct ConsumerFailed<'a> {
    pub error: &'a dyn std::fmt::Display,
}

impl Event for ConsumerFailed<'_> {
    fn emit(self) {
        tracing::warn!(error = %self.error, "kafka consumer error");
        KAFKA_ERRORS.count(1);
    }
}

/// The router sat without partitions and rejoins its group.
pub struct GroupRejoined {
    pub waited: Duration,
}

impl Event for GroupRejoined {
    fn emit(self) {
        tracing::warn!(
            waited_s = self.waited.as_secs(),
            "router has no partitions assigned; rejoining the consumer group"
        );
        REJOINS.count(1);
    }
}

/// The group gave this router partitions.
pub struct PartitionsAssigned<'a> {
    pub partitions: &'a [i32],
    pub owned: usize,
}

impl Event for PartitionsAssigned<'_> {
    fn emit(self) {
        tracing::info!(partitions = ?self.partitions, owned = self.owned, "partitions assigned");
        PARTITIONS_ASSIGNED.count(self.partitions.len() as u64);
        PARTITIONS_OWNED.gauge_set(self.owned as f64);
    }
}

/// The group took partitions from this router; `dropped_rows` of theirs were not yet
/// checkpointed and are left to the new owner.
pub struct PartitionsRevoked<'a> {
    pub partitions: &'a [i32],
    pub dropped_rows: usize,
    pub owned: usize,
}

impl Event for PartitionsRevoked<'_> {
    fn emit(self) {
        tracing::info!(
            partitions = ?self.partitions,
            dropped_rows = self.dropped_rows,
            owned = self.owned,
            "partitions revoked; their records after the last commit are left to the new owner"
        );
        PARTITIONS_REVOKED.count(self.partitions.len() as u64);
        PARTITIONS_OWNED.gauge_set(self.owned as f64);
    }
}

/// librdkafka reported a failed rebalance (it retries by itself).
pub struct RebalanceFailed<'a> {
    pub error: &'a rdkafka::error::KafkaError,
}

impl Event for RebalanceFailed<'_> {
    fn emit(self) {
        tracing::warn!(error = %self.error, "consumer group rebalance failed");
        REBALANCE_ERRORS.count(1);
    }
}

/// A retired device's message was dropped before decoding.
pub struct RetiredMessageDropped;

impl Event for RetiredMessageDropped {
    fn emit(self) {
        RETIRED_DROPPED.count(1);
    }
}

/// A record the router failed on alone was isolated (it goes to the dead-letter topic).
pub struct PoisonIsolated<'a> {
    pub partition: i32,
    pub offset: i64,
    pub device: &'a str,
    pub why: &'a str,
}

impl Event for PoisonIsolated<'_> {
    fn emit(self) {
        tracing::error!(partition = self.partition, offset = self.offset, device = self.device,
            error = %self.why, "poison message isolated and sent to the dead-letter topic");
        POISON.count(1);
    }
}

/// A poison message isolated earlier came again (a rebalance or restart before its offsets
/// were committed): it is dead-lettered again at once.
pub struct PoisonRedelivered {
    pub partition: i32,
    pub offset: i64,
}

impl Event for PoisonRedelivered {
    fn emit(self) {
        tracing::warn!(
            partition = self.partition,
            offset = self.offset,
            "poison message delivered again; dead-lettered again without processing it"
        );
        POISON_REDELIVERED.count(1);
    }
}

/// A rule selected rows in a batch.
pub struct RuleRowsSelected<'a> {
    pub rule: &'a str,
    pub rows: u64,
    pub stats: &'a Stats,
}

impl Event for RuleRowsSelected<'_> {
    fn emit(self) {
        RULE_ROWS.count_with(&[("rule", self.rule.to_string())], self.rows);
        self.stats.add_rule_rows(self.rule, self.rows);
    }
}

/// An action (sink) took a rule's rows, or failed to.
pub struct ActionWritten<'a> {
    pub rule: &'a str,
    pub action: &'a str,
    pub rows: u64,
    pub error: Option<&'a dyn std::fmt::Display>,
}

impl Event for ActionWritten<'_> {
    fn emit(self) {
        let labels = [
            ("rule", self.rule.to_string()),
            ("action", self.action.to_string()),
        ];
        match self.error {
            None => ACTION_ROWS.count_with(&labels, self.rows),
            Some(e) => {
                tracing::warn!(rule = %self.rule, action = %self.action, error = %e, "action failed");
                ACTION_FAILURES.count_with(&labels, 1);
            }
        }
    }
}

/// Rows no rule matched went to the fallback action.
pub struct Unmatched {
    pub rows: usize,
}

impl Event for Unmatched {
    fn emit(self) {
        UNMATCHED.count(self.rows as u64);
    }
}

/// A checkpoint made the sinks durable and committed offsets.
pub struct CheckpointDone {
    pub took: Duration,
}

impl Event for CheckpointDone {
    fn emit(self) {
        CHECKPOINT_SECONDS.observe(self.took.as_secs_f64());
    }
}

/// A rule set became active.
pub struct RulesActivated<'a> {
    pub version: u64,
    pub rules: &'a [sluice_processors::rule::Rule],
}

impl Event for RulesActivated<'_> {
    fn emit(self) {
        // A label-free gauge: 52 bits of the hash fit a float exactly.
        RULES_VERSION.gauge_set((self.version >> 12) as f64);
        RULES_ACTIVE.gauge_set(self.rules.len() as f64);
        // Each rule's row counters exist at 0 from now: "no rows yet", not "not counted here"
        // (the console's sink tile and a dashboard's rate() both need the series).
        for rule in self.rules {
            RULE_ROWS.count_with(&[("rule", rule.name.clone())], 0);
            for action in rule.actions.iter().chain(&rule.error_action) {
                let labels = [("rule", rule.name.clone()), ("action", action.clone())];
                ACTION_ROWS.count_with(&labels, 0);
            }
        }
    }
}

/// A reload compiled a new set (offered to the router) or failed (the old set stays).
pub struct RulesReloaded<'a> {
    pub errors: Option<&'a [String]>,
}

impl Event for RulesReloaded<'_> {
    fn emit(self) {
        let (outcome, failed) = match self.errors {
            None => ("ok", 0.0),
            Some(errors) => {
                tracing::error!(errors = %errors.join("; "), "rule reload failed; the running rules stay active");
                ("failed", 1.0)
            }
        };
        RELOADS.count_with(&[("outcome", outcome.to_string())], 1);
        RELOAD_FAILED.gauge_set(failed);
    }
}

/// The device metadata table changed (file loaded, or a device set through the API).
pub struct DeviceTableChanged {
    pub devices: usize,
}

impl Event for DeviceTableChanged {
    fn emit(self) {
        DEVICES_KNOWN.gauge_set(self.devices as f64);
    }
}

/// A scaling sample: lag, rates and advice as gauges.
pub struct ScalingSampled<'a> {
    pub router: &'a crate::scaling::RouterSignals,
    pub ingest: &'a crate::scaling::IngestSignals,
}

impl Event for ScalingSampled<'_> {
    fn emit(self) {
        let (r, i) = (self.router, self.ingest);
        for (p, lag) in &r.lag_per_partition {
            PARTITION_LAG.gauge_set_with(&[("partition", p.to_string())], *lag as f64);
        }
        GROUP_LAG.gauge_set(r.lag_total as f64);
        PRODUCE_RATE.gauge_set(r.produce_rate);
        CONSUME_RATE.gauge_set(r.consume_rate);
        LAG_SECONDS.gauge_set(r.lag_seconds.unwrap_or(f64::INFINITY));
        ROUTER_DESIRED.gauge_set(r.desired_replicas as f64);
        PARTITION_LIMITED.gauge_set(u8::from(r.partition_limited) as f64);
        INGEST_RATE.gauge_set(i.message_rate);
        INGEST_DESIRED.gauge_set(i.desired_replicas as f64);
    }
}

/// An offset commit failed; the next checkpoint commits again.
pub struct CommitFailed<'a> {
    pub error: &'a dyn std::fmt::Display,
}

impl Event for CommitFailed<'_> {
    fn emit(self) {
        tracing::warn!(error = %self.error, "offset commit failed; will retry at the next checkpoint");
        COMMIT_FAILURES.count(1);
    }
}

/// Leaving and rejoining the group failed at the subscribe; the next check tries again.
pub struct RejoinFailed<'a> {
    pub error: &'a dyn std::fmt::Display,
}

impl Event for RejoinFailed<'_> {
    fn emit(self) {
        tracing::warn!(error = %self.error, "rejoining the consumer group failed; will retry");
        KAFKA_ERRORS.count(1);
    }
}

/// A router starts after another failed while processing a batch: those offsets are suspect.
pub struct SuspectStart {
    pub failures: u32,
    pub isolate_after: u32,
}

impl Event for SuspectStart {
    fn emit(self) {
        tracing::warn!(
            failures = self.failures,
            isolate_after = self.isolate_after,
            "the previous router failed while processing a batch; its offsets are suspect"
        );
        SUSPECT_STARTS.count(1);
    }
}

/// Kafka refused a dead letter's size: it is sent again without its payload.
pub struct DeadLetterTooLarge<'a> {
    pub error: &'a dyn std::fmt::Display,
}

impl Event for DeadLetterTooLarge<'_> {
    fn emit(self) {
        tracing::warn!(error = %self.error, "dead-letter record too large for Kafka; sending it without its payload");
        DLQ_PAYLOADS_DROPPED.count(1);
    }
}

/// A lag and rate sample failed (`panicked`: a bug in the sampler); the next one may work.
pub struct ScalingSampleFailed<'a> {
    pub error: &'a dyn std::fmt::Display,
    pub panicked: bool,
}

impl Event for ScalingSampleFailed<'_> {
    fn emit(self) {
        match self.panicked {
            true => tracing::warn!(error = %self.error, "scaling sampler panicked"),
            false => tracing::debug!(error = %self.error, "scaling sample failed; will retry"),
        }
        SCALING_SAMPLE_FAILURES.count(1);
    }
}

/// The raw topic has no partitions (deleted while running): `/readyz` turns 503 with why.
pub struct RawTopicMissing<'a> {
    pub topic: &'a str,
    pub why: &'a str,
}

impl Event for RawTopicMissing<'_> {
    fn emit(self) {
        tracing::error!(topic = %self.topic, "{}", self.why);
        RAW_TOPIC_MISSING.count(1);
    }
}

/// The raw topic is back after [`RawTopicMissing`].
pub struct RawTopicBack<'a> {
    pub topic: &'a str,
}

impl Event for RawTopicBack<'_> {
    fn emit(self) {
        tracing::info!(topic = %self.topic, "the raw topic has partitions again");
    }
}

/// The devices file could not be read; the previous table stays.
pub struct DevicesLoadFailed<'a> {
    pub error: &'a dyn std::fmt::Display,
}

impl Event for DevicesLoadFailed<'_> {
    fn emit(self) {
        tracing::error!(error = %self.error, "device metadata not loaded; keeping the previous table");
        DEVICES_LOAD_FAILURES.count(1);
    }
}

/// Rows of the devices file past `devices.max_devices` were ignored.
pub struct DevicesSkipped {
    pub skipped: usize,
    pub max: usize,
}

impl Event for DevicesSkipped {
    fn emit(self) {
        tracing::warn!(
            skipped = self.skipped,
            max = self.max,
            "devices over devices.max_devices ignored"
        );
        DEVICES_SKIPPED.count(self.skipped as u64);
    }
}
