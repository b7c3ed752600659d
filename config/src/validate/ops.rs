//! Checks of the operations sections: alert and compliance sinks, API tokens, scaling.

use super::Report;
use crate::{AlertDestination, Config, SinkConfig};
use std::collections::HashSet;

impl Config {
    pub(super) fn validate_operations(&self, r: &mut Report) {
        for (name, sink) in &self.sinks {
            match sink {
                SinkConfig::Parquet(p) => {
                    let at = |k: &str| format!("sinks.{name}.{k}");
                    r.check(p.max_rows > 0, at("max_rows"), "must be > 0");
                    r.check(p.max_bytes > 0, at("max_bytes"), "must be > 0");
                    r.check(p.max_open_files > 0, at("max_open_files"), "must be > 0");
                    if let Err(e) = p.location() {
                        r.check(false, at("path"), &e);
                    }
                    for key in p.storage_options.keys() {
                        r.check(
                            !crate::is_secret_option(key),
                            at(&format!("storage_options.{key}")),
                            "credentials come from the environment (AWS_*, GOOGLE_*, AZURE_*), never the config file",
                        );
                    }
                }
                SinkConfig::Alert(a) => self.validate_alert(r, name, a),
                SinkConfig::Compliance(c) => validate_compliance(r, name, c),
            }
        }
        for (i, t) in self.http.tokens.iter().enumerate() {
            r.check(
                t.env.is_some() != t.file.is_some(),
                format!("http.tokens[{i}]"),
                "set exactly one of `env` or `file` (tokens never go in the config file)",
            );
        }
        let s = &self.scaling;
        r.check(s.interval_ms > 0, "scaling.interval_ms", "must be > 0");
        for (key, v) in [
            (
                "scaling.router_capacity_per_replica",
                s.router_capacity_per_replica,
            ),
            (
                "scaling.ingest_capacity_per_replica",
                s.ingest_capacity_per_replica,
            ),
            ("scaling.target_lag_seconds", s.target_lag_seconds),
        ] {
            r.check(v > 0.0, key, "must be > 0");
        }
        r.check(
            s.ewma_alpha > 0.0 && s.ewma_alpha <= 1.0,
            "scaling.ewma_alpha",
            "must be in (0, 1]",
        );
    }

    fn validate_alert(&self, r: &mut Report, name: &str, a: &crate::AlertSinkConfig) {
        let at = |k: &str| format!("sinks.{name}.{k}");
        r.check(
            !a.destinations.is_empty(),
            at("destinations"),
            "must name at least one destination",
        );
        r.check(
            a.resolve_after_ms > 0,
            at("resolve_after_ms"),
            "must be > 0",
        );
        r.check(a.queue_capacity > 0, at("queue_capacity"), "must be > 0");
        for (i, d) in a.destinations.iter().enumerate() {
            match d {
                AlertDestination::Webhook { url, .. } => r.check(
                    url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")),
                    at(&format!("destinations[{i}].url")),
                    "must be an http:// or https:// URL",
                ),
                AlertDestination::Kafka { topic } => r.check(
                    !topic.is_empty() && *topic != self.kafka.raw_topic,
                    at(&format!("destinations[{i}].topic")),
                    "must be a non-empty topic other than kafka.raw_topic",
                ),
                AlertDestination::Log => {}
            }
        }
    }
}

fn validate_compliance(r: &mut Report, name: &str, c: &crate::ComplianceSinkConfig) {
    let at = |k: String| format!("sinks.{name}.{k}");
    let mut ids = HashSet::new();
    for (i, u) in c.updates.iter().enumerate() {
        r.check(
            ids.insert(&u.id),
            at(format!("updates[{i}].id")),
            "is defined twice",
        );
        r.check(
            crate::Version::parse(&u.version).is_some(),
            at(format!("updates[{i}].version")),
            "must be a dotted version like 1.10.2",
        );
        r.check(
            !u.models.is_empty(),
            at(format!("updates[{i}].models")),
            "must name at least one model",
        );
    }
    for (i, d) in c.deployments.iter().enumerate() {
        r.check(
            ids.contains(&d.update),
            at(format!("deployments[{i}].update")),
            "names no update of `updates`",
        );
    }
}
