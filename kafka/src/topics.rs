//! Topic creation at start: the raw topic (partitions from `kafka.partitions`), the
//! dead-letter topic, every alert sink's topic and every stateful sink's compacted changelog.

use crate::client::kafka_client_config;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use sluice_common::retry::{Backoff, Policy};
use sluice_config::Config;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("kafka admin client: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error("creating topics: {0}")]
    Create(String),
}

/// A broker that is still starting answers topic creation with errors for a while.
const CREATE_RETRY: Policy = Policy::doubling(Duration::from_millis(100), Duration::from_secs(2));

/// Creates the raw, dead-letter and alert topics if missing, retrying until the broker
/// answers (for up to 60 s).
pub async fn ensure_topics(config: &Config, bootstrap: &str) -> Result<(), TopicError> {
    let admin: AdminClient<DefaultClientContext> =
        kafka_client_config(config, bootstrap).create()?;
    let mut topics = vec![
        NewTopic::new(
            &config.kafka.raw_topic,
            config.kafka.partitions,
            TopicReplication::Fixed(1),
        ),
        NewTopic::new(&config.kafka.dlq_topic, 1, TopicReplication::Fixed(1)),
    ];
    let alert_topics = config.alert_topics();
    for topic in &alert_topics {
        topics.push(NewTopic::new(topic, 1, TopicReplication::Fixed(1)));
    }
    let changelogs = config.changelog_topics();
    for topic in &changelogs {
        // Same partitions as the raw topic: a device's state sits in its records' partition.
        let changelog = NewTopic::new(topic, config.kafka.partitions, TopicReplication::Fixed(1))
            .set("cleanup.policy", "compact");
        topics.push(changelog);
    }
    if config.gateway.device_auth {
        // One partition: every gateway replica reads the whole registry anyway.
        let devices = NewTopic::new(&config.gateway.devices_topic, 1, TopicReplication::Fixed(1))
            .set("cleanup.policy", "compact");
        topics.push(devices);
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut backoff = Backoff::new(CREATE_RETRY);
    loop {
        let problem = match admin.create_topics(&topics, &options).await {
            Ok(results) => results
                .into_iter()
                .filter_map(|r| r.err())
                .find(|(_, code)| *code != RDKafkaErrorCode::TopicAlreadyExists)
                .map(|(t, code)| format!("{t}: {code}")),
            Err(e) => Some(e.to_string()),
        };
        match problem {
            None => return Ok(()),
            Some(p) if tokio::time::Instant::now() >= deadline => {
                return Err(TopicError::Create(p))
            }
            Some(p) => {
                tracing::debug!(problem = %p, "kafka not ready for topic creation yet");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}
