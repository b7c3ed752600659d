//! Simulated device fleets over MQTT. [`run`] is `sluice loadtest`: a fleet publishing at a
//! rate profile, measuring what an operator needs before a promotional event; [`fleet`] is the
//! bounded fleet of the demo and the integration tests (every device sends N readings).
//!
//! Layout:
//! - [`fleet`]: N devices × M readings, with acknowledgements counted (demo, tests).
//! - [`connect`]: MQTT client options shared by both fleets.
//! - [`profile`]: steady / ramp / spike / stages file → stages with a target rate.
//! - [`payload`]: the fixed reading of the demo, tests and benchmarks, and the load test's
//!   template (device, seq, send time, generated fields).
//! - [`publish`]: the publisher pool and publish→PUBACK latency.
//! - [`observe`]: the raw Kafka topic (publish→Kafka latency, loss) and `/scaling` (lag).
//! - [`report`]: the report table/JSON and the `--slo` check.
//! - [`baseline`]: bare consumer / bare subscriber side by side with the router / ingest.
//! - [`capacity`]: `--find-max`, a closed-loop search for the highest sustainable rate, the
//!   stage that gives out first, a replica plan, and an HTML report with plots.
//!
//! It targets only the addresses it is given (default loopback) and is bounded: by the
//! profile's duration, `--max-messages`, and `--drain-secs` for stragglers.

pub mod baseline;
pub mod capacity;
pub mod connect;
pub mod encoding;
pub mod fleet;
pub mod observe;
pub mod payload;
pub mod profile;
pub mod publish;
pub mod report;

use hdrhistogram::Histogram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A latency histogram in µs, 1 µs .. 10 min, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

#[derive(Debug, Clone)]
pub struct Options {
    pub broker: String,
    pub kafka: Option<String>,
    pub raw_topic: String,
    pub sluice_url: Option<String>,
    pub devices: usize,
    pub connections: usize,
    pub qos: u8,
    pub topic: String,
    pub fields: Vec<String>,
    /// How readings travel (`--format`).
    pub encoding: encoding::Encoding,
    pub stages: Vec<profile::Stage>,
    pub max_messages: u64,
    pub drain_secs: u64,
    pub report: Option<PathBuf>,
    pub slo: Vec<report::Objective>,
    /// With `Some(config)`, also measure the baselines (needs `kafka`).
    pub baseline: Option<sluice_config::Config>,
    pub burst: u64,
    /// Write an HTML page with the run's lag and resident-memory curves here.
    pub html: Option<PathBuf>,
}

/// Runs the test, prints the report, writes it if asked; the SLO violations (empty: met).
pub async fn run(opts: Options) -> anyhow::Result<Vec<String>> {
    let mut report = measure(&opts).await?;
    if let (Some(config), Some(bootstrap)) = (&opts.baseline, &opts.kafka) {
        report.baseline = Some(run_baselines(&opts, config, bootstrap).await?);
    }
    report.print();
    if let Some(path) = &opts.report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
        println!("report written to {}", path.display());
    }
    if let Some(path) = &opts.html {
        std::fs::write(path, capacity::html::render_run(&report))?;
        println!("HTML report written to {}", path.display());
    }
    Ok(report::check_slo(&report, &opts.slo))
}

