//! Field fault (#24): the Kafka raw topic deleted while Sluice runs. Never a silent stall:
//! `/readyz` turns 503 naming the topic and what it means, the log says so once, a counter
//! moves, and readiness comes back by itself when the topic exists again.
//! (Raising the raw topic's partition count cannot be tested here: the embedded broker, tansu,
//! does not implement CreatePartitions.)

use crate::common::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use std::time::Duration;

fn admin(kafka: &str) -> AdminClient<DefaultClientContext> {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .create()
        .unwrap()
}

fn readyz(http: &str) -> (u16, String) {
    http_get(http, "/readyz").unwrap_or((0, String::new()))
}

#[test]
fn field_fault_the_raw_topic_deleted_while_running_is_named_on_readyz() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let config = setup.write_config("sluice.toml", &http, "[scaling]\ninterval_ms = 500\n");
    let sluice = Sluice::start(&config, &[], Some(http.clone()));
    assert_eq!(readyz(&http).0, 200, "ready before the fault");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let admin = admin(&setup.kafka);
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let deleted = rt
        .block_on(admin.delete_topics(&["telemetry.raw"], &opts))
        .unwrap();
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");

    wait_until(
        "/readyz names the missing raw topic",
        Duration::from_secs(30),
        || {
            let (code, body) = readyz(&http);
            code == 503 && body.contains("telemetry.raw") && body.contains("deleted")
        },
    );
    let (_, metrics) = http_get(&http, "/metrics").unwrap();
    assert_eq!(
        metric_value(&metrics, "sluice_raw_topic_missing_total", &[]),
        Some(1.0),
        "counted once, not per sample"
    );
    assert_eq!(
        http_get(&http, "/healthz").map(|r| r.0),
        Some(200),
        "still alive"
    );

    let topic = NewTopic::new("telemetry.raw", 4, TopicReplication::Fixed(1));
    let created = rt.block_on(admin.create_topics(&[topic], &opts)).unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    wait_until(
        "ready again once the topic exists",
        Duration::from_secs(30),
        || readyz(&http).0 == 200,
    );
    sluice.stop();
}
