//! The alert book: which keys are firing, and the notifications not yet delivered.
//!
//! Pure state, no I/O but [`AlertBook::save`]/[`AlertBook::load`], so every transition is
//! unit-tested with in-memory values. Times are ms since the epoch, passed in.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

/// One alert key's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub key: String,
    pub rule: String,
    pub device: String,
    pub severity: String,
    pub status: AlertStatus,
    /// The rule's selected columns of the latest occurrence.
    pub columns: serde_json::Map<String, serde_json::Value>,
    /// Message receive times of the first and latest occurrence in this firing.
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// Occurrences in this firing, the first included.
    pub count: u64,
    /// When the router last saw an occurrence (the quiet period counts from here).
    pub updated_ms: i64,
    /// When this key last notified as firing (the cooldown counts from here).
    pub fired_notice_ms: Option<i64>,
    /// Whether this firing was notified (a resolve is sent only for a notified firing).
    pub notified: bool,
    /// Who acknowledged this firing (`POST /alerts/{key}/ack`), if anyone.
    pub acknowledged: bool,
    /// The Kafka partition of the row that last fired it: its state follows that partition
    /// (the changelog). −1: none known (state saved before partitions were kept).
    #[serde(default = "no_partition")]
    pub partition: i32,
}

const fn no_partition() -> i32 {
    -1
}

/// One message to the destinations: the alert as it was when it fired or resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub id: u64,
    pub at_ms: i64,
    #[serde(flatten)]
    pub alert: Alert,
}

/// An occurrence of an alert condition: one row a rule sent to the alert sink.
#[derive(Debug, Clone)]
pub struct Occurrence {
    pub key: String,
    pub rule: String,
    pub device: String,
    pub severity: String,
    pub columns: serde_json::Map<String, serde_json::Value>,
    pub seen_ms: i64,
    /// The Kafka partition of its row.
    pub partition: i32,
}

/// What observing an occurrence did.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// A new firing: notify.
    Fired(Notification),
    /// A repeat of a firing key, or a new firing within the cooldown: counted, not notified.
    Suppressed,
    /// A new key while `max_keys` are held: not tracked, not notified (counted).
    Refused,
}

/// A notification waiting for delivery, and (once it failed and was handed to the router)
/// the checkpoint number it was handed over in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub notification: Notification,
    pub handed_over: Option<u64>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertBook {
    pub alerts: BTreeMap<String, Alert>,
    pub outbox: BTreeMap<u64, Pending>,
    pub next_id: u64,
    pub checkpoints: u64,
    /// Keys changed since the last checkpoint, with their partition (for the changelog).
    #[serde(skip)]
    pub changed: BTreeMap<String, i32>,
    /// Alert keys held at most (`max_keys`; 0: no limit). Config, not state.
    #[serde(skip)]
    pub max_keys: usize,
}

/// Timing of the transitions, from the sink's config.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub cooldown_ms: i64,
    pub resolve_after_ms: i64,
}

impl AlertBook {
    pub fn observe(&mut self, o: Occurrence, now: i64, t: Timing) -> Observed {
        let full = self.max_keys > 0 && self.alerts.len() >= self.max_keys;
        if full && !self.alerts.contains_key(&o.key) {
            return Observed::Refused;
        }
        self.changed.insert(o.key.clone(), o.partition);
        if let Some(a) = self.alerts.get_mut(&o.key) {
            if a.status == AlertStatus::Firing {
                a.count += 1;
                a.last_seen_ms = a.last_seen_ms.max(o.seen_ms);
                a.updated_ms = now;
                a.columns = o.columns;
                a.partition = o.partition;
                return Observed::Suppressed;
            }
        }
        let in_cooldown = self
            .alerts
            .get(&o.key)
            .and_then(|a| a.fired_notice_ms)
            .is_some_and(|at| now - at < t.cooldown_ms);
        let previous_notice = self.alerts.get(&o.key).and_then(|a| a.fired_notice_ms);
        let alert = Alert {
            key: o.key.clone(),
            rule: o.rule,
            device: o.device,
            severity: o.severity,
            status: AlertStatus::Firing,
            columns: o.columns,
            first_seen_ms: o.seen_ms,
            last_seen_ms: o.seen_ms,
            count: 1,
            updated_ms: now,
            fired_notice_ms: if in_cooldown {
                previous_notice
            } else {
                Some(now)
            },
            notified: !in_cooldown,
            acknowledged: false,
            partition: o.partition,
        };
        self.alerts.insert(o.key, alert.clone());
        if in_cooldown {
            return Observed::Suppressed;
        }
        Observed::Fired(self.enqueue(alert, now))
    }

