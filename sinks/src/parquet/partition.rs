//! Which file a row belongs in: rule, event date and hour (UTC), Kafka partition.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type, TimestampMillisecondType};
use arrow::error::ArrowError;
use sluice_processors::decode::{OFFSET, PARTITION, RECEIVED_AT};
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
        let day = self.epoch_hour.div_euclid(24);
        let hour = self.epoch_hour.rem_euclid(24);
        let date = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
            .and_then(|d| d.checked_add_signed(chrono::Duration::days(day)))
            .map_or_else(
                || "invalid".to_string(),
                |d| d.format("%Y-%m-%d").to_string(),
            );
        root.join(format!("rule={}", self.rule))
            .join(format!("date={date}"))
            .join(format!("hour={hour:02}"))
    }
}

/// Event time in ms for each row: the payload's `event_field` when it holds a number or a
/// timestamp, the receive time otherwise.
fn event_ms(source: &RecordBatch, event_field: &str) -> Result<Vec<i64>, ArrowError> {
    let received = source
        .column_by_name(RECEIVED_AT)
        .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>())
        .ok_or_else(|| ArrowError::SchemaError(format!("missing {RECEIVED_AT}")))?;
    let mut out: Vec<i64> = received.values().to_vec();
    if let Some(col) = source.column_by_name(event_field) {
        override_with(&mut out, col);
    }
    Ok(out)
}

fn override_with(out: &mut [i64], col: &ArrayRef) {
    match col.data_type() {
        DataType::Int64 => {
            let a = col.as_primitive::<Int64Type>();
            for (o, v) in out.iter_mut().zip(a.iter()) {
                if let Some(v) = v {
                    *o = v;
                }
            }
        }
        DataType::Float64 => {
            let a = col.as_primitive::<Float64Type>();
            for (o, v) in out.iter_mut().zip(a.iter()) {
                if let Some(v) = v.filter(|v| v.is_finite()) {
                    *o = v as i64;
                }
            }
        }
        _ => {}
    }
}

/// Splits a rule's output by file: returns each part with its key and offset range.
pub fn split_by_partition(
    rule: &str,
    output: &RuleOutput,
    event_field: &str,
) -> Result<Vec<(PartitionKey, RecordBatch, (i64, i64))>, ArrowError> {
    let src = &output.source;
    let partitions = src
        .column_by_name(PARTITION)
        .and_then(|c| c.as_primitive_opt::<Int32Type>())
        .ok_or_else(|| ArrowError::SchemaError(format!("missing {PARTITION}")))?;
    let offsets = src
        .column_by_name(OFFSET)
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .ok_or_else(|| ArrowError::SchemaError(format!("missing {OFFSET}")))?;
    let times = event_ms(src, event_field)?;
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
    Ok(parts)
}
