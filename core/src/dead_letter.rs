//! The dead-letter event ingest and router share, and [`DlqReason`], the bounded set of
//! reasons its `reason` label takes.
//!
//! The reason *text* (in the record's `sluice.dlq.reason` header and the debug log) keeps
//! every detail: the field, the limit, the rule. The *label* is one of a fixed set, so a
//! message cannot mint a time series: before, the label was the text up to its first `:`,
//! and a rule failure (`rule 'hot': …`) or a new error wording made a new series.

use sluice_common::{Event, Stats};

sluice_common::metrics! {
    Counter DEAD_LETTERED["stage", "reason"] = "sluice_dlq_total", "Records sent to the dead-letter topic";
}

/// Why a record went to the dead-letter topic, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DlqReason {
    /// Larger than `ingest.max_payload_bytes`.
    Oversize,
    /// The topic has no device id at the configured level.
    NoDeviceId,
    /// The gateway refused the publish (topic names another device, bad topic).
    Unauthorized,
    InvalidTopic,
    /// The payload is not text, not JSON, or not a JSON object.
    NotUtf8,
    InvalidJson,
    NotAnObject,
    /// A `[[payloads]]` binary format that did not decode.
    InvalidProtobuf,
    InvalidCbor,
    /// A Sparkplug B payload or topic that did not decode; a DATA metric by an alias no BIRTH
    /// named.
    InvalidSparkplug,
    SparkplugUnknownAlias,
    /// Past a decode bound (depth, fields, names).
    TooDeep,
    TooManyFields,
    EmptyFieldName,
    FieldNameCollision,
    SchemaFull,
    CannotDecode,
    /// A Kafka record without Sluice's headers or key.
    BadRecord,
    /// A rule failed on the row and it has no error action.
    RuleFailed,
    /// An alert the sink gave up delivering, with no error action to take it.
    AlertFailed,
    /// The router failed on this message alone, again and again.
    Poison,
    /// Kafka refused the record for good.
    KafkaRefused,
    Other,
}

impl DlqReason {
    /// Every reason, in label order (dashboards, tests).
    pub const ALL: [DlqReason; 23] = [
        Self::Oversize,
        Self::NoDeviceId,
        Self::Unauthorized,
        Self::InvalidTopic,
        Self::NotUtf8,
        Self::InvalidJson,
        Self::NotAnObject,
        Self::InvalidProtobuf,
        Self::InvalidCbor,
        Self::InvalidSparkplug,
        Self::SparkplugUnknownAlias,
        Self::TooDeep,
        Self::TooManyFields,
        Self::EmptyFieldName,
        Self::FieldNameCollision,
        Self::SchemaFull,
        Self::CannotDecode,
        Self::BadRecord,
        Self::RuleFailed,
        Self::AlertFailed,
        Self::Poison,
        Self::KafkaRefused,
        Self::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Oversize => "oversize",
            Self::NoDeviceId => "no device id",
            Self::Unauthorized => "unauthorized",
            Self::InvalidTopic => "invalid topic",
            Self::NotUtf8 => "payload is not UTF-8",
            Self::InvalidJson => "invalid JSON",
            Self::NotAnObject => "payload is not a JSON object",
            Self::InvalidProtobuf => "invalid Protobuf",
            Self::InvalidCbor => "invalid CBOR",
            Self::InvalidSparkplug => "invalid Sparkplug B",
            Self::SparkplugUnknownAlias => "Sparkplug alias unknown",
            Self::TooDeep => "too deep",
            Self::TooManyFields => "too many fields",
            Self::EmptyFieldName => "empty field name",
            Self::FieldNameCollision => "field name collision",
            Self::SchemaFull => "schema full",
            Self::CannotDecode => "cannot decode",
            Self::BadRecord => "bad record",
            Self::RuleFailed => "rule failed",
            Self::AlertFailed => "alert delivery failed",
            Self::Poison => "poison",
            Self::KafkaRefused => "kafka refused",
            Self::Other => "other",
        }
    }

    /// The reason a dead-letter text states. Every text Sluice writes starts with its
    /// reason's label (or, for records and rules, a fixed form); anything else is `Other`.
    pub fn of(text: &str) -> Self {
        let starts = |label: &str| {
            text.strip_prefix(label).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with(':') || rest.starts_with(' ')
            })
        };
        if text.starts_with("rule '") {
            return Self::RuleFailed;
        }
        if text.starts_with("missing header")
            || text.starts_with("header ")
            || text.starts_with("key (device id)")
        {
            return Self::BadRecord;
        }
        Self::ALL
            .into_iter()
            .find(|r| *r != Self::Other && starts(r.label()))
            .unwrap_or(Self::Other)
    }
}

