//! Expected rows against actual rows, and the diff a data engineer reads in a CI log.

use super::case::{Case, Expect};
use super::{CaseReport, Rows};
use serde_json::{Map, Value};

/// Compares rows in order. `strict`: every column of the actual row must be expected (a key
/// the case leaves out means NULL); otherwise only the expected keys are compared.
pub fn rows(
    label: &str,
    expected: &[toml::Table],
    actual: &Rows,
    strict: bool,
    case: &Case,
    failures: &mut Vec<String>,
) {
    if expected.len() != actual.len() {
        failures.push(format!(
            "{label}: expected {} row(s), got {}",
            expected.len(),
            actual.len()
        ));
    }
    for (i, (message, row)) in actual.iter().enumerate() {
        let Some(want) = expected.get(i) else {
            failures.push(format!(
                "{label}: unexpected row {} from {}: {}",
                i + 1,
                describe(case, *message),
                Value::Object(row.clone())
            ));
            continue;
        };
        let want: Map<String, Value> = match serde_json::to_value(want) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let mut columns: Vec<&String> = want.keys().collect();
        if strict {
            columns.extend(row.keys().filter(|k| !want.contains_key(*k)));
        }
        for col in columns {
            let (w, got) = (want.get(col), row.get(col));
            if !same(w, got) {
                failures.push(format!(
                    "{label}: row {} from {}: column '{col}': expected {}, got {}",
                    i + 1,
                    describe(case, *message),
                    show(w),
                    show(got)
                ));
            }
        }
    }
    for (i, want) in expected.iter().enumerate().skip(actual.len()) {
        failures.push(format!(
            "{label}: missing row {}: {}",
            i + 1,
            table_json(want)
        ));
    }
}

/// Compile errors against the expected texts: each expected text must be in some error.
pub fn compile_errors(expects: &[&Expect], messages: &[String]) -> CaseReport {
    let mut report = CaseReport::default();
    if expects.is_empty() {
        report
            .failures
            .push(format!("the rules do not compile: {}", messages.join("; ")));
        return report;
    }
    for want in expects.iter().flat_map(|e| &e.errors) {
        report.checks += 1;
        if !messages.iter().any(|m| m.contains(want.as_str())) {
            report.failures.push(format!(
                "expected a compile error containing {want:?}; the errors were: {}",
                messages.join("; ")
            ));
        }
    }
    report
}

/// Equal as a data engineer means it: numbers by value (90 = 90.0), `"~text"` matches any
/// string containing `text`, a missing expected value means NULL.
fn same(want: Option<&Value>, got: Option<&Value>) -> bool {
    match (want, got) {
        (None | Some(Value::Null), None | Some(Value::Null)) => true,
        (Some(Value::Number(a)), Some(Value::Number(b))) => {
            let (a, b) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
        }
        (Some(Value::String(w)), Some(Value::String(g))) => match w.strip_prefix('~') {
            Some(part) => g.contains(part),
            None => w == g,
        },
        (Some(Value::Array(w)), Some(Value::Array(g))) => {
            w.len() == g.len() && w.iter().zip(g).all(|(a, b)| same(Some(a), Some(b)))
        }
        (Some(w), Some(g)) => w == g,
        _ => false,
    }
}

fn show(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "NULL".into(),
        Some(v) => v.to_string(),
    }
}

fn table_json(t: &toml::Table) -> String {
    serde_json::to_string(t).unwrap_or_default()
}

/// `message #2 (devices/d2/telemetry {"temperature":95})`.
fn describe(case: &Case, message: Option<usize>) -> String {
    let Some(n) = message else {
        return "an unknown message".into();
    };
    match case.messages.get(n.wrapping_sub(1)) {
        Some(m) => format!("message #{n} ({} {})", m.topic, m.payload_text()),
        None => format!("message #{n}"),
    }
}
