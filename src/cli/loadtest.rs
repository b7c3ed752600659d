//! `sluice loadtest`: the command line of the load generator in `sluice_loadtest`.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct LoadtestArgs {
    /// MQTT broker to publish to (only the addresses given are contacted).
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub broker: String,
    /// Kafka bootstrap: measure publish→Kafka latency and check nothing was lost.
    #[arg(long)]
    pub kafka: Option<String>,
    #[arg(long, default_value = "telemetry.raw")]
    pub raw_topic: String,
    /// A running Sluice's HTTP API: read consumer lag and replica advice from /scaling.
    #[arg(long)]
    pub sluice_url: Option<String>,
    /// `steady:RATE:SECS`, `ramp:FROM:TO:SECS`, `spike:BASE:K:BEFORE:SPIKE:AFTER` or
    /// `soak:RATE:MINUTES` (fails when lag or resident memory trends upward).
    #[arg(long, default_value = "steady:1000:30")]
    pub profile: String,
    /// A TOML file of `[[stage]] name, rate | from+to, secs` (instead of --profile).
    #[arg(long)]
    pub stages: Option<PathBuf>,
    /// Simulated devices, each with its own id and `seq` counter.
    #[arg(long, default_value_t = 1000)]
    pub devices: usize,
    /// MQTT connections the devices share.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// MQTT QoS of every publish: 1 (acknowledged, measured) or 0 (fire and forget).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub qos: u8,
    /// MQTT topic; `{device}` is the device name.
    #[arg(long, default_value = "devices/{device}/telemetry")]
    pub topic: String,
    /// Payload field generators, `NAME=walk:START:STEP|uniform:LO:HI|const:V|choice:A,B` (repeatable).
    #[arg(long = "field")]
    pub fields: Vec<String>,
    /// How readings travel: `json`, `protobuf` (with --proto and --message: fields set by
    /// name), or `sparkplug` (each device an edge node: NBIRTH, then NDATA by alias on
    /// `spBv1.0/sluice-loadtest/NDATA/<device>`).
    #[arg(long, default_value = "json")]
    pub format: String,
    /// `--format protobuf`: the `.proto` file (compiled in-process).
    #[arg(long)]
    pub proto: Option<PathBuf>,
    /// `--format protobuf`: the full message name (`acme.v1.Reading`).
    #[arg(long)]
    pub message: Option<String>,
    /// Stop after this many messages whatever the profile says.
    #[arg(long, default_value_t = 10_000_000)]
    pub max_messages: u64,
    /// How long to wait after the last stage for acks and Kafka.
    #[arg(long, default_value_t = 30)]
    pub drain_secs: u64,
    /// Write the report as JSON here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Objectives, e.g. `p99<50ms,rate>=0.95,lost=0`: exit 1 when one is missed.
    #[arg(long)]
    pub slo: Option<String>,
    /// Also measure a bare Kafka consumer vs the router (with this config's rules) and a bare
    /// MQTT subscriber vs ingest, side by side (needs --kafka).
    #[arg(long)]
    pub baseline: bool,
    /// Config whose rules the baseline router runs.
    #[arg(long, default_value = "config/sluice.toml")]
    pub config: PathBuf,
    /// Messages the front-door baseline publishes in one second (fewer go out when the front
    /// door pushes back; the rates are over what went out).
    #[arg(long, default_value_t = 50_000)]
    pub burst: u64,
    #[command(flatten)]
    pub find: FindMaxArgs,
}

