//! Partition assignment and revocation, as librdkafka reports them.
//!
//! librdkafka calls the rebalance callbacks from inside a poll (`consumer.recv()`), where
//! the router's state is out of reach. The context only queues what changed; the router
//! applies the queue before its next step (accepting a record, processing a batch, a
//! checkpoint), so nothing it does after a revocation touches the revoked partitions: their
//! unwritten rows are dropped, their offsets are never committed, and their new owner
//! replays them from the last commit.

use crate::{events, Router, RouterError};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::ClientContext;
use sluice_common::Event as _;
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

impl Router {
    /// Applies the assignment changes the consumer queued since the last step: revoked
    /// partitions' unwritten rows and offsets are dropped and the sinks forget them; assigned
    /// ones are recovered by the sinks before their first record is processed.
    /// Partitions this router owns now (librdkafka's assignment; for the gauge).
    fn owned(&self) -> usize {
        self.consumer.assignment().map_or(0, |a| a.count())
    }

    pub(crate) fn apply_rebalances(&mut self) -> Result<(), RouterError> {
        for change in self.rebalances.take() {
            match change {
                Change::Revoked(ps) | Change::Assigned(ps) if ps.is_empty() => {}
                Change::Revoked(ps) => {
                    let before = self.raw.len();
                    let raw = &self.raw;
                    let kept: Vec<usize> = (0..raw.len())
                        .filter(|&i| !ps.contains(&raw.partition(i)))
                        .collect();
                    if kept.len() < before {
                        self.raw = self.raw.subset(kept);
                    }
                    self.offsets.forget(&ps);
                    for sink in self.sinks.values_mut() {
                        sink.revoked(&ps);
                    }
                    if let Some(log) = &self.sparkplug {
                        log.revoked(&ps);
                    }
                    events::PartitionsRevoked {
                        partitions: &ps,
                        dropped_rows: before - self.raw.len(),
                        owned: self.owned(),
                    }
                    .emit();
                }
                Change::Assigned(ps) => {
                    sluice_common::blocking(|| -> Result<(), RouterError> {
                        for sink in self.sinks.values_mut() {
                            sink.assigned(&ps)?;
                        }
                        if let Some(log) = &self.sparkplug {
                            log.assigned(&ps)?;
                        }
                        Ok(())
                    })?;
                    events::PartitionsAssigned {
                        partitions: &ps,
                        owned: self.owned(),
                    }
                    .emit();
                }
            }
        }
        Ok(())
    }
}
