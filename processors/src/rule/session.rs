//! What a rule is planned in: DataFusion's SQL parser and planner, expression simplifier and
//! physical-expression planner with the built-in functions — and none of its query engine.
//!
//! A rule runs as physical expressions on each batch ([`super::plan`]); it never runs a
//! DataFusion query. So the rule engine builds on the planning crates (`datafusion-sql`,
//! `-expr`, `-optimizer`, `-physical-expr`, `-functions*`) and not on the `datafusion` crate,
//! whose sessions, catalogs, file formats and execution plans cost about 600 CPU-seconds of a
//! cold build (issue #25's build-time measurement) and nothing at run time. What
//! `SessionContext` did for rules is here: the function registry, the expression planners
//! (`a.b`, `[1, 2]`, `EXTRACT`, `POSITION`, …) and the planner options.

use arrow::datatypes::{DataType, SchemaRef};
use datafusion_common::config::ConfigOptions;
use datafusion_common::{plan_datafusion_err, DFSchema, Result, TableReference};
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::logical_plan::builder::LogicalTableSource;
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::planner::{ContextProvider, ExprPlanner};
use datafusion_expr::simplify::SimplifyContext;
use datafusion_expr::{
    AggregateUDF, Expr, HigherOrderUDF, LogicalPlan, ScalarUDF, TableSource, WindowUDF,
};
use datafusion_optimizer::simplify_expressions::ExprSimplifier;
use datafusion_physical_expr::PhysicalExpr;
use datafusion_sql::parser::{DFParserBuilder, Statement};
use datafusion_sql::planner::{ParserOptions, SqlToRel};
use datafusion_sql::sqlparser::dialect::GenericDialect;
use std::collections::HashMap;
use std::sync::Arc;

/// The functions and options rules are planned with; one per compiled rule set.
#[derive(Debug)]
pub struct RuleSession {
    options: Arc<ConfigOptions>,
    scalar: HashMap<String, Arc<ScalarUDF>>,
    higher_order: HashMap<String, Arc<HigherOrderUDF>>,
    aggregate: HashMap<String, Arc<AggregateUDF>>,
    window: HashMap<String, Arc<WindowUDF>>,
    planners: Vec<Arc<dyn ExprPlanner>>,
    props: ExecutionProps,
}

impl RuleSession {
    /// DataFusion's built-in functions and expression planners, as a `SessionContext` has
    /// them, and `options` for the SQL parser.
    pub fn new(options: ConfigOptions) -> Self {
        let mut session = Self {
            options: Arc::new(options),
            scalar: HashMap::new(),
            higher_order: HashMap::new(),
            aggregate: HashMap::new(),
            window: HashMap::new(),
            planners: default_expr_planners(),
            props: ExecutionProps::new(),
        };
        datafusion_functions::all_default_functions()
            .into_iter()
            .chain(datafusion_functions_nested::all_default_nested_functions())
            .for_each(|f| session.register_udf(f));
        for f in datafusion_functions_nested::all_default_higher_order_functions() {
            by_names(&mut session.higher_order, f.name(), f.aliases(), f.clone());
        }
        // Aggregates and window functions plan, so that a rule using one is refused with
        // what it is ("an aggregate … is not supported") rather than "Invalid function".
        for f in datafusion_functions_aggregate::all_default_aggregate_functions() {
            by_names(&mut session.aggregate, f.name(), f.aliases(), f.clone());
        }
        for f in datafusion_functions_window::all_default_window_functions() {
            by_names(&mut session.window, f.name(), f.aliases(), f.clone());
        }
        session
    }

    /// Adds (or replaces) a scalar function under its name and aliases.
    pub fn register_udf(&mut self, f: Arc<ScalarUDF>) {
        by_names(&mut self.scalar, f.name(), f.aliases(), f.clone());
    }

    /// One SQL statement, parsed with the generic dialect.
    pub fn sql_to_statement(&self, sql: &str) -> Result<Statement> {
        let recursion_limit = self.options.sql_parser.recursion_limit.get();
        let mut statements = DFParserBuilder::new(sql)
            .with_dialect(&GenericDialect {})
            .with_recursion_limit(recursion_limit)
            .build()?
            .parse_statements()?;
        if statements.len() > 1 {
            return datafusion_common::not_impl_err!(
                "The context currently only supports a single SQL statement"
            );
        }
        statements.pop_front().ok_or_else(|| {
            plan_datafusion_err!("No SQL statements were provided in the query string")
        })
    }

