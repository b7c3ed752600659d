//! What the steps mean: which stage gave out first (with its evidence), and how many replicas
//! of each stage a target rate needs. Pure functions of the measured steps.

use super::evidence::StageRates;
use crate::report::Latency;
use serde::Serialize;

/// A step's lag growth at or above this share of the offered rate means the routers fall
/// behind (the default `lag_growth<0.05` objective).
pub const LAG_GROWTH_LIMIT: f64 = 0.05;
/// Publishers reaching less than this share of the offered rate: the front door pushes back.
pub const RATE_LIMIT: f64 = 0.95;

/// One step of the search, as measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Step {
    pub offered: f64,
    /// Publishes per second the load generator got out (QoS 1: within its in-flight window).
    pub achieved: f64,
    pub secs: f64,
    /// Seconds since the search began, when the step began.
    pub started_s: f64,
    pub puback: Latency,
    pub publish_to_kafka: Option<Latency>,
    pub lost: Option<u64>,
    pub lag_growth: Option<f64>,
    pub peak_lag: Option<u64>,
    pub stages: StageRates,
    /// Objectives missed (empty: sustainable).
    pub violated: Vec<String>,
    pub sustainable: bool,
}

/// The stage that gave out first and why we say so.
#[derive(Debug, Clone, Serialize)]
pub struct Limit {
    pub stage: String,
    pub evidence: String,
}

/// Names the stage that gave out in `failed` (the lowest failed step above the knee).
pub fn limiting_stage(failed: &Step, cores: usize) -> Limit {
    let rate = |name: &str| failed.stages.rates.get(name).copied();
    let fmt = |r: Option<f64>| r.map_or("-".into(), |r| format!("{r:.0}/s"));
    let (stage, mut evidence) = if failed.lag_growth.is_some_and(|g| g >= LAG_GROWTH_LIMIT) {
        (
            "router",
            format!(
                "consumer lag grew by {:.0} % of the offered rate (peak {}); routed {} while {} went into Kafka",
                failed.lag_growth.unwrap_or(0.0) * 100.0,
                failed.peak_lag.map_or("-".into(), |l| l.to_string()),
                fmt(rate("routed")),
                fmt(rate("into Kafka")),
            ),
        )
    } else if failed.lost.is_some_and(|l| l > 0) {
        (
            "front door → Kafka",
            format!(
                "{} acknowledged publishes never reached Kafka",
                failed.lost.unwrap_or(0)
            ),
        )
    } else if failed.achieved < failed.offered * RATE_LIMIT
        || failed.violated.iter().any(|v| v.starts_with("puback_"))
    {
        let why = if failed.achieved < failed.offered * RATE_LIMIT {
            format!(
                "the fleet got out {:.0} of {:.0} msg/s:",
                failed.achieved, failed.offered
            )
        } else {
            format!("the fleet got its {:.0} msg/s out, but", failed.offered)
        };
        (
            "front door (MQTT)",
            format!(
                "{why} PUBACKs queued (p99 {:.1} ms): the front door acknowledged {} and the \
                 fleet's in-flight window filled",
                failed.puback.p99_ms,
                fmt(rate("front door in")),
            ),
        )
    } else if !failed.violated.is_empty() {
        (
            "Kafka confirmation",
            format!(
                "rate and lag held, but {} (publish→Kafka p99 {})",
                failed.violated.join("; "),
                failed
                    .publish_to_kafka
                    .as_ref()
                    .map_or("-".into(), |l| format!("{:.1} ms", l.p99_ms)),
            ),
        )
    } else {
        ("none", "no step failed".to_string())
    };
    let cpu = failed.stages.cpu_cores;
    if failed.stages.processes > 0 {
        let each: Vec<String> = failed
            .stages
            .per_process
            .iter()
            .map(|(pid, p)| format!("pid {pid}: {:.1} cores, {:.0} MiB", p.cpu_cores, p.rss_mib))
            .collect();
        evidence.push_str(&format!(
            "; the {} Sluice process(es) used {cpu:.1} of {cores} cores{} ({})",
            failed.stages.processes,
            if cpu >= 0.85 * cores as f64 {
                ", CPU-bound: more cores or more machines"
            } else {
                ""
            },
            each.join("; ")
        ));
    }
    Limit {
        stage: stage.into(),
        evidence,
    }
}

/// Replicas for a target rate.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub target_rate: f64,
    pub headroom: f64,
    /// Per-replica capacity used, msg/s: the knee, or what the stage moved in the failed step
    /// when that was more (a stage that did not give out showed at least that much).
    pub gateway_capacity: f64,
    pub router_capacity: f64,
    pub gateways: u64,
    pub routers: u64,
    /// Raw-topic partitions: at least one per router (a router without one is idle).
    pub partitions: u64,
    /// KEDA kafka scaler `lagThreshold`: the lag one router clears in `LAG_TARGET_S`.
    pub keda_lag_threshold: u64,
    pub notes: Vec<String>,
}

