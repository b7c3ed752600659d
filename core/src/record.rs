//! The Kafka record contract between ingest and router.
//!
//! A telemetry record on `telemetry.raw`:
//! - key: the device id (UTF-8), so one device's messages stay in one partition, in order;
//! - value: the MQTT payload bytes, untouched;
//! - timestamp: when ingest received the message (ms since the epoch), as the record's own
//!   Kafka timestamp (CreateTime), so no text is written and parsed back for it;
//! - headers: [`MQTT_TOPIC`] (the topic it was published on) and, on a message the MQTT
//!   broker redelivered, [`REDELIVERED`]. Records written before the timestamp carried the
//!   receive time have it in a [`RECEIVED_MS`] header (decimal ASCII), still read.
//!
//! A dead-letter record on `telemetry.dlq` keeps the original key and value and adds
//! [`DLQ_REASON`] and, when the record came from Kafka, [`SOURCE_TOPIC`], [`SOURCE_PARTITION`]
//! and [`SOURCE_OFFSET`]. Headers are plain `(name, bytes)` pairs so this module does not
//! depend on a Kafka client.

pub const MQTT_TOPIC: &str = "mqtt.topic";
/// The receive time of records written by Sluice before it used the Kafka timestamp.
pub const RECEIVED_MS: &str = "sluice.received_ms";
pub const DLQ_REASON: &str = "sluice.dlq.reason";
pub const SOURCE_TOPIC: &str = "sluice.source.topic";
pub const SOURCE_PARTITION: &str = "sluice.source.partition";
pub const SOURCE_OFFSET: &str = "sluice.source.offset";
/// Set (to "1") on records of messages the MQTT broker redelivered (its DUP flag): a copy may
/// already be in Kafka from before a crash of ingest; the router drops the second copy.
pub const REDELIVERED: &str = "sluice.mqtt.redelivered";

/// One telemetry message as ingest writes it and the router reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryRecord<'a> {
    pub device_id: &'a str,
    pub mqtt_topic: &'a str,
    /// When ingest received it (ms since the epoch): the Kafka record's timestamp.
    pub received_ms: i64,
    /// The MQTT broker redelivered it (DUP): a copy may already be in Kafka.
    pub redelivered: bool,
    pub payload: &'a [u8],
}

/// Why a record could not be read as telemetry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("header {0} is not valid")]
    BadHeader(&'static str),
    #[error("key (device id) is missing or not UTF-8")]
    BadKey,
    #[error("record has no timestamp (the receive time)")]
    MissingTimestamp,
}

impl<'a> TelemetryRecord<'a> {
    /// Headers to attach to the Kafka record (its timestamp is [`Self::received_ms`]).
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &'a [u8])> {
        let redelivered = self.redelivered.then_some((REDELIVERED, &b"1"[..]));
        std::iter::once((MQTT_TOPIC, self.mqtt_topic.as_bytes())).chain(redelivered)
    }

    /// Reads a record from its Kafka key, timestamp, headers (one pass) and value.
    pub fn from_kafka<'h>(
        key: Option<&'a [u8]>,
        timestamp: Option<i64>,
        headers: impl IntoIterator<Item = (&'h str, Option<&'a [u8]>)>,
        payload: Option<&'a [u8]>,
    ) -> Result<Self, RecordError> {
        let device_id = key
            .and_then(|k| std::str::from_utf8(k).ok())
            .ok_or(RecordError::BadKey)?;
        let (mut topic, mut legacy_received, mut redelivered) = (None, None, false);
        for (name, value) in headers {
            match name {
                MQTT_TOPIC => topic = value,
                RECEIVED_MS => legacy_received = Some(value),
                REDELIVERED => redelivered = value == Some(b"1"),
                _ => {}
            }
        }
        let topic = topic.ok_or(RecordError::MissingHeader(MQTT_TOPIC))?;
        let mqtt_topic =
            std::str::from_utf8(topic).map_err(|_| RecordError::BadHeader(MQTT_TOPIC))?;
        let received_ms = match legacy_received {
            Some(v) => v
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.parse().ok())
                .ok_or(RecordError::BadHeader(RECEIVED_MS))?,
            None => timestamp.ok_or(RecordError::MissingTimestamp)?,
        };
        Ok(Self {
            device_id,
            mqtt_topic,
            received_ms,
            redelivered,
            payload: payload.unwrap_or_default(),
        })
    }
}

/// Headers of a dead-letter record: the reason, and where the record came from if known.
pub fn dlq_headers(
    reason: &str,
    source: Option<(&str, i32, i64)>,
    mqtt_topic: Option<&str>,
) -> Vec<(&'static str, Vec<u8>)> {
    let mut h = vec![(DLQ_REASON, reason.as_bytes().to_vec())];
    if let Some((topic, partition, offset)) = source {
        h.push((SOURCE_TOPIC, topic.as_bytes().to_vec()));
        h.push((SOURCE_PARTITION, partition.to_string().into_bytes()));
        h.push((SOURCE_OFFSET, offset.to_string().into_bytes()));
    }
    if let Some(t) = mqtt_topic {
        h.push((MQTT_TOPIC, t.as_bytes().to_vec()));
    }
    h
}

