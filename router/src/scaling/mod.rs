//! Scaling signals: consumer lag and rates → replica advice on `/scaling` and as gauges.
//!
//! Layout:
//! - [`advice`]: the arithmetic (EWMA, replicas needed, scale-down stabilization).
//! - [`ScalingMonitor`]: samples Kafka every `scaling.interval_ms`: high watermarks of the raw
//!   topic and the committed offsets of the router's group (read with a consumer that never
//!   joins the group), plus this process's MQTT message count.
//!
//! Lag per partition = high watermark − committed offset (the whole log when nothing is
//! committed). Rates are EWMAs of the per-sample deltas: produce rate from the watermarks,
//! consume rate from the committed offsets. Lag-seconds = lag ÷ consume rate.

pub mod advice;

use advice::{replicas_needed, Ewma, Stabilizer};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use sluice_common::Event;
use sluice_common::Stats;
use sluice_config::Config;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What `/scaling` returns; KEDA's metrics-api scaler reads `router.desired_replicas`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScalingReport {
    pub sampled_at_ms: i64,
    pub samples: u64,
    pub router: RouterSignals,
    pub ingest: IngestSignals,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RouterSignals {
    pub topic: String,
    pub group: String,
    pub partitions: u32,
    pub lag_total: u64,
    pub lag_per_partition: BTreeMap<i32, u64>,
    /// Records/s written to the raw topic (EWMA).
    pub produce_rate: f64,
    /// Records/s the group commits (EWMA).
    pub consume_rate: f64,
    /// lag ÷ consume rate; null when there is lag and nothing is consumed.
    pub lag_seconds: Option<f64>,
    pub capacity_per_replica: f64,
    /// Members of the consumer group, when the broker says.
    pub current_replicas: Option<u32>,
    /// What the load asks for before the partition cap.
    pub wanted_replicas: u32,
    /// The advice: capped at the partitions, stabilized against flapping.
    pub desired_replicas: u32,
    pub partition_limited: bool,
    pub warning: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IngestSignals {
    /// MQTT messages/s received by this process (EWMA).
    pub message_rate: f64,
    pub capacity_per_replica: f64,
    pub desired_replicas: u32,
}

/// Offsets read in one sample.
struct Offsets {
    high: BTreeMap<i32, i64>,
    committed: BTreeMap<i32, i64>,
    members: Option<u32>,
}

struct Rates {
    at: Instant,
    high: i64,
    committed: i64,
    mqtt: u64,
    produce: Ewma,
    consume: Ewma,
    ingest: Ewma,
    router_advice: Stabilizer,
    ingest_advice: Stabilizer,
}

pub struct ScalingMonitor {
    config: Config,
    consumer: BaseConsumer,
    stats: Arc<Stats>,
    report: Mutex<ScalingReport>,
    rates: Mutex<Option<Rates>>,
    /// Why the raw topic cannot be read, while it cannot (`/readyz` says so).
    raw_topic_problem: Mutex<Option<String>>,
}

/// Why a lag sample could not be taken (the next one is tried at the next interval).
#[derive(Debug, thiserror::Error)]
pub enum ScalingError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("topic {0} has no partitions yet")]
    NoPartitions(String),
}

const KAFKA_TIMEOUT: Duration = Duration::from_secs(5);

impl ScalingMonitor {
    pub fn new(config: &Config, bootstrap: &str, stats: Arc<Stats>) -> Result<Self, ScalingError> {
        // group.id only names whose committed offsets to read; this consumer never subscribes.
        let consumer: BaseConsumer = sluice_kafka::kafka_client_config(config, bootstrap)
            .set("group.id", &config.router.group_id)
            .set("enable.auto.commit", "false")
            .create()?;
        Ok(ScalingMonitor {
            config: config.clone(),
            consumer,
            stats,
            report: Mutex::new(ScalingReport::default()),
            rates: Mutex::new(None),
            raw_topic_problem: Mutex::new(None),
        })
    }