/// How many seconds of backlog the KEDA threshold allows per router.
pub const LAG_TARGET_S: f64 = 10.0;

/// Sizes each stage for `target` msg/s with `headroom` (0.3: 30 % spare) from the measured
/// knee of a deployment with `routers_now` routers and `partitions_now` partitions.
pub fn plan(
    target: f64,
    headroom: f64,
    knee: f64,
    failed: Option<&Step>,
    routers_now: u64,
    partitions_now: u64,
) -> Plan {
    let moved = |name: &str| {
        failed
            .and_then(|f| f.stages.rates.get(name).copied())
            .unwrap_or(0.0)
    };
    let routers_now = routers_now.max(1) as f64;
    let gateway_capacity = knee.max(moved("front door in"));
    let router_capacity = knee.max(moved("routed")) / routers_now;
    let need = target * (1.0 + headroom);
    let gateways = (need / gateway_capacity).ceil().max(1.0) as u64;
    let routers = (need / router_capacity).ceil().max(1.0) as u64;
    let partitions = routers.max(partitions_now);
    let mut notes = vec![format!(
        "capacities were measured with every stage on this machine's cores; on separate \
         machines each stage has more, so the plan errs large"
    )];
    if routers > partitions_now {
        notes.push(format!(
            "create the raw topic with at least {routers} partitions (now {partitions_now}): \
             routers beyond the partition count stay idle"
        ));
    }
    Plan {
        target_rate: target,
        headroom,
        gateway_capacity,
        router_capacity,
        gateways,
        routers,
        partitions,
        keda_lag_threshold: (router_capacity * LAG_TARGET_S).round().max(1.0) as u64,
        notes,
    }
}

/// `--plan-for`: `50000` (msg/s) or `5x` (a multiple of the knee).
pub fn parse_target(spec: &str, knee: f64) -> Result<f64, String> {
    let spec = spec.trim();
    let (number, times) = match spec.strip_suffix(['x', 'X']) {
        Some(n) => (n, true),
        None => (spec, false),
    };
    let v: f64 = number
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .ok_or_else(|| {
            format!("--plan-for '{spec}': a rate (50000) or a multiple of the knee (5x)")
        })?;
    Ok(if times { v * knee } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(offered: f64) -> Step {
        let mut s = Step {
            offered,
            achieved: offered,
            lag_growth: Some(0.0),
            lost: Some(0),
            ..Default::default()
        };
        s.stages.rates.insert("front door in".into(), offered);
        s.stages.rates.insert("routed".into(), offered);
        s
    }

    #[test]
    fn the_stage_whose_lag_grew_is_named() {
        let mut s = step(16_000.0);
        s.lag_growth = Some(0.45);
        s.stages.rates.insert("routed".into(), 8_800.0);
        s.violated = vec!["lag_growth<0.05 (measured 0.450)".into()];
        let limit = limiting_stage(&s, 2);
        assert_eq!(limit.stage, "router");
        assert!(limit.evidence.contains("8800/s"), "{}", limit.evidence);
    }

    #[test]
    fn pushback_at_the_door_and_loss_are_told_apart() {
        let mut s = step(40_000.0);
        s.achieved = 22_000.0;
        s.stages.processes = 1;
        s.stages.cpu_cores = 1.9;
        let limit = limiting_stage(&s, 2);
        assert_eq!(limit.stage, "front door (MQTT)");
        assert!(limit.evidence.contains("CPU-bound"), "{}", limit.evidence);
        s.lost = Some(3);
        assert_eq!(limiting_stage(&s, 2).stage, "front door → Kafka");
    }

    #[test]
    fn a_plan_sizes_each_stage_and_keeps_routers_within_partitions() {
        let mut failed = step(12_000.0);
        failed.stages.rates.insert("routed".into(), 9_000.0);
        failed.stages.rates.insert("front door in".into(), 12_000.0);
        let p = plan(40_000.0, 0.3, 8_000.0, Some(&failed), 1, 4);
        // 52 000 needed: gateways at 12 000 each → 5; routers at 9 000 each → 6.
        assert_eq!((p.gateways, p.routers, p.partitions), (5, 6, 6));
        assert_eq!(p.keda_lag_threshold, 90_000);
        assert!(
            p.notes.iter().any(|n| n.contains("at least 6 partitions")),
            "{:?}",
            p.notes
        );
        assert_eq!(parse_target("5x", 8_000.0), Ok(40_000.0));
        assert_eq!(parse_target("25000", 8_000.0), Ok(25_000.0));
        assert!(parse_target("fast", 8_000.0).is_err());
    }
}
