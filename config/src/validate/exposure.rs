//! Closed by default: nothing listens off loopback without authentication.
//!
//! - The embedded Kafka-compatible broker has no authentication: it listens on loopback only;
//!   serving other hosts is what an external Kafka is for.
//! - The embedded MQTT broker listens off loopback only with `[[embedded.mqtt_users]]`
//!   (username and password; add `[embedded.mqtt_tls]` so they do not cross the network in
//!   clear text).
//! - The management API off loopback needs bearer tokens, unless the config says the API is
//!   meant to be open (`http.allow_unauthenticated = true`).

use super::Report;
use crate::Config;
use std::net::IpAddr;

/// Whether `addr` (`host:port`) can only be reached from this machine.
pub fn is_loopback(addr: &str) -> bool {
    let host = sluice_common::addr::host_of(addr);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Config {
    pub(super) fn validate_exposure(&self, r: &mut Report) {
        if self.kafka.bootstrap.is_none() {
            r.check(
                is_loopback(&self.embedded.kafka_listen),
                "embedded.kafka_listen",
                "the embedded Kafka-compatible broker has no authentication, so it listens on \
                 loopback only (127.0.0.1); to serve other hosts, run a Kafka cluster and set \
                 kafka.bootstrap",
            );
        }
        if self.mqtt.broker.is_none() {
            r.check(
                is_loopback(&self.embedded.mqtt_listen)
                    || !self.embedded.mqtt_users.is_empty()
                    || self.gateway.device_auth,
                "embedded.mqtt_listen",
                "the MQTT gateway has no authentication configured, so it would accept anyone: \
                 it listens on loopback only (127.0.0.1) unless gateway.device_auth = true (each \
                 device logs in with its own credentials) or [[embedded.mqtt_users]] are set (and \
                 [embedded.mqtt_tls]); or run an MQTT broker with TLS and authentication \
                 (Mosquitto, EMQX) and set mqtt.broker",
            );
        }
        let http = &self.http;
        if !http.listen.is_empty() && !is_loopback(&http.listen) {
            r.check(
                !http.tokens.is_empty() || http.allow_unauthenticated,
                "http.listen",
                "a management API reachable from other hosts needs [[http.tokens]]; set \
                 http.allow_unauthenticated = true only if it is meant to be open to anyone \
                 who can reach it",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_are_told_apart() {
        for a in [
            "127.0.0.1:1883",
            "127.9.9.9:1",
            "localhost:80",
            "[::1]:9092",
        ] {
            assert!(is_loopback(a), "{a}");
        }
        for a in [
            "0.0.0.0:1883",
            "[::]:1",
            "10.0.0.5:9092",
            "broker.example:1883",
        ] {
            assert!(!is_loopback(a), "{a}");
        }
    }

    #[test]
    fn open_listeners_are_refused_with_the_key_at_fault() {
        let text = r#"
[embedded]
mqtt_listen = "0.0.0.0:1883"
kafka_listen = "0.0.0.0:9092"
[http]
listen = "0.0.0.0:9464"
"#;
        let config = Config::from_toml_str(text).unwrap();
        let errors = config.validate().unwrap_err().0;
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        for key in [
            "embedded.kafka_listen",
            "embedded.mqtt_listen",
            "http.listen",
        ] {
            assert!(paths.contains(&key), "{key} in {paths:?}");
        }
        let open = Config::from_toml_str(
            "[http]\nlisten = \"0.0.0.0:9464\"\nallow_unauthenticated = true\n",
        )
        .unwrap();
        assert!(open.validate().is_ok());
    }
}
