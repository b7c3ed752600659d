//! What happens in the binary's own parts (stage supervision, the API), each one [`Event`]
//! that logs and counts; and [`CATALOG`], every crate's metric declarations together, from
//! which `/metrics` gets its `# HELP` lines.

use sluice_common::{Event, Metric};
use std::time::Duration;

sluice_common::metrics! {
    Counter STAGE_RESTARTS["stage"] = "sluice_stage_restarts_total", "Times a failed stage (ingest, router) was restarted by its supervisor";
    Counter STAGES_STOPPED["stage"] = "sluice_stage_stopped_total", "Times a stage was stopped for good: a configuration mistake, or a bug that kept panicking";
    Counter UNAUTHORIZED = "sluice_http_unauthorized_total", "API requests refused for a missing or unknown token";
    Counter BROWSER_REFUSED = "sluice_http_browser_refused_total", "API requests refused as a web page's: a Host not served without tokens, or a cross-origin write";
    Counter FORBIDDEN = "sluice_http_forbidden_total", "API requests refused for a role too low";
    Counter CONNECTIONS_REFUSED = "sluice_http_connections_refused_total", "API connections closed as accepted: the connection limit was reached";
}

/// Every metric Sluice exports, by the crate that declares it.
pub const CATALOG: &[&[&Metric]] = &[
    ALL,
    sluice_core::dead_letter::ALL,
    sluice_ingest::events::ALL,
    sluice_processors::events::ALL,
    sluice_router::events::ALL,
    sluice_sinks::events::ALL,
];

/// Registers the help text of every metric with the installed recorder.
pub fn describe_all() {
    for metric in CATALOG.iter().flat_map(|m| m.iter()) {
        metric.describe();
    }
}

/// The process started its roles: the counters of the parts it runs exist from now on (at 0),
/// so dashboards and alerting rules see them before anything happens; the parts it does not
/// run stay absent ("not in this process" rather than a false 0).
pub struct RolesStarted {
    pub ingest: bool,
    /// Ingest is the gateway (devices connect to Sluice), not a broker's subscriber.
    pub gateway: bool,
    pub router: bool,
}

impl Event for RolesStarted {
    fn emit(self) {
        let mut parts: Vec<&[&Metric]> = vec![ALL];
        if self.ingest {
            parts.push(sluice_ingest::events::ALL);
            STAGE_RESTARTS.count_with(&[("stage", "ingest".to_string())], 0);
            let stage = if self.gateway { "gateway" } else { "ingest" };
            dead_letters_exist(stage);
        }
        if self.router {
            parts.extend([
                sluice_processors::events::ALL,
                sluice_router::events::ALL,
                sluice_sinks::events::ALL,
            ]);
            STAGE_RESTARTS.count_with(&[("stage", "router".to_string())], 0);
            dead_letters_exist("router");
            sluice_router::events::RELOAD_FAILED.gauge_set(0.0);
            sluice_router::events::PARTITIONS_OWNED.gauge_set(0.0);
        }
        for metric in parts.into_iter().flatten() {
            metric.zero();
        }
    }
}

/// `sluice_dlq_total{stage}` at 0: dead letters are counted by stage *and reason*, and the
/// reasons appear with the first one, so without this series a dashboard (and the console)
/// could not tell "none yet" from "not counted here". The reason-labelled series add up to
/// the real total; this one stays 0.
fn dead_letters_exist(stage: &str) {
    let name = sluice_core::dead_letter::DEAD_LETTERED.name;
    metrics::counter!(name, "stage" => stage.to_string()).increment(0);
}

/// A stage failed (or stopped on its own) and is restarted after `delay`.
pub struct StageRestarting<'a> {
    pub stage: &'static str,
    pub reason: &'a str,
    pub delay: Duration,
}

impl Event for StageRestarting<'_> {
    fn emit(self) {
        tracing::error!(stage = self.stage, error = %self.reason, restart_in = ?self.delay,
            "stage failed; restarting it");
        STAGE_RESTARTS.count_with(&[("stage", self.stage.to_string())], 1);
    }
}

/// A stage failed in a way restarting cannot fix (a configuration mistake, or a bug that
/// kept panicking): it stays stopped, the rest of the process runs, `/readyz` says why.
pub struct StageStopped<'a> {
    pub stage: &'static str,
    pub reason: &'a str,
    pub why: &'a str,
}

