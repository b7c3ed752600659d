//! State that follows its partition: a stateful sink keeps its state in a compacted Kafka
//! topic keyed by device (the changelog pattern of Kafka Streams), with as many partitions as
//! the raw topic and each key in the partition of the raw record it came from.
//!
//! - **Writing**: the sink marks keys it changed; at the checkpoint, before the router
//!   commits, [`Changelog::checkpoint`] produces each key's latest value once and waits until
//!   Kafka has them, so the committed offsets never run ahead of the saved state.
//! - **Reading**: a tailer thread reads every partition of the topic from the beginning and
//!   hands each record to the sink's `apply`, except records of partitions this router owns
//!   (those it wrote itself; its memory is ahead of them). So every router holds the whole
//!   fleet's state: `/compliance` answers fleet-wide from any of them.
//! - **Hand-over**: when the router is assigned a partition, [`Changelog::restore`] waits until
//!   the tailer has read that partition up to its end as of now (the previous owner's last
//!   checkpoint), and only then does the router process the partition's records.

use futures::future::join_all;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use sluice_common::Event;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Keys of records every router applies, the one that wrote them included: state of the whole
/// fleet rather than of one partition's devices (retirements, catalog changes). They are
/// written to partition 0.
pub const FLEET_WIDE: &str = "\u{1}fleet/";

/// What a sink does with a record of another router's partition, or a [`FLEET_WIDE`] one
/// (`None`: a tombstone).
pub type Apply = Box<dyn Fn(&str, Option<&[u8]>) + Send + 'static>;

/// How long an assignment may wait for the previous owner's state while the tailer reads
/// nothing. The wait itself has no cap: it follows the partition's keys (a large changelog
/// takes as long as reading it takes), and fails only when reading stalls.
const RESTORE_STALLED: Duration = Duration::from_secs(60);

/// How long a checkpoint waits on a producer queue that stays full before it fails.
const QUEUE_FULL_FOR: Duration = Duration::from_secs(30);

fn is_queue_full(e: &rdkafka::error::KafkaError) -> bool {
    e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
}

#[derive(Default)]
struct Tail {
    /// Partitions this router owns and has restored: their records are its own.
    live: HashSet<i32>,
    /// Next offset the tailer will read, per partition.
    next: HashMap<i32, i64>,
    records: u64,
}

struct Shared {
    tail: Mutex<Tail>,
    moved: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn tail(&self) -> MutexGuard<'_, Tail> {
        self.tail.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct Changelog {
    topic: String,
    producer: FutureProducer,
    probe: BaseConsumer,
    shared: Arc<Shared>,
    tailer: Option<std::thread::JoinHandle<()>>,
    partitions: Vec<i32>,
}

impl Drop for Changelog {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.tailer.take() {
            let _ = t.join();
        }
    }
}

fn consumer(kafka: &ClientConfig) -> Result<BaseConsumer, String> {
    let mut c = kafka.clone();
    // Assigned partitions only, never committed: the group id is a formality of librdkafka.
    c.set(
        "group.id",
        format!("sluice-changelog-{}", std::process::id()),
    )
    .set("enable.auto.commit", "false")
    .set("enable.auto.offset.store", "false")
    .set("auto.offset.reset", "earliest");
    c.create().map_err(|e| e.to_string())
}

impl Changelog {
    /// Starts the tailer on every partition of `topic` (which must exist).
    pub fn start(topic: &str, kafka: &ClientConfig, apply: Apply) -> Result<Self, String> {
        let producer: FutureProducer = kafka
            .clone()
            .set("enable.idempotence", "true")
            .create()
            .map_err(|e| format!("changelog producer: {e}"))?;
        let probe = consumer(kafka)?;
        let partitions = sluice_kafka::partition_ids(&probe, topic, Duration::from_secs(10))
            .map_err(|e| format!("changelog topic '{topic}': {e}"))?;
        if partitions.is_empty() {
            return Err(format!(
                "changelog topic '{topic}' has no partitions (create it)"
            ));
        }
        let tailer = consumer(kafka)?;
        let mut assignment = TopicPartitionList::new();
        for p in &partitions {
            assignment
                .add_partition_offset(topic, *p, Offset::Beginning)
                .map_err(|e| e.to_string())?;
        }
        tailer.assign(&assignment).map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared {
            tail: Mutex::new(Tail::default()),
            moved: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("sluice-changelog".into())
                .spawn(move || tail(tailer, shared, apply))
                .map_err(|e| e.to_string())?
        };
        Ok(Self {
            topic: topic.into(),
            producer,
            probe,
            shared,
            tailer: Some(thread),
            partitions,
        })
    }

