//! MQTT 5 at the gateway, from a client that is not Sluice's (paho-mqtt from PyPI): the same
//! guarantees as 3.1.1, and the reason codes MQTT 5 adds.

use super::hostile::provision;
use super::*;
use std::process::Command;

#[test]
fn an_mqtt5_device_is_served_and_told_why_a_publish_was_refused() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let config = setup.write_config("sluice.toml", &http, "[gateway]\ndevice_auth = true\n");
    let door = Sluice::start(
        &config,
        &["--only", "brokers", "--only", "ingest"],
        Some(http.clone()),
    );
    let secret = provision(&http, "dev-5");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/gateway/mqtt5.py");
    let out = Command::new("python3")
        .args([script, &setup.mqtt, "dev-5", &secret])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "paho-mqtt publisher failed (pip install paho-mqtt): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["connack"], 0, "{seen}");
    assert_eq!(
        seen["receive_max"], 1000,
        "embedded.mqtt_max_inflight: {seen}"
    );
    assert_eq!(
        seen["wrong_secret_connack"], 0x86,
        "bad user name or password: {seen}"
    );

    // Every publish acknowledged in order; the refused ones say why (MQTT 5 reason codes).
    let acks = seen["acks"].as_array().unwrap();
    let codes: Vec<i64> = acks.iter().map(|a| a[0].as_i64().unwrap_or(-1)).collect();
    assert_eq!(codes, [0, 0, 0x83, 0x87, 0, 0, 0, 0], "{seen}");
    let oversize = acks[2][1].as_str().unwrap_or("");
    assert!(oversize.starts_with("oversize: 200"), "{oversize}");
    assert!(
        acks[3][1].as_str().unwrap_or("").contains("dev-other"),
        "{seen}"
    );

    let raw = RawTopic::read(&setup.kafka, 6);
    assert_eq!(
        raw.by_device.get("dev-5"),
        Some(&(0..=5).collect::<Vec<_>>())
    );
    assert_eq!(
        raw.by_device.get("dev-other"),
        None,
        "never keyed as another device"
    );
    let dlq = read_topic(&setup.kafka, "telemetry.dlq", 2);
    assert_eq!(dlq.len(), 2, "the oversize and the spoofed publish");
    door.stop();
}