impl Event for StageStopped<'_> {
    fn emit(self) {
        tracing::error!(stage = self.stage, error = %self.reason, "{}; the stage is not restarted", self.why);
        STAGES_STOPPED.count_with(&[("stage", self.stage.to_string())], 1);
    }
}

/// An API request was refused: no or an unknown token (`forbidden` false), or a role too low.
pub struct RequestRefused {
    pub forbidden: bool,
}

impl Event for RequestRefused {
    fn emit(self) {
        if self.forbidden {
            FORBIDDEN.count(1);
        } else {
            UNAUTHORIZED.count(1);
        }
    }
}

/// An API connection was closed as it was accepted: every slot was taken. Counted, not
/// logged: a flood would otherwise write a line per socket.
pub struct ApiConnectionRefused;

impl Event for ApiConnectionRefused {
    fn emit(self) {
        CONNECTIONS_REFUSED.count(1);
    }
}

/// A request refused by the Host or cross-origin check ([`crate::http`]'s `browser`).
pub struct BrowserRequestRefused<'a> {
    pub why: &'a str,
}

impl Event for BrowserRequestRefused<'_> {
    fn emit(self) {
        tracing::debug!(why = self.why, "API request refused as a web page's");
        BROWSER_REFUSED.count(1);
    }
}

#[cfg(test)]
mod tests {
    use super::CATALOG;
    use std::collections::{BTreeMap, BTreeSet};

