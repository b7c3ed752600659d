//! The Kafka broker killed and restarted under load, then the pipeline killed and restarted
//! (the field report): with Mosquitto holding the session, ingest must not stall, must come
//! back to full rate, and every acknowledged message must reach Parquet: each Kafka record's
//! rows once. The pipeline's kill -9 lands while ingest drains the outage's backlog, so the
//! broker redelivers what was in Kafka without its PUBACK: those are in Kafka twice
//! (at-least-once, as README says), and only those may repeat.

use crate::chaos::mosquitto_conf;
use crate::common::*;
use std::time::{Duration, Instant};

const DEVICES: usize = 40;
const PER_DEVICE: u64 = 500;
const RATE: u64 = 2_000;

#[test]
fn ingest_rides_out_a_kafka_restart_and_comes_back_to_full_rate() {
    let setup = Setup::new();
    let port = free_port();
    let _mosquitto = mosquitto::spawn(&mosquitto_conf(setup.dir.path(), port), &[port]);
    let broker = format!("127.0.0.1:{port}");
    let extra = format!("{ALL_TO_PARQUET}\n{ORDER_RULE}[mqtt]\nbroker = \"{broker}\"\n");
    let kafka_http = format!("127.0.0.1:{}", free_port());
    let kafka_cfg = setup.write_config("kafka.toml", &kafka_http, &extra);
    let pipeline_http = format!("127.0.0.1:{}", free_port());
    let pipeline_cfg = setup.write_config("pipeline.toml", &pipeline_http, &extra);
    let roles = ["--only", "ingest", "--only", "router"];
    let kafka = Sluice::start(&kafka_cfg, &["--only", "brokers"], Some(kafka_http.clone()));
    let pipeline = Sluice::start(&pipeline_cfg, &roles, Some(pipeline_http.clone()));

    let total = DEVICES as u64 * PER_DEVICE;
    let publisher = publish_fleet_in_background(broker, DEVICES, PER_DEVICE, RATE);
    let root = setup.parquet_root();
    wait_until("rows flow", Duration::from_secs(60), || {
        rule_rows(&root, "all") > 0
    });
    kafka.kill();
    // Six seconds without Kafka, as in the report, while the fleet goes on publishing.
    std::thread::sleep(Duration::from_secs(6));
    let kafka = Sluice::start(&kafka_cfg, &["--only", "brokers"], Some(kafka_http));
    pipeline.kill();
    let restarted = Instant::now();
    let pipeline = Sluice::start(&pipeline_cfg, &roles, Some(pipeline_http.clone()));
    let at_restart = device_seqs(&root, "all").len() as u64;
    // Ingest's produced count over time, sampled while waiting for the output.
    let mut samples: Vec<(Instant, f64)> = Vec::new();
    wait_until(
        "every acknowledged message in Parquet",
        Duration::from_secs(120),
        || {
            let metrics = http_get(&pipeline_http, "/metrics")
                .map(|(_, m)| m)
                .unwrap_or_default();
            if let Some(n) = metric_value(&metrics, "sluice_ingest_produced_total", &[]) {
                samples.push((Instant::now(), n));
            }
            device_seqs(&root, "all").len() as u64 >= total
        },
    );
    let caught_up = restarted.elapsed();
    let report = publisher.join().unwrap();
    assert_eq!(report.acked, total);
    // The best rate over any window of at least a second: ingest draining the backlog.
    let peak = samples
        .iter()
        .enumerate()
        .filter_map(|(i, (t0, n0))| {
            let (t1, n1) = samples[i..]
                .iter()
                .find(|(t, _)| *t >= *t0 + Duration::from_secs(1))?;
            Some((n1 - n0) / (*t1 - *t0).as_secs_f64())
        })
        .fold(0.0, f64::max);
    pipeline.stop();
    kafka.stop();
    println!(
        "kafka outage: {at_restart} of {total} in Parquet at the restart, all {:.1} s later; \
         ingest's peak rate after the restart {peak:.0} msg/s (the fleet offers {RATE})",
        caught_up.as_secs_f64()
    );
    assert!(
        peak >= RATE as f64,
        "ingest did not come back to full rate: {peak:.0} msg/s at best"
    );
    let found = device_seqs(&root, "all");
    let (missing, duplicates) = compare(&found, &expected(DEVICES, PER_DEVICE, |_| true));
    assert!(
        missing.is_empty(),
        "lost: {:?}",
        &missing[..missing.len().min(5)]
    );
    let order = kafka_order(&root);
    println!(
        "kafka outage: {duplicates} repeated (device, seq); in Kafka {} twice at another \
         offset, {} rows twice for one record",
        order.kafka_duplicates, order.written_twice
    );
    assert_eq!(
        order.written_twice, 0,
        "rows of one Kafka record written twice"
    );
    assert_eq!(duplicates as usize, order.kafka_duplicates);
    assert!(order.kafka_duplicates <= INGEST_WINDOW, "one ingest kill");
}
