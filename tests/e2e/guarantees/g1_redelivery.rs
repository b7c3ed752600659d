//! #24.1: a redelivered message is dropped only when it is provably a second copy. A device
//! whose heartbeat never changes sends the same bytes every time; when ingest's connection to
//! the broker breaks while some of those heartbeats are not yet in Kafka, the broker redelivers
//! them (DUP) and each is the only copy: every one must reach Parquet.

use crate::chaos::mosquitto_conf;
use crate::common::*;
use std::io::{Read, Write};
use std::time::Duration;

const CLIENT_ID: &str = "sluice-g1";
const HEARTBEAT: &str = r#"{"seq":7,"status":"ok"}"#;

/// Takes ingest's session at the broker over (same client id, persistent session) and leaves
/// at once without acknowledging anything: the broker closes ingest's connection, and on
/// ingest's reconnect redelivers, flagged DUP, whatever ingest had not acknowledged.
fn take_the_session_over(broker: &str) {
    let mut s = std::net::TcpStream::connect(broker).unwrap();
    let id = CLIENT_ID.as_bytes();
    let mut connect = vec![0x10, (12 + id.len()) as u8, 0, 4];
    connect.extend_from_slice(b"MQTT");
    connect.extend_from_slice(&[4, 0, 0, 60, 0, id.len() as u8]); // v3.1.1, clean session 0
    connect.extend_from_slice(id);
    s.write_all(&connect).unwrap();
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack).unwrap();
    assert_eq!(connack[0], 0x20, "CONNACK");
}

fn metric(http: &str, name: &str) -> u64 {
    let text = http_get(http, "/metrics").map(|r| r.1).unwrap_or_default();
    metric_value(&text, name, &[]).unwrap_or(0.0) as u64
}

#[test]
fn g1_a_repeating_heartbeat_redelivered_after_a_reconnect_keeps_every_copy() {
    let setup = Setup::new();
    let port = free_port();
    let _mosquitto = mosquitto::spawn(&mosquitto_conf(setup.dir.path(), port), &[port]);
    let broker = format!("127.0.0.1:{port}");
    // One message to Kafka at a time: the next waits in the channel, the rest in the backlog
    // a reconnect clears (the broker keeps them).
    let extra = format!(
        "{ALL_TO_PARQUET}\n[mqtt]\nbroker = \"{broker}\"\nclient_id = \"{CLIENT_ID}\"\n\
         [ingest]\nmax_inflight = 1\n"
    );
    let kafka_http = format!("127.0.0.1:{}", free_port());
    let kafka_cfg = setup.write_config("kafka.toml", &kafka_http, &extra);
    let http = format!("127.0.0.1:{}", free_port());
    let pipeline_cfg = setup.write_config("pipeline.toml", &http, &extra);
    let kafka = Sluice::start(&kafka_cfg, &["--only", "brokers"], Some(kafka_http));
    let pipeline = Sluice::start(
        &pipeline_cfg,
        &["--only", "ingest", "--only", "router"],
        Some(http.clone()),
    );
    let root = setup.parquet_root();
    let beat = || {
        (
            "devices/hb-1/telemetry".to_string(),
            HEARTBEAT.as_bytes().to_vec(),
        )
    };

    // Subscribed (the persistent session exists at the broker) before anything is sent.
    wait_until("ingest subscribed", Duration::from_secs(60), || {
        http_get(&http, "/readyz").is_some_and(|(code, _)| code == 200)
    });
    publish_raw(&broker, vec![beat()]);
    wait_until(
        "the first heartbeat in Parquet",
        Duration::from_secs(60),
        || rule_rows(&root, "all") >= 1,
    );
    // Kafka stalls; five more identical heartbeats reach ingest and wait for it.
    kafka.freeze();
    publish_raw(&broker, (0..5).map(|_| beat()).collect());
    wait_until("ingest received all six", Duration::from_secs(30), || {
        metric(&http, "sluice_ingest_messages_in_total") >= 6
    });
    take_the_session_over(&broker);
    wait_until(
        "the broker redelivered to ingest",
        Duration::from_secs(30),
        || metric(&http, "sluice_ingest_messages_in_total") >= 11,
    );
    kafka.thaw();
    wait_until(
        "every heartbeat in Parquet (duplicates allowed, loss not)",
        Duration::from_secs(60),
        || rule_rows(&root, "all") >= 6,
    );
    pipeline.stop();
}
