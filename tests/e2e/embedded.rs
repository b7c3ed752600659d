//! The spine end to end on the embedded brokers: 10 000 QoS1 messages over MQTT, two rules,
//! and every (device, seq) read back from the right rule's Parquet files.

use crate::common::*;
use std::time::Duration;

const RULES: &str = r#"
[[rules]]
name = "even"
sql = "SELECT device, seq, temperature FROM 'devices/+/telemetry' WHERE seq % 2 = 0"
actions = ["lake"]

[[rules]]
name = "odd"
sql = "SELECT device_id() AS device, seq, ts FROM telemetry WHERE seq % 2 = 1"
actions = ["lake"]

[sinks.lake]
type = "parquet"
path = "parquet"
"#;

#[test]
fn ten_thousand_messages_land_in_the_right_rule_files() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let config = setup.write_config("sluice.toml", &http, RULES);
    let sluice = Sluice::start(&config, &[], Some(http.clone()));

    let (devices, per_device) = (100, 100);
    publish_fleet(sluice_loadtest::fleet::FleetConfig {
        broker: setup.mqtt.clone(),
        devices,
        messages_per_device: per_device,
        ..Default::default()
    });
    let root = setup.parquet_root();
    let half = (devices as u64 * per_device) / 2;
    wait_until("all rows in parquet", Duration::from_secs(120), || {
        rule_rows(&root, "even") >= half && rule_rows(&root, "odd") >= half
    });

    let (_, metrics) = http_get(&http, "/metrics").expect("metrics endpoint");
    assert!(metrics.contains("sluice_rule_rows_total"), "{metrics}");
    assert!(metrics.contains("sluice_files_written_total"), "{metrics}");
    sluice.stop();

    for (rule, parity) in [("even", 0), ("odd", 1)] {
        let found = device_seqs(&root, rule);
        let want = expected(devices, per_device, |s| s % 2 == parity);
        let (missing, duplicates) = compare(&found, &want);
        assert!(
            missing.is_empty(),
            "rule {rule}: {} missing, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        assert_eq!(
            found.len(),
            want.len(),
            "rule {rule}: rows of the other parity leaked in"
        );
        println!("rule {rule}: {} rows, {duplicates} duplicates", found.len());
    }
}
