//! The `sluice` command line (`sluice --help`), one file per subcommand as in mini-redis's
//! `cmd/`: each holds its arguments and the function that runs it.
//!
//! - [`run`]: `sluice run`, the pipeline (or some of its roles) until a signal.
//! - [`demo`]: `sluice demo`, everything in one process for a bounded time, then a summary
//!   ([`summary`] reads the Parquet it wrote).
//! - [`rules`]: `sluice config check`, `sluice rules check`, `sluice rules test`;
//!   [`preview`]: `sluice rules preview`.
//! - [`ops`]: `sluice scale`, `sluice compliance report` (a running instance's API);
//!   [`devices`]: `sluice devices provision|retire`.
//! - [`lake`]: `sluice lake optimize|vacuum`, maintenance of Delta tables.
//! - [`loadtest`]: `sluice loadtest` (the generator is `sluice_loadtest`).
//! - [`logs`]: what `SLUICE_LOG` and `SLUICE_LOG_FORMAT` mean.

mod api;
pub mod demo;
pub mod devices;
pub mod lake;
pub mod loadtest;
mod logs;
pub mod ops;
pub mod preview;
pub mod rules;
pub mod run;
pub mod summary;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

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
    Run(run::RunArgs),
    /// Embedded brokers + pipeline + a simulated fleet, for a bounded time, then a summary.
    Demo(demo::DemoArgs),
    /// Check configuration files.
    Config {
        #[command(subcommand)]
        command: rules::ConfigCommand,
    },
    /// Check and test routing rules without starting anything.
    Rules {
        #[command(subcommand)]
        command: rules::RulesCommand,
    },
    /// Print the scaling advice of a running instance (lag, rates, replicas).
    Scale(ops::ScaleArgs),
    /// Drive an MQTT broker with a simulated fleet at a rate profile; report throughput,
    /// latency percentiles, loss and backlog; fail when an SLO is missed.
    Loadtest(Box<loadtest::LoadtestArgs>),
    /// Device logins at the MQTT gateway of a running instance (provision, retire).
    Devices {
        #[command(subcommand)]
        command: devices::DevicesCommand,
    },
    /// Maintenance of the Delta tables of `format = "delta"` sinks (safe while routers write).
    Lake {
        #[command(subcommand)]
        command: lake::LakeCommand,
    },
    /// Device-update compliance of a running instance.
    Compliance {
        #[command(subcommand)]
        command: ops::ComplianceCommand,
    },
}

/// Parses the command line, sets up logging and the runtime, runs the subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logs::init();
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
            // Exit now, without tearing the runtime down: a start that failed half-way (the
            // embedded broker up, a stage not) would otherwise end in a screen of Kafka
            // clients' "all brokers down" errors under the one line that matters. Nothing
            // is lost: a device's PUBACK is only ever sent after Kafka has its message.
            std::process::exit(1);
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(args) => run::exec(args).await,
        Command::Demo(args) => demo::exec(args).await,
        Command::Config { command } => Ok(rules::config(command)),
        Command::Rules { command } => rules::rules(command).await,
        Command::Loadtest(args) => Ok(exit(loadtest::run(*args).await?)),
        Command::Scale(args) => ops::scale(args).await,
        Command::Compliance { command } => ops::compliance(command).await,
        Command::Devices { command } => devices::exec(command).await,
        Command::Lake { command } => lake::exec(command).await,
    }
}

/// Success or failure as the process's exit code.
pub fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
