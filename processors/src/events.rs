//! What happens while decoding and evaluating rules, each one [`Event`] that logs and counts;
//! the dead-letter event lives in `sluice-core` (ingest shares it) and is re-exported here.

use sluice_common::Event;
pub use sluice_core::dead_letter::{DeadLettered, DEAD_LETTERED};
use std::time::Duration;

sluice_common::metrics! {
    Counter DECODE_BUGS = "sluice_decode_bugs_total", "Batches the decoder could not assemble (a bug: their records were dead-lettered)";
    Counter TYPE_MISMATCHES = "sluice_decode_type_mismatch_total", "Payload values that did not fit their column's type (read as NULL)";
    Counter SPARKPLUG_SEQ_GAPS = "sluice_sparkplug_seq_gaps_total", "Sparkplug B messages whose seq was not the one after their edge node's last (messages lost or reordered before Sluice)";
    Counter SPARKPLUG_STATE_UNREADABLE = "sluice_sparkplug_state_unreadable_total", "Sparkplug changelog records another router wrote that this version cannot read (ignored)";
    Counter FIELDS_RETIRED = "sluice_decode_fields_retired_total", "Top-level payload fields dropped from the router's schema after router.decode.field_ttl_secs unseen";
    Counter RULE_EVALUATED["rule"] = "sluice_rule_evaluated_total", "Rows each rule evaluated";
    Counter RULE_MATCHED["rule"] = "sluice_rule_matched_total", "Rows each rule matched";
    Counter RULE_FAILURES["rule"] = "sluice_rule_failures_total", "Rows each rule failed on";
    Counter RULE_PLANS["rule"] = "sluice_rule_plans_total", "Rule query plans built (at load and reload, never per batch)";
    Histogram RULE_EVAL_SECONDS["rule"] = "sluice_rule_eval_seconds", "Seconds to evaluate one rule on one batch";
}

/// A batch was decoded: values that did not fit their type, fields that left the schema.
pub struct BatchDecoded {
    pub nulled: usize,
    pub retired: usize,
}

impl Event for BatchDecoded {
    fn emit(self) {
        if self.nulled > 0 {
            TYPE_MISMATCHES.count(self.nulled as u64);
        }
        if self.retired > 0 {
            FIELDS_RETIRED.count(self.retired as u64);
            tracing::info!(
                fields = self.retired,
                "payload fields unseen for router.decode.field_ttl_secs left the schema"
            );
        }
    }
}

/// Sparkplug messages of a batch came with a `seq` that skipped (their rows are kept).
pub struct SparkplugSeqGaps {
    pub gaps: u64,
}

impl Event for SparkplugSeqGaps {
    fn emit(self) {
        SPARKPLUG_SEQ_GAPS.count(self.gaps);
        tracing::debug!(gaps = self.gaps, "Sparkplug seq gaps in a batch");
    }
}

/// A Sparkplug changelog record did not read (written by another version): ignored.
pub struct SparkplugStateUnreadable<'a> {
    pub key: &'a str,
    pub error: &'a serde_json::Error,
}

impl Event for SparkplugStateUnreadable<'_> {
    fn emit(self) {
        SPARKPLUG_STATE_UNREADABLE.count(1);
        tracing::warn!(key = self.key, error = %self.error, "unreadable Sparkplug changelog record");
    }
}

/// One rule ran on one batch.
pub struct RuleEvaluated<'a> {
    pub rule: &'a str,
    pub rows: usize,
    pub matched: Option<usize>,
    pub failed: usize,
}

impl Event for RuleEvaluated<'_> {
    fn emit(self) {
        let labels = [("rule", self.rule.to_string())];
        RULE_EVALUATED.count_with(&labels, self.rows as u64);
        if let Some(m) = self.matched {
            RULE_MATCHED.count_with(&labels, m as u64);
        }
        // Even 0: a rule's error series exists from its first batch (dashboards, alerting).
        RULE_FAILURES.count_with(&labels, self.failed as u64);
    }
}

/// How long one rule took on one batch.
pub struct RuleTimed<'a> {
    pub rule: &'a str,
    pub took: Duration,
}

impl Event for RuleTimed<'_> {
    fn emit(self) {
        RULE_EVAL_SECONDS.observe_with(&[("rule", self.rule.to_string())], self.took.as_secs_f64());
    }
}

/// A rule was planned for a new input schema (at load, reload or schema change).
pub struct RulePlanned<'a> {
    pub rule: &'a str,
}

impl Event for RulePlanned<'_> {
    fn emit(self) {
        tracing::debug!(rule = self.rule, "rule planned for a new input schema");
        RULE_PLANS.count_with(&[("rule", self.rule.to_string())], 1);
    }
}

/// The decoder could not put a batch together — a bug; its records go to the dead-letter topic.
pub struct DecodeBug<'a> {
    pub error: &'a dyn std::fmt::Display,
}

impl Event for DecodeBug<'_> {
    fn emit(self) {
        tracing::error!(error = %self.error, "internal: metadata columns do not fit the batch; its records are dead-lettered");
        DECODE_BUGS.count(1);
    }
}
