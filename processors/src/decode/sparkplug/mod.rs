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

/// The JSON objects of one batch's Sparkplug rows, in one buffer (no allocation per row).
#[derive(Debug, Default)]
pub struct MetricRows {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl MetricRows {
    pub fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Each row's JSON object.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(s, e)| &self.buf[s..*e])
    }

    /// Drops the rows from the `n`th on (a message refused halfway).
    fn truncate(&mut self, n: usize) {
        self.ends.truncate(n);
        self.buf.truncate(self.ends.last().copied().unwrap_or(0));
    }
}

/// Decodes one message into one JSON object per metric, appended to `rows`, updating the
/// edge node's state. `offset` is the record's (replays do not count `seq` gaps twice).
pub fn decode(
    births: &mut Births,
    topic: &str,
    payload: &[u8],
    partition: i32,
    offset: i64,
    rows: &mut MetricRows,
) -> Result<Seen, String> {
    let t = SparkplugTopic::parse(topic)?;
    let p = Payload::decode(payload).map_err(|e| format!("invalid Sparkplug B payload: {e}"))?;
    let key = state::node_key(t.group, t.edge);
    // Only births and deaths change what is saved; a DATA moves `seq` alone.
    let lifecycle = t.kind.ends_with("BIRTH") || t.kind.ends_with("DEATH");
    let node = births.node_mut(&key, partition, lifecycle)?;
    let mut seen = Seen::default();
    if t.kind != "NDEATH" && !t.kind.ends_with("CMD") {
        let seq = p.seq.unwrap_or(0) as u8;
        seen.seq_gap = node.saw_seq(seq, offset, t.kind == "NBIRTH");
    }
    let online = !t.kind.ends_with("DEATH");
    let mut unannounced = Aliases::new();
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
        ("DBIRTH", Some(device)) => {
            let d = node.device_mut(device)?;
            d.online = true;
            d.aliases.clear();
            &mut d.aliases
        }
        ("DDEATH", Some(device)) => {
            let d = node.device_mut(device)?;
            d.online = false;
            &mut d.aliases
        }
        // DATA of a device no DBIRTH announced is not remembered: named metrics still read.
        (_, Some(device)) => match node.devices.get_mut(device) {
            Some(d) => &mut d.aliases,
            None => &mut unannounced,
        },
    };
    let birth = t.kind.ends_with("BIRTH");
    let start = rows.len();
    for metric in &p.metrics {
        let (name, datatype) = match (&metric.name, metric.alias) {
            (Some(name), alias) => {
                let datatype = metric.datatype.unwrap_or(0);
                if let (true, Some(alias)) = (birth, alias) {
                    let name = name.clone();
                    aliases.insert(alias, MetricDef { name, datatype });
                }
                (name.as_str(), datatype)
            }
            (None, Some(alias)) => match aliases.get(&alias) {
                Some(def) => (def.name.as_str(), def.datatype),
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
        let datatype = metric.datatype.unwrap_or(datatype);
        write_row(rows, &t, &p, online, Some((metric, name, datatype)));
    }
    if p.metrics.is_empty() {
        // A death (or any message) without metrics still says something: one row.
        write_row(rows, &t, &p, online, None);
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

/// One row's JSON object, written straight into the batch's buffer (absent values are left
/// out: NULL).
fn write_row(
    rows: &mut MetricRows,
    t: &SparkplugTopic<'_>,
    p: &Payload,
    online: bool,
    metric: Option<(&Metric, &str, u32)>,
) {
    let mut o = Object::new(&mut rows.buf);
    o.str("group_id", t.group);
    o.str("edge_node", t.edge);
    if let Some(d) = t.device {
        o.str("device", d);
    }
    o.str("message_type", t.kind);
    o.raw("online", online);
    if let Some((metric, name, datatype)) = metric {
        o.str("metric", name);
        if let Some(a) = metric.alias {
            o.raw("alias", a);
        }
        o.str("datatype", data_type_name(datatype));
        if metric.is_null == Some(true) {
            o.raw("is_null", true);
        } else if let Some(v) = &metric.value {
            write_value(&mut o, datatype, v);
        }
        if metric.is_historical == Some(true) {
            o.raw("is_historical", true);
        }
        if let Some(ts) = metric.timestamp.and_then(|t| i64::try_from(t).ok()) {
            o.raw("metric_ts", ts);
        }
    }
    if let Some(ts) = p.timestamp.and_then(|t| i64::try_from(t).ok()) {
        o.raw("message_ts", ts);
    }
    if let Some(seq) = p.seq {
        o.raw("seq", seq);
    }
    o.end();
    rows.ends.push(rows.buf.len());
}

/// A value in the column of its kind.
fn write_value(o: &mut Object<'_>, datatype: u32, value: &Value) {
    match (datatype, value) {
        // Int8, Int16, Int32: two's complement in the 32 bits.
        (1, Value::Int(v)) => o.raw("int_value", *v as i8),
        (2, Value::Int(v)) => o.raw("int_value", *v as i16),
        (3, Value::Int(v)) => o.raw("int_value", *v as i32),
        (4, Value::Long(v)) => o.raw("int_value", *v as i64),
        (8, Value::Long(v)) if *v > i64::MAX as u64 => o.str("string_value", &v.to_string()),
        (_, Value::Int(v)) => o.raw("int_value", *v as i64),
        (_, Value::Long(v)) => o.raw("int_value", *v as i64),
        // The float's shortest decimal (0.1f32 is 0.1, not 0.10000000149011612).
        (_, Value::Float(v)) if v.is_finite() => o.raw("float_value", v),
        (_, Value::Double(v)) if v.is_finite() => o.f64("float_value", *v),
        (_, Value::Boolean(v)) => o.raw("bool_value", v),
        (_, Value::String(v)) => o.str("string_value", v),
        // NaN and infinities have no JSON form; DataSet, Template, bytes: no value column.
        _ => {}
    }
}

/// A JSON object written field by field.
struct Object<'b> {
    buf: &'b mut Vec<u8>,
    first: bool,
}

impl<'b> Object<'b> {
    fn new(buf: &'b mut Vec<u8>) -> Self {
        Self { buf, first: true }
    }

    fn key(&mut self, key: &str) {
        self.buf.push(if self.first { b'{' } else { b',' });
        self.first = false;
        self.buf.push(b'"');
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        let _ = serde_json::to_writer(&mut *self.buf, value);
    }

    /// A number or a bool, as Rust prints it (integers, bools, finite f32's shortest form).
    fn raw(&mut self, key: &str, value: impl std::fmt::Display) {
        use std::io::Write;
        self.key(key);
        let _ = write!(self.buf, "{value}");
    }

    fn f64(&mut self, key: &str, value: f64) {
        self.key(key);
        let _ = serde_json::to_writer(&mut *self.buf, &value);
    }

    fn end(self) {
        match self.first {
            true => self.buf.extend_from_slice(b"{}"),
            false => self.buf.push(b'}'),
        }
    }
}

#[cfg(test)]
mod tests;
