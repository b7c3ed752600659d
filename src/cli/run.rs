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
        wait_for_signal().await;
        tracing::info!("shutting down: stop ingest, drain, flush, commit");
        on_signal.cancel();
    });
    let health = Arc::new(crate::health::Health::default());
    let stats = Arc::new(Stats::default());
    pipeline::run(config, roles(&args.only), shutdown, stats, health).await?;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}
