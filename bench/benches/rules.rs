//! Rule evaluation alone: 1, 10 and 100 rules over one decoded 4096-row batch. Rules are
//! planned once (the first call); every iteration after that evaluates physical expressions.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_bench::{payload_bytes, raw_batch};
use sluice_config::RuleConfig;
use sluice_processors::decode::BatchDecoder;
use sluice_processors::rule::RuleSet;

const ROWS: usize = 4096;

/// A mix of the shapes data engineers write: thresholds, topic filters, string tests, CASE.
fn rules(n: usize) -> Vec<RuleConfig> {
    (0..n)
        .map(|i| {
            let sql = match i % 4 {
                0 => format!("SELECT device_id() AS device, temperature FROM telemetry WHERE temperature > {}", 20 + i % 60),
                1 => format!("SELECT seq, humidity FROM 'devices/+/telemetry' WHERE humidity < {}", 40 + i % 30),
                2 => "SELECT device, status FROM telemetry WHERE status = 'warn'".to_string(),
                _ => "SELECT device, CASE WHEN temperature > 90 THEN 'hot' ELSE 'ok' END AS level FROM telemetry".to_string(),
            };
            RuleConfig { name: format!("r{i}"), sql, actions: vec!["lake".into()], ..Default::default() }
        })
        .collect()
}

fn evaluate(c: &mut Criterion) {
    let raw = raw_batch(ROWS, 1000);
    let batch = BatchDecoder::new().decode(&raw).batch.expect("rows");
    let mut group = c.benchmark_group("rules_4096_rows");
    // Bytes are those of the JSON the rows came from, so every bench reads on one scale.
    group.throughput(Throughput::ElementsAndBytes {
        elements: ROWS as u64,
        bytes: payload_bytes(&raw),
    });
    for n in [1usize, 10, 100] {
        let mut set = RuleSet::compile(&rules(n)).expect("rules compile");
        set.evaluate(&batch); // plan once, as the first batch of a running router does
        group.bench_with_input(BenchmarkId::from_parameter(n), &batch, |b, batch| {
            b.iter(|| set.evaluate(batch).len())
        });
    }
    group.finish();
}

criterion_group!(benches, evaluate);
criterion_main!(benches);
