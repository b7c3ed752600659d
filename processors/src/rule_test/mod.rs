//! `sluice rules test`: rule cases run through the real rule engine, in-process.
//!
//! A case's messages become one batch exactly as the router builds it (same decoder, same
//! metadata columns), are routed by [`RuleSet::route`] (the router's own function), and what
//! each rule selected and each action received is compared with the case's expectations.
//! Mismatches are printed as a diff naming the case, the rule or action, the row, the input
//! message it came from and the column.

pub mod case;
mod compare;

use crate::decode::formats::PayloadFormats;
use crate::decode::{BatchDecoder, RawBatch, OFFSET};
use crate::record::{device_id_from_topic, TelemetryRecord};
use crate::rule::devices::DeviceTags;
use crate::rule::route::ERROR_COLUMN;
use crate::rule::RuleSet;
use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use case::{Case, Expect, DEFAULT_RECEIVED_AT};
use serde_json::{Map, Value};
use sluice_config::RuleConfig;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// What one case found: empty `failures` means it passed.
#[derive(Debug, Default)]
pub struct CaseReport {
    pub failures: Vec<String>,
    pub checks: usize,
}

/// A rule's or action's rows as JSON objects, each with the message number it came from.
type Rows = Vec<(Option<usize>, Map<String, Value>)>;

