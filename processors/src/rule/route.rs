//! Where one batch goes: each rule's rows to its actions, rows a rule failed on to its error
//! action (or the dead-letter topic), messages no rule matched to the fallback action.
//!
//! The router writes a [`Routed`] to its sinks; `sluice rules test` compares it with the
//! expected rows. Both use this one function, so a rule test runs the production path.

use super::{RuleResult, RuleSet};
use crate::events::RuleEvaluated;
use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, UInt32Array};
use arrow::compute::kernels::boolean::{not, or};
use arrow::compute::{filter_record_batch, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema};
use sluice_common::Event;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The column that carries the failure reason in what an error action receives.
pub const ERROR_COLUMN: &str = "_error";

/// One batch, routed.
#[derive(Debug, Default)]
pub struct Routed {
    /// Rule `i`'s result at index `i`.
    pub results: Vec<RuleResult>,
    /// Per rule with an error action: the input rows it failed on, with `_error`.
    pub errors: BTreeMap<usize, RecordBatch>,
    /// Input rows that failed in a rule without an error action: (row, first reason).
    pub dead_letters: Vec<(usize, String)>,
    /// Input rows no rule selected nor failed on, when there is a fallback action.
    pub unmatched: Option<RecordBatch>,
}

impl RuleSet {
    /// Evaluates every rule on `batch` and sorts the rows by where they go.
    pub fn route(&mut self, batch: &RecordBatch) -> Routed {
        let results = self.evaluate(batch);
        let mut routed = Routed::default();
        let mut dead: BTreeMap<usize, String> = BTreeMap::new();
        let mut touched: Option<BooleanArray> = None;
        for (i, (rule, result)) in self.rules.iter().zip(&results).enumerate() {
            RuleEvaluated {
                rule: &rule.name,
                rows: batch.num_rows(),
                matched: result.matched.as_ref().map(|m| m.true_count()),
                failed: result.failed_rows.len(),
            }
            .emit();
            if let Some(m) = &result.matched {
                touched = Some(union(touched, m));
            }
            if result.failed_rows.is_empty() {
                continue;
            }
            let failed = rows_mask(batch.num_rows(), &result.failed_rows);
            touched = Some(union(touched, &failed));
            match &rule.error_action {
                Some(_) => {
                    if let Some(b) = with_reasons(batch, &result.failed_rows) {
                        routed.errors.insert(i, b);
                    }
                }
                None => {
                    for (row, reason) in &result.failed_rows {
                        dead.entry(*row).or_insert_with(|| reason.clone());
                    }
                }
            }
        }
        if self.fallback_action.is_some() {
            routed.unmatched = unmatched(batch, touched);
        }
        routed.dead_letters = dead.into_iter().collect();
        routed.results = results;
        routed
    }
}

fn union(acc: Option<BooleanArray>, m: &BooleanArray) -> BooleanArray {
    match acc {
        Some(a) => or(&a, m).unwrap_or(a),
        None => m.clone(),
    }
}

fn rows_mask(len: usize, rows: &[(usize, String)]) -> BooleanArray {
    let mut mask = vec![false; len];
    for (r, _) in rows {
        if let Some(m) = mask.get_mut(*r) {
            *m = true;
        }
    }
    BooleanArray::from(mask)
}

fn unmatched(batch: &RecordBatch, touched: Option<BooleanArray>) -> Option<RecordBatch> {
    let rest = match touched {
        None => return (batch.num_rows() > 0).then(|| batch.clone()),
        Some(t) => not(&t).ok()?,
    };
    (rest.true_count() > 0)
        .then(|| filter_record_batch(batch, &rest).ok())
        .flatten()
}

/// The given input rows (all their columns) with the reason in `_error`.
pub fn with_reasons(batch: &RecordBatch, rows: &[(usize, String)]) -> Option<RecordBatch> {
    let index = UInt32Array::from_iter_values(rows.iter().map(|(r, _)| *r as u32));
    let picked = take_record_batch(batch, &index).ok()?;
    let reasons = StringArray::from_iter_values(rows.iter().map(|(_, why)| why.as_str()));
    with_error_column(&picked, Arc::new(reasons))
}

/// `batch` with an `_error` column (one reason for every row).
pub fn with_error(batch: &RecordBatch, reason: &str) -> Option<RecordBatch> {
    let reasons = StringArray::from(vec![reason; batch.num_rows()]);
    with_error_column(batch, Arc::new(reasons))
}

fn with_error_column(batch: &RecordBatch, reasons: ArrayRef) -> Option<RecordBatch> {
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .filter(|f| f.name() != ERROR_COLUMN)
        .map(|f| f.as_ref().clone())
        .collect();
    let mut columns: Vec<ArrayRef> = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(f, _)| f.name() != ERROR_COLUMN)
        .map(|(_, c)| c.clone())
        .collect();
    fields.push(Field::new(ERROR_COLUMN, DataType::Utf8, false));
    columns.push(reasons);
    debug_assert!(columns.iter().all(|c| c.len() == batch.num_rows()));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).ok()
}

/// Rows that leave the Kafka record they came from behind (a failed alert handed to an error
/// action a checkpoint or more later): `_partition`/`_offset` become `_source_partition`/
/// `_source_offset`, and `_partition`/`_offset` are -1, so no sink takes them for a replay of
/// a record its ledger already covers, nor touches that partition's state (#24.2).
pub fn detached_from_kafka(batch: &RecordBatch) -> Option<RecordBatch> {
    use arrow::array::{Int32Array, Int64Array};
    use sluice_core::meta::{OFFSET, PARTITION};
    let source = |name: &str| match name {
        n if n == PARTITION => "_source_partition".to_string(),
        n if n == OFFSET => "_source_offset".to_string(),
        n => n.to_string(),
    };
    let schema = batch.schema();
    let mut fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_name(source(f.name())))
        .collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    let n = batch.num_rows();
    fields.push(Field::new(PARTITION, DataType::Int32, false));
    columns.push(Arc::new(Int32Array::from(vec![-1; n])));
    fields.push(Field::new(OFFSET, DataType::Int64, false));
    columns.push(Arc::new(Int64Array::from(vec![-1i64; n])));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).ok()
}

#[cfg(test)]
mod detached_tests {
    use super::*;
    use arrow::array::{Int32Array, Int64Array};

    #[test]
    fn detached_rows_point_at_no_partition_and_keep_their_source() {
        let schema = Schema::new(vec![
            Field::new("device", DataType::Utf8, false),
            Field::new("_partition", DataType::Int32, false),
            Field::new("_offset", DataType::Int64, false),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(vec!["d1"])),
                Arc::new(Int32Array::from(vec![3])),
                Arc::new(Int64Array::from(vec![42i64])),
            ],
        )
        .unwrap();
        let d = detached_from_kafka(&batch).unwrap();
        let int32 = |name: &str| {
            d.column_by_name(name)
                .unwrap()
                .as_any()
                .downcast_ref::<Int32Array>()
                .unwrap()
                .value(0)
        };
        let int64 = |name: &str| {
            d.column_by_name(name)
                .unwrap()
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .value(0)
        };
        assert_eq!((int32("_partition"), int64("_offset")), (-1, -1));
        assert_eq!(
            (int32("_source_partition"), int64("_source_offset")),
            (3, 42)
        );
    }
}
