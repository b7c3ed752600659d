//! JSON payloads → one Arrow `RecordBatch` per batch of records.
//!
//! The router appends records to a [`RawBatch`] (columnar buffers, no per-record allocation
//! beyond the buffers' growth) and hands it to [`BatchDecoder::decode`] once it holds
//! `max_rows` records or `max_wait_ms` passed.
//!
//! Two paths give the same rows for the same message, whatever else is in the batch:
//! - the **fast path** decodes the payload bytes straight into the running schema with
//!   arrow-json's tape decoder, strictly; anything unusual (a new field, a value of another
//!   type, a record that is not one JSON object) makes it give up on the whole batch;
//! - the **checked path** ([`BatchDecoder::decode_checked`]) parses each payload, rejects what
//!   is not a JSON object or passes a bound ([`limits`]), checks every value against the
//!   running schema ([`schema`]: a conflicting value is NULL for its message and counted),
//!   admits new fields ([`infer`], [`fields`]: a cap, no name collisions) and builds the batch.
//!
//! A batch with a few odd messages is split ([`split`]): the messages that fit ([`fits`]) on
//! the fast path, the others on the checked path. A property test (`tests.rs`) holds the
//! paths to the same output. Rejected records come
//! back as [`Reject`]s with a reason for the dead-letter topic; the rest of the batch goes on.

pub mod exact;
pub mod fields;
mod fits;
pub mod flatten;
pub mod formats;
pub mod infer;
pub mod limits;
pub mod schema;
pub mod sparkplug;
mod split;

pub use limits::DecodeLimits;
pub use sluice_core::RawBatch;

