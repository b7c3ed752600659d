//! The `sluice` command line. See `sluice --help`.

use clap::{Parser, Subcommand, ValueEnum};
use sluice::pipeline::{self, Roles};
use sluice_processors::stats::Stats;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Telemetry ingestion for IoT fleets: MQTT -> Kafka -> SQL rules -> Parquet"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline (embedded brokers unless the config names external ones).
    Run {
        /// Config file (TOML).
        #[arg(long, short, default_value = "config/sluice.toml")]
        config: PathBuf,
        /// Run only these roles (repeatable), e.g. `--only brokers --only ingest`.
        #[arg(long, value_enum)]
        only: Vec<Role>,
    },
    /// Embedded brokers + pipeline + a simulated fleet, for a bounded time, then a summary.
    Demo {
        /// Output directory (emptied first; only one made by the demo).
        #[arg(long, default_value = "sluice-demo")]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 100)]
        devices: usize,
        /// Readings per device.
        #[arg(long, default_value_t = 100)]
        messages: u64,
        /// Fleet-wide messages per second (0 = as fast as the broker acks).
        #[arg(long, default_value_t = 2000)]
        rate: u64,
    },
    /// Check configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Check and test routing rules without starting anything.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Print the scaling advice of a running instance (lag, rates, replicas).
    Scale {
        /// Base URL of the instance's HTTP API (`[http].listen`). Token: `SLUICE_TOKEN`.
        #[arg(long, default_value = "http://127.0.0.1:9464")]
        url: String,
        /// Print the raw `/scaling` JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drive an MQTT broker with a simulated fleet at a rate profile; report throughput,
    /// latency percentiles, loss and backlog; fail when an SLO is missed.
    Loadtest(Box<LoadtestArgs>),
    /// Device-update compliance of a running instance.
    Compliance {
        #[command(subcommand)]
        command: ComplianceCommand,
    },
}

#[derive(clap::Args)]
struct LoadtestArgs {
    /// MQTT broker to publish to (only the addresses given are contacted).
    #[arg(long, default_value = "127.0.0.1:1883")]
    broker: String,
    /// Kafka bootstrap: measure publish→Kafka latency and check nothing was lost.
    #[arg(long)]
    kafka: Option<String>,
    #[arg(long, default_value = "telemetry.raw")]
    raw_topic: String,
    /// A running Sluice's HTTP API: read consumer lag and replica advice from /scaling.
    #[arg(long)]
    sluice_url: Option<String>,
    /// `steady:RATE:SECS`, `ramp:FROM:TO:SECS` or `spike:BASE:K:BEFORE:SPIKE:AFTER`.
    #[arg(long, default_value = "steady:1000:30")]
    profile: String,
    /// A TOML file of `[[stage]] name, rate | from+to, secs` (instead of --profile).
    #[arg(long)]
    stages: Option<PathBuf>,
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// MQTT connections the devices share.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    qos: u8,
    /// MQTT topic; `{device}` is the device name.
    #[arg(long, default_value = "devices/{device}/telemetry")]
    topic: String,
    /// Payload field generators, `NAME=walk:START:STEP|uniform:LO:HI|const:V|choice:A,B` (repeatable).
    #[arg(long = "field")]
    fields: Vec<String>,
    /// Stop after this many messages whatever the profile says.
    #[arg(long, default_value_t = 10_000_000)]
    max_messages: u64,
    /// How long to wait after the last stage for acks and Kafka.
    #[arg(long, default_value_t = 30)]
    drain_secs: u64,
    /// Write the report as JSON here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Objectives, e.g. `p99<50ms,rate>=0.95,lost=0`: exit 1 when one is missed.
    #[arg(long)]
    slo: Option<String>,
    /// Also measure a bare Kafka consumer vs the router (with this config's rules) and a bare
    /// MQTT subscriber vs ingest, side by side (needs --kafka).
    #[arg(long)]
    baseline: bool,
    /// Config whose rules the baseline router runs.
    #[arg(long, default_value = "config/sluice.toml")]
    config: PathBuf,
    /// Messages in the ingest-vs-subscriber burst.
    #[arg(long, default_value_t = 50_000)]
    burst: u64,
}

