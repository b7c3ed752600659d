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

pub mod devices;
mod eval;
pub mod field;
pub mod iot;
pub mod paths;
pub mod plan;
mod readable;
pub mod route;
pub mod session;
pub mod topic;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::datatypes::{Schema, SchemaRef};
use plan::CompiledPlan;
use session::RuleSession;
use sluice_common::Event;
use sluice_config::RuleConfig;
use sluice_core::meta::metadata_fields;
use std::fmt;
use std::sync::{Arc, OnceLock};
pub use topic::TopicFilter;

/// A problem with one rule, found when it was compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub rule: String,
    /// Where the rule's SQL is: `rules[2].sql` or the rule file.
    pub at: String,
    /// DataFusion's message, with `Line: L, Column: C` in the SQL (the file) where known.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: rule '{}': {}", self.at, self.rule, self.message)
    }
}

/// One JSON object per row, NULL columns left out: how alerts carry their rows and how rule
/// tests compare them.
pub fn rows_as_json(
    rows: &RecordBatch,
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, arrow::error::ArrowError> {
    let mut writer = arrow_json::ArrayWriter::new(Vec::new());
    writer.write(rows)?;
    writer.finish()?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(vec![]);
    }
    serde_json::from_slice(&bytes).map_err(|e| arrow::error::ArrowError::JsonError(e.to_string()))
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
    /// Which input rows the rule selected (`None`: none).
    pub matched: Option<BooleanArray>,
    /// Input rows the rule failed on (row index, reason); the rest of the batch went through.
    pub failed_rows: Vec<(usize, String)>,
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub actions: Vec<String>,
    pub error_action: Option<String>,
    sql: String,
    topic_filter: Option<TopicFilter>,
    plan: Option<Arc<CompiledPlan>>,
}

/// All rules, compiled, with the DataFusion session that plans them.
pub struct RuleSet {
    rules: Vec<Rule>,
    ctx: RuleSession,
    /// Sink for messages no rule matched.
    pub fallback_action: Option<String>,
    /// Content hash of the rules (names, SQL, actions): the version `/rules` reports.
    pub version: u64,
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
    /// Compiles every rule with an empty devices table; returns all problems at once.
    pub fn compile(configs: &[RuleConfig]) -> Result<RuleSet, Vec<RuleError>> {
        Self::compile_with(configs, &devices::DeviceTags::default())
    }

