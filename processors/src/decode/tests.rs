use super::*;
use crate::record::TelemetryRecord;
use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use arrow::datatypes::{Float64Type, Int64Type};
use std::time::Instant;

mod formats;
mod properties;

fn raw(payloads: &[&[u8]]) -> RawBatch {
    let mut raw = RawBatch::default();
    for (i, p) in payloads.iter().enumerate() {
        let rec = TelemetryRecord {
            device_id: "d1",
            mqtt_topic: "devices/d1/telemetry",
            received_ms: 1_000 + i as i64,
            redelivered: false,
            payload: p,
        };
        raw.push(&rec, 0, i as i64);
    }
    raw
}

#[test]
fn decodes_a_batch_with_metadata_columns() {
    let r = raw(&[br#"{"t": 20, "s": "ok"}"#, br#"{"t": 21.5, "n": {"a": 1}}"#]);
    let out = BatchDecoder::new().decode(&r);
    assert!(out.rejects.is_empty());
    let b = out.batch.unwrap();
    assert_eq!(b.num_rows(), 2);
    let t = b.column_by_name("t").unwrap().as_primitive::<Float64Type>();
    assert_eq!(t.value(1), 21.5);
    let off = b
        .column_by_name(OFFSET)
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(off.values(), &[0, 1]);
    assert_eq!(
        b.column_by_name(DEVICE_ID)
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "d1"
    );
}

#[test]
fn malformed_records_are_rejected_with_reasons_and_the_rest_goes_on() {
    let r = raw(&[b"{not json", b"\xff\xfe", b"[1,2]", br#"{"t": 1}"#]);
    let out = BatchDecoder::new().decode(&r);
    let reasons: Vec<_> = out
        .rejects
        .iter()
        .map(|r| (r.index, r.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 3);
    assert!(reasons[0].1.starts_with("invalid JSON"));
    assert_eq!(reasons[1], (1, "payload is not UTF-8"));
    assert_eq!(reasons[2], (2, "payload is not a JSON object"));
    let b = out.batch.unwrap();
    assert_eq!(b.num_rows(), 1);
    assert_eq!(
        b.column_by_name(OFFSET)
            .unwrap()
            .as_primitive::<Int64Type>()
            .value(0),
        3
    );
}

#[test]
fn a_string_among_numbers_is_read_or_nulled_and_never_types_the_column() {
    // The issue's batch: numeric readings with one device sending strings, in either order.
    for order in [0, 1] {
        let mut payloads: Vec<&[u8]> =
            vec![br#"{"temperature": 22.76}"#, br#"{"temperature": 81}"#];
        let odd: [&[u8]; 2] = [br#"{"temperature": "21.5"}"#, br#"{"temperature": "hot"}"#];
        if order == 0 {
            payloads.splice(0..0, odd);
        } else {
            payloads.extend(odd);
        }
        let out = BatchDecoder::new().decode(&raw(&payloads));
        let b = out.batch.unwrap();
        let t = b.column_by_name("temperature").unwrap();
        assert_eq!(t.data_type(), &DataType::Float64, "order {order}");
        let values: Vec<Option<f64>> = t.as_primitive::<Float64Type>().iter().collect();
        let expect = if order == 0 {
            vec![Some(21.5), None, Some(22.76), Some(81.0)]
        } else {
            vec![Some(22.76), Some(81.0), Some(21.5), None]
        };
        assert_eq!(values, expect);
        assert_eq!(out.nulled, 1);
    }
}

#[test]
fn keys_that_collide_once_flattened_reject_only_that_message() {
    let out = BatchDecoder::new().decode(&raw(&[
        br#"{"t": 1}"#,
        br#"{"a.b": 1, "a": {"b": 2}}"#,
        br#"{"t": 2, "a": {"b": 3}}"#,
        br#"{"a.b": 4}"#,
    ]));
    let reasons: Vec<_> = out
        .rejects
        .iter()
        .map(|r| (r.index, r.reason.clone()))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0].0, 1);
    assert!(reasons[0].1.starts_with("field name collision"));
    assert_eq!(reasons[1].0, 3);
    let b = out.batch.unwrap();
    assert_eq!(b.num_rows(), 2);
    let ab = b.column_by_name("a.b").unwrap().as_primitive::<Int64Type>();
    assert_eq!(ab.iter().collect::<Vec<_>>(), [None, Some(3)]);
}

#[test]
fn bounds_reject_the_message_and_keep_the_batch() {
    let limits = DecodeLimits {
        max_depth: 3,
        max_fields_per_message: 4,
        max_schema_fields: 6,
        field_ttl: None,
    };
    let mut d = BatchDecoder::with_limits(limits);
    let deep = br#"{"a": {"b": {"c": {"d": 1}}}}"#;
    let wide = br#"{"a1": 1, "a2": 2, "a3": 3, "a4": 4, "a5": 5}"#;
    let out = d.decode(&raw(&[
        br#"{"t": 1}"#,
        deep,
        wide,
        br#"{"": 1}"#,
        br#"1e999"#,
    ]));
    let reasons: Vec<_> = out
        .rejects
        .iter()
        .map(|r| r.reason.split(':').next().unwrap().to_string())
        .collect();
    assert_eq!(
        reasons,
        [
            "too deep",
            "too many fields",
            "empty field name",
            "invalid JSON"
        ]
    );
    assert_eq!(out.batch.unwrap().num_rows(), 1);
    // The schema holds 6 fields at most; the message that would pass it goes alone.
    let out = d.decode(&raw(&[
        br#"{"b1": 1, "b2": 2, "b3": 3}"#,
        br#"{"b1": 1, "b4": 4, "b5": 5, "b6": 6}"#,
        br#"{"t": 5}"#,
    ]));
    let reasons: Vec<_> = out
        .rejects
        .iter()
        .map(|r| (r.index, r.reason.split(':').next().unwrap().to_string()))
        .collect();
    assert_eq!(reasons, [(1, "schema full".to_string())]);
    assert_eq!(out.batch.unwrap().num_rows(), 2);
}

#[test]
fn fields_unseen_for_the_ttl_leave_the_schema() {
    let limits = DecodeLimits {
        field_ttl: Some(std::time::Duration::from_secs(3600)),
        ..Default::default()
    };
    let mut d = BatchDecoder::with_limits(limits);
    let t0 = Instant::now();
    d.decode_checked(&raw(&[br#"{"old": 1, "t": 1}"#]), t0);
    assert_eq!(d.retire_stale(t0 + std::time::Duration::from_secs(10)), 0);
    d.decode_checked(
        &raw(&[br#"{"t": 2}"#]),
        t0 + std::time::Duration::from_secs(1800),
    );
    assert_eq!(d.retire_stale(t0 + std::time::Duration::from_secs(3700)), 1);
    assert!(d.schema().column_with_name("old").is_none());
    assert!(d.schema().column_with_name("t").is_some());
}

#[test]
fn schema_is_stable_until_a_field_appears() {
    let mut d = BatchDecoder::new();
    d.decode(&raw(&[br#"{"t": 1}"#]));
    let first = d.schema().clone();
    d.decode(&raw(&[br#"{"t": 2}"#]));
    assert!(Arc::ptr_eq(&first, d.schema()));
    let out = d.decode(&raw(&[br#"{"t": "oops", "new": true}"#]));
    assert!(!Arc::ptr_eq(&first, d.schema()));
    assert_eq!(out.nulled, 1);
    let b = out.batch.unwrap();
    assert!(b.column_by_name("t").unwrap().is_null(0));
    assert!(b.column_by_name("new").is_some());
}

#[test]
fn empty_objects_decode_to_rows() {
    let out = BatchDecoder::new().decode(&raw(&[b"{}", b"{}"]));
    assert_eq!(out.batch.unwrap().num_rows(), 2);
}

#[test]
fn fast_path_and_checked_path_agree() {
    let mut d = BatchDecoder::new();
    let first = raw(&[br#"{"t": 1.5, "s": "a", "n": {"x": 1}}"#]);
    d.decode(&first);
    // Same schema: the fast path decodes it.
    let same = raw(&[br#"{"t": 2.5, "s": "b", "n": {"x": 2}}"#, br#"{"t": 3}"#]);
    assert!(d.decode_fast(&same).is_some());
    let fast = d.decode(&same).batch.unwrap();
    let checked = d.decode_checked(&same, Instant::now()).batch.unwrap();
    assert_eq!(fast, checked);
    // Two objects in one record must not pass as two rows.
    assert!(d.decode_fast(&raw(&[br#"{"t": 1}{"t": 2}"#])).is_none());
    assert!(d.decode_fast(&raw(&[br#"{"t": "#, br#"1}"#])).is_none());
    assert!(d.decode_fast(&raw(&[br#"{"t": "hot"}"#])).is_none());
    assert!(d.decode_fast(&raw(&[br#"{"new": 1}"#])).is_none());
}

/// Records of devices d0, d1, … (one each).
fn fleet(payloads: &[&[u8]]) -> RawBatch {
    let mut raw = RawBatch::default();
    for (i, p) in payloads.iter().enumerate() {
        let device = format!("d{i}");
        let rec = TelemetryRecord {
            device_id: &device,
            mqtt_topic: "devices/x/telemetry",
            received_ms: 1_000,
            redelivered: false,
            payload: p,
        };
        raw.push(&rec, 0, i as i64);
    }
    raw
}

#[test]
fn one_odd_message_keeps_the_rest_of_its_batch_on_the_fast_path() {
    let mut d = BatchDecoder::new();
    d.decode(&raw(&[br#"{"t": 1.5, "s": "ok"}"#]));
    let mut payloads: Vec<&[u8]> = vec![br#"{"t": 2.5, "s": "ok"}"#; 9];
    payloads.insert(4, br#"{"t": "hot", "s": "ok"}"#);
    payloads.insert(7, b"{not json");
    let r = fleet(&payloads);
    let checked = d.clone().decode_checked(&r, Instant::now());
    for round in 0..2 {
        // Round 0 finds the odd messages; round 1 sends devices d4 and d7 straight to the
        // checked path.
        let out = d.decode(&r);
        assert!(
            !d.odd_devices.is_empty(),
            "round {round}: the odd devices are remembered"
        );
        assert_eq!(out.nulled, 1);
        assert_eq!(out.rejects, checked.rejects);
        assert_eq!(out.rejects.len(), 1);
        assert_eq!(out.rejects[0].index, 7);
        let b = out.batch.unwrap();
        assert_eq!(Some(&b), checked.batch.as_ref());
        let offsets = b
            .column_by_name(OFFSET)
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(
            offsets.values(),
            &[0, 1, 2, 3, 4, 5, 6, 8, 9, 10],
            "record order"
        );
        let t = b.column_by_name("t").unwrap().as_primitive::<Float64Type>();
        assert!(t.is_null(4));
    }
    // The devices send good messages again: they are forgotten, and the fast path takes all.
    let good: Vec<&[u8]> = vec![br#"{"t": 3.5, "s": "ok"}"#; 11];
    d.decode(&fleet(&good));
    assert!(d.odd_devices.is_empty());
}

#[test]
fn an_integer_just_past_two_to_the_53_keeps_its_value() {
    // 2^53 + 1 reads as the float 2^53: the fast path must not narrow it back as 2^53.
    let mut d = BatchDecoder::new();
    d.decode(&raw(&[br#"{"seq": 1}"#]));
    let out = d.decode(&raw(&[br#"{"seq": 9007199254740993}"#, br#"{"seq": 2}"#]));
    let b = out.batch.unwrap();
    let seq = b.column_by_name("seq").unwrap().as_primitive::<Int64Type>();
    assert_eq!(seq.values(), &[9_007_199_254_740_993, 2]);
}
