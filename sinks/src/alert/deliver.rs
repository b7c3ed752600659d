//! The delivery worker: one thread that sends notifications to the destinations.
//!
//! Why a thread: webhook retries and backoff take seconds; the router must not wait on them.
//! The channel is bounded (`queue_capacity`), so a slow destination slows the router
//! (backpressure) instead of growing memory. Outcomes go back through the shared
//! [`AlertBoard`]: delivered notifications leave the outbox; failed ones wait there for the
//! router to send them to the rule's error action or the dead-letter topic.

use super::book::Notification;
use super::AlertBoard;
use crate::events::{AlertDelivered, WebhookAttemptFailed};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice_common::retry::{Backoff, Policy};
use sluice_common::Event;
use sluice_config::AlertDestination;
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

    fn send(&self, n: &Notification, body: &[u8]) -> Result<(), DeliveryError> {
        match self {
            Destination::Webhook {
                client,
                url,
                shown,
                retries,
                backoff,
            } => post_with_retries(client, (url, shown), body, *retries, *backoff),
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

/// Sends every notification from `queue` to every destination until the queue closes.
pub fn run(queue: Receiver<Notification>, destinations: Vec<Destination>, board: Arc<AlertBoard>) {
    for n in queue {
        let started = Instant::now();
        let body = serde_json::to_vec(&n).unwrap_or_default();
        let failures: Vec<String> = destinations
            .iter()
            .filter_map(|d| d.send(&n, &body).err().map(|e| e.to_string()))
            .collect();
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
    }
}