/// One run of `opts.stages` against the pipeline: publishes, drains, and reports what it saw
/// (nothing printed but the progress line). [`capacity`] calls it once per search step.
pub async fn measure(opts: &Options) -> anyhow::Result<report::Report> {
    let planned: u64 = opts.stages.iter().map(|s| s.total().ceil() as u64).sum();
    let planned = planned.min(opts.max_messages);
    let mut stages = opts.stages.clone();
    cap_stages(&mut stages, opts.max_messages);
    let template = payload::Template::encoded(&opts.topic, &opts.fields, opts.encoding.clone())?;
    let stop = Arc::new(AtomicBool::new(false));
    let kafka = match &opts.kafka {
        Some(k) => Some(observe::watch_kafka(
            k,
            &opts.raw_topic,
            opts.encoding.clone(),
            opts.devices,
            planned as usize,
            stop.clone(),
        )?),
        None => None,
    };
    let started = Instant::now();
    let lag = Arc::new(Mutex::new(Vec::new()));
    if let Some(url) = &opts.sluice_url {
        observe::watch_scaling(url.clone(), started, lag.clone(), stop.clone());
    }
    let rss = capacity::evidence::watch_rss(started, stop.clone());
    let stats = Arc::new(publish::PublishStats::new(planned as usize));
    let mut publisher = publish::Publisher::connect(
        &opts.broker,
        opts.connections,
        opts.qos,
        template,
        opts.devices,
        stats.clone(),
    )?;
    let progress = progress::start(&stages, planned, stats.clone(), kafka.clone(), lag.clone());
    publisher.run(&stages).await;
    let published_at = Instant::now();
    let publish_secs = started.elapsed().as_secs_f64();
    let still_arriving = drain(opts, &stats, kafka.as_deref(), published_at).await;
    progress.finish();
    publisher.disconnect().await;
    stop.store(true, Ordering::Relaxed);

    let mut report = build_report(opts, &stages, &stats, kafka.as_deref(), &lag);
    report.kafka_still_arriving_per_s = still_arriving;
    report.lag_growth = report::lag_growth(&report.lag_timeline, publish_secs, &stages);
    report.rss_timeline = rss.lock().unwrap_or_else(|e| e.into_inner()).clone();
    report.rss_growth = report::rss_growth(&report.rss_timeline, publish_secs);
    Ok(report)
}

/// Shortens the stages so no more than `max` messages are planned.
fn cap_stages(stages: &mut Vec<profile::Stage>, max: u64) {
    let mut left = max as f64;
    let mut kept = Vec::new();
    for mut s in stages.drain(..) {
        if left <= 0.0 {
            break;
        }
        if s.total() > left {
            // Flat approximation: end the stage when its budget is spent.
            let rate = (s.start_rate() + s.end_rate()) / 2.0;
            s.secs = (left / rate.max(1.0)).max(0.001);
        }
        left -= s.total();
        kept.push(s);
    }
    *stages = kept;
}

