//! Each MQTT message to Kafka, then its PUBACK: sends run concurrently (each with its own
//! retries), acknowledgements go out in arrival order as MQTT requires.
//!
//! A message is acknowledged only on the connection it arrived on: after a reconnect the
//! broker redelivers what was not acknowledged, so an acknowledgement owed to a closed
//! connection is dropped rather than sent with a packet id that now means something else.
//! A producer that librdkafka declares fatally broken fails the stage, and the supervisor
//! starts it again with a new producer (the unacknowledged messages are redelivered).

use crate::events::{
    AckDropped, KafkaRefused, KafkaSendFailed, ProducerFailed, RecordProduced, ResendSkipped,
};
use crate::forward::{is_permanent, Forwarder, Outcome};
use crate::resend::InKafka;
use crate::IngestError;
use futures::stream::{FuturesOrdered, StreamExt};
use rdkafka::error::KafkaError;
use rdkafka::producer::DeliveryFuture;
use rumqttc::{AsyncClient, Publish};
use sluice_common::retry::{Backoff, Policy};
use sluice_common::{Event as _, Stats};
use sluice_core::DeadLettered;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Re-sending a record Kafka did not confirm.
const RESEND: Policy = Policy::doubling(Duration::from_millis(100), Duration::from_secs(5));
/// Waiting for room in librdkafka's queue (at shutdown: until the wait reaches its cap).
const QUEUE_FULL: Policy = Policy::doubling(Duration::from_millis(5), Duration::from_secs(5));

/// A message and the connection (generation) it arrived on.
pub struct Inbound {
    pub publish: Publish,
    pub connection: u64,
    /// Topic and payload hashed ([`crate::resend::content_hash`]).
    pub content: u64,
    /// A redelivery of a publish Kafka confirmed (see [`crate::resend`]): acknowledged only.
    pub in_kafka: bool,
}

/// Why a message was left unacknowledged (the broker redelivers it).
enum Undelivered {
    Stopping,
    Fatal(String),
}

/// The delivery side of ingest: what it needs besides the messages.
pub struct Acker {
    pub client: AsyncClient,
    pub forwarder: Forwarder,
    pub stats: Arc<Stats>,
    pub max_inflight: usize,
    /// The current MQTT connection's generation (bumped on every connect and disconnect).
    pub connection: Arc<AtomicU64>,
    /// Publishes Kafka confirmed, by packet id (see [`crate::resend`]).
    pub in_kafka: Arc<InKafka>,
}

impl Acker {
    /// Sends each message as it arrives and acknowledges in arrival order once Kafka
    /// confirmed it. Returns early only when the producer is broken for good.
    pub async fn run(
        self,
        mut rx: mpsc::Receiver<Inbound>,
        shutdown: CancellationToken,
    ) -> Result<(), IngestError> {
        let mut pending = FuturesOrdered::new();
        let mut unsent = Unsent::default();
        let mut retry = tokio::time::interval(ACK_RETRY);
        let mut open = true;
        // After the messages end, acknowledgements still waiting get a while to go out (the
        // connection is polled until this task ends).
        let mut ack_until = None;
        while open || !pending.is_empty() || unsent.waits(&mut ack_until) {
            tokio::select! {
                biased;
                Some((inbound, result)) = pending.next(), if !pending.is_empty() => {
                    if let Some(inbound) = self.confirmed(inbound, result)? {
                        unsent.push(inbound);
                        unsent.flush(&self.client, &self.connection);
                    }
                }
                _ = retry.tick(), if !unsent.is_empty() => {
                    unsent.flush(&self.client, &self.connection);
                }
                msg = rx.recv(), if open && pending.len() < self.max_inflight => match msg {
                    Some(inbound) => {
                        let (f, stop) = (self.forwarder.clone(), shutdown.clone());
                        pending.push_back(async move {
                            let result = if inbound.in_kafka {
                                Ok(None) // Kafka has it: only the PUBACK is owed.
                            } else {
                                deliver(&f, &inbound.publish, &stop).await.map(Some)
                            };
                            (inbound, result)
                        });
                    }
                    None => open = false,
                },
            }
        }
        Ok(())
    }

    /// Counts a delivered message; returns it when it is to be acknowledged.
    fn confirmed(
        &self,
        inbound: Inbound,
        result: Result<Option<Outcome>, Undelivered>,
    ) -> Result<Option<Inbound>, IngestError> {
        let outcome = match result {
            Ok(Some(outcome)) => outcome,
            Ok(None) => {
                ResendSkipped.emit();
                return Ok(Some(inbound));
            }
            Err(Undelivered::Stopping) => return Ok(None),
            Err(Undelivered::Fatal(why)) => {
                ProducerFailed { why: &why }.emit();
                return Err(IngestError::ProducerFatal(why));
            }
        };
        self.in_kafka
            .confirmed(inbound.publish.pkid, inbound.content);
        let stats = &self.stats;
        match &outcome {
            Outcome::Telemetry => RecordProduced { stats }.emit(),
            Outcome::DeadLetter(reason) => DeadLettered {
                stage: "ingest",
                reason,
                stats,
            }
            .emit(),
        }
        Ok(Some(inbound))
    }
}

