//! Sparkplug B (`format = "sparkplug"`): each message → one row per metric.
//!
//! A message on `spBv1.0/<group>/<type>/<edge node>[/<device>]` is a Tahu `Payload`
//! ([`proto`]). Its rows are JSON objects the decoder reads like any payload:
//!
//! | column | |
//! |---|---|
//! | `group_id`, `edge_node`, `device` | from the topic (`device` only on D… messages) |
//! | `message_type` | `NBIRTH`, `NDATA`, `NDEATH`, `DBIRTH`, `DDATA`, `DDEATH`, `NCMD`, `DCMD` |
//! | `online` | false on NDEATH/DDEATH rows, true otherwise |
//! | `metric`, `alias`, `datatype` | the metric's name (from its BIRTH when DATA sends an alias), alias, type name |
//! | `int_value`, `float_value`, `bool_value`, `string_value` | the value, in the column of its kind (one per row) |
//! | `is_null`, `is_historical` | when the metric says so |
//! | `metric_ts`, `message_ts`, `seq` | the metric's and the message's time (ms since the epoch), the message's seq |
//!
//! The names stay clear of SQL keywords (`group`, `timestamp`), as every topic's rows share
//! one schema. Values sit in one column per kind, not one `value` column, because one edge node's
//! metrics have many types and a column has one. Integers are exact (Int8–Int64 signed as
//! Sparkplug encodes them, UInt64 past 2^63−1 as its decimal in `string_value`); Float keeps
//! its shortest decimal; DateTime is an `int_value` in ms. DataSet, Template, Bytes, File and
//! arrays give a row whose value is NULL, with their `datatype`.
//!
//! Aliases: a BIRTH names each alias ([`state`]); a DATA or CMD metric sent by alias only is
//! named through it. A DATA whose alias no BIRTH named is **dead-lettered** with the reason
//! (not held: holding would need a bound and a timeout, and the edge node is expected to
//! publish its BIRTH again when a host asks it to rebirth). `seq` gaps are counted. A death
//! marks the edge node (and its devices) or the device offline.

pub mod proto;
pub mod state;

use prost::Message;
use proto::{data_type_name, Metric, Payload, Value};
use serde_json::{Map, Value as Json};
use state::{Aliases, Births, MetricDef};

/// The topic namespace of Sparkplug B.
pub const NAMESPACE: &str = "spBv1.0";

/// A Sparkplug topic's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparkplugTopic<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub edge: &'a str,
    pub device: Option<&'a str>,
}

impl<'a> SparkplugTopic<'a> {
    pub fn parse(topic: &'a str) -> Result<Self, String> {
        let parts: Vec<&str> = topic.split('/').collect();
        let bad = || {
            format!(
                "invalid Sparkplug B topic '{topic}': spBv1.0/<group>/<NBIRTH|NDATA|NDEATH|DBIRTH|DDATA|DDEATH|NCMD|DCMD>/<edge node>[/<device>]"
            )
        };
        let (group, kind, edge, device) = match parts.as_slice() {
            [NAMESPACE, g, k, e] => (*g, *k, *e, None),
            [NAMESPACE, g, k, e, d] => (*g, *k, *e, Some(*d)),
            _ => return Err(bad()),
        };
        let node_kind = matches!(kind, "NBIRTH" | "NDATA" | "NDEATH" | "NCMD");
        let device_kind = matches!(kind, "DBIRTH" | "DDATA" | "DDEATH" | "DCMD");
        let ok = !group.is_empty()
            && !edge.is_empty()
            && ((node_kind && device.is_none())
                || (device_kind && device.is_some_and(|d| !d.is_empty())));
        match ok {
            true => Ok(Self {
                group,
                kind,
                edge,
                device,
            }),
            false => Err(bad()),
        }
    }
}

/// What decoding one message found besides its rows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The message's `seq` was not the one after the edge node's last.
    pub seq_gap: bool,
}

/// Decodes one message into one JSON object per metric, appended to `rows`, updating the
/// edge node's state. `offset` is the record's (replays do not count `seq` gaps twice).
pub fn decode(
    births: &mut Births,
    topic: &str,
    payload: &[u8],
    partition: i32,
    offset: i64,
    rows: &mut Vec<Vec<u8>>,
) -> Result<Seen, String> {
    let t = SparkplugTopic::parse(topic)?;
    let p = Payload::decode(payload).map_err(|e| format!("invalid Sparkplug B payload: {e}"))?;
    let key = state::node_key(t.group, t.edge);
    let node = births.node_mut(&key, partition)?;
    let mut seen = Seen::default();
    if t.kind != "NDEATH" && !t.kind.ends_with("CMD") {
        let seq = p.seq.unwrap_or(0) as u8;
        seen.seq_gap = node.saw_seq(seq, offset, t.kind == "NBIRTH");
    }
    let online = !t.kind.ends_with("DEATH");
    // The alias table this message's metrics are named by (and a BIRTH fills).
    let aliases: &mut Aliases = match (t.kind, t.device) {
        ("NBIRTH", _) => {
            node.online = true;
            node.aliases.clear();
            node.devices.clear();
            &mut node.aliases
        }
        ("NDEATH", _) => {
            node.online = false;
            node.devices.values_mut().for_each(|d| d.online = false);
            &mut node.aliases
        }
        (_, None) => &mut node.aliases,
        (kind, Some(device)) => {
            let d = node.device_mut(device)?;
            match kind {
                "DBIRTH" => {
                    d.online = true;
                    d.aliases.clear();
                }
                "DDEATH" => d.online = false,
                _ => {}
            }
            &mut d.aliases
        }
    };
    let birth = t.kind.ends_with("BIRTH");
    let start = rows.len();
    for metric in &p.metrics {
        let def = match (&metric.name, metric.alias) {
            (Some(name), alias) => {
                let def = MetricDef {
                    name: name.clone(),
                    datatype: metric.datatype.unwrap_or(0),
                };
                if let (true, Some(alias)) = (birth, alias) {
                    aliases.insert(alias, def.clone());
                }
                def
            }
            (None, Some(alias)) => match aliases.get(&alias) {
                Some(def) => def.clone(),
                None => {
                    rows.truncate(start);
                    return Err(unknown_alias(&t, alias));
                }
            },
            (None, None) => {
                rows.truncate(start);
                return Err(format!(
                    "invalid Sparkplug B payload: a metric of {} of {key} has neither a name nor an alias",
                    t.kind
                ));
            }
        };
        rows.push(as_json(row(&t, &p, metric, Some(&def), online)));
    }
    if p.metrics.is_empty() {
        // A death (or any message) without metrics still says something: one row.
        rows.push(as_json(row(&t, &p, &Metric::default(), None, online)));
    }
    Ok(seen)
}

