//! The rule language: DataFusion SQL with MQTT topic filters and IoT functions.
//!
//! ```sql
//! SELECT device_id() AS device, temperature, topic(2) AS site
//! FROM 'factory/+/telemetry'
//! WHERE temperature > 80
//! ```
//!
//! A [`RuleSet`] is compiled from config once: each rule's `FROM '<filter>'` becomes a native
//! topic match and the SQL is planned ([`plan`]). A rule keeps the physical expressions of its
//! last plan and re-plans only when the batch schema changes (a new field), never per batch;
//! `sluice_rule_plans_total` counts plans so that stays visible.

pub mod iot;
pub mod plan;
pub mod topic;

use crate::decode::{metadata_fields, TOPIC};
use crate::ProcessorError;
use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{and, filter_record_batch, prep_null_mask_filter};
use arrow::datatypes::{Schema, SchemaRef};
use datafusion::prelude::SessionContext;
use plan::CompiledPlan;
use sluice_config::RuleConfig;
use std::fmt;
use std::sync::{Arc, OnceLock};
pub use topic::TopicFilter;

/// A problem with one rule, found when it was compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub rule: String,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule '{}': {}", self.rule, self.message)
    }
}

/// The rows one rule selected from one batch.
#[derive(Debug, Clone)]
pub struct RuleOutput {
    /// The rule's SELECT list, one row per match.
    pub rows: RecordBatch,
    /// The matching input rows (all columns), aligned with `rows`: sinks read event time,
    /// partition and offset from here.
    pub source: RecordBatch,
}

/// What one rule made of one batch.
#[derive(Debug, Default)]
pub struct RuleResult {
    pub output: Option<RuleOutput>,
    /// Input rows the rule failed on (row index, reason); the rest of the batch went through.
    pub failed_rows: Vec<(usize, String)>,
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub actions: Vec<String>,
    sql: String,
    topic_filter: Option<TopicFilter>,
    plan: Option<Arc<CompiledPlan>>,
}

/// All rules, compiled, with the DataFusion session that plans them.
pub struct RuleSet {
    rules: Vec<Rule>,
    ctx: SessionContext,
}

impl fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.rules)
            .finish()
    }
}

fn metadata_only_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| Arc::new(Schema::new(metadata_fields())))
        .clone()
}

/// Splits `FROM '<filter>'` out of the SQL: returns the SQL with `FROM telemetry` and the filter.
pub fn split_topic_filter(sql: &str) -> Result<(String, Option<TopicFilter>), String> {
    static FROM: OnceLock<regex::Regex> = OnceLock::new();
    let re = FROM.get_or_init(|| {
        // A literal pattern: compiling it cannot fail.
        regex::Regex::new(r"(?is)\bFROM\s+'([^']*)'").expect("valid regex")
    });
    let Some(caps) = re.captures(sql) else {
        return Ok((sql.to_string(), None));
    };
    let whole = caps.get(0).map_or(0..0, |m| m.range());
    let filter = caps.get(1).map_or("", |m| m.as_str());
    let parsed = TopicFilter::parse(filter).map_err(|e| {
        let (line, col) = sluice_config::line_col(sql, whole.start);
        format!("{e} at Line: {line}, Column: {col}")
    })?;
    let rewritten = format!(
        "{}FROM {}{}",
        &sql[..whole.start],
        plan::TABLE,
        &sql[whole.end..]
    );
    Ok((rewritten, Some(parsed)))
}

