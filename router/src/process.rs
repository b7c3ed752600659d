//! One batch through decode, rules and sinks.
//!
//! Failures and where they go: a record that does not decode → dead-letter topic; a row a
//! rule fails on → the rule's error action, else the dead-letter topic; an action (sink) that
//! fails to write → the rule's error action with the reason, else the router stops with its
//! offsets uncommitted (the batch is read again after a restart: at-least-once).

use crate::events::{ActionWritten, BatchRouted, BatchTimed, RuleRowsSelected, Unmatched};
use crate::{Router, RouterError};
use arrow::array::RecordBatch;
use sluice_common::Event;
use sluice_processors::decode::{BatchDecoder, Decoded, RawBatch};
use sluice_processors::events::BatchDecoded;
use sluice_processors::rule::route::{detached_from_kafka, with_error, Routed};
use sluice_processors::rule::{RuleOutput, RuleSet};
use std::collections::HashMap;

/// The `rule=` name the fallback action's rows are written under.
pub const FALLBACK_RULE: &str = "_unmatched";

/// One batch decoded and routed, before anything is written: no side effects but the
/// decoder's schema, so the poison isolation can try parts of a batch ([`crate::isolate`]).
pub struct Computed {
    pub decoded: Decoded,
    pub routed: Option<(RecordBatch, Routed)>,
}

pub fn compute(decoder: &mut BatchDecoder, rules: &mut RuleSet, raw: &RawBatch) -> Computed {
    crate::isolate::fault_injection(raw);
    let mut decoded = decoder.decode(raw);
    let routed = decoded.batch.take().map(|b| {
        let routed = rules.route(&b);
        (b, routed)
    });
    Computed { decoded, routed }
}

/// Decodes the router's current raw batch and routes it.
pub fn process(router: &mut Router) -> Result<(), RouterError> {
    let started = std::time::Instant::now();
    let Computed { decoded, routed } = compute(&mut router.decoder, &mut router.rules, &router.raw);
    let raw = &router.raw;
    BatchRouted {
        records: raw.len(),
        stats: &router.stats,
    }
    .emit();
    BatchDecoded {
        nulled: decoded.nulled,
        retired: decoded.retired,
    }
    .emit();
    for r in &decoded.rejects {
        let source = (
            router.raw_topic.as_str(),
            raw.partition(r.index),
            raw.offset(r.index),
        );
        router.dead_letters.send(
            raw.device_id(r.index),
            raw.payload(r.index),
            &r.reason,
            source,
            Some(raw.topic(r.index)),
        );
    }
    let Some((batch, routed)) = routed else {
        return Ok(());
    };
    deliver(router, &routed)?;
    dead_letter_rows(router, &batch, &routed.dead_letters);
    BatchTimed {
        took: started.elapsed(),
    }
    .emit();
    Ok(())
}

/// Writes every rule's rows to its actions, failed rows to error actions, the rest to the
/// fallback action.
fn deliver(router: &mut Router, routed: &Routed) -> Result<(), RouterError> {
    // Names are cloned so sinks (borrowed mutably) can be written while iterating.
    let rules: Vec<RuleNames> = router.rules.rules().iter().map(RuleNames::of).collect();
    for (rule, result) in rules.iter().zip(&routed.results) {
        let Some(output) = &result.output else {
            continue;
        };
        let rows = output.rows.num_rows() as u64;
        RuleRowsSelected {
            rule: &rule.name,
            rows,
            stats: &router.stats,
        }
        .emit();
        for action in &rule.actions {
            match sink_for(router, &rule.name, action)?.write(&rule.name, output) {
                Ok(()) => ActionWritten {
                    rule: &rule.name,
                    action,
                    rows,
                    error: None,
                }
                .emit(),
                Err(e) => {
                    ActionWritten {
                        rule: &rule.name,
                        action,
                        rows,
                        error: Some(&e),
                    }
                    .emit();
                    let Some(error_action) = &rule.error_action else {
                        return Err(e.into());
                    };
                    let reason = format!("action '{action}' failed: {e}");
                    let Some(failed) = with_error(&output.source, &reason) else {
                        return Err(e.into());
                    };
                    write_to(router, error_action, &rule.name, failed)?;
                }
            }
        }
    }
    for (i, failed) in &routed.errors {
        if let Some(RuleNames {
            name,
            error_action: Some(action),
            ..
        }) = rules.get(*i)
        {
            write_to(router, action, name, failed.clone())?;
        }
    }
    if let (Some(rows), Some(action)) = (&routed.unmatched, router.rules.fallback_action.clone()) {
        Unmatched {
            rows: rows.num_rows(),
        }
        .emit();
        write_to(router, &action, FALLBACK_RULE, rows.clone())?;
    }
    Ok(())
}

