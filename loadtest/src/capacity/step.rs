//! One search step against the running pipeline: the warm-up, a step's run with the stage
//! counters around it, the catch-up after it, and what `/scaling` says about the group.

use super::evidence;
use super::verdict::Step;
use super::FindMax;
use crate::report::{self, Objective};
use crate::{observe::LagSample, profile::Stage, Options};
use std::time::{Duration, Instant};

pub(super) async fn warm_up(base: &Options, rate: f64) -> anyhow::Result<()> {
    let opts = one_stage(base, "warm-up".into(), rate.max(1.0), 5.0, 5);
    crate::measure(&opts).await.map(drop)
}

/// `base` with one flat stage and nothing written: a search run is reported by the search.
fn one_stage(base: &Options, name: String, rate: f64, secs: f64, drain_secs: u64) -> Options {
    let mut opts = base.clone();
    opts.stages = vec![Stage {
        name,
        rate: Some(rate),
        from: None,
        to: None,
        secs,
    }];
    opts.drain_secs = drain_secs;
    opts.report = None;
    opts.html = None;
    opts.baseline = None;
    opts
}

/// One step at `rate`: the run, the stage counters around it, and its lag samples (shifted to
/// the search's clock).
pub(super) async fn run_step(
    base: &Options,
    fm: &FindMax,
    url: &str,
    client: &reqwest::Client,
    objectives: &[Objective],
    rate: f64,
    began: &Instant,
) -> anyhow::Result<(Step, Vec<LagSample>)> {
    let opts = one_stage(
        base,
        format!("{rate:.0}/s"),
        rate,
        fm.step_secs,
        fm.step_drain_secs,
    );
    let started_s = began.elapsed().as_secs_f64();
    let before = evidence::snapshot(client, url).await;
    // Stage rates over the publishing window only: the drain after it would dilute them.
    let at_end = {
        let (client, url, secs) = (client.clone(), url.to_string(), fm.step_secs);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            evidence::snapshot(&client, &url).await
        })
    };
    let r = crate::measure(&opts).await?;
    let after = at_end.await?;
    let violated = report::check_slo(&r, objectives);
    let lag = r
        .lag_timeline
        .iter()
        .map(|l| LagSample {
            at_s: l.at_s + started_s,
            ..*l
        })
        .collect();
    let step = Step {
        offered: rate,
        achieved: r.stages.first().map_or(0.0, |s| s.achieved_rate),
        secs: fm.step_secs,
        started_s,
        puback: r.puback.clone(),
        publish_to_kafka: r.publish_to_kafka.clone(),
        lost: r.lost,
        lag_growth: r.lag_growth,
        peak_lag: r.peak_lag,
        stages: after.rates_since(&before),
        sustainable: violated.is_empty(),
        violated,
    };
    Ok((step, lag))
}

/// Waits (at most 60 s) until the routers have caught up with a step's backlog, so the next
/// step starts from a flat line rather than inheriting this one's lag.
pub(super) async fn catch_up(client: &reqwest::Client, url: &str, rate: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let lag = scaling(client, url)
            .await
            .and_then(|v| v["router"]["lag_total"].as_f64());
        if lag.is_some_and(|l| l <= (rate * 1.0).max(100.0)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// (routers in the group, raw-topic partitions) from `/scaling`.
pub(super) async fn group_now(client: &reqwest::Client, url: &str) -> (u64, u64) {
    let v = scaling(client, url).await.unwrap_or_default();
    let routers = v["router"]["current_replicas"].as_u64().unwrap_or(1);
    let partitions = v["router"]["lag_per_partition"]
        .as_object()
        .map_or(1, |p| p.len() as u64);
    (routers, partitions)
}

async fn scaling(client: &reqwest::Client, url: &str) -> Option<serde_json::Value> {
    let req = crate::observe::api_get(client, url, "/scaling");
    let body = req.send().await.ok()?.bytes().await.ok()?;
    serde_json::from_slice(&body).ok()
}
