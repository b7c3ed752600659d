//! What the load test watches besides its own publishes: the raw Kafka topic (publish→Kafka
//! latency, and which (device, seq) arrived) and a running Sluice's `/scaling` (lag, advice).

use super::payload::device_index;
use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the Kafka observer saw.
pub struct KafkaSeen {
    pub records: AtomicU64,
    pub duplicates: AtomicU64,
    /// publish (payload `sent_ms`) → read from Kafka, µs.
    pub latency: Mutex<Histogram<u64>>,
    pub seen: Mutex<Vec<bool>>,
}

struct Probe {
    device: String,
    seq: u64,
    sent_ms: i64,
}

/// Starts reading `topic` from its current end (only this run's records) on a thread.
pub fn watch_kafka(
    bootstrap: &str,
    topic: &str,
    encoding: crate::encoding::Encoding,
    devices: usize,
    planned: usize,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Arc<KafkaSeen>> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set(
            "group.id",
            format!("sluice-loadtest-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        // The observer is part of the measurement: on the embedded broker each fetch waits this
        // long and loads the broker under test, so 100 ms trades that much resolution of the
        // publish→Kafka latency for leaving the broker to the pipeline.
        .set("fetch.wait.max.ms", "100")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            let (_, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
            tpl.add_partition_offset(topic, p.id(), Offset::Offset(high))?;
        }
    }
    anyhow::ensure!(
        tpl.count() > 0,
        "topic {topic} has no partitions (is Sluice running?)"
    );
    consumer.assign(&tpl)?;
    let seen = Arc::new(KafkaSeen {
        records: AtomicU64::new(0),
        duplicates: AtomicU64::new(0),
        latency: Mutex::new(super::histogram()),
        seen: Mutex::new(vec![false; planned]),
    });
    let out = seen.clone();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            // The record's own timestamp (the front door's receive time; a producer that sets
            // none gets librdkafka's send time), not when this observer fetched it: the fetch
            // wait is not the pipeline's.
            let now = m
                .timestamp()
                .to_millis()
                .unwrap_or_else(sluice_common::now_ms);
            let Some(p) = m.payload().and_then(|b| encoding.probe(m.key(), b)).map(
                |(device, seq, sent_ms)| Probe {
                    device,
                    seq,
                    sent_ms,
                },
            ) else {
                continue;
            };
            let Some(d) = device_index(&p.device) else {
                continue;
            };
            out.records.fetch_add(1, Ordering::Relaxed);
            let us = ((now - p.sent_ms).max(0) as u64 * 1000).max(1);
            let _ = out
                .latency
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(us);
            let i = p.seq as usize * devices + d;
            let mut seen = out.seen.lock().unwrap_or_else(|e| e.into_inner());
            match seen.get_mut(i) {
                Some(true) => {
                    out.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                Some(slot) => *slot = true,
                None => {}
            }
        }
    });
    Ok(seen)
}

/// One reading of a running Sluice's `/scaling`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct LagSample {
    pub at_s: f64,
    pub lag: u64,
    pub desired_replicas: u64,
}

/// `GET <sluice_url><path>` with `SLUICE_TOKEN` as the bearer token when it is set: how the
/// load test reads a running Sluice's API.
pub fn api_get(client: &reqwest::Client, sluice_url: &str, path: &str) -> reqwest::RequestBuilder {
    let req = client
        .get(format!("{}{path}", sluice_url.trim_end_matches('/')))
        .timeout(Duration::from_secs(5));
    match std::env::var("SLUICE_TOKEN") {
        Ok(t) => req.bearer_auth(t.trim()),
        Err(_) => req,
    }
}

