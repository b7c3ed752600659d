//! MQTT publish → Kafka record. No network here except the producer handle, so the record
//! building is testable (and benchmarked) on its own.

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use sluice_config::{IngestConfig, KafkaConfig};
use sluice_core::record::{device_id_from_topic, dlq_headers, TelemetryRecord};
use sluice_kafka::IdempotentProducer;
use std::time::Duration;

/// Whether Kafka will refuse this record whatever we do (too large, invalid): such a message
/// goes to the dead-letter topic and is acknowledged, so it never blocks the ones behind it.
/// Anything else (timeouts, a broker away, a full queue) is retried with backoff.
pub fn is_permanent(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(C::MessageSizeTooLarge | C::InvalidMessageSize | C::InvalidMessage | C::InvalidRecord)
    )
}

/// Where a message went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Telemetry,
    DeadLetter(String),
}

/// Builds and sends Kafka records for MQTT messages.
#[derive(Clone)]
pub struct Forwarder {
    producer: IdempotentProducer,
    raw_topic: String,
    dlq_topic: String,
    device_id_level: usize,
    max_payload_bytes: usize,
}

/// A record ready to send: where, key, timestamp (the receive time), headers, value.
pub struct Prepared<'a> {
    pub topic: &'a str,
    pub key: &'a str,
    pub timestamp: i64,
    pub headers: OwnedHeaders,
    pub outcome: Outcome,
}

fn to_headers<V: AsRef<[u8]>>(pairs: impl IntoIterator<Item = (&'static str, V)>) -> OwnedHeaders {
    pairs
        .into_iter()
        .fold(OwnedHeaders::new(), |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value.as_ref()),
            })
        })
}

impl Forwarder {
    pub fn new(producer: IdempotentProducer, kafka: &KafkaConfig, ingest: &IngestConfig) -> Self {
        Self {
            producer,
            raw_topic: kafka.raw_topic.clone(),
            dlq_topic: kafka.dlq_topic.clone(),
            device_id_level: ingest.device_id_level,
            max_payload_bytes: ingest.max_payload_bytes,
        }
    }

    /// Decides where a message goes and builds its key and headers.
    pub fn prepare<'a>(
        &'a self,
        mqtt_topic: &'a str,
        payload_len: usize,
        received_ms: i64,
        redelivered: bool,
    ) -> Prepared<'a> {
        let device = device_id_from_topic(mqtt_topic, self.device_id_level);
        let reason = match device {
            _ if payload_len > self.max_payload_bytes => Some(format!(
                "oversize: {payload_len} bytes > ingest.max_payload_bytes {}",
                self.max_payload_bytes
            )),
            None => Some(format!(
                "no device id at topic level {}",
                self.device_id_level
            )),
            Some(_) => None,
        };
        match (reason, device) {
            (None, Some(device_id)) => {
                let rec = TelemetryRecord {
                    device_id,
                    mqtt_topic,
                    received_ms,
                    redelivered,
                    payload: &[],
                };
                Prepared {
                    topic: &self.raw_topic,
                    key: device_id,
                    timestamp: received_ms,
                    headers: to_headers(rec.headers()),
                    outcome: Outcome::Telemetry,
                }
            }
            (reason, device) => {
                let reason = reason.unwrap_or_default();
                Prepared {
                    topic: &self.dlq_topic,
                    key: device.unwrap_or(""),
                    timestamp: received_ms,
                    headers: to_headers(dlq_headers(&reason, None, Some(mqtt_topic))),
                    outcome: Outcome::DeadLetter(reason),
                }
            }
        }
    }

    /// Queues a telemetry record keyed by `device` (the gateway's authenticated id).
    pub fn send_telemetry(
        &self,
        device: &str,
        mqtt_topic: &str,
        payload: &[u8],
        received_ms: i64,
    ) -> Result<DeliveryFuture, rdkafka::error::KafkaError> {
        let rec = TelemetryRecord {
            device_id: device,
            mqtt_topic,
            received_ms,
            redelivered: false,
            payload: &[],
        };
        let record = FutureRecord::to(&self.raw_topic)
            .key(device)
            .payload(payload)
            .timestamp(received_ms)
            .headers(to_headers(rec.headers()));
        self.producer.send_result(record).map_err(|(e, _)| e)
    }

    /// Queues a dead-letter record with the reason, keyed by `device` ("" when unknown).
    pub fn send_dead_letter(
        &self,
        device: &str,
        mqtt_topic: &str,
        reason: &str,
        payload: &[u8],
    ) -> Result<DeliveryFuture, rdkafka::error::KafkaError> {
        let record = FutureRecord::<str, [u8]>::to(&self.dlq_topic)
            .key(device)
            .payload(payload)
            .headers(to_headers(dlq_headers(reason, None, Some(mqtt_topic))));
        self.producer.send_result(record).map_err(|(e, _)| e)
    }

    /// The largest payload that goes to the raw topic (`ingest.max_payload_bytes`).
    pub fn max_payload_bytes(&self) -> usize {
        self.max_payload_bytes
    }

    /// A dead-letter record for a message Kafka refused for good (too large, invalid): the
    /// reason and topic, without the payload that was refused.
    pub fn dead_letter(
        &self,
        mqtt_topic: &str,
        reason: &str,
    ) -> Result<DeliveryFuture, rdkafka::error::KafkaError> {
        let key = device_id_from_topic(mqtt_topic, self.device_id_level).unwrap_or("");
        let record = FutureRecord::<str, [u8]>::to(&self.dlq_topic)
            .key(key)
            .payload(&[])
            .headers(to_headers(dlq_headers(reason, None, Some(mqtt_topic))));
        self.producer.send_result(record).map_err(|(e, _)| e)
    }

    /// Waits (at most `within`) until the producer may send: librdkafka holds every record
    /// until the broker gave it a producer id, about half a second after it was made, so a
    /// front door that listens before then answers its first publishes that much later.
    /// `false` when Kafka did not answer in time (records then wait in the producer's queue).
    pub async fn ready(&self, within: Duration) -> bool {
        self.producer.wait_for_id(within).await
    }

    /// librdkafka's fatal error, once the producer can no longer be used (the idempotent
    /// producer's state broke, e.g. after the broker lost records it had confirmed).
    pub fn fatal_error(&self) -> Option<String> {
        use rdkafka::producer::Producer;
        let (code, message) = self.producer.client().fatal_error()?;
        Some(format!("{code}: {message}"))
    }

    /// Sends one message; the future resolves when Kafka confirmed (or finally refused) it.
    /// An error here means the record was not queued (the producer queue is full, or the
    /// record was refused before it left: [`is_permanent`] tells which).
    pub fn send(
        &self,
        mqtt_topic: &str,
        payload: &[u8],
        received_ms: i64,
        redelivered: bool,
    ) -> Result<(DeliveryFuture, Outcome), rdkafka::error::KafkaError> {
        let p = self.prepare(mqtt_topic, payload.len(), received_ms, redelivered);
        // Oversize payloads are not copied into the DLQ: the reason and topic are what matter.
        let value: &[u8] =
            if matches!(p.outcome, Outcome::Telemetry) || payload.len() <= self.max_payload_bytes {
                payload
            } else {
                &[]
            };
        let record = FutureRecord::to(p.topic)
            .key(p.key)
            .payload(value)
            .timestamp(p.timestamp)
            .headers(p.headers);
        self.producer
            .send_result(record)
            .map(|f| (f, p.outcome))
            .map_err(|(e, _)| e)
    }
}
