//! `sluice demo`: embedded brokers, the whole pipeline and a simulated fleet in one process,
//! for a bounded time, then a summary of what went where.

use crate::pipeline::{self, Roles};
use crate::ports::free_local_port;
use anyhow::Context;
use sluice_common::Stats;
use sluice_config::Config;
use sluice_loadtest::fleet::{self, FleetConfig};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The demo's rules and sink; ports and data dir are filled in at run time.
const DEMO_CONFIG: &str = r#"
[router]
commit_interval_ms = 1000

[router.batch]
max_rows = 4096
max_wait_ms = 100

[[rules]]
name = "all_telemetry"
description = "Every reading, for analytics"
sql = "SELECT * FROM telemetry"
actions = ["lake"]

[[rules]]
name = "overheating"
description = "Readings above 90 degrees"
sql = "SELECT device_id() AS device, seq, temperature, topic(1) AS fleet, ts FROM 'devices/+/telemetry' WHERE temperature > 90"
actions = ["lake"]

[sinks.lake]
type = "parquet"
path = "parquet"
"#;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Output directory (emptied first; only one made by the demo).
    #[arg(long, default_value = "sluice-demo")]
    data_dir: PathBuf,
    /// Simulated devices publishing to the demo's gateway.
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// Readings per device.
    #[arg(long, default_value_t = 100)]
    messages: u64,
    /// Fleet-wide messages per second (0 = as fast as the broker acks).
    #[arg(long, default_value_t = 2000)]
    rate: u64,
}

pub async fn exec(args: DemoArgs) -> anyhow::Result<std::process::ExitCode> {
    crate::http::prometheus();
    let opts = DemoOptions {
        data_dir: args.data_dir,
        devices: args.devices,
        messages_per_device: args.messages,
        rate: args.rate,
    };
    run(opts).await?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// Options of `sluice demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub data_dir: PathBuf,
    pub devices: usize,
    pub messages_per_device: u64,
    pub rate: u64,
}

const MARKER: &str = ".sluice-demo";

/// Empties the demo directory, refusing to touch a directory the demo did not create.
fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let is_demo = dir.join(MARKER).exists() || std::fs::read_dir(dir)?.next().is_none();
        anyhow::ensure!(
            is_demo,
            "{} exists and was not made by `sluice demo`; choose another --data-dir",
            dir.display()
        );
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(MARKER), b"made by sluice demo\n")?;
    Ok(())
}

pub fn demo_config(data_dir: &Path) -> anyhow::Result<Config> {
    let mut config = Config::from_toml_str(DEMO_CONFIG).map_err(|e| anyhow::anyhow!("{e}"))?;
    config.data_dir = data_dir.to_path_buf();
    config.embedded.mqtt_listen = format!("127.0.0.1:{}", free_local_port()?);
    config.embedded.kafka_listen = format!("127.0.0.1:{}", free_local_port()?);
    config.http.listen = String::new();
    config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(config)
}

pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    prepare_dir(&opts.data_dir)?;
    let config = demo_config(&opts.data_dir)?;
    let stats = Arc::new(Stats::default());
    let shutdown = CancellationToken::new();
    let health = Arc::new(crate::health::Health::default());
    let pipeline = tokio::spawn(pipeline::run(
        config.clone(),
        Roles::ALL,
        shutdown.clone(),
        stats.clone(),
        health.clone(),
    ));
    // Publish only once ingest is subscribed: MQTT drops messages nobody subscribed to.
    let ready_deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !health.ready.load(Ordering::Relaxed) {
        if pipeline.is_finished() || tokio::time::Instant::now() >= ready_deadline {
            shutdown.cancel();
            pipeline.await.context("pipeline task")??;
            anyhow::bail!("the pipeline did not become ready within 120s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fleet = FleetConfig {
        broker: config.embedded.mqtt_listen.clone(),
        devices: opts.devices,
        messages_per_device: opts.messages_per_device,
        rate: opts.rate,
        malformed: 10,
        ..Default::default()
    };
    println!(
        "demo: {} devices x {} readings (+10 malformed) at {} msg/s over MQTT QoS 1 ...",
        fleet.devices,
        fleet.messages_per_device,
        if fleet.rate == 0 {
            "full speed".to_string()
        } else {
            fleet.rate.to_string()
        }
    );
    let started = std::time::Instant::now();
    let report = fleet::run(fleet, Duration::from_secs(300)).await?;
    // Wait until everything the broker acked has been routed (or dead-lettered).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while Stats::get(&stats.consumed) < report.acked
        && tokio::time::Instant::now() < deadline
        && !pipeline.is_finished()
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    pipeline.await.context("pipeline task")??;
    print_summary(&config, &report, &stats, started.elapsed())
}

fn print_summary(
    config: &Config,
    report: &fleet::FleetReport,
    stats: &Stats,
    took: Duration,
) -> anyhow::Result<()> {
    let root = config.data_dir.join("parquet");
    let files = super::summary::rows_per_rule(&root)?;
    println!("\n== Sluice demo summary ({:.1}s) ==", took.as_secs_f64());
    println!("messages published (QoS1)  {:>8}", report.published);
    println!("messages acked by broker   {:>8}", report.acked);
    for (what, counter) in [
        ("received by ingest", &stats.mqtt_received),
        ("written to Kafka (raw)", &stats.produced),
        ("consumed by router", &stats.consumed),
        ("dead-lettered (DLQ)", &stats.dead_lettered),
        ("parquet files written", &stats.files_written),
    ] {
        println!("{what:<26} {:>8}", Stats::get(counter));
    }
    println!("rows per rule (routed / in parquet files):");
    for (rule, routed) in stats.rule_rows() {
        let in_files = files.get(&rule).map_or(0, |f| f.rows);
        println!("  {rule:<24} {routed:>8} / {in_files:>8}");
    }
    println!("\nQuery the output with DuckDB:");
    println!(
        "  python3 -c \"import duckdb; print(duckdb.sql(\\\"SELECT rule, count(*) AS rows FROM read_parquet('{}/**/*.parquet', hive_partitioning=true) GROUP BY rule ORDER BY rule\\\"))\"",
        root.display()
    );
    Ok(())
}
