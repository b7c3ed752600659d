//! Sluice configuration: what the user wrote, typed and checked before anything starts.
//!
//! Layout:
//! - [`model`]: the serde structs of `sluice.toml` (`[mqtt]`, `[kafka]`, `[ingest]`, `[router]`,
//!   `[[rules]]`, `[sinks.*]`, `[http]`, `data_dir`). Their doc comments are the config reference.
//! - [`validate`]: semantic checks that collect *every* problem with its key path
//!   (`router.batch.max_rows: must be > 0`), so a user fixes a file in one pass.
//! - [`load`]/[`Config::from_toml_str`]: read a file, apply `SLUICE_…` environment overrides
//!   for secrets and addresses, validate.
//!
//! Nothing here opens a socket: runtime structs are built from these by the other crates.

mod model;
mod ops;
mod parse;
mod payloads;
pub mod rule_files;
pub mod security;
mod sinks;
mod validate;

pub use model::*;
pub use ops::*;
pub use parse::locate;
pub use payloads::{PayloadConfig, PayloadFormat};
pub use sinks::*;
pub use validate::{check_topic_filter, ConfigError, ConfigErrors};

use std::path::Path;

/// The placeholder in `mqtt.client_id` for this replica's identity.
pub const REPLICA: &str = "{replica}";

impl Config {
    /// Parses TOML text (no environment overrides, no validation); every problem, located.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigErrors> {
        match parse::parse(text) {
            (Some(config), problems) if problems.is_empty() => Ok(config),
            (_, problems) => Err(ConfigErrors(problems)),
        }
    }

    /// Applies `SLUICE_*` environment overrides, and reads the embedded MQTT users' passwords
    /// from their `password_env`. Secrets come from here or `*_file` keys, never the file.
    ///
    /// - `SLUICE_MQTT_BROKER`, `SLUICE_MQTT_CLIENT_ID` (one per ingest replica; or
    ///   `{replica}` in `mqtt.client_id`, replaced by `SLUICE_REPLICA`, else the host name:
    ///   the pod name of a StatefulSet, stable across restarts and distinct per replica),
    ///   `SLUICE_MQTT_USERNAME`, `SLUICE_MQTT_PASSWORD`
    /// - `SLUICE_KAFKA_BOOTSTRAP`, `SLUICE_KAFKA_SASL_USERNAME`, `SLUICE_KAFKA_SASL_PASSWORD`
    ///   and `SLUICE_KAFKA_SSL_KEY_PASSWORD` (into `[kafka.security]`)
    /// - `SLUICE_DATA_DIR`, `SLUICE_HTTP_LISTEN`
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) {
        if let Some(v) = env("SLUICE_MQTT_BROKER") {
            self.mqtt.broker = Some(v);
        }
        if let Some(v) = env("SLUICE_MQTT_CLIENT_ID") {
            self.mqtt.client_id = v;
        }
        if self.mqtt.client_id.contains(REPLICA) {
            let replica = env("SLUICE_REPLICA")
                .or_else(|| env("HOSTNAME"))
                .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "0".into());
            self.mqtt.client_id = self.mqtt.client_id.replace(REPLICA, &replica);
        }
        if let Some(v) = env("SLUICE_MQTT_USERNAME") {
            self.mqtt.username = Some(v);
        }
        if let Some(v) = env("SLUICE_MQTT_PASSWORD") {
            self.mqtt.password = Some(security::Secret::new(v));
        }
        if let Some(v) = env("SLUICE_KAFKA_BOOTSTRAP") {
            self.kafka.bootstrap = Some(v);
        }
        if let Some(v) = env("SLUICE_KAFKA_SASL_USERNAME") {
            self.kafka.security.sasl_username = Some(v);
        }
        if let Some(v) = env("SLUICE_KAFKA_SSL_KEY_PASSWORD") {
            self.kafka.security.key_password = Some(security::Secret::new(v));
        }
        if let Some(v) = env("SLUICE_KAFKA_SASL_PASSWORD") {
            self.kafka.security.sasl_password = Some(security::Secret::new(v));
        }
        for user in &mut self.embedded.mqtt_users {
            if let Some(var) = &user.password_env {
                user.password = env(var).map(security::Secret::new).or(user.password.take());
            }
        }
        if let Some(v) = env("SLUICE_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = env("SLUICE_HTTP_LISTEN") {
            self.http.listen = v;
        }
        if let Some(v) = env("SLUICE_MQTT_LISTEN") {
            self.embedded.mqtt_listen = v;
        }
    }
}

