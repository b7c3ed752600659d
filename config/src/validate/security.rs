//! Checks of TLS and authentication settings: no secret in the file, pairs that must come
//! together, credentials that must exist before anything connects.

use super::Report;
use crate::security::SECRET_KAFKA_PROPERTIES;
use crate::Config;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// librdkafka properties that `[kafka.security]` sets: one place for them, not two.
const SECURITY_KAFKA_PROPERTIES: &[&str] = &[
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
];

fn no_password_here(r: &mut Report, present: bool, key: &str, instead: &str) {
    r.check(
        !present,
        key,
        &format!("the config file may not hold passwords; use {instead}"),
    );
}

fn readable(r: &mut Report, file: &Option<PathBuf>, key: &str) {
    if let Some(path) = file {
        file_readable(r, path, key);
    }
}

fn file_readable(r: &mut Report, path: &Path, key: &str) {
    if let Err(e) = std::fs::metadata(path) {
        r.check(false, key, &format!("cannot read {}: {e}", path.display()));
    }
}

impl Config {
    pub(super) fn validate_security(&self, r: &mut Report) {
        self.validate_mqtt_security(r);
        self.validate_kafka_security(r);
        self.validate_embedded_security(r);
        if let Some(tls) = &self.http.tls {
            file_readable(r, &tls.cert_file, "http.tls.cert_file");
            file_readable(r, &tls.key_file, "http.tls.key_file");
        }
    }

    fn validate_mqtt_security(&self, r: &mut Report) {
        let m = &self.mqtt;
        no_password_here(
            r,
            m.password_in_file.is_some(),
            "mqtt.password",
            "SLUICE_MQTT_PASSWORD or mqtt.password_file",
        );
        r.check(
            m.password.is_none() || m.username.is_some(),
            "mqtt.username",
            "a password is set (SLUICE_MQTT_PASSWORD or mqtt.password_file) but no user name",
        );
        let Some(tls) = &m.tls else { return };
        r.check(
            tls.cert_file.is_some() == tls.key_file.is_some(),
            "mqtt.tls",
            "cert_file and key_file come together (mutual TLS) or not at all",
        );
        readable(r, &tls.ca_file, "mqtt.tls.ca_file");
        readable(r, &tls.cert_file, "mqtt.tls.cert_file");
        readable(r, &tls.key_file, "mqtt.tls.key_file");
        if let Some(name) = &tls.server_name {
            r.check(
                !name.is_empty(),
                "mqtt.tls.server_name",
                "must not be empty",
            );
        }
    }

    fn validate_kafka_security(&self, r: &mut Report) {
        let s = &self.kafka.security;
        no_password_here(
            r,
            s.sasl_password_in_file.is_some(),
            "kafka.security.sasl_password",
            "SLUICE_KAFKA_SASL_PASSWORD or kafka.security.sasl_password_file",
        );
        for key in self.kafka.properties.keys() {
            let at = format!("kafka.properties.\"{key}\"");
            if SECRET_KAFKA_PROPERTIES.contains(&key.as_str()) {
                r.check(false, at, "holds a secret, which the config file may not; use [kafka.security] with SLUICE_KAFKA_SASL_PASSWORD or kafka.security.sasl_password_file (SLUICE_KAFKA_SSL_KEY_PASSWORD for an encrypted key)");
            } else if SECURITY_KAFKA_PROPERTIES.contains(&key.as_str()) {
                r.check(false, at, "is set by [kafka.security] (protocol, ca_file, cert_file, key_file, sasl_mechanism, sasl_username); set it there");
            }
        }
        r.check(
            s.cert_file.is_some() == s.key_file.is_some(),
            "kafka.security",
            "cert_file and key_file come together (mutual TLS) or not at all",
        );
        let tls_files = s.ca_file.is_some() || s.cert_file.is_some();
        r.check(
            !tls_files || s.protocol.uses_tls(),
            "kafka.security.protocol",
            "ca_file/cert_file are used only with protocol = \"ssl\" or \"sasl_ssl\"",
        );
        readable(r, &s.ca_file, "kafka.security.ca_file");
        readable(r, &s.cert_file, "kafka.security.cert_file");
        readable(r, &s.key_file, "kafka.security.key_file");
        if s.protocol.uses_sasl() {
            r.check(
                s.sasl_username.is_some(),
                "kafka.security.sasl_username",
                "SASL needs a user name: set it here or SLUICE_KAFKA_SASL_USERNAME",
            );
            r.check(
                s.sasl_password.is_some(),
                "kafka.security.sasl_password_file",
                "SASL needs a password: set SLUICE_KAFKA_SASL_PASSWORD or kafka.security.sasl_password_file",
            );
        }
        if self.kafka.bootstrap.is_none() {
            r.check(
                !s.protocol.uses_sasl(),
                "kafka.security.protocol",
                "the embedded Kafka-compatible broker has no SASL; set kafka.bootstrap to a Kafka cluster that does",
            );
        }
    }

    fn validate_embedded_security(&self, r: &mut Report) {
        let e = &self.embedded;
        let mut names = HashSet::new();
        for (i, user) in e.mqtt_users.iter().enumerate() {
            let at = |k: &str| format!("embedded.mqtt_users[{i}].{k}");
            r.check(
                !user.username.is_empty() && names.insert(user.username.as_str()),
                at("username"),
                "must be non-empty and unique",
            );
            no_password_here(
                r,
                user.password_in_file.is_some(),
                &at("password"),
                "password_env or password_file",
            );
            let source = match (&user.password_env, &user.password_file) {
                (Some(var), _) => format!("environment variable {var} is unset"),
                (None, Some(_)) => "password_file is empty".into(),
                (None, None) => "name password_env or password_file".into(),
            };
            r.check(
                user.password
                    .as_ref()
                    .is_some_and(|p| !p.expose().is_empty()),
                at("password_env"),
                &format!("no password: {source}"),
            );
        }
        if let Some(tls) = &e.mqtt_tls {
            file_readable(r, &tls.cert_file, "embedded.mqtt_tls.cert_file");
            file_readable(r, &tls.key_file, "embedded.mqtt_tls.key_file");
        }
        if self.mqtt.broker.is_some() {
            return;
        }
        // Ingest connects to the embedded broker like any client: it needs a way in.
        if !e.mqtt_users.is_empty() {
            let known = self
                .mqtt
                .username
                .as_ref()
                .is_some_and(|u| e.mqtt_users.iter().any(|x| &x.username == u));
            r.check(
                known,
                "mqtt.username",
                "ingest logs in to the embedded MQTT broker: set it to one of embedded.mqtt_users",
            );
        }
        r.check(
            e.mqtt_tls.is_none() || self.mqtt.tls.is_some(),
            "mqtt.tls",
            "the embedded MQTT broker serves TLS, so ingest connects with TLS: add [mqtt.tls] with the CA of embedded.mqtt_tls.cert_file (and server_name if the certificate does not name 127.0.0.1)",
        );
    }
}
