//! Protobuf payloads end to end (#28): readings encoded by another implementation (Python's
//! protobuf, published with paho-mqtt over QoS 1) go through `sluice run` — gateway, Kafka,
//! router — to Parquet that DuckDB reads back: every (device, seq) once with its decoded
//! values, and each device's one bad payload in the dead-letter count, nothing else lost.

use crate::common::*;
use std::process::Command;
use std::time::Duration;

const DEVICES: usize = 4;
const PER_DEVICE: usize = 250;

#[test]
fn protobuf_readings_from_an_independent_encoder_reach_parquet_once_each() {
    let setup = Setup::new();
    let proto = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/protos/reading.proto");
    let extra = format!(
        "[[payloads]]\ntopics = \"trackers/+/reading\"\nformat = \"protobuf\"\n\
         proto = \"{proto}\"\nmessage = \"acme.v1.Reading\"\n\
         [[rules]]\nname = \"pb\"\n\
         sql = \"SELECT device_id() AS device, seq, temperature, status, loc.lat AS lat, \
                samples FROM 'trackers/+/reading'\"\nactions = [\"lake\"]\n\
         [sinks.lake]\ntype = \"parquet\"\n"
    );
    let http = format!("127.0.0.1:{}", free_port());
    let config = setup.write_config("sluice.toml", &http, &extra);
    let sluice = Sluice::start(&config, &[], Some(http.clone()));

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/payloads.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&setup.mqtt)
        .args([DEVICES.to_string(), PER_DEVICE.to_string()])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "publisher failed (pip install protobuf paho-mqtt): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = setup.parquet_root();
    let total = (DEVICES * PER_DEVICE) as u64;
    wait_until("every reading in Parquet", Duration::from_secs(60), || {
        rule_rows(&root, "pb") >= total
    });
    let dlq = |m: &str| metric_value(m, "sluice_dlq_total", &["reason=\"invalid Protobuf\""]);
    wait_until(
        "the bad payloads dead-lettered",
        Duration::from_secs(30),
        || http_get(&http, "/metrics").and_then(|(_, m)| dlq(&m)) == Some(DEVICES as f64),
    );
    sluice.stop();

    // DuckDB reads the files: one row per (device, seq), each with its own values.
    let glob = format!("{}/rule=pb/**/*.parquet", root.display());
    let query = format!(
        "SELECT count(*), count(DISTINCT (device, seq)), \
         sum(CASE WHEN temperature = (seq - 1099511627776) / 4 \
                   AND status = CASE WHEN seq % 2 = 0 THEN 'OK' ELSE 'LOW_BATTERY' END \
                   AND lat = 50 + CAST(split_part(device, '-', 2) AS INT) \
                   AND samples[1] = seq - 1099511627776 THEN 1 ELSE 0 END), \
         min(seq) FROM read_parquet('{glob}', hive_partitioning = false)"
    );
    let n = total.to_string();
    assert_eq!(
        duckdb_first_row(&query),
        [n.as_str(), n.as_str(), n.as_str(), "1099511627776"],
        "rows, distinct (device, seq), rows with their own values, smallest seq (exact int64)"
    );
}
