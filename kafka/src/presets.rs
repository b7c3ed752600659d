//! What each kind of Sluice client adds to the shared settings.

use crate::client::{kafka_client_config, FETCH_WAIT_MS};
use rdkafka::ClientConfig;
use sluice_config::Config;

/// A producer whose records Kafka writes exactly once per send, in order, and only when every
/// in-sync replica has them: ingest's raw-topic producer and the dead-letter producer, whose
/// confirmations gate MQTT acknowledgements and offset commits.
pub fn idempotent_producer(config: &Config, bootstrap: &str) -> ClientConfig {
    let mut c = kafka_client_config(config, bootstrap);
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    c
}

/// The router's group consumer: manual commits (offsets are committed only after a
/// checkpoint made the sinks durable), from the earliest offset for a new group.
pub fn router_consumer(config: &Config, bootstrap: &str) -> ClientConfig {
    let mut c = kafka_client_config(config, bootstrap);
    c.set("group.id", &config.router.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("fetch.wait.max.ms", FETCH_WAIT_MS);
    c
}
