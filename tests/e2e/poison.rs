//! A message that makes the router fail (here a panic, as a bug would cause, through the
//! fault-injection hook) does not stop Sluice: the router is restarted with backoff, after
//! repeated failures on the same offsets the poison message is isolated by bisecting its batch
//! and sent to the dead-letter topic, and every other message arrives. The embedded brokers
//! and ingest keep running throughout.

use crate::common::*;
use std::time::Duration;

const MARKER: &str = "POISON-7f3a";

#[test]
fn a_poison_message_is_isolated_and_everything_else_arrives() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let config = setup.write_config("sluice.toml", &http, ALL_TO_PARQUET);
    let sluice = Sluice::start_with_env(
        &config,
        &[],
        Some(http.clone()),
        &[("SLUICE_FAULT_PANIC_ON_PAYLOAD", MARKER)],
    );

    let devices = 10;
    let per_device = 50u64;
    let mut messages = Vec::new();
    for seq in 0..per_device {
        for d in 0..devices {
            let name = sluice_loadtest::fleet::device_name(d);
            let body = sluice_loadtest::fleet::payload(&name, seq, sluice_common::now_ms());
            messages.push((format!("devices/{name}/telemetry"), body.into_bytes()));
        }
        if seq == per_device / 2 {
            let poison = format!(r#"{{"device":"poison","seq":1,"note":"{MARKER}"}}"#);
            messages.push(("devices/poison/telemetry".into(), poison.into_bytes()));
        }
    }
    publish_raw(&setup.mqtt, messages);

    let root = setup.parquet_root();
    let want = expected(devices, per_device, |_| true);
    wait_until(
        "every good reading in parquet",
        Duration::from_secs(180),
        || compare(&device_seqs(&root, "all"), &want).0.is_empty(),
    );
    let found = device_seqs(&root, "all");
    assert!(!found.contains_key(&("poison".to_string(), 1)));

    let dlq = read_topic(&setup.kafka, "telemetry.dlq", 1);
    assert_eq!(dlq.len(), 1);
    let (key, value, headers) = &dlq[0];
    assert_eq!(key, b"poison");
    assert!(
        String::from_utf8_lossy(value).contains(MARKER),
        "the original payload is kept"
    );
    let reason = &headers["sluice.dlq.reason"];
    assert!(
        reason.starts_with("poison: the router failed 2 times"),
        "{reason}"
    );
    assert!(reason.contains("fault injection"), "{reason}");

    wait_until(
        "ready again after the restarts",
        Duration::from_secs(60),
        || http_get(&http, "/readyz").is_some_and(|(code, _)| code == 200),
    );
    let metrics = http_get(&http, "/metrics").unwrap().1;
    let restarts = metrics
        .lines()
        .find(|l| l.starts_with("sluice_stage_restarts_total{stage=\"router\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    assert_eq!(
        restarts,
        Some(2.0),
        "two failures on the same offsets, then isolation"
    );
    assert!(metrics.contains("sluice_poison_messages_total 1"));
    sluice.stop();
}
