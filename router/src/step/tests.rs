//! The batch step alone: raw records in, what to write where out — no Kafka, no sinks.

use super::*;
use arrow::array::{Array, AsArray};
use sluice_config::RuleConfig;
use sluice_core::Meta;
use sluice_processors::record::TelemetryRecord;

fn rule(name: &str, sql: &str, error_action: Option<&str>) -> RuleConfig {
    RuleConfig {
        name: name.into(),
        sql: sql.into(),
        actions: vec!["lake".into()],
        error_action: error_action.map(Into::into),
        ..Default::default()
    }
}

fn step(rules: &[RuleConfig], fallback: Option<&str>) -> Step {
    let rules = RuleSet::compile(rules)
        .unwrap()
        .with_fallback(fallback.map(Into::into));
    Step::new(BatchDecoder::new(), rules)
}

/// Records of devices d0, d1, … at partition 3, offsets 100, 101, …
fn raw(payloads: &[&str]) -> RawBatch {
    let mut raw = RawBatch::default();
    for (i, p) in payloads.iter().enumerate() {
        let device = format!("d{i}");
        let topic = format!("devices/{device}/telemetry");
        let rec = TelemetryRecord {
            device_id: &device,
            mqtt_topic: &topic,
            received_ms: 1_700_000_000_000 + i as i64,
            redelivered: false,
            payload: p.as_bytes(),
        };
        raw.push(&rec, 3, 100 + i as i64);
    }
    raw
}

fn offsets(batch: &RecordBatch) -> Vec<i64> {
    let meta = Meta::of(batch);
    (0..batch.num_rows()).map(|r| meta.offset(r)).collect()
}

