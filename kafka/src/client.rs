//! The librdkafka settings every Sluice Kafka client shares: bootstrap, `[kafka.security]`
//! (TLS, SASL) and the user's `[kafka.properties]`.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::BaseProducer;
use rdkafka::ClientConfig;
use sluice_config::Config;
use std::time::Duration;

/// The router consumer's `fetch.wait.max.ms`. Kafka answers a fetch as soon as data is there,
/// so under load this wait costs nothing; the embedded tansu broker always waits it out, and
/// fewer, larger fetches leave its single storage task to the producers (5 000 msg/s: p50
/// publish→Kafka 0.17 s at 500 ms against 3 s at 50 ms, bench/README.md). Public so the
/// load test's bare-consumer baseline fetches the same way.
pub const FETCH_WAIT_MS: &str = "500";

/// The Kafka bootstrap servers: `kafka.bootstrap`, else the embedded broker's address.
pub fn bootstrap(config: &Config) -> String {
    config
        .kafka
        .bootstrap
        .clone()
        .unwrap_or_else(|| config.embedded.kafka_listen.clone())
}

/// librdkafka settings shared by every Sluice client.
pub fn kafka_client_config(config: &Config, bootstrap: &str) -> ClientConfig {
    let mut c = security_settings(config);
    c.set("bootstrap.servers", bootstrap);
    c
}

/// `[kafka.security]` and `[kafka.properties]`, without a bootstrap address.
fn security_settings(config: &Config) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in config.kafka.client_properties() {
        c.set(k, v);
    }
    c
}

/// Whether this build of librdkafka can honour the config's Kafka settings: every property
/// known and supported (TLS and SASL need OpenSSL), and the CA, certificate and key files
/// loadable. Connects to nothing (the client it builds has no bootstrap servers).
pub fn check_client_config(config: &Config) -> Result<(), ClientError> {
    let mut c = security_settings(config);
    c.set_log_level(rdkafka::config::RDKafkaLogLevel::Emerg);
    c.create::<BaseProducer>()
        .map(drop)
        .map_err(|e| ClientError::Settings(redact_secret(&e.to_string(), config)))
}

/// Why a Kafka client cannot work; messages never carry a configured password.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The settings: an unknown or unsupported property, a CA/certificate/key file that does
    /// not load. Fix the config.
    #[error("{0}")]
    Settings(String),
    /// The cluster did not answer as asked (TLS, SASL, resolution, time-out).
    #[error("{0}")]
    Cluster(String),
}

/// An error message with the configured passwords, if one somehow appears, blanked out.
fn redact_secret(message: &str, config: &Config) -> String {
    let s = &config.kafka.security;
    let secrets = [&s.sasl_password, &s.key_password];
    secrets
        .into_iter()
        .flatten()
        .filter(|p| !p.expose().is_empty())
        .fold(message.to_string(), |m, p| m.replace(p.expose(), "***"))
}

/// Remembers the last error librdkafka reported (TLS handshake, SASL, resolution…).
#[derive(Default)]
struct LastError(std::sync::Mutex<Option<String>>);

impl rdkafka::ClientContext for LastError {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{error}: {reason}"));
    }
}

impl rdkafka::consumer::ConsumerContext for LastError {}

/// Asks the cluster for its metadata once, so that a TLS or SASL mistake stops the start with
/// librdkafka's reason ("certificate verify failed", "Authentication failed") instead of a
/// time-out later. Blocking: call it off the async runtime.
pub fn preflight(config: &Config, bootstrap: &str, within: Duration) -> Result<(), ClientError> {
    let client: BaseConsumer<LastError> = kafka_client_config(config, bootstrap)
        .create_with_context(LastError::default())
        .map_err(|e| ClientError::Settings(redact_secret(&e.to_string(), config)))?;
    match client.fetch_metadata(None, within) {
        Ok(_) => Ok(()),
        Err(e) => {
            // Error events wait in the client's queue until it is polled.
            let _ = client.poll(Duration::from_millis(200));
            let reason = client
                .context()
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            let reason = reason.unwrap_or_else(|| e.to_string());
            Err(ClientError::Cluster(redact_secret(&reason, config)))
        }
    }
}

/// The partition ids of `topic` as the cluster reports them (none: the topic is missing).
pub fn partition_ids(
    consumer: &impl Consumer,
    topic: &str,
    within: Duration,
) -> rdkafka::error::KafkaResult<Vec<i32>> {
    let metadata = consumer.fetch_metadata(Some(topic), within)?;
    Ok(metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect())
}