/// A record went to the dead-letter topic (`stage`: ingest, gateway or router).
pub struct DeadLettered<'a> {
    pub stage: &'static str,
    /// The full reason text (what the record's header carries).
    pub reason: &'a str,
    pub stats: &'a Stats,
}

impl Event for DeadLettered<'_> {
    fn emit(self) {
        let label = DlqReason::of(self.reason).label();
        tracing::debug!(stage = self.stage, reason = self.reason, "dead-lettered");
        DEAD_LETTERED.count_with(
            &[
                ("stage", self.stage.to_string()),
                ("reason", label.to_string()),
            ],
            1,
        );
        Stats::add(&self.stats.dead_lettered, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_text_sluice_writes_has_its_own_reason() {
        let cases = [
            (
                "oversize: 300 bytes > ingest.max_payload_bytes 256",
                DlqReason::Oversize,
            ),
            ("no device id at topic level 2", DlqReason::NoDeviceId),
            (
                "unauthorized: the topic names device \"b\"",
                DlqReason::Unauthorized,
            ),
            ("unauthorized", DlqReason::Unauthorized),
            (
                "invalid topic: a PUBLISH topic must be non-empty",
                DlqReason::InvalidTopic,
            ),
            ("payload is not UTF-8", DlqReason::NotUtf8),
            (
                "invalid Sparkplug B payload: failed to decode Protobuf message",
                DlqReason::InvalidSparkplug,
            ),
            (
                "Sparkplug alias unknown: NDATA of g/e: alias 1 was not named by an NBIRTH",
                DlqReason::SparkplugUnknownAlias,
            ),
            (
                "invalid JSON: EOF while parsing at line 1",
                DlqReason::InvalidJson,
            ),
            ("payload is not a JSON object", DlqReason::NotAnObject),
            (
                "too deep: nesting depth 40 > router.decode.max_depth 32",
                DlqReason::TooDeep,
            ),
            (
                "too many fields: 9 > router.decode.max_fields_per_message 8",
                DlqReason::TooManyFields,
            ),
            (
                "empty field name: every key must have",
                DlqReason::EmptyFieldName,
            ),
            (
                "field name collision: 'a.b' already names",
                DlqReason::FieldNameCollision,
            ),
            (
                "schema full: 3 new fields would pass",
                DlqReason::SchemaFull,
            ),
            ("cannot decode: bad", DlqReason::CannotDecode),
            ("missing header mqtt.topic", DlqReason::BadRecord),
            (
                "key (device id) is missing or not UTF-8",
                DlqReason::BadRecord,
            ),
            ("rule 'hot': Divide by zero", DlqReason::RuleFailed),
            ("alert delivery failed: HTTP 500", DlqReason::AlertFailed),
            ("poison: the router failed 3 times", DlqReason::Poison),
            ("oversized", DlqReason::Other),
            ("", DlqReason::Other),
        ];
        for (text, want) in cases {
            assert_eq!(DlqReason::of(text), want, "{text:?}");
        }
    }

    proptest! {
        // Whatever a device or a new error wording puts in the text, the label is one of the set.
        #[test]
        fn any_text_gets_a_label_from_the_bounded_set(text in ".{0,40}") {
            let label = DlqReason::of(&text).label();
            prop_assert!(DlqReason::ALL.iter().any(|r| r.label() == label));
        }
    }
}
