use super::*;
use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, Int64Type};

fn raw(payloads: &[&[u8]]) -> RawBatch {
    let mut raw = RawBatch::default();
    for (i, p) in payloads.iter().enumerate() {
        let rec = TelemetryRecord {
            device_id: "d1",
            mqtt_topic: "devices/d1/telemetry",
            received_ms: 1_000 + i as i64,
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
    let checked = d.decode_checked(&same).batch.unwrap();
    assert_eq!(fast, checked);
    // Two objects in one record must not pass as two rows.
    assert!(d.decode_fast(&raw(&[br#"{"t": 1}{"t": 2}"#])).is_none());
    assert!(d.decode_fast(&raw(&[br#"{"t": "#, br#"1}"#])).is_none());
    assert!(d.decode_fast(&raw(&[br#"{"t": "hot"}"#])).is_none());
    assert!(d.decode_fast(&raw(&[br#"{"new": 1}"#])).is_none());
}
