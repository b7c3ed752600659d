//! Offsets consumed since the last commit, per partition of the raw topic.

use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Offsets {
    /// Next offset to read per partition (last consumed + 1).
    next: BTreeMap<i32, i64>,
    dirty: bool,
}

impl Offsets {
    pub fn observe(&mut self, partition: i32, offset: i64) {
        let next = self.next.entry(partition).or_insert(offset + 1);
        *next = (*next).max(offset + 1);
        self.dirty = true;
    }

    /// The list to commit, or `None` when nothing was consumed since the last commit.
    pub fn to_commit(&self, topic: &str) -> Result<Option<TopicPartitionList>, KafkaError> {
        if !self.dirty {
            return Ok(None);
        }
        let mut tpl = TopicPartitionList::new();
        for (&p, &o) in &self.next {
            tpl.add_partition_offset(topic, p, Offset::Offset(o))?;
        }
        Ok(Some(tpl))
    }

    /// Forgets revoked partitions: their offsets are never committed by this router.
    pub fn forget(&mut self, partitions: &[i32]) {
        self.next.retain(|p, _| !partitions.contains(p));
    }

    pub fn committed(&mut self) {
        self.dirty = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_next_offset_per_partition_only_when_changed() {
        let mut o = Offsets::default();
        assert!(o.to_commit("t").unwrap().is_none());
        o.observe(0, 5);
        o.observe(0, 3);
        o.observe(1, 9);
        let tpl = o.to_commit("t").unwrap().unwrap();
        assert_eq!(
            tpl.find_partition("t", 0).unwrap().offset(),
            Offset::Offset(6)
        );
        assert_eq!(
            tpl.find_partition("t", 1).unwrap().offset(),
            Offset::Offset(10)
        );
        o.committed();
        assert!(o.to_commit("t").unwrap().is_none());
        o.observe(1, 10);
        o.forget(&[1]);
        let tpl = o.to_commit("t").unwrap().unwrap();
        assert!(
            tpl.find_partition("t", 1).is_none(),
            "a revoked partition is never committed"
        );
    }
}
