//! Sluice ingest: the front door, MQTT → Kafka, at-least-once. Two ways in:
//!
//! - [`gateway`]: Sluice is the devices' MQTT endpoint; a PUBACK is sent only after Kafka
//!   confirmed the publish (the embedded default, and wherever devices connect to Sluice).
//! - [`Ingest`] (broker mode): a subscriber of the fleet's own broker (AWS IoT Core, EMQX,
//!   HiveMQ, Mosquitto), acknowledging to that broker after Kafka.
//!
//! Layout of broker mode:
//! - [`Ingest`]: subscribes to the configured topic filters with QoS 1 on a persistent
//!   session (`clean_session = false`, stable client id, manual acks).
//! - [`forward`]: turns each MQTT publish into one Kafka record (the contract in
//!   `sluice_core::record`), or a dead-letter record with a reason (oversize, no device
//!   id in the topic), and sends it with an idempotent, `acks=all` producer.
//! - [`deliver`]: each message to Kafka with its own retries, then its PUBACK in arrival
//!   order, on the connection it came on only.
//! - [`tls`]: `[mqtt.tls]` as a rustls client (CA file or system roots, client certificate,
//!   server name).
//!
//! The MQTT PUBACK for a message is sent only after Kafka confirmed its record, in the order
//! the messages arrived. At most `ingest.max_inflight` messages are sent to Kafka at once;
//! the MQTT connection is polled all the while (keep-alives go on while Kafka is slow or
//! away), and since nothing is acknowledged until Kafka confirmed it, the broker's in-flight
//! window holds the backlog, not our memory. Either side failing is retried with backoff; an
//! unacknowledged message is redelivered by the broker after a reconnect, so nothing
//! acknowledged is lost.

mod deliver;
pub mod events;
mod forward;
pub mod front_door;
pub mod gateway;
mod mqtt;
mod resend;
pub mod tls;

pub use forward::{is_permanent, Forwarder, Outcome};
pub use mqtt::Ingest;

/// Ingest failures that stop the stage (data-path failures are events, not errors).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("kafka producer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("mqtt: {0}")]
    Mqtt(String),
    #[error("kafka producer failed for good (the stage restarts with a new one): {0}")]
    ProducerFatal(String),
    #[error("mqtt.tls: {0}")]
    Tls(#[from] tls::TlsError),
}

pub use sluice_common::now_ms;

impl sluice_core::Classify for IngestError {
    fn whose(&self) -> sluice_core::Whose {
        use rdkafka::error::KafkaError;
        use sluice_core::Whose;
        match self {
            IngestError::Tls(_) => Whose::User,
            IngestError::Kafka(KafkaError::ClientCreation(_) | KafkaError::ClientConfig(..)) => {
                Whose::User
            }
            IngestError::Kafka(_) | IngestError::Mqtt(_) | IngestError::ProducerFatal(_) => {
                Whose::Outside
            }
        }
    }

    fn retry(&self) -> sluice_core::Retry {
        match (self, self.whose()) {
            // A new producer is all it takes.
            (IngestError::ProducerFatal(_), _) => sluice_core::Retry::Now,
            (_, sluice_core::Whose::User) => sluice_core::Retry::Never,
            _ => sluice_core::Retry::Later,
        }
    }
}
