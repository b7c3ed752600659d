//! The router's batch step: a raw batch in, what to write where out — no Kafka, no sinks.
//!
//! [`Step::run`] decodes a [`RawBatch`], evaluates every rule and sorts the result into a
//! [`StepOutput`]: each rule's rows with the actions to write them to, rows a rule failed on
//! for its error action, unmatched rows for the fallback action, and the records that go to
//! the dead-letter topic (by their index in the raw batch). The [`crate::Router`] applies it
//! (sinks, dead letters) and commits; poison isolation ([`crate::isolate`]) runs the step on
//! parts of a batch. As rumqttc's `MqttState` is to its event loop, this is the part of the
//! router a unit test can drive alone (`step/tests.rs`).

use arrow::array::RecordBatch;
use sluice_processors::decode::{BatchDecoder, RawBatch};
use sluice_processors::rule::route::Routed;
use sluice_processors::rule::{RuleOutput, RuleSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// The `rule=` name the fallback action's rows are written under.
pub const FALLBACK_RULE: &str = "_unmatched";

/// Where one rule's rows go; made once per rule set, shared by every batch.
#[derive(Debug)]
pub struct RuleRoute {
    pub rule: Arc<str>,
    pub actions: Vec<Arc<str>>,
    pub error_action: Option<Arc<str>>,
}

/// One rule's selected rows and where they go.
#[derive(Debug)]
pub struct RuleWrite {
    pub route: Arc<RuleRoute>,
    pub output: RuleOutput,
}

/// Whole input rows for one action under one rule's name (error action, fallback).
#[derive(Debug)]
pub struct RowsWrite {
    pub rule: Arc<str>,
    pub action: Arc<str>,
    pub rows: RecordBatch,
}

/// A record of the raw batch that goes to the dead-letter topic, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterOut {
    pub index: usize,
    pub reason: String,
}

/// What one batch makes: nothing written yet.
#[derive(Debug, Default)]
pub struct StepOutput {
    /// Rows of the raw batch that decoded (the rest are dead letters).
    pub rows: usize,
    /// Values set to NULL because their type did not fit the schema.
    pub nulled: usize,
    /// Fields that left the schema, unseen for their time to live.
    pub retired: usize,
    /// Each rule that selected rows, in rule order.
    pub writes: Vec<RuleWrite>,
    /// Rows rules failed on, with `_error`, for their error actions.
    pub failed: Vec<RowsWrite>,
    /// Rows no rule selected nor failed on, for the fallback action.
    pub unmatched: Option<RowsWrite>,
    /// Records that did not decode, and records a rule without an error action failed on.
    pub dead_letters: Vec<DeadLetterOut>,
}

/// The decoder and the rules: all of a batch's work that is not I/O.
pub struct Step {
    decoder: BatchDecoder,
    rules: RuleSet,
    routes: Vec<Arc<RuleRoute>>,
    fallback: Option<Arc<str>>,
    /// `SLUICE_FAULT_PANIC_ON_PAYLOAD`, read once ([`crate::isolate::FAULT_ENV`]).
    fault_marker: Option<Arc<str>>,
}

impl Step {
    pub fn new(decoder: BatchDecoder, rules: RuleSet) -> Self {
        let (routes, fallback) = routes_of(&rules);
        Self {
            decoder,
            rules,
            routes,
            fallback,
            fault_marker: crate::isolate::fault_marker(),
        }
    }

    /// Takes over a (reloaded) rule set; called between batches.
    pub fn set_rules(&mut self, rules: RuleSet) {
        (self.routes, self.fallback) = routes_of(&rules);
        self.rules = rules;
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// The error action of the rule named `rule`, if it has one.
    pub fn error_action_of(&self, rule: &str) -> Option<Arc<str>> {
        let route = self.routes.iter().find(|r| &*r.rule == rule)?;
        route.error_action.clone()
    }

    /// Decodes and routes `raw`. The only state it changes is the decoder's running schema.
    pub fn run(&mut self, raw: &RawBatch) -> StepOutput {
        if let Some(marker) = &self.fault_marker {
            crate::isolate::fault_injection(marker, raw);
        }
        let decoded = self.decoder.decode(raw);
        let mut out = StepOutput {
            nulled: decoded.nulled,
            retired: decoded.retired,
            ..StepOutput::default()
        };
        for r in decoded.rejects {
            out.dead_letters.push(DeadLetterOut {
                index: r.index,
                reason: r.reason,
            });
        }
        let Some(batch) = decoded.batch else {
            return out;
        };
        out.rows = batch.num_rows();
        let routed = self.rules.route(&batch);
        self.sort(routed, &decoded.record_of, &mut out);
        out
    }

    /// Runs the step on `raw` as a trial: the decoder is as before afterwards, and a panic
    /// (a bug some record triggers) comes back as its message. Poison isolation tries parts
    /// of a batch this way.
    pub fn trial(&mut self, raw: &RawBatch) -> Result<StepOutput, String> {
        let decoder = self.decoder.clone();
        let outcome = catch_unwind(AssertUnwindSafe(|| self.run(raw)));
        self.decoder = decoder;
        outcome.map_err(|panic| panic_message(panic.as_ref()))
    }

    fn sort(&self, routed: Routed, record_of: &[usize], out: &mut StepOutput) {
        for (route, result) in self.routes.iter().zip(routed.results) {
            if let Some(output) = result.output {
                out.writes.push(RuleWrite {
                    route: route.clone(),
                    output,
                });
            }
        }
        for (i, rows) in routed.errors {
            let route = &self.routes[i];
            if let Some(action) = &route.error_action {
                out.failed.push(RowsWrite {
                    rule: route.rule.clone(),
                    action: action.clone(),
                    rows,
                });
            }
        }
        if let (Some(rows), Some(action)) = (routed.unmatched, &self.fallback) {
            out.unmatched = Some(RowsWrite {
                rule: FALLBACK_RULE.into(),
                action: action.clone(),
                rows,
            });
        }
        // A rule without an error action failed on these rows: their records, once each
        // (a Sparkplug message has a row per metric).
        let mut dead: Vec<DeadLetterOut> = (routed.dead_letters.into_iter())
            .filter_map(|(row, reason)| Some((*record_of.get(row)?, reason)))
            .map(|(index, reason)| DeadLetterOut { index, reason })
            .collect();
        dead.dedup_by_key(|d| d.index);
        out.dead_letters.extend(dead);
    }
}

/// Each rule's route and the fallback action, named once per rule set.
fn routes_of(rules: &RuleSet) -> (Vec<Arc<RuleRoute>>, Option<Arc<str>>) {
    let routes = rules
        .rules()
        .iter()
        .map(|r| {
            Arc::new(RuleRoute {
                rule: r.name.as_str().into(),
                actions: r.actions.iter().map(|a| a.as_str().into()).collect(),
                error_action: r.error_action.as_deref().map(Into::into),
            })
        })
        .collect();
    (routes, rules.fallback_action.as_deref().map(Into::into))
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with no message".into())
}

#[cfg(test)]
mod tests;
