//! Ingest's record building: an MQTT publish (topic, payload) → the Kafka record (topic, key
//! from the device id level, contract headers), with no network. Throughput in messages and
//! payload bytes per second; the producer handle exists but nothing is sent.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rdkafka::producer::FutureRecord;
use sluice_bench::reading;
use sluice_ingest::Forwarder;

fn ingest_record(c: &mut Criterion) {
    // Nothing listens there and nothing is sent: the handle only satisfies the Forwarder.
    let producer = sluice_kafka::IdempotentProducer::create(
        rdkafka::ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:9")
            .clone(),
    )
    .expect("producer handle");
    let forwarder = Forwarder::new(producer, &Default::default(), &Default::default());
    let messages: Vec<(String, String)> = (0..1024u32)
        .map(|i| {
            let device = i % 1000;
            (
                format!("devices/dev-{device:05}/telemetry"),
                reading(device, u64::from(i)),
            )
        })
        .collect();
    let bytes: usize = messages.iter().map(|(_, p)| p.len()).sum();
    let mut group = c.benchmark_group("ingest_record");
    group.throughput(Throughput::ElementsAndBytes {
        elements: messages.len() as u64,
        bytes: bytes as u64,
    });
    group.bench_function("prepare_1024", |b| {
        b.iter(|| {
            let mut keys = 0usize;
            for (topic, payload) in &messages {
                let p = forwarder.prepare(topic, payload.len(), 1_767_225_600_000, false);
                let record = FutureRecord::to(p.topic)
                    .key(p.key)
                    .payload(payload.as_bytes())
                    .headers(p.headers);
                keys += record.key.map_or(0, |k| k.len());
            }
            keys
        })
    });
    group.finish();
}

criterion_group!(benches, ingest_record);
criterion_main!(benches);
