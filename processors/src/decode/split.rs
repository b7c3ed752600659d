//! A batch with a few odd messages: the messages that fit the schema on the fast path, only
//! the odd ones on the checked path, the rows put back in record order.
//!
//! One device that always sends an odd value would otherwise keep every batch it is in on the
//! checked path (a serde_json `Value` per message, about five times slower). Which messages
//! are odd is learned by [`fits`] in one streaming pass; the devices that sent them are
//! remembered ([`OddDevices`]), so the next batches send those devices' messages to the checked
//! path straight away and the rest to the fast path, with no pass to find them. When the fast
//! path refuses a message anyway (a device new to being odd), the batch is split by [`fits`]
//! again; when the odd messages bring new fields, or most of the batch is odd, the whole batch
//! takes the checked path. The result is always the checked path's (a property test holds
//! them to it: `split_and_checked_paths_agree`).

use super::{fits::fits, BatchDecoder, Decoded, RawBatch};
use arrow::array::RecordBatch;
use std::collections::HashSet;
use std::time::Instant;

/// Above this share of odd messages the checked path over the whole batch is cheaper than a
/// split (two decodes and a merge).
const MOST_ODD: usize = 4; // one in four

/// At most this many devices are remembered; past it the memory starts over (device ids are
/// chosen by devices, so the set must not grow with them).
const MAX_ODD_DEVICES: usize = 1024;

/// Devices whose last messages did not fit the schema: their next ones are likely odd too.
#[derive(Debug, Clone, Default)]
pub(super) struct OddDevices(HashSet<Box<str>>);

impl OddDevices {
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn contains(&self, device: &str) -> bool {
        self.0.contains(device)
    }

    fn remember(&mut self, device: &str) {
        if self.0.len() >= MAX_ODD_DEVICES && !self.0.contains(device) {
            self.0.clear();
        }
        self.0.insert(device.into());
    }
}

impl BatchDecoder {
    /// Decodes `raw` splitting it into fitting and odd messages; the same [`Decoded`] as
    /// [`BatchDecoder::decode_checked`] of the whole batch.
    pub fn decode_split(&mut self, raw: &RawBatch, now: Instant) -> Decoded {
        if !self.odd_devices.is_empty() {
            let (clean, suspect): (Vec<usize>, Vec<usize>) =
                (0..raw.len()).partition(|&i| !self.odd_devices.contains(raw.device_id(i)));
            if let Some(decoded) = self.split_at(raw, &clean, &suspect, now) {
                self.relearn(raw, &suspect);
                return decoded;
            }
        }
        let fields = self.payload_schema.fields().clone();
        let (clean, odd): (Vec<usize>, Vec<usize>) =
            (0..raw.len()).partition(|&i| fits(raw.payload(i), &fields));
        for &i in &odd {
            self.odd_devices.remember(raw.device_id(i));
        }
        self.split_at(raw, &clean, &odd, now)
            .unwrap_or_else(|| self.decode_checked(raw, now))
    }

    /// `clean` on the fast path, `odd` on the checked path, merged in record order. `None`
    /// (nothing changed) when the fast path refuses a `clean` message.
    fn split_at(
        &mut self,
        raw: &RawBatch,
        clean: &[usize],
        odd: &[usize],
        now: Instant,
    ) -> Option<Decoded> {
        if clean.is_empty() || odd.len() * MOST_ODD > raw.len() {
            return Some(self.decode_checked(raw, now));
        }
        let payload = self.decode_fast_rows(raw, clean)?;
        if odd.is_empty() {
            return Some(self.fast_decoded(payload, raw, clean, now));
        }
        let schema = self.payload_schema.clone();
        let mut checked = self.decode_checked(&raw.subset(odd.iter().copied()), now);
        if *self.payload_schema != *schema {
            // New fields: the fast rows lack their columns. Rare (a field joins once).
            return Some(self.decode_checked(raw, now));
        }
        self.saw_columns(&payload, now);
        let Ok(fast) = self.attach_metadata(payload, raw, clean) else {
            return Some(self.decode_checked(raw, now));
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
            None => fast,
            Some(odd_batch) => match in_record_order(&fast, clean, &odd_batch, &odd_rows) {
                Ok(batch) => batch,
                Err(_) => return Some(self.decode_checked(raw, now)),
            },
        };
        Some(Decoded {
            batch: Some(batch),
            record_of: vec![],
            rejects: checked.rejects,
            nulled: checked.nulled,
            retired: 0,
        })
    }

    /// Forgets the suspected devices whose messages in this batch all fit after all.
    fn relearn(&mut self, raw: &RawBatch, suspect: &[usize]) {
        let fields = self.payload_schema.fields().clone();
        let mut still_odd = HashSet::new();
        let mut seen = HashSet::new();
        for &i in suspect {
            let device = raw.device_id(i);
            seen.insert(device);
            if !fits(raw.payload(i), &fields) {
                still_odd.insert(device);
            }
        }
        for device in seen.difference(&still_odd) {
            self.odd_devices.0.remove(*device);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_of_odd_devices_is_bounded() {
        let mut odd = OddDevices::default();
        for i in 0..MAX_ODD_DEVICES * 3 {
            odd.remember(&format!("d{i}"));
            assert!(odd.0.len() <= MAX_ODD_DEVICES);
        }
        assert!(odd.contains(&format!("d{}", MAX_ODD_DEVICES * 3 - 1)));
    }
}
