//! `sluice rules preview`: new or changed rule files run on records already in the raw topic,
//! read-only (see `sluice_router::preview`), printed per rule, with a changed rule's output
//! compared to the running version's on the same records.

use serde_json::{Map, Value};
use sluice_config::{Config, RuleConfig};
use sluice_processors::rule::{rows_as_json, RuleSet};
use sluice_router::preview::{self, RuleRows, Window};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct PreviewArgs {
    /// Rule files or directories to preview.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The config the pipeline runs with: where the raw topic is, and the running rules a
    /// changed rule is compared with.
    #[arg(long, short, default_value = "config/sluice.toml")]
    config: PathBuf,
    /// The latest N records of the raw topic.
    #[arg(long, default_value_t = 1000)]
    last: usize,
    /// Only records received in the last this many seconds (of the latest --last).
    #[arg(long)]
    within_secs: Option<u64>,
    /// JSON lines (`{"rule", "row"}`) instead of tables.
    #[arg(long)]
    json: bool,
    /// Rows printed per rule in a table.
    #[arg(long, default_value_t = 20)]
    rows: usize,
}

pub async fn exec(args: PreviewArgs) -> anyhow::Result<ExitCode> {
    let config = sluice_config::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (rules, errors) =
        sluice_config::rule_files::load_rule_paths(std::path::Path::new(""), &args.paths);
    if let Some(e) = errors.first() {
        anyhow::bail!("{e}");
    }
    anyhow::ensure!(!rules.is_empty(), "no rules in {:?}", args.paths);
    let mut new_set = compile(&rules)?;
    let bootstrap = sluice_kafka::bootstrap(&config);
    let window = Window {
        last: args.last,
        within_ms: args.within_secs.map(|s| s as i64 * 1000),
    };
    let (c, b) = (config.clone(), bootstrap.clone());
    let sample = tokio::task::spawn_blocking(move || preview::sample(&c, &b, window)).await??;
    eprintln!(
        "preview: {} records of '{}' at {bootstrap} ({} refused by the decoder); nothing written, no offset committed",
        sample.raw.len(),
        config.kafka.raw_topic,
        sample.rejected
    );
    let new_rows = preview::run(&mut new_set, &sample);
    let running = running_versions(&config, &rules)?;
    let old_rows: BTreeMap<String, RuleRows> = match running {
        Some(mut set) => preview::run(&mut set, &sample)
            .into_iter()
            .map(|r| (r.rule.clone(), r))
            .collect(),
        None => BTreeMap::new(),
    };
    for r in &new_rows {
        let status = status_of(&config, &rules, &r.rule);
        if args.json {
            print_json(r);
        } else {
            print_table(r, status, args.rows)?;
        }
        if let (Some(old), "changed") = (old_rows.get(&r.rule), status) {
            print_diff(r, old, args.json);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn compile(rules: &[RuleConfig]) -> anyhow::Result<RuleSet> {
    RuleSet::compile(rules).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("{}", lines.join("\n"))
    })
}

/// The running versions of the previewed rules that changed (same name, other SQL).
fn running_versions(config: &Config, rules: &[RuleConfig]) -> anyhow::Result<Option<RuleSet>> {
    let changed: Vec<RuleConfig> = config
        .rules
        .iter()
        .filter(|c| rules.iter().any(|r| r.name == c.name && r.sql != c.sql))
        .cloned()
        .collect();
    if changed.is_empty() {
        return Ok(None);
    }
    compile(&changed).map(Some)
}

fn status_of(config: &Config, rules: &[RuleConfig], name: &str) -> &'static str {
    let new = rules.iter().find(|r| r.name == name);
    match config.rules.iter().find(|c| c.name == name) {
        None => "new",
        Some(c) if new.is_some_and(|n| n.sql == c.sql) => "unchanged",
        Some(_) => "changed",
    }
}

fn json_lines(rows: &RuleRows) -> Vec<Map<String, Value>> {
    rows.rows
        .as_ref()
        .and_then(|b| rows_as_json(b).ok())
        .unwrap_or_default()
}

fn print_json(r: &RuleRows) {
    for row in json_lines(r) {
        println!("{}", serde_json::json!({"rule": r.rule, "row": row}));
    }
}

fn print_table(r: &RuleRows, status: &str, limit: usize) -> anyhow::Result<()> {
    let rows = r.rows.as_ref().map_or(0, |b| b.num_rows());
    println!(
        "\nrule '{}' ({status}): {} records matched, {rows} rows{}",
        r.rule,
        r.matched,
        match r.failed.len() {
            0 => String::new(),
            n => format!(", failed on {n} (first: {})", r.failed[0].1),
        }
    );
    if let Some(batch) = &r.rows {
        let shown = batch.slice(0, rows.min(limit));
        println!("{}", arrow::util::pretty::pretty_format_batches(&[shown])?);
        if rows > limit {
            println!(
                "({} more rows; --rows N or --json shows them)",
                rows - limit
            );
        }
    }
    Ok(())
}

/// Rows only in the new version (`+`) and only in the running one (`-`), as JSON.
fn print_diff(new: &RuleRows, old: &RuleRows, json: bool) {
    let key = |m: &Map<String, Value>| Value::Object(m.clone()).to_string();
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for row in json_lines(new) {
        *counts.entry(key(&row)).or_default() += 1;
    }
    for row in json_lines(old) {
        *counts.entry(key(&row)).or_default() -= 1;
    }
    let added: Vec<(&String, i64)> = counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| (k, *n))
        .collect();
    let removed: Vec<(&String, i64)> = counts
        .iter()
        .filter(|(_, n)| **n < 0)
        .map(|(k, n)| (k, -*n))
        .collect();
    let total = |v: &[(&String, i64)]| v.iter().map(|(_, n)| n).sum::<i64>();
    if json {
        for (row, n) in &added {
            for _ in 0..*n {
                println!(
                    "{{\"rule\":{},\"diff\":\"+\",\"row\":{row}}}",
                    Value::from(new.rule.clone())
                );
            }
        }
        for (row, n) in &removed {
            for _ in 0..*n {
                println!(
                    "{{\"rule\":{},\"diff\":\"-\",\"row\":{row}}}",
                    Value::from(new.rule.clone())
                );
            }
        }
        return;
    }
    println!(
        "compared with the running version on the same records: {} rows only in the new version, {} only in the running one",
        total(&added),
        total(&removed)
    );
    for (row, _) in added.iter().take(10) {
        println!("  + {row}");
    }
    for (row, _) in removed.iter().take(10) {
        println!("  - {row}");
    }
}
