//! What per-message isolation costs on the hot path: Sluice's decode of a clean batch (fast
//! path with its checks: strict types, finite numbers, field bounds, metadata columns) against
//! a bare arrow-json decode of the same bytes into the same schema, in the same run. And, for
//! scale, the checked path a batch takes when one message in a hundred carries a conflicting
//! value.

use arrow_json::reader::{infer_json_schema_from_iterator, ReaderBuilder};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_bench::{payload_bytes, raw_batch};
use sluice_processors::decode::{BatchDecoder, RawBatch};
use sluice_processors::record::TelemetryRecord;
use std::sync::Arc;

const ROWS: usize = 4096;

/// The bare baseline: arrow-json's tape decoder over the payloads, no checks.
fn bare_decode(schema: &arrow::datatypes::SchemaRef, raw: &RawBatch) -> usize {
    bare_decode_with(schema, raw, false)
}

/// [`bare_decode`], in strict mode (a field the schema lacks is an error) when `strict`.
fn bare_decode_with(schema: &arrow::datatypes::SchemaRef, raw: &RawBatch, strict: bool) -> usize {
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_strict_mode(strict)
        .with_batch_size(raw.len())
        .build_decoder()
        .expect("schema is supported");
    for i in 0..raw.len() {
        decoder.decode(raw.payload(i)).expect("clean JSON");
    }
    decoder.flush().ok().flatten().map_or(0, |b| b.num_rows())
}

/// `raw` with every hundredth reading's temperature sent as a word.
fn with_conflicts(raw: &RawBatch) -> RawBatch {
    let mut out = RawBatch::default();
    for i in 0..raw.len() {
        let payload = String::from_utf8_lossy(raw.payload(i)).into_owned();
        let payload = if i % 100 == 0 {
            payload.replacen("\"temperature\":", "\"temperature\":\"hot\",\"t\":", 1)
        } else {
            payload
        };
        let rec = TelemetryRecord {
            device_id: raw.device_id(i),
            mqtt_topic: raw.topic(i),
            received_ms: raw.received_ms(i),
            redelivered: false,
            payload: payload.as_bytes(),
        };
        out.push(&rec, raw.partition(i), raw.offset(i));
    }
    out
}

fn isolation(c: &mut Criterion) {
    let raw = raw_batch(ROWS, 1000);
    let values: Vec<serde_json::Value> = (0..raw.len())
        .map(|i| serde_json::from_slice(raw.payload(i)).expect("clean JSON"))
        .collect();
    let schema = Arc::new(
        infer_json_schema_from_iterator(values.iter().map(Ok::<_, arrow::error::ArrowError>))
            .expect("inferable"),
    );
    let mut decoder = BatchDecoder::new();
    decoder.decode(&raw); // settle the schema, as in a running router
    let mixed = with_conflicts(&raw);
    decoder.decode(&mixed); // its extra field joins once

    let mut group = c.benchmark_group("decode_isolation");
    group.throughput(Throughput::ElementsAndBytes {
        elements: ROWS as u64,
        bytes: payload_bytes(&raw),
    });
    group.bench_with_input(BenchmarkId::new("bare_arrow_json", ROWS), &raw, |b, raw| {
        b.iter(|| bare_decode(&schema, raw))
    });
    // Where the clean batch's extra time goes: the strict schema check, and reading integers
    // as floats (the fast path's exactness check: `decode/exact.rs`).
    let float_schema = sluice_processors::decode::exact::as_float_schema(&schema);
    group.bench_with_input(BenchmarkId::new("bare_strict", ROWS), &raw, |b, raw| {
        b.iter(|| bare_decode_with(&schema, raw, true))
    });
    group.bench_with_input(
        BenchmarkId::new("bare_ints_as_floats", ROWS),
        &raw,
        |b, raw| b.iter(|| bare_decode_with(&float_schema, raw, true)),
    );
    group.bench_with_input(BenchmarkId::new("sluice_clean", ROWS), &raw, |b, raw| {
        b.iter(|| decoder.decode(raw).batch.map(|b| b.num_rows()))
    });
    group.bench_with_input(
        BenchmarkId::new("sluice_1pct_conflicts", ROWS),
        &mixed,
        |b, raw| b.iter(|| decoder.decode(raw).batch.map(|b| b.num_rows())),
    );
    group.finish();
}

criterion_group!(benches, isolation);
criterion_main!(benches);
