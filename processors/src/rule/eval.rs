//! One rule on one batch: topic filter and WHERE make a mask, the SELECT list is evaluated on
//! the selected rows. An expression that fails on the batch (one odd value in a cast) is
//! retried row by row so only the odd rows fail.

use super::plan::{self, CompiledPlan};
use super::session::RuleSession;
use super::{Rule, RuleOutput, RuleResult};
use crate::events::RulePlanned;
use crate::ProcessorError;
use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{and, filter_record_batch, prep_null_mask_filter};
use arrow::datatypes::SchemaRef;
use datafusion_common::DataFusionError;
use sluice_common::Event;
use sluice_core::meta::TOPIC;
use std::sync::Arc;

impl Rule {
    fn plan_for(
        &mut self,
        ctx: &RuleSession,
        schema: &SchemaRef,
    ) -> Result<Arc<CompiledPlan>, ProcessorError> {
        if let Some(p) = &self.plan {
            if Arc::ptr_eq(&p.input_schema, schema) || p.input_schema == *schema {
                return Ok(p.clone());
            }
        }
        RulePlanned { rule: &self.name }.emit();
        let p = plan::compile(ctx, &self.sql, schema).map_err(|e| ProcessorError::Rule {
            rule: self.name.clone(),
            message: e.to_string(),
        })?;
        let p = Arc::new(p);
        self.plan = Some(p.clone());
        Ok(p)
    }

    /// The input schema of the rule's current plan (it is re-planned only when this changes).
    pub fn plan_schema(&self) -> Option<SchemaRef> {
        self.plan.as_ref().map(|p| p.input_schema.clone())
    }

    pub(super) fn evaluate(&mut self, ctx: &RuleSession, batch: &RecordBatch) -> RuleResult {
        let plan = match self.plan_for(ctx, &batch.schema()) {
            Ok(p) => p,
            Err(e) => {
                let reason = e.to_string();
                return RuleResult {
                    failed_rows: (0..batch.num_rows()).map(|i| (i, reason.clone())).collect(),
                    ..Default::default()
                };
            }
        };
        match self.run(&plan, batch) {
            Ok(Some((output, matched))) => RuleResult {
                output: Some(output),
                matched: Some(matched),
                failed_rows: vec![],
            },
            Ok(None) => RuleResult::default(),
            Err(_) => self.run_row_by_row(&plan, batch),
        }
    }

    fn run_row_by_row(&self, plan: &CompiledPlan, batch: &RecordBatch) -> RuleResult {
        let mut rows = Vec::new();
        let mut sources = Vec::new();
        let mut failed_rows = Vec::new();
        let mut matched = vec![false; batch.num_rows()];
        for (i, hit) in matched.iter_mut().enumerate() {
            match self.run(plan, &batch.slice(i, 1)) {
                Ok(Some((out, _))) => {
                    rows.push(out.rows);
                    sources.push(out.source);
                    *hit = true;
                }
                Ok(None) => {}
                Err(e) => failed_rows.push((i, format!("rule '{}': {e}", self.name))),
            }
        }
        let output = (!rows.is_empty())
            .then(|| {
                let rows = arrow::compute::concat_batches(&plan.output_schema, &rows).ok()?;
                let source =
                    arrow::compute::concat_batches(&sources.first()?.schema(), &sources).ok()?;
                Some(RuleOutput { rows, source })
            })
            .flatten();
        RuleResult {
            matched: output.as_ref().map(|_| BooleanArray::from(matched)),
            output,
            failed_rows,
        }
    }

    /// The selected rows and the mask that selected them; `None` when nothing matched.
    fn run(
        &self,
        plan: &CompiledPlan,
        batch: &RecordBatch,
    ) -> Result<Option<(RuleOutput, BooleanArray)>, DataFusionError> {
        let input = plan.extend(batch)?;
        let mut mask: Option<BooleanArray> = None;
        if let Some(tf) = &self.topic_filter {
            if let Some(topics) = batch
                .column_by_name(TOPIC)
                .and_then(|c| c.as_string_opt::<i32>())
            {
                mask = Some(tf.mask(topics));
            }
        }
        if let Some(filter) = &plan.filter {
            let values = filter.evaluate(&input)?.into_array(input.num_rows())?;
            let values = values
                .as_boolean_opt()
                .cloned()
                .ok_or_else(|| DataFusionError::Plan("WHERE must be a boolean condition".into()))?;
            mask = Some(match mask {
                Some(m) => and(&m, &values)?,
                None => values,
            });
        }
        let mask = match mask {
            Some(m) if m.null_count() > 0 => prep_null_mask_filter(&m),
            Some(m) => m,
            None => BooleanArray::from(vec![true; input.num_rows()]),
        };
        if mask.true_count() == 0 {
            return Ok(None);
        }
        let source = if mask.true_count() == input.num_rows() {
            input
        } else {
            filter_record_batch(&input, &mask)?
        };
        let columns = plan
            .projection
            .iter()
            .map(|p| {
                p.evaluate(&source)
                    .and_then(|v| v.into_array(source.num_rows()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rows = RecordBatch::try_new(plan.output_schema.clone(), columns)?;
        Ok(Some((RuleOutput { rows, source }, mask)))
    }
}
