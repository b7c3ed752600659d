//! `sluice lake optimize|vacuum`: maintenance of the Delta tables that sinks with
//! `format = "delta"` write, run by an operator (or a cron job) while routers keep writing.

use clap::{Args, Subcommand};
use sluice_config::{Config, OutputFormat, ParquetLocation, SinkConfig};
use sluice_sinks::delta::{lake, location};
use std::path::PathBuf;
use std::process::ExitCode;
use url::Url;

#[derive(Subcommand)]
pub enum LakeCommand {
    /// Compact each table's small files into files of about --target-mb, one `date`/`hour`
    /// partition at a time, as one Delta commit per table (the rows do not change).
    Optimize {
        #[command(flatten)]
        tables: TableArgs,
        /// Files smaller than this (MiB) are compacted into files of about this size.
        #[arg(long, default_value_t = 128)]
        target_mb: u64,
    },
    /// Delete data files the log removed (compacted away) more than --retain hours ago.
    /// Versions that need them can no longer be read (time travel).
    Vacuum {
        #[command(flatten)]
        tables: TableArgs,
        /// Keep removed files this many hours (the longest time travel or query to allow).
        #[arg(long)]
        retain: u64,
        /// List what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Args)]
pub struct TableArgs {
    /// The configuration naming the sinks (their `path` and `storage_options`).
    #[arg(long, short, default_value = "sluice.toml")]
    config: PathBuf,
    /// Only this sink (default: every sink with `format = "delta"`).
    #[arg(long)]
    sink: Option<String>,
    /// Only this rule's table.
    #[arg(long)]
    rule: Option<String>,
}

/// (sink, table URL, storage options, compression) of each table the arguments select.
type Target = (
    String,
    Url,
    std::collections::HashMap<String, String>,
    sluice_config::Compression,
);

async fn targets(args: &TableArgs) -> anyhow::Result<Vec<Target>> {
    let config: Config = sluice_config::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut found = vec![];
    for (name, sink) in &config.sinks {
        let SinkConfig::Parquet(p) = sink else {
            continue;
        };
        if p.format != OutputFormat::Delta || args.sink.as_ref().is_some_and(|s| s != name) {
            continue;
        }
        let location = match p
            .location()
            .map_err(|e| anyhow::anyhow!("sink {name}: {e}"))?
        {
            ParquetLocation::Directory(d) => ParquetLocation::Directory(config.under_data_dir(&d)),
            other => other,
        };
        let root =
            location::root_url(&location).map_err(|e| anyhow::anyhow!("sink {name}: {e}"))?;
        let options = location::options(&p.storage_options);
        for url in lake::tables(&root, &options)
            .await
            .map_err(|e| anyhow::anyhow!("sink {name}: {e}"))?
        {
            let rule = url
                .path_segments()
                .and_then(|mut s| s.next_back())
                .unwrap_or_default();
            if args.rule.as_ref().is_none_or(|r| r == rule) {
                found.push((name.clone(), url, options.clone(), p.compression));
            }
        }
    }
    if found.is_empty() {
        anyhow::bail!("no Delta tables found (sinks with format = \"delta\" that have written)");
    }
    Ok(found)
}

pub async fn exec(command: LakeCommand) -> anyhow::Result<ExitCode> {
    match command {
        LakeCommand::Optimize { tables, target_mb } => {
            for (sink, url, options, compression) in targets(&tables).await? {
                let Some(table) = lake::open(&url, &options).await? else {
                    continue;
                };
                let done = lake::optimize(table, target_mb.max(1) << 20, compression).await?;
                match done.version {
                    Some(v) => println!(
                        "{sink} {url}: {} files → {} (compacted {} into {}, {} rows), version {v}",
                        done.files_before,
                        done.files_before - done.files_removed + done.files_added,
                        done.files_removed,
                        done.files_added,
                        done.rows
                    ),
                    None => println!(
                        "{sink} {url}: {} files, nothing to compact",
                        done.files_before
                    ),
                }
            }
        }
        LakeCommand::Vacuum {
            tables,
            retain,
            dry_run,
        } => {
            for (sink, url, options, _) in targets(&tables).await? {
                let Some(table) = lake::open(&url, &options).await? else {
                    continue;
                };
                let deleted = lake::vacuum(table, retain, dry_run).await?;
                let verb = if dry_run { "would delete" } else { "deleted" };
                println!("{sink} {url}: {verb} {deleted} files removed more than {retain} h ago");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
