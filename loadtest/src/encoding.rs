//! How the load test's readings travel: JSON (the default), Protobuf (`--format protobuf
//! --proto F --message M`: the reading's fields set by name, the rest left unset), or as a
//! Sparkplug B edge-node fleet (`--format sparkplug`: each simulated device is an edge node
//! that sends an NBIRTH naming its metrics, then NDATA by alias only), so a capacity test
//! pays the decoding the fleet will.
//!
//! The Kafka observer reads `device`, `seq` and `sent_ms` back out of each record in the
//! same encoding.

use prost::Message;
use prost_reflect::{DeserializeOptions, DynamicMessage, MessageDescriptor};
use serde_json::{Map, Value};
use sluice_processors::decode::sparkplug::proto::{Metric, Payload, Value as SpValue};

/// The Sparkplug group the load test's edge nodes are in.
pub const SPARKPLUG_GROUP: &str = "sluice-loadtest";
/// Sparkplug aliases of the reading's own metrics (fields follow from 3).
const SEQ_ALIAS: u64 = 1;
const SENT_ALIAS: u64 = 2;

#[derive(Debug, Clone, Default)]
pub enum Encoding {
    #[default]
    Json,
    Protobuf(MessageDescriptor),
    Sparkplug,
}

impl Encoding {
    /// From `--format` and, for Protobuf, the `.proto` file and message name.
    pub fn parse(
        format: &str,
        proto: Option<&std::path::Path>,
        message: Option<&str>,
    ) -> anyhow::Result<Self> {
        Ok(match format {
            "json" => Encoding::Json,
            "sparkplug" => Encoding::Sparkplug,
            "protobuf" => {
                let (Some(proto), Some(message)) = (proto, message) else {
                    anyhow::bail!("--format protobuf needs --proto FILE and --message NAME");
                };
                let mut entry =
                    sluice_config::PayloadConfig::of("#", sluice_config::PayloadFormat::Protobuf);
                entry.proto = Some(proto.to_path_buf());
                entry.message = Some(message.to_string());
                if let Some(e) = entry.resolve(0, std::path::Path::new(".")).first() {
                    anyhow::bail!("{}", e.message);
                }
                Encoding::Protobuf(entry.descriptor.expect("resolved"))
            }
            other => anyhow::bail!("--format {other}: json, protobuf or sparkplug"),
        })
    }

    /// The topic a device's reading goes to (Sparkplug has its own namespace).
    pub fn topic(&self, template: &str, device: &str) -> String {
        match self {
            Encoding::Sparkplug => format!("spBv1.0/{SPARKPLUG_GROUP}/NDATA/{device}"),
            _ => template.replace("{device}", device),
        }
    }

    /// The reading (`device`, `seq`, `sent_ms`, the generated fields) in this encoding.
    pub fn encode(&self, reading: &Map<String, Value>, seq: u64) -> Vec<u8> {
        match self {
            Encoding::Json => serde_json::to_vec(reading).unwrap_or_default(),
            Encoding::Protobuf(d) => {
                let options = DeserializeOptions::new().deny_unknown_fields(false);
                let json = Value::Object(reading.clone());
                DynamicMessage::deserialize_with_options(d.clone(), json, &options)
                    .map(|m| m.encode_to_vec())
                    .unwrap_or_default()
            }
            Encoding::Sparkplug => sparkplug_data(reading, seq),
        }
    }

    /// What a device sends before its first reading: the Sparkplug NBIRTH naming its aliases.
    pub fn birth(&self, device: &str, reading: &Map<String, Value>) -> Option<(String, Vec<u8>)> {
        if !matches!(self, Encoding::Sparkplug) {
            return None;
        }
        let metrics = metrics_of(reading)
            .map(|(alias, name, value)| Metric::named(name, alias, datatype(&value), value))
            .collect();
        let birth = Payload {
            timestamp: Some(sluice_common::now_ms() as u64),
            seq: Some(0),
            metrics,
            ..Default::default()
        };
        let topic = format!("spBv1.0/{SPARKPLUG_GROUP}/NBIRTH/{device}");
        Some((topic, birth.encode_to_vec()))
    }

