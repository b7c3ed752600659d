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
    Loadtest(Box<sluice::loadtest_cli::LoadtestArgs>),
    /// Device-update compliance of a running instance.
    Compliance {
        #[command(subcommand)]
        command: ComplianceCommand,
    },
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
        Command::Loadtest(args) => Ok(exit(sluice::loadtest_cli::run(*args).await?)),
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