#[test]
fn a_clean_batch_goes_to_each_rules_actions_with_its_metadata_columns() {
    let mut s = step(
        &[rule(
            "all",
            "SELECT device_id() AS d, t FROM telemetry",
            None,
        )],
        None,
    );
    let out = s.run(&raw(&[r#"{"t": 1.5}"#, r#"{"t": 2.5}"#]));
    assert_eq!(out.rows, 2);
    assert!(out.dead_letters.is_empty() && out.failed.is_empty() && out.unmatched.is_none());
    let [w] = &out.writes[..] else {
        panic!("one rule wrote: {:?}", out.writes)
    };
    assert_eq!(&*w.route.rule, "all");
    assert_eq!(w.route.actions, vec![Arc::<str>::from("lake")]);
    let d = w
        .output
        .rows
        .column_by_name("d")
        .unwrap()
        .as_string::<i32>();
    assert_eq!((d.value(0), d.value(1)), ("d0", "d1"));
    let meta = Meta::of(&w.output.source);
    assert_eq!((meta.partition(1), meta.offset(1)), (3, 101));
    assert_eq!(meta.device_id(1), Some("d1"));
}

#[test]
fn a_value_of_another_type_is_null_for_its_message_only() {
    let mut s = step(&[rule("all", "SELECT t FROM telemetry", None)], None);
    s.run(&raw(&[r#"{"t": 1.5}"#]));
    let out = s.run(&raw(&[r#"{"t": 2.5}"#, r#"{"t": "hot"}"#, r#"{"t": 3.5}"#]));
    assert_eq!((out.rows, out.nulled), (3, 1));
    let t = out.writes[0].output.rows.column(0).clone();
    assert_eq!((t.null_count(), t.is_null(1)), (1, true));
}

#[test]
fn a_record_that_does_not_decode_is_a_dead_letter_by_its_index_in_the_raw_batch() {
    let mut s = step(&[rule("all", "SELECT t FROM telemetry", None)], None);
    let out = s.run(&raw(&[r#"{"t": 1}"#, "{not json", r#"{"t": 2}"#]));
    let [d] = &out.dead_letters[..] else {
        panic!("{:?}", out.dead_letters)
    };
    assert_eq!(d.index, 1);
    assert!(d.reason.starts_with("invalid JSON"), "{}", d.reason);
    assert_eq!(offsets(&out.writes[0].output.source), vec![100, 102]);
}

#[test]
fn rows_a_rule_fails_on_go_to_its_error_action_with_the_reason() {
    let codes = rule(
        "codes",
        "SELECT CAST(code AS INT) AS code FROM telemetry",
        Some("errors"),
    );
    let mut s = step(&[codes], None);
    let out = s.run(&raw(&[r#"{"code": "12"}"#, r#"{"code": "abc"}"#]));
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    assert_eq!(out.writes[0].output.rows.num_rows(), 1);
    let [f] = &out.failed[..] else {
        panic!("{:?}", out.failed)
    };
    assert_eq!((&*f.rule, &*f.action), ("codes", "errors"));
    assert_eq!(offsets(&f.rows), vec![101]);
    let error = f.rows.column_by_name("_error").unwrap().as_string::<i32>();
    assert!(error.value(0).contains("abc"), "{}", error.value(0));
}

#[test]
fn rows_a_rule_without_an_error_action_fails_on_are_dead_letters_of_their_own_records() {
    let codes = rule(
        "codes",
        "SELECT CAST(code AS INT) AS code FROM telemetry",
        None,
    );
    let mut s = step(&[codes], None);
    // The rejected record before the failing one shifts batch rows against raw records.
    let out = s.run(&raw(&[
        "[1]",
        r#"{"code": "7"}"#,
        r#"{"code": "x"}"#,
        r#"{"code": "8"}"#,
    ]));
    let indices: Vec<usize> = out.dead_letters.iter().map(|d| d.index).collect();
    assert_eq!(indices, vec![0, 2]);
    assert!(
        out.dead_letters[1].reason.contains("codes"),
        "{:?}",
        out.dead_letters
    );
    assert_eq!(offsets(&out.writes[0].output.source), vec![101, 103]);
}

#[test]
fn rows_no_rule_selects_go_to_the_fallback_action() {
    let hot = rule("hot", "SELECT t FROM telemetry WHERE t > 50", None);
    let mut s = step(&[hot], Some("rest"));
    let out = s.run(&raw(&[r#"{"t": 20}"#, r#"{"t": 90}"#, r#"{"t": 30}"#]));
    assert_eq!(offsets(&out.writes[0].output.source), vec![101]);
    let unmatched = out.unmatched.expect("a fallback write");
    assert_eq!(
        (&*unmatched.rule, &*unmatched.action),
        (FALLBACK_RULE, "rest")
    );
    assert_eq!(offsets(&unmatched.rows), vec![100, 102]);
}

#[test]
fn without_a_fallback_action_unmatched_rows_go_nowhere_and_no_rule_writes_nothing() {
    let hot = rule("hot", "SELECT t FROM telemetry WHERE t > 50", None);
    let mut s = step(&[hot], None);
    let out = s.run(&raw(&[r#"{"t": 20}"#]));
    assert!(out.writes.is_empty() && out.unmatched.is_none(), "{out:?}");
}

#[test]
fn a_trial_leaves_the_running_schema_as_it_was() {
    let mut s = step(&[rule("all", "SELECT * FROM telemetry", None)], None);
    s.run(&raw(&[r#"{"t": 1}"#]));
    let tried = s.trial(&raw(&[r#"{"t": 2, "extra": true}"#])).unwrap();
    assert!(tried.writes[0]
        .output
        .source
        .column_by_name("extra")
        .is_some());
    let out = s.run(&raw(&[r#"{"t": 3}"#]));
    assert!(out.writes[0]
        .output
        .source
        .column_by_name("extra")
        .is_none());
}

#[test]
fn a_reloaded_rule_set_takes_over_with_its_own_routes() {
    let mut s = step(&[rule("old", "SELECT t FROM telemetry", None)], None);
    let new = RuleSet::compile(&[rule("new", "SELECT t FROM telemetry", Some("errors"))]).unwrap();
    s.set_rules(new);
    let out = s.run(&raw(&[r#"{"t": 1}"#]));
    assert_eq!(&*out.writes[0].route.rule, "new");
    assert_eq!(s.error_action_of("new").as_deref(), Some("errors"));
    assert_eq!(s.error_action_of("old"), None);
}
