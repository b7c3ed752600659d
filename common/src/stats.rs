//! Counters the stages share for run summaries, readiness and tests. Only events update them
//! (in `emit()`, beside the Prometheus counter of the same happening).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Stats {
    /// MQTT messages received by ingest.
    pub mqtt_received: AtomicU64,
    /// Records confirmed by Kafka on the raw topic.
    pub produced: AtomicU64,
    /// Records read by the router.
    pub consumed: AtomicU64,
    /// Records the router has decoded and routed (rules evaluated, rows handed to sinks).
    pub routed: AtomicU64,
    /// Records sent to the dead-letter topic (by ingest or router).
    pub dead_lettered: AtomicU64,
    /// Parquet files renamed into place.
    pub files_written: AtomicU64,
    rows_per_rule: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn add_rule_rows(&self, rule: &str, n: u64) {
        // The lock is held for a map update only; never across an await.
        let mut map = self.rows_per_rule.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(rule.to_string()).or_default() += n;
    }

    pub fn rule_rows(&self) -> BTreeMap<String, u64> {
        self.rows_per_rule
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
