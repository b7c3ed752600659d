//! The delivery worker: one thread that sends notifications to the destinations.
//!
//! Why a thread: webhook retries and backoff take seconds; the router must never wait on
//! them. The sink never blocks on this worker: it hands notifications over an unbounded
//! channel and bounds memory itself (the outbox holds at most `queue_capacity`; past it new
//! notifications fail at once to the rule's error action). Outcomes go back through the
//! shared [`AlertBoard`]: delivered notifications leave the outbox; failed ones wait there
//! for the router to send them to the rule's error action or the dead-letter topic.
//!
//! A circuit breaker spares a dead destination: after [`TRIP_AFTER`] notifications in a row
//! failed their retries, the worker stops sending for a cool-off (5 s, doubling to 5 min),
//! then probes with one attempt of the next notification. Meanwhile notifications wait in
//! the durable outbox and are delivered once a probe succeeds.

use super::book::Notification;
use super::AlertBoard;
use crate::events::{AlertDelivered, CircuitChanged, WebhookAttemptFailed};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice_common::retry::{Backoff, Policy};
use sluice_common::Event;
use sluice_config::AlertDestination;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A destination ready to send.
pub enum Destination {
    Webhook {
        client: reqwest::blocking::Client,
        url: String,
        /// `url` as it may be shown: secrets (user info, query, token-like path) blanked.
        shown: String,
        retries: u32,
        backoff: Duration,
    },
    Kafka {
        producer: FutureProducer,
        topic: String,
    },
    Log,
}

impl Destination {
    /// Builds a destination; Kafka ones need the bootstrap servers.
    pub fn build(
        d: &AlertDestination,
        kafka: &rdkafka::ClientConfig,
    ) -> Result<Destination, DeliveryError> {
        Ok(match d {
            AlertDestination::Webhook {
                url,
                timeout_ms,
                retries,
                backoff_ms,
            } => Destination::Webhook {
                client: reqwest::blocking::Client::builder()
                    .timeout(Duration::from_millis(*timeout_ms))
                    .build()
                    .map_err(|e| DeliveryError::Setup(format!("webhook client: {e}")))?,
                url: url.clone(),
                shown: sluice_config::security::redact_url(url),
                retries: *retries,
                backoff: Duration::from_millis(*backoff_ms),
            },
            AlertDestination::Kafka { topic } => Destination::Kafka {
                producer: kafka
                    .clone()
                    .set("message.timeout.ms", "10000")
                    .create()
                    .map_err(|e| DeliveryError::Setup(format!("alert producer: {e}")))?,
                topic: topic.clone(),
            },
            AlertDestination::Log => Destination::Log,
        })
    }

    /// Sends one notification; a `probe` (circuit half-open) is a single attempt.
    fn send(&self, n: &Notification, body: &[u8], probe: bool) -> Result<(), DeliveryError> {
        match self {
            Destination::Webhook {
                client,
                url,
                shown,
                retries,
                backoff,
            } => {
                let retries = if probe { 0 } else { *retries };
                post_with_retries(client, (url, shown), body, retries, *backoff)
            }
            Destination::Kafka { producer, topic } => {
                let record = FutureRecord::to(topic).key(&n.alert.key).payload(body);
                futures::executor::block_on(producer.send(record, Duration::from_secs(10)))
                    .map(|_| ())
                    .map_err(|(e, _)| DeliveryError::Kafka {
                        topic: topic.clone(),
                        source: e,
                    })
            }
            Destination::Log => {
                let a = &n.alert;
                tracing::warn!(target: "sluice::alert", status = ?a.status, rule = %a.rule,
                    device = %a.device, severity = %a.severity, count = a.count, "alert");
                Ok(())
            }
        }
    }
}

/// Why a notification did not reach a destination. Webhook messages name the webhook by its
/// redacted form only: the real URL often carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{0}")]
    Setup(String),
    #[error("webhook {shown}: {problem} after {attempts} attempts")]
    Webhook {
        shown: String,
        problem: String,
        attempts: u32,
    },
    #[error("kafka topic '{topic}': {source}")]
    Kafka {
        topic: String,
        source: rdkafka::error::KafkaError,
    },
}

/// The longest wait between two webhook attempts.
const MAX_WEBHOOK_BACKOFF: Duration = Duration::from_secs(60);

