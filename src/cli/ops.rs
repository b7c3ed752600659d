//! `sluice scale` and `sluice compliance report`: read a running instance's API and print it
//! for people. The address comes from `--url`, else from the config's `[http]` (`--config`,
//! default `config/sluice.toml`); the token, when the API needs one, from `SLUICE_TOKEN`.

use anyhow::Context;
use serde_json::Value;
use sluice_router::scaling::ScalingReport;
use std::path::PathBuf;
use std::process::ExitCode;

/// Where the API is: `--url`, or the config's `http.listen`.
#[derive(clap::Args)]
pub struct ApiArgs {
    /// Base URL of the instance's HTTP API; default: from the config's `[http]`. Token:
    /// `SLUICE_TOKEN`.
    #[arg(long)]
    url: Option<String>,
    /// Config whose `[http].listen` (and `[http.tls]`) give the URL when --url is not given.
    #[arg(long, short, default_value = "config/sluice.toml")]
    config: PathBuf,
}

impl ApiArgs {
    /// The API's base URL.
    pub fn base_url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.url {
            let url = url.trim_end_matches('/');
            // `--url 127.0.0.1:9464` means the plain HTTP API at that address.
            return Ok(match url.contains("://") {
                true => url.to_string(),
                false => format!("http://{url}"),
            });
        }
        let (config, _) = sluice_config::load_unvalidated(&self.config).map_err(|e| {
            anyhow::anyhow!("{e} (pass --url http://host:port, or --config <file>)")
        })?;
        let listen = &config.http.listen;
        anyhow::ensure!(
            !listen.is_empty(),
            "{}: the HTTP API is off (http.listen is empty); pass --url",
            self.config.display()
        );
        let mut addr = sluice_common::addr::listen_addr(listen)
            .with_context(|| format!("{}: http.listen = {listen:?}", self.config.display()))?;
        // Listening on every address: ask this host's loopback of the same family.
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let scheme = if config.http.tls.is_some() {
            "https"
        } else {
            "http"
        };
        Ok(format!("{scheme}://{addr}"))
    }
}

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
        #[arg(long)]
        group: Option<String>,
    },
}

pub async fn scale(args: ScaleArgs) -> anyhow::Result<ExitCode> {
    print_scale(&args.api.base_url()?, args.json).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn compliance(command: ComplianceCommand) -> anyhow::Result<ExitCode> {
    let ComplianceCommand::Report { api, state, group } = command;
    compliance_report(&api.base_url()?, state.as_deref(), group.as_deref()).await?;
    Ok(ExitCode::SUCCESS)
}

/// GETs `url` with the bearer token from `SLUICE_TOKEN`, if set; fails on a non-2xx answer,
/// naming the variable when the API wants a token.
async fn get_json(url: &str) -> anyhow::Result<Value> {
    let mut request = reqwest::Client::new().get(url);
    let token = std::env::var("SLUICE_TOKEN").ok();
    if let Some(token) = &token {
        request = request.bearer_auth(token.trim());
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("GET {url} (is `sluice run` up, and is --url right?)"))?;
    let status = response.status();
    let body = response.text().await?;
    let hint = match (status.as_u16(), &token) {
        (401, None) => ": the API needs a token: set SLUICE_TOKEN to a viewer token",
        (401, Some(_)) => ": the token in SLUICE_TOKEN is not one of the API's tokens",
        (403, _) => ": the token in SLUICE_TOKEN has too low a role",
        _ => "",
    };
    anyhow::ensure!(status.is_success(), "GET {url}: {status}{hint} ({body})");
    serde_json::from_str(&body).with_context(|| format!("GET {url}: not JSON"))
}

/// Prints the replica advice of a running instance.
async fn print_scale(base: &str, json: bool) -> anyhow::Result<()> {
    let value = get_json(&format!("{base}/scaling")).await?;
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
    base: &str,
    state: Option<&str>,
    group: Option<&str>,
) -> anyhow::Result<()> {
    let mut url = url::Url::parse(&format!("{base}/compliance"))?;
    for (k, v) in [("state", state), ("group", group)] {
        if let Some(v) = v {
            url.query_pairs_mut().append_pair(k, v);
        }
    }
    let r = get_json(url.as_str()).await?;
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
