//! Poison messages: a record that makes the router fail (a panic from a bug included) must not
//! make it fail forever.
//!
//! The router notes the offsets of the batch it is processing in a [`PoisonWatch`] that
//! outlives it (the supervisor hands the same watch to every restart). A router that starts
//! and finds a batch still noted knows its predecessor died on it: those offsets become a
//! suspect. Once a suspect has failed [`ISOLATE_AFTER`] times, the next batch that overlaps it
//! is bisected: halves are decoded and routed without side effects, under `catch_unwind`,
//! down to the single records that still fail; those go to the dead-letter topic with the
//! reason and the rest of the batch is processed as usual.
//!
//! An isolated record stays known by its offset (the last [`MAX_KNOWN`]): until the batch's
//! offsets are committed, a rebalance or restart delivers it again, and it then goes straight
//! to the dead-letter topic again (at least once there, as everywhere) instead of killing the
//! router twice more.

use sluice_processors::decode::RawBatch;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// Failures on the same offsets before the router isolates the poison message.
pub const ISOLATE_AFTER: u32 = 2;
/// Suspects kept at most (the oldest go first).
const MAX_SUSPECTS: usize = 16;
/// Isolated records remembered by offset (the oldest go first).
const MAX_KNOWN: usize = 1024;

/// Offsets per Kafka partition: (first, last), inclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Span(BTreeMap<i32, (i64, i64)>);

impl Span {
    pub fn of(raw: &RawBatch) -> Self {
        let mut ranges = BTreeMap::new();
        for i in 0..raw.len() {
            let r = ranges
                .entry(raw.partition(i))
                .or_insert((raw.offset(i), raw.offset(i)));
            r.0 = r.0.min(raw.offset(i));
            r.1 = r.1.max(raw.offset(i));
        }
        Self(ranges)
    }

    fn overlaps(&self, other: &Span) -> bool {
        self.0
            .iter()
            .any(|(p, (a, b))| other.0.get(p).is_some_and(|(c, d)| a <= d && c <= b))
    }

    fn union(&mut self, other: &Span) {
        for (p, (a, b)) in &other.0 {
            let r = self.0.entry(*p).or_insert((*a, *b));
            r.0 = r.0.min(*a);
            r.1 = r.1.max(*b);
        }
    }
}

#[derive(Debug)]
struct Suspect {
    span: Span,
    failures: u32,
}

#[derive(Debug, Default)]
struct State {
    in_flight: Option<Span>,
    /// A record of the batch in flight was isolated.
    isolated_in_flight: bool,
    suspects: Vec<Suspect>,
    /// Isolated records: (partition, offset) and why they failed; `known_order` evicts.
    known: BTreeMap<(i32, i64), String>,
    known_order: VecDeque<(i32, i64)>,
}

/// What routers learn about failing offsets, kept across restarts.
#[derive(Debug, Default)]
pub struct PoisonWatch {
    state: Mutex<State>,
}

impl PoisonWatch {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain data behind: still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called when a router starts: a batch still in flight killed the previous one.
    /// Returns the failures now counted on those offsets.
    pub fn recover(&self) -> Option<u32> {
        let mut s = self.lock();
        let span = s.in_flight.take()?;
        let failures = match s.suspects.iter_mut().find(|x| x.span.overlaps(&span)) {
            Some(x) => {
                x.span.union(&span);
                x.failures += 1;
                x.failures
            }
            None => {
                s.suspects.push(Suspect { span, failures: 1 });
                if s.suspects.len() > MAX_SUSPECTS {
                    s.suspects.remove(0);
                }
                1
            }
        };
        Some(failures)
    }

    /// The router starts processing `raw`; true when it overlaps offsets that failed
    /// [`ISOLATE_AFTER`] times (bisect it first).
    pub fn begin(&self, raw: &RawBatch) -> bool {
        let span = Span::of(raw);
        let mut s = self.lock();
        let isolate = s
            .suspects
            .iter()
            .any(|x| x.failures >= ISOLATE_AFTER && x.span.overlaps(&span));
        s.in_flight = Some(span);
        s.isolated_in_flight = false;
        isolate
    }

