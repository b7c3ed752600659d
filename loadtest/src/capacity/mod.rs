//! `sluice loadtest --find-max`: the highest rate this deployment sustains, found in closed
//! loop. Each step holds one QoS 1 rate for `--step-secs`, then lets the routers catch up; a
//! step is sustainable when the fleet got its rate out, nothing acknowledged was lost, consumer
//! lag stayed flat and the latency objective held. [`search`] picks the next rate, `step` runs
//! one, [`evidence`] reads each stage's counters and the Sluice processes' CPU and memory,
//! [`verdict`] names the stage that gave out and sizes replicas for `--plan-for`, [`html`]
//! draws the report.

pub mod evidence;
pub mod html;
pub mod search;
mod step;
pub mod verdict;

use crate::report::Objective;
use crate::{observe::LagSample, Options};
use search::{Bound, Next, Search};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;
use step::{catch_up, group_now, run_step, warm_up};
use verdict::{Limit, Plan, Step};

#[derive(Debug, Clone)]
pub struct FindMax {
    pub search: Search,
    pub step_secs: f64,
    /// Wait at most this long after a step for acknowledgements and Kafka.
    pub step_drain_secs: u64,
    pub budget_secs: u64,
    pub plan_for: Option<String>,
    pub headroom: f64,
    pub html: PathBuf,
}

/// The search's result, also written as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Capacity {
    /// Highest sustainable rate, msg/s (None: nothing tried was).
    pub knee: Option<f64>,
    pub bound: Bound,
    pub bound_says: String,
    pub limit: Option<Limit>,
    pub plan: Option<Plan>,
    pub objectives: Vec<String>,
    pub cores: usize,
    pub secs: f64,
    pub steps: Vec<Step>,
    /// Lag over the whole search, seconds from its start.
    pub lag_timeline: Vec<LagSample>,
}

/// The objectives a step must meet: the user's `--slo` plus, unless it names them, no loss,
/// the rate reached, flat lag, `p99<500ms` publish→Kafka and `puback_p99<250ms`. The PUBACK
/// term marks saturation: past the knee the fleet's in-flight window fills and PUBACK latency
/// becomes window ÷ throughput (hundreds of ms), while the rate still looks reached.
pub fn objectives(user: &[Objective]) -> Vec<Objective> {
    let mut all = user.to_vec();
    let has = |m: &str| user.iter().any(|o| o.metric == m);
    let latency = ["p50", "p95", "p99", "max"].iter().any(|m| has(m));
    let puback = user.iter().any(|o| o.metric.starts_with("puback_"));
    let defaults = [
        ("lost", "=", 0.0, true),
        ("rate", ">=", verdict::RATE_LIMIT, true),
        ("lag_growth", "<", verdict::LAG_GROWTH_LIMIT, true),
        ("p99", "<", 500.0, !latency),
        ("puback_p99", "<", 250.0, !puback),
    ];
    for (metric, op, value, wanted) in defaults {
        if wanted && !has(metric) {
            all.push(Objective {
                metric: metric.into(),
                op: op.into(),
                value,
            });
        }
    }
    all
}

fn describe(o: &Objective) -> String {
    let base = o.metric.strip_prefix("puback_").unwrap_or(&o.metric);
    let ms = if ["p50", "p95", "p99", "max"].contains(&base) {
        "ms"
    } else {
        ""
    };
    format!("{}{}{}{ms}", o.metric, o.op, o.value)
}

/// How finely a step can tell flat lag from growing lag, as a share of the offered rate: each
/// bucket floor of the lag sawtooth can be off by one sampling gap's worth of records, and the
/// slope runs over about half the step, so ±2 × gap ÷ step. `None` with too few readings.
pub fn lag_resolution(timeline: &[LagSample], step_secs: f64) -> Option<(f64, f64)> {
    let mut gaps: Vec<f64> = timeline.windows(2).map(|w| w[1].at_s - w[0].at_s).collect();
    if gaps.len() < 4 {
        return None;
    }
    gaps.sort_by(f64::total_cmp);
    let gap = gaps[gaps.len() / 2];
    Some((gap, 2.0 * gap / step_secs.max(1e-9)))
}

