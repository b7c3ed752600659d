//! Finding the poison records of a batch by bisection ([`crate::poison`] says when).
//!
//! Each half is decoded and routed on a copy of the decoder under `catch_unwind`; a half that
//! fails is split again, down to single records. Nothing is written while searching, so a
//! half that went through is simply processed again with the rest of the batch afterwards.

use crate::process::compute;
use sluice_processors::decode::{BatchDecoder, RawBatch};
use sluice_processors::rule::RuleSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

/// The indices (into `raw`) of the records that fail on their own, with the failure.
pub fn find_poison(
    decoder: &BatchDecoder,
    rules: &mut RuleSet,
    raw: &RawBatch,
) -> Vec<(usize, String)> {
    let mut poison = Vec::new();
    let mut pending: Vec<Vec<usize>> = vec![(0..raw.len()).collect()];
    while let Some(part) = pending.pop() {
        let sub = raw.subset(part.iter().copied());
        let mut trial = decoder.clone();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            compute(&mut trial, rules, &sub);
        }));
        let Err(panic) = outcome else {
            continue;
        };
        if part.len() == 1 {
            poison.push((part[0], panic_message(panic.as_ref())));
        } else {
            let (a, b) = part.split_at(part.len() / 2);
            pending.push(b.to_vec());
            pending.push(a.to_vec());
        }
    }
    poison.sort();
    poison
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with no message".into())
}

/// The environment variable of the fault-injection hook (tests only): when set, processing a
/// batch that holds a payload containing its value panics, as a bug would.
pub const FAULT_ENV: &str = "SLUICE_FAULT_PANIC_ON_PAYLOAD";

pub fn fault_injection(raw: &RawBatch) {
    static MARKER: OnceLock<Option<String>> = OnceLock::new();
    let Some(marker) = MARKER
        .get_or_init(|| std::env::var(FAULT_ENV).ok().filter(|m| !m.is_empty()))
        .as_deref()
    else {
        return;
    };
    let hit = (0..raw.len()).any(|i| {
        raw.payload(i)
            .windows(marker.len())
            .any(|w| w == marker.as_bytes())
    });
    if hit {
        panic!("fault injection: a payload contains {FAULT_ENV}");
    }
}
