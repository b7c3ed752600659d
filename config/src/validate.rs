//! Semantic checks of a parsed [`Config`]: every problem, with its key path, in one report.

mod exposure;
mod ops;
mod security;

use crate::Config;
use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

/// One problem in the config: the key path (`router.batch.max_rows`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// All problems found, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[derive(Default)]
pub(crate) struct Report(Vec<ConfigError>);

impl Report {
    fn check(&mut self, ok: bool, path: impl Into<String>, message: &str) {
        if !ok {
            self.0.push(ConfigError {
                path: path.into(),
                message: message.into(),
            });
        }
    }
}

/// Checks an MQTT topic filter: `+` and `#` fill whole levels, `#` only last.
pub fn check_topic_filter(filter: &str) -> Result<(), &'static str> {
    if filter.is_empty() {
        return Err("topic filter is empty");
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err("'#' must be a whole level and the last one");
        }
        if level.contains('+') && *level != "+" {
            return Err("'+' must be a whole level");
        }
    }
    Ok(())
}

pub(crate) fn is_host_port(s: &str) -> bool {
    sluice_common::addr::host_port(s).is_ok()
}

/// The largest `ingest.max_payload_bytes`: room for headers under Kafka's 1 MB default.
pub const MAX_PAYLOAD_CEILING: usize = 900_000;

