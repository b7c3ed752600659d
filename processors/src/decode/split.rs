//! A batch with a few odd messages: the messages that fit the schema on the fast path, only
//! the odd ones on the checked path, the rows put back in record order.
//!
//! One device that always sends an odd value would otherwise keep every batch it is in on the
//! checked path (a serde_json `Value` per message, about five times slower). Which messages
//! fit is decided by [`fits`] in one streaming pass; when that pass was wrong, or the odd
//! messages bring new fields, or most of the batch is odd, the whole batch takes the checked
//! path as before, so the result is always the checked path's (a property test holds them to
//! it: `split_and_checked_paths_agree`).

use super::{fits::fits, BatchDecoder, Decoded, RawBatch};
use arrow::array::RecordBatch;
use std::time::Instant;

/// Above this share of odd messages the checked path over the whole batch is cheaper than a
/// split (two decodes and a merge).
const MOST_ODD: usize = 4; // one in four

impl BatchDecoder {
    /// Decodes `raw` splitting it into fitting and odd messages; the same [`Decoded`] as
    /// [`BatchDecoder::decode_checked`] of the whole batch.
    pub fn decode_split(&mut self, raw: &RawBatch, now: Instant) -> Decoded {
        let fields = self.payload_schema.fields().clone();
        let (clean, odd): (Vec<usize>, Vec<usize>) =
            (0..raw.len()).partition(|&i| fits(raw.payload(i), &fields));
        self.odd_in_last_batch = !odd.is_empty();
        if clean.is_empty() || odd.len() * MOST_ODD > raw.len() {
            return self.decode_checked(raw, now);
        }
        let Some(payload) = self.decode_fast_rows(raw, &clean) else {
            return self.decode_checked(raw, now);
        };
        if odd.is_empty() {
            return self.fast_decoded(payload, raw, &clean, now);
        }
        let schema = self.payload_schema.clone();
        let mut checked = self.decode_checked(&raw.subset(odd.iter().copied()), now);
        if *self.payload_schema != *schema {
            // New fields: the fast rows lack their columns. Rare (a field joins once).
            return self.decode_checked(raw, now);
        }
        self.saw_columns(&payload, now);
        let Ok(fast) = self.attach_metadata(payload, raw, &clean) else {
            return self.decode_checked(raw, now);
        };
        let mut rejected = vec![false; odd.len()];
        for r in &mut checked.rejects {
            rejected[r.index] = true;
            r.index = odd[r.index];
        }
        let odd_rows: Vec<usize> = odd
            .iter()
            .zip(&rejected)
            .filter(|(_, rejected)| !**rejected)
            .map(|(i, _)| *i)
            .collect();
        let batch = match checked.batch {
            None => Some(fast),
            Some(odd_batch) => match in_record_order(&fast, &clean, &odd_batch, &odd_rows) {
                Ok(batch) => Some(batch),
                Err(_) => return self.decode_checked(raw, now),
            },
        };
        Decoded {
            batch,
            rejects: checked.rejects,
            nulled: checked.nulled,
            retired: 0,
        }
    }
}

/// The rows of two batches (rows of records `a_rows` and `b_rows`, each ascending) merged
/// into one batch in record order.
fn in_record_order(
    a: &RecordBatch,
    a_rows: &[usize],
    b: &RecordBatch,
    b_rows: &[usize],
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut order = Vec::with_capacity(a_rows.len() + b_rows.len());
    let (mut i, mut j) = (0, 0);
    while i < a_rows.len() || j < b_rows.len() {
        if j == b_rows.len() || (i < a_rows.len() && a_rows[i] < b_rows[j]) {
            order.push((0, i));
            i += 1;
        } else {
            order.push((1, j));
            j += 1;
        }
    }
    arrow::compute::interleave_record_batch(&[a, b], &order)
}