/// POSTs `body` to `url`; a 2xx answer is delivery. Other answers and transport errors are
/// retried `retries` times, waiting `backoff`, then twice that, and so on. Messages name the
/// webhook by `shown` only: the real URL often carries a secret.
fn post_with_retries(
    client: &reqwest::blocking::Client,
    (url, shown): (&str, &str),
    body: &[u8],
    retries: u32,
    backoff: Duration,
) -> Result<(), DeliveryError> {
    let mut wait = Backoff::new(Policy::doubling(backoff, MAX_WEBHOOK_BACKOFF));
    let mut attempt = 0;
    loop {
        let outcome = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send();
        let problem = match outcome {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => format!("HTTP {}", r.status().as_u16()),
            Err(e) => error_chain(&e.without_url()),
        };
        WebhookAttemptFailed {
            webhook: &shown,
            problem: &problem,
            attempt,
        }
        .emit();
        if attempt >= retries {
            return Err(DeliveryError::Webhook {
                shown: shown.to_string(),
                problem,
                attempts: attempt + 1,
            });
        }
        attempt += 1;
        std::thread::sleep(wait.next_delay());
    }
}

/// An error and its causes on one line ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Notifications in a row that failed their retries before the circuit opens.
pub const TRIP_AFTER: u32 = 3;
const COOL_OFF: Policy = Policy::doubling(Duration::from_secs(5), Duration::from_secs(300));

/// The circuit breaker's state.
struct Breaker {
    failures_in_a_row: u32,
    cool_off: Backoff,
    open_until: Option<Instant>,
}

impl Breaker {
    fn new() -> Self {
        Self {
            failures_in_a_row: 0,
            cool_off: Backoff::new(COOL_OFF),
            open_until: None,
        }
    }

    /// Sleeps out an open circuit, waking early when `stopped`; true when the next send is a
    /// probe.
    fn wait(&self, stopped: &AtomicBool) -> bool {
        let Some(until) = self.open_until else {
            return false;
        };
        while !stopped.load(Ordering::Relaxed) && Instant::now() < until {
            let left = until.saturating_duration_since(Instant::now());
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
        true
    }

    fn succeeded(&mut self, sink: &str) {
        if self.open_until.take().is_some() {
            CircuitChanged { sink, open: false }.emit();
        }
        self.failures_in_a_row = 0;
        self.cool_off.reset();
    }

    fn failed(&mut self, sink: &str) {
        self.failures_in_a_row += 1;
        if self.open_until.is_some() || self.failures_in_a_row >= TRIP_AFTER {
            let wait = self.cool_off.next_delay();
            self.open_until = Some(Instant::now() + wait);
            CircuitChanged { sink, open: true }.emit();
        }
    }
}

/// Sends every notification from `queue` to every destination until the queue closes or
/// `stopped` is set (the sink was dropped: a stage restart). A worker probing a dead
/// destination used to outlive its sink and deliver beside the new one (#24.13); what it
/// leaves undelivered stays in the durable outbox for the sink's next start.
pub fn run(
    sink: &str,
    queue: Receiver<Notification>,
    destinations: Vec<Destination>,
    board: Arc<AlertBoard>,
    stopped: Arc<AtomicBool>,
) {
    let mut breaker = Breaker::new();
    for n in queue {
        let body = serde_json::to_vec(&n).unwrap_or_default();
        loop {
            if stopped.load(Ordering::Relaxed) {
                return;
            }
            let probe = breaker.wait(&stopped);
            if stopped.load(Ordering::Relaxed) {
                return;
            }
            let started = Instant::now();
            let failures: Vec<String> = destinations
                .iter()
                .filter_map(|d| d.send(&n, &body, probe).err().map(|e| e.to_string()))
                .collect();
            if failures.is_empty() {
                breaker.succeeded(sink);
            } else {
                breaker.failed(sink);
                if probe {
                    continue; // Still down: this one waits in the outbox for the next probe.
                }
            }
            AlertDelivered {
                rule: &n.alert.rule,
                key: &n.alert.key,
                took: started.elapsed(),
                failures: &failures,
            }
            .emit();
            if failures.is_empty() {
                board.delivered(n.id);
            } else {
                board.failed(n.id, failures.join("; "));
            }
            break;
        }
    }
}
