//! What each step shows besides the load test's own numbers: the pipeline's counters from
//! Sluice's `/metrics` (what each stage moved) and the CPU and resident memory of every Sluice
//! process on this machine (from `/proc`).

use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// The stage counters a step compares before and after.
pub const STAGES: [(&str, &str); 4] = [
    ("front door in", "sluice_ingest_messages_in_total"),
    ("into Kafka", "sluice_ingest_produced_total"),
    ("routed", "sluice_router_consumed_total"),
    ("sink rows", "sluice_rule_action_rows_total"),
];

/// Counter totals (each summed over its labels) and process readings at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    at: Instant,
    counters: BTreeMap<String, f64>,
    procs: BTreeMap<u32, (u64, u64)>,
}

/// What moved between two snapshots.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageRates {
    /// Per second, by [`STAGES`] name; absent when `/metrics` did not answer.
    pub rates: BTreeMap<String, f64>,
    /// CPU cores the Sluice processes used (all together) over the step.
    pub cpu_cores: f64,
    /// Their resident memory at the end, MiB (all together).
    pub rss_mib: f64,
    pub processes: usize,
    /// The same, per Sluice process (by pid).
    pub per_process: BTreeMap<u32, ProcessUse>,
}

/// One process's share of a step.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcessUse {
    pub cpu_cores: f64,
    pub rss_mib: f64,
}

pub async fn snapshot(client: &reqwest::Client, sluice_url: &str) -> Snapshot {
    let req = crate::observe::api_get(client, sluice_url, "/metrics");
    let text = match req.send().await {
        Ok(r) if r.status().is_success() => r.text().await.unwrap_or_default(),
        _ => String::new(),
    };
    Snapshot {
        at: Instant::now(),
        counters: totals(&text),
        procs: sluice_processes(),
    }
}

/// Prometheus text → each series' value summed by metric name.
pub fn totals(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        if let Ok(v) = value.parse::<f64>() {
            *out.entry(name.to_string()).or_insert(0.0) += v;
        }
    }
    out
}

impl Snapshot {
    pub fn rates_since(&self, before: &Snapshot) -> StageRates {
        let secs = self.at.duration_since(before.at).as_secs_f64().max(1e-3);
        let rates = STAGES
            .iter()
            .filter_map(|(stage, metric)| {
                let (a, b) = (before.counters.get(*metric)?, self.counters.get(*metric)?);
                Some((stage.to_string(), (b - a).max(0.0) / secs))
            })
            .collect();
        let per_process: BTreeMap<u32, ProcessUse> = self
            .procs
            .iter()
            .map(|(pid, (t, rss))| {
                let used = t.saturating_sub(before.procs.get(pid).map_or(0, |p| p.0));
                let cpu_cores = used as f64 / clock_ticks_per_s() / secs;
                (
                    *pid,
                    ProcessUse {
                        cpu_cores,
                        rss_mib: *rss as f64 / 1024.0,
                    },
                )
            })
            .collect();
        StageRates {
            rates,
            cpu_cores: per_process.values().map(|p| p.cpu_cores).sum(),
            rss_mib: per_process.values().map(|p| p.rss_mib).sum(),
            processes: per_process.len(),
            per_process,
        }
    }
}

/// Samples the Sluice processes' total resident memory (MiB) every second until `stop`:
/// (seconds since `started`, MiB), nothing when no Sluice process runs on this machine.
pub fn watch_rss(
    started: Instant,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::sync::Arc<std::sync::Mutex<Vec<(f64, f64)>>> {
    let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let samples = out.clone();
    tokio::spawn(async move {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let procs = tokio::task::spawn_blocking(sluice_processes)
                .await
                .unwrap_or_default();
            if !procs.is_empty() {
                let mib = procs.values().map(|p| p.1).sum::<u64>() as f64 / 1024.0;
                let mut s = samples.lock().unwrap_or_else(|e| e.into_inner());
                s.push((started.elapsed().as_secs_f64(), mib));
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
    out
}

/// pid → (CPU ticks used so far, resident KiB) of every process running the `sluice` binary,
/// except this one (the load generator is `sluice loadtest`).
fn sluice_processes() -> BTreeMap<u32, (u64, u64)> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return BTreeMap::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (comm, ticks) = parse_stat(&stat)?;
            if comm != "sluice" {
                return None;
            }
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let rss = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0);
            Some((pid, (ticks, rss)))
        })
        .collect()
}

/// `/proc/<pid>/stat` → (comm, utime + stime in clock ticks).
fn parse_stat(stat: &str) -> Option<(&str, u64)> {
    // `pid (comm) state …`: comm may hold spaces and parens, so split at the last paren.
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are the 12th and 13th after the comm.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((comm, ticks))
}

fn clock_ticks_per_s() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_every_series_of_a_metric() {
        let text = "# HELP x\nsluice_rule_action_rows_total{rule=\"a\",action=\"p\"} 10\n\
                    sluice_rule_action_rows_total{rule=\"b\",action=\"q\"} 5\nsluice_router_consumed_total 7\n";
        let t = totals(text);
        assert_eq!(t["sluice_rule_action_rows_total"], 15.0);
        assert_eq!(t["sluice_router_consumed_total"], 7.0);
    }

    #[test]
    fn stat_gives_the_command_and_its_cpu_ticks() {
        let stat = "4242 (sl (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 31 0 0 20 0 9 0";
        assert_eq!(parse_stat(stat), Some(("sl (x) y", 281)));
        assert_eq!(parse_stat("4242 (sluice) S 1"), None, "truncated");
    }
}