    /// `(device, seq, sent_ms)` of a record the pipeline put in Kafka (key: the device id).
    pub fn probe(&self, key: Option<&[u8]>, payload: &[u8]) -> Option<(String, u64, i64)> {
        let object = match self {
            // Straight into the three fields, as before formats: the observer reads every
            // record of a 150 000 msg/s run.
            Encoding::Json => {
                let p = serde_json::from_slice::<JsonProbe>(payload).ok()?;
                return Some((p.device, p.seq, p.sent_ms));
            }
            Encoding::Protobuf(d) => {
                let m = DynamicMessage::decode(d.clone(), payload).ok()?;
                let options = prost_reflect::SerializeOptions::new()
                    .use_proto_field_name(true)
                    .skip_default_fields(false);
                m.serialize_with_options(serde_json::value::Serializer, &options)
                    .ok()?
            }
            Encoding::Sparkplug => {
                let p = Payload::decode(payload).ok()?;
                let long = |alias| {
                    p.metrics
                        .iter()
                        .find_map(|m| match (&m.name, m.alias, &m.value) {
                            (None, Some(a), Some(SpValue::Long(v))) if a == alias => Some(*v),
                            _ => None,
                        })
                };
                let device = String::from_utf8(key?.to_vec()).ok()?;
                return Some((device, long(SEQ_ALIAS)?, long(SENT_ALIAS)? as i64));
            }
        };
        let device = object.get("device")?.as_str()?.to_string();
        let seq = object.get("seq")?;
        // Protobuf's JSON form writes 64-bit integers as strings.
        let number = |v: &Value| v.as_u64().or_else(|| v.as_str()?.parse().ok());
        let sent = object.get("sent_ms")?;
        let sent = sent.as_i64().or_else(|| sent.as_str()?.parse().ok())?;
        Some((device, number(seq)?, sent))
    }
}

#[derive(serde::Deserialize)]
struct JsonProbe {
    device: String,
    seq: u64,
    sent_ms: i64,
}

/// `(alias, name, value)` of a reading's metrics: seq, sent_ms, then each generated field.
fn metrics_of(reading: &Map<String, Value>) -> impl Iterator<Item = (u64, &str, SpValue)> {
    let fields = reading
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "device" | "seq" | "sent_ms"))
        .enumerate()
        .filter_map(|(i, (k, v))| Some((3 + i as u64, k.as_str(), sparkplug_value(v)?)));
    let own = [("seq", SEQ_ALIAS), ("sent_ms", SENT_ALIAS)]
        .into_iter()
        .filter_map(|(k, alias)| Some((alias, k, SpValue::Long(reading.get(k)?.as_i64()? as u64))));
    own.chain(fields)
}

fn sparkplug_value(v: &Value) -> Option<SpValue> {
    Some(match v {
        Value::Bool(b) => SpValue::Boolean(*b),
        Value::Number(n) => SpValue::Double(n.as_f64()?),
        Value::String(s) => SpValue::String(s.clone()),
        _ => return None,
    })
}

/// Sparkplug's data type number of a value the load test sends.
fn datatype(v: &SpValue) -> u32 {
    match v {
        SpValue::Long(_) => 8,
        SpValue::Double(_) => 10,
        SpValue::Boolean(_) => 11,
        _ => 12,
    }
}

/// An NDATA with every metric by alias only; Sparkplug's `seq` follows the NBIRTH's 0.
fn sparkplug_data(reading: &Map<String, Value>, seq: u64) -> Vec<u8> {
    let metrics = metrics_of(reading)
        .map(|(alias, _, value)| Metric::aliased(alias, value))
        .collect();
    Payload {
        timestamp: reading.get("sent_ms").and_then(|v| v.as_u64()),
        seq: Some((seq + 1) % 256),
        metrics,
        ..Default::default()
    }
    .encode_to_vec()
}