    /// Why the raw topic cannot be read (deleted while running, say), or `None`.
    pub fn raw_topic_problem(&self) -> Option<String> {
        self.raw_topic_problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records whether the last sample found the raw topic; a change is an event.
    fn raw_topic_seen(&self, problem: Option<String>) {
        let mut now = self
            .raw_topic_problem
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let topic = &self.config.kafka.raw_topic;
        match (now.is_some(), &problem) {
            (false, Some(why)) => crate::events::RawTopicMissing { topic, why }.emit(),
            (true, None) => crate::events::RawTopicBack { topic }.emit(),
            _ => {}
        }
        *now = problem;
    }

    pub fn report(&self) -> ScalingReport {
        self.report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Samples every `scaling.interval_ms` until `shutdown`.
    pub async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        let interval = Duration::from_millis(self.config.scaling.interval_ms);
        loop {
            let me = self.clone();
            match tokio::task::spawn_blocking(move || me.sample()).await {
                Ok(Ok(())) => self.raw_topic_seen(None),
                Ok(Err(ScalingError::NoPartitions(topic))) => self.raw_topic_seen(Some(format!(
                    "the raw topic {topic} has no partitions: it was deleted, or never created \
                     (kafka.create_topics); the router has nothing to read and the front door \
                     cannot produce until it exists again"
                ))),
                Ok(Err(e)) => crate::events::ScalingSampleFailed {
                    error: &e,
                    panicked: false,
                }
                .emit(),
                Err(e) => crate::events::ScalingSampleFailed {
                    error: &e,
                    panicked: true,
                }
                .emit(),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    fn read_offsets(&self) -> Result<Offsets, ScalingError> {
        let topic = &self.config.kafka.raw_topic;
        let partitions = sluice_kafka::partition_ids(&self.consumer, topic, KAFKA_TIMEOUT)?;
        if partitions.is_empty() {
            return Err(ScalingError::NoPartitions(topic.clone()));
        }
        let mut high = BTreeMap::new();
        for &p in &partitions {
            let (_, h) = self.consumer.fetch_watermarks(topic, p, KAFKA_TIMEOUT)?;
            high.insert(p, h);
        }
        let mut tpl = TopicPartitionList::new();
        for &p in &partitions {
            tpl.add_partition(topic, p);
        }
        let committed = self
            .consumer
            .committed_offsets(tpl, KAFKA_TIMEOUT)?
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => (e.partition(), o),
                _ => (e.partition(), 0),
            })
            .collect();
        // How many routers the group has now (the embedded broker answers this too since its
        // DescribeGroups fix: vendor/tansu-storage/SLUICE-PATCHES.md).
        let members = self
            .consumer
            .fetch_group_list(Some(&self.config.router.group_id), KAFKA_TIMEOUT)
            .ok()
            .and_then(|g| g.groups().first().map(|g| g.members().len() as u32));
        Ok(Offsets {
            high,
            committed,
            members,
        })
    }

    fn sample(&self) -> Result<(), ScalingError> {
        let offsets = self.read_offsets()?;
        let now = Instant::now();
        let sc = &self.config.scaling;
        let lag_per_partition: BTreeMap<i32, u64> = offsets
            .high
            .iter()
            .map(|(p, h)| {
                let c = offsets.committed.get(p).copied().unwrap_or(0);
                (*p, (h - c).max(0) as u64)
            })
            .collect();
        let lag_total: u64 = lag_per_partition.values().sum();
        let high: i64 = offsets.high.values().sum();
        let committed: i64 = offsets.committed.values().sum();
        let mqtt = Stats::get(&self.stats.mqtt_received);
        let mut guard = self.rates.lock().unwrap_or_else(|p| p.into_inner());
        let window = Duration::from_millis(sc.scale_down_window_ms);
        let rates = guard.get_or_insert_with(|| Rates {
            at: now,
            high,
            committed,
            mqtt,
            produce: Ewma::default(),
            consume: Ewma::default(),
            ingest: Ewma::default(),
            router_advice: Stabilizer::new(window),
            ingest_advice: Stabilizer::new(window),
        });
        let dt = now.duration_since(rates.at).as_secs_f64();
        if dt > 0.0 {
            let per_s = |d: i64| d.max(0) as f64 / dt;
            rates
                .produce
                .update(per_s(high - rates.high), sc.ewma_alpha);
            rates
                .consume
                .update(per_s(committed - rates.committed), sc.ewma_alpha);
            rates
                .ingest
                .update(per_s(mqtt as i64 - rates.mqtt as i64), sc.ewma_alpha);
        }
        (rates.at, rates.high, rates.committed, rates.mqtt) = (now, high, committed, mqtt);
        let consume_rate = rates.consume.get();
        let lag_seconds = match (lag_total, consume_rate > 0.0) {
            (0, _) => Some(0.0),
            (lag, true) => Some(lag as f64 / consume_rate),
            (_, false) => None,
        };
        let partitions = offsets.high.len() as u32;
        let need = replicas_needed(
            rates.produce.get(),
            lag_total,
            lag_seconds,
            sc.router_capacity_per_replica,
            sc.target_lag_seconds,
            Some(partitions),
        );
        let desired = rates.router_advice.advise(now, need.capped);
        let ingest_need = replicas_needed(
            rates.ingest.get(),
            0,
            Some(0.0),
            sc.ingest_capacity_per_replica,
            sc.target_lag_seconds,
            None,
        );
        let ingest_desired = rates.ingest_advice.advise(now, ingest_need.capped);
        let router = RouterSignals {
            topic: self.config.kafka.raw_topic.clone(),
            group: self.config.router.group_id.clone(),
            partitions,
            lag_total,
            lag_per_partition,
            produce_rate: rates.produce.get(),
            consume_rate,
            lag_seconds,
            capacity_per_replica: sc.router_capacity_per_replica,
            current_replicas: offsets.members,
            wanted_replicas: need.wanted,
            desired_replicas: desired,
            partition_limited: need.limited_by_cap,
            warning: need.limited_by_cap.then(|| {
                format!(
                    "the load needs {} routers but {} has {partitions} partitions: add partitions",
                    need.wanted, self.config.kafka.raw_topic
                )
            }),
        };
        let ingest = IngestSignals {
            message_rate: rates.ingest.get(),
            capacity_per_replica: sc.ingest_capacity_per_replica,
            desired_replicas: ingest_desired,
        };
        drop(guard);
        crate::events::ScalingSampled {
            router: &router,
            ingest: &ingest,
        }
        .emit();
        let mut report = self.report.lock().unwrap_or_else(|p| p.into_inner());
        *report = ScalingReport {
            sampled_at_ms: sluice_common::now_ms(),
            samples: report.samples + 1,
            router,
            ingest,
        };
        Ok(())
    }
}
