//! One publish to Kafka: queue it (waiting while librdkafka's queue is full), then wait for
//! Kafka's confirmation. A record Kafka refuses for good (too large, invalid) becomes a
//! payload-less dead letter with the reason, so it never blocks the device's next messages.
//! Anything else that fails (librdkafka already retried until `message.timeout.ms`) is
//! reported: the connection then closes without acknowledging, and the device resends.

use crate::forward::{is_permanent, Forwarder, Outcome};
use bytes::Bytes;
use rdkafka::error::KafkaError;
use rdkafka::producer::DeliveryFuture;
use sluice_common::retry::{Backoff, Policy};
use sluice_common::Event as _;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Waiting for room in librdkafka's queue.
const QUEUE_FULL: Policy = Policy::doubling(Duration::from_millis(1), Duration::from_millis(200));
/// At a stop, how long a publish may wait for room before it is left unacknowledged.
const QUEUE_FULL_AT_STOP: Duration = Duration::from_secs(5);

/// Where a publish goes.
#[derive(Debug)]
pub enum Job {
    Telemetry {
        key: String,
        topic: String,
        payload: Bytes,
        received_ms: i64,
    },
    DeadLetter {
        key: String,
        topic: String,
        reason: String,
        payload: Bytes,
    },
}

fn queue(forwarder: &Forwarder, job: &Job) -> Result<DeliveryFuture, KafkaError> {
    match job {
        Job::Telemetry {
            key,
            topic,
            payload,
            received_ms,
        } => forwarder.send_telemetry(key, topic, payload, *received_ms),
        Job::DeadLetter {
            key,
            topic,
            reason,
            payload,
        } => forwarder.send_dead_letter(key, topic, reason, payload),
    }
}

async fn queue_with_room(
    forwarder: &Forwarder,
    job: &Job,
    stop: &CancellationToken,
) -> Result<DeliveryFuture, KafkaError> {
    let mut wait = Backoff::new(QUEUE_FULL);
    let mut stopping_since = None;
    loop {
        match queue(forwarder, job) {
            Err(e)
                if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
            {
                if stop.is_cancelled() {
                    let since = *stopping_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() > QUEUE_FULL_AT_STOP {
                        return Err(e);
                    }
                }
                tokio::time::sleep(wait.next_delay()).await;
            }
            other => return other,
        }
    }
}

async fn confirmed(future: DeliveryFuture) -> Result<(), KafkaError> {
    match future.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e),
        Err(_) => Err(KafkaError::Canceled),
    }
}

/// Produces `job` until Kafka confirmed it (or its dead letter); `Err` says why not.
pub async fn produce(
    forwarder: Arc<Forwarder>,
    job: Job,
    stop: CancellationToken,
) -> Result<Outcome, String> {
    let e = match queue_with_room(&forwarder, &job, &stop).await {
        Ok(f) => match confirmed(f).await {
            Ok(()) => {
                return Ok(match job {
                    Job::Telemetry { .. } => Outcome::Telemetry,
                    Job::DeadLetter { reason, .. } => Outcome::DeadLetter(reason),
                })
            }
            Err(e) => e,
        },
        Err(e) => e,
    };
    if !is_permanent(&e) {
        return Err(e.to_string());
    }
    let (key, topic) = match &job {
        Job::Telemetry { key, topic, .. } | Job::DeadLetter { key, topic, .. } => (key, topic),
    };
    let reason = format!("kafka refused: {e}");
    crate::events::KafkaRefused {
        topic,
        reason: &reason,
        dead_letter_too: matches!(job, Job::DeadLetter { .. }),
    }
    .emit();
    let dead_letter = Job::DeadLetter {
        key: key.clone(),
        topic: topic.clone(),
        reason: reason.clone(),
        payload: Bytes::new(),
    };
    let f = queue_with_room(&forwarder, &dead_letter, &stop)
        .await
        .map_err(|e| e.to_string())?;
    confirmed(f).await.map_err(|e| e.to_string())?;
    Ok(Outcome::DeadLetter(reason))
}