/// How often acknowledgements that found the MQTT client's request queue full are retried.
const ACK_RETRY: Duration = Duration::from_millis(5);
/// How long acknowledgements may still wait once no message is left to deliver.
const ACK_GRACE: Duration = Duration::from_secs(5);

/// Acknowledgements in arrival order that the MQTT client could not take yet.
///
/// Never wait for room in the client's queue: it empties only while the connection is
/// polled, and the connection is not polled while ingest holds its most messages (Kafka is
/// slow) — waiting here would stop the deliveries that let it poll again (a deadlock seen at
/// 20 000 msg/s). So the acker keeps delivering, and these go out as room appears.
#[derive(Default)]
struct Unsent(std::collections::VecDeque<Inbound>);

impl Unsent {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether to keep going for acknowledgements alone: some wait, and the grace period
    /// (started by the first call) has not run out.
    fn waits(&self, until: &mut Option<std::time::Instant>) -> bool {
        let until = until.get_or_insert_with(|| std::time::Instant::now() + ACK_GRACE);
        !self.0.is_empty() && std::time::Instant::now() < *until
    }

    fn push(&mut self, inbound: Inbound) {
        self.0.push_back(inbound);
    }

    /// Hands acknowledgements to the client, in order, until its queue is full.
    fn flush(&mut self, client: &AsyncClient, connection: &AtomicU64) {
        while let Some(front) = self.0.front() {
            if front.connection != connection.load(Ordering::Acquire) {
                AckDropped.emit();
            } else if let Err(e) = client.try_ack(&front.publish) {
                if matches!(e, rumqttc::ClientError::TryRequest(_)) {
                    return; // Full: retried at the next tick.
                }
                crate::events::AckQueueFailed { error: &e }.emit();
            }
            self.0.pop_front();
        }
    }
}

fn queue_full(e: &KafkaError) -> bool {
    e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
}

async fn confirmed(future: DeliveryFuture) -> Result<(), KafkaError> {
    match future.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e),
        Err(_) => Err(KafkaError::Canceled),
    }
}

/// Queues a message's record, waiting while librdkafka's queue is full (giving up at
/// shutdown once the wait reached its cap: an unacknowledged message is redelivered).
async fn queue(
    forwarder: &Forwarder,
    p: &Publish,
    received: i64,
    shutdown: &CancellationToken,
) -> Result<(DeliveryFuture, Outcome), KafkaError> {
    let mut wait = Backoff::new(QUEUE_FULL);
    loop {
        match forwarder.send(&p.topic, &p.payload, received, p.dup) {
            Ok(queued) => return Ok(queued),
            Err(e) if queue_full(&e) && !(shutdown.is_cancelled() && wait.at_max()) => {
                tracing::debug!(error = %e, "kafka producer busy, retrying");
                tokio::time::sleep(wait.next_delay()).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sends one message until Kafka confirms it. A record Kafka refuses for good is replaced by
/// a dead-letter record; anything else is retried with backoff, concurrently with the other
/// messages' retries, so the whole window recovers together when Kafka is back.
async fn deliver(
    forwarder: &Forwarder,
    p: &Publish,
    shutdown: &CancellationToken,
) -> Result<Outcome, Undelivered> {
    let received = sluice_common::now_ms();
    let mut outcome = Outcome::Telemetry;
    let mut wait = Backoff::new(RESEND);
    let mut refused: Option<String> = None;
    loop {
        let queued = match &refused {
            Some(reason) => forwarder.dead_letter(&p.topic, reason),
            None => queue(forwarder, p, received, shutdown).await.map(|(f, o)| {
                outcome = o; // Where the record goes (raw topic, or the DLQ when oversize).
                f
            }),
        };
        let e = match queued {
            Ok(future) => match confirmed(future).await {
                Ok(()) => return Ok(outcome),
                Err(e) => e,
            },
            Err(e) => e,
        };
        if is_permanent(&e) {
            let reason = format!("kafka refused: {e}");
            let dead_letter_too = refused.is_some();
            KafkaRefused {
                topic: &p.topic,
                reason: &reason,
                dead_letter_too,
            }
            .emit();
            if dead_letter_too {
                return Ok(outcome); // Even the payload-less dead-letter record was refused.
            }
            outcome = Outcome::DeadLetter(reason.clone());
            refused = Some(reason);
            continue;
        }
        if let Some(why) = forwarder.fatal_error() {
            return Err(Undelivered::Fatal(why));
        }
        let retry_in = wait.next_delay();
        KafkaSendFailed {
            topic: &p.topic,
            error: &e,
            retry_in,
        }
        .emit();
        tokio::select! {
            _ = shutdown.cancelled() => return Err(Undelivered::Stopping),
            _ = tokio::time::sleep(retry_in) => {}
        }
    }
}
