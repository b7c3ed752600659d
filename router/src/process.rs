//! Applying one batch's [`StepOutput`]: rows to sinks, records to the dead-letter topic.
//!
//! Failures and where they go: a record that does not decode → dead-letter topic; a row a
//! rule fails on → the rule's error action, else the dead-letter topic; an action (sink) that
//! fails to write → the rule's error action with the reason, else the router stops with its
//! offsets uncommitted (the batch is read again after a restart: at-least-once).

use crate::events::{ActionWritten, BatchRouted, BatchTimed, RuleRowsSelected, Unmatched};
use crate::step::{RowsWrite, RuleWrite, StepOutput};
use crate::{Router, RouterError};
use arrow::array::RecordBatch;
use sluice_common::Event;
use sluice_processors::events::BatchDecoded;
use sluice_processors::rule::route::{detached_from_kafka, with_error};
use sluice_processors::rule::RuleOutput;

/// Runs the step on the router's current raw batch and applies what it made.
pub fn process(router: &mut Router) -> Result<(), RouterError> {
    let started = std::time::Instant::now();
    let out = router.step.run(&router.raw);
    BatchRouted {
        records: router.raw.len(),
        stats: &router.stats,
    }
    .emit();
    BatchDecoded {
        nulled: out.nulled,
        retired: out.retired,
    }
    .emit();
    apply(router, out)?;
    BatchTimed {
        took: started.elapsed(),
    }
    .emit();
    Ok(())
}

/// Writes every rule's rows to its actions, failed rows to error actions, the rest to the
/// fallback action; dead-letters the records the step refused.
fn apply(router: &mut Router, out: StepOutput) -> Result<(), RouterError> {
    let raw = &router.raw;
    for d in &out.dead_letters {
        let source = (
            router.raw_topic.as_str(),
            raw.partition(d.index),
            raw.offset(d.index),
        );
        router.dead_letters.send(
            raw.device_id(d.index),
            raw.payload(d.index),
            &d.reason,
            source,
            Some(raw.topic(d.index)),
        );
    }
    for write in &out.writes {
        deliver(router, write)?;
    }
    for failed in out.failed {
        write_rows(router, failed)?;
    }
    if let Some(unmatched) = out.unmatched {
        Unmatched {
            rows: unmatched.rows.num_rows(),
        }
        .emit();
        write_rows(router, unmatched)?;
    }
    Ok(())
}

/// One rule's rows to each of its actions; an action that fails sends them to the rule's error
/// action with the reason.
fn deliver(router: &mut Router, write: &RuleWrite) -> Result<(), RouterError> {
    let (route, output) = (&write.route, &write.output);
    let rows = output.rows.num_rows() as u64;
    RuleRowsSelected {
        rule: &route.rule,
        rows,
        stats: &router.stats,
    }
    .emit();
    for action in &route.actions {
        let result = sink_for(router, &route.rule, action)?.write(&route.rule, output);
        ActionWritten {
            rule: &route.rule,
            action,
            rows,
            error: result.as_ref().err().map(|e| e as &dyn std::fmt::Display),
        }
        .emit();
        let Err(e) = result else {
            continue;
        };
        let Some(error_action) = &route.error_action else {
            return Err(e.into());
        };
        let reason = format!("action '{action}' failed: {e}");
        let Some(failed) = with_error(&output.source, &reason) else {
            return Err(e.into());
        };
        write_to(router, error_action, &route.rule, failed)?;
    }
    Ok(())
}

fn write_rows(router: &mut Router, w: RowsWrite) -> Result<(), RouterError> {
    write_to(router, &w.action, &w.rule, w.rows)
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
        let error_action = router.step.error_action_of(&f.rule);
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
