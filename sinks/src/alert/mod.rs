//! `type = "alert"`: rule rows become alerts, deduplicated by key, notified once per firing
//! and again when they resolve.
//!
//! Layout:
//! - [`book`]: the state (firing keys, outbox) and its transitions; saved at every checkpoint.
//! - [`deliver`]: the worker thread that sends notifications (webhook, Kafka, log).
//! - [`AlertSink`]: the router side: rows → occurrences → notifications on a bounded queue.
//! - [`board`]: [`AlertBoard`], the state shared by the sink, the worker and the HTTP API
//!   (`/alerts`), and the delivery backlog.
//! - [`handover`]: key state in the changelog topic, handed to a partition's next owner.
//!
//! Delivery: a notification is in the outbox from the moment it is created; the outbox is
//! saved (fsync, rename) at each checkpoint, before the router commits offsets, so an alert is
//! "durably queued" before its offsets advance. Delivered notifications leave the outbox; on
//! restart the rest are sent again (at-least-once). A notification that still fails after the
//! retries goes, with its source row, to the rule's error action or the dead-letter topic.

mod board;
pub mod book;
pub mod deliver;
mod handover;
#[cfg(test)]
mod tests;

use crate::{CheckpointStats, DeliveryFailure, RuleOutput, Sink, SinkError};
use arrow::array::RecordBatch;
pub use board::AlertBoard;
use book::{AlertBook, Notification, Observed, Occurrence, Timing};
use sluice_config::AlertSinkConfig;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::Arc;

pub struct AlertSink {
    name: String,
    config: AlertSinkConfig,
    board: Arc<AlertBoard>,
    queue: Sender<Notification>,
    /// The source row of each queued firing, for the error action if delivery fails.
    sources: HashMap<u64, (String, RecordBatch)>,
    state_path: PathBuf,
    changelog: Option<(crate::changelog::Changelog, Arc<handover::Shadow>)>,
    /// Set when the sink is dropped: the delivery worker stops, even mid-probe.
    worker_stop: Arc<std::sync::atomic::AtomicBool>,
    /// Whether the "sink full" warning was logged.
    refusal_logged: bool,
}

