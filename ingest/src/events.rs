//! What happens in ingest, each one [`Event`] that logs and counts.

use sluice_common::{Event, Stats};
use std::time::Duration;

sluice_common::metrics! {
    Counter MESSAGES_IN = "sluice_ingest_messages_in_total", "MQTT messages received by ingest";
    Counter PRODUCED = "sluice_ingest_produced_total", "Records Kafka confirmed on the raw topic";
    Counter KAFKA_ERRORS = "sluice_ingest_kafka_errors_total", "Kafka produce errors in ingest";
    Counter KAFKA_REJECTED = "sluice_ingest_kafka_rejected_total", "Messages Kafka refused for good (too large, invalid): sent to the dead-letter topic and acknowledged";
    Counter ACKS_DROPPED = "sluice_ingest_acks_dropped_total", "Acknowledgements not sent because the connection the message came on had closed (the broker redelivers it)";
    Counter PRODUCER_FATAL = "sluice_ingest_producer_fatal_total", "Kafka producers librdkafka declared unusable (the ingest stage restarts)";
    Counter RESENDS = "sluice_ingest_redeliveries_skipped_total", "Broker redeliveries acknowledged without producing again: Kafka had confirmed the same packet id and content on this session";
    Counter MQTT_ERRORS = "sluice_ingest_mqtt_errors_total", "MQTT connection errors in ingest";
    Counter GW_CONNECTIONS = "sluice_gateway_connections_total", "Device connections the gateway accepted (logged in)";
    Counter GW_REFUSED["reason"] = "sluice_gateway_connections_refused_total", "Device connections the gateway refused, by reason (login, limit, timeout, ...)";
    Counter GW_DISCONNECTS["reason"] = "sluice_gateway_disconnects_total", "Device connections that ended, by why";
    Gauge GW_OPEN = "sluice_gateway_connections", "Device connections open now (logged in or not yet)";
    Counter GW_PROTOCOL = "sluice_gateway_protocol_errors_total", "Connections closed for packets that are not MQTT 3.1.1 a client may send";
    Counter GW_RESENDS = "sluice_gateway_resends_skipped_total", "Resent publishes acknowledged without producing again: Kafka already had them (same session, packet id and content)";
    Counter GW_SUBSCRIBE = "sluice_gateway_subscribes_refused_total", "SUBSCRIBE packets answered with failure (the gateway serves no subscriptions)";
    Counter ACK_QUEUE_FAILURES = "sluice_ingest_ack_queue_failures_total", "MQTT acknowledgements the client would not queue (the broker redelivers the message)";
    Counter GW_ACCEPT_FAILURES = "sluice_gateway_accept_failures_total", "Sockets the gateway could not accept (out of file descriptors, most likely: it waits 100 ms)";
    Counter GW_REGISTRY_SKIPPED = "sluice_gateway_registry_records_skipped_total", "Device-registry records that are not a credential, skipped";
    Counter GW_KAFKA_FAILED = "sluice_gateway_kafka_failures_total", "Publishes Kafka did not confirm (the connection closes unacknowledged; the device resends)";
}

/// A connection was refused before or at its CONNECT.
pub struct GatewayRefused<'a> {
    pub reason: &'static str,
    pub peer: &'a dyn std::fmt::Display,
}

impl Event for GatewayRefused<'_> {
    fn emit(self) {
        tracing::debug!(reason = self.reason, peer = %self.peer, "gateway refused a connection");
        GW_REFUSED.count_with(&[("reason", self.reason.to_string())], 1);
    }
}

/// A message arrived from the MQTT broker.
pub struct MessageReceived<'a> {
    pub stats: &'a Stats,
}

impl Event for MessageReceived<'_> {
    fn emit(self) {
        Stats::add(&self.stats.mqtt_received, 1);
        MESSAGES_IN.count(1);
    }
}

/// Kafka confirmed a message's record on the raw topic.
pub struct RecordProduced<'a> {
    pub stats: &'a Stats,
}

impl Event for RecordProduced<'_> {
    fn emit(self) {
        Stats::add(&self.stats.produced, 1);
        PRODUCED.count(1);
    }
}

/// The MQTT connection failed (`hint`: what to check); ingest reconnects after `retry_in`.
pub struct MqttConnectionFailed<'a> {
    pub hint: &'a str,
    pub retry_in: Duration,
}

