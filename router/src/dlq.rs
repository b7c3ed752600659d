//! Dead-letter records from the router. They must be confirmed before offsets are committed,
//! or a crash could lose them.
//!
//! `send` never blocks the async runtime: when librdkafka's queue is full the record waits in
//! a local backlog that `flush` (async, at the checkpoint) drains. A record Kafka refuses for
//! good because of its size is sent again without its payload, the reason saying so; any
//! other refusal fails the checkpoint, so the offsets stay uncommitted and the batch replays.

use crate::RouterError;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use sluice_common::Event;
use sluice_common::Stats;
use sluice_config::Config;
use sluice_processors::events::DeadLettered;
use sluice_processors::record::dlq_headers;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// A dead-letter record kept by the router until Kafka confirmed it.
struct Letter {
    key: String,
    payload: Vec<u8>,
    headers: OwnedHeaders,
}

pub struct DeadLetters {
    producer: FutureProducer,
    topic: String,
    /// Queued with librdkafka: (the record, its delivery).
    pending: Vec<(Letter, DeliveryFuture)>,
    /// Not yet queued: librdkafka did not take them (most often: its queue was full).
    backlog: VecDeque<Letter>,
    stats: Arc<Stats>,
}

impl DeadLetters {
    pub fn new(config: &Config, bootstrap: &str, stats: Arc<Stats>) -> Result<Self, RouterError> {
        let producer = sluice_kafka::idempotent_producer(config, bootstrap).create()?;
        Ok(Self {
            producer,
            topic: config.kafka.dlq_topic.clone(),
            pending: Vec::new(),
            backlog: VecDeque::new(),
            stats,
        })
    }

    /// Queues a dead-letter record: original key and value, reason and source in headers.
    pub fn send(
        &mut self,
        key: &str,
        payload: &[u8],
        reason: &str,
        source: (&str, i32, i64),
        mqtt_topic: Option<&str>,
    ) {
        let headers = dlq_headers(reason, Some(source), mqtt_topic)
            .into_iter()
            .fold(OwnedHeaders::new(), |h, (k, v)| {
                h.insert(Header {
                    key: k,
                    value: Some(&v),
                })
            });
        tracing::debug!(
            partition = source.1,
            offset = source.2,
            "dead-letter source"
        );
        DeadLettered {
            stage: "router",
            reason,
            stats: &self.stats,
        }
        .emit();
        let letter = Letter {
            key: key.to_string(),
            payload: payload.to_vec(),
            headers,
        };
        if self.backlog.is_empty() {
            if let Err(letter) = self.try_queue(letter) {
                self.backlog.push_back(letter);
            }
        } else {
            self.backlog.push_back(letter);
        }
    }

    /// Hands a record to librdkafka; gives it back when librdkafka does not take it (its queue
    /// is full, or it refused the record locally): `flush` tries it again.
    fn try_queue(&mut self, letter: Letter) -> Result<(), Letter> {
        let record = FutureRecord::to(&self.topic)
            .key(&letter.key)
            .payload(&letter.payload)
            .headers(letter.headers.clone());
        match self.producer.send_result(record) {
            Ok(f) => {
                self.pending.push((letter, f));
                Ok(())
            }
            // librdkafka refuses a record over `message.max.bytes` before it leaves: retrying
            // it as it is would spin the checkpoint forever. Without its payload it fits.
            Err((e, _)) if too_large(&e) && !letter.payload.is_empty() => {
                crate::events::DeadLetterTooLarge { error: &e }.emit();
                self.try_queue(without_payload(letter, &e))
            }
            Err(_) => Err(letter),
        }
    }

    /// Waits until every dead-letter record is confirmed.
    pub async fn flush(&mut self) -> Result<(), RouterError> {
        loop {
            while let Some(letter) = self.backlog.pop_front() {
                if let Err(letter) = self.try_queue(letter) {
                    self.backlog.push_front(letter);
                    break;
                }
            }
            let pending: Vec<_> = self.pending.drain(..).collect();
            for (letter, f) in pending {
                match f.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) if too_large(&e) && !letter.payload.is_empty() => {
                        crate::events::DeadLetterTooLarge { error: &e }.emit();
                        self.backlog.push_back(without_payload(letter, &e));
                    }
                    Ok(Err((e, _))) => return Err(RouterError::DeadLetter(e.to_string())),
                    Err(_) => return Err(RouterError::DeadLetter("delivery cancelled".into())),
                }
            }
            if self.backlog.is_empty() {
                return Ok(());
            }
            // librdkafka did not take every record (most often: its queue was full): give it
            // time to deliver without blocking a thread, then try the backlog again.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn too_large(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize)
    )
}

fn without_payload(letter: Letter, e: &KafkaError) -> Letter {
    let note = format!("payload of {} bytes dropped: {e}", letter.payload.len());
    Letter {
        key: letter.key,
        payload: Vec::new(),
        headers: letter.headers.insert(Header {
            key: "sluice.dlq.note",
            value: Some(note.as_bytes()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 24 point 5: a dead letter librdkafka refuses locally (over `message.max.bytes`)
    /// used to go back to the backlog on every flush, forever. It is queued without its
    /// payload instead (no broker is needed to see it: the refusal is local).
    #[test]
    fn a_dead_letter_over_the_size_limit_is_queued_without_its_payload() {
        let producer: FutureProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("message.max.bytes", "10000")
            .create()
            .unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _guard = rt.enter();
        let mut dlq = DeadLetters {
            producer,
            topic: "telemetry.dlq".into(),
            pending: Vec::new(),
            backlog: VecDeque::new(),
            stats: Arc::new(Stats::default()),
        };
        dlq.send(
            "dev-1",
            &vec![b'x'; 50_000],
            "invalid json",
            ("telemetry.raw", 0, 7),
            None,
        );
        assert!(dlq.backlog.is_empty(), "not left to spin in the backlog");
        assert_eq!(dlq.pending.len(), 1);
        assert!(
            dlq.pending[0].0.payload.is_empty(),
            "queued without its payload"
        );
    }
}