/// Reads `/scaling` every 50 ms into `samples` until `stop`, one sample per reading the
/// router took (`sampled_at_ms`), timed when the router took it. Lag read from committed
/// offsets is a sawtooth with the commit interval as its period; a watcher that samples on a
/// cadence close to that period sees a slow beat instead (the phase drifts a little each
/// cycle) and reads a slope that is not there. Polling fast and spacing the readings by the
/// router's own clock ([`RouterClock`]) leaves `scaling.interval_ms` as the only limit on
/// resolution.
pub fn watch_scaling(
    base: String,
    started: std::time::Instant,
    samples: Arc<Mutex<Vec<LagSample>>>,
    stop: Arc<AtomicBool>,
) {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let token = std::env::var("SLUICE_TOKEN").ok();
        let url = format!("{}/scaling", base.trim_end_matches('/'));
        let mut refused = false;
        let mut clock = RouterClock::default();
        while !stop.load(Ordering::Relaxed) {
            let req = api_get(&client, &base, "/scaling").timeout(Duration::from_secs(2));
            if let Ok(r) = req.send().await {
                let status = r.status().as_u16();
                if matches!(status, 401 | 403) && !refused {
                    refused = true;
                    let why = if token.is_some() {
                        "the token in SLUICE_TOKEN was refused"
                    } else {
                        "it needs a token: set SLUICE_TOKEN to a viewer token"
                    };
                    tracing::warn!(url = %url, status, "cannot read Sluice's lag: {why}; lag columns stay '-'");
                }
                let body = r.bytes().await.unwrap_or_default();
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
                    let at_s =
                        clock.place(v["sampled_at_ms"].as_u64(), started.elapsed().as_secs_f64());
                    if let Some(at_s) = at_s {
                        samples
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(LagSample {
                                at_s,
                                lag: v["router"]["lag_total"].as_u64().unwrap_or(0),
                                desired_replicas: v["router"]["desired_replicas"]
                                    .as_u64()
                                    .unwrap_or(0),
                            });
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

/// Places the router's readings on the load test's timeline: spaced by the router's
/// `sampled_at_ms`, anchored at the first reading seen to change (taken within one poll of
/// its arrival; the very first may be a whole interval old), so the machines' clocks need not
/// agree. Repeats of a reading are dropped.
#[derive(Debug, Default)]
pub struct RouterClock {
    last: Option<u64>,
    /// (router's `sampled_at_ms`, our seconds) of the anchoring reading.
    anchor: Option<(u64, f64)>,
}

impl RouterClock {
    /// Where a reading taken at `sampled` (router ms; `None` from a Sluice that does not say)
    /// and received at `now` (our seconds) belongs, or `None` to drop it.
    pub fn place(&mut self, sampled: Option<u64>, now: f64) -> Option<f64> {
        let Some(at) = sampled else {
            return Some(now);
        };
        let prev = self.last.replace(at);
        match (prev, self.anchor) {
            (None, _) => None,
            (Some(p), _) if p == at => None,
            (Some(_), Some((first, t0))) => Some(t0 + at.saturating_sub(first) as f64 / 1e3),
            (Some(_), None) => {
                self.anchor = Some((at, now));
                Some(now)
            }
        }
    }
}

#[cfg(test)]
mod clock_tests {
    use super::RouterClock;

    #[test]
    fn readings_are_spaced_by_the_routers_clock_and_repeats_dropped() {
        let mut c = RouterClock::default();
        // Polled every 50 ms; the router samples every 100 ms, its clock 1 h ahead of ours.
        let base = 3_600_000;
        assert_eq!(c.place(Some(base), 0.00), None, "age unknown");
        assert_eq!(c.place(Some(base), 0.05), None, "a repeat");
        assert_eq!(c.place(Some(base + 100), 0.12), Some(0.12), "the anchor");
        assert_eq!(c.place(Some(base + 100), 0.17), None);
        // Late arrival (a slow poll) does not move the reading.
        let at = c.place(Some(base + 200), 0.40).unwrap();
        assert!((at - 0.22).abs() < 1e-9, "{at}");
        assert_eq!(
            c.place(None, 0.5),
            Some(0.5),
            "no sampled_at_ms: when received"
        );
    }
}