use arrow::array::{Array, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{Field, Fields, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow_json::reader::ReaderBuilder;
use fields::{FieldIndex, LastSeen};
use serde_json::{Map, Value};
use sluice_common::Event;
use std::sync::Arc;
use std::time::Instant;

pub use sluice_core::meta::{metadata_fields, DEVICE_ID, OFFSET, PARTITION, RECEIVED_AT, TOPIC};

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
    /// For each row of `batch`, the index of its record in the batch given: one row per
    /// record, except a Sparkplug message's, which has one per metric.
    pub record_of: Vec<usize>,
    pub rejects: Vec<Reject>,
    /// Values set to NULL because their type did not fit the schema.
    pub nulled: usize,
    /// Top-level fields that left the schema, unseen for `router.decode.field_ttl_secs`.
    pub retired: usize,
}

/// One payload on the checked path: its record index and its JSON object.
struct Row {
    index: usize,
    map: Map<String, Value>,
}

/// Decodes batches against a running schema that grows as new fields appear.
#[derive(Debug, Clone)]
pub struct BatchDecoder {
    payload_schema: SchemaRef,
    /// `payload_schema` with every integer read as a float (see [`exact`]).
    fast_schema: SchemaRef,
    full_schema: SchemaRef,
    /// Leaf fields of `payload_schema` (the most one message that fits it can carry).
    leaves: usize,
    limits: DecodeLimits,
    last_seen: LastSeen,
    /// `[[payloads]]`: binary formats turned into JSON before decoding ([`formats`]).
    formats: formats::PayloadFormats,
    /// Devices that sent messages which do not fit the schema lately: while there are any, a
    /// batch is split ([`split`]) without first trying the fast path on the whole of it.
    odd_devices: split::OddDevices,
}

impl Default for BatchDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchDecoder {
    pub fn new() -> Self {
        Self::with_limits(DecodeLimits::default())
    }

    pub fn with_limits(limits: DecodeLimits) -> Self {
        let mut d = Self {
            payload_schema: Arc::new(Schema::empty()),
            fast_schema: Arc::new(Schema::empty()),
            full_schema: Arc::new(Schema::empty()),
            leaves: 0,
            limits,
            last_seen: LastSeen::default(),
            formats: formats::PayloadFormats::default(),
            odd_devices: split::OddDevices::default(),
        };
        d.set_payload_schema(Schema::empty());
        d
    }

    /// The schema of decoded batches; the same `Arc` until the fields change.
    pub fn schema(&self) -> &SchemaRef {
        &self.full_schema
    }

    fn set_payload_schema(&mut self, schema: Schema) {
        self.fast_schema = exact::as_float_schema(&schema);
        self.leaves = flatten::flat_fields(schema.fields()).len();
        self.payload_schema = Arc::new(schema);
        self.full_schema = with_metadata(&self.payload_schema);
    }

    /// Reads the payloads on the topics of `[[payloads]]` entries in their format.
    pub fn with_formats(mut self, formats: formats::PayloadFormats) -> Self {
        self.formats = formats;
        self
    }

    /// Decodes a batch: binary payloads become JSON objects first (a payload that does not
    /// decode is rejected; rejects always index `raw`).
    pub fn decode(&mut self, raw: &RawBatch) -> Decoded {
        let Some(binary) = self.formats.transcode(raw) else {
            let mut decoded = self.decode_json(raw);
            decoded.record_of = rows_left(raw.len(), &decoded.rejects);
            return decoded;
        };
        let mut decoded = self.decode_json(&binary.raw);
        decoded.record_of = rows_left(binary.raw.len(), &decoded.rejects)
            .into_iter()
            .map(|row| binary.origin[row])
            .collect();
        for r in &mut decoded.rejects {
            r.index = binary.origin[r.index];
        }
        decoded.rejects.extend(binary.rejects);
        // One dead letter per record, even when several of its metrics' rows were refused.
        decoded.rejects.sort_by_key(|r| r.index);
        decoded.rejects.dedup_by_key(|r| r.index);
        decoded
    }

    fn decode_json(&mut self, raw: &RawBatch) -> Decoded {
        let now = Instant::now();
        let retired = self.retire_stale(now);
        let all: Vec<usize> = (0..raw.len()).collect();
        let fast = match self.odd_devices.is_empty() {
            true => self.decode_fast_rows(raw, &all),
            false => None,
        };
        let mut decoded = match fast {
            Some(payload) => self.fast_decoded(payload, raw, &all, now),
            None => self.decode_split(raw, now),
        };
        decoded.retired = retired;
        decoded
    }

    /// The rows `rows` of `raw`, decoded on the fast path into `payload`, with their metadata.
    fn fast_decoded(
        &mut self,
        payload: RecordBatch,
        raw: &RawBatch,
        rows: &[usize],
        now: Instant,
    ) -> Decoded {
        self.saw_columns(&payload, now);
        match self.attach_metadata(payload, raw, rows) {
            Ok(batch) => Decoded {
                batch: Some(batch),
                record_of: vec![],
                rejects: vec![],
                nulled: 0,
                retired: 0,
            },
            Err(_) => self.decode_checked(raw, now),
        }
    }

    /// Drops top-level fields no message carried for the TTL; how many went.
    fn retire_stale(&mut self, now: Instant) -> usize {
        let Some(ttl) = self.limits.field_ttl else {
            return 0;
        };
        let stale = self.last_seen.stale(&self.payload_schema, ttl, now);
        if stale.is_empty() {
            return 0;
        }
        let kept: Vec<Field> = self
            .payload_schema
            .fields()
            .iter()
            .filter(|f| !stale.contains(f.name()))
            .map(|f| f.as_ref().clone())
            .collect();
        self.set_payload_schema(Schema::new(kept));
        stale.len()
    }

    fn saw_columns(&mut self, batch: &RecordBatch, now: Instant) {
        for (field, column) in self.payload_schema.fields().iter().zip(batch.columns()) {
            if column.null_count() < column.len() {
                self.last_seen.saw(field.name(), now);
            }
        }
    }

    /// The steady-state path: arrow-json's tape decoder straight from the payload bytes,
    /// strict about the schema. It gives up (returns `None`) on anything unusual — a record
    /// that is not exactly one JSON object, a field the schema lacks, a value of another
    /// type, a number that is not finite — and the checked path then handles that batch.
    pub fn decode_fast(&self, raw: &RawBatch) -> Option<RecordBatch> {
        let all: Vec<usize> = (0..raw.len()).collect();
        self.decode_fast_rows(raw, &all)
    }

    /// [`BatchDecoder::decode_fast`] of the records `rows` of `raw` (one row each, in order).
    fn decode_fast_rows(&self, raw: &RawBatch, rows: &[usize]) -> Option<RecordBatch> {
        if self.payload_schema.fields().is_empty() || rows.is_empty() {
            return None;
        }
        // A message that matches the schema has at most the schema's fields: within the
        // per-message bound unless the schema itself is larger.
        if self.leaves > self.limits.max_fields_per_message {
            return None;
        }
        let mut decoder = ReaderBuilder::new(self.fast_schema.clone())
            .with_batch_size(rows.len())
            .with_coerce_primitive(false)
            .with_strict_mode(true)
            .build_decoder()
            .ok()?;
        for (n, &i) in rows.iter().enumerate() {
            let bytes = raw.payload(i);
            let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
            if first != Some(&b'{') {
                return None;
            }
            let consumed = decoder.decode(bytes).ok()?;
            if consumed != bytes.len() || decoder.has_partial_record() || decoder.len() != n + 1 {
                return None;
            }
        }
        let batch = decoder.flush().ok()??;
        if batch.num_rows() != rows.len() {
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

    /// Parses every record, dead-letters what is not a JSON object or passes a bound,
    /// evolves the schema and nulls values of the wrong type.
    pub fn decode_checked(&mut self, raw: &RawBatch, now: Instant) -> Decoded {
        let (mut rows, mut rejects) = parse_payloads(raw, &self.limits);
        let mut nulled = 0;
        let needs_merge: Vec<bool> = rows
            .iter_mut()
            .map(|row| {
                let mut out = schema::ConformOutcome::default();
                schema::conform_object(&mut row.map, self.payload_schema.fields(), &mut out);
                nulled += out.nulled;
                out.needs_merge
            })
            .collect();
        if needs_merge.contains(&true) {
            self.evolve(&mut rows, &needs_merge, &mut rejects, now);
            for row in &mut rows {
                let mut out = schema::ConformOutcome::default();
                schema::conform_object(&mut row.map, self.payload_schema.fields(), &mut out);
                nulled += out.nulled;
            }
        }
        for row in &rows {
            for key in row.map.keys() {
                self.last_seen.saw(key, now);
            }
        }
        let maps: Vec<&Map<String, Value>> = rows.iter().map(|r| &r.map).collect();
        let good: Vec<usize> = rows.iter().map(|r| r.index).collect();
        let (payload, good) = match self.decode_values(&maps) {
            Ok(batch) => (batch, good),
            Err(_) => self.decode_row_by_row(&maps, good, &mut rejects),
        };
        let batch = (!good.is_empty())
            .then(|| self.attach_metadata(payload, raw, &good))
            .transpose()
            .unwrap_or_else(|e| {
                // Columns are built for exactly the good rows, so this is a bug if it happens:
                // the rows go to the dead-letter topic rather than nowhere.
                crate::events::DecodeBug { error: &e }.emit();
                let reason = format!("internal: metadata columns do not fit the batch: {e}");
                rejects.extend(good.iter().map(|&index| Reject {
                    index,
                    reason: reason.clone(),
                }));
                None
            });
        rejects.sort_by_key(|r| r.index);
        Decoded {
            batch,
            record_of: vec![],
            rejects,
            nulled,
            retired: 0,
        }
    }

    /// Admits the new fields of the rows that carry some, one row at a time in batch order:
    /// a row whose fields would collide with others' once flattened, or pass the schema cap,
    /// is rejected; the others' fields join the schema with the batch's strongest type.
    fn evolve(
        &mut self,
        rows: &mut Vec<Row>,
        needs_merge: &[bool],
        rejects: &mut Vec<Reject>,
        now: Instant,
    ) {
        let mut index = FieldIndex::of(&self.payload_schema);
        let mut batch_fields = Fields::empty();
        let mut i = 0;
        rows.retain(|row| {
            let needs = needs_merge[i];
            i += 1;
            if !needs {
                return true;
            }
            match index.admit(&row.map, self.limits.max_schema_fields) {
                Ok(()) => {
                    batch_fields =
                        infer::merge_fields(&batch_fields, &infer::infer_fields(&row.map));
                    true
                }
                Err(refused) => {
                    rejects.push(Reject {
                        index: row.index,
                        reason: refused.to_string(),
                    });
                    false
                }
            }
        });
        let merged = schema::merge_established(&self.payload_schema, &batch_fields);
        if merged != *self.payload_schema {
            for f in batch_fields.iter() {
                self.last_seen.saw(f.name(), now);
            }
            self.set_payload_schema(merged);
        }
    }

    fn decode_values(&self, values: &[&Map<String, Value>]) -> Result<RecordBatch, ArrowError> {
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
            .with_coerce_primitive(false)
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
        values: &[&Map<String, Value>],
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
        columns.extend(raw.metadata_columns(good));
        RecordBatch::try_new(self.full_schema.clone(), columns)
    }
}

/// The indexes of `n` records that are not among `rejects`.
fn rows_left(n: usize, rejects: &[Reject]) -> Vec<usize> {
    let mut rejected = vec![false; n];
    for r in rejects {
        rejected[r.index] = true;
    }
    (0..n).filter(|&i| !rejected[i]).collect()
}

/// The decoded batch's schema: the payload fields, flattened, then the metadata fields.
fn with_metadata(payload: &Schema) -> SchemaRef {
    let mut fields = flatten::flat_fields(payload.fields());
    fields.extend(metadata_fields());
    Arc::new(Schema::new(fields))
}

/// Parses every payload once; returns the objects within bounds and the rejects.
fn parse_payloads(raw: &RawBatch, limits: &DecodeLimits) -> (Vec<Row>, Vec<Reject>) {
    let mut rows = Vec::with_capacity(raw.len());
    let mut rejects = Vec::new();
    for index in 0..raw.len() {
        let bytes = raw.payload(index);
        let reason = if std::str::from_utf8(bytes).is_err() {
            Some("payload is not UTF-8".to_string())
        } else {
            match serde_json::from_slice::<Value>(bytes) {
                Ok(Value::Object(mut map)) => {
                    schema::drop_reserved(&mut map);
                    let reason = limits::check(&map, limits);
                    if reason.is_none() {
                        rows.push(Row { index, map });
                    }
                    reason
                }
                Ok(_) => Some("payload is not a JSON object".to_string()),
                Err(e) => Some(format!("invalid JSON: {e}")),
            }
        };
        if let Some(reason) = reason {
            rejects.push(Reject { index, reason });
        }
    }
    (rows, rejects)
}

#[cfg(test)]
mod tests;
