//! `[http]`, `[metrics]` and `[scaling]`: how operators see and steer a running instance.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[http]`: the management API (metrics, health, rules, alerts, compliance, scaling).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address. Empty disables the server.
    #[serde(default = "default_http_listen")]
    pub listen: String,
    /// Bearer tokens and their roles. None: every endpoint is open, which is refused off
    /// loopback unless `allow_unauthenticated` says so.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Serve the API on a non-loopback `listen` without tokens, on purpose.
    #[serde(default)]
    pub allow_unauthenticated: bool,
    /// Paths served without a token even when tokens are configured.
    #[serde(default = "default_open_paths")]
    pub open_paths: Vec<String>,
    /// `[http.tls]`: serve the API over HTTPS.
    #[serde(default)]
    pub tls: Option<crate::security::ServerTlsConfig>,
    /// Host names (the `Host` header, without port) the API answers to when it has no tokens,
    /// besides `localhost` and IP addresses: a name a web page could point at 127.0.0.1 (DNS
    /// rebinding) is refused unless listed here.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

/// One bearer token: its role, and where its secret is read from (never the config file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub role: Role,
    /// Environment variable that holds the token.
    #[serde(default)]
    pub env: Option<String>,
    /// File that holds the token (trailing newline ignored), relative to the config file.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

/// What a token may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads (GET).
    Viewer,
    /// + reload rules, acknowledge alerts.
    Operator,
    /// + retire devices, change device metadata and the update catalog.
    Admin,
}

fn default_open_paths() -> Vec<String> {
    vec!["/healthz".into(), "/readyz".into(), "/metrics".into()]
}

fn default_http_listen() -> String {
    "127.0.0.1:9464".into()
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: default_http_listen(),
            tokens: vec![],
            allow_unauthenticated: false,
            open_paths: default_open_paths(),
            tls: None,
            allowed_hosts: vec![],
        }
    }
}

/// `[metrics]`: which metric families `/metrics` exports. Patterns match whole names, with
/// `*` for any run of characters (`sluice_rule_*`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Only these families are exported (empty: all).
    #[serde(default)]
    pub allow: Vec<String>,
    /// These families are never exported (applied after `allow`).
    #[serde(default)]
    pub block: Vec<String>,
}

/// `[scaling]`: how backlog turns into replica advice (`/scaling`, `sluice scale`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingConfig {
    /// How often lag and rates are sampled, in ms.
    #[serde(default = "default_sample_interval")]
    pub interval_ms: u64,
    /// Records/s one router replica sustains (measure it with `sluice loadtest`).
    #[serde(default = "default_router_capacity")]
    pub router_capacity_per_replica: f64,
    /// MQTT messages/s one ingest replica sustains.
    #[serde(default = "default_ingest_capacity")]
    pub ingest_capacity_per_replica: f64,
    /// Lag (seconds of consumption) above which more router replicas are asked for.
    #[serde(default = "default_target_lag")]
    pub target_lag_seconds: f64,
    /// A lower replica count is advised only after it was computed for this long (no flapping).
    #[serde(default = "default_scale_down_window")]
    pub scale_down_window_ms: u64,
    /// Smoothing of the rates: weight of the newest sample (0 < alpha <= 1).
    #[serde(default = "default_alpha")]
    pub ewma_alpha: f64,
}

const fn default_sample_interval() -> u64 {
    2_000
}
const fn default_router_capacity() -> f64 {
    50_000.0
}
const fn default_ingest_capacity() -> f64 {
    20_000.0
}
const fn default_target_lag() -> f64 {
    10.0
}
const fn default_scale_down_window() -> u64 {
    60_000
}
const fn default_alpha() -> f64 {
    0.3
}

impl Default for ScalingConfig {
    fn default() -> Self {
        Self {
            interval_ms: default_sample_interval(),
            router_capacity_per_replica: default_router_capacity(),
            ingest_capacity_per_replica: default_ingest_capacity(),
            target_lag_seconds: default_target_lag(),
            scale_down_window_ms: default_scale_down_window(),
            ewma_alpha: default_alpha(),
        }
    }
}