fn unknown_alias(t: &SparkplugTopic<'_>, alias: u64) -> String {
    let birth = match t.device {
        Some(_) => "a DBIRTH",
        None => "an NBIRTH",
    };
    format!(
        "Sparkplug alias unknown: {} of {}/{}{}: alias {alias} was not named by {birth} (DATA before BIRTH: the edge node must publish its BIRTH again)",
        t.kind,
        t.group,
        t.edge,
        t.device.map(|d| format!("/{d}")).unwrap_or_default()
    )
}

/// One metric's row as a JSON object (absent values left out: NULL).
fn row(
    t: &SparkplugTopic<'_>,
    p: &Payload,
    metric: &Metric,
    def: Option<&MetricDef>,
    online: bool,
) -> Map<String, Json> {
    let mut m = Map::new();
    m.insert("group_id".into(), t.group.into());
    m.insert("edge_node".into(), t.edge.into());
    if let Some(d) = t.device {
        m.insert("device".into(), d.into());
    }
    m.insert("message_type".into(), t.kind.into());
    m.insert("online".into(), online.into());
    if let Some(def) = def {
        m.insert("metric".into(), def.name.clone().into());
        if let Some(a) = metric.alias {
            m.insert("alias".into(), a.into());
        }
        let datatype = metric.datatype.unwrap_or(def.datatype);
        m.insert("datatype".into(), data_type_name(datatype).into());
        if metric.is_null == Some(true) {
            m.insert("is_null".into(), true.into());
        } else if let Some((column, value)) = value_column(datatype, metric.value.as_ref()) {
            m.insert(column.into(), value);
        }
    }
    if metric.is_historical == Some(true) {
        m.insert("is_historical".into(), true.into());
    }
    if let Some(ts) = metric.timestamp.and_then(|t| i64::try_from(t).ok()) {
        m.insert("metric_ts".into(), ts.into());
    }
    if let Some(ts) = p.timestamp.and_then(|t| i64::try_from(t).ok()) {
        m.insert("message_ts".into(), ts.into());
    }
    if let Some(seq) = p.seq {
        m.insert("seq".into(), seq.into());
    }
    m
}

fn as_json(row: Map<String, Json>) -> Vec<u8> {
    serde_json::to_vec(&row).unwrap_or_default()
}

/// The column a value of `datatype` goes to, and the value.
fn value_column(datatype: u32, value: Option<&Value>) -> Option<(&'static str, Json)> {
    Some(match (datatype, value?) {
        // Int8, Int16, Int32: two's complement in the 32 bits.
        (1, Value::Int(v)) => ("int_value", (*v as i8).into()),
        (2, Value::Int(v)) => ("int_value", (*v as i16).into()),
        (3, Value::Int(v)) => ("int_value", (*v as i32).into()),
        (4, Value::Long(v)) => ("int_value", (*v as i64).into()),
        (8, Value::Long(v)) if *v > i64::MAX as u64 => ("string_value", v.to_string().into()),
        (_, Value::Int(v)) => ("int_value", (*v as i64).into()),
        (_, Value::Long(v)) => ("int_value", (*v as i64).into()),
        // The float's shortest decimal (0.1f32 is 0.1, not 0.10000000149011612).
        (_, Value::Float(v)) => ("float_value", finite(v.to_string().parse().ok()?)?),
        (_, Value::Double(v)) => ("float_value", finite(*v)?),
        (_, Value::Boolean(v)) => ("bool_value", (*v).into()),
        (_, Value::String(v)) => ("string_value", v.clone().into()),
        _ => return None,
    })
}

/// NaN and infinities have no JSON form: NULL.
fn finite(v: f64) -> Option<Json> {
    serde_json::Number::from_f64(v).map(Json::Number)
}

/// Encodes a payload (tests, the load generator).
pub fn encode(payload: &Payload) -> Vec<u8> {
    payload.encode_to_vec()
}

#[cfg(test)]
mod tests;