impl Drop for AlertSink {
    fn drop(&mut self) {
        self.worker_stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

use crate::events::{AlertBacklog, AlertOverflowed, AlertResolved, AlertsFiring, AlertsObserved};
use sluice_common::{now_ms, Event};

impl AlertSink {
    /// Loads the saved state, starts the delivery worker and re-queues what was undelivered.
    pub fn new(
        name: &str,
        config: AlertSinkConfig,
        state_path: PathBuf,
        kafka: &rdkafka::ClientConfig,
        changelog_topic: Option<String>,
    ) -> Result<(AlertSink, Arc<AlertBoard>), SinkError> {
        let err = |m: String| SinkError::external(name, m);
        let mut book = AlertBook::load(&state_path)
            .map_err(|e| err(format!("reading {}: {e}", state_path.display())))?;
        book.max_keys = config.max_keys;
        let changelog = match changelog_topic {
            Some(topic) => {
                let shadow = Arc::new(handover::Shadow::default());
                shadow.take_partitioned(&mut book);
                let apply = handover::Shadow::apply(&shadow);
                let changelog =
                    crate::changelog::Changelog::start(&topic, kafka, apply).map_err(&err)?;
                Some((changelog, shadow))
            }
            None => None,
        };
        let destinations = config
            .destinations
            .iter()
            .map(|d| deliver::Destination::build(d, kafka))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(e.to_string()))?;
        let undelivered: Vec<Notification> = book
            .outbox
            .values_mut()
            .map(|p| {
                p.handed_over = None;
                p.notification.clone()
            })
            .collect();
        let board = Arc::new(AlertBoard::new(book));
        crate::events::AlertSinkStarted { sink: name }.emit();
        let (queue, receiver) = std::sync::mpsc::channel();
        let (worker_board, worker_name) = (board.clone(), name.to_string());
        let worker_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = worker_stop.clone();
        std::thread::Builder::new()
            .name(format!("alert-{name}"))
            .spawn(move || deliver::run(&worker_name, receiver, destinations, worker_board, stop))
            .map_err(|e| err(format!("starting the delivery worker: {e}")))?;
        let sink = AlertSink {
            name: name.into(),
            config,
            board: board.clone(),
            queue,
            sources: HashMap::new(),
            state_path,
            changelog,
            worker_stop,
            refusal_logged: false,
        };
        for n in undelivered {
            sink.send(n)?;
        }
        Ok((sink, board))
    }

    fn timing(&self) -> Timing {
        Timing {
            cooldown_ms: self.config.cooldown_ms as i64,
            resolve_after_ms: self.config.resolve_after_ms as i64,
        }
    }

    /// Hands a notification (already in the outbox) to the worker; past `queue_capacity`
    /// waiting, it fails at once instead (to the error action), so neither memory nor the
    /// router's pace depends on the destination.
    fn send(&self, n: Notification) -> Result<(), SinkError> {
        let capacity = self.config.queue_capacity;
        if self.board.backlog() >= capacity {
            AlertOverflowed {
                sink: &self.name,
                capacity,
            }
            .emit();
            let reason = format!(
                "the alert outbox is full ({capacity} waiting): the destination is failing"
            );
            self.board.hand_to_error_action(n.id, reason);
            return Ok(());
        }
        self.board.queued();
        self.queue
            .send(n)
            .map_err(|_| SinkError::external(&self.name, "the delivery worker stopped"))
    }

    /// The occurrences in one rule output, with the row each came from.
    fn occurrences(&self, rule: &str, output: &RuleOutput) -> Result<Vec<Occurrence>, SinkError> {
        let rows = sluice_processors::rule::rows_as_json(&output.rows)
            .map_err(|e| SinkError::external(&self.name, e))?;
        let meta = sluice_core::Meta::of(&output.source);
        let severity = self
            .config
            .severity
            .get(rule)
            .unwrap_or(&self.config.default_severity);
        let now = now_ms();
        Ok(rows
            .into_iter()
            .enumerate()
            .map(|(i, columns)| {
                let device = meta.device_id(i).unwrap_or("").to_string();
                let key = alert_key(rule, &device, &self.config.key_columns, &columns);
                Occurrence {
                    key,
                    rule: rule.into(),
                    device,
                    severity: severity.clone(),
                    columns,
                    seen_ms: meta.received_ms(i).unwrap_or(now),
                    partition: meta.partition(i),
                }
            })
            .collect())
    }
}

/// `rule/device`, or `rule/<value of each key column>`.
fn alert_key(
    rule: &str,
    device: &str,
    key_columns: &[String],
    columns: &serde_json::Map<String, serde_json::Value>,
) -> String {
    if key_columns.is_empty() {
        return format!("{rule}/{device}");
    }
    let parts: Vec<String> = key_columns
        .iter()
        .map(|k| match columns.get(k) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        })
        .collect();
    format!("{rule}/{}", parts.join("/"))
}

impl Sink for AlertSink {
    fn write(&mut self, rule: &str, output: &RuleOutput) -> Result<(), SinkError> {
        let occurrences = self.occurrences(rule, output)?;
        let (now, timing) = (now_ms(), self.timing());
        let mut fired = Vec::new();
        let mut suppressed = 0u64;
        let mut refused = 0u64;
        {
            let mut book = self.board.book();
            for (row, o) in occurrences.into_iter().enumerate() {
                match book.observe(o, now, timing) {
                    Observed::Fired(n) => fired.push((row, n)),
                    Observed::Suppressed => suppressed += 1,
                    Observed::Refused => refused += 1,
                }
            }
        }
        crate::events::AlertKeysRefused {
            sink: &self.name,
            occurrences: refused,
            first: refused > 0 && !std::mem::replace(&mut self.refusal_logged, true),
        }
        .emit();
        AlertsObserved {
            rule,
            fired: fired.len(),
            suppressed,
        }
        .emit();
        for (row, n) in fired {
            // A copy of the one row: a slice would keep the whole batch alive while queued.
            let index = arrow::array::UInt32Array::from(vec![row as u32]);
            let source = arrow::compute::take_record_batch(&output.source, &index)
                .map_err(|e| SinkError::external(&self.name, e))?;
            self.sources.insert(n.id, (rule.to_string(), source));
            self.send(n)?;
        }
        Ok(())
    }

