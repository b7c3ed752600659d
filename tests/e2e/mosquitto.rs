//! The external-broker path: Mosquitto (Debian's package) as the MQTT broker, the embedded
//! Kafka broker behind it. Same check as the embedded test, with 1 000 messages.

use crate::common::*;
use std::time::Duration;

fn start_mosquitto(dir: &std::path::Path, port: u16) -> mosquitto::Mosquitto {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_inflight_messages 1000\nmax_queued_messages 100000\n"
        ),
    )
    .unwrap();
    mosquitto::spawn(&conf, &[port])
}

#[test]
fn messages_through_mosquitto_land_in_parquet() {
    let setup = Setup::new();
    let port = free_port();
    let _mosquitto = start_mosquitto(setup.dir.path(), port);
    let broker = format!("127.0.0.1:{port}");
    let extra = format!(
        r#"
[mqtt]
broker = "{broker}"
client_id = "sluice-mosquitto-test"

{ALL_TO_PARQUET}"#
    );
    let http = format!("127.0.0.1:{}", free_port());
    let config = setup.write_config("sluice.toml", &http, &extra);
    let sluice = Sluice::start(&config, &[], Some(http));

    let (devices, per_device) = (20, 50);
    publish_fleet(sluice_loadtest::fleet::FleetConfig {
        broker,
        devices,
        messages_per_device: per_device,
        ..Default::default()
    });
    let root = setup.parquet_root();
    let total = devices as u64 * per_device;
    wait_until("all rows in parquet", Duration::from_secs(60), || {
        rule_rows(&root, "all") >= total
    });
    sluice.stop();
    let found = device_seqs(&root, "all");
    let (missing, duplicates) = compare(&found, &expected(devices, per_device, |_| true));
    assert!(
        missing.is_empty(),
        "{} missing: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    println!("mosquitto: {} rows, {duplicates} duplicates", found.len());
}
