//! At-least-once across a crash: the router is SIGKILLed mid-stream and restarted; after it
//! catches up no (device, seq) is missing. Duplicates are allowed and reported.

use crate::common::*;
use std::time::Duration;

#[test]
fn killed_router_resumes_without_losing_messages() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let config = setup.write_config("sluice.toml", &http, ALL_TO_PARQUET);
    let router_config = setup.write_config("router.toml", "", ALL_TO_PARQUET);
    let brokers = Sluice::start(
        &config,
        &["--only", "brokers", "--only", "ingest"],
        Some(http),
    );
    let router = Sluice::start(&router_config, &["--only", "router"], None);

    let (devices, per_device) = (50, 200);
    let publisher = publish_fleet_in_background(setup.mqtt.clone(), devices, per_device, 2_000);
    let root = setup.parquet_root();
    wait_until(
        "the router has written some rows",
        Duration::from_secs(120),
        || rule_rows(&root, "all") > 0,
    );
    let publishing = !publisher.is_finished();
    router.kill();
    let before_restart = rule_rows(&root, "all");
    let total = devices as u64 * per_device;
    // The kill must land mid-stream, or this test shows nothing about a crash.
    assert!(publishing, "the fleet had finished before the kill");
    assert!(
        before_restart < total,
        "the router had written everything ({before_restart}) before the kill"
    );
    let router = Sluice::start(&router_config, &["--only", "router"], None);
    publisher.join().unwrap();

    wait_until(
        "router caught up after restart",
        Duration::from_secs(180),
        || rule_rows(&root, "all") >= total,
    );
    router.stop();
    brokers.stop();

    let found = device_seqs(&root, "all");
    let (missing, duplicates) = compare(&found, &expected(devices, per_device, |_| true));
    println!("crash test: {before_restart} rows before the kill, {} distinct after, {duplicates} duplicates", found.len());
    assert!(
        missing.is_empty(),
        "{} missing after the crash: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}
