//! Shared data generators for the criterion benchmarks (one concern per file in `benches/`).
//! Telemetry is the demo fleet's reading (`sluice_loadtest::payload::reading`): thousands of
//! devices, ms timestamps, drifting readings, a status string and a nested object, ~200 bytes
//! of JSON each. The load generator is the `sluice-loadtest` crate.

use sluice_common::Stats;
use sluice_processors::decode::RawBatch;
use sluice_processors::record::TelemetryRecord;
use sluice_sinks::parquet::ParquetSink;
use std::sync::Arc;

/// Base event time: 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600_000;

/// One reading of device number `device` as JSON, one second after its previous one.
pub fn reading(device: u32, seq: u64) -> String {
    let name = sluice_loadtest::fleet::device_name(device as usize);
    sluice_loadtest::payload::reading(&name, seq, T0 + seq as i64 * 1000)
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
            redelivered: false,
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

/// `output` as if its records sat `shift` offsets later in Kafka: a sink that keeps a ledger
/// skips records it already wrote, so a bench writing one batch again and again moves it on.
pub fn shifted(output: &sluice_sinks::RuleOutput, shift: i64) -> sluice_sinks::RuleOutput {
    use arrow::array::{Array, AsArray, Int64Array};
    use arrow::datatypes::Int64Type;
    use sluice_processors::decode::OFFSET;
    let source = &output.source;
    let Some(i) = source.schema().index_of(OFFSET).ok() else {
        return output.clone();
    };
    let offsets = source.column(i).as_primitive::<Int64Type>();
    let moved: Int64Array = offsets.iter().map(|o| o.map(|o| o + shift)).collect();
    let mut columns = source.columns().to_vec();
    columns[i] = Arc::new(moved) as Arc<dyn Array>;
    sluice_sinks::RuleOutput {
        rows: output.rows.clone(),
        source: arrow::array::RecordBatch::try_new(source.schema(), columns).expect("same schema"),
    }
}

/// One rule's output selecting every column of `rows` readings (what a Parquet sink gets),
/// with the raw batch it came from.
pub fn all_columns_output(rows: usize) -> (RawBatch, sluice_sinks::RuleOutput) {
    use sluice_processors::decode::BatchDecoder;
    use sluice_processors::rule::RuleSet;
    let raw = raw_batch(rows, 1000);
    let batch = BatchDecoder::new().decode(&raw).batch.expect("rows");
    let rule = sluice_config::RuleConfig {
        name: "all".into(),
        sql: "SELECT * FROM telemetry".into(),
        ..Default::default()
    };
    let output = RuleSet::compile(&[rule])
        .expect("rule")
        .evaluate(&batch)
        .remove(0)
        .output
        .expect("rows");
    (raw, output)
}

/// A Delta sink (`format = "delta"`) named `lake` writing its tables under `dir`.
pub fn delta_sink(
    dir: &std::path::Path,
    compression: sluice_config::Compression,
) -> sluice_sinks::delta::DeltaSink {
    let config = sluice_config::ParquetSinkConfig {
        compression,
        format: sluice_config::OutputFormat::Delta,
        delta_checkpoint_interval: std::env::var("DELTA_CKPT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10),
        ..Default::default()
    };
    let location = sluice_config::ParquetLocation::Directory(dir.to_path_buf());
    sluice_sinks::delta::DeltaSink::new("lake", &location, config, Arc::new(Stats::default()))
        .expect("delta sink")
}