    /// Remembers an isolated record, so a second delivery of it is dead-lettered at once.
    pub fn isolated(&self, partition: i32, offset: i64, why: &str) {
        let mut s = self.lock();
        if s.in_flight.is_some() {
            s.isolated_in_flight = true;
        }
        if s.known
            .insert((partition, offset), why.to_string())
            .is_none()
        {
            s.known_order.push_back((partition, offset));
        }
        if s.known_order.len() > MAX_KNOWN {
            if let Some(oldest) = s.known_order.pop_front() {
                s.known.remove(&oldest);
            }
        }
    }

    /// The records of `raw` isolated before (delivered again): index and why they failed.
    pub fn known_in(&self, raw: &RawBatch) -> Vec<(usize, String)> {
        let s = self.lock();
        if s.known.is_empty() {
            return vec![];
        }
        (0..raw.len())
            .filter_map(|i| {
                let why = s.known.get(&(raw.partition(i), raw.offset(i)))?;
                Some((i, why.clone()))
            })
            .collect()
    }

    /// The batch went through: its offsets are no longer in flight, nor suspect if a poison
    /// record of it was [`isolated`](Self::isolated). A bisected batch that held no poison
    /// leaves the suspect as it is: a suspect spans every partition of the batch that failed,
    /// and after a restart the consumer may hand over one partition's records before the
    /// poison's (CI once saw such a clean batch clear the suspect, and the poison then killed
    /// the router twice more).
    pub fn end(&self) {
        let mut s = self.lock();
        let found = std::mem::take(&mut s.isolated_in_flight);
        if let Some(span) = s.in_flight.take() {
            if found {
                s.suspects.retain(|x| !x.span.overlaps(&span));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_processors::record::TelemetryRecord;

    /// A batch of records `offsets` of each partition, in order.
    fn batch(parts: &[(i32, std::ops::Range<i64>)]) -> RawBatch {
        let mut raw = RawBatch::default();
        let rec = TelemetryRecord {
            device_id: "d",
            mqtt_topic: "t/d",
            received_ms: 0,
            redelivered: false,
            payload: b"{}",
        };
        for (partition, offsets) in parts {
            for o in offsets.clone() {
                raw.push(&rec, *partition, o);
            }
        }
        raw
    }

    fn raw(partition: i32, offsets: std::ops::Range<i64>) -> RawBatch {
        batch(&[(partition, offsets)])
    }

    #[test]
    fn offsets_that_killed_the_router_twice_are_isolated_once() {
        let watch = PoisonWatch::default();
        assert_eq!(
            watch.recover(),
            None,
            "a first start finds nothing in flight"
        );
        assert!(!watch.begin(&raw(0, 10..20)));
        // The router died on that batch; the next one starts with overlapping offsets.
        assert_eq!(watch.recover(), Some(1));
        assert!(!watch.begin(&raw(0, 15..30)));
        assert_eq!(watch.recover(), Some(2));
        assert!(
            !watch.begin(&raw(1, 15..30)),
            "another partition is not suspect"
        );
        watch.end();
        assert!(watch.begin(&raw(0, 12..14)));
        watch.isolated(0, 13, "boom");
        watch.end();
        assert!(!watch.begin(&raw(0, 12..14)), "isolated: no longer suspect");
        assert_eq!(
            watch.known_in(&raw(0, 10..20)),
            vec![(3, "boom".to_string())],
            "but known when delivered again"
        );
        assert!(watch.known_in(&raw(1, 10..20)).is_empty());
    }

    #[test]
    fn a_clean_bisected_batch_leaves_the_suspect_for_the_poisons_partition() {
        let watch = PoisonWatch::default();
        // Two failures on a batch of partitions 0 and 1 (the poison is in partition 1).
        assert!(!watch.begin(&batch(&[(0, 0..10), (1, 0..10)])));
        assert_eq!(watch.recover(), Some(1));
        assert!(!watch.begin(&batch(&[(0, 0..10), (1, 0..10)])));
        assert_eq!(watch.recover(), Some(2));
        // The restarted consumer hands over partition 0 first: bisected, nothing found.
        assert!(watch.begin(&raw(0, 0..10)));
        watch.end();
        assert!(
            watch.begin(&raw(1, 0..10)),
            "partition 1 is still suspect: bisect it instead of dying on it a third time"
        );
    }
}
