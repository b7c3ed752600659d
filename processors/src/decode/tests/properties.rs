//! Property tests: whatever a device sends, decoding never panics, every record is a row or a
//! reject, the fast, split and checked paths agree, and a message's row does not depend on the rest
//! of its batch.

use super::*;
use proptest::prelude::*;
use serde_json::{json, Number};

/// Keys from a small alphabet so that messages share, collide and clash on types: dots,
/// reserved `_` names and the empty name included.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("t".to_string()),
        Just("s".to_string()),
        Just("loc".to_string()),
        Just("lat".to_string()),
        Just("loc.lat".to_string()),
        Just("_topic".to_string()),
        Just(String::new()),
        "[a-c]{1,2}",
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|u| json!(u)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        Just(json!(20.0)),
        Just(json!("21.5")),
        Just(json!("1e999")),
        Just(json!("NaN")),
        ".{0,6}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn object() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::btree_map(key(), value(), 0..5).prop_map(|m| {
        let map: Map<String, Value> = m.into_iter().collect();
        serde_json::to_vec(&Value::Object(map)).unwrap_or_default()
    })
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => object(),
        1 => prop::collection::vec(any::<u8>(), 0..40),
        1 => Just(b"1e999".to_vec()),
        1 => Just(br#"{"t": 1}{"t": 2}"#.to_vec()),
    ]
}

fn batch_of(payloads: &[Vec<u8>]) -> RawBatch {
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    raw(&refs)
}

fn small_limits() -> DecodeLimits {
    DecodeLimits {
        max_depth: 4,
        max_fields_per_message: 12,
        max_schema_fields: 40,
        field_ttl: None,
    }
}

/// Every record comes back exactly once: as a row (by its offset) or as a reject.
fn accounted(raw: &RawBatch, out: &Decoded) -> bool {
    let rows = out.batch.as_ref().map_or(0, RecordBatch::num_rows);
    rows + out.rejects.len() == raw.len()
}

/// The value of column `name` at `row` as JSON, NULLs left out; integers read as floats so
/// that a column widened by another message compares equal. NULL and a missing column are
/// both `None`, and a struct field another message added reads as absent: a rule reads all of
/// these as NULL.
fn cell(batch: &RecordBatch, name: &str, row: usize) -> Option<String> {
    let column = batch.column_by_name(name)?;
    if column.logical_nulls().is_some_and(|n| n.is_null(row)) {
        return None;
    }
    let column = arrow::compute::cast(column, &exact::as_float(column.data_type())).ok()?;
    let one = RecordBatch::try_from_iter([("x", column.slice(row, 1))]).ok()?;
    let mut buf = Vec::new();
    let mut writer = arrow_json::LineDelimitedWriter::new(&mut buf);
    writer.write(&one).ok()?;
    writer.finish().ok()?;
    let text = String::from_utf8(buf).ok()?;
    (text.trim() != "{}").then_some(text)
}

proptest! {
    // The isolation property skips messages that do not fit the schema alone (about half).
    #![proptest_config(ProptestConfig { max_global_rejects: 1_000_000, ..ProptestConfig::with_cases(256) })]

    #[test]
    fn arbitrary_bytes_never_panic(payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..8)) {
        let raw = batch_of(&payloads);
        let out = BatchDecoder::with_limits(small_limits()).decode(&raw);
        prop_assert!(accounted(&raw, &out));
    }

    #[test]
    fn arbitrary_json_is_a_row_or_a_reject(first in prop::collection::vec(payload(), 1..8), second in prop::collection::vec(payload(), 1..8)) {
        let mut d = BatchDecoder::with_limits(small_limits());
        for payloads in [&first, &second] {
            let raw = batch_of(payloads);
            let out = d.decode(&raw);
            prop_assert!(accounted(&raw, &out));
        }
    }

    #[test]
    fn fast_and_checked_paths_agree(warm in prop::collection::vec(payload(), 1..8), batch in prop::collection::vec(payload(), 1..8)) {
        let mut d = BatchDecoder::with_limits(small_limits());
        d.decode(&batch_of(&warm));
        // The batch itself, once its fields are known, is the likeliest to take the fast path.
        d.decode_checked(&batch_of(&batch), Instant::now());
        for payloads in [&batch, &warm] {
            let raw = batch_of(payloads);
            let fast = d.clone();
            if let Some(payload) = fast.decode_fast(&raw) {
                let all: Vec<usize> = (0..raw.len()).collect();
                let fast_batch = fast.attach_metadata(payload, &raw, &all).ok();
                let checked = d.clone().decode_checked(&raw, Instant::now());
                prop_assert!(checked.rejects.is_empty(), "fast path took a record the checked path rejects: {:?}", checked.rejects);
                prop_assert_eq!(fast_batch, checked.batch);
            }
        }
    }

    #[test]
    fn split_and_checked_paths_agree(warm in prop::collection::vec(payload(), 1..8), odd in prop::collection::vec(payload(), 1..3), at in 0usize..32) {
        let mut d = BatchDecoder::with_limits(small_limits());
        d.decode(&batch_of(&warm));
        // Mostly messages like the ones that set the schema, a few arbitrary ones among them:
        // the batches a split is for.
        let mut mixed: Vec<_> = warm.iter().cycle().take(warm.len() * 4).cloned().collect();
        for (k, o) in odd.iter().enumerate() {
            mixed.insert((at + 7 * k) % (mixed.len() + 1), o.clone());
        }
        let raw = batch_of(&mixed);
        let split = d.clone().decode_split(&raw, Instant::now());
        let checked = d.clone().decode_checked(&raw, Instant::now());
        prop_assert_eq!(split.rejects, checked.rejects);
        prop_assert_eq!(split.nulled, checked.nulled);
        prop_assert_eq!(split.batch, checked.batch);
    }

    #[test]
    fn a_conforming_message_reads_the_same_whatever_its_batch(warm in prop::collection::vec(object(), 1..6), message in object(), others in prop::collection::vec(payload(), 0..6)) {
        let mut d = BatchDecoder::with_limits(small_limits());
        d.decode(&batch_of(&warm));
        d.decode(&batch_of(std::slice::from_ref(&message)));
        let schema = d.schema().clone();
        let alone = d.clone().decode_checked(&batch_of(std::slice::from_ref(&message)), Instant::now());
        prop_assume!(alone.nulled == 0 && alone.rejects.is_empty());
        let Some(alone) = alone.batch else { return Ok(()) };
        let mut mixed = others.clone();
        mixed.insert(others.len() / 2, message.clone());
        let raw = batch_of(&mixed);
        let out = d.clone().decode(&raw);
        let at = others.len() / 2;
        prop_assert!(!out.rejects.iter().any(|r| r.index == at));
        let rejected_before = out.rejects.iter().filter(|r| r.index < at).count();
        let batch = out.batch.expect("the message is a row");
        let row = at - rejected_before;
        for field in schema.fields() {
            if field.name().starts_with('_') {
                continue;
            }
            prop_assert_eq!(cell(&alone, field.name(), 0), cell(&batch, field.name(), row), "field {}", field.name());
        }
    }
}
