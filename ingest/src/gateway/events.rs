//! What happens on a gateway connection, each one event that logs and counts (the metrics
//! are declared with ingest's, in `crate::events`).

use crate::events::{
    GW_CONNECTIONS, GW_DISCONNECTS, GW_KAFKA_FAILED, GW_OPEN, GW_PROTOCOL, GW_REFUSED, GW_RESENDS,
    GW_SUBSCRIBE,
};
use rumqttc::ConnectReturnCode;
use sluice_common::Event;

/// A CONNECT was answered with a refusal.
pub struct ConnectRefused {
    pub code: ConnectReturnCode,
}

impl Event for ConnectRefused {
    fn emit(self) {
        let reason = match self.code {
            ConnectReturnCode::BadUserNamePassword => "bad_login",
            ConnectReturnCode::NotAuthorized => "not_authorized",
            ConnectReturnCode::RefusedProtocolVersion => "protocol_version",
            ConnectReturnCode::BadClientId => "client_id",
            _ => "unavailable",
        };
        tracing::debug!(reason, "gateway refused a CONNECT");
        GW_REFUSED.count_with(&[("reason", reason.to_string())], 1);
    }
}

/// A device sent something that is not MQTT (3.1.1 or 5) a client may send: the connection closes.
pub struct ProtocolViolation<'a> {
    pub why: &'a str,
}

impl Event for ProtocolViolation<'_> {
    fn emit(self) {
        tracing::info!(why = %super::printable(self.why), "gateway closed a connection: protocol error");
        GW_PROTOCOL.count(1);
    }
}

/// A resend of a publish Kafka already has was acknowledged without producing it again.
pub struct ResendSkipped;

impl Event for ResendSkipped {
    fn emit(self) {
        GW_RESENDS.count(1);
    }
}

/// A SUBSCRIBE was answered with failure codes.
pub struct SubscribeRefused;

impl Event for SubscribeRefused {
    fn emit(self) {
        GW_SUBSCRIBE.count(1);
    }
}

/// Kafka did not confirm a publish: the connection closes without acknowledging it.
pub struct KafkaProduceFailed<'a> {
    pub why: &'a str,
}

impl Event for KafkaProduceFailed<'_> {
    fn emit(self) {
        tracing::warn!(error = %self.why, "kafka did not confirm a publish; closing the device's \
            connection unacknowledged (it resends)");
        GW_KAFKA_FAILED.count(1);
    }
}

/// A connection ended.
pub struct Disconnected {
    pub why: super::conn::Ended,
}

impl Event for Disconnected {
    fn emit(self) {
        GW_DISCONNECTS.count_with(&[("reason", self.why.label().to_string())], 1);
    }
}

/// The number of open device sockets changed (counted from accept, before any login).
pub struct OpenSockets(pub usize);

impl Event for OpenSockets {
    fn emit(self) {
        GW_OPEN.gauge_set(self.0 as f64);
    }
}

/// A device logged in and got its CONNACK.
pub struct Connected;

impl Event for Connected {
    fn emit(self) {
        GW_CONNECTIONS.count(1);
    }
}
