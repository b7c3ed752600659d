//! The load test's report (table and JSON) and the `--slo` check.

use hdrhistogram::Histogram;
use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StageReport {
    pub name: String,
    pub secs: f64,
    pub target_rate: f64,
    pub achieved_rate: f64,
    /// achieved ÷ target.
    pub rate_ratio: f64,
    pub peak_lag: Option<u64>,
    pub max_desired_replicas: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub broker: String,
    pub devices: usize,
    pub qos: u8,
    pub stages: Vec<StageReport>,
    pub sent: u64,
    pub acked: u64,
    pub errors: u64,
    pub puback: Latency,
    /// Publish → read from the raw topic; absent without `--kafka`.
    pub publish_to_kafka: Option<Latency>,
    pub kafka_records: Option<u64>,
    /// Acknowledged (QoS 1) messages never seen in Kafka.
    pub lost: Option<u64>,
    /// Records/s still arriving in Kafka when the drain window ended short of all of them:
    /// then `lost` counts late records too.
    pub kafka_still_arriving_per_s: Option<f64>,
    pub duplicates: Option<u64>,
    /// Devices with at least one missing sequence number, and the first few (device, seq).
    pub devices_with_gaps: Option<u64>,
    pub first_gaps: Vec<(String, u64)>,
    pub peak_lag: Option<u64>,
    /// How fast consumer lag grew while publishing, as a share of the offered rate (least
    /// squares over the last three quarters of the publishing window): 0 when the routers keep
    /// up, 0.5 when half of what arrives stays behind. Absent without `--sluice-url`.
    pub lag_growth: Option<f64>,
    pub lag_timeline: Vec<super::observe::LagSample>,
    /// Resident memory of the Sluice processes on this machine, (seconds, MiB), every second.
    pub rss_timeline: Vec<(f64, f64)>,
    /// Its least-squares slope over the last two thirds of the publishing window, as % of
    /// the mean level per minute (absent with no Sluice process on this machine).
    pub rss_growth: Option<f64>,
    pub baseline: Option<super::baseline::Baselines>,
}

impl Report {
    /// What reached Kafka: records, lost, duplicates, gaps, and whether the missing ones were
    /// still arriving when the drain window closed.
    fn kafka_line(&self) -> Option<String> {
        let (lost, dups) = (self.lost?, self.duplicates?);
        let late = match self.kafka_still_arriving_per_s {
            Some(rate) if lost > 0 && rate > 0.0 => format!(
                " — still arriving at {rate:.0}/s when the drain window closed: late, maybe \
                 not lost (raise --drain-secs)"
            ),
            _ => String::new(),
        };
        Some(format!(
            "in Kafka: {} records, lost {lost} (acked, never seen){late}, duplicates {dups}, devices with gaps {}",
            self.kafka_records.unwrap_or(0),
            self.devices_with_gaps.unwrap_or(0)
        ))
    }

    pub fn print(&self) {
        println!(
            "\n{:<10} {:>7} {:>10} {:>10} {:>7} {:>10} {:>8}",
            "stage", "secs", "target/s", "achieved/s", "ratio", "peak lag", "advice"
        );
        for s in &self.stages {
            let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
            println!(
                "{:<10} {:>7.1} {:>10.0} {:>10.0} {:>7.3} {:>10} {:>8}",
                s.name,
                s.secs,
                s.target_rate,
                s.achieved_rate,
                s.rate_ratio,
                opt(s.peak_lag),
                opt(s.max_desired_replicas)
            );
        }
        println!(
            "\nsent {}  acked {}  errors {}",
            self.sent, self.acked, self.errors
        );
        let line = |name: &str, l: &Latency| {
            println!(
                "{name:<18} n={:<9} p50 {:>8.2} ms  p95 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms",
                l.count, l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms
            )
        };
        line("publish→PUBACK", &self.puback);
        if let Some(k) = &self.publish_to_kafka {
            line("publish→Kafka*", k);
            println!(
                "  * to the record's timestamp: when the front door received the message (Sluice \
                 writes the receive time as the Kafka timestamp), not when Kafka confirmed it. A \
                 gateway PUBACK waits for that confirmation, so publish→PUBACK bounds \
                 publish→confirmed."
            );
        }
        if let Some(line) = self.kafka_line() {
            println!("{line}");
            if !self.first_gaps.is_empty() {
                println!("first gaps: {:?}", self.first_gaps);
            }
        }
        if let Some(g) = self.lag_growth {
            println!(
                "lag growth {:.1} % of the offered rate ({})",
                g * 100.0,
                if g < 0.05 {
                    "flat: the routers keep up"
                } else {
                    "growing: the routers fall behind"
                }
            );
        }
        if let Some(g) = self.rss_growth {
            let last = self.rss_timeline.last().map_or(0.0, |r| r.1);
            println!("resident memory {last:.0} MiB, growing {g:.2} % per minute");
        }
        if let Some(b) = &self.baseline {
            b.print();
        }
    }
}

