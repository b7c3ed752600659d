//! The records of one batch before decoding, stored column by column: one growing buffer per
//! column instead of one allocation per record.

use crate::record::TelemetryRecord;
use arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use std::sync::Arc;

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
            redelivered: false,
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
                redelivered: false,
                payload: self.payload(i),
            };
            out.push(&rec, self.partition(i), self.offset(i));
        }
        out
    }
}

/// The batch's metadata as Arrow columns, for the decoded batch's metadata fields.
impl RawBatch {
    /// Device ids, topics, receive times, partitions and offsets of the records `rows`
    /// (ascending). When `rows` is every record (a batch with no rejects) each column is one
    /// copy of its buffer instead of a value-by-value build.
    pub fn metadata_columns(&self, rows: &[usize]) -> [ArrayRef; 5] {
        let all = rows.len() == self.len();
        let strings = |buf: &[u8], ends: &[usize]| match all
            .then(|| whole_string_column(buf, ends))
            .flatten()
        {
            Some(column) => column,
            None => {
                StringArray::from_iter_values(rows.iter().map(|&i| as_str(slice(buf, ends, i))))
            }
        };
        let device = strings(&self.device_ids, &self.device_id_ends);
        let topic = strings(&self.topics, &self.topic_ends);
        let pick = |column: &[i64]| -> Vec<i64> {
            match all {
                true => column.to_vec(),
                false => rows.iter().map(|&i| column[i]).collect(),
            }
        };
        let partitions: Vec<i32> = match all {
            true => self.partitions.clone(),
            false => rows.iter().map(|&i| self.partitions[i]).collect(),
        };
        [
            Arc::new(device),
            Arc::new(topic),
            Arc::new(TimestampMillisecondArray::from(pick(&self.received_ms)).with_timezone("UTC")),
            Arc::new(Int32Array::from(partitions)),
            Arc::new(Int64Array::from(pick(&self.offsets))),
        ]
    }
}

/// Every value of a string column stored as one buffer and its end offsets; `None` past
/// Arrow's 2 GiB offsets (a batch never gets there).
fn whole_string_column(buf: &[u8], ends: &[usize]) -> Option<StringArray> {
    let mut offsets = Vec::with_capacity(ends.len() + 1);
    offsets.push(0i32);
    for &end in ends {
        offsets.push(i32::try_from(end).ok()?);
    }
    let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
    // Checked: the values were pushed as `&str`, so this validation always passes.
    StringArray::try_new(offsets, Buffer::from_slice_ref(buf), None).ok()
}