    /// Resolves the firing keys quiet for `resolve_after_ms`; returns the notifications to
    /// send. Resolved keys past their cooldown are forgotten.
    pub fn sweep(&mut self, now: i64, t: Timing) -> Vec<Notification> {
        let quiet: Vec<String> = self
            .alerts
            .values()
            .filter(|a| a.status == AlertStatus::Firing && now - a.updated_ms >= t.resolve_after_ms)
            .map(|a| a.key.clone())
            .collect();
        let mut out = Vec::new();
        for key in quiet {
            let Some(a) = self.alerts.get_mut(&key) else {
                continue;
            };
            a.status = AlertStatus::Resolved;
            self.changed.insert(key.clone(), a.partition);
            if a.notified {
                let alert = a.clone();
                out.push(self.enqueue(alert, now));
            }
        }
        let changed = &mut self.changed;
        self.alerts.retain(|key, a| {
            let keep = a.status == AlertStatus::Firing
                || a.fired_notice_ms.is_some_and(|at| now - at < t.cooldown_ms);
            if !keep {
                changed.insert(key.clone(), a.partition);
            }
            keep
        });
        out
    }

    /// The keys changed since the last call, each with its state now (`None`: forgotten).
    pub fn take_changes(&mut self) -> Vec<(i32, String, Option<Alert>)> {
        std::mem::take(&mut self.changed)
            .into_iter()
            .map(|(key, partition)| {
                let alert = self.alerts.get(&key).cloned();
                (partition, key, alert)
            })
            .collect()
    }

    /// Removes and returns the alerts of `partitions` (moved to another router).
    pub fn release(&mut self, partitions: &[i32]) -> Vec<Alert> {
        self.changed.retain(|_, p| !partitions.contains(p));
        let keys: Vec<String> = self
            .alerts
            .values()
            .filter(|a| partitions.contains(&a.partition))
            .map(|a| a.key.clone())
            .collect();
        keys.iter().filter_map(|k| self.alerts.remove(k)).collect()
    }

    fn enqueue(&mut self, alert: Alert, now: i64) -> Notification {
        self.next_id += 1;
        let n = Notification {
            id: self.next_id,
            at_ms: now,
            alert,
        };
        self.outbox.insert(
            n.id,
            Pending {
                notification: n.clone(),
                handed_over: None,
            },
        );
        n
    }

    /// A checkpoint: forgets failed notifications handed to the router before the previous
    /// checkpoint (their error-action output is durable by now). Returns the checkpoint number.
    pub fn checkpoint(&mut self) -> u64 {
        self.checkpoints += 1;
        let current = self.checkpoints;
        self.outbox
            .retain(|_, p| p.handed_over.is_none_or(|h| h >= current));
        current
    }

    pub fn firing(&self) -> impl Iterator<Item = &Alert> {
        self.alerts
            .values()
            .filter(|a| a.status == AlertStatus::Firing)
    }

    /// Writes the book to `path` atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec(self)?;
        crate::atomic_write(path, &json)
    }

    /// Reads a saved book; none saved yet: an empty one.
    pub fn load(path: &Path) -> std::io::Result<AlertBook> {
        crate::read_state(path)
    }
}
