//! The idempotent producer, made so that its owner can wait until it may send.
//!
//! librdkafka asks the broker for a producer id about half a second after the client is made
//! (its first attempt finds no broker connection yet, and the retry timer is 500 ms) and holds
//! every record until the id arrives. A front door that took devices before then answered the
//! first ~5 000 publishes of a 10 000 msg/s load 0.5–1 s late: the whole of a 30 s run's
//! PUBACK p99 (719 ms cold against 22 ms warm, bench/README.md). The statistics callback
//! reports the id's state; the gateway and broker-mode ingest wait for it before they listen
//! ([`IdempotentProducer::wait_for_id`]).

use crate::presets::idempotent_producer;
use rdkafka::client::ClientContext;
use rdkafka::error::KafkaResult;
use rdkafka::producer::FutureProducer;
use rdkafka::statistics::Statistics;
use rdkafka::ClientConfig;
use sluice_config::Config;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often librdkafka reports its state (and so how late the wait can notice the id).
const STATISTICS_INTERVAL_MS: &str = "100";

/// Watches librdkafka's statistics for the idempotent producer's state.
pub struct ProducerIdWatch {
    assigned: Arc<AtomicBool>,
}

impl ClientContext for ProducerIdWatch {
    fn stats(&self, statistics: Statistics) {
        let assigned = statistics
            .eos
            .is_some_and(|eos| eos.idemp_state == "Assigned");
        self.assigned.store(assigned, Ordering::Relaxed);
    }
}

/// Ingest's raw-topic producer: [`idempotent_producer`] that knows when it holds its id. It
/// derefs to the librdkafka producer.
#[derive(Clone)]
pub struct IdempotentProducer {
    producer: FutureProducer<ProducerIdWatch>,
    assigned: Arc<AtomicBool>,
}

impl std::ops::Deref for IdempotentProducer {
    type Target = FutureProducer<ProducerIdWatch>;
    fn deref(&self) -> &Self::Target {
        &self.producer
    }
}

impl IdempotentProducer {
    /// Makes ingest's producer from `settings` (normally [`idempotent_producer`]'s).
    pub fn create(mut settings: ClientConfig) -> KafkaResult<Self> {
        let assigned = Arc::new(AtomicBool::new(false));
        settings.set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
        let watch = ProducerIdWatch {
            assigned: assigned.clone(),
        };
        Ok(Self {
            producer: settings.create_with_context(watch)?,
            assigned,
        })
    }

    /// Waits until the broker gave the producer its id, at most `within`; `false` when it
    /// did not (Kafka unreachable: the producer keeps trying, and records wait in its queue).
    pub async fn wait_for_id(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.assigned.load(Ordering::Relaxed) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Makes ingest's producer with the config's settings.
pub fn create_idempotent_producer(
    config: &Config,
    bootstrap: &str,
) -> KafkaResult<IdempotentProducer> {
    IdempotentProducer::create(idempotent_producer(config, bootstrap))
}
