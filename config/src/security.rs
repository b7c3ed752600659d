//! TLS and authentication settings of every connection, and where their secrets come from.
//!
//! Secrets (passwords, keys' passphrases) never live in the config file: a password key in the
//! file is refused with a pointer to its environment variable or `*_file` key. Files named
//! here are relative to the config file and read when the config is loaded.

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `[mqtt.tls]`: connect to the MQTT broker over TLS (AWS IoT Core, Azure, HiveMQ Cloud…).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttTlsConfig {
    /// PEM file of the CA(s) that sign the broker's certificate. None: the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mutual TLS, as AWS IoT Core requires; with `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file` (PKCS#8, PKCS#1 or SEC1, unencrypted).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Name the broker's certificate must carry, when `mqtt.broker` is an IP address or a
    /// name the certificate does not list. None: the host of `mqtt.broker`.
    #[serde(default)]
    pub server_name: Option<String>,
}

/// `security.protocol` of the Kafka clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl KafkaProtocol {
    pub fn librdkafka_name(self) -> &'static str {
        match self {
            KafkaProtocol::Plaintext => "PLAINTEXT",
            KafkaProtocol::Ssl => "SSL",
            KafkaProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            KafkaProtocol::SaslSsl => "SASL_SSL",
        }
    }
    pub fn uses_tls(self) -> bool {
        matches!(self, KafkaProtocol::Ssl | KafkaProtocol::SaslSsl)
    }
    pub fn uses_sasl(self) -> bool {
        matches!(self, KafkaProtocol::SaslPlaintext | KafkaProtocol::SaslSsl)
    }
}

/// SASL mechanisms librdkafka carries without extra system libraries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaslMechanism {
    #[default]
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    pub fn librdkafka_name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// `[kafka.security]`: TLS and SASL of every Kafka client (ingest, router, alerts, scaling).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSecurityConfig {
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl` (managed Kafka: `sasl_ssl` or `ssl`).
    #[serde(default)]
    pub protocol: KafkaProtocol,
    /// PEM CA file that signs the brokers' certificates. None: the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (Amazon MSK, Aiven…); with `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`; if it is encrypted, its passphrase comes from
    /// `SLUICE_KAFKA_SSL_KEY_PASSWORD`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The passphrase of an encrypted `key_file`, from the environment.
    #[serde(skip)]
    pub key_password: Option<Secret>,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    #[serde(default)]
    pub sasl_mechanism: SaslMechanism,
    /// SASL user name; or `SLUICE_KAFKA_SASL_USERNAME`.
    #[serde(default)]
    pub sasl_username: Option<String>,
    /// File holding the SASL password; or `SLUICE_KAFKA_SASL_PASSWORD`.
    #[serde(default)]
    pub sasl_password_file: Option<PathBuf>,
    /// Refused: a password in the config file (kept only to say so).
    #[serde(default, rename = "sasl_password", skip_serializing)]
    pub sasl_password_in_file: Option<IgnoredAny>,
    /// The SASL password, from the environment or `sasl_password_file`.
    #[serde(skip)]
    pub sasl_password: Option<Secret>,
}

/// `[embedded.mqtt_tls]`: serve the embedded MQTT broker over TLS.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// PEM certificate chain the server presents.
    pub cert_file: PathBuf,
    /// PEM private key of `cert_file`.
    pub key_file: PathBuf,
}

/// `[[embedded.mqtt_users]]`: who may connect to the embedded MQTT broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttUserConfig {
    pub username: String,
    /// Environment variable that holds the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File that holds the password (trailing newline ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Refused: a password in the config file (kept only to say so).
    #[serde(default, rename = "password", skip_serializing)]
    pub password_in_file: Option<IgnoredAny>,
    /// The password, read at load from `password_env` or `password_file`.
    #[serde(skip)]
    pub password: Option<Secret>,
}

/// A password or key read from the environment or a file. Its `Debug` and `Display` show
/// `***`, so a config printed for debugging never carries it; `expose` hands it to the client
/// that needs it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// librdkafka properties that hold secrets: never in `[kafka.properties]` of the file.
pub const SECRET_KAFKA_PROPERTIES: &[&str] = &[
    "sasl.password",
    "ssl.key.password",
    "ssl.keystore.password",
    "ssl.key.pem",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.config",
];

/// Reads a secret file: the whole file, without a trailing newline.
pub fn read_secret_file(path: &Path) -> Result<Secret, SecretFileError> {
    std::fs::read_to_string(path)
        .map(|s| Secret(s.trim_end_matches(['\n', '\r']).to_string()))
        .map_err(|source| SecretFileError {
            path: path.to_path_buf(),
            source,
        })
}

/// A `*_file` secret that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {source}", path.display())]
pub struct SecretFileError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// `p` resolved against the config file's folder.
pub(crate) fn rebase(base: &Path, p: &mut Option<PathBuf>) {
    if let Some(path) = p {
        if path.is_relative() {
            *path = base.join(&*path);
        }
    }
}

/// A URL as it may be shown in logs, dead-letter headers, `_error` columns and API answers:
/// without user info, query string or fragment, and with every path segment that looks like
/// a token (long, or mixing letters and digits, as in Slack's and Teams' webhook paths)
/// replaced by `***`. Text that is not a URL is shown as `<url>`.
pub fn redact_url(raw: &str) -> String {
    let Ok(url) = url::Url::parse(raw) else {
        return "<url>".into();
    };
    let host = url.host_str().unwrap_or("");
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let path: Vec<&str> = url
        .path()
        .split('/')
        .map(|seg| if looks_secret(seg) { "***" } else { seg })
        .collect();
    let query = if url.query().is_some() { "?***" } else { "" };
    format!("{}://{host}{port}{}{query}", url.scheme(), path.join("/"))
}

fn looks_secret(segment: &str) -> bool {
    let digits = segment.chars().filter(char::is_ascii_digit).count();
    let letters = segment.chars().filter(char::is_ascii_alphabetic).count();
    segment.len() >= 24 || (segment.len() >= 8 && digits > 0 && letters > 0)
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn webhook_urls_lose_their_secrets() {
        for (raw, shown) in [
            (
                "https://hooks.example.com/alerts",
                "https://hooks.example.com/alerts",
            ),
            (
                "http://user:pw@h:8080/a?token=s3cret",
                "http://h:8080/a?***",
            ),
            (
                "https://hooks.slack.com/services/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",
                "https://hooks.slack.com/services/***/***/***",
            ),
            ("https://h/v1/hook/ab12cd34ef#frag", "https://h/v1/hook/***"),
            ("not a url s3cret", "<url>"),
        ] {
            assert_eq!(redact_url(raw), shown, "{raw}");
        }
    }
}
