//! The records of one batch before decoding, stored column by column: one growing buffer per
//! column instead of one allocation per record.

use crate::record::TelemetryRecord;

/// Records gathered for one batch, stored column by column.
#[derive(Debug, Default, Clone)]
pub struct RawBatch {
    payloads: Vec<u8>,
    payload_ends: Vec<usize>,
    device_ids: Vec<u8>,
    device_id_ends: Vec<usize>,
    topics: Vec<u8>,
    topic_ends: Vec<usize>,
    received_ms: Vec<i64>,
    partitions: Vec<i32>,
    offsets: Vec<i64>,
}

fn slice<'a>(buf: &'a [u8], ends: &[usize], i: usize) -> &'a [u8] {
    let start = if i == 0 { 0 } else { ends[i - 1] };
    &buf[start..ends[i]]
}

fn as_str(bytes: &[u8]) -> &str {
    // Device ids and topics are pushed as &str, so the bytes are UTF-8.
    std::str::from_utf8(bytes).unwrap_or_default()
}

impl RawBatch {
    pub fn push(&mut self, rec: &TelemetryRecord<'_>, partition: i32, offset: i64) {
        self.payloads.extend_from_slice(rec.payload);
        self.payload_ends.push(self.payloads.len());
        self.device_ids.extend_from_slice(rec.device_id.as_bytes());
        self.device_id_ends.push(self.device_ids.len());
        self.topics.extend_from_slice(rec.mqtt_topic.as_bytes());
        self.topic_ends.push(self.topics.len());
        self.received_ms.push(rec.received_ms);
        self.partitions.push(partition);
        self.offsets.push(offset);
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    pub fn clear(&mut self) {
        *self = RawBatch {
            payloads: std::mem::take(&mut self.payloads),
            ..Default::default()
        };
        self.payloads.clear();
    }

    pub fn payload(&self, i: usize) -> &[u8] {
        slice(&self.payloads, &self.payload_ends, i)
    }

    pub fn device_id(&self, i: usize) -> &str {
        as_str(slice(&self.device_ids, &self.device_id_ends, i))
    }

    pub fn topic(&self, i: usize) -> &str {
        as_str(slice(&self.topics, &self.topic_ends, i))
    }

    pub fn received_ms(&self, i: usize) -> i64 {
        self.received_ms[i]
    }

    pub fn partition(&self, i: usize) -> i32 {
        self.partitions[i]
    }

    pub fn offset(&self, i: usize) -> i64 {
        self.offsets[i]
    }
}

impl RawBatch {
    /// Record `i` of `from` with another payload (a binary payload turned into JSON).
    pub fn push_as(&mut self, from: &RawBatch, i: usize, payload: &[u8]) {
        let rec = TelemetryRecord {
            device_id: from.device_id(i),
            mqtt_topic: from.topic(i),
            received_ms: from.received_ms(i),
            payload,
        };
        self.push(&rec, from.partition(i), from.offset(i));
    }

    /// The records at `indices`, in that order (the router bisects a batch with it).
    pub fn subset(&self, indices: impl IntoIterator<Item = usize>) -> RawBatch {
        let mut out = RawBatch::default();
        for i in indices {
            let rec = TelemetryRecord {
                device_id: self.device_id(i),
                mqtt_topic: self.topic(i),
                received_ms: self.received_ms(i),
                payload: self.payload(i),
            };
            out.push(&rec, self.partition(i), self.offset(i));
        }
        out
    }
}
