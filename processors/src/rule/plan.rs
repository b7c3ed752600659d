//! From rule SQL to physical expressions, once per input schema.
//!
//! The rule is planned by DataFusion against a table `telemetry` with the batch schema. A
//! column the rule names but no message has carried yet is added as an all-NULL column, so a
//! rule over fields that appear later is valid (and matches nothing until they do). The plan
//! must be `Projection` over an optional `Filter` over the table scan: a per-batch routing rule
//! has no joins, aggregates, sorts or limits. Its expressions are turned into DataFusion
//! physical expressions that the rule evaluates on every batch with no further planning.

use super::iot;
use super::session::RuleSession;
use arrow::array::{new_null_array, ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_common::config::ConfigOptions;
use datafusion_common::{DFSchema, DataFusionError, SchemaError};
use datafusion_expr::simplify::SimplifyContext;
use datafusion_expr::{Expr, LogicalPlan};
use datafusion_optimizer::simplify_expressions::ExprSimplifier;
use datafusion_physical_expr::PhysicalExpr;
use std::sync::Arc;

pub const TABLE: &str = "telemetry";

/// A rule's expressions, ready for batches of one schema.
#[derive(Debug)]
pub struct CompiledPlan {
    /// The schema it was planned for (the batch schema, without the null extras).
    pub input_schema: SchemaRef,
    /// Columns the rule names that the input lacks, appended as NULL.
    extras: Vec<Field>,
    extended_schema: SchemaRef,
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    pub projection: Vec<Arc<dyn PhysicalExpr>>,
    pub output_schema: SchemaRef,
}

impl CompiledPlan {
    /// The batch with the rule's NULL extras appended.
    pub fn extend(&self, batch: &RecordBatch) -> Result<RecordBatch, DataFusionError> {
        if self.extras.is_empty() {
            return Ok(batch.clone());
        }
        let mut columns = batch.columns().to_vec();
        columns.extend(
            self.extras
                .iter()
                .map(|f| new_null_array(f.data_type(), batch.num_rows()) as ArrayRef),
        );
        Ok(RecordBatch::try_new(self.extended_schema.clone(), columns)?)
    }
}

/// A DataFusion session set up for rules: case-sensitive identifiers (JSON field names are)
/// and the IoT functions registered.
pub fn session(devices: &super::devices::DeviceTags) -> RuleSession {
    let mut options = ConfigOptions::default();
    options.sql_parser.enable_ident_normalization = false;
    let mut ctx = RuleSession::new(options);
    for f in iot::functions() {
        ctx.register_udf(f.into());
    }
    ctx.register_udf(devices.udf().into());
    ctx.register_udf(super::field::udf().into());
    ctx
}

/// Plans `sql` (already rewritten to `FROM telemetry`) for batches of `schema`.
pub fn compile(
    ctx: &RuleSession,
    sql: &str,
    schema: &SchemaRef,
) -> Result<CompiledPlan, PlanError> {
    if reads_more_than_one_table(ctx, sql) {
        // Refused before planning: DataFusion would first complain about the other table
        // (`table 'datafusion.public.devices' not found`, `Ambiguous reference`).
        return Err(PlanError::Unsupported("a JOIN"));
    }
    let mut extras: Vec<Field> = Vec::new();
    let (plan, extended) = loop {
        let extended = extend_schema(schema, &extras);
        let plan = plan_sql(ctx, sql, &extended);
        match plan {
            Ok(plan) => break (plan, extended),
            Err(e) => match missing_field(&e) {
                Some(name) if extras.len() < 256 && !extras.iter().any(|f| f.name() == &name) => {
                    extras.push(Field::new(name, DataType::Null, true));
                }
                _ => return Err(PlanError::Sql(clean_error(&e))),
            },
        }
    };
    let (exprs, filter, out_schema) = split_plan(&plan)?;
    let df_schema =
        DFSchema::try_from_qualified_schema(TABLE, &extended).map_err(PlanError::from)?;
    let df_schema = Arc::new(df_schema);
    // DataFusion expects simplified expressions (e.g. COALESCE becomes CASE) before physical
    // planning; the IoT calls are rewritten first so none is constant-folded by invoking it.
    let simplifier = ExprSimplifier::new(
        SimplifyContext::builder()
            .with_schema(df_schema.clone())
            .build(),
    );
    let physical = |e: Expr| -> Result<Arc<dyn PhysicalExpr>, PlanError> {
        let e = iot::rewrite(e).map_err(PlanError::from)?;
        let e = simplifier.simplify(e).map_err(PlanError::from)?;
        ctx.create_physical_expr(e, &df_schema)
            .map_err(PlanError::from)
    };
    let filter = filter.map(physical).transpose()?;
    let mut projection = Vec::with_capacity(exprs.len());
    let mut fields = Vec::with_capacity(exprs.len());
    for (expr, field) in exprs.into_iter().zip(out_schema.fields()) {
        let name = iot::default_name(&expr).unwrap_or_else(|| field.name().clone());
        let p = physical(expr)?;
        let dt = p.data_type(&extended).map_err(PlanError::from)?;
        fields.push(Field::new(name, dt, true));
        projection.push(p);
    }
    Ok(CompiledPlan {
        input_schema: schema.clone(),
        extras,
        extended_schema: extended,
        filter,
        projection,
        output_schema: Arc::new(Schema::new(fields)),
    })
}

fn extend_schema(schema: &SchemaRef, extras: &[Field]) -> SchemaRef {
    if extras.is_empty() {
        return schema.clone();
    }
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend(extras.iter().cloned());
    Arc::new(Schema::new(fields))
}

/// A SELECT with a JOIN or more than one table in FROM (`FROM telemetry a, telemetry b`).
fn reads_more_than_one_table(ctx: &RuleSession, sql: &str) -> bool {
    use datafusion_sql::parser::Statement as DfStatement;
    use datafusion_sql::sqlparser::ast::{SetExpr, Statement};
    let Ok(DfStatement::Statement(statement)) = ctx.sql_to_statement(sql) else {
        return false;
    };
    let Statement::Query(query) = statement.as_ref() else {
        return false;
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    select.from.len() > 1 || select.from.iter().any(|t| !t.joins.is_empty())
}

fn plan_sql(
    ctx: &RuleSession,
    sql: &str,
    schema: &SchemaRef,
) -> Result<LogicalPlan, DataFusionError> {
    let mut statement = ctx.sql_to_statement(sql)?;
    if let datafusion_sql::parser::Statement::Statement(s) = &mut statement {
        super::paths::flatten_paths(s, TABLE);
    }
    ctx.statement_to_plan(statement, TABLE, schema)
}

/// The name of a column the planner could not find, if that is the error.
fn missing_field(e: &DataFusionError) -> Option<String> {
    match e.find_root() {
        DataFusionError::SchemaError(err, _) => match err.as_ref() {
            SchemaError::FieldNotFound { field, .. } => Some(field.name.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Why a rule's SQL cannot become a plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// DataFusion's own message (syntax, unknown column or function, types), with its position.
    #[error("{0}")]
    Sql(String),
    /// Valid SQL, but not a per-message rule: what it is, in the words of SQL.
    #[error(
        "{0} is not supported: a rule is SELECT <columns> FROM <source> [WHERE <condition>], \
         one message in, its rows out"
    )]
    Unsupported(&'static str),
}

impl From<DataFusionError> for PlanError {
    fn from(e: DataFusionError) -> Self {
        PlanError::Sql(clean_error(&e))
    }
}

/// What a plan node a rule may not have is called in SQL.
fn construct(plan: &LogicalPlan) -> &'static str {
    match plan {
        LogicalPlan::Aggregate(_) => "an aggregate (GROUP BY, count, sum, …)",
        LogicalPlan::Join(_) => "a JOIN",
        LogicalPlan::Sort(_) => "ORDER BY",
        LogicalPlan::Limit(_) => "LIMIT",
        LogicalPlan::Window(_) => "a window function (OVER)",
        LogicalPlan::Distinct(_) => "DISTINCT",
        LogicalPlan::Union(_) => "UNION",
        LogicalPlan::Subquery(_) => "a subquery",
        _ => "this query shape",
    }
}

/// DataFusion's message without the wrapping noise; keeps positions such as `Line: 1, Column: 8`.
fn clean_error(e: &DataFusionError) -> String {
    e.find_root().to_string()
}

type Split = (Vec<Expr>, Option<Expr>, Arc<DFSchema>);

fn split_plan(plan: &LogicalPlan) -> Result<Split, PlanError> {
    let LogicalPlan::Projection(p) = plan else {
        return Err(PlanError::Unsupported(construct(plan)));
    };
    let mut input = p.input.as_ref();
    let mut filter = None;
    loop {
        match input {
            LogicalPlan::Filter(f) if filter.is_none() => {
                filter = Some(f.predicate.clone());
                input = f.input.as_ref();
            }
            LogicalPlan::SubqueryAlias(a) => input = a.input.as_ref(),
            LogicalPlan::TableScan(_) => break,
            other => return Err(PlanError::Unsupported(construct(other))),
        }
    }
    Ok((p.expr.clone(), filter, p.schema.clone()))
}
