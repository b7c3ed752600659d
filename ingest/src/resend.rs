//! What makes a redelivered message provably a second copy, in broker mode.
//!
//! Ingest holds one persistent session at the broker (`clean_session = false`). On a
//! reconnect the broker redelivers, with DUP and their original packet ids, the publishes
//! ingest did not acknowledge. Some of them Kafka already has: ingest produced them, but the
//! PUBACK was owed to the connection that closed. [`InKafka`] remembers, per packet id, the
//! content of the last publish Kafka confirmed; a DUP redelivery with that id and content is
//! acknowledged without producing it again. Every other message is produced, including one
//! whose content merely equals an earlier one (a heartbeat that repeats): the entry for a
//! packet id is forgotten the moment a new publish with that id arrives, so it can only ever
//! speak for the delivery Kafka confirmed.
//!
//! The memory lives as long as the stage: after a crash or a stage restart, redeliveries are
//! produced again (a duplicate in Kafka, never a loss). At most 65 535 entries (packet ids).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

/// Topic and payload as one number: what makes a redelivery the same message.
pub fn content_hash(topic: &str, payload: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    topic.hash(&mut h);
    payload.hash(&mut h);
    h.finish()
}

/// Packet id → content of the publish with that id that Kafka confirmed.
#[derive(Default)]
pub struct InKafka(Mutex<HashMap<u16, u64>>);

impl InKafka {
    /// A publish arrived. True when it is a redelivery (DUP) of the publish with this packet
    /// id and content that Kafka confirmed: acknowledge it, do not produce it. Any other
    /// arrival makes the packet id speak for this publish, not yet confirmed.
    pub fn arrived(&self, pkid: u16, dup: bool, content: u64) -> bool {
        if pkid == 0 {
            return false; // QoS 0: no packet id, never redelivered.
        }
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if dup && map.get(&pkid) == Some(&content) {
            return true;
        }
        map.remove(&pkid);
        false
    }

    /// Kafka confirmed the publish with this packet id and content.
    pub fn confirmed(&self, pkid: u16, content: u64) {
        if pkid != 0 {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            map.insert(pkid, content);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redelivery_of_a_confirmed_publish_is_the_only_thing_skipped() {
        let k = InKafka::default();
        let beat = content_hash("devices/d1/status", br#"{"status":"ok"}"#);
        assert!(!k.arrived(7, false, beat));
        k.confirmed(7, beat);
        // Its PUBACK was lost with the connection: the broker redelivers it.
        assert!(k.arrived(7, true, beat));
        assert!(k.arrived(7, true, beat), "again after a second reconnect");
    }

    #[test]
    fn a_repeated_heartbeat_not_yet_in_kafka_is_produced() {
        let k = InKafka::default();
        let beat = content_hash("devices/d1/status", br#"{"status":"ok"}"#);
        assert!(!k.arrived(7, false, beat));
        k.confirmed(7, beat);
        // Acknowledged; the broker reuses id 7 for the next, identical heartbeat, which is
        // dropped from the backlog by a reconnect before Kafka got it, then redelivered.
        assert!(!k.arrived(7, false, beat));
        assert!(!k.arrived(7, true, beat), "only copy: must be produced");
    }

    #[test]
    fn other_content_or_ids_are_produced() {
        let k = InKafka::default();
        let a = content_hash("t", b"a");
        k.confirmed(1, a);
        assert!(!k.arrived(1, true, content_hash("t", b"b")));
        assert!(
            !k.arrived(1, true, a),
            "the mismatch made id 1 speak for the new publish"
        );
        assert!(!k.arrived(2, true, a));
        assert!(!k.arrived(0, true, a), "QoS 0");
    }
}