/// Runs one case file. `default_rules` are used when the case names none itself.
pub fn run_case_file(path: &Path, default_rules: &[RuleConfig]) -> CaseReport {
    let mut case = match case::read_case(path) {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot read the case: {e}")),
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let payload_errors: Vec<String> = (case.payloads.iter_mut().enumerate())
        .flat_map(|(i, p)| p.resolve(i, base))
        .map(|e| e.to_string())
        .collect();
    if !payload_errors.is_empty() {
        return failed(payload_errors.join("; "));
    }
    let (mut rules, read_errors) =
        sluice_config::rule_files::load_rule_paths(base, &case.rule_files);
    if !read_errors.is_empty() {
        return failed(
            read_errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        );
    }
    let mut inline = case.rules.clone();
    inline.append(&mut rules);
    let rules = if inline.is_empty() {
        default_rules.to_vec()
    } else {
        inline
    };
    run_case(&case, &rules)
}

fn failed(message: String) -> CaseReport {
    CaseReport {
        failures: vec![message],
        checks: 1,
    }
}

/// Runs a parsed case with the given rules.
pub fn run_case(case: &Case, rules: &[RuleConfig]) -> CaseReport {
    let devices = DeviceTags::default();
    devices.replace(device_table(case));
    let compiled = RuleSet::compile_with(rules, &devices);
    let expects_errors: Vec<&Expect> = case
        .expect
        .iter()
        .filter(|e| !e.errors.is_empty())
        .collect();
    let mut set = match compiled {
        Err(errs) => {
            let messages: Vec<String> = errs.iter().map(ToString::to_string).collect();
            return compare::compile_errors(&expects_errors, &messages);
        }
        Ok(_) if !expects_errors.is_empty() => {
            return failed("expected the rules to fail to compile, but they compiled".into())
        }
        Ok(set) => set.with_fallback(case.fallback_action.clone()),
    };
    let outputs = route_messages(case, &mut set);
    let mut report = CaseReport::default();
    for expect in &case.expect {
        report.checks += 1;
        let (label, actual, strict) = match (&expect.rule, &expect.action) {
            (Some(rule), None) => (
                format!("rule '{rule}'"),
                outputs.rules.get(rule.as_str()),
                true,
            ),
            (None, Some(action)) => (
                format!("action '{action}'"),
                outputs.actions.get(action.as_str()),
                false,
            ),
            _ => {
                report
                    .failures
                    .push("an [[expect]] needs exactly one of rule or action".into());
                continue;
            }
        };
        if expect
            .rule
            .as_ref()
            .is_some_and(|r| !set.rules().iter().any(|x| &x.name == r))
        {
            report
                .failures
                .push(format!("{label}: no such rule in this case"));
            continue;
        }
        let empty = Vec::new();
        let actual = actual.unwrap_or(&empty);
        compare::rows(
            &label,
            &expect.rows,
            actual,
            strict,
            case,
            &mut report.failures,
        );
    }
    report
}

fn device_table(case: &Case) -> HashMap<String, HashMap<String, String>> {
    case.devices
        .iter()
        .filter_map(|d| {
            let id = d.get("device_id")?.clone();
            let tags = d
                .iter()
                .filter(|(k, _)| *k != "device_id")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Some((id, tags))
        })
        .collect()
}

/// What the routing produced, by rule and by action.
#[derive(Default)]
struct Outputs {
    rules: BTreeMap<String, Rows>,
    actions: BTreeMap<String, Rows>,
}

fn route_messages(case: &Case, set: &mut RuleSet) -> Outputs {
    let payloads: Vec<Vec<u8>> = case.messages.iter().map(|m| m.payload_bytes()).collect();
    let mut out = Outputs::default();
    for rule in set.rules() {
        out.rules.insert(rule.name.clone(), vec![]);
    }
    let mut decoder = BatchDecoder::new().with_formats(PayloadFormats::of(&case.payloads));
    let size = case.batch_size.unwrap_or(usize::MAX).max(1);
    let indices: Vec<usize> = (0..case.messages.len()).collect();
    for chunk in indices.chunks(size.min(indices.len().max(1))) {
        let mut raw = RawBatch::default();
        for &i in chunk {
            let m = &case.messages[i];
            let device = m
                .device_id
                .as_deref()
                .or_else(|| device_id_from_topic(&m.topic, case.device_id_level))
                .unwrap_or("");
            let rec = TelemetryRecord {
                device_id: device,
                mqtt_topic: &m.topic,
                received_ms: m.received_at.unwrap_or(DEFAULT_RECEIVED_AT + i as i64),
                redelivered: false,
                payload: &payloads[i],
            };
            raw.push(&rec, 0, i as i64);
        }
        route_batch(&mut decoder, &raw, set, &mut out);
    }
    out
}

fn route_batch(decoder: &mut BatchDecoder, raw: &RawBatch, set: &mut RuleSet, out: &mut Outputs) {
    let decoded = decoder.decode(raw);
    let dlq = out.actions.entry("dlq".into()).or_default();
    for r in &decoded.rejects {
        let index = raw.offset(r.index) as usize;
        dlq.push((Some(index + 1), dlq_row(index, &r.reason)));
    }
    let Some(batch) = decoded.batch else {
        return;
    };
    let routed = set.route(&batch);
    for (rule, result) in set.rules().iter().zip(&routed.results) {
        let rows = match &result.output {
            Some(o) => json_rows(&o.rows, Some(&o.source)),
            None => vec![],
        };
        for action in &rule.actions {
            out.actions
                .entry(action.clone())
                .or_default()
                .extend(rows.clone());
        }
        out.rules.entry(rule.name.clone()).or_default().extend(rows);
    }
    for (i, failed) in &routed.errors {
        if let Some(action) = &set.rules()[*i].error_action {
            out.actions
                .entry(action.clone())
                .or_default()
                .extend(json_rows(failed, None));
        }
    }
    let dlq = out.actions.entry("dlq".into()).or_default();
    for (row, reason) in &routed.dead_letters {
        let offset = batch
            .column_by_name(OFFSET)
            .map(|c| c.as_primitive::<Int64Type>().value(*row));
        let index = offset.unwrap_or(*row as i64) as usize;
        dlq.push((Some(index + 1), dlq_row(index, reason)));
    }
    if let (Some(rows), Some(action)) = (&routed.unmatched, &set.fallback_action) {
        out.actions
            .entry(action.clone())
            .or_default()
            .extend(json_rows(rows, None));
    }
}

fn dlq_row(index: usize, reason: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("_message".into(), Value::from(index + 1));
    m.insert(ERROR_COLUMN.into(), Value::from(reason));
    m
}

/// Rows as JSON objects (NULLs omitted), each with its 1-based message number, read from the
/// `_offset` of `source` (or of the rows themselves when they are whole messages).
fn json_rows(rows: &RecordBatch, source: Option<&RecordBatch>) -> Rows {
    let objects = crate::rule::rows_as_json(rows).unwrap_or_default();
    let offsets = source
        .unwrap_or(rows)
        .column_by_name(OFFSET)
        .and_then(|c| c.as_primitive_opt::<Int64Type>().cloned());
    objects
        .into_iter()
        .enumerate()
        .map(|(i, o)| (offsets.as_ref().map(|c| c.value(i) as usize + 1), o))
        .collect()
}
