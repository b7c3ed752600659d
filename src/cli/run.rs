//! `sluice run`: the pipeline's roles until SIGINT or SIGTERM, then an orderly stop.

use crate::pipeline::{self, Roles};
use clap::ValueEnum;
use sluice_common::Stats;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args)]
pub struct RunArgs {
    /// Config file (TOML).
    #[arg(long, short, default_value = "config/sluice.toml")]
    config: PathBuf,
    /// Run only these roles (repeatable), e.g. `--only brokers --only ingest`.
    #[arg(long, value_enum)]
    only: Vec<Role>,
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

pub async fn exec(args: RunArgs) -> anyhow::Result<ExitCode> {
    // Registered first, not in the task below (a stream registers when made, a task only when
    // it first runs): a SIGTERM while the config loads is an orderly stop, not a kill. CI saw
    // a router stopped right after its restart die of the signal.
    let signals = Signals::register();
    if !args.config.exists() {
        anyhow::bail!(
            "{}: no such file (name the config with --config <file>; the default is relative to the working directory)",
            args.config.display()
        );
    }
    let config = sluice_config::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::http::prometheus();
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        signals.wait().await;
        tracing::info!("shutting down: stop ingest, drain, flush, commit");
        on_signal.cancel();
    });
    let health = Arc::new(crate::health::Health::default());
    let stats = Arc::new(Stats::default());
    pipeline::run(config, roles(&args.only), shutdown, stats, health).await?;
    Ok(ExitCode::SUCCESS)
}

/// SIGINT and SIGTERM, listened for from the moment [`Signals::register`] returns.
struct Signals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn register() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        Self {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    async fn wait(mut self) {
        async fn recv(s: Option<&mut tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = recv(self.interrupt.as_mut()) => {}
            _ = recv(self.terminate.as_mut()) => {}
        }
    }
}
