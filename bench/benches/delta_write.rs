//! The Delta sink against the Parquet sink: one rule's output (4096 rows, all columns) written
//! by each, with a checkpoint every 16 batches (Parquet: footer, fsync, ledger, rename; Delta:
//! files finished, the log read, the fence, one commit). Same rows, same zstd, same run.
//! Prints the Delta/Parquet ratio of rows per second (issue #27's goal: ≥ 0.8).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_bench::{all_columns_output, delta_sink, parquet_sink, payload_bytes, shifted};
use sluice_config::Compression;
use sluice_sinks::Sink;
use std::time::{Duration, Instant};

const ROWS: usize = 4096;
const BATCHES_PER_CHECKPOINT: u64 = 16;

/// Writes batches into `sink` (new offsets each time: both sinks skip records already in),
/// checkpointing every 16; returns the time it took.
fn run(
    sink: &mut dyn Sink,
    output: &sluice_sinks::RuleOutput,
    from: &mut u64,
    iters: u64,
) -> Duration {
    let started = Instant::now();
    for _ in 0..iters {
        sink.write("all", &shifted(output, (*from * ROWS as u64) as i64))
            .expect("write");
        *from += 1;
        if *from % BATCHES_PER_CHECKPOINT == 0 {
            sink.checkpoint().expect("checkpoint");
        }
    }
    started.elapsed()
}

fn write(c: &mut Criterion) {
    let (raw, output) = all_columns_output(ROWS);
    let mut group = c.benchmark_group("table_write_4096");
    group.throughput(Throughput::ElementsAndBytes {
        elements: ROWS as u64,
        bytes: payload_bytes(&raw),
    });
    let dirs = [
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    ];
    let mut sinks: Vec<(&str, Box<dyn Sink>)> = vec![
        (
            "parquet_files",
            Box::new(parquet_sink(dirs[0].path(), Compression::Zstd)),
        ),
        (
            "delta_table",
            Box::new(delta_sink(dirs[1].path(), Compression::Zstd)),
        ),
    ];
    let mut per_row = vec![];
    for (name, sink) in sinks.iter_mut() {
        sink.assigned(&[0, 1, 2, 3]).expect("assign");
        let mut from = 0u64;
        let (mut time, mut rows) = (Duration::ZERO, 0u64);
        group.bench_function(BenchmarkId::from_parameter(*name), |b| {
            b.iter_custom(|iters| {
                let took = run(sink.as_mut(), &output, &mut from, iters);
                time += took;
                rows += iters * ROWS as u64;
                took
            })
        });
        sink.checkpoint().expect("checkpoint");
        per_row.push(time.as_secs_f64() / rows.max(1) as f64);
    }
    group.finish();
    println!(
        "delta_table / parquet_files rows per second: {:.2}",
        per_row[0] / per_row[1]
    );
}

criterion_group!(benches, write);
criterion_main!(benches);
