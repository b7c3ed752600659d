//! `sluice scale` and `sluice compliance report`: read a running instance's API and print it
//! for people. The address comes from `--url`, else from the config's `[http]` (`--config`,
//! default `config/sluice.toml`); the token, when the API needs one, from `SLUICE_TOKEN`.

pub use super::api::ApiArgs;
use serde_json::Value;
use sluice_router::scaling::ScalingReport;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ScaleArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Print the raw `/scaling` JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand)]
pub enum ComplianceCommand {
    /// Print per-group counts and failed deployments; with a filter, the devices too.
    Report {
        #[command(flatten)]
        api: ApiArgs,
        /// Only devices in this state (on_latest_update, update_in_progress, new_updates_available).
        #[arg(long)]
        state: Option<String>,
        /// Only devices in this group (the `group` a compliance rule selects; see README).
        #[arg(long)]
        group: Option<String>,
    },
}

pub async fn scale(args: ScaleArgs) -> anyhow::Result<ExitCode> {
    print_scale(&args.api, args.json).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn compliance(command: ComplianceCommand) -> anyhow::Result<ExitCode> {
    let ComplianceCommand::Report { api, state, group } = command;
    compliance_report(&api, state.as_deref(), group.as_deref()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Prints the replica advice of a running instance.
async fn print_scale(api: &ApiArgs, json: bool) -> anyhow::Result<()> {
    let value = api.get_json("/scaling").await?;
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

/// A JSON value as a person reads it: strings without quotes, `-` for null.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Prints rows under headers, each column as wide as its widest cell: columns of numbers
/// right-aligned, text left-aligned.
fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let numeric = |s: &str| s.trim_end_matches('%').parse::<f64>().is_ok();
    let columns: Vec<(usize, bool)> = (0..headers.len())
        .map(|i| {
            let cells = rows.iter().map(|r| r[i].chars().count());
            let width = cells.chain([headers[i].len()]).max().unwrap_or(0);
            let right = !rows.is_empty() && rows.iter().all(|r| numeric(&r[i]));
            (width, right)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let out: Vec<String> = cells
            .iter()
            .zip(&columns)
            .map(|(c, (w, right))| match right {
                true => format!("{c:>w$}"),
                false => format!("{c:<w$}"),
            })
            .collect();
        println!("{}", out.join("  ").trim_end());
    };
    line(headers.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// Prints per-group compliance counts, failed deployments and (filtered) devices.
async fn compliance_report(
    api: &ApiArgs,
    state: Option<&str>,
    group: Option<&str>,
) -> anyhow::Result<()> {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [("state", state), ("group", group)] {
        if let Some(v) = v {
            query.append_pair(k, v);
        }
    }
    let query = query.finish();
    let path = match query.is_empty() {
        true => "/compliance".to_string(),
        false => format!("/compliance?{query}"),
    };
    let r = api.get_json(&path).await?;
    let counts = |name: &str, c: &Value| {
        let percent = c["compliance_percent"].as_f64().unwrap_or(0.0);
        let mut row = vec![name.to_string()];
        for k in [
            "devices",
            "on_latest_update",
            "update_in_progress",
            "new_updates_available",
        ] {
            row.push(plain(&c[k]));
        }
        row.push(format!("{percent:.1}%"));
        row
    };
    let mut rows: Vec<Vec<String>> = r["groups"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(g, c)| counts(g, c))
        .collect();
    rows.push(counts("TOTAL", &r["total"]));
    let headers = [
        "group",
        "devices",
        "on_latest",
        "in_progress",
        "new_available",
        "compliant",
    ];
    print_table(&headers, &rows);
    let failed: Vec<Vec<String>> = r["failed"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            ["deployment", "group", "devices"]
                .map(|k| plain(&f[k]))
                .to_vec()
        })
        .collect();
    if !failed.is_empty() {
        println!();
        print_table(&["failed deployment", "group", "devices"], &failed);
    }
    if state.is_some() || group.is_some() {
        let devices: Vec<Vec<String>> = r["devices"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                [
                    "device",
                    "group",
                    "model",
                    "version",
                    "latest_version",
                    "state",
                ]
                .map(|k| plain(&d[k]))
                .to_vec()
            })
            .collect();
        println!();
        print_table(
            &["device", "group", "model", "version", "latest", "state"],
            &devices,
        );
    }
    Ok(())
}