impl Config {
    /// Collects every semantic problem; `Ok` only when there are none.
    pub fn validate(&self) -> Result<(), crate::ConfigErrors> {
        let mut r = Report::default();
        self.validate_transport(&mut r);
        self.validate_pipeline(&mut r);
        self.validate_state_files(&mut r);
        self.validate_parquet_roots(&mut r);
        self.validate_rules(&mut r, true);
        self.validate_operations(&mut r);
        self.validate_security(&mut r);
        self.validate_exposure(&mut r);
        if r.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(r.0))
        }
    }

    fn validate_transport(&self, r: &mut Report) {
        if let Some(b) = &self.mqtt.broker {
            r.check(is_host_port(b), "mqtt.broker", "must be host:port");
        }
        r.check(
            !self.mqtt.client_id.is_empty(),
            "mqtt.client_id",
            "must not be empty",
        );
        r.check(
            !self.mqtt.topics.is_empty(),
            "mqtt.topics",
            "must name at least one filter",
        );
        for (i, t) in self.mqtt.topics.iter().enumerate() {
            if let Err(e) = check_topic_filter(t) {
                r.check(false, format!("mqtt.topics[{i}]"), e);
            }
        }
        r.check(
            self.mqtt.keep_alive_secs >= 5,
            "mqtt.keep_alive_secs",
            "must be >= 5",
        );
        if let Some(b) = &self.kafka.bootstrap {
            r.check(!b.trim().is_empty(), "kafka.bootstrap", "must not be empty");
        }
        r.check(self.kafka.partitions > 0, "kafka.partitions", "must be > 0");
        r.check(
            !self.kafka.raw_topic.is_empty(),
            "kafka.raw_topic",
            "must not be empty",
        );
        r.check(
            self.kafka.raw_topic != self.kafka.dlq_topic,
            "kafka.dlq_topic",
            "must differ from kafka.raw_topic",
        );
        for (key, value) in [
            ("embedded.mqtt_listen", &self.embedded.mqtt_listen),
            ("embedded.kafka_listen", &self.embedded.kafka_listen),
        ] {
            let ok = sluice_common::addr::listen_addr(value).is_ok();
            r.check(ok, key, "must be ip:port (or localhost:port)");
        }
        if let Some(a) = &self.embedded.kafka_advertised {
            r.check(
                is_host_port(a),
                "embedded.kafka_advertised",
                "must be host:port",
            );
        }
        if !self.http.listen.is_empty() {
            let ok = sluice_common::addr::listen_addr(&self.http.listen).is_ok();
            r.check(
                ok,
                "http.listen",
                "must be ip:port or localhost:port (or empty to disable)",
            );
        }
    }

    fn validate_pipeline(&self, r: &mut Report) {
        let i = &self.ingest;
        r.check(
            i.device_id_level >= 1,
            "ingest.device_id_level",
            "must be >= 1 (levels count from 1)",
        );
        r.check(
            (1..=MAX_PAYLOAD_CEILING).contains(&i.max_payload_bytes),
            "ingest.max_payload_bytes",
            "must be between 1 and 900000: a record (payload and headers) must fit Kafka's \
             default message.max.bytes (1000000), or its dead letter would be refused too",
        );
        let g = &self.gateway;
        r.check(
            (1..=1_000_000).contains(&g.max_connections),
            "gateway.max_connections",
            "must be between 1 and 1000000",
        );
        r.check(
            (1..=300).contains(&g.connect_timeout_secs),
            "gateway.connect_timeout_secs",
            "must be between 1 and 300",
        );
        r.check(
            (1..=65_535).contains(&g.max_keep_alive_secs),
            "gateway.max_keep_alive_secs",
            "must be between 1 and 65535",
        );
        r.check(
            !g.devices_topic.is_empty() && g.devices_topic != self.kafka.raw_topic,
            "gateway.devices_topic",
            "must be a topic of its own",
        );
        r.check(
            (1..=65_535).contains(&self.embedded.mqtt_max_inflight),
            "embedded.mqtt_max_inflight",
            "must be between 1 and 65535",
        );
        r.check(
            (1..=65_535).contains(&i.max_inflight),
            "ingest.max_inflight",
            "must be between 1 and 65535",
        );
        let rt = &self.router;
        r.check(
            !rt.group_id.is_empty(),
            "router.group_id",
            "must not be empty",
        );
        r.check(
            rt.commit_interval_ms > 0,
            "router.commit_interval_ms",
            "must be > 0",
        );
        r.check(
            rt.batch.max_rows > 0,
            "router.batch.max_rows",
            "must be > 0",
        );
        r.check(
            rt.batch.max_wait_ms > 0,
            "router.batch.max_wait_ms",
            "must be > 0",
        );
        let d = &rt.decode;
        r.check(
            (1..=100).contains(&d.max_depth),
            "router.decode.max_depth",
            "must be 1 to 100 (JSON deeper than 128 is refused by the parser anyway)",
        );
        r.check(
            d.max_fields_per_message > 0,
            "router.decode.max_fields_per_message",
            "must be > 0",
        );
        r.check(
            d.max_schema_fields > 0,
            "router.decode.max_schema_fields",
            "must be > 0",
        );
    }

    /// Two sinks writing one state file would overwrite each other's state.
    fn validate_state_files(&self, r: &mut Report) {
        let mut owners: std::collections::HashMap<PathBuf, &str> = Default::default();
        for (name, sink) in &self.sinks {
            let Some(file) = sink.state_file(name) else {
                continue;
            };
            let path = self.under_data_dir(&file);
            if let Some(first) = owners.insert(path.clone(), name) {
                r.check(
                    false,
                    format!("sinks.{name}.state_file"),
                    &format!(
                        "{} is also the state file of sink '{first}': give each sink its own",
                        path.display()
                    ),
                );
            }
        }
    }

    /// Each Parquet sink keeps a ledger under its root and recovers (deletes) staged files it
    /// does not list: two sinks on one root, or one root inside another, fence and delete each
    /// other's files (#24.7).
    fn validate_parquet_roots(&self, r: &mut Report) {
        let mut roots: Vec<(&str, String)> = Vec::new();
        for (name, sink) in &self.sinks {
            let crate::SinkConfig::Parquet(p) = sink else {
                continue;
            };
            let text = p.path.to_string_lossy();
            let root = if text.contains("://") {
                text.trim_end_matches('/').to_string()
            } else {
                self.under_data_dir(&p.path)
                    .to_string_lossy()
                    .trim_end_matches('/')
                    .to_string()
            };
            for (other, other_root) in &roots {
                let nested = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
                if nested(&root, other_root) || nested(other_root, &root) {
                    r.check(
                        false,
                        format!("sinks.{name}.path"),
                        &format!(
                            "{root} shares its directory tree with sink '{other}' ({other_root}): \
                             each Parquet sink needs its own root, neither inside the other"
                        ),
                    );
                }
            }
            roots.push((name, root));
        }
    }

    /// The rule checks alone: names, SQL present, actions given and, with `check_sinks`,
    /// every action, error and fallback action naming a defined sink.
    pub fn rule_problems(&self, check_sinks: bool) -> Vec<ConfigError> {
        let mut r = Report::default();
        self.validate_rules(&mut r, check_sinks);
        r.0
    }

    fn validate_rules(&self, r: &mut Report, check_sinks: bool) {
        let mut names = HashSet::new();
        for rule in &self.rules {
            let name_ok = !rule.name.is_empty()
                && rule
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            r.check(
                name_ok,
                rule.locate("name"),
                "must be non-empty [A-Za-z0-9_-]",
            );
            r.check(
                names.insert(rule.name.as_str()),
                rule.locate("name"),
                &format!("duplicate rule name '{}'", rule.name),
            );
            r.check(
                !rule.sql.trim().is_empty(),
                rule.locate("sql"),
                "must not be empty",
            );
            r.check(
                !rule.actions.is_empty(),
                rule.locate("actions"),
                "must name at least one sink",
            );
            if !check_sinks {
                continue;
            }
            for (j, action) in rule.actions.iter().enumerate() {
                self.check_sink(r, action, rule.locate(&format!("actions[{j}]")));
            }
            if let Some(action) = &rule.error_action {
                self.check_sink(r, action, rule.locate("error_action"));
            }
        }
        if let (true, Some(action)) = (check_sinks, &self.router.fallback_action) {
            self.check_sink(r, action, "router.fallback_action".into());
        }
    }

    fn check_sink(&self, r: &mut Report, action: &str, at: String) {
        r.check(
            self.sinks.contains_key(action),
            at,
            &format!("unknown sink '{action}' (defined: {})", self.sink_names()),
        );
    }

    fn sink_names(&self) -> String {
        if self.sinks.is_empty() {
            return "none".into();
        }
        self.sinks.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}
