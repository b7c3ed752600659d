//! One batch through decode, rules and sinks.

use crate::{Router, RouterError};
use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use sluice_processors::decode::OFFSET;
use sluice_processors::stats::Stats;
use std::collections::HashMap;

/// Decodes the router's current raw batch and routes it. Sink errors stop the router (its
/// offsets stay uncommitted); bad records and failing rows go to the dead-letter topic.
pub fn process(router: &mut Router) -> Result<(), RouterError> {
    let started = std::time::Instant::now();
    let raw = &router.raw;
    let decoded = router.decoder.decode(raw);
    metrics::counter!("sluice_router_consumed_total").increment(raw.len() as u64);
    Stats::add(&router.stats.routed, raw.len() as u64);
    if decoded.nulled > 0 {
        metrics::counter!("sluice_decode_type_mismatch_total").increment(decoded.nulled as u64);
    }
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
    let Some(batch) = decoded.batch else {
        return Ok(());
    };
    let results = router.rules.evaluate(&batch);
    let mut failed: HashMap<usize, String> = HashMap::new();
    for (rule, result) in router.rules.rules().iter().zip(results) {
        for (row, reason) in result.failed_rows {
            metrics::counter!("sluice_rule_failures_total", "rule" => rule.name.clone())
                .increment(1);
            failed.entry(row).or_insert(reason);
        }
        let Some(output) = result.output else {
            continue;
        };
        let rows = output.rows.num_rows() as u64;
        metrics::counter!("sluice_rule_rows_total", "rule" => rule.name.clone()).increment(rows);
        router.stats.add_rule_rows(&rule.name, rows);
        for action in &rule.actions {
            if let Some(sink) = router.sinks.get_mut(action) {
                sink.write(&rule.name, &output)?;
            }
        }
    }
    dead_letter_failed_rows(router, &batch, failed);
    metrics::histogram!("sluice_batch_seconds").record(started.elapsed().as_secs_f64());
    Ok(())
}

/// Rows a rule failed on go to the DLQ once (with the first failure's reason).
fn dead_letter_failed_rows(
    router: &mut Router,
    batch: &RecordBatch,
    failed: HashMap<usize, String>,
) {
    if failed.is_empty() {
        return;
    }
    let Some(offsets) = batch
        .column_by_name(OFFSET)
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
    else {
        return;
    };
    // Map the batch row back to its raw record through its offset (unique per partition).
    let raw = &router.raw;
    let index: HashMap<(i32, i64), usize> = (0..raw.len())
        .map(|i| ((raw.partition(i), raw.offset(i)), i))
        .collect();
    let partitions = batch
        .column_by_name(sluice_processors::decode::PARTITION)
        .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int32Type>());
    for (row, reason) in failed {
        let (Some(parts), true) = (partitions, row < batch.num_rows()) else {
            continue;
        };
        let Some(&i) = index.get(&(parts.value(row), offsets.value(row))) else {
            continue;
        };
        let source = (router.raw_topic.as_str(), raw.partition(i), raw.offset(i));
        router.dead_letters.send(
            raw.device_id(i),
            raw.payload(i),
            &reason,
            source,
            Some(raw.topic(i)),
        );
    }
}