struct RuleNames {
    name: String,
    actions: Vec<String>,
    error_action: Option<String>,
}

impl RuleNames {
    fn of(rule: &sluice_processors::rule::Rule) -> Self {
        Self {
            name: rule.name.clone(),
            actions: rule.actions.clone(),
            error_action: rule.error_action.clone(),
        }
    }
}

/// Writes whole input rows (all their columns) to `action` under `rule`'s name.
fn write_to(
    router: &mut Router,
    action: &str,
    rule: &str,
    rows: RecordBatch,
) -> Result<(), RouterError> {
    let output = RuleOutput {
        source: rows.clone(),
        rows,
    };
    sink_for(router, rule, action)?.write(rule, &output)?;
    Ok(())
}

/// The sink an action names. A name without a running sink is an error (the stage fails
/// before committing), never rows dropped: start-up and reload refuse such rule sets, so
/// this is a last line of defence.
fn sink_for<'a>(
    router: &'a mut Router,
    rule: &str,
    action: &str,
) -> Result<&'a mut Box<dyn sluice_sinks::Sink>, RouterError> {
    router
        .sinks
        .get_mut(action)
        .ok_or_else(|| RouterError::UnknownAction {
            rule: rule.to_string(),
            action: action.to_string(),
        })
}

/// Deliveries sinks gave up on (alerts a webhook kept refusing): their source rows go to the
/// rule's error action with the reason; without one (or without rows), the payload goes to the
/// dead-letter topic. Never dropped.
pub fn route_failures(router: &mut Router) -> Result<(), RouterError> {
    let failures: Vec<_> = router
        .sinks
        .values_mut()
        .flat_map(|s| s.take_failures())
        .collect();
    for f in failures {
        let error_action = router
            .rules
            .rules()
            .iter()
            .find(|r| r.name == f.rule)
            .and_then(|r| r.error_action.clone());
        // Handed in a checkpoint or more after their record: not a replay of it (#24.2).
        let rows = f
            .rows
            .as_ref()
            .and_then(|r| with_error(r, &f.reason))
            .and_then(|r| detached_from_kafka(&r));
        if let (Some(action), Some(rows)) = (error_action, rows) {
            write_to(router, &action, &f.rule, rows)?;
            continue;
        }
        let (partition, offset) = f.rows.as_ref().map_or((-1, -1), source_position);
        let source = (router.raw_topic.as_str(), partition, offset);
        router
            .dead_letters
            .send(&f.device, &f.payload, &f.reason, source, None);
    }
    Ok(())
}

/// The Kafka partition and offset of a batch's first row.
fn source_position(rows: &RecordBatch) -> (i32, i64) {
    let meta = sluice_core::Meta::of(rows);
    (meta.partition(0), meta.offset(0))
}

/// Rows a rule failed on, with no error action, go to the DLQ once (first failure's reason).
fn dead_letter_rows(router: &mut Router, batch: &RecordBatch, failed: &[(usize, String)]) {
    if failed.is_empty() {
        return;
    }
    let Ok((partitions, offsets)) = sluice_core::Meta::of(batch).positions() else {
        return;
    };
    // Map the batch row back to its raw record through (partition, offset), unique per batch.
    let raw = &router.raw;
    let index: HashMap<(i32, i64), usize> = (0..raw.len())
        .map(|i| ((raw.partition(i), raw.offset(i)), i))
        .collect();
    for (row, reason) in failed {
        if *row >= batch.num_rows() {
            continue;
        }
        let Some(&i) = index.get(&(partitions.value(*row), offsets.value(*row))) else {
            continue;
        };
        let source = (router.raw_topic.as_str(), raw.partition(i), raw.offset(i));
        router.dead_letters.send(
            raw.device_id(i),
            raw.payload(i),
            reason,
            source,
            Some(raw.topic(i)),
        );
    }
}
