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
    pub lag_timeline: Vec<super::observe::LagSample>,
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
                "  * to the record's producer timestamp: when the front door handed it to Kafka, \
                 not when Kafka confirmed it. A gateway PUBACK waits for that confirmation, so \
                 publish→PUBACK bounds publish→confirmed."
            );
        }
        if let Some(line) = self.kafka_line() {
            println!("{line}");
            if !self.first_gaps.is_empty() {
                println!("first gaps: {:?}", self.first_gaps);
            }
        }
        if let Some(b) = &self.baseline {
            b.print();
        }
    }
}

/// One `--slo` term: `p99<50ms`, `puback_p99<20ms`, `rate>=0.95`, `lost=0`.
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
            const KNOWN: [&str; 6] = ["p50", "p95", "p99", "max", "rate", "lost"];
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