    /// Resolves quiet keys, then saves the book (outbox included) before offsets advance.
    fn checkpoint(&mut self) -> Result<CheckpointStats, SinkError> {
        let resolved = self.board.book().sweep(now_ms(), self.timing());
        for n in resolved {
            AlertResolved {
                rule: &n.alert.rule,
            }
            .emit();
            self.send(n)?;
        }
        let mut book = self.board.book();
        book.checkpoint();
        AlertsFiring {
            sink: &self.name,
            firing: book.firing().count(),
        }
        .emit();
        AlertBacklog {
            sink: &self.name,
            waiting: self.board.backlog(),
        }
        .emit();
        book.save(&self.state_path).map_err(|e| {
            SinkError::external(
                &self.name,
                format!("saving {}: {e}", self.state_path.display()),
            )
        })?;
        let live: std::collections::HashSet<u64> = book.outbox.keys().copied().collect();
        self.sources.retain(|id, _| live.contains(id));
        let changes = book.take_changes();
        drop(book);
        if let Some((changelog, _)) = &self.changelog {
            let records = changes
                .into_iter()
                .filter(|(p, _, _)| *p >= 0)
                .map(|(p, key, alert)| {
                    let value = alert.and_then(|a| serde_json::to_vec(&a).ok());
                    (p, key, value)
                });
            changelog
                .checkpoint(records)
                .map_err(|e| SinkError::external(&self.name, e))?;
        }
        Ok(CheckpointStats::default())
    }

    /// Takes over the alert keys of these partitions from the changelog before their rows.
    fn assigned(&mut self, partitions: &[i32]) -> Result<(), SinkError> {
        let Some((changelog, shadow)) = &self.changelog else {
            return Ok(());
        };
        changelog
            .restore(partitions)
            .map_err(|e| SinkError::external(&self.name, e))?;
        let keys = shadow.adopt(&mut self.board.book(), partitions);
        crate::events::AlertStateRestored {
            sink: &self.name,
            partitions,
            keys,
        }
        .emit();
        Ok(())
    }

    /// The new owner of these partitions sweeps and resolves their keys from now on.
    fn revoked(&mut self, partitions: &[i32]) {
        if let Some((changelog, shadow)) = &self.changelog {
            changelog.release(partitions);
            shadow.release(&mut self.board.book(), partitions);
        }
    }

    fn take_failures(&mut self) -> Vec<DeliveryFailure> {
        let failed = self.board.take_failed();
        let mut book = self.board.book();
        let handed_in = book.checkpoints + 1;
        failed
            .into_iter()
            .filter_map(|(id, reason)| {
                let pending = book.outbox.get_mut(&id)?;
                pending.handed_over = Some(handed_in);
                let n = &pending.notification;
                // A firing notification carries its source row; a resolved one (or one
                // restored from disk) gets a row made of the notification itself.
                let (rule, rows) = match self.sources.remove(&id) {
                    Some((rule, rows)) => (rule, Some(rows)),
                    None => (n.alert.rule.clone(), notification_row(n)),
                };
                Some(DeliveryFailure {
                    rule,
                    device: n.alert.device.clone(),
                    reason: format!("alert delivery failed: {reason}"),
                    rows,
                    payload: serde_json::to_vec(n).unwrap_or_default(),
                })
            })
            .collect()
    }
}

/// A one-row batch describing a notification (device, key, status, the notification as
/// JSON), for the error action of a notification without a source row. It comes from no
/// Kafka record: partition and offset are -1 (sinks keep no ledger for it).
fn notification_row(n: &Notification) -> Option<RecordBatch> {
    use arrow::array::{Int32Array, Int64Array, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use sluice_core::meta::{DEVICE_ID, OFFSET, PARTITION, RECEIVED_AT};
    let text = |v: &str| Arc::new(StringArray::from(vec![v.to_string()])) as arrow::array::ArrayRef;
    let status = serde_json::to_value(&n.alert.status).ok()?;
    let schema = Schema::new(vec![
        Field::new(DEVICE_ID, DataType::Utf8, false),
        Field::new("alert_key", DataType::Utf8, false),
        Field::new("alert_status", DataType::Utf8, false),
        Field::new("notification", DataType::Utf8, false),
        Field::new(
            RECEIVED_AT,
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new(PARTITION, DataType::Int32, false),
        Field::new(OFFSET, DataType::Int64, false),
    ]);
    let columns = vec![
        text(&n.alert.device),
        text(&n.alert.key),
        text(status.as_str().unwrap_or_default()),
        text(&serde_json::to_string(n).ok()?),
        Arc::new(TimestampMillisecondArray::from(vec![now_ms()])),
        Arc::new(Int32Array::from(vec![-1])),
        Arc::new(Int64Array::from(vec![-1i64])),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).ok()
}
