//! Partition assignment and revocation, as librdkafka reports them.
//!
//! librdkafka calls the rebalance callbacks from inside a poll (`consumer.recv()`), where
//! the router's state is out of reach. The context only queues what changed; the router
//! applies the queue before its next step (accepting a record, processing a batch, a
//! checkpoint), so nothing it does after a revocation touches the revoked partitions: their
//! unwritten rows are dropped, their offsets are never committed, and their new owner
//! replays them from the last commit.

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::ClientContext;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Assigned(Vec<i32>),
    Revoked(Vec<i32>),
}

/// The router consumer's context: queues rebalance changes for the router.
#[derive(Clone, Default)]
pub struct RebalanceContext {
    topic: String,
    changes: Arc<Mutex<Vec<Change>>>,
}

impl RebalanceContext {
    pub fn new(raw_topic: &str) -> Self {
        Self {
            topic: raw_topic.to_string(),
            changes: Arc::default(),
        }
    }

    /// The changes since the last call, oldest first.
    pub fn take(&self) -> Vec<Change> {
        std::mem::take(&mut *self.changes.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn partitions(&self, tpl: &rdkafka::TopicPartitionList) -> Vec<i32> {
        tpl.elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .map(|e| e.partition())
            .collect()
    }

    fn push(&self, change: Change) {
        self.changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(change);
    }
}

impl ClientContext for RebalanceContext {}

impl ConsumerContext for RebalanceContext {
    /// Revocations are queued before librdkafka gives the partitions up.
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => self.push(Change::Revoked(self.partitions(tpl))),
            Rebalance::Error(e) => crate::events::RebalanceFailed { error: e }.emit(),
            Rebalance::Assign(_) => {}
        }
    }

    /// Assignments are queued once librdkafka took the partitions on.
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.push(Change::Assigned(self.partitions(tpl)));
        }
    }
}

use sluice_common::Event as _;
