//! Parquet in an object store: a router writes into a bucket of a real S3-compatible server
//! (s3s-fs) while a fleet publishes, is `kill -9`ed mid-stream (uploads and checkpoints in
//! flight) and restarted, or the server itself is gone for a minute mid-stream; pyarrow's S3
//! file system then reads every (device, seq) exactly once, and nothing is left in the
//! staging area.

use crate::common::*;
use std::time::Duration;

#[test]
fn parquet_in_a_bucket_exactly_once_across_a_router_kill() {
    let setup = Setup::new();
    let s3 = s3::spawn(setup.dir.path(), &["lake"]);
    let rules = format!(
        "[[rules]]\nname = \"all\"\nsql = \"SELECT device, seq FROM telemetry\"\n\
         actions = [\"lake\"]\n{}",
        s3.parquet_sink("lake", "lake", "fleet/telemetry")
    );
    let http = format!("127.0.0.1:{}", free_port());
    let brokers_config = setup.write_config("sluice.toml", &http, &rules);
    let router_config = setup.write_config("router.toml", "", &rules);
    let env = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let brokers = Sluice::start(
        &brokers_config,
        &["--only", "brokers", "--only", "ingest"],
        Some(http),
    );
    let router = Sluice::start_with_env(&router_config, &["--only", "router"], None, &env);

    let (devices, per_device) = (40, 250);
    let total = devices as u64 * per_device;
    let publisher = publish_fleet_in_background(setup.mqtt.clone(), devices, per_device, 2_000);
    let published = || s3.keys("lake", "fleet/telemetry/rule=all").len();
    wait_until(
        "the router has published files to the bucket",
        Duration::from_secs(120),
        || published() > 0,
    );
    assert!(
        !publisher.is_finished(),
        "the fleet had finished before the kill"
    );
    router.kill();
    let files_at_kill = published();
    let router = Sluice::start_with_env(&router_config, &["--only", "router"], None, &env);
    publisher.join().unwrap();
    wait_until(
        "every message read back from the bucket",
        Duration::from_secs(180),
        || s3.device_seqs("lake", "fleet/telemetry", "all").len() as u64 >= total,
    );
    router.stop();
    brokers.stop();

    let found = s3.device_seqs("lake", "fleet/telemetry", "all");
    let (missing, duplicates) = compare(&found, &expected(devices, per_device, |_| true));
    let staged = s3.keys("lake", "fleet/telemetry/_sluice/staging");
    println!(
        "object store: {files_at_kill} objects at the kill, {} after; {} rows read back with \
         pyarrow, {} missing, {duplicates} duplicates, {} staged objects left",
        published(),
        found.values().sum::<u32>(),
        missing.len(),
        staged.len()
    );
    assert!(
        missing.is_empty(),
        "missing: {:?}",
        &missing[..missing.len().min(5)]
    );
    assert_eq!(duplicates, 0, "rows written twice");
    assert!(staged.is_empty(), "staged objects left behind: {staged:?}");
    let ledgers = s3.keys("lake", "fleet/telemetry/_sluice/ledger");
    assert!(!ledgers.is_empty(), "the ledger lives in the bucket too");
}

#[test]
fn an_object_store_outage_of_a_minute_loses_nothing_and_writes_nothing_twice() {
    let setup = Setup::new();
    let mut s3 = s3::spawn(setup.dir.path(), &["lake"]);
    let rules = format!(
        "[[rules]]\nname = \"all\"\nsql = \"SELECT device, seq FROM telemetry\"\n\
         actions = [\"lake\"]\n{}",
        s3.parquet_sink("lake", "lake", "fleet/telemetry")
    );
    let http = format!("127.0.0.1:{}", free_port());
    let router_http = format!("127.0.0.1:{}", free_port());
    let brokers_config = setup.write_config("sluice.toml", &http, &rules);
    let router_config = setup.write_config("router.toml", &router_http, &rules);
    let env = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let brokers = Sluice::start(
        &brokers_config,
        &["--only", "brokers", "--only", "ingest"],
        Some(http),
    );
    let router = Sluice::start_with_env(
        &router_config,
        &["--only", "router"],
        Some(router_http),
        &env,
    );

    // 16 000 readings at 200/s: the stream goes on through the whole outage.
    let (devices, per_device) = (40, 400);
    let total = devices as u64 * per_device;
    let publisher = publish_fleet_in_background(setup.mqtt.clone(), devices, per_device, 200);
    let published = || s3.keys("lake", "fleet/telemetry/rule=all").len();
    wait_until(
        "the router has published files to the bucket",
        Duration::from_secs(120),
        || published() > 0,
    );
    s3.stop();
    std::thread::sleep(Duration::from_secs(60)); // the outage itself, not a wait for a result
    assert!(
        !publisher.is_finished(),
        "the fleet kept publishing through the outage"
    );
    s3.restart();
    let back = std::time::Instant::now();
    publisher.join().unwrap();
    wait_until(
        "every message read back from the bucket after the outage",
        Duration::from_secs(180),
        || s3.device_seqs("lake", "fleet/telemetry", "all").len() as u64 >= total,
    );
    let caught_up = back.elapsed();
    router.stop();
    brokers.stop();

    let found = s3.device_seqs("lake", "fleet/telemetry", "all");
    let (missing, duplicates) = compare(&found, &expected(devices, per_device, |_| true));
    let staged = s3.keys("lake", "fleet/telemetry/_sluice/staging");
    println!(
        "object store outage: all {} rows in the bucket {:.0} s after the server came back \
         (the stream ended ~20 s after it), {} missing, {duplicates} duplicates, {} staged left",
        found.values().sum::<u32>(),
        caught_up.as_secs_f64(),
        missing.len(),
        staged.len()
    );
    assert!(
        missing.is_empty(),
        "missing: {:?}",
        &missing[..missing.len().min(5)]
    );
    assert_eq!(duplicates, 0, "rows written twice");
    assert!(staged.is_empty(), "staged objects left behind: {staged:?}");
}
