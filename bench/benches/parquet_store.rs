//! Parquet output to an object store against a local directory, same run, same rows: each
//! iteration writes 16 batches of one rule's output (4096 rows, all columns) and checkpoints
//! them (footer, staging, ledger, publish). The object store is a real S3-compatible server
//! process (`s3s-fs`, found through `SLUICE_S3S_FS` or `/var/tmp/sluice-tools/bin`; `.ci/run`
//! installs it) on loopback, so the ratio shows the cost of the S3 protocol's round trips
//! (upload, PUT of the ledger, copy and delete per file), not of a network.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_bench::{all_columns_output, payload_bytes, shifted};
use sluice_common::Stats;
use sluice_config::ParquetSinkConfig;
use sluice_sinks::parquet::store::{local::Directory, object::Bucket, Store};
use sluice_sinks::parquet::ParquetSink;
use sluice_sinks::Sink;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

const ROWS: usize = 4096;
const BATCHES: usize = 16;

/// The S3-compatible server, stopped when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn s3s_fs() -> Option<PathBuf> {
    std::env::var_os("SLUICE_S3S_FS")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/var/tmp/sluice-tools/bin/s3s-fs")))
        .filter(|p| p.exists())
}

/// Starts s3s-fs with a bucket `bench` and returns a store on it.
fn bucket(dir: &std::path::Path) -> Option<(Server, Box<dyn Store>)> {
    let binary = s3s_fs()?;
    let root = dir.join("s3");
    std::fs::create_dir_all(root.join("bench")).ok()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new(binary)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", "bench", "--secret-key", "bench-secret"])
        .arg(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let server = Server(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let options = [
        ("endpoint", format!("http://127.0.0.1:{port}")),
        ("allow_http", "true".into()),
        ("access_key_id", "bench".into()),
        ("secret_access_key", "bench-secret".into()),
        ("region", "us-east-1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let url = url::Url::parse("s3://bench/lake").ok()?;
    let store = Bucket::open(url, &options, dir.join("staging")).ok()?;
    Some((server, Box::new(store)))
}

fn write_and_checkpoint(c: &mut Criterion) {
    let (raw, output) = all_columns_output(ROWS);
    let mut group = c.benchmark_group("parquet_store_16x4096");
    group.sample_size(10);
    group.throughput(Throughput::ElementsAndBytes {
        elements: (ROWS * BATCHES) as u64,
        bytes: payload_bytes(&raw) * BATCHES as u64,
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let local = Directory::open(dir.path().join("local")).expect("local dir");
    let mut stores: Vec<(&str, Box<dyn Store>)> = vec![("local", Box::new(local))];
    let _server = match bucket(dir.path()) {
        Some((server, store)) => {
            stores.push(("s3", store));
            Some(server)
        }
        None => {
            println!("s3s-fs not found (SLUICE_S3S_FS): object store not measured");
            None
        }
    };
    for (name, store) in stores {
        let config = ParquetSinkConfig::default();
        let mut sink = ParquetSink::with_store("lake", store, config, Arc::new(Stats::default()));
        let mut n = 0i64;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                for _ in 0..BATCHES {
                    sink.write("all", &shifted(&output, n * ROWS as i64))
                        .expect("write");
                    n += 1;
                }
                sink.checkpoint().expect("checkpoint");
            })
        });
    }
    group.finish();
}

criterion_group!(benches, write_and_checkpoint);
criterion_main!(benches);