    /// Every metric declared anywhere in the workspace is in the catalog (so it gets a
    /// `# HELP` line), once; and no code outside an `events` module touches a metric.
    #[test]
    fn every_declared_metric_is_catalogued_and_only_events_touch_metrics() {
        let catalogued: Vec<&str> = CATALOG
            .iter()
            .flat_map(|m| m.iter().map(|m| m.name))
            .collect();
        let unique: BTreeSet<&str> = catalogued.iter().copied().collect();
        assert_eq!(unique.len(), catalogued.len(), "a metric is declared twice");
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut declared = BTreeSet::new();
        let mut outside = Vec::new();
        let all = [DATA_PATH, &["src", "common/src", "loadtest/src"]].concat();
        for (file, text) in rust_files(&all) {
            // core's dead-letter module is the event ingest and the router share.
            let is_events = file.file_stem().is_some_and(|s| s == "events")
                || file.ends_with("core/src/dead_letter.rs");
            for line in text.lines() {
                if let Some(name) = declared_name(line) {
                    declared.insert(name);
                }
                let touches = touches_metric(line);
                let in_common = file.starts_with(root.join("common/src/event.rs"));
                if touches && !is_events && !in_common && !line.trim_start().starts_with("//") {
                    outside.push(format!("{}: {}", file.display(), line.trim()));
                }
            }
        }
        let missing: Vec<_> = declared
            .iter()
            .filter(|n| !unique.contains(n.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "declared but not in CATALOG: {missing:?}"
        );
        assert!(
            outside.is_empty(),
            "metrics touched outside an events module: {outside:#?}"
        );
    }

    /// Each labelled series is emitted with the label names its metric declares (so the
    /// catalog says what a series carries), and nothing on the data path logs a warning or an
    /// error except through an event (which also counts it).
    #[test]
    fn emits_use_declared_labels_and_the_data_path_logs_only_through_events() {
        let mut declared: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut emits: Vec<(String, String, Vec<String>)> = Vec::new();
        let mut raw_logs = Vec::new();
        let all = [DATA_PATH, &["src", "common/src"]].concat();
        for (file, text) in rust_files(&all) {
            let is_events = file.file_stem().is_some_and(|s| s == "events");
            let in_tests = file.components().any(|c| c.as_os_str() == "tests")
                || file.file_stem().is_some_and(|s| s == "tests");
            if let Some(d) = declarations(&text) {
                declared.extend(d);
            }
            let code: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            for (ident, labels) in labelled_emits(&code) {
                emits.push((file.display().to_string(), ident, labels));
            }
            let on_data_path = DATA_PATH
                .iter()
                .any(|d| file.to_string_lossy().contains(&format!("/{d}/")));
            if !on_data_path || is_events || in_tests {
                continue;
            }
            let production = text.split("#[cfg(test)]").next().unwrap_or("");
            for line in production.lines() {
                let t = line.trim_start();
                let logs = ["tracing::warn!(", "tracing::error!(", "warn!(", "error!("];
                // The log destination of alerts writes alerts: output, not an event.
                if logs.iter().any(|l| t.starts_with(l)) && !line.contains("\"sluice::alert\"") {
                    raw_logs.push(format!("{}: {}", file.display(), t));
                }
            }
        }
        let wrong: Vec<_> = emits
            .iter()
            .filter(|(_, ident, labels)| {
                let mut want = declared.get(ident).cloned().unwrap_or_default();
                let mut got = labels.clone();
                want.sort();
                got.sort();
                want != got
            })
            .collect();
        assert!(!emits.is_empty());
        assert!(
            wrong.is_empty(),
            "emitted with labels it does not declare: {wrong:#?}"
        );
        assert!(
            raw_logs.is_empty(),
            "data-path warnings and errors outside an event: {raw_logs:#?}"
        );
    }

    /// The crates whose code runs on the data path.
    const DATA_PATH: &[&str] = &[
        "core/src",
        "kafka/src",
        "ingest/src",
        "processors/src",
        "router/src",
        "sinks/src",
    ];

    /// Every `.rs` file under these folders of the workspace, with its text.
    fn rust_files(dirs: &[&str]) -> Vec<(std::path::PathBuf, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        dirs.iter()
            .flat_map(|dir| sluice_common::fs::files_under(&root.join(dir)))
            .filter(|f| f.extension().is_some_and(|x| x == "rs"))
            .map(|f| {
                let text = std::fs::read_to_string(&f).unwrap();
                (f, text)
            })
            .collect()
    }

    /// `Counter IDENT["a", "b"] = "sluice_…"` → IDENT → [a, b].
    fn declarations(text: &str) -> Option<BTreeMap<String, Vec<String>>> {
        let mut out = BTreeMap::new();
        for line in text.lines() {
            let t = line.trim_start();
            let Some(rest) = ["Counter ", "Gauge ", "Histogram "]
                .iter()
                .find_map(|k| t.strip_prefix(k))
            else {
                continue;
            };
            let Some((head, _)) = rest.split_once(" = \"sluice_") else {
                continue;
            };
            let (ident, labels) = match head.split_once('[') {
                Some((ident, labels)) => (ident, quoted(labels)),
                None => (head, vec![]),
            };
            out.insert(ident.trim().to_string(), labels);
        }
        (!out.is_empty()).then_some(out)
    }

    /// Each `IDENT.count_with(&[("a", …), ("b", …)], …)` (and the gauge and histogram forms)
    /// in `text`: IDENT and [a, b].
    fn labelled_emits(text: &str) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        for method in [".count_with(", ".gauge_set_with(", ".observe_with("] {
            for (i, _) in text.match_indices(method) {
                let ident: String = text[..i]
                    .chars()
                    .rev()
                    .take_while(|c| c.is_ascii_uppercase() || *c == '_' || c.is_ascii_digit())
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                let args = &text[i + method.len()..];
                let Some(end) = args.find(']') else { continue };
                if ident.is_empty() || !args.trim_start().starts_with("&[") {
                    continue;
                }
                let labels = args[..end]
                    .split("(\"")
                    .skip(1)
                    .filter_map(|s| s.split_once('"').map(|(l, _)| l.to_string()))
                    .collect();
                out.push((ident, labels));
            }
        }
        out
    }

    fn quoted(s: &str) -> Vec<String> {
        s.split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    /// A `metrics` macro, or a method of a declared metric (`UPPER_CASE.count(…)`).
    fn touches_metric(line: &str) -> bool {
        if ["counter!(", "gauge!(", "histogram!("]
            .iter()
            .any(|m| line.contains(m))
        {
            return true;
        }
        [
            ".count(",
            ".count_with(",
            ".gauge_set(",
            ".gauge_set_with(",
            ".observe(",
            ".observe_with(",
        ]
        .iter()
        .any(|m| {
            line.match_indices(m).any(|(i, _)| {
                let before = &line[..i];
                let ident: String = before
                    .chars()
                    .rev()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                !ident.is_empty()
                    && ident
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
            })
        })
    }

    /// `Counter NAME = "sluice_…", "help";` → `sluice_…`.
    fn declared_name(line: &str) -> Option<String> {
        let t = line.trim_start();
        let kind = ["Counter ", "Gauge ", "Histogram "]
            .iter()
            .any(|k| t.starts_with(k));
        let start = t.find("= \"sluice_")? + 3;
        let end = start + t[start..].find('"')?;
        kind.then(|| t[start..end].to_string())
    }
}
