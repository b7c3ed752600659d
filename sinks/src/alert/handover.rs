//! Alert state that follows its partition: each key's state (firing, notified, cooldown) goes
//! to the sink's changelog topic at the checkpoint, in the partition of the row that fired it
//! ([`crate::changelog`]). The book holds only the keys of partitions this router owns, so
//! only the owner sweeps and resolves them; [`Shadow`] holds everyone else's, read from the
//! changelog, and hands a partition's keys to the book when the router is assigned it.
//!
//! Notifications waiting in the outbox stay with the router that created them (its state
//! file); a router that never comes back takes its undelivered notifications with it.

use super::book::{Alert, AlertBook};
use sluice_common::Event;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The alert state of partitions this router does not own, by key.
#[derive(Default)]
pub struct Shadow(Mutex<HashMap<String, Alert>>);

impl Shadow {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Alert>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The changelog tailer's hook: another router's latest state of a key.
    pub fn apply(shadow: &Arc<Shadow>) -> crate::changelog::Apply {
        let shadow = Arc::downgrade(shadow);
        Box::new(move |key, value| {
            let Some(shadow) = shadow.upgrade() else {
                return;
            };
            match value.map(serde_json::from_slice::<Alert>) {
                Some(Ok(alert)) => {
                    shadow.map().insert(key.to_string(), alert);
                }
                None => {
                    shadow.map().remove(key);
                }
                Some(Err(e)) => crate::events::ChangelogRecordSkipped {
                    state: "alert",
                    key,
                    error: &e,
                }
                .emit(),
            }
        })
    }

    /// Moves the keys of `partitions` into the book; returns how many.
    pub fn adopt(&self, book: &mut AlertBook, partitions: &[i32]) -> usize {
        let mut map = self.map();
        let keys: Vec<String> = map
            .values()
            .filter(|a| partitions.contains(&a.partition))
            .map(|a| a.key.clone())
            .collect();
        for key in &keys {
            if let Some(alert) = map.remove(key) {
                book.alerts.insert(key.clone(), alert);
            }
        }
        keys.len()
    }

    /// Moves the book's keys of `partitions` (now another router's) here.
    pub fn release(&self, book: &mut AlertBook, partitions: &[i32]) {
        let mut map = self.map();
        for alert in book.release(partitions) {
            map.insert(alert.key.clone(), alert);
        }
    }

    /// Keeps only partitionless keys in the book: the rest come back from the changelog
    /// when their partition is assigned (state saved locally may be older).
    pub fn take_partitioned(&self, book: &mut AlertBook) {
        let mut map = self.map();
        let keys: Vec<String> = book
            .alerts
            .values()
            .filter(|a| a.partition >= 0)
            .map(|a| a.key.clone())
            .collect();
        for key in keys {
            if let Some(alert) = book.alerts.remove(&key) {
                map.insert(key, alert);
            }
        }
    }
}
