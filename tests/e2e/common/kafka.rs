//! Reading the raw topic and the routers' committed offsets straight from the Kafka broker:
//! what a test that lost a message prints to say where it stopped.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

/// One record of the raw topic: the device (key), `seq` of its JSON payload, where it is.
pub struct RawRecord {
    pub device: String,
    pub seq: Option<i64>,
    pub partition: i32,
    pub offset: i64,
}

fn consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

/// Each partition of `topic`: (low, high) watermarks.
pub fn watermarks(bootstrap: &str, topic: &str) -> BTreeMap<i32, (i64, i64)> {
    let c = consumer(bootstrap, "test-watermarks");
    let meta = c.fetch_metadata(Some(topic), TIMEOUT).unwrap();
    let partitions = meta.topics()[0].partitions().iter().map(|p| p.id());
    partitions
        .map(|p| (p, c.fetch_watermarks(topic, p, TIMEOUT).unwrap()))
        .collect()
}

/// Every record of `topic`, read by hand-assigned partitions up to the high watermarks
/// (at most 60 s).
pub fn raw_records(bootstrap: &str, topic: &str) -> Vec<RawRecord> {
    let marks = watermarks(bootstrap, topic);
    let c = consumer(bootstrap, "test-raw-records");
    let mut tpl = TopicPartitionList::new();
    for p in marks.keys() {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut next: BTreeMap<i32, i64> = marks.iter().map(|(p, (low, _))| (*p, *low)).collect();
    let behind = |next: &BTreeMap<i32, i64>| marks.iter().any(|(p, (_, high))| next[p] < *high);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    while behind(&next) && Instant::now() < deadline {
        let Some(Ok(m)) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        next.insert(m.partition(), m.offset() + 1);
        let payload = m.payload().unwrap_or_default();
        let seq = serde_json::from_slice::<serde_json::Value>(payload)
            .ok()
            .and_then(|v| v["seq"].as_i64());
        out.push(RawRecord {
            device: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
            seq,
            partition: m.partition(),
            offset: m.offset(),
        });
    }
    out
}

/// The offsets consumer group `group` has committed on `topic`'s partitions (-1: none).
pub fn committed(bootstrap: &str, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let c = consumer(bootstrap, group);
    let mut tpl = TopicPartitionList::new();
    for p in watermarks(bootstrap, topic).keys() {
        tpl.add_partition(topic, *p);
    }
    let got = c.committed_offsets(tpl, TIMEOUT).unwrap();
    got.elements()
        .iter()
        .map(|e| (e.partition(), e.offset().to_raw().unwrap_or(-1)))
        .collect()
}
