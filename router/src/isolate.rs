//! Finding the poison records of a batch by bisection ([`crate::poison`] says when).
//!
//! Each half goes through [`Step::trial`] (a copy of the decoder, panics caught); a half that
//! fails is split again, down to single records. Nothing is written while searching, so a
//! half that went through is simply processed again with the rest of the batch afterwards.

use crate::step::Step;
use sluice_processors::decode::RawBatch;

/// The indices (into `raw`) of the records that fail on their own, with the failure.
pub fn find_poison(step: &mut Step, raw: &RawBatch) -> Vec<(usize, String)> {
    let mut poison = Vec::new();
    let mut pending: Vec<Vec<usize>> = vec![(0..raw.len()).collect()];
    while let Some(part) = pending.pop() {
        let sub = raw.subset(part.iter().copied());
        let Err(why) = step.trial(&sub) else {
            continue;
        };
        if part.len() == 1 {
            poison.push((part[0], why));
        } else {
            let (a, b) = part.split_at(part.len() / 2);
            pending.push(b.to_vec());
            pending.push(a.to_vec());
        }
    }
    poison.sort();
    poison
}

/// The environment variable of the fault-injection hook (tests only): when set, processing a
/// batch that holds a payload containing its value panics, as a bug would. Read once, when a
/// [`Step`] is made; unset (production), a batch pays one `Option` check for it.
pub const FAULT_ENV: &str = "SLUICE_FAULT_PANIC_ON_PAYLOAD";

pub fn fault_marker() -> Option<std::sync::Arc<str>> {
    std::env::var(FAULT_ENV)
        .ok()
        .filter(|m| !m.is_empty())
        .map(Into::into)
}

pub fn fault_injection(marker: &str, raw: &RawBatch) {
    let hit = (0..raw.len()).any(|i| {
        raw.payload(i)
            .windows(marker.len())
            .any(|w| w == marker.as_bytes())
    });
    if hit {
        panic!("fault injection: a payload contains {FAULT_ENV}");
    }
}