impl Event for MqttConnectionFailed<'_> {
    fn emit(self) {
        tracing::warn!(error = %self.hint, retry_in = ?self.retry_in, "mqtt connection failed");
        MQTT_ERRORS.count(1);
    }
}

/// The broker refused a subscription (its ACL): ingest stays unready.
pub struct SubscriptionRefused<'a> {
    pub filters: &'a [String],
    pub codes: String,
}

impl Event for SubscriptionRefused<'_> {
    fn emit(self) {
        tracing::error!(filters = ?self.filters, codes = %self.codes,
            "the MQTT broker refused a subscription (its ACL does not allow this user to read \
             these topics); ingest is not ready");
        MQTT_ERRORS.count(1);
    }
}

/// Kafka did not confirm a record; it is sent again after `retry_in`.
pub struct KafkaSendFailed<'a> {
    pub topic: &'a str,
    pub error: &'a dyn std::fmt::Display,
    pub retry_in: Duration,
}

impl Event for KafkaSendFailed<'_> {
    fn emit(self) {
        tracing::warn!(topic = %self.topic, error = %self.error, retry_in = ?self.retry_in,
            "kafka did not confirm a record, re-sending");
        KAFKA_ERRORS.count(1);
    }
}

/// Kafka refused a record for good; the message goes to the dead-letter topic instead
/// (`dead_letter_too`: even that record was refused, the message is acknowledged as is).
pub struct KafkaRefused<'a> {
    pub topic: &'a str,
    pub reason: &'a str,
    pub dead_letter_too: bool,
}

impl Event for KafkaRefused<'_> {
    fn emit(self) {
        KAFKA_ERRORS.count(1);
        if self.dead_letter_too {
            tracing::error!(topic = %self.topic, reason = %self.reason,
                "kafka refused the dead-letter record too; acknowledging the message");
        } else {
            tracing::warn!(topic = %self.topic, reason = %self.reason,
                "sending the message to the dead-letter topic");
            KAFKA_REJECTED.count(1);
        }
    }
}

/// A message's acknowledgement was owed to a connection that has closed: not sent, the
/// broker redelivers the message on the new connection.
pub struct AckDropped;

impl Event for AckDropped {
    fn emit(self) {
        tracing::debug!("acknowledgement for a closed connection dropped");
        ACKS_DROPPED.count(1);
    }
}

/// librdkafka declared the producer unusable.
pub struct ProducerFailed<'a> {
    pub why: &'a str,
}

impl Event for ProducerFailed<'_> {
    fn emit(self) {
        tracing::error!(
            why = self.why,
            "kafka producer failed for good; restarting ingest"
        );
        PRODUCER_FATAL.count(1);
    }
}

/// A broker redelivery of a publish Kafka confirmed was acknowledged without producing it.
pub struct ResendSkipped;

impl Event for ResendSkipped {
    fn emit(self) {
        RESENDS.count(1);
    }
}

/// The MQTT client would not queue an acknowledgement; the broker redelivers the message.
pub struct AckQueueFailed<'a> {
    pub error: &'a dyn std::fmt::Display,
}

impl Event for AckQueueFailed<'_> {
    fn emit(self) {
        tracing::warn!(error = %self.error, "could not queue MQTT ack; the broker will redeliver");
        ACK_QUEUE_FAILURES.count(1);
    }
}

/// The gateway could not accept a socket (it waits before the next accept).
pub struct GatewayAcceptFailed<'a> {
    pub error: &'a dyn std::fmt::Display,
}

impl Event for GatewayAcceptFailed<'_> {
    fn emit(self) {
        tracing::warn!(error = %self.error, "gateway: accept failed");
        GW_ACCEPT_FAILURES.count(1);
    }
}

/// A device-registry record that is not a credential was skipped.
pub struct RegistryRecordSkipped<'a> {
    pub device: &'a dyn std::fmt::Display,
    pub error: &'a dyn std::fmt::Display,
}

impl Event for RegistryRecordSkipped<'_> {
    fn emit(self) {
        tracing::warn!(device = %self.device, error = %self.error,
            "device registry: a record that is not a credential, skipped");
        GW_REGISTRY_SKIPPED.count(1);
    }
}
