//! Parquet write of one rule's output (4096 rows, all columns), zstd vs snappy, including the
//! file close (footer, fsync, rename) every 16 batches. Prints bytes per row of each codec.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_bench::{all_columns_output, parquet_sink, payload_bytes, shifted};
use sluice_config::Compression;
use sluice_sinks::Sink;

const ROWS: usize = 4096;

/// Bytes of every file under `root`.
fn dir_bytes(root: &std::path::Path) -> u64 {
    sluice_common::fs::files_under(root)
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum()
}

fn write(c: &mut Criterion) {
    let (raw, output) = all_columns_output(ROWS);
    let mut group = c.benchmark_group("parquet_write_4096");
    // Bytes are those of the JSON the rows came from, so every bench reads on one scale.
    group.throughput(Throughput::ElementsAndBytes {
        elements: ROWS as u64,
        bytes: payload_bytes(&raw),
    });
    for (name, compression) in [("zstd", Compression::Zstd), ("snappy", Compression::Snappy)] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut sink = parquet_sink(dir.path(), compression);
        let mut n = 0u64;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                // New offsets each time: the ledger skips records already written.
                sink.write("all", &shifted(&output, (n * ROWS as u64) as i64))
                    .expect("write");
                n += 1;
                if n % 16 == 0 {
                    sink.checkpoint().expect("close");
                }
            })
        });
        sink.checkpoint().expect("close");
        // One clean file of 16 batches for the size figure.
        let size_dir = tempfile::tempdir().expect("temp dir");
        let mut sized = parquet_sink(size_dir.path(), compression);
        for _ in 0..16 {
            sized.write("all", &output).expect("write");
        }
        sized.checkpoint().expect("close");
        println!(
            "{name}: {:.1} bytes/row",
            dir_bytes(size_dir.path()) as f64 / (16 * ROWS) as f64
        );
    }
    group.finish();
}

criterion_group!(benches, write);
criterion_main!(benches);
