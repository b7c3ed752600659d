//! Which file a row belongs in: rule, event date and hour (UTC), Kafka partition.

use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use arrow::error::ArrowError;
use sluice_core::meta::RECEIVED_AT;
use sluice_processors::rule::RuleOutput;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const MS_PER_HOUR: i64 = 3_600_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    pub rule: String,
    /// Hours since the epoch (UTC) of the event time.
    pub epoch_hour: i64,
    pub partition: i32,
}

impl PartitionKey {
    /// `<root>/rule=<rule>/date=YYYY-MM-DD/hour=HH`
    pub fn directory(&self, root: &Path) -> PathBuf {
        let (date, hour) = self.date_and_hour();
        root.join(format!("rule={}", self.rule))
            .join(format!("date={date}"))
            .join(format!("hour={hour}"))
    }

    /// The event date (`YYYY-MM-DD`) and hour (`HH`), UTC.
    pub fn date_and_hour(&self) -> (String, String) {
        let day = self.epoch_hour.div_euclid(24);
        let hour = self.epoch_hour.rem_euclid(24);
        let date = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
            .and_then(|d| d.checked_add_signed(chrono::Duration::try_days(day)?))
            .map_or_else(
                || "invalid".to_string(),
                |d| d.format("%Y-%m-%d").to_string(),
            );
        (date, format!("{hour:02}"))
    }
}

/// Event time in ms for each row: the payload's event field when it holds a number within
/// the window around the receive time, the receive time otherwise. Also returns how many
/// rows had an event time outside the window (a broken clock, or `"ts": -1e19`).
fn event_ms(
    source: &RecordBatch,
    field: &str,
    window: (i64, i64),
) -> Result<(Vec<i64>, usize), ArrowError> {
    let received = sluice_core::Meta::of(source)
        .received_at
        .ok_or_else(|| ArrowError::SchemaError(format!("missing {RECEIVED_AT}")))?;
    let mut out: Vec<i64> = received.values().to_vec();
    let Some(col) = source.column_by_name(field) else {
        return Ok((out, 0));
    };
    let (max_age, max_lead) = window;
    let bounds = |received: i64| {
        (
            received.saturating_sub(max_age),
            received.saturating_add(max_lead),
        )
    };
    let mut outside = 0;
    match col.data_type() {
        // Integers compared as integers: no trip through f64 and back.
        DataType::Int64 => {
            let event = col.as_primitive::<Int64Type>();
            for (o, v) in out.iter_mut().zip(event.iter()) {
                let Some(v) = v else { continue };
                let (lo, hi) = bounds(*o);
                match (lo..=hi).contains(&v) {
                    true => *o = v,
                    false => outside += 1,
                }
            }
        }
        // Compared as floats: an event time beyond i64 must not wrap around into the window.
        DataType::Float64 => {
            let event = col.as_primitive::<Float64Type>();
            for (o, v) in out.iter_mut().zip(event.iter()) {
                let Some(v) = v else { continue };
                let (lo, hi) = bounds(*o);
                match v.is_finite() && v >= lo as f64 && v <= hi as f64 {
                    true => *o = v as i64,
                    false => outside += 1,
                }
            }
        }
        _ => {}
    }
    Ok((out, outside))
}

fn partition_and_offset(
    output: &RuleOutput,
) -> Result<(&arrow::array::Int32Array, &arrow::array::Int64Array), ArrowError> {
    sluice_core::Meta::of(&output.source)
        .positions()
        .map_err(|missing| ArrowError::SchemaError(format!("missing {missing}")))
}

/// The Kafka partitions an output's rows came from.
pub fn partitions_of(output: &RuleOutput) -> Result<std::collections::BTreeSet<i32>, ArrowError> {
    let (partitions, _) = partition_and_offset(output)?;
    Ok(partitions.values().iter().copied().collect())
}

/// The rows whose record offset is at or above their partition's floor; `None` when that
/// is every row (nothing to copy).
pub fn rows_at_or_after(
    output: &RuleOutput,
    floors: &HashMap<i32, i64>,
) -> Result<Option<RuleOutput>, ArrowError> {
    let (partitions, offsets) = partition_and_offset(output)?;
    let keep: arrow::array::BooleanArray = partitions
        .values()
        .iter()
        .zip(offsets.values())
        .map(|(p, o)| Some(*o >= floors.get(p).copied().unwrap_or(i64::MIN)))
        .collect();
    if keep.true_count() == keep.len() {
        return Ok(None);
    }
    Ok(Some(RuleOutput {
        rows: arrow::compute::filter_record_batch(&output.rows, &keep)?,
        source: arrow::compute::filter_record_batch(&output.source, &keep)?,
    }))
}

/// A rule's output split by file: each part with its key and offset range, and how many rows
/// were filed by receive time because their event time was outside the window.
pub struct Split {
    pub parts: Vec<(PartitionKey, RecordBatch, (i64, i64))>,
    pub outside_window: usize,
}

/// Splits a rule's output by file. `window` is (max age, max lead) in ms.
pub fn split_by_partition(
    rule: &str,
    output: &RuleOutput,
    event_field: &str,
    window: (i64, i64),
) -> Result<Split, ArrowError> {
    let (partitions, offsets) = partition_and_offset(output)?;
    let (times, outside_window) = event_ms(&output.source, event_field, window)?;
    let mut groups: HashMap<(i64, i32), (Vec<u32>, i64, i64)> = HashMap::new();
    for (row, t) in times.iter().enumerate() {
        let (p, off) = (partitions.value(row), offsets.value(row));
        let g = groups
            .entry((t.div_euclid(MS_PER_HOUR), p))
            .or_insert_with(|| (Vec::new(), off, off));
        g.0.push(row as u32);
        g.1 = g.1.min(off);
        g.2 = g.2.max(off);
    }
    let mut parts = Vec::with_capacity(groups.len());
    for ((epoch_hour, partition), (rows, first, last)) in groups {
        let key = PartitionKey {
            rule: rule.to_string(),
            epoch_hour,
            partition,
        };
        let batch = if rows.len() == output.rows.num_rows() {
            output.rows.clone()
        } else {
            take_record_batch(&output.rows, &UInt32Array::from(rows))?
        };
        parts.push((key, batch, (first, last)));
    }
    parts.sort_by_key(|(k, _, _)| (k.epoch_hour, k.partition));
    Ok(Split {
        parts,
        outside_window,
    })
}