/// The device id at a 1-based topic level (`devices/{id}/telemetry`, level 2).
///
/// On Sparkplug B topics (`spBv1.0/<group>/<type>/<edge node>[/<device>]`) it is the edge
/// node, whatever the level: an edge node's BIRTH, its devices' messages and its DATA must
/// share a partition, so that the router that reads the DATA knows the aliases.
pub fn device_id_from_topic(topic: &str, level: usize) -> Option<&str> {
    let level = match topic.starts_with(SPARKPLUG_PREFIX) {
        true => 4,
        false => level,
    };
    topic
        .split('/')
        .nth(level.checked_sub(1)?)
        .filter(|s| !s.is_empty())
}

/// Topics of the Sparkplug B namespace.
pub const SPARKPLUG_PREFIX: &str = "spBv1.0/";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_kafka_shape() {
        let rec = TelemetryRecord {
            device_id: "dev-1",
            mqtt_topic: "devices/dev-1/telemetry",
            received_ms: 1_700_000_000_123,
            redelivered: false,
            payload: br#"{"t":1}"#,
        };
        let redelivered = TelemetryRecord {
            redelivered: true,
            ..rec
        };
        for rec in [rec, redelivered] {
            let back = TelemetryRecord::from_kafka(
                Some(b"dev-1"),
                Some(rec.received_ms),
                rec.headers().map(|(k, v)| (k, Some(v))),
                Some(br#"{"t":1}"#),
            )
            .unwrap();
            assert_eq!(back, rec);
        }
    }

    #[test]
    fn records_written_before_the_timestamp_read_their_header() {
        let headers = [
            (MQTT_TOPIC, Some(&b"devices/d/t"[..])),
            (RECEIVED_MS, Some(&b"1700000000123"[..])),
        ];
        let rec = TelemetryRecord::from_kafka(Some(b"d"), Some(5), headers, None).unwrap();
        assert_eq!(rec.received_ms, 1_700_000_000_123);
        let topic_only = [(MQTT_TOPIC, Some(&b"devices/d/t"[..]))];
        assert_eq!(
            TelemetryRecord::from_kafka(Some(b"d"), None, topic_only, None),
            Err(RecordError::MissingTimestamp)
        );
    }

    #[test]
    fn missing_parts_are_errors() {
        let none: [(&str, Option<&[u8]>); 0] = [];
        assert_eq!(
            TelemetryRecord::from_kafka(None, Some(1), none, None),
            Err(RecordError::BadKey)
        );
        assert_eq!(
            TelemetryRecord::from_kafka(Some(b"d"), Some(1), none, None),
            Err(RecordError::MissingHeader(MQTT_TOPIC))
        );
        let bad = [
            (MQTT_TOPIC, Some(&b"a/b"[..])),
            (RECEIVED_MS, Some(&b"x"[..])),
        ];
        assert_eq!(
            TelemetryRecord::from_kafka(Some(b"d"), Some(1), bad, None),
            Err(RecordError::BadHeader(RECEIVED_MS))
        );
    }

    #[test]
    fn device_id_levels_are_one_based() {
        assert_eq!(device_id_from_topic("devices/d7/telemetry", 2), Some("d7"));
        assert_eq!(
            device_id_from_topic("devices/d7/telemetry", 1),
            Some("devices")
        );
        assert_eq!(device_id_from_topic("devices", 2), None);
        assert_eq!(device_id_from_topic("devices//x", 2), None);
        assert_eq!(device_id_from_topic("a/b", 0), None);
        // Sparkplug B: the edge node, so a node's BIRTH and DATA share a partition.
        let node_data = "spBv1.0/plant1/NDATA/edge-7";
        assert_eq!(device_id_from_topic(node_data, 2), Some("edge-7"));
        let device_data = "spBv1.0/plant1/DDATA/edge-7/pump-3";
        assert_eq!(device_id_from_topic(device_data, 2), Some("edge-7"));
        assert_eq!(device_id_from_topic("spBv1.0/STATE/host", 2), None);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn device_ids_are_one_nonempty_topic_level(topic in "[a-z/+#é💥\\x00]{0,24}", level in 0usize..8) {
                if let Some(id) = device_id_from_topic(&topic, level) {
                    prop_assert!(!id.is_empty());
                    prop_assert!(!id.contains('/'));
                    prop_assert_eq!(topic.split('/').nth(level - 1), Some(id));
                }
            }

            #[test]
            fn any_kafka_record_reads_or_errs(
                key in proptest::option::of(prop::collection::vec(any::<u8>(), 0..16)),
                topic in proptest::option::of(prop::collection::vec(any::<u8>(), 0..16)),
                received in proptest::option::of(prop::collection::vec(any::<u8>(), 0..24)),
                payload in proptest::option::of(prop::collection::vec(any::<u8>(), 0..16)),
            ) {
                let headers = [
                    (MQTT_TOPIC, topic.as_deref()),
                    (RECEIVED_MS, received.as_deref()),
                ];
                let _ = TelemetryRecord::from_kafka(key.as_deref(), None, headers, payload.as_deref());
            }
        }
    }
}
