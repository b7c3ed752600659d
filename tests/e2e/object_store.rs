//! Parquet in an object store: a router writes into a bucket of a real S3-compatible server
//! (s3s-fs) while a fleet publishes, is `kill -9`ed mid-stream (uploads and checkpoints in
//! flight) and restarted, or the server itself is gone for a minute mid-stream; pyarrow's S3
//! file system then reads every (device, seq) exactly once, and nothing is left in the
//! staging area.

use crate::common::*;
use std::path::PathBuf;
use std::time::Duration;

const PREFIX: &str = "fleet/telemetry";

/// Brokers and ingest in one process, the router (writing to the bucket) in another.
struct Lake {
    setup: Setup,
    s3: s3::S3Server,
    brokers: Option<Sluice>,
    router_config: PathBuf,
}

impl Lake {
    fn start() -> Self {
        let setup = Setup::new();
        let s3 = s3::spawn(setup.dir.path(), &["lake"]);
        let rules = format!(
            "[[rules]]\nname = \"all\"\nsql = \"SELECT device, seq FROM telemetry\"\n\
             actions = [\"lake\"]\n{}",
            s3.parquet_sink("lake", "lake", PREFIX)
        );
        let http = format!("127.0.0.1:{}", free_port());
        let brokers_config = setup.write_config("sluice.toml", &http, &rules);
        let router_config = setup.write_config("router.toml", "", &rules);
        let brokers = Sluice::start(
            &brokers_config,
            &["--only", "brokers", "--only", "ingest"],
            Some(http),
        );
        Lake {
            setup,
            s3,
            brokers: Some(brokers),
            router_config,
        }
    }

    fn router(&self) -> Sluice {
        let env = self.s3.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Sluice::start_with_env(&self.router_config, &["--only", "router"], None, &env)
    }

    /// Graceful stops: the router, then brokers and ingest.
    fn stop(&mut self, router: Sluice) {
        router.stop();
        if let Some(brokers) = self.brokers.take() {
            brokers.stop();
        }
    }

    fn published(&self) -> usize {
        self.s3.keys("lake", &format!("{PREFIX}/rule=all")).len()
    }

    fn wait_for_first_files(&self) {
        wait_until(
            "the router has published files to the bucket",
            Duration::from_secs(120),
            || self.published() > 0,
        );
    }

    fn wait_for_every_row(&self, total: u64) {
        wait_until(
            "every message read back from the bucket",
            Duration::from_secs(180),
            || self.s3.device_seqs("lake", PREFIX, "all").len() as u64 >= total,
        );
    }

    /// Every (device, seq) once, read back with pyarrow, and nothing left staged.
    fn assert_exactly_once(&self, devices: usize, per_device: u64, what: &str) {
        let found = self.s3.device_seqs("lake", PREFIX, "all");
        let (missing, duplicates) = compare(&found, &expected(devices, per_device, |_| true));
        let staged = self.s3.keys("lake", &format!("{PREFIX}/_sluice/staging"));
        println!(
            "{what}: {} objects, {} rows read back with pyarrow, {} missing, {duplicates} \
             duplicates, {} staged objects left",
            self.published(),
            found.values().sum::<u32>(),
            missing.len(),
            staged.len()
        );
        let first = &missing[..missing.len().min(5)];
        assert!(missing.is_empty(), "missing: {first:?}");
        assert_eq!(duplicates, 0, "rows written twice");
        assert!(staged.is_empty(), "staged objects left behind: {staged:?}");
    }
}

#[test]
fn parquet_in_a_bucket_exactly_once_across_a_router_kill() {
    let mut lake = Lake::start();
    let router = lake.router();
    let (devices, per_device) = (40, 250);
    let mqtt = lake.setup.mqtt.clone();
    let publisher = publish_fleet_in_background(mqtt, devices, per_device, 2_000);
    lake.wait_for_first_files();
    assert!(
        !publisher.is_finished(),
        "the fleet had finished before the kill"
    );
    router.kill();
    println!("object store: {} objects at the kill", lake.published());
    let router = lake.router();
    publisher.join().unwrap();
    lake.wait_for_every_row(devices as u64 * per_device);
    lake.stop(router);
    lake.assert_exactly_once(devices, per_device, "object store, router killed");
    let ledgers = lake.s3.keys("lake", &format!("{PREFIX}/_sluice/ledger"));
    assert!(!ledgers.is_empty(), "the ledger lives in the bucket too");
}

#[test]
fn an_object_store_outage_of_a_minute_loses_nothing_and_writes_nothing_twice() {
    let mut lake = Lake::start();
    let router = lake.router();
    // 16 000 readings at 200/s: the stream goes on through the whole outage.
    let (devices, per_device) = (40, 400);
    let mqtt = lake.setup.mqtt.clone();
    let publisher = publish_fleet_in_background(mqtt, devices, per_device, 200);
    lake.wait_for_first_files();
    lake.s3.stop();
    std::thread::sleep(Duration::from_secs(60)); // the outage itself, not a wait for a result
    assert!(
        !publisher.is_finished(),
        "the fleet kept publishing through the outage"
    );
    lake.s3.restart();
    let back = std::time::Instant::now();
    publisher.join().unwrap();
    lake.wait_for_every_row(devices as u64 * per_device);
    println!(
        "object store outage: every row in the bucket {:.0} s after the server came back (the \
         stream ended ~20 s after it)",
        back.elapsed().as_secs_f64()
    );
    lake.stop(router);
    lake.assert_exactly_once(devices, per_device, "object store outage");
}
