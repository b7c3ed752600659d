//! JSON payloads → one Arrow `RecordBatch` per batch of records.
//!
//! The router appends records to a [`RawBatch`] (columnar buffers, no per-record allocation
//! beyond the buffers' growth) and hands it to [`BatchDecoder::decode`] once it holds
//! `max_rows` records or `max_wait_ms` passed. Decoding parses each payload once, checks it
//! against the running schema ([`schema`]), and builds every column in one pass with
//! arrow-json. Records that are not UTF-8, not JSON or not a JSON object come back as
//! [`Reject`]s with a reason for the dead-letter topic; the rest of the batch goes on.

mod exact;
pub mod flatten;
pub mod schema;

use crate::record::TelemetryRecord;
use arrow::array::TimestampMillisecondArray;
use arrow::array::{
    ArrayRef, Int32Array, Int64Array, RecordBatch, RecordBatchOptions, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow_json::reader::{infer_json_schema_from_iterator, ReaderBuilder};
use serde_json::Value;
use std::sync::Arc;

/// Metadata column names, added after the payload fields.
pub const DEVICE_ID: &str = "_device_id";
pub const TOPIC: &str = "_topic";
pub const RECEIVED_AT: &str = "_received_at";
pub const PARTITION: &str = "_partition";
pub const OFFSET: &str = "_offset";

/// The metadata fields, in column order.
pub fn metadata_fields() -> Vec<Field> {
    vec![
        Field::new(DEVICE_ID, DataType::Utf8, false),
        Field::new(TOPIC, DataType::Utf8, false),
        Field::new(
            RECEIVED_AT,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new(PARTITION, DataType::Int32, false),
        Field::new(OFFSET, DataType::Int64, false),
    ]
}

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

/// A record that could not be decoded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub index: usize,
    pub reason: String,
}

/// The result of decoding one [`RawBatch`].
#[derive(Debug)]
pub struct Decoded {
    /// Payload columns then metadata columns; `None` when every record was rejected.
    pub batch: Option<RecordBatch>,
    pub rejects: Vec<Reject>,
    /// Values set to NULL because their type did not fit the schema.
    pub nulled: usize,
}

/// Decodes batches against a running schema that grows as new fields appear.
#[derive(Debug)]
pub struct BatchDecoder {
    payload_schema: SchemaRef,
    full_schema: SchemaRef,
}

impl Default for BatchDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchDecoder {
    pub fn new() -> Self {
        let payload_schema = Arc::new(Schema::empty());
        let full_schema = with_metadata(&payload_schema);
        Self {
            payload_schema,
            full_schema,
        }
    }

    /// The schema of decoded batches; the same `Arc` until a new field appears.
    pub fn schema(&self) -> &SchemaRef {
        &self.full_schema
    }

    pub fn decode(&mut self, raw: &RawBatch) -> Decoded {
        if let Some(batch) = self.decode_fast(raw) {
            let all: Vec<usize> = (0..raw.len()).collect();
            if let Ok(batch) = self.attach_metadata(batch, raw, &all) {
                return Decoded {
                    batch: Some(batch),
                    rejects: vec![],
                    nulled: 0,
                };
            }
        }
        self.decode_checked(raw)
    }

    /// The steady-state path: arrow-json's tape decoder straight from the payload bytes,
    /// strict about the schema. It gives up (returns `None`) on anything unusual — a record
    /// that is not exactly one JSON object, a field the schema lacks, a value of another
    /// type — and the checked path then handles that batch record by record.
    fn decode_fast(&self, raw: &RawBatch) -> Option<RecordBatch> {
        if self.payload_schema.fields().is_empty() || raw.is_empty() {
            return None;
        }
        let mut decoder = ReaderBuilder::new(exact::as_float_schema(&self.payload_schema))
            .with_batch_size(raw.len())
            .with_coerce_primitive(true)
            .with_strict_mode(true)
            .build_decoder()
            .ok()?;
        for i in 0..raw.len() {
            let bytes = raw.payload(i);
            let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
            if first != Some(&b'{') {
                return None;
            }
            let consumed = decoder.decode(bytes).ok()?;
            if consumed != bytes.len() || decoder.has_partial_record() || decoder.len() != i + 1 {
                return None;
            }
        }
        let batch = decoder.flush().ok()??;
        if batch.num_rows() != raw.len() {
            return None;
        }
        let columns = batch
            .columns()
            .iter()
            .zip(self.payload_schema.fields())
            .map(|(c, f)| exact::narrow(c, f.data_type()))
            .collect::<Option<Vec<_>>>()?;
        RecordBatch::try_new(self.payload_schema.clone(), columns).ok()
    }

    /// Parses every record, dead-letters what is not a JSON object, evolves the schema and
    /// nulls values of the wrong type.
    fn decode_checked(&mut self, raw: &RawBatch) -> Decoded {
        let (mut values, good, mut rejects) = parse_payloads(raw);
        let mut outcome = schema::conform_rows(&mut values, self.payload_schema.fields());
        if outcome.needs_merge {
            let nulled = outcome.nulled;
            self.evolve(&values);
            outcome = schema::conform_rows(&mut values, self.payload_schema.fields());
            outcome.nulled += nulled;
        }
        let payload = match self.decode_values(&values) {
            Ok(batch) => Some(batch),
            Err(_) => None,
        };
        let (payload, good) = match payload {
            Some(p) => (p, good),
            None => self.decode_row_by_row(&values, good, &mut rejects),
        };
        rejects.sort_by_key(|r| r.index);
        let batch = (!good.is_empty())
            .then(|| self.attach_metadata(payload, raw, &good))
            .transpose()
            .unwrap_or_else(|e| {
                // Columns are built for exactly the good rows, so this is a bug if it happens.
                tracing::error!(error = %e, "internal: metadata columns do not fit the batch");
                None
            });
        Decoded {
            batch,
            rejects,
            nulled: outcome.nulled,
        }
    }

    fn evolve(&mut self, values: &[Value]) {
        let inferred = infer_json_schema_from_iterator(values.iter().map(Ok::<_, ArrowError>))
            .or_else(|_| infer_each(values));
        if let Ok(inferred) = inferred {
            let merged = schema::merge_schema(&self.payload_schema, &inferred);
            if merged != *self.payload_schema {
                self.payload_schema = Arc::new(merged);
                self.full_schema = with_metadata(&self.payload_schema);
            }
        }
    }

    fn decode_values(&self, values: &[Value]) -> Result<RecordBatch, ArrowError> {
        if self.payload_schema.fields().is_empty() {
            let options = RecordBatchOptions::new().with_row_count(Some(values.len()));
            return RecordBatch::try_new_with_options(
                self.payload_schema.clone(),
                vec![],
                &options,
            );
        }
        let mut decoder = ReaderBuilder::new(self.payload_schema.clone())
            .with_batch_size(values.len().max(1))
            .with_coerce_primitive(true)
            .with_strict_mode(false)
            .build_decoder()?;
        decoder.serialize(values)?;
        Ok(decoder
            .flush()?
            .unwrap_or_else(|| RecordBatch::new_empty(self.payload_schema.clone())))
    }

    /// Slow path for a batch arrow-json refused as a whole: find the rows it refuses.
    fn decode_row_by_row(
        &self,
        values: &[Value],
        good: Vec<usize>,
        rejects: &mut Vec<Reject>,
    ) -> (RecordBatch, Vec<usize>) {
        let mut batches = Vec::new();
        let mut kept = Vec::new();
        for (value, index) in values.iter().zip(good) {
            match self.decode_values(std::slice::from_ref(value)) {
                Ok(b) => {
                    batches.push(b);
                    kept.push(index);
                }
                Err(e) => rejects.push(Reject {
                    index,
                    reason: format!("cannot decode: {e}"),
                }),
            }
        }
        let batch = arrow::compute::concat_batches(&self.payload_schema, &batches)
            .unwrap_or_else(|_| RecordBatch::new_empty(self.payload_schema.clone()));
        (batch, kept)
    }

    fn attach_metadata(
        &self,
        payload: RecordBatch,
        raw: &RawBatch,
        good: &[usize],
    ) -> Result<RecordBatch, ArrowError> {
        let mut columns = flatten::flat_columns(payload.columns());
        columns.extend(metadata_columns(raw, good));
        RecordBatch::try_new(self.full_schema.clone(), columns)
    }
}

/// The decoded batch's schema: the payload fields, flattened, then the metadata fields.
fn with_metadata(payload: &Schema) -> SchemaRef {
    let mut fields = flatten::flat_fields(payload.fields());
    fields.extend(metadata_fields());
    Arc::new(Schema::new(fields))
}

fn infer_each(values: &[Value]) -> Result<Schema, ArrowError> {
    let mut acc = Schema::empty();
    for v in values {
        if let Ok(s) = infer_json_schema_from_iterator(std::iter::once(Ok::<_, ArrowError>(v))) {
            acc = schema::merge_schema(&acc, &s);
        }
    }
    Ok(acc)
}

/// Parses every payload once; returns the objects, their record indices and the rejects.
fn parse_payloads(raw: &RawBatch) -> (Vec<Value>, Vec<usize>, Vec<Reject>) {
    let mut values = Vec::with_capacity(raw.len());
    let mut good = Vec::with_capacity(raw.len());
    let mut rejects = Vec::new();
    for index in 0..raw.len() {
        let bytes = raw.payload(index);
        let reason = if std::str::from_utf8(bytes).is_err() {
            Some("payload is not UTF-8".to_string())
        } else {
            match serde_json::from_slice::<Value>(bytes) {
                Ok(v @ Value::Object(_)) => {
                    values.push(v);
                    good.push(index);
                    None
                }
                Ok(_) => Some("payload is not a JSON object".to_string()),
                Err(e) => Some(format!("invalid JSON: {e}")),
            }
        };
        if let Some(reason) = reason {
            rejects.push(Reject { index, reason });
        }
    }
    (values, good, rejects)
}

fn metadata_columns(raw: &RawBatch, good: &[usize]) -> Vec<ArrayRef> {
    let mut device = StringBuilder::with_capacity(good.len(), good.len() * 16);
    let mut topic = StringBuilder::with_capacity(good.len(), good.len() * 32);
    for &i in good {
        device.append_value(raw.device_id(i));
        topic.append_value(raw.topic(i));
    }
    let received: TimestampMillisecondArray =
        good.iter().map(|&i| Some(raw.received_ms(i))).collect();
    let partition: Int32Array = good.iter().map(|&i| Some(raw.partition(i))).collect();
    let offset: Int64Array = good.iter().map(|&i| Some(raw.offset(i))).collect();
    vec![
        Arc::new(device.finish()),
        Arc::new(topic.finish()),
        Arc::new(received.with_timezone("UTC")),
        Arc::new(partition),
        Arc::new(offset),
    ]
}

#[cfg(test)]
mod tests;
