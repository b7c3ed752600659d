//! Load profiles: the target publish rate over time, as a list of stages.
//!
//! - `steady:RATE:SECS`
//! - `ramp:FROM:TO:SECS`
//! - `soak:RATE:MINUTES` — RATE held for MINUTES; the run fails when consumer lag or the Sluice
//!   processes' resident memory trends upward (see [`soak_objectives`]).
//! - `spike:BASE:K:BEFORE:SPIKE:AFTER` — BASE msg/s, then ×K for SPIKE seconds (the promotional
//!   event), then BASE again; the durations in seconds.
//! - a stages file (TOML): `[[stage]] name = "warm", from = 100, to = 1000, secs = 30` (`rate`
//!   for a flat stage).

use serde::Deserialize;

/// One stage: the rate goes linearly from `from` to `to` over `secs`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub name: String,
    #[serde(default)]
    pub rate: Option<f64>,
    #[serde(default)]
    pub from: Option<f64>,
    #[serde(default)]
    pub to: Option<f64>,
    pub secs: f64,
}

impl Stage {
    fn flat(name: &str, rate: f64, secs: f64) -> Stage {
        Stage {
            name: name.into(),
            rate: Some(rate),
            from: None,
            to: None,
            secs,
        }
    }

    pub fn start_rate(&self) -> f64 {
        self.from.or(self.rate).unwrap_or(0.0)
    }

    pub fn end_rate(&self) -> f64 {
        self.to.or(self.rate).unwrap_or(0.0)
    }

    /// Messages the stage asks for in its first `t` seconds (the rate's integral).
    pub fn target_by(&self, t: f64) -> f64 {
        let t = t.clamp(0.0, self.secs);
        let (a, b) = (self.start_rate(), self.end_rate());
        a * t + (b - a) * t * t / (2.0 * self.secs.max(f64::EPSILON))
    }

    pub fn total(&self) -> f64 {
        self.target_by(self.secs)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StagesFile {
    stage: Vec<Stage>,
}

fn numbers(spec: &str, parts: &[&str], n: usize) -> Result<Vec<f64>, String> {
    if parts.len() != n {
        return Err(format!(
            "profile '{spec}': expected {n} numbers after the kind"
        ));
    }
    parts
        .iter()
        .map(|p| {
            p.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| format!("profile '{spec}': '{p}' is not a number >= 0"))
        })
        .collect()
}

/// Parses a `--profile` spec into stages.
pub fn parse(spec: &str) -> Result<Vec<Stage>, String> {
    let mut parts = spec.split(':');
    let kind = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    let stages = match kind {
        "steady" => {
            let v = numbers(spec, &rest, 2)?;
            vec![Stage::flat("steady", v[0], v[1])]
        }
        "ramp" => {
            let v = numbers(spec, &rest, 3)?;
            vec![Stage {
                name: "ramp".into(),
                rate: None,
                from: Some(v[0]),
                to: Some(v[1]),
                secs: v[2],
            }]
        }
        "soak" => {
            let v = numbers(spec, &rest, 2)?;
            vec![Stage::flat("soak", v[0], v[1] * 60.0)]
        }
        "spike" => {
            let v = numbers(spec, &rest, 5)?;
            vec![
                Stage::flat("before", v[0], v[2]),
                Stage::flat("spike", v[0] * v[1], v[3]),
                Stage::flat("after", v[0], v[4]),
            ]
        }
        _ => {
            return Err(format!(
                "profile '{spec}': kind must be steady, ramp, spike or soak"
            ))
        }
    };
    check(stages)
}

/// A soak fails on trends, not on one sample: lag that grows (`lag_growth<0.05`) or resident
/// memory that grows by 1 % or more of its level per minute (`rss_growth<1`), each a slope over
/// the run's last two thirds. Added unless `--slo` names them.
pub fn soak_objectives(user: &[crate::report::Objective]) -> Vec<crate::report::Objective> {
    let mut all = user.to_vec();
    for (metric, value) in [("lag_growth", 0.05), ("rss_growth", 1.0)] {
        if !user.iter().any(|o| o.metric == metric) {
            all.push(crate::report::Objective {
                metric: metric.into(),
                op: "<".into(),
                value,
            });
        }
    }
    all
}

/// Reads a stages file.
pub fn from_file(path: &std::path::Path) -> Result<Vec<Stage>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: StagesFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    check(file.stage)
}

fn check(stages: Vec<Stage>) -> Result<Vec<Stage>, String> {
    if stages.is_empty() {
        return Err("a profile needs at least one stage".into());
    }
    for s in &stages {
        if s.secs <= 0.0 || (s.rate.is_none() && (s.from.is_none() || s.to.is_none())) {
            return Err(format!(
                "stage '{}': needs secs > 0 and `rate` or `from` + `to`",
                s.name
            ));
        }
    }
    Ok(stages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_soak_holds_its_rate_for_minutes_and_judges_trends() {
        let s = parse("soak:800:10").unwrap();
        assert_eq!((s.len(), s[0].secs, s[0].total()), (1, 600.0, 480_000.0));
        let user = crate::report::parse_slo("rss_growth<2").unwrap();
        let all = soak_objectives(&user);
        let terms: Vec<(String, f64)> = all.iter().map(|o| (o.metric.clone(), o.value)).collect();
        assert_eq!(
            terms,
            [("rss_growth".into(), 2.0), ("lag_growth".into(), 0.05)]
        );
    }

    #[test]
    fn profiles_parse_into_stages_with_the_right_message_counts() {
        let s = parse("steady:5000:60").unwrap();
        assert_eq!(s[0].total(), 300_000.0);
        let r = parse("ramp:0:1000:10").unwrap();
        assert_eq!(r[0].total(), 5_000.0);
        assert_eq!(r[0].target_by(5.0), 1_250.0);
        let p = parse("spike:1000:4:10:5:20").unwrap();
        let names: Vec<&str> = p.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["before", "spike", "after"]);
        assert_eq!(p[1].start_rate(), 4_000.0);
        assert!(parse("steady:fast:10").is_err());
        assert!(parse("wave:1:2").is_err());
        assert!(parse("steady:10:0").is_err());
    }
}
