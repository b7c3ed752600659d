//! The same readings decoded from Protobuf and from JSON, 4096 rows a batch (#28): the cost
//! of a binary payload against text. Protobuf is turned into the JSON object the decoder
//! reads (see `decode::formats`), so the ratio is what that step costs or saves. Readings are
//! `tests/protos/reading.proto`'s acme.v1.Reading; the JSON batch holds exactly the objects
//! the Protobuf batch becomes. The Sparkplug B row is the same readings as NDATA messages
//! (each field a metric sent by alias, named by an NBIRTH the decoder saw first): 7 rows per
//! message, so its throughput is in messages, like the others.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor, Value};
use sluice_config::{PayloadConfig, PayloadFormat};
use sluice_processors::decode::formats::{protobuf_to_json, PayloadFormats};
use sluice_processors::decode::sparkplug::proto::{Metric, Payload, Value as Sp};
use sluice_processors::decode::{BatchDecoder, RawBatch};
use sluice_processors::record::TelemetryRecord;

const ROWS: usize = 4096;

fn reading_entry() -> PayloadConfig {
    let mut e = PayloadConfig::of("trackers/+/reading", PayloadFormat::Protobuf);
    e.proto = Some("reading.proto".into());
    e.message = Some("acme.v1.Reading".into());
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/protos");
    assert!(e.resolve(0, &base).is_empty());
    e
}

fn reading(d: &MessageDescriptor, i: usize) -> Vec<u8> {
    let pool = d.parent_pool();
    let mut m = DynamicMessage::new(d.clone());
    m.set_field_by_name("temperature", Value::F64(20.0 + (i % 97) as f64 / 8.0));
    m.set_field_by_name("seq", Value::I64(i as i64));
    m.set_field_by_name("status", Value::EnumNumber(1 + (i % 2) as i32));
    let mut loc = DynamicMessage::new(pool.get_message_by_name("acme.v1.Location").unwrap());
    loc.set_field_by_name("lat", Value::F64(52.0 + (i % 13) as f64 / 100.0));
    loc.set_field_by_name("lon", Value::F64(13.0 + (i % 7) as f64 / 100.0));
    m.set_field_by_name("loc", Value::Message(loc));
    m.set_field_by_name("uptime_us", Value::U64(i as u64 * 1_000_000));
    m.set_field_by_name("firmware", Value::String("2.1.0".into()));
    m.encode_to_vec()
}

/// The reading's fields as Sparkplug metrics: (name, datatype, value).
fn sparkplug_metrics(i: usize) -> Vec<(&'static str, u32, Sp)> {
    vec![
        ("temperature", 10, Sp::Double(20.0 + (i % 97) as f64 / 8.0)),
        ("seq", 4, Sp::Long(i as u64)),
        (
            "status",
            12,
            Sp::String(["OK", "LOW_BATTERY"][i % 2].into()),
        ),
        ("lat", 10, Sp::Double(52.0 + (i % 13) as f64 / 100.0)),
        ("lon", 10, Sp::Double(13.0 + (i % 7) as f64 / 100.0)),
        ("uptime_us", 8, Sp::Long(i as u64 * 1_000_000)),
        ("firmware", 12, Sp::String("2.1.0".into())),
    ]
}

/// NDATA `i` of its edge node, every metric by alias.
fn sparkplug_data(i: usize) -> Vec<u8> {
    let metrics = sparkplug_metrics(i).into_iter().enumerate();
    Payload {
        seq: Some((i / 1000 + 1) as u64 % 256),
        timestamp: Some(1_700_000_000_000 + i as u64),
        metrics: metrics
            .map(|(a, (_, _, v))| Metric::aliased(a as u64, v))
            .collect(),
        ..Default::default()
    }
    .encode_to_vec()
}

/// The NBIRTH of every edge node, naming the aliases.
fn sparkplug_births() -> RawBatch {
    let birth = |_| {
        let metrics = sparkplug_metrics(0).into_iter().enumerate();
        Payload {
            seq: Some(0),
            metrics: metrics
                .map(|(a, (name, t, v))| Metric::named(name, a as u64, t, v))
                .collect(),
            ..Default::default()
        }
        .encode_to_vec()
    };
    batch_on(&(0..1000).map(birth).collect::<Vec<_>>(), "NBIRTH")
}

fn batch(payloads: &[Vec<u8>]) -> RawBatch {
    batch_on(payloads, "")
}

/// Readings of 1000 devices; with `sparkplug` (a message type) on Sparkplug topics.
fn batch_on(payloads: &[Vec<u8>], sparkplug: &str) -> RawBatch {
    let mut raw = RawBatch::default();
    for (i, p) in payloads.iter().enumerate() {
        let id = format!("t-{:04}", i % 1000);
        let topic = match sparkplug {
            "" => format!("trackers/{id}/reading"),
            kind => format!("spBv1.0/bench/{kind}/{id}"),
        };
        let rec = TelemetryRecord {
            device_id: &id,
            mqtt_topic: &topic,
            received_ms: i as i64,
            redelivered: false,
            payload: p,
        };
        raw.push(&rec, (i % 4) as i32, i as i64);
    }
    raw
}

fn decode_formats(c: &mut Criterion) {
    let entry = reading_entry();
    let d = entry.descriptor.clone().unwrap();
    let protobuf: Vec<Vec<u8>> = (0..ROWS).map(|i| reading(&d, i)).collect();
    let json: Vec<Vec<u8>> = protobuf
        .iter()
        .map(|p| {
            let mut out = Vec::new();
            protobuf_to_json(&d, p, &mut out).unwrap();
            out
        })
        .collect();
    let (pb_raw, json_raw) = (batch(&protobuf), batch(&json));
    let mut group = c.benchmark_group("decode_formats");
    group.throughput(Throughput::Elements(ROWS as u64));
    let mut json_decoder = BatchDecoder::new();
    json_decoder.decode(&json_raw); // settle the schema, as in a running router
    group.bench_function("json", |b| {
        b.iter(|| json_decoder.decode(&json_raw).batch.map(|b| b.num_rows()))
    });
    let mut pb_decoder = BatchDecoder::new().with_formats(PayloadFormats::of(&[entry]));
    pb_decoder.decode(&pb_raw);
    group.bench_function("protobuf", |b| {
        b.iter(|| pb_decoder.decode(&pb_raw).batch.map(|b| b.num_rows()))
    });
    let sparkplug = [PayloadConfig::of("spBv1.0/#", PayloadFormat::Sparkplug)];
    let mut sp_decoder = BatchDecoder::new().with_formats(PayloadFormats::of(&sparkplug));
    sp_decoder.decode(&sparkplug_births());
    let sp: Vec<Vec<u8>> = (0..ROWS).map(sparkplug_data).collect();
    let sp_raw = batch_on(&sp, "NDATA");
    let rows = sp_decoder.decode(&sp_raw).batch.map(|b| b.num_rows());
    assert_eq!(rows, Some(ROWS * 7), "every metric a row");
    group.bench_function("sparkplug_ndata_7_metrics", |b| {
        b.iter(|| sp_decoder.decode(&sp_raw).batch.map(|b| b.num_rows()))
    });
    group.finish();
}

criterion_group!(benches, decode_formats);
criterion_main!(benches);
