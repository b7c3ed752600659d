//! One router batch in memory: decode + one rule + Parquet (zstd) write, 4096 rows, no
//! brokers. Also decode alone in the same run, so the rule and sink cost reads as a ratio; and
//! the router's own batch step (`Step::run`: decode, route, sort into writes) followed by the
//! same sink write, so what the step adds over calling decode and the rule directly reads as
//! a ratio too.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_bench::{parquet_sink, payload_bytes, raw_batch};
use sluice_config::{Compression, RuleConfig};
use sluice_processors::decode::BatchDecoder;
use sluice_processors::rule::RuleSet;
use sluice_router::step::Step;
use sluice_sinks::Sink;

const ROWS: usize = 4096;

fn rule() -> RuleConfig {
    RuleConfig {
        name: "hot".into(),
        sql: "SELECT device_id() AS device, seq, temperature, ts FROM 'devices/+/telemetry' WHERE temperature > 50".into(),
        actions: vec!["lake".into()],
        ..Default::default()
    }
}

fn router_batch(c: &mut Criterion) {
    let raw = raw_batch(ROWS, 1000);
    let mut group = c.benchmark_group("router_batch_4096");
    group.throughput(Throughput::ElementsAndBytes {
        elements: ROWS as u64,
        bytes: payload_bytes(&raw),
    });
    println!(
        "payload bytes per row: {}",
        payload_bytes(&raw) / ROWS as u64
    );

    let mut decoder = BatchDecoder::new();
    group.bench_function("decode_only", |b| {
        b.iter(|| decoder.decode(&raw).batch.map(|b| b.num_rows()))
    });

    let dir = tempfile::tempdir().expect("temp dir");
    let mut rules = RuleSet::compile(&[rule()]).expect("rule compiles");
    let mut sink = parquet_sink(dir.path(), Compression::Zstd);
    let mut batches = 0u64;
    group.bench_function("decode_rule_parquet_zstd", |b| {
        b.iter(|| {
            let batch = decoder.decode(&raw).batch.expect("rows");
            for r in rules.evaluate(&batch) {
                if let Some(out) = r.output {
                    sink.write("hot", &out).expect("write");
                }
            }
            batches += 1;
            // Close files now and then, as checkpoints do, so file closing is in the cost.
            if batches % 64 == 0 {
                sink.checkpoint().expect("checkpoint");
            }
        })
    });
    sink.checkpoint().expect("checkpoint");

    let mut step = Step::new(
        BatchDecoder::new(),
        RuleSet::compile(&[rule()]).expect("rule"),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let mut sink = parquet_sink(dir.path(), Compression::Zstd);
    let mut batches = 0u64;
    group.bench_function("step_parquet_zstd", |b| {
        b.iter(|| {
            for w in step.run(&raw).writes {
                sink.write(&w.route.rule, &w.output).expect("write");
            }
            batches += 1;
            if batches % 64 == 0 {
                sink.checkpoint().expect("checkpoint");
            }
        })
    });
    sink.checkpoint().expect("checkpoint");
    group.finish();
}

criterion_group!(benches, router_batch);
criterion_main!(benches);