#[derive(Subcommand)]
enum ComplianceCommand {
    /// Print per-group counts and failed deployments; with a filter, the devices too.
    Report {
        #[arg(long, default_value = "http://127.0.0.1:9464")]
        url: String,
        /// Only devices in this state (on_latest_update, update_in_progress, new_updates_available).
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        group: Option<String>,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Compile rule files (`.sql`, or directories of them); report every problem with its
    /// file and line/column; exit non-zero if any.
    Check {
        /// Rule files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Config whose sinks the rules' actions must name (default: config/sluice.toml if
        /// present; without one, actions are not checked).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Run rule test cases (`*.toml` under --cases) through the rule engine; print a diff for
    /// every mismatch; exit non-zero if any case fails.
    Test {
        /// Rule files or directories (cases may also name their own rules).
        paths: Vec<PathBuf>,
        #[arg(long)]
        cases: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Report every problem in a config file (keys and rules) and exit non-zero if any.
    Check { file: PathBuf },
}

#[derive(Clone, Copy, ValueEnum, Debug)]
enum Role {
    Brokers,
    Ingest,
    Router,
}

fn roles(only: &[Role]) -> Roles {
    if only.is_empty() {
        return Roles::ALL;
    }
    Roles {
        brokers: only.iter().any(|r| matches!(r, Role::Brokers)),
        ingest: only.iter().any(|r| matches!(r, Role::Ingest)),
        router: only.iter().any(|r| matches!(r, Role::Router)),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "warn,rumqttd=off,tansu_storage=off,sluice=info,sluice_ingest=info,sluice_router=info,sluice_sinks=info",
        )
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { config, only } => {
            let config = sluice_config::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
            sluice::http::prometheus();
            let shutdown = CancellationToken::new();
            let on_signal = shutdown.clone();
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!("shutting down: stop ingest, drain, flush, commit");
                on_signal.cancel();
            });
            let health = Arc::new(pipeline::Health::default());
            pipeline::run(
                config,
                roles(&only),
                shutdown,
                Arc::new(Stats::default()),
                health,
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            data_dir,
            devices,
            messages,
            rate,
        } => {
            sluice::http::prometheus();
            let opts = sluice::demo::DemoOptions {
                data_dir,
                devices,
                messages_per_device: messages,
                rate,
            };
            sluice::demo::run(opts).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Check { file },
        } => {
            let problems = sluice::rules_cli::config_problems(&file);
            Ok(exit(sluice::rules_cli::report(
                &file.display().to_string(),
                &problems,
            )))
        }
        Command::Rules {
            command: RulesCommand::Check { paths, config },
        } => {
            let default = PathBuf::from("config/sluice.toml");
            let config = config.or_else(|| default.exists().then_some(default));
            let problems = sluice::rules_cli::rule_problems(config.as_deref(), &paths);
            Ok(exit(sluice::rules_cli::report("rules", &problems)))
        }
        Command::Rules {
            command: RulesCommand::Test { paths, cases },
        } => Ok(exit(sluice::rules_cli::run_tests(&paths, &cases))),
        Command::Loadtest(args) => loadtest(*args).await,
        Command::Scale { url, json } => {
            sluice::ops_cli::scale(&url, json).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Compliance {
            command: ComplianceCommand::Report { url, state, group },
        } => {
            sluice::ops_cli::compliance_report(&url, state.as_deref(), group.as_deref()).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn loadtest(a: LoadtestArgs) -> anyhow::Result<ExitCode> {
    use sluice_bench::loadtest::{profile, report, run, Options};
    let stages = match &a.stages {
        Some(file) => profile::from_file(file),
        None => profile::parse(&a.profile),
    }
    .map_err(anyhow::Error::msg)?;
    let slo = report::parse_slo(a.slo.as_deref().unwrap_or("")).map_err(anyhow::Error::msg)?;
    if a.baseline && a.kafka.is_none() {
        anyhow::bail!("--baseline needs --kafka");
    }
    let baseline = match a.baseline {
        true => Some(sluice_config::load(&a.config).map_err(|e| anyhow::anyhow!("{e}"))?),
        false => None,
    };
    let violated = run(Options {
        broker: a.broker,
        kafka: a.kafka,
        raw_topic: a.raw_topic,
        sluice_url: a.sluice_url,
        devices: a.devices,
        connections: a.connections,
        qos: a.qos,
        topic: a.topic,
        fields: a.fields,
        stages,
        max_messages: a.max_messages,
        drain_secs: a.drain_secs,
        report: a.report,
        slo,
        baseline,
        burst: a.burst,
    })
    .await?;
    if violated.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("SLO violated: {}", violated.join("; "));
    Ok(ExitCode::FAILURE)
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}