/// A lag objective a step cannot resolve would fail or pass on the sampler's phase.
fn warn_if_lag_is_coarse(timeline: &[LagSample], step_secs: f64) {
    match lag_resolution(timeline, step_secs) {
        Some((gap, res)) if res > verdict::LAG_GROWTH_LIMIT / 2.0 => eprintln!(
            "  warning: Sluice samples lag every {:.0} ms, so a {step_secs:.0} s step resolves lag \
             growth only to ±{:.0} % of the rate (objective < {:.0} %): set scaling.interval_ms = 100 \
             while measuring, or lengthen --step-secs",
            gap * 1e3,
            res * 100.0,
            verdict::LAG_GROWTH_LIMIT * 100.0
        ),
        None => eprintln!("  warning: too few lag readings from /scaling to judge lag growth"),
        _ => {}
    }
}

pub async fn find_max(base: &Options, fm: &FindMax) -> anyhow::Result<Capacity> {
    let (Some(url), Some(_)) = (&base.sluice_url, &base.kafka) else {
        anyhow::bail!("--find-max needs --kafka (to count losses) and --sluice-url (to read lag)");
    };
    let client = reqwest::Client::new();
    let objectives = objectives(&base.slo);
    let began = Instant::now();
    let mut steps: Vec<Step> = Vec::new();
    let mut lag_timeline = Vec::new();
    // Connections, the producer and the first batches' planning warm up outside any step.
    eprintln!(
        "warming up: {:.0} msg/s for 5 s (not counted)",
        fm.search.start / 2.0
    );
    warm_up(base, fm.search.start / 2.0).await?;
    catch_up(&client, url, fm.search.start).await;
    let bound = loop {
        let tried: Vec<(f64, bool)> = steps.iter().map(|s| (s.offered, s.sustainable)).collect();
        let rate = match fm.search.next(&tried) {
            Next::Try(rate) => rate,
            Next::Done(bound) => break bound,
        };
        let needs = fm.step_secs + fm.step_drain_secs as f64;
        if began.elapsed().as_secs_f64() + needs > fm.budget_secs as f64 {
            break Bound::Time;
        }
        eprintln!(
            "step {}: {rate:.0} msg/s for {:.0} s",
            steps.len() + 1,
            fm.step_secs
        );
        let step = run_step(base, fm, url, &client, &objectives, rate, &began).await?;
        if steps.is_empty() {
            warn_if_lag_is_coarse(&step.1, fm.step_secs);
        }
        lag_timeline.extend(step.1);
        let step = step.0;
        eprintln!(
            "  → {} (sent {:.0}/s, PUBACK p99 {:.1} ms, lag growth {}){}",
            if step.sustainable {
                "sustainable"
            } else {
                "NOT sustainable"
            },
            step.achieved,
            step.puback.p99_ms,
            step.lag_growth
                .map_or("-".into(), |g| format!("{:.1} %", g * 100.0)),
            if step.violated.is_empty() {
                String::new()
            } else {
                format!(": {}", step.violated.join("; "))
            },
        );
        steps.push(step);
        catch_up(&client, url, rate).await;
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // As the search counts: a rate is sustainable when every run of it was.
    let held = |r: f64| {
        steps
            .iter()
            .filter(|s| s.offered == r)
            .all(|s| s.sustainable)
    };
    let knee = steps
        .iter()
        .filter(|s| held(s.offered))
        .map(|s| s.offered)
        .reduce(f64::max);
    let failed = steps
        .iter()
        .filter(|s| !s.sustainable && knee.is_none_or(|k| s.offered > k))
        .min_by(|a, b| a.offered.total_cmp(&b.offered));
    let limit = failed.map(|f| verdict::limiting_stage(f, cores));
    let plan = match (&fm.plan_for, knee) {
        (Some(spec), Some(k)) => {
            let target = verdict::parse_target(spec, k).map_err(anyhow::Error::msg)?;
            let (routers, partitions) = group_now(&client, url).await;
            Some(verdict::plan(
                target,
                fm.headroom,
                k,
                failed,
                routers,
                partitions,
            ))
        }
        _ => None,
    };
    Ok(Capacity {
        knee,
        bound,
        bound_says: bound.says().into(),
        limit,
        plan,
        objectives: objectives.iter().map(describe).collect(),
        cores,
        secs: began.elapsed().as_secs_f64(),
        steps,
        lag_timeline,
    })
}

impl Capacity {
    pub fn print(&self) {
        println!(
            "\n{:>10} {:>10} {:>10} {:>10} {:>10}  verdict",
            "offered/s", "sent/s", "puback p99", "kafka p99", "lag grow"
        );
        for s in &self.steps {
            println!(
                "{:>10.0} {:>10.0} {:>8.1}ms {:>10} {:>9}  {}",
                s.offered,
                s.achieved,
                s.puback.p99_ms,
                s.publish_to_kafka
                    .as_ref()
                    .map_or("-".into(), |l| format!("{:.1}ms", l.p99_ms)),
                s.lag_growth
                    .map_or("-".into(), |g| format!("{:.1}%", g * 100.0)),
                if s.sustainable {
                    "sustainable".to_string()
                } else {
                    s.violated.join("; ")
                }
            );
        }
        match self.knee {
            Some(k) => println!("\nknee: {k:.0} msg/s sustained ({})", self.bound_says),
            None => println!("\nno sustainable rate found ({})", self.bound_says),
        }
        if let Some(l) = &self.limit {
            println!("gives out first: {} — {}", l.stage, l.evidence);
        }
        if let Some(p) = &self.plan {
            println!(
                "plan for {:.0} msg/s (+{:.0} % headroom): {} gateway(s), {} router(s), {} partitions; KEDA lagThreshold {}",
                p.target_rate, p.headroom * 100.0, p.gateways, p.routers, p.partitions, p.keda_lag_threshold
            );
            for n in &p.notes {
                println!("  note: {n}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report;

    #[test]
    fn default_objectives_fill_in_what_the_user_did_not_name() {
        let user = report::parse_slo("p95<20ms,lost=0").unwrap();
        let all: Vec<String> = objectives(&user).iter().map(describe).collect();
        assert_eq!(
            all,
            [
                "p95<20ms",
                "lost=0",
                "rate>=0.95",
                "lag_growth<0.05",
                "puback_p99<250ms"
            ]
        );
        let all: Vec<String> = objectives(&[]).iter().map(describe).collect();
        assert_eq!(
            all,
            [
                "lost=0",
                "rate>=0.95",
                "lag_growth<0.05",
                "p99<500ms",
                "puback_p99<250ms"
            ]
        );
    }

    fn every(gap_s: f64, n: usize) -> Vec<LagSample> {
        (0..n)
            .map(|i| LagSample {
                at_s: i as f64 * gap_s,
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn lag_resolution_is_two_gaps_over_the_step() {
        // The defaults (2 s sampling, 30 s steps) cannot see 5 % growth; 100 ms can.
        let (gap, res) = lag_resolution(&every(2.0, 16), 30.0).unwrap();
        assert!(
            (gap - 2.0).abs() < 1e-9 && (res - 0.1333).abs() < 1e-3,
            "{res}"
        );
        let (_, res) = lag_resolution(&every(0.1, 150), 15.0).unwrap();
        assert!(res < verdict::LAG_GROWTH_LIMIT / 2.0, "{res}");
        assert_eq!(lag_resolution(&every(0.1, 3), 15.0), None);
    }
}