    /// The logical plan of `statement`, with `table` the one table it may read.
    pub fn statement_to_plan(
        &self,
        statement: Statement,
        table: &str,
        schema: &SchemaRef,
    ) -> Result<LogicalPlan> {
        let provider = Provider {
            session: self,
            table: TableReference::bare(table),
            source: Arc::new(LogicalTableSource::new(schema.clone())),
        };
        SqlToRel::new_with_options(&provider, self.parser_options()).statement_to_plan(statement)
    }

    /// `expr` coerced to the types of `schema` and planned for evaluation on its batches.
    pub fn create_physical_expr(
        &self,
        expr: Expr,
        schema: &DFSchema,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        let context = SimplifyContext::builder()
            .with_schema(Arc::new(schema.clone()))
            .with_config_options(self.options.clone())
            .with_query_execution_start_time(self.props.query_execution_start_time)
            .build();
        let expr = ExprSimplifier::new(context).coerce(expr, schema)?;
        datafusion_physical_expr::create_physical_expr(
            &expr,
            schema,
            &self.props,
            &PhysicalPlanningContext::default(),
        )
    }

    fn parser_options(&self) -> ParserOptions {
        let o = &self.options.sql_parser;
        ParserOptions {
            parse_float_as_decimal: o.parse_float_as_decimal,
            enable_ident_normalization: o.enable_ident_normalization,
            enable_options_value_normalization: o.enable_options_value_normalization,
            support_varchar_with_length: o.support_varchar_with_length,
            map_string_types_to_utf8view: o.map_string_types_to_utf8view,
            collect_spans: o.collect_spans,
            default_null_ordering: o.default_null_ordering.as_str().into(),
        }
    }
}

fn by_names<T>(map: &mut HashMap<String, Arc<T>>, name: &str, aliases: &[String], f: Arc<T>) {
    for alias in aliases {
        map.insert(alias.clone(), f.clone());
    }
    map.insert(name.to_string(), f);
}

/// `SessionStateDefaults::default_expr_planners` of the `datafusion` crate, same order.
fn default_expr_planners() -> Vec<Arc<dyn ExprPlanner>> {
    vec![
        Arc::new(datafusion_functions::core::planner::CoreFunctionPlanner::default()),
        Arc::new(datafusion_functions_nested::planner::NestedFunctionPlanner),
        Arc::new(datafusion_functions_nested::planner::FieldAccessPlanner),
        Arc::new(datafusion_functions::datetime::planner::DatetimeFunctionPlanner),
        Arc::new(datafusion_functions::unicode::planner::UnicodeFunctionPlanner),
        Arc::new(datafusion_functions_aggregate::planner::AggregateFunctionPlanner),
        Arc::new(datafusion_functions_window::planner::WindowFunctionPlanner),
    ]
}

/// The planner's view of a [`RuleSession`] with one table.
struct Provider<'a> {
    session: &'a RuleSession,
    table: TableReference,
    source: Arc<dyn TableSource>,
}

impl ContextProvider for Provider<'_> {
    fn get_table_source(&self, name: TableReference) -> Result<Arc<dyn TableSource>> {
        if name.table() == self.table.table() && name.schema().is_none_or(|s| s == "public") {
            return Ok(self.source.clone());
        }
        Err(plan_datafusion_err!(
            "table '{}' not found",
            qualified(&name)
        ))
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        &self.session.planners
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.session.scalar.get(name).cloned()
    }

    fn get_higher_order_meta(&self, name: &str) -> Option<Arc<HigherOrderUDF>> {
        self.session.higher_order.get(name).cloned()
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.session.aggregate.get(name).cloned()
    }

    fn get_window_meta(&self, name: &str) -> Option<Arc<WindowUDF>> {
        self.session.window.get(name).cloned()
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        &self.session.options
    }

    fn udf_names(&self) -> Vec<String> {
        self.session.scalar.keys().cloned().collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        self.session.higher_order.keys().cloned().collect()
    }

    fn udaf_names(&self) -> Vec<String> {
        self.session.aggregate.keys().cloned().collect()
    }

    fn udwf_names(&self) -> Vec<String> {
        self.session.window.keys().cloned().collect()
    }
}

/// A table name as `SessionContext` printed it in "not found" (`datafusion.public.devices`).
fn qualified(name: &TableReference) -> String {
    let catalog = name.catalog().unwrap_or("datafusion");
    let schema = name.schema().unwrap_or("public");
    format!("{catalog}.{schema}.{}", name.table())
}
