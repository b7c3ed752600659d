//! `sluice scale` and `sluice compliance report`: read a running instance's API and print it
//! for people. The token, when the API needs one, comes from `SLUICE_TOKEN`.

use anyhow::Context;
use serde_json::Value;
use sluice_router::scaling::ScalingReport;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ScaleArgs {
    /// Base URL of the instance's HTTP API (`[http].listen`). Token: `SLUICE_TOKEN`.
    #[arg(long, default_value = "http://127.0.0.1:9464")]
    url: String,
    /// Print the raw `/scaling` JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand)]
pub enum ComplianceCommand {
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

pub async fn scale(args: ScaleArgs) -> anyhow::Result<ExitCode> {
    print_scale(&args.url, args.json).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn compliance(command: ComplianceCommand) -> anyhow::Result<ExitCode> {
    let ComplianceCommand::Report { url, state, group } = command;
    compliance_report(&url, state.as_deref(), group.as_deref()).await?;
    Ok(ExitCode::SUCCESS)
}

/// GETs `url` with the bearer token from `SLUICE_TOKEN`, if set; fails on a non-2xx answer.
async fn get_json(url: &str) -> anyhow::Result<Value> {
    let mut request = reqwest::Client::new().get(url);
    if let Ok(token) = std::env::var("SLUICE_TOKEN") {
        request = request.bearer_auth(token.trim());
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("GET {url} (is `sluice run` up, and is --url right?)"))?;
    let status = response.status();
    let body = response.text().await?;
    anyhow::ensure!(status.is_success(), "GET {url}: {status}: {body}");
    serde_json::from_str(&body).with_context(|| format!("GET {url}: not JSON"))
}

/// Prints the replica advice of a running instance.
async fn print_scale(base: &str, json: bool) -> anyhow::Result<()> {
    let value = get_json(&format!("{}/scaling", base.trim_end_matches('/'))).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let r: ScalingReport = serde_json::from_value(value)?;
    let rt = &r.router;
    let lag_s = rt
        .lag_seconds
        .map_or("unbounded (nothing consumed)".into(), |s| {
            format!("{s:.1} s")
        });
    println!("router  (group {}, topic {})", rt.group, rt.topic);
    println!("  lag              {} records ({lag_s})", rt.lag_total);
    for (p, lag) in &rt.lag_per_partition {
        println!("    partition {p:<4} {lag}");
    }
    println!("  produce rate     {:.0} records/s", rt.produce_rate);
    println!("  consume rate     {:.0} records/s", rt.consume_rate);
    println!(
        "  replicas         {} now, {} wanted, advice {} (capacity {:.0}/s each, {} partitions)",
        rt.current_replicas.map_or("?".into(), |n| n.to_string()),
        rt.wanted_replicas,
        rt.desired_replicas,
        rt.capacity_per_replica,
        rt.partitions
    );
    if let Some(w) = &rt.warning {
        println!("  warning          {w}");
    }
    let i = &r.ingest;
    println!("ingest");
    println!("  message rate     {:.0} msg/s", i.message_rate);
    println!(
        "  replicas         advice {} (capacity {:.0}/s each)",
        i.desired_replicas, i.capacity_per_replica
    );
    Ok(())
}

/// Prints per-group compliance counts, failed deployments and (filtered) devices.
async fn compliance_report(
    base: &str,
    state: Option<&str>,
    group: Option<&str>,
) -> anyhow::Result<()> {
    let mut url = format!("{}/compliance?", base.trim_end_matches('/'));
    for (k, v) in [("state", state), ("group", group)] {
        if let Some(v) = v {
            url.push_str(&format!("{k}={v}&"));
        }
    }
    let r = get_json(url.trim_end_matches(['?', '&'])).await?;
    println!(
        "{:<16} {:>8} {:>10} {:>12} {:>10} {:>8}",
        "group", "devices", "on_latest", "in_progress", "new_avail", "percent"
    );
    let row = |name: &str, c: &Value| {
        println!(
            "{:<16} {:>8} {:>10} {:>12} {:>10} {:>7.1}%",
            name,
            c["devices"],
            c["on_latest_update"],
            c["update_in_progress"],
            c["new_updates_available"],
            c["compliance_percent"].as_f64().unwrap_or(0.0)
        )
    };
    if let Some(groups) = r["groups"].as_object() {
        for (g, c) in groups {
            row(g, c);
        }
    }
    row("TOTAL", &r["total"]);
    for f in r["failed"].as_array().into_iter().flatten() {
        println!(
            "failed: deployment {} in group {}: {} device(s)",
            f["deployment"], f["group"], f["devices"]
        );
    }
    if state.is_some() || group.is_some() {
        for d in r["devices"].as_array().into_iter().flatten() {
            println!(
                "  {} model={} version={} latest={} state={}",
                d["device"], d["model"], d["version"], d["latest_version"], d["state"]
            );
        }
    }
    Ok(())
}