/// `--find-max`: search for the highest sustainable rate instead of running a profile.
#[derive(clap::Args)]
pub struct FindMaxArgs {
    /// Search for the highest rate the pipeline sustains (needs --kafka and --sluice-url);
    /// --slo adds objectives to the defaults (lost=0, rate>=0.95, lag_growth<0.05, p99<500ms,
    /// puback_p99<250ms).
    #[arg(long)]
    pub find_max: bool,
    /// First rate tried (msg/s); the search doubles it until a step fails, then bisects.
    #[arg(long, default_value_t = 1000.0)]
    pub start_rate: f64,
    /// Highest rate tried (msg/s).
    #[arg(long, default_value_t = 100_000.0)]
    pub max_rate: f64,
    /// Seconds each step holds its rate: at least 6 of the router's commit intervals (lag is
    /// read from committed offsets).
    #[arg(long, default_value_t = 30.0)]
    pub step_secs: f64,
    /// Wait at most this long after a step for acknowledgements and Kafka.
    #[arg(long, default_value_t = 10)]
    pub step_drain_secs: u64,
    /// Most steps the search runs.
    #[arg(long, default_value_t = 12)]
    pub max_steps: usize,
    /// Most seconds the search runs.
    #[arg(long, default_value_t = 900)]
    pub budget_secs: u64,
    /// Stop when the lowest failed rate is within this factor of the best sustained one.
    #[arg(long, default_value_t = 1.15)]
    pub resolution: f64,
    /// A replica plan for this rate: `50000` (msg/s) or `5x` (a multiple of the knee).
    #[arg(long)]
    pub plan_for: Option<String>,
    /// Spare capacity the plan keeps, as a share of the target.
    #[arg(long, default_value_t = 0.3)]
    pub headroom: f64,
    /// Where the HTML report goes: plots, verdict and plan with --find-max (default
    /// sluice-capacity.html); lag and resident memory over time for a profile run (only when
    /// given).
    #[arg(long)]
    pub html: Option<PathBuf>,
}

/// Runs the load test; true when every SLO term held.
pub async fn run(a: LoadtestArgs) -> anyhow::Result<bool> {
    use sluice_loadtest::{profile, report, run, Options};
    let stages = match &a.stages {
        Some(file) => profile::from_file(file),
        None => profile::parse(&a.profile),
    }
    .map_err(anyhow::Error::msg)?;
    let mut slo = report::parse_slo(a.slo.as_deref().unwrap_or("")).map_err(anyhow::Error::msg)?;
    if a.stages.is_none() && a.profile.starts_with("soak:") && !a.find.find_max {
        slo = profile::soak_objectives(&slo);
    }
    if a.baseline && a.kafka.is_none() {
        anyhow::bail!("--baseline needs --kafka");
    }
    let baseline = match a.baseline {
        true => Some(sluice_config::load(&a.config).map_err(|e| anyhow::anyhow!("{e}"))?),
        false => None,
    };
    let opts = Options {
        broker: a.broker,
        kafka: a.kafka,
        raw_topic: a.raw_topic,
        sluice_url: a.sluice_url,
        devices: a.devices,
        connections: a.connections,
        qos: a.qos,
        topic: a.topic,
        fields: a.fields,
        encoding: sluice_loadtest::encoding::Encoding::parse(
            &a.format,
            a.proto.as_deref(),
            a.message.as_deref(),
        )?,
        stages,
        max_messages: a.max_messages,
        drain_secs: a.drain_secs,
        report: a.report,
        slo,
        baseline,
        burst: a.burst,
        html: a.find.html.clone().filter(|_| !a.find.find_max),
    };
    if a.find.find_max {
        return find_max(&opts, &a.find).await;
    }
    let violated = run(opts).await?;
    if !violated.is_empty() {
        eprintln!("SLO violated: {}", violated.join("; "));
    }
    Ok(violated.is_empty())
}

/// `--find-max`: true when a sustainable rate was found.
async fn find_max(opts: &sluice_loadtest::Options, a: &FindMaxArgs) -> anyhow::Result<bool> {
    use sluice_loadtest::capacity::{self, search::Search, FindMax};
    anyhow::ensure!(
        a.start_rate >= 1.0 && a.max_rate >= a.start_rate && a.resolution > 1.0,
        "--find-max needs 1 <= --start-rate <= --max-rate and --resolution > 1"
    );
    let fm = FindMax {
        search: Search {
            start: a.start_rate,
            max: a.max_rate,
            factor: 2.0,
            resolution: a.resolution,
            max_steps: a.max_steps,
        },
        step_secs: a.step_secs,
        step_drain_secs: a.step_drain_secs,
        budget_secs: a.budget_secs,
        plan_for: a.plan_for.clone(),
        headroom: a.headroom,
        html: a
            .html
            .clone()
            .unwrap_or_else(|| "sluice-capacity.html".into()),
    };
    let found = capacity::find_max(opts, &fm).await?;
    found.print();
    std::fs::write(&fm.html, capacity::html::render(&found))?;
    println!("HTML report written to {}", fm.html.display());
    if let Some(path) = &opts.report {
        std::fs::write(path, serde_json::to_vec_pretty(&found)?)?;
        println!("report written to {}", path.display());
    }
    if found.knee.is_none() {
        eprintln!("no sustainable rate: {}", found.bound_says);
    }
    Ok(found.knee.is_some())
}