/// How fast lag grew while publishing, divided by the mean offered rate. Lag read from
/// committed offsets is a sawtooth: it climbs by a commit interval's worth of records and
/// drops at each commit, so its *floor* is the backlog. The last two thirds of the publishing
/// window (the first third is the climb from 0 to the working level) are cut into four
/// buckets, and the slope is taken through each bucket's lowest reading: flat when the routers
/// keep up, climbing at the shortfall when not. Each bucket must span a commit interval (steps
/// of 6 commit intervals or more).
pub fn lag_growth(
    samples: &[super::observe::LagSample],
    publish_secs: f64,
    stages: &[super::profile::Stage],
) -> Option<f64> {
    const BUCKETS: usize = 4;
    let from = publish_secs / 3.0;
    let width = (publish_secs - from) / BUCKETS as f64;
    let mut floors: Vec<Option<(f64, f64)>> = vec![None; BUCKETS];
    for s in samples
        .iter()
        .filter(|s| s.at_s >= from && s.at_s <= publish_secs)
    {
        let b = (((s.at_s - from) / width) as usize).min(BUCKETS - 1);
        let lag = s.lag as f64;
        if floors[b].is_none_or(|f| lag < f.1) {
            floors[b] = Some((s.at_s, lag));
        }
    }
    let floors: Vec<(f64, f64)> = floors.into_iter().flatten().collect();
    let offered: f64 = stages.iter().map(|s| s.total()).sum::<f64>() / publish_secs.max(1e-9);
    if floors.len() < 3 || offered <= 0.0 {
        return None;
    }
    Some(slope(&floors) / offered)
}

/// Slope of resident memory over the last two thirds of the window, % of its mean per minute.
pub fn rss_growth(rss: &[(f64, f64)], publish_secs: f64) -> Option<f64> {
    let window: Vec<(f64, f64)> = rss
        .iter()
        .copied()
        .filter(|r| r.0 >= publish_secs / 3.0 && r.0 <= publish_secs && r.1 > 0.0)
        .collect();
    if window.len() < 4 {
        return None;
    }
    let mean = window.iter().map(|r| r.1).sum::<f64>() / window.len() as f64;
    Some(slope(&window) * 60.0 / mean * 100.0)
}

/// Least-squares slope of y over x.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (sxy, sxx) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
    });
    if sxx > 0.0 {
        sxy / sxx
    } else {
        0.0
    }
}

/// One `--slo` term: `p99<50ms`, `puback_p99<20ms`, `rate>=0.95`, `lost=0`,
/// `lag_growth<0.05` (needs `--sluice-url`), `rss_growth<1` (% per minute, needs a Sluice
/// process on this machine).
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    pub metric: String,
    pub op: String,
    pub value: f64,
}

pub fn parse_slo(spec: &str) -> Result<Vec<Objective>, String> {
    spec.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|term| {
            let op = ["<=", ">=", "<", ">", "="]
                .into_iter()
                .find(|op| term.contains(op))
                .ok_or_else(|| format!("SLO '{term}': needs <, <=, >, >= or ="))?;
            let (metric, value) = term.split_once(op).unwrap_or_default();
            let value = value.trim().trim_end_matches("ms");
            let value: f64 = value
                .parse()
                .map_err(|_| format!("SLO '{term}': '{value}' is not a number"))?;
            let metric = metric.trim().to_string();
            const KNOWN: [&str; 8] = [
                "p50",
                "p95",
                "p99",
                "max",
                "rate",
                "lost",
                "lag_growth",
                "rss_growth",
            ];
            let base = metric.strip_prefix("puback_").unwrap_or(&metric);
            if !KNOWN.contains(&base) {
                return Err(format!("SLO '{term}': unknown metric '{metric}'"));
            }
            Ok(Objective {
                metric,
                op: op.to_string(),
                value,
            })
        })
        .collect()
}