/// Reads, overrides from the process environment, and validates a config file. Every
/// problem at once (unknown keys, wrong types, semantic mistakes, unreadable rule files),
/// each with its key path and line.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let (config, mut errors) = load_unvalidated(path)?;
    if let Err(ConfigErrors(more)) = config.validate() {
        errors.extend(more);
    }
    if let Ok(text) = std::fs::read_to_string(path) {
        locate(&text, &mut errors);
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Reads a config file and its rule files without validating. Returns the config (what could
/// be read of it) and the problems found reading it; `Err` only when there is nothing to
/// check: the file cannot be read or is not TOML.
///
/// Every path in the file is relative to the file's folder: `data_dir`, `rule_paths`,
/// `devices.file`, TLS and secret files (`SLUICE_DATA_DIR` is relative to the working
/// directory, as paths on a command line are).
pub fn load_unvalidated(path: &Path) -> Result<(Config, Vec<ConfigError>), ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: path.display().to_string(),
            message: format!("cannot read: {e}"),
        }])
    })?;
    let (config, mut errors) = parse::parse(&text);
    let Some(mut config) = config else {
        for e in &mut errors {
            e.path = format!("{}: {}", path.display(), e.path);
        }
        return Err(ConfigErrors(errors));
    };
    let base = path.parent().unwrap_or(Path::new("."));
    if config.data_dir.is_relative() {
        config.data_dir = base.join(&config.data_dir);
    }
    config.apply_env(|k| std::env::var(k).ok());
    let (file_rules, rule_errors) = rule_files::load_rule_paths(base, &config.rule_paths);
    config.rules.extend(file_rules);
    errors.extend(rule_errors);
    if let Some(file) = &config.devices.file {
        config.devices.file = Some(base.join(file));
    }
    for (i, p) in config.payloads.iter_mut().enumerate() {
        errors.extend(p.resolve(i, base));
    }
    errors.extend(config.read_secret_files(base));
    config.source = Some(path.to_path_buf());
    Ok((config, errors))
}

impl Config {
    /// Resolves TLS and secret file paths against the config file's folder (`base`) and reads
    /// the `*_file` secrets the environment did not already give. Returns what could not be read.
    pub fn read_secret_files(&mut self, base: &Path) -> Vec<ConfigError> {
        use security::{read_secret_file, rebase};
        let mut errors = vec![];
        for (i, token) in self.http.tokens.iter().enumerate() {
            if let Some(var) = token.env.as_ref().filter(|v| std::env::var_os(v).is_none()) {
                errors.push(ConfigError {
                    path: format!("http.tokens[{i}].env"),
                    message: format!(
                        "environment variable {var} is not set (the API cannot start without it)"
                    ),
                });
            }
        }
        let mut read = |key: String,
                        file: &mut Option<std::path::PathBuf>,
                        into: &mut Option<security::Secret>| {
            rebase(base, file);
            if let (Some(path), None) = (file.as_ref(), into.as_ref()) {
                match read_secret_file(path) {
                    Ok(secret) => *into = Some(secret),
                    Err(e) => errors.push(ConfigError {
                        path: key,
                        message: e.to_string(),
                    }),
                }
            }
        };
        read(
            "mqtt.password_file".into(),
            &mut self.mqtt.password_file,
            &mut self.mqtt.password,
        );
        let sec = &mut self.kafka.security;
        read(
            "kafka.security.sasl_password_file".into(),
            &mut sec.sasl_password_file,
            &mut sec.sasl_password,
        );
        for (i, user) in self.embedded.mqtt_users.iter_mut().enumerate() {
            let key = format!("embedded.mqtt_users[{i}].password_file");
            read(key, &mut user.password_file, &mut user.password);
        }
        if let Some(tls) = &mut self.mqtt.tls {
            for f in [&mut tls.ca_file, &mut tls.cert_file, &mut tls.key_file] {
                rebase(base, f);
            }
        }
        for f in [&mut sec.ca_file, &mut sec.cert_file, &mut sec.key_file] {
            rebase(base, f);
        }
        let servers = [self.embedded.mqtt_tls.as_mut(), self.http.tls.as_mut()];
        for tls in servers.into_iter().flatten() {
            for f in [&mut tls.cert_file, &mut tls.key_file] {
                if f.is_relative() {
                    *f = base.join(&*f);
                }
            }
        }
        // Ingest logging in to the embedded broker as one of its users needs no second copy
        // of that user's password.
        if self.mqtt.broker.is_none() && self.mqtt.password.is_none() {
            let user = self.mqtt.username.as_ref();
            let known = self
                .embedded
                .mqtt_users
                .iter()
                .find(|u| Some(&u.username) == user);
            self.mqtt.password = known.and_then(|u| u.password.clone());
        }
        errors
    }
}

/// 1-based line and column of a byte offset, for error messages.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests;
