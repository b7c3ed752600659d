use super::*;
use crate::decode::{BatchDecoder, RawBatch};
use crate::record::TelemetryRecord;
use arrow::array::AsArray;
use arrow::datatypes::{Float64Type, Int64Type};

fn batch(rows: &[(&str, &str)]) -> RecordBatch {
    let mut raw = RawBatch::default();
    for (i, (topic, payload)) in rows.iter().enumerate() {
        let device = topic.split('/').nth(1).unwrap_or("none");
        let rec = TelemetryRecord {
            device_id: device,
            mqtt_topic: topic,
            received_ms: 1_700_000_000_000 + i as i64,
            redelivered: false,
            payload: payload.as_bytes(),
        };
        raw.push(&rec, 0, i as i64);
    }
    BatchDecoder::new().decode(&raw).batch.unwrap()
}

fn rule(name: &str, sql: &str) -> RuleConfig {
    RuleConfig {
        name: name.into(),
        sql: sql.into(),
        actions: vec!["lake".into()],
        ..Default::default()
    }
}

#[test]
fn filters_and_projects_with_iot_functions() {
    let mut set = RuleSet::compile(&[rule(
        "hot",
        "SELECT device_id(), temperature, topic(1) AS fleet FROM 'devices/+/telemetry' WHERE temperature > 80",
    )])
    .unwrap();
    let b = batch(&[
        ("devices/a/telemetry", r#"{"temperature": 90.5}"#),
        ("devices/b/telemetry", r#"{"temperature": 20.0}"#),
        ("devices/c/status", r#"{"temperature": 99.0}"#),
        ("devices/d/telemetry", r#"{"humidity": 3}"#),
    ]);
    let out = set.evaluate(&b).remove(0).output.unwrap();
    let names: Vec<_> = out
        .rows
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["device_id", "temperature", "fleet"]);
    assert_eq!(out.rows.num_rows(), 1);
    assert_eq!(out.rows.column(0).as_string::<i32>().value(0), "a");
    assert_eq!(
        out.rows.column(1).as_primitive::<Float64Type>().value(0),
        90.5
    );
    assert_eq!(out.rows.column(2).as_string::<i32>().value(0), "devices");
}

#[test]
fn a_field_no_message_has_yet_is_null_not_an_error() {
    let mut set = RuleSet::compile(&[rule(
        "later",
        "SELECT seq FROM telemetry WHERE pressure > 1",
    )])
    .unwrap();
    let b = batch(&[("devices/a/telemetry", r#"{"seq": 1}"#)]);
    assert!(set.evaluate(&b).remove(0).output.is_none());
    let b = batch(&[("devices/a/telemetry", r#"{"seq": 2, "pressure": 5}"#)]);
    let out = set.evaluate(&b).remove(0).output.unwrap();
    assert_eq!(out.rows.column(0).as_primitive::<Int64Type>().value(0), 2);
}

#[test]
fn plans_once_per_schema_not_per_batch() {
    let mut set = RuleSet::compile(&[rule("all", "SELECT * FROM telemetry")]).unwrap();
    let mut decoder = BatchDecoder::new();
    let mut raw = RawBatch::default();
    let rec = TelemetryRecord {
        device_id: "a",
        mqtt_topic: "devices/a/telemetry",
        received_ms: 1,
        redelivered: false,
        payload: br#"{"x": 1}"#,
    };
    raw.push(&rec, 0, 0);
    let first = decoder.decode(&raw).batch.unwrap();
    set.evaluate(&first);
    let plan = set.rules[0].plan.clone().unwrap();
    for _ in 0..3 {
        let b = decoder.decode(&raw).batch.unwrap();
        set.evaluate(&b);
        assert!(Arc::ptr_eq(&plan, set.rules[0].plan.as_ref().unwrap()));
    }
}

#[test]
fn every_bad_rule_is_reported_at_once() {
    let errs = RuleSet::compile(&[
        rule("syntax", "SELEC * FROM telemetry"),
        rule("ok", "SELECT * FROM telemetry"),
        rule("func", "SELECT no_such_fn(x) FROM telemetry"),
        rule("filter", "SELECT * FROM 'a/#/b'"),
        rule("agg", "SELECT count(*) FROM telemetry"),
    ])
    .unwrap_err();
    let names: Vec<_> = errs.iter().map(|e| e.rule.as_str()).collect();
    assert_eq!(names, ["syntax", "func", "filter", "agg"]);
    // The position moved from the message to the place: `sql:1:1`, the rule named once.
    assert!(errs[0].at.starts_with("sql:1:"), "{}", errs[0]);
    assert!(!errs[0].message.contains("Line:"), "{}", errs[0].message);
    assert_eq!(
        errs[0].to_string().matches("'syntax'").count(),
        1,
        "{}",
        errs[0]
    );
    assert!(
        errs[1].message.contains("no_such_fn"),
        "{}",
        errs[1].message
    );
    assert_eq!(errs[2].at, "sql:1:10", "{}", errs[2]);
    assert!(
        errs[3].message.contains("not supported"),
        "{}",
        errs[3].message
    );
}

#[test]
fn is_defined_and_case_work() {
    let mut set = RuleSet::compile(&[rule(
        "c",
        "SELECT CASE WHEN t > 10 THEN 'hi' ELSE 'lo' END AS level FROM telemetry WHERE is_defined(t)",
    )])
    .unwrap();
    let b = batch(&[
        ("devices/a/telemetry", r#"{"t": 11}"#),
        ("devices/a/telemetry", r#"{"u": 1}"#),
        ("devices/a/telemetry", r#"{"t": 1}"#),
    ]);
    let out = set.evaluate(&b).remove(0).output.unwrap();
    let levels: Vec<_> = out
        .rows
        .column(0)
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    assert_eq!(levels, ["hi", "lo"]);
}

#[test]
fn a_rule_is_planned_once_per_schema_not_per_batch() {
    let mut set = RuleSet::compile(&[rule("p", "SELECT v FROM telemetry WHERE v > 1")]).unwrap();
    let mut decoder = BatchDecoder::new();
    let mut plans = Vec::new();
    for i in 0..50 {
        let mut raw = RawBatch::default();
        let payload = format!(r#"{{"v": {i}}}"#);
        let rec = TelemetryRecord {
            device_id: "d",
            mqtt_topic: "devices/d/telemetry",
            received_ms: 0,
            redelivered: false,
            payload: payload.as_bytes(),
        };
        raw.push(&rec, 0, i);
        let batch = decoder.decode(&raw).batch.unwrap();
        set.evaluate(&batch);
        plans.push(set.rules()[0].plan_schema().unwrap());
    }
    assert!(
        plans.windows(2).all(|w| Arc::ptr_eq(&w[0], &w[1])),
        "the same schema keeps the same plan"
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// A field path as a rule author writes one: dotted names, array indices, odd names.
    fn path() -> impl Strategy<Value = String> {
        let name = prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just("loc".to_string()),
            Just("telemetry".to_string()),
            Just("\"we.ird\"".to_string()),
            Just("\"\"".to_string()),
            "[a-c_]{1,3}",
        ];
        let step = prop_oneof![
            name.clone().prop_map(|n| format!(".{n}")),
            (-2i64..4).prop_map(|i| format!("[{i}]")),
        ];
        (name, prop::collection::vec(step, 0..4)).prop_map(|(n, s)| format!("{n}{}", s.concat()))
    }

    fn json() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("1".to_string()),
            Just("2.5".to_string()),
            Just("\"x\"".to_string()),
            Just("null".to_string()),
            Just("true".to_string()),
        ];
        leaf.prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-c]", inner), 0..3).prop_map(|v| {
                    let fields: Vec<String> =
                        v.iter().map(|(k, x)| format!("\"{k}\":{x}")).collect();
                    format!("{{{}}}", fields.join(","))
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Path rewriting, planning and evaluation never panic: a rule compiles or reports an
        /// error, and a compiled rule routes any batch (failing rows, not the process).
        #[test]
        fn rule_paths_compile_or_err_and_never_panic(select in path(), filter in path(), payloads in prop::collection::vec(json(), 1..6)) {
            let sql = format!("SELECT {select} AS out FROM 'devices/+/telemetry' WHERE {filter} IS NOT NULL");
            if let Ok(mut set) = RuleSet::compile(&[rule("r", &sql)]) {
                let rows: Vec<(String, String)> = payloads
                    .iter()
                    .map(|p| ("devices/d/telemetry".to_string(), format!("{{\"a\":{p},\"loc\":{p}}}")))
                    .collect();
                let rows: Vec<(&str, &str)> = rows.iter().map(|(t, p)| (t.as_str(), p.as_str())).collect();
                let b = batch(&rows);
                let routed = set.route(&b);
                prop_assert_eq!(routed.results.len(), 1);
            }
        }
    }
}
