//! JSON → Arrow decode at several batch sizes: why the router never decodes one message at a
//! time. Throughput in rows (elements) and JSON payload bytes per second.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_bench::{payload_bytes, raw_batch};
use sluice_processors::decode::BatchDecoder;

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for size in [1usize, 64, 1024, 4096] {
        let raw = raw_batch(size, 1000);
        let mut decoder = BatchDecoder::new();
        decoder.decode(&raw); // settle the schema, as in a running router
        group.throughput(Throughput::ElementsAndBytes {
            elements: size as u64,
            bytes: payload_bytes(&raw),
        });
        group.bench_with_input(BenchmarkId::from_parameter(size), &raw, |b, raw| {
            b.iter(|| decoder.decode(raw).batch.map(|b| b.num_rows()))
        });
    }
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