impl RuleSet {
    /// Compiles every rule; returns all problems at once.
    pub fn compile(configs: &[RuleConfig]) -> Result<RuleSet, Vec<RuleError>> {
        let ctx = plan::session();
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        for c in configs {
            let err = |message: String| RuleError {
                rule: c.name.clone(),
                message,
            };
            match split_topic_filter(&c.sql) {
                Err(e) => errors.push(err(e)),
                Ok((sql, topic_filter)) => {
                    match plan::compile(&ctx, &sql, &metadata_only_schema()) {
                        Err(e) => errors.push(err(e)),
                        Ok(_) => rules.push(Rule {
                            name: c.name.clone(),
                            actions: c.actions.clone(),
                            sql,
                            topic_filter,
                            plan: None,
                        }),
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(RuleSet { rules, ctx })
        } else {
            Err(errors)
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Evaluates every rule on one batch. Rule `i`'s result is at index `i`.
    pub fn evaluate(&mut self, batch: &RecordBatch) -> Vec<RuleResult> {
        let ctx = &self.ctx;
        self.rules
            .iter_mut()
            .map(|r| r.evaluate(ctx, batch))
            .collect()
    }
}

impl Rule {
    fn plan_for(
        &mut self,
        ctx: &SessionContext,
        schema: &SchemaRef,
    ) -> Result<Arc<CompiledPlan>, ProcessorError> {
        if let Some(p) = &self.plan {
            if Arc::ptr_eq(&p.input_schema, schema) || p.input_schema == *schema {
                return Ok(p.clone());
            }
        }
        metrics::counter!("sluice_rule_plans_total", "rule" => self.name.clone()).increment(1);
        let p = plan::compile(ctx, &self.sql, schema).map_err(|message| ProcessorError::Rule {
            rule: self.name.clone(),
            message,
        })?;
        let p = Arc::new(p);
        self.plan = Some(p.clone());
        Ok(p)
    }

    fn evaluate(&mut self, ctx: &SessionContext, batch: &RecordBatch) -> RuleResult {
        let plan = match self.plan_for(ctx, &batch.schema()) {
            Ok(p) => p,
            Err(e) => {
                let reason = e.to_string();
                return RuleResult {
                    output: None,
                    failed_rows: (0..batch.num_rows()).map(|i| (i, reason.clone())).collect(),
                };
            }
        };
        match self.run(&plan, batch) {
            Ok(output) => RuleResult {
                output,
                failed_rows: vec![],
            },
            Err(_) => self.run_row_by_row(&plan, batch),
        }
    }

    /// Slow path when an expression fails on the batch (e.g. a cast of one odd value):
    /// evaluate rows one at a time so only the odd rows fail.
    fn run_row_by_row(&self, plan: &CompiledPlan, batch: &RecordBatch) -> RuleResult {
        let mut rows = Vec::new();
        let mut sources = Vec::new();
        let mut failed_rows = Vec::new();
        for i in 0..batch.num_rows() {
            match self.run(plan, &batch.slice(i, 1)) {
                Ok(Some(out)) => {
                    rows.push(out.rows);
                    sources.push(out.source);
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
            output,
            failed_rows,
        }
    }

    fn run(
        &self,
        plan: &CompiledPlan,
        batch: &RecordBatch,
    ) -> Result<Option<RuleOutput>, datafusion::error::DataFusionError> {
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
            let values = values.as_boolean_opt().cloned().ok_or_else(|| {
                datafusion::error::DataFusionError::Plan("WHERE must be a boolean condition".into())
            })?;
            mask = Some(match mask {
                Some(m) => and(&m, &values)?,
                None => values,
            });
        }
        let source = match mask {
            Some(m) => {
                let m = if m.null_count() > 0 {
                    prep_null_mask_filter(&m)
                } else {
                    m
                };
                if m.true_count() == 0 {
                    return Ok(None);
                }
                filter_record_batch(&input, &m)?
            }
            None => input,
        };
        if source.num_rows() == 0 {
            return Ok(None);
        }
        let columns = plan
            .projection
            .iter()
            .map(|p| {
                p.evaluate(&source)
                    .and_then(|v| v.into_array(source.num_rows()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rows = RecordBatch::try_new(plan.output_schema.clone(), columns)?;
        Ok(Some(RuleOutput { rows, source }))
    }
}

#[cfg(test)]
mod tests;
