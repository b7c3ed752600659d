//! Sluice's capacity tools: shared data generators for the criterion benchmarks (one concern
//! per file in `benches/`), and [`loadtest`], the load generator behind `sluice loadtest`. Telemetry looks like a real fleet's: thousands of devices, ms timestamps,
//! drifting readings, a status string and a nested object, ~200 bytes of JSON each.

pub mod loadtest;

use sluice_processors::decode::RawBatch;
use sluice_processors::record::TelemetryRecord;
use sluice_processors::stats::Stats;
use sluice_sinks::parquet::ParquetSink;
use std::sync::Arc;

/// Base event time: 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600_000;

/// One reading of `device` as JSON.
pub fn reading(device: u32, seq: u64) -> String {
    let drift = ((seq * 31 + u64::from(device) * 17) % 1000) as f64 / 10.0;
    format!(
        r#"{{"device":"dev-{device:05}","seq":{seq},"ts":{ts},"temperature":{t:.2},"humidity":{h},"status":"{s}","battery":{{"level":{b},"charging":{c}}}}}"#,
        ts = T0 + seq as i64 * 1000,
        t = 15.0 + drift,
        h = 30 + seq % 50,
        s = if seq % 97 == 0 { "warn" } else { "ok" },
        b = 100 - seq % 100,
        c = seq % 7 == 0,
    )
}

/// `rows` readings spread over `devices` devices, as the router gathers them from Kafka.
pub fn raw_batch(rows: usize, devices: u32) -> RawBatch {
    let mut raw = RawBatch::default();
    for i in 0..rows {
        let device = (i as u32) % devices.max(1);
        let seq = (i as u64) / u64::from(devices.max(1));
        let payload = reading(device, seq);
        let id = format!("dev-{device:05}");
        let topic = format!("devices/{id}/telemetry");
        let rec = TelemetryRecord {
            device_id: &id,
            mqtt_topic: &topic,
            received_ms: T0 + i as i64,
            payload: payload.as_bytes(),
        };
        raw.push(&rec, (device % 4) as i32, i as i64);
    }
    raw
}

/// Total payload bytes of a raw batch (for byte throughput).
pub fn payload_bytes(raw: &RawBatch) -> u64 {
    (0..raw.len()).map(|i| raw.payload(i).len() as u64).sum()
}

/// A Parquet sink named `lake` writing under `dir` with `compression`.
pub fn parquet_sink(dir: &std::path::Path, compression: sluice_config::Compression) -> ParquetSink {
    let config = sluice_config::ParquetSinkConfig {
        compression,
        ..Default::default()
    };
    // A temp dir the bench just created: creating the sink there cannot fail but for a full disk.
    ParquetSink::new(
        "lake",
        dir.to_path_buf(),
        config,
        Arc::new(Stats::default()),
    )
    .expect("parquet sink")
}
