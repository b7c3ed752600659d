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

/// A fleet publishing as fast as Mosquitto takes it, with ingest's window small (8 messages to
/// Kafka at once, so it holds at most 16 windows before it stops reading): acknowledgements
/// pile up faster than they can be handed to the MQTT client. Ingest must never wait for
/// room there while it is not reading — that deadlocked it at 20 000 msg/s — and every
/// message arrives.
#[test]
fn a_full_ingest_backlog_never_stalls_acknowledgements() {
    let setup = Setup::new();
    let port = free_port();
    let _mosquitto = start_mosquitto(setup.dir.path(), port);
    let broker = format!("127.0.0.1:{port}");
    let extra = format!(
        "[mqtt]\nbroker = \"{broker}\"\nclient_id = \"sluice-backlog-test\"\n\
         [ingest]\nmax_inflight = 8\n{ALL_TO_PARQUET}"
    );
    let http = format!("127.0.0.1:{}", free_port());
    let config = setup.write_config("sluice.toml", &http, &extra);
    let sluice = Sluice::start(&config, &[], Some(http.clone()));

    let (devices, per_device) = (50, 200);
    publish_fleet(sluice_loadtest::fleet::FleetConfig {
        broker,
        devices,
        messages_per_device: per_device,
        ..Default::default()
    });
    let total = devices as u64 * per_device;
    let produced = || {
        let text = http_get(&http, "/metrics").map(|r| r.1).unwrap_or_default();
        metric_value(&text, "sluice_ingest_produced_total", &[]).unwrap_or(0.0) as u64
    };
    wait_until(
        "every message produced to Kafka",
        Duration::from_secs(90),
        || produced() >= total,
    );
    let root = setup.parquet_root();
    wait_until("all rows in parquet", Duration::from_secs(60), || {
        rule_rows(&root, "all") >= total
    });
    sluice.stop();
    let (missing, _) = compare(
        &device_seqs(&root, "all"),
        &expected(devices, per_device, |_| true),
    );
    assert!(missing.is_empty(), "{} missing", missing.len());
}
