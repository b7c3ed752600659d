//! `sluice rules preview`: rules run on records already in the raw topic, read-only.
//!
//! The records are read with a consumer that joins no group (partitions assigned by hand,
//! auto-commit and the offset store off), so nothing is committed and no group is left behind; the router group's
//! offsets are untouched. They are decoded by the router's decoder and routed by
//! [`RuleSet::route`], the router's own function, so a preview shows what the router would
//! write for the same records.

use arrow::array::RecordBatch;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use sluice_config::Config;
use sluice_processors::decode::formats::PayloadFormats;
use sluice_processors::decode::{BatchDecoder, RawBatch};
use sluice_processors::record::TelemetryRecord;
use sluice_processors::rule::RuleSet;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Which records to preview.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// At most this many records, the latest of each partition.
    pub last: usize,
    /// Only records ingest received in the last this many milliseconds.
    pub within_ms: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error(
        "kafka at {bootstrap}: {reason} (is the broker up, and is this the config it runs with?)"
    )]
    Kafka {
        bootstrap: String,
        reason: rdkafka::error::KafkaError,
    },
    #[error(
        "topic '{0}' does not exist on the broker: nothing has been ingested with this config"
    )]
    NoTopic(String),
    #[error("topic '{0}' holds no records{1}: nothing to preview")]
    Empty(String, &'static str),
    #[error("reading topic '{topic}' timed out after {read} of {expected} records")]
    TimedOut {
        topic: String,
        read: usize,
        expected: i64,
    },
}

/// The records read, decoded into the batch the rules see.
pub struct Sample {
    pub raw: RawBatch,
    pub batch: Option<RecordBatch>,
    /// Records the decoder refused (they would go to the dead-letter topic).
    pub rejected: usize,
}

const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the window's records from the raw topic at `bootstrap` and decodes them.
pub fn sample(config: &Config, bootstrap: &str, window: Window) -> Result<Sample, PreviewError> {
    let topic = &config.kafka.raw_topic;
    let kafka = |reason| PreviewError::Kafka {
        bootstrap: bootstrap.to_string(),
        reason,
    };
    // Partitions are assigned by hand: the group id (librdkafka wants one for that) is never
    // joined, and with auto-commit and the offset store off nothing is ever committed.
    let group = format!("sluice-preview-{}", std::process::id());
    let consumer: BaseConsumer = sluice_kafka::kafka_client_config(config, bootstrap)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .map_err(kafka)?;
    let metadata = consumer
        .fetch_metadata(Some(topic), KAFKA_TIMEOUT)
        .map_err(kafka)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(PreviewError::NoTopic(topic.clone()));
    }
    let mut ends = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, KAFKA_TIMEOUT)
            .map_err(kafka)?;
        let start = low.max(high - window.last as i64);
        if start < high {
            ends.insert(p, high);
            assignment
                .add_partition_offset(topic, p, Offset::Offset(start))
                .map_err(kafka)?;
        }
    }
    let expected: i64 = ends
        .iter()
        .map(|(p, high)| high - offset_of(&assignment, topic, *p))
        .sum();
    if expected == 0 {
        return Err(PreviewError::Empty(topic.clone(), ""));
    }
    consumer.assign(&assignment).map_err(kafka)?;
    let records = read_until(&consumer, &ends, expected, topic)?;
    let mut records = within(records, window);
    if records.is_empty() {
        return Err(PreviewError::Empty(topic.clone(), " in that time window"));
    }
    // The latest `last` over all partitions, in the order ingest received them.
    records.sort_by_key(|r| r.received_ms);
    let keep = records.len().saturating_sub(window.last);
    let mut raw = RawBatch::default();
    for r in &records[keep..] {
        r.push_to(&mut raw);
    }
    let mut decoder = BatchDecoder::with_limits((&config.router.decode).into())
        .with_formats(PayloadFormats::of(&config.payloads));
    let decoded = decoder.decode(&raw);
    Ok(Sample {
        rejected: decoded.rejects.len(),
        batch: decoded.batch,
        raw,
    })
}

fn offset_of(tpl: &TopicPartitionList, topic: &str, partition: i32) -> i64 {
    match tpl.find_partition(topic, partition).map(|e| e.offset()) {
        Some(Offset::Offset(o)) => o,
        _ => 0,
    }
}

/// One record as read, owned.
struct Owned {
    key: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    payload: Vec<u8>,
    partition: i32,
    offset: i64,
    received_ms: i64,
}

impl Owned {
    fn push_to(&self, raw: &mut RawBatch) {
        let headers = self.headers.iter().map(|(k, v)| (k.as_str(), Some(&v[..])));
        let timestamp = Some(self.received_ms);
        if let Ok(rec) =
            TelemetryRecord::from_kafka(Some(&self.key), timestamp, headers, Some(&self.payload))
        {
            raw.push(&rec, self.partition, self.offset);
        }
    }
}

fn read_until(
    consumer: &BaseConsumer,
    ends: &BTreeMap<i32, i64>,
    expected: i64,
    topic: &str,
) -> Result<Vec<Owned>, PreviewError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::with_capacity(expected as usize);
    let mut done: BTreeMap<i32, bool> = ends.keys().map(|p| (*p, false)).collect();
    while done.values().any(|d| !d) {
        if Instant::now() > deadline {
            return Err(PreviewError::TimedOut {
                topic: topic.to_string(),
                read: out.len(),
                expected,
            });
        }
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let (p, o) = (m.partition(), m.offset());
        if ends.get(&p).is_some_and(|high| o + 1 >= *high) {
            done.insert(p, true);
        }
        let headers: Vec<(String, Vec<u8>)> = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        let key = m.key().unwrap_or_default().to_vec();
        let payload = m.payload().unwrap_or_default().to_vec();
        let received_ms = TelemetryRecord::from_kafka(
            Some(&key),
            m.timestamp().to_millis(),
            headers.iter().map(|(k, v)| (k.as_str(), Some(&v[..]))),
            Some(&payload),
        )
        .map_or(0, |r| r.received_ms);
        out.push(Owned {
            key,
            headers,
            payload,
            partition: p,
            offset: o,
            received_ms,
        });
    }
    Ok(out)
}

fn within(records: Vec<Owned>, window: Window) -> Vec<Owned> {
    let Some(ms) = window.within_ms else {
        return records;
    };
    let since = sluice_common::now_ms() - ms;
    records
        .into_iter()
        .filter(|r| r.received_ms >= since)
        .collect()
}

/// What one rule made of the sample.
pub struct RuleRows {
    pub rule: String,
    /// Input records the rule selected.
    pub matched: usize,
    pub rows: Option<RecordBatch>,
    /// Records the rule failed on (row, reason).
    pub failed: Vec<(usize, String)>,
}

/// Runs `rules` on the sample's batch.
pub fn run(rules: &mut RuleSet, sample: &Sample) -> Vec<RuleRows> {
    let names: Vec<String> = rules.rules().iter().map(|r| r.name.clone()).collect();
    let Some(batch) = &sample.batch else {
        return names
            .into_iter()
            .map(|rule| RuleRows {
                rule,
                matched: 0,
                rows: None,
                failed: vec![],
            })
            .collect();
    };
    let routed = rules.route(batch);
    names
        .into_iter()
        .zip(routed.results)
        .map(|(rule, r)| RuleRows {
            rule,
            matched: r.matched.map_or(0, |m| m.true_count()),
            rows: r.output.map(|o| o.rows),
            failed: r.failed_rows,
        })
        .collect()
}
