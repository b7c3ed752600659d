//! Binary payloads (`[[payloads]]`: Protobuf, CBOR, Sparkplug B) → the JSON objects the
//! decoder reads.
//!
//! Each binary payload is decoded with its topic's schema and written out as one JSON object,
//! then the batch goes through the JSON paths like any other: the same columns, typing,
//! bounds and isolation, so a rule cannot tell how a reading travelled. Protobuf fields keep
//! their `.proto` names, every field is present (a proto3 zero is a 0, not a NULL), enums
//! are their names, 64-bit integers stay numbers (exact), nested messages are objects
//! (reachable as `a.b`), repeated fields are lists, bytes are base64.
//!
//! A Sparkplug B message gives one object per metric ([`super::sparkplug`]), each a row of
//! the batch with its record's metadata.
//!
//! A payload that does not decode is rejected with the reason and keeps its own bytes in
//! the dead-letter record (the reject points at the original record); nothing else in the
//! batch is affected.

use super::sparkplug::{self, state::SharedBirths};
use super::{RawBatch, Reject};
use crate::rule::topic::TopicFilter;
use prost_reflect::{DynamicMessage, MessageDescriptor, SerializeOptions};
use sluice_config::{PayloadConfig, PayloadFormat};

/// How one topic filter's payloads are encoded.
#[derive(Debug, Clone)]
enum Format {
    Json,
    Protobuf(MessageDescriptor),
    Cbor,
    Sparkplug,
}

/// The `[[payloads]]` entries, first match wins; JSON where none matches.
#[derive(Debug, Clone, Default)]
pub struct PayloadFormats {
    entries: Vec<(TopicFilter, Format)>,
    /// Sparkplug edge nodes' aliases, seq and liveness; shared with the router's changelog.
    births: SharedBirths,
}

/// A batch with its binary payloads turned into JSON.
pub struct Transcoded {
    /// The records that decoded, binary ones as JSON.
    pub raw: RawBatch,
    /// For each record of `raw`, its index in the batch given.
    pub origin: Vec<usize>,
    /// The records that did not decode (indexes into the batch given).
    pub rejects: Vec<Reject>,
}

impl PayloadFormats {
    /// From a loaded config. Entries whose filter or schema did not resolve were reported
    /// when the config was loaded; they are left out here.
    pub fn of(configs: &[PayloadConfig]) -> Self {
        let entries = configs
            .iter()
            .filter_map(|c| {
                let filter = TopicFilter::parse(&c.topics).ok()?;
                let format = match c.format {
                    PayloadFormat::Json => Format::Json,
                    PayloadFormat::Cbor => Format::Cbor,
                    PayloadFormat::Sparkplug => Format::Sparkplug,
                    PayloadFormat::Protobuf => Format::Protobuf(c.descriptor.clone()?),
                };
                Some((filter, format))
            })
            .collect();
        Self {
            entries,
            births: SharedBirths::default(),
        }
    }

    /// The Sparkplug state these formats decode with (the router saves and restores it).
    pub fn births(&self) -> SharedBirths {
        self.births.clone()
    }

    /// True when every payload is JSON (nothing to do).
    pub fn all_json(&self) -> bool {
        self.entries.iter().all(|(_, f)| matches!(f, Format::Json))
    }

    fn format_of(&self, topic: &str) -> &Format {
        self.entries
            .iter()
            .find(|(filter, _)| filter.matches(topic))
            .map_or(&Format::Json, |(_, f)| f)
    }

    /// `None` when no record of the batch is binary (the batch is decoded as it is).
    pub fn transcode(&self, raw: &RawBatch) -> Option<Transcoded> {
        if self.all_json() {
            return None;
        }
        let formats: Vec<&Format> = (0..raw.len())
            .map(|i| self.format_of(raw.topic(i)))
            .collect();
        if formats.iter().all(|f| matches!(f, Format::Json)) {
            return None;
        }
        let mut out = Transcoded {
            raw: RawBatch::default(),
            origin: Vec::with_capacity(raw.len()),
            rejects: vec![],
        };
        let mut json = Vec::new();
        let mut metric_rows = sparkplug::MetricRows::default();
        // Taken at the first Sparkplug record and held for the batch: one lock, not one each.
        let mut births = None;
        let mut seq_gaps = 0;
        for (i, format) in formats.into_iter().enumerate() {
            let payload = raw.payload(i);
            json.clear();
            let written = match format {
                Format::Json => {
                    out.raw.push_as(raw, i, payload);
                    out.origin.push(i);
                    continue;
                }
                Format::Protobuf(d) => protobuf_to_json(d, payload, &mut json),
                Format::Cbor => cbor_to_json(payload, &mut json),
                Format::Sparkplug => {
                    metric_rows.clear();
                    let births = births.get_or_insert_with(|| self.births.lock());
                    let (topic, p, o) = (raw.topic(i), raw.partition(i), raw.offset(i));
                    match sparkplug::decode(births, topic, payload, p, o, &mut metric_rows) {
                        Ok(seen) => {
                            seq_gaps += seen.seq_gap as u64;
                            for row in metric_rows.iter() {
                                out.raw.push_as(raw, i, row);
                                out.origin.push(i);
                            }
                        }
                        Err(reason) => out.rejects.push(Reject { index: i, reason }),
                    }
                    continue;
                }
            };
            match written {
                Ok(()) => {
                    out.raw.push_as(raw, i, &json);
                    out.origin.push(i);
                }
                Err(reason) => out.rejects.push(Reject { index: i, reason }),
            }
        }
        if seq_gaps > 0 {
            sluice_common::Event::emit(crate::events::SparkplugSeqGaps { gaps: seq_gaps });
        }
        Some(out)
    }
}

/// One Protobuf message as a JSON object.
pub fn protobuf_to_json(
    descriptor: &MessageDescriptor,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let message = DynamicMessage::decode(descriptor.clone(), payload)
        .map_err(|e| format!("invalid Protobuf ({}): {e}", descriptor.full_name()))?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false)
        .stringify_64_bit_integers(false);
    let mut serializer = serde_json::Serializer::new(out);
    message
        .serialize_with_options(&mut serializer, &options)
        .map_err(|e| format!("invalid Protobuf: {e}"))
}

/// One CBOR map as a JSON object (text keys; byte strings and tags are refused).
pub fn cbor_to_json(payload: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let value: serde_json::Value =
        ciborium::from_reader(payload).map_err(|e| format!("invalid CBOR: {e}"))?;
    if !value.is_object() {
        return Err("invalid CBOR: the payload is not a map".into());
    }
    serde_json::to_writer(out, &value).map_err(|e| format!("invalid CBOR: {e}"))
}
