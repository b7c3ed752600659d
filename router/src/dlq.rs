//! Dead-letter records from the router. They must be confirmed before offsets are committed,
//! or a crash could lose them.

use crate::RouterError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use sluice_config::Config;
use sluice_processors::record::dlq_headers;
use sluice_processors::stats::Stats;
use std::sync::Arc;

pub struct DeadLetters {
    producer: FutureProducer,
    topic: String,
    pending: Vec<DeliveryFuture>,
    stats: Arc<Stats>,
}

impl DeadLetters {
    pub fn new(config: &Config, bootstrap: &str, stats: Arc<Stats>) -> Result<Self, RouterError> {
        let producer = crate::kafka_client_config(config, bootstrap)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .create()?;
        Ok(Self {
            producer,
            topic: config.kafka.dlq_topic.clone(),
            pending: Vec::new(),
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
        let label = reason.split(':').next().unwrap_or("other").to_string();
        metrics::counter!("sluice_dlq_total", "stage" => "router", "reason" => label).increment(1);
        tracing::debug!(
            reason,
            partition = source.1,
            offset = source.2,
            "dead-lettered"
        );
        let mut record = FutureRecord::to(&self.topic)
            .key(key)
            .payload(payload)
            .headers(headers);
        loop {
            match self.producer.send_result(record) {
                Ok(f) => {
                    self.pending.push(f);
                    Stats::add(&self.stats.dead_lettered, 1);
                    return;
                }
                Err((_, r)) => {
                    // Queue full: let librdkafka deliver some, then try again.
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    record = r;
                }
            }
        }
    }

    /// Waits until every queued dead-letter record is confirmed.
    pub async fn flush(&mut self) -> Result<(), RouterError> {
        for f in self.pending.drain(..) {
            match f.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(RouterError::DeadLetter(e.to_string())),
                Err(_) => return Err(RouterError::DeadLetter("delivery cancelled".into())),
            }
        }
        Ok(())
    }
}