    /// Saves each `(partition, key, value)` (`None`: a tombstone, the key is forgotten) and
    /// waits until Kafka has all of them.
    pub fn checkpoint(
        &self,
        records: impl IntoIterator<Item = (i32, String, Option<Vec<u8>>)>,
    ) -> Result<usize, String> {
        let records: Vec<_> = records.into_iter().collect();
        let mut deliveries = Vec::with_capacity(records.len());
        let mut waited_since: Option<Instant> = None;
        let mut next = records.iter().peekable();
        while let Some((partition, key, value)) = next.peek() {
            let mut record = FutureRecord::to(&self.topic)
                .partition(*partition)
                .key(key.as_bytes());
            if let Some(value) = value {
                record = record.payload(value.as_slice());
            }
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    waited_since = None;
                    next.next();
                }
                // The producer queue is full (a large state, a small queue): wait for what is
                // queued to be confirmed and go on, as ingest and the DLQ do (#24.10).
                Err((e, _)) if is_queue_full(&e) => {
                    let since = *waited_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > QUEUE_FULL_FOR {
                        return Err(format!(
                            "changelog '{}': {e} for {QUEUE_FULL_FOR:?}",
                            self.topic
                        ));
                    }
                    if deliveries.is_empty() {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    self.confirm(std::mem::take(&mut deliveries))?;
                }
                Err((e, _)) => return Err(format!("changelog '{}': {e}", self.topic)),
            }
        }
        self.confirm(deliveries)?;
        Ok(records.len())
    }

    fn confirm(&self, deliveries: Vec<rdkafka::producer::DeliveryFuture>) -> Result<(), String> {
        for delivered in futures::executor::block_on(join_all(deliveries)) {
            match delivered {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(format!("changelog '{}': {e}", self.topic)),
                Err(_) => return Err(format!("changelog '{}': delivery cancelled", self.topic)),
            }
        }
        Ok(())
    }

    /// Waits until the tailer has read `partitions` to their current end, then treats them as
    /// this router's own. Returns how many changelog records the tailer has read in all.
    pub fn restore(&self, partitions: &[i32]) -> Result<u64, String> {
        self.release(partitions);
        self.read_to_end(partitions, true)
    }

    /// Waits until the tailer has read every partition to its current end: the whole fleet's
    /// state, as the other routers last saved it (what a starting router shows first).
    pub fn catch_up(&self) -> Result<u64, String> {
        self.read_to_end(&self.partitions, false)
    }

    fn read_to_end(&self, partitions: &[i32], take_over: bool) -> Result<u64, String> {
        let mut progress = (self.shared.tail().records, Instant::now());
        for &p in partitions {
            let (_, end) = self
                .probe
                .fetch_watermarks(&self.topic, p, Duration::from_secs(10))
                .map_err(|e| format!("changelog '{}' partition {p}: {e}", self.topic))?;
            let mut tail = self.shared.tail();
            while tail.next.get(&p).copied().unwrap_or(0) < end {
                if tail.records > progress.0 {
                    progress = (tail.records, Instant::now());
                }
                let left = RESTORE_STALLED.saturating_sub(progress.1.elapsed());
                if left.is_zero() {
                    return Err(format!(
                        "changelog '{}' partition {p}: not read to offset {end}: nothing read for {}s",
                        self.topic,
                        RESTORE_STALLED.as_secs()
                    ));
                }
                tail = match self.shared.moved.wait_timeout(tail, left) {
                    Ok((t, _)) => t,
                    Err(p) => p.into_inner().0,
                };
            }
            if take_over {
                tail.live.insert(p);
            }
        }
        Ok(self.shared.tail().records)
    }

    /// The partitions moved to another router: apply what it writes from now on.
    pub fn release(&self, partitions: &[i32]) {
        let mut tail = self.shared.tail();
        for p in partitions {
            tail.live.remove(p);
        }
    }
}

/// The tailer: applies other routers' records until the changelog is dropped.
fn tail(consumer: BaseConsumer, shared: Arc<Shared>, apply: Apply) {
    while !shared.stop.load(Ordering::Relaxed) {
        let Some(polled) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = match polled {
            Ok(m) => m,
            Err(e) => {
                crate::events::ChangelogReadFailed { error: &e }.emit();
                continue;
            }
        };
        let (p, offset) = (message.partition(), message.offset());
        let key = message.key().map(String::from_utf8_lossy);
        let mut tail = shared.tail();
        if let Some(key) = key {
            if !tail.live.contains(&p) || key.starts_with(FLEET_WIDE) {
                apply(&key, message.payload());
            }
        }
        tail.next.insert(p, offset + 1);
        tail.records += 1;
        drop(tail);
        shared.moved.notify_all();
    }
}