/// The violated objectives, each with the measured value. Latency terms apply to
/// publish→Kafka when measured, else to publish→PUBACK; `puback_` ones always to PUBACK;
/// `rate` is the worst stage's achieved ÷ target.
pub fn check_slo(report: &Report, objectives: &[Objective]) -> Vec<String> {
    let mut violated = Vec::new();
    // A run in which nothing got through measured nothing: that is a failure, whatever the
    // objectives say (a wrong port once printed a table of ratios 1.000 and exited 0).
    if report.qos > 0 && report.acked == 0 {
        violated.push(format!(
            "no publish was acknowledged ({} sent, {} errors): is an MQTT endpoint listening at \
             {} (--broker), and does it accept this client's login?",
            report.sent, report.errors, report.broker
        ));
    }
    for o in objectives {
        let (latency, name) = match o.metric.strip_prefix("puback_") {
            Some(n) => (&report.puback, n),
            None => (
                report.publish_to_kafka.as_ref().unwrap_or(&report.puback),
                o.metric.as_str(),
            ),
        };
        let measured = match name {
            "p50" => latency.p50_ms,
            "p95" => latency.p95_ms,
            "p99" => latency.p99_ms,
            "max" => latency.max_ms,
            "rate" => report
                .stages
                .iter()
                .map(|s| s.rate_ratio)
                .fold(f64::INFINITY, f64::min),
            // Unmeasured counts as missed: an objective nobody checked is not met.
            "lag_growth" => report.lag_growth.unwrap_or(f64::INFINITY),
            "rss_growth" => report.rss_growth.unwrap_or(f64::INFINITY),
            _ => report.lost.unwrap_or(u64::MAX) as f64,
        };
        let ok = match o.op.as_str() {
            "<" => measured < o.value,
            "<=" => measured <= o.value,
            ">" => measured > o.value,
            ">=" => measured >= o.value,
            _ => measured == o.value,
        };
        if !ok {
            violated.push(format!(
                "{}{}{} (measured {measured:.3})",
                o.metric, o.op, o.value
            ));
        }
    }
    violated
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::LagSample;

    fn lag_at(at_s: f64, lag: u64) -> LagSample {
        LagSample {
            at_s,
            lag,
            desired_replicas: 1,
        }
    }

    #[test]
    fn lag_growth_is_the_slope_over_the_offered_rate_after_the_first_third() {
        let stages = crate::profile::parse("steady:1000:20").unwrap();
        // Warm-up jump in the first third, then +100 records/s: 10 % of 1000/s.
        let mut samples = vec![lag_at(1.0, 0), lag_at(3.0, 5000), lag_at(6.0, 9000)];
        samples.extend((7..=20).map(|t| lag_at(t as f64, 2000 + 100 * t)));
        let g = lag_growth(&samples, 20.0, &stages).unwrap();
        assert!((g - 0.1).abs() < 1e-9, "{g}");
        // A sawtooth around a level (commits every 2 s) is flat.
        // A sawtooth around a level (commits every 3 s, 1 000 records/s) is flat.
        let saw: Vec<LagSample> = (28..=80)
            .map(|q| lag_at(q as f64 / 4.0, 250 * (q % 12) as u64))
            .collect();
        let flat = lag_growth(&saw, 20.0, &stages).unwrap();
        assert!(flat.abs() < 0.01, "{flat}");
        assert_eq!(
            lag_growth(&samples[..5], 20.0, &stages),
            None,
            "too few samples"
        );
    }

    #[test]
    fn rss_growth_is_percent_of_the_level_per_minute() {
        // 100 MiB growing 1 MiB a minute after a warm-up jump in the first third.
        let mut rss: Vec<(f64, f64)> = vec![(0.0, 10.0), (60.0, 90.0)];
        rss.extend(
            (200..=600)
                .step_by(10)
                .map(|t| (t as f64, 100.0 + t as f64 / 60.0)),
        );
        let g = rss_growth(&rss, 600.0).unwrap();
        assert!((g - 0.95).abs() < 0.05, "{g}");
        let flat: Vec<(f64, f64)> = (200..=600)
            .map(|t| (t as f64, 100.0 + (t % 7) as f64))
            .collect();
        assert!(rss_growth(&flat, 600.0).unwrap().abs() < 0.2);
    }

    #[test]
    fn slo_terms_parse_and_check_against_the_report() {
        let slo = parse_slo("p99<50ms, rate>=0.95,lost=0,puback_max<=1").unwrap();
        assert_eq!(slo.len(), 4);
        assert!(parse_slo("p42<1").is_err());
        assert!(parse_slo("p99~1").is_err());
        let report = Report {
            puback: Latency {
                p99_ms: 3.0,
                max_ms: 9.0,
                ..Latency::default()
            },
            publish_to_kafka: Some(Latency {
                p99_ms: 40.0,
                ..Latency::default()
            }),
            stages: vec![StageReport {
                rate_ratio: 0.97,
                ..StageReport::default()
            }],
            lost: Some(0),
            ..Report::default()
        };
        let late = Report {
            lost: Some(7),
            duplicates: Some(0),
            kafka_still_arriving_per_s: Some(1234.4),
            ..Report::default()
        };
        let line = late.kafka_line().unwrap();
        assert!(
            line.contains("lost 7") && line.contains("still arriving at 1234/s"),
            "{line}"
        );
        let stalled = Report {
            kafka_still_arriving_per_s: Some(0.0),
            ..late
        };
        assert!(!stalled.kafka_line().unwrap().contains("still arriving"));
        let violated = check_slo(&report, &slo);
        assert_eq!(violated.len(), 1, "{violated:?}");
        assert!(violated[0].starts_with("puback_max<=1"));
        assert_eq!(check_slo(&report, &parse_slo("p99<1ms").unwrap()).len(), 1);
    }

    #[test]
    fn a_run_with_no_acknowledgement_fails_even_without_objectives() {
        let nothing = Report {
            broker: "127.0.0.1:21777".into(),
            qos: 1,
            sent: 300,
            errors: 200,
            ..Report::default()
        };
        let violated = check_slo(&nothing, &[]);
        assert_eq!(violated.len(), 1);
        assert!(
            violated[0].contains("no publish was acknowledged")
                && violated[0].contains("127.0.0.1:21777")
        );
        let fine = Report {
            acked: 300,
            ..nothing
        };
        assert!(check_slo(&fine, &[]).is_empty());
    }
}
