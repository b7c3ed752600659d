//! Binary payloads through the decoder: Protobuf and CBOR give the columns JSON gives, and a
//! payload that does not decode is a reject of its own.

use super::*;
use crate::decode::formats::PayloadFormats;
use proptest::prelude::*;
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor, Value as Pb};
use sluice_config::{PayloadConfig, PayloadFormat};
use std::path::Path;

/// `tests/protos/reading.proto`, compiled as a config load compiles it.
fn reading_entry() -> PayloadConfig {
    let mut e = PayloadConfig::of("pb/+/reading", PayloadFormat::Protobuf);
    e.proto = Some("reading.proto".into());
    e.message = Some("acme.v1.Reading".into());
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/protos");
    let problems = e.resolve(0, &base);
    assert!(problems.is_empty(), "{problems:?}");
    e
}

fn formats() -> PayloadFormats {
    PayloadFormats::of(&[
        reading_entry(),
        PayloadConfig::of("cbor/#", PayloadFormat::Cbor),
    ])
}

fn descriptor() -> MessageDescriptor {
    reading_entry().descriptor.unwrap()
}

fn reading(seq: i64, temperature: f64) -> Vec<u8> {
    let mut m = DynamicMessage::new(descriptor());
    m.set_field_by_name("temperature", Pb::F64(temperature));
    m.set_field_by_name("seq", Pb::I64(seq));
    m.set_field_by_name("status", Pb::EnumNumber(2));
    let mut loc = DynamicMessage::new(
        descriptor()
            .parent_pool()
            .get_message_by_name("acme.v1.Location")
            .unwrap(),
    );
    loc.set_field_by_name("lat", Pb::F64(52.5));
    m.set_field_by_name("loc", Pb::Message(loc));
    m.set_field_by_name("samples", Pb::List(vec![Pb::I32(3), Pb::I32(-4)]));
    m.set_field_by_name("uptime_us", Pb::U64(1 << 60));
    m.encode_to_vec()
}

fn batch_of(messages: &[(&str, Vec<u8>)]) -> RawBatch {
    let mut raw = RawBatch::default();
    for (i, (topic, payload)) in messages.iter().enumerate() {
        let rec = TelemetryRecord {
            device_id: "d1",
            mqtt_topic: topic,
            received_ms: 1_000,
            redelivered: false,
            payload,
        };
        raw.push(&rec, 0, i as i64);
    }
    raw
}

#[test]
fn protobuf_gives_the_columns_json_gives() {
    let big = (1i64 << 53) + 1; // not exact as a float
    let raw = batch_of(&[("pb/d1/reading", reading(big, 0.0))]);
    let out = BatchDecoder::new().with_formats(formats()).decode(&raw);
    assert!(out.rejects.is_empty(), "{:?}", out.rejects);
    let b = out.batch.unwrap();
    let col = |n: &str| {
        b.column_by_name(n)
            .unwrap_or_else(|| panic!("no {n}: {:?}", b.schema()))
    };
    assert_eq!(
        col("seq").as_primitive::<Int64Type>().value(0),
        big,
        "64-bit exact"
    );
    // A proto3 zero is a value, not a missing field.
    assert_eq!(
        col("temperature").as_primitive::<Float64Type>().value(0),
        0.0
    );
    assert!(col("temperature").is_valid(0));
    assert_eq!(col("status").as_string::<i32>().value(0), "LOW_BATTERY");
    assert_eq!(col("loc.lat").as_primitive::<Float64Type>().value(0), 52.5);
    assert_eq!(col("firmware").as_string::<i32>().value(0), "");
    let samples = col("samples");
    let list = samples.as_list::<i32>().value(0);
    assert_eq!(list.as_primitive::<Int64Type>().values(), &[3, -4]);
    // A uint64 is an Int64 column while it fits one (above i64::MAX a float, as in JSON).
    assert_eq!(
        col("uptime_us").as_primitive::<Int64Type>().value(0),
        1 << 60
    );
}

#[test]
fn a_payload_that_does_not_decode_is_its_own_reject() {
    let mut cbor = Vec::new();
    ciborium::into_writer(&serde_json::json!({"t": 21.5, "s": "ok"}), &mut cbor).unwrap();
    let mut not_a_map = Vec::new();
    ciborium::into_writer(&serde_json::json!([1, 2]), &mut not_a_map).unwrap();
    let raw = batch_of(&[
        ("pb/d1/reading", reading(1, 20.0)),
        ("pb/d1/reading", b"\xff\xff\xff".to_vec()),
        ("devices/d1/telemetry", br#"{"t": 19.0}"#.to_vec()),
        ("cbor/d1", cbor),
        ("cbor/d1", not_a_map),
        ("pb/d1/reading", reading(2, 21.0)),
    ]);
    let out = BatchDecoder::new().with_formats(formats()).decode(&raw);
    let rejected: Vec<(usize, &str)> = out
        .rejects
        .iter()
        .map(|r| (r.index, r.reason.as_str()))
        .collect();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert_eq!(rejected[0].0, 1);
    assert!(rejected[0]
        .1
        .starts_with("invalid Protobuf (acme.v1.Reading): "));
    assert_eq!(rejected[1], (4, "invalid CBOR: the payload is not a map"));
    for r in &out.rejects {
        let label = sluice_core::dead_letter::DlqReason::of(&r.reason);
        assert_ne!(
            label,
            sluice_core::dead_letter::DlqReason::Other,
            "{}",
            r.reason
        );
    }
    let b = out.batch.unwrap();
    let offsets: Vec<i64> = b
        .column_by_name(OFFSET)
        .unwrap()
        .as_primitive::<Int64Type>()
        .values()
        .to_vec();
    assert_eq!(offsets, [0, 2, 3, 5], "each row keeps its own record");
    let t = b.column_by_name("t").unwrap().as_primitive::<Float64Type>();
    assert_eq!(t.value(2), 21.5);
}

proptest! {
    /// Whatever bytes arrive on a binary topic: no panic, each record a row or a reject.
    #[test]
    fn arbitrary_bytes_on_binary_topics_never_panic(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..16),
        cbor in any::<bool>(),
    ) {
        let topic = if cbor { "cbor/d1" } else { "pb/d1/reading" };
        let messages: Vec<(&str, Vec<u8>)> = payloads.into_iter().map(|p| (topic, p)).collect();
        let raw = batch_of(&messages);
        let out = BatchDecoder::new().with_formats(formats()).decode(&raw);
        let rows = out.batch.map_or(0, |b| b.num_rows());
        prop_assert_eq!(rows + out.rejects.len(), raw.len());
    }

    /// Encode → decode: every reading comes back with its own values.
    #[test]
    fn protobuf_round_trips(seqs in proptest::collection::vec(any::<i64>(), 1..32)) {
        let messages: Vec<(&str, Vec<u8>)> =
            seqs.iter().map(|&s| ("pb/d1/reading", reading(s, s as f64 / 3.0))).collect();
        let out = BatchDecoder::new().with_formats(formats()).decode(&batch_of(&messages));
        prop_assert!(out.rejects.is_empty());
        let b = out.batch.unwrap();
        let got = b.column_by_name("seq").unwrap().as_primitive::<Int64Type>().values().to_vec();
        prop_assert_eq!(got, seqs);
    }
}