    /// Compiles every rule, `device_tag()` reading `devices`; returns all problems at once.
    pub fn compile_with(
        configs: &[RuleConfig],
        devices: &devices::DeviceTags,
    ) -> Result<RuleSet, Vec<RuleError>> {
        let ctx = plan::session(devices);
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        for c in configs {
            let err =
                |message: String| rule_error(c, locate_name(&readable::readable(&message), &c.sql));
            match split_topic_filter(&c.sql) {
                Err(e) => errors.push(err(e)),
                Ok((sql, topic_filter)) => {
                    match plan::compile(&ctx, &sql, &metadata_only_schema()) {
                        Err(e) => {
                            let message = with_construct_position(&e, &c.sql);
                            errors.push(err(with_clause_position(message, &ctx, &sql, &c.sql)))
                        }
                        Ok(_) => rules.push(Rule {
                            name: c.name.clone(),
                            actions: c.actions.clone(),
                            error_action: c.error_action.clone(),
                            sql,
                            topic_filter,
                            plan: None,
                        }),
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(RuleSet {
                rules,
                ctx,
                fallback_action: None,
                version: version_of(configs),
            })
        } else {
            Err(errors)
        }
    }

    /// Sets the sink that receives messages no rule matched.
    pub fn with_fallback(mut self, action: Option<String>) -> Self {
        self.fallback_action = action;
        self
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Evaluates every rule on one batch. Rule `i`'s result is at index `i`.
    pub fn evaluate(&mut self, batch: &RecordBatch) -> Vec<RuleResult> {
        let ctx = &self.ctx;
        self.rules
            .iter_mut()
            .map(|r| {
                let started = std::time::Instant::now();
                let result = r.evaluate(ctx, batch);
                let took = started.elapsed();
                crate::events::RuleTimed {
                    rule: &r.name,
                    took,
                }
                .emit();
                result
            })
            .collect()
    }
}

/// A stable hash of what the rules do (FNV-1a: the same on every run and machine).
pub fn version_of(configs: &[RuleConfig]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |s: &str| {
        for b in s.bytes().chain([0xff]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    };
    for c in configs {
        eat(&c.name);
        eat(&c.sql);
        c.actions.iter().for_each(|a| eat(a));
        eat(c.error_action.as_deref().unwrap_or(""));
    }
    h
}

/// For a rule file, moves DataFusion's `at Line: L, Column: C` into `file:L:C`.
fn rule_error(c: &RuleConfig, message: String) -> RuleError {
    static POS: OnceLock<regex::Regex> = OnceLock::new();
    let re = POS.get_or_init(|| {
        regex::Regex::new(r",? at Line: (\d+), Column: (\d+)").expect("valid regex")
    });
    let pos = re
        .captures(&message)
        .map(|caps| format!(":{}:{}", &caps[1], &caps[2]))
        .unwrap_or_default();
    // The place comes first (`file:line:col`, `rules[2].sql:1:8`), the rule's name once after.
    let place = match &c.origin {
        sluice_config::RuleOrigin::File { path, .. } => path.display().to_string(),
        sluice_config::RuleOrigin::Config(i) => format!("rules[{i}].sql"),
        sluice_config::RuleOrigin::Inline => "sql".to_string(),
    };
    RuleError {
        rule: c.name.clone(),
        at: format!("{place}{pos}"),
        message: re.replace(&message, "").into_owned(),
    }
}

/// A planning error DataFusion gave no position for (a type error): points at the WHERE
/// condition when the rule plans without it, else at the SELECT list.
fn with_clause_position(message: String, ctx: &RuleSession, sql: &str, original: &str) -> String {
    let quoted = message.split('\'').nth(1).filter(|q| !q.is_empty());
    if message.contains("Line:") || quoted.is_some_and(|q| original.contains(q)) {
        return message; // positioned already, or a quoted name locate_name will find
    }
    static WHERE: OnceLock<regex::Regex> = OnceLock::new();
    let re = WHERE.get_or_init(|| regex::Regex::new(r"(?i)\bwhere\b").expect("valid regex"));
    let in_where = re
        .find(sql)
        .filter(|w| plan::compile(ctx, &sql[..w.start()], &metadata_only_schema()).is_ok());
    let (keyword, skip) = match in_where {
        Some(_) => (re.find(original).map(|m| m.start()), "where".len() + 1),
        None => (original.to_lowercase().find("select"), "select".len() + 1),
    };
    match keyword {
        Some(i) => {
            let (line, col) = sluice_config::line_col(original, (i + skip).min(original.len()));
            format!("{message} at Line: {line}, Column: {col}")
        }
        None => message,
    }
}

/// An unsupported construct's message, with where its keyword stands in the SQL (DataFusion
/// reports plan shapes without a position).
fn with_construct_position(e: &plan::PlanError, sql: &str) -> String {
    let plan::PlanError::Unsupported(what) = e else {
        return e.to_string();
    };
    let keywords: &[&str] = match *what {
        "ORDER BY" => &["order by"],
        "LIMIT" => &["limit"],
        "a JOIN" => &["join", ","],
        "DISTINCT" => &["distinct"],
        "UNION" => &["union"],
        "a window function (OVER)" => &["over"],
        _ => &["group by", "count(", "sum(", "avg(", "min(", "max("],
    };
    let lower = sql.to_lowercase();
    let found = keywords.iter().filter_map(|k| lower.find(k)).min();
    match found {
        Some(i) => {
            let (line, col) = sluice_config::line_col(sql, i);
            format!("{e} at Line: {line}, Column: {col}")
        }
        None => e.to_string(),
    }
}

/// Adds the position of a name DataFusion quotes (`Invalid function 'frobnicate'`) when the
/// message has none, so every rule error points into the SQL.
fn locate_name(message: &str, sql: &str) -> String {
    let message = message.replace('\n', " ");
    if message.contains("Line:") {
        return message;
    }
    if message.contains("found: EOF") {
        let end = sql.trim_end().len();
        let (line, col) = sluice_config::line_col(sql, end);
        return format!("{message} at Line: {line}, Column: {col}");
    }
    let Some(name) = message.split('\'').nth(1).filter(|n| !n.is_empty()) else {
        return message;
    };
    let found = sql.match_indices(name).find(|(i, _)| {
        let before = sql[..*i].chars().next_back();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
    });
    match found {
        Some((i, _)) => {
            let (line, col) = sluice_config::line_col(sql, i);
            format!("{message} at Line: {line}, Column: {col}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests;