/// Waits until every acked message was seen in Kafka (or QoS 1 acks stop arriving), at most
/// `drain_secs`. When the deadline cuts it short, returns the rate at which records were still
/// arriving in Kafka over the last second: unseen records then are late, not necessarily lost.
async fn drain(
    opts: &Options,
    stats: &publish::PublishStats,
    kafka: Option<&observe::KafkaSeen>,
    since: Instant,
) -> Option<f64> {
    let deadline = since + Duration::from_secs(opts.drain_secs);
    let seen = || kafka.map_or(0, |k| k.records.load(Ordering::Relaxed));
    // (when, records seen) about a second ago, for the rate at the deadline.
    let mut last_second = (Instant::now(), seen());
    let mut recent = last_second;
    while Instant::now() < deadline {
        let sent = stats.sent.load(Ordering::Relaxed);
        let acked = stats.acked.load(Ordering::Relaxed);
        let acks_done = opts.qos == 0 || acked >= sent;
        let kafka_done = kafka.is_none_or(|k| {
            k.records.load(Ordering::Relaxed) >= acked.max(if opts.qos == 0 { sent } else { 0 })
        });
        if acks_done && kafka_done {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if recent.0.elapsed() >= Duration::from_secs(1) {
            last_second = recent;
            recent = (Instant::now(), seen());
        }
    }
    // A window shorter than half a second (`--drain-secs 0`) gives no meaningful rate.
    let secs = last_second.0.elapsed().as_secs_f64();
    kafka
        .filter(|_| secs >= 0.5)
        .map(|_| (seen() - last_second.1) as f64 / secs)
}

fn build_report(
    opts: &Options,
    stages: &[profile::Stage],
    stats: &publish::PublishStats,
    kafka: Option<&observe::KafkaSeen>,
    lag: &Mutex<Vec<observe::LagSample>>,
) -> report::Report {
    let lag = lag.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let sent_by_stage = stats
        .sent_by_stage
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut t0 = 0.0;
    let mut prev = 0;
    let mut stage_reports = Vec::new();
    for (s, &sent) in stages.iter().zip(&sent_by_stage) {
        let target = s.total() / s.secs;
        let achieved = (sent - prev) as f64 / s.secs;
        let window: Vec<&observe::LagSample> = lag
            .iter()
            .filter(|l| l.at_s >= t0 && l.at_s < t0 + s.secs)
            .collect();
        stage_reports.push(report::StageReport {
            name: s.name.clone(),
            secs: s.secs,
            target_rate: target,
            achieved_rate: achieved,
            rate_ratio: if target > 0.0 { achieved / target } else { 1.0 },
            peak_lag: window.iter().map(|l| l.lag).max(),
            max_desired_replicas: window.iter().map(|l| l.desired_replicas).max(),
        });
        t0 += s.secs;
        prev = sent;
    }
    let mut report = report::Report {
        broker: opts.broker.clone(),
        devices: opts.devices,
        qos: opts.qos,
        stages: stage_reports,
        sent: stats.sent.load(Ordering::Relaxed),
        acked: stats.acked.load(Ordering::Relaxed),
        errors: stats.errors.load(Ordering::Relaxed),
        puback: report::Latency::of(&stats.puback.lock().unwrap_or_else(|e| e.into_inner())),
        peak_lag: lag.iter().map(|l| l.lag).max(),
        lag_timeline: lag,
        ..Default::default()
    };
    if let Some(k) = kafka {
        let acked = stats.acked_set.lock().unwrap_or_else(|e| e.into_inner());
        let seen = k.seen.lock().unwrap_or_else(|e| e.into_inner());
        // QoS 0 has no acks: count every sent message as expected.
        let sent = report.sent as usize;
        let expected = |i: usize| if opts.qos == 0 { i < sent } else { acked[i] };
        let missing: Vec<usize> = (0..acked.len())
            .filter(|&i| expected(i) && !seen[i])
            .collect();
        let mut gap_devices: Vec<usize> = missing.iter().map(|i| i % opts.devices).collect();
        gap_devices.sort_unstable();
        gap_devices.dedup();
        report.first_gaps = missing
            .iter()
            .take(10)
            .map(|i| {
                (
                    payload::device_name(i % opts.devices),
                    (i / opts.devices) as u64,
                )
            })
            .collect();
        report.lost = Some(missing.len() as u64);
        report.devices_with_gaps = Some(gap_devices.len() as u64);
        report.duplicates = Some(k.duplicates.load(Ordering::Relaxed));
        report.kafka_records = Some(k.records.load(Ordering::Relaxed));
        report.publish_to_kafka = Some(report::Latency::of(
            &k.latency.lock().unwrap_or_else(|e| e.into_inner()),
        ));
    }
    report
}

async fn run_baselines(
    opts: &Options,
    config: &sluice_config::Config,
    bootstrap: &str,
) -> anyhow::Result<baseline::Baselines> {
    let mut b = baseline::Baselines::default();
    // Ingest vs a bare subscriber, on one burst.
    let filter = opts.topic.replace("{device}", "+");
    let sub = baseline::bare_subscriber(&opts.broker, &filter).await?;
    let watermarks = baseline::Watermarks::new(bootstrap, &opts.raw_topic)?;
    let (_, high_before) = watermarks.sum()?;
    let burst_stats = Arc::new(publish::PublishStats::new(opts.burst as usize));
    let template = payload::Template::encoded(&opts.topic, &opts.fields, opts.encoding.clone())?;
    let (_, sample) = template.render(0, 0);
    let mut publisher = publish::Publisher::connect(
        &opts.broker,
        opts.connections,
        1,
        template,
        opts.devices,
        burst_stats.clone(),
    )?;
    let started = Instant::now();
    let burst = profile::parse(&format!("steady:{}:1", opts.burst)).map_err(anyhow::Error::msg)?;
    publisher.run(&burst).await;
    // The burst stage ends on time like any stage, with what the front door did not take in
    // its second unsent: what lands is what was sent (waiting for all of `opts.burst` waited
    // out the deadline whenever the front door pushed back, and reported 0 msg/s).
    let sent = burst_stats.sent.load(std::sync::atomic::Ordering::Relaxed);
    let deadline = started + Duration::from_secs(300);
    let mut ingest_done = None;
    loop {
        let received = sub
            .as_ref()
            .map_or(sent, |s| s.lock().unwrap_or_else(|e| e.into_inner()).0);
        if ingest_done.is_none() {
            let (_, high) = watermarks.sum()?;
            if (high - high_before) as u64 >= sent {
                ingest_done = Some(started.elapsed());
            }
        }
        if (received >= sent && ingest_done.is_some()) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    publisher.disconnect().await;
    b.burst = sent;
    b.ingest_rate = ingest_done.map_or(0.0, |d| sent as f64 / d.as_secs_f64());
    match &sub {
        Some(sub) => {
            let (received, first, last) = *sub.lock().unwrap_or_else(|e| e.into_inner());
            let sub_secs = match (first, last) {
                (Some(_), Some(l)) => l.duration_since(started).as_secs_f64(),
                _ => f64::INFINITY,
            };
            b.front_door = "ingest".into();
            b.bare_subscriber_rate = received as f64 / sub_secs;
            b.ingest_ratio = b.ingest_rate / b.bare_subscriber_rate;
        }
        None => {
            b.front_door = "gateway".into();
            let scratch = format!("{}.baseline", opts.raw_topic);
            let partitions = config.kafka.partitions;
            b.bare_producer_rate =
                baseline::bare_producer(bootstrap, &scratch, partitions, b.burst, &sample).await?;
            b.gateway_ratio = b.ingest_rate / b.bare_producer_rate;
        }
    }
    // Router vs a bare consumer, over everything in the raw topic now.
    let (low, high) = watermarks.sum()?;
    b.records = (high - low) as u64;
    b.bare_consumer_rate = tokio::task::block_in_place(|| {
        baseline::bare_consumer(bootstrap, &opts.raw_topic, b.records)
    })?;
    b.router_rate = baseline::router(config, bootstrap, b.records).await?;
    b.router_ratio = b.router_rate / b.bare_consumer_rate;
    Ok(b)
}

mod progress {
    //! The live line: stage, rate, p99 PUBACK, lag and advice (indicatif; hidden when stderr
    //! is not a terminal).
    use super::*;
    use indicatif::{ProgressBar, ProgressStyle};

    pub struct Progress {
        bar: ProgressBar,
        stop: Arc<AtomicBool>,
    }

    impl Progress {
        pub fn finish(self) {
            self.stop.store(true, Ordering::Relaxed);
            self.bar.finish();
        }
    }

    pub fn start(
        stages: &[profile::Stage],
        planned: u64,
        stats: Arc<publish::PublishStats>,
        kafka: Option<Arc<observe::KafkaSeen>>,
        lag: Arc<Mutex<Vec<observe::LagSample>>>,
    ) -> Progress {
        let bar = ProgressBar::new(planned);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s, names) = (
            bar.clone(),
            stop.clone(),
            stages.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
        );
        tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            while !s.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let sent = stats.sent.load(Ordering::Relaxed);
                let rate = (sent - last.1) as f64 / last.0.elapsed().as_secs_f64();
                last = (Instant::now(), sent);
                let p99 = stats
                    .puback
                    .lock()
                    .map(|h| h.value_at_quantile(0.99))
                    .unwrap_or(0);
                let kafka_p99 = kafka
                    .as_ref()
                    .and_then(|k| k.latency.lock().ok().map(|h| h.value_at_quantile(0.99)));
                let l = lag.lock().ok().and_then(|l| l.last().copied());
                let stage = names
                    .get(stats.stage.load(Ordering::Relaxed) as usize)
                    .cloned()
                    .unwrap_or_default();
                b.set_position(sent);
                b.set_message(format!(
                    "{stage} | {rate:.0} msg/s | p99 puback {:.1} ms{} | lag {} | advice {}",
                    p99 as f64 / 1000.0,
                    kafka_p99.map_or(String::new(), |k| format!(
                        ", kafka {:.1} ms",
                        k as f64 / 1000.0
                    )),
                    l.map_or("-".into(), |l| l.lag.to_string()),
                    l.map_or("-".into(), |l| l.desired_replicas.to_string()),
                ));
            }
        });
        Progress { bar, stop }
    }
}
