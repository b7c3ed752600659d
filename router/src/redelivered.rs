//! Second copies of messages the MQTT broker redelivered.
//!
//! Ingest acknowledges a message after Kafka confirmed it; if ingest dies between the two,
//! the broker redelivers the message (flagged DUP) and Kafka gets it twice. Ingest marks such
//! records ([`sluice_processors::record::REDELIVERED`]); the router remembers a hash of the
//! last [`WINDOW`] records of each partition it owns and drops a redelivered record whose
//! exact content (device, topic, payload) is among them. The copies share a partition (same
//! device key) and arrive seconds apart, well inside the window. Records not marked are never
//! dropped, so a device sending the same payload twice keeps both.
//!
//! The window is memory: a router that restarts, or is newly assigned the partition, between
//! the first copy and the second does not catch the second.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};

/// Records remembered per partition.
pub const WINDOW: usize = 32_768;

#[derive(Default)]
pub struct RecentRecords {
    partitions: HashMap<i32, Recent>,
}

#[derive(Default)]
struct Recent {
    order: VecDeque<u64>,
    counts: HashMap<u64, u32>,
}

pub fn content_hash(device: &str, mqtt_topic: &str, payload: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (device, mqtt_topic, payload).hash(&mut h);
    h.finish()
}

impl RecentRecords {
    /// True when `redelivered` and the same content is among the partition's recent records
    /// (the record is a second copy); otherwise remembers it and returns false.
    pub fn is_second_copy(&mut self, partition: i32, hash: u64, redelivered: bool) -> bool {
        let recent = self.partitions.entry(partition).or_default();
        if redelivered && recent.counts.contains_key(&hash) {
            return true;
        }
        if recent.order.len() >= WINDOW {
            if let Some(old) = recent.order.pop_front() {
                if let Some(n) = recent.counts.get_mut(&old) {
                    *n -= 1;
                    if *n == 0 {
                        recent.counts.remove(&old);
                    }
                }
            }
        }
        recent.order.push_back(hash);
        *recent.counts.entry(hash).or_default() += 1;
        false
    }

    /// Forgets partitions this router no longer owns.
    pub fn forget(&mut self, partitions: &[i32]) {
        self.partitions.retain(|p, _| !partitions.contains(p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_redelivered_copy_of_recent_content_is_dropped() {
        let mut r = RecentRecords::default();
        let a = content_hash("d1", "devices/d1/t", b"{\"seq\":1}");
        assert!(!r.is_second_copy(0, a, false));
        // The same payload again, not redelivered: a device may repeat itself.
        assert!(!r.is_second_copy(0, a, false));
        assert!(r.is_second_copy(0, a, true));
        // Another partition, or content never seen: kept.
        assert!(!r.is_second_copy(1, a, true));
        let b = content_hash("d1", "devices/d1/t", b"{\"seq\":2}");
        assert!(!r.is_second_copy(0, b, true));
    }

    #[test]
    fn the_window_forgets_the_oldest() {
        let mut r = RecentRecords::default();
        for i in 0..=WINDOW as u64 {
            r.is_second_copy(0, i, false);
        }
        assert!(!r.is_second_copy(0, 0, true), "evicted");
        assert!(r.is_second_copy(0, WINDOW as u64, true));
    }
}
