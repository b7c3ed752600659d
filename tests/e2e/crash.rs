//! Effectively-once Parquet across crashes and rebalances: two routers in one group write
//! into one output root while a fleet publishes; one is SIGKILLed mid-stream (its partitions
//! move to the other) and restarted (they move back). Afterwards every (device, seq) is in
//! Parquet exactly once.

use crate::common::*;
use std::time::Duration;

#[test]
fn killed_router_in_a_group_loses_nothing_and_writes_nothing_twice() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let config = setup.write_config("sluice.toml", &http, ALL_TO_PARQUET);
    let first_config = setup.write_config("router-a.toml", "", ALL_TO_PARQUET);
    let second_config = setup.write_config("router-b.toml", "", ALL_TO_PARQUET);
    let brokers = Sluice::start(
        &config,
        &["--only", "brokers", "--only", "ingest"],
        Some(http),
    );
    let first = Sluice::start(&first_config, &["--only", "router"], None);
    let second = Sluice::start(&second_config, &["--only", "router"], None);

    let (devices, per_device) = (50, 200);
    let publisher = publish_fleet_in_background(setup.mqtt.clone(), devices, per_device, 2_000);
    let root = setup.parquet_root();
    wait_until(
        "the routers have written some rows",
        Duration::from_secs(120),
        || rule_rows(&root, "all") > 0,
    );
    let publishing = !publisher.is_finished();
    first.kill();
    let before_restart = rule_rows(&root, "all");
    let total = devices as u64 * per_device;
    // The kill must land mid-stream, or this test shows nothing about a crash.
    assert!(publishing, "the fleet had finished before the kill");
    assert!(
        before_restart < total,
        "the routers had written everything ({before_restart}) before the kill"
    );
    // The survivor goes on alone for a while, then the dead router is back in the group.
    wait_until(
        "the survivor writes on after the kill",
        Duration::from_secs(60),
        || rule_rows(&root, "all") > before_restart,
    );
    let first = Sluice::start(&first_config, &["--only", "router"], None);
    publisher.join().unwrap();

    wait_until(
        "the group caught up after the crash",
        Duration::from_secs(180),
        || rule_rows(&root, "all") >= total,
    );
    first.stop();
    second.stop();
    brokers.stop();

    let found = device_seqs(&root, "all");
    let (missing, duplicates) = compare(&found, &expected(devices, per_device, |_| true));
    println!(
        "crash test: {before_restart} rows before the kill, {} distinct after, {duplicates} duplicates",
        found.len()
    );
    assert!(
        missing.is_empty(),
        "{} missing after the crash: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(duplicates, 0, "rows written twice after the crash");
    assert_eq!(rule_rows(&root, "all"), total);
}
