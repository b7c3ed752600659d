//! The config file's shape. Every field's doc comment is its reference entry.

use crate::security::{KafkaSecurityConfig, MqttTlsConfig, MqttUserConfig, ServerTlsConfig};
use crate::{HttpConfig, MetricsConfig, ScalingConfig, SinkConfig};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The whole `sluice.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where embedded brokers keep their storage and where relative sink paths resolve.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub mqtt: MqttConfig,
    #[serde(default)]
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub embedded: EmbeddedConfig,
    #[serde(default)]
    pub gateway: GatewayConfig,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub router: RouterConfig,
    /// Routing rules, evaluated on every batch in the order given: these `[[rules]]` first,
    /// then the rules of `rule_paths`.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Rule files (`.sql` with a `-- name:` / `-- actions:` header) or directories of them,
    /// relative to the config file. Re-read on `POST /rules/reload` and when they change.
    #[serde(default)]
    pub rule_paths: Vec<PathBuf>,
    /// `[[payloads]]`: the encoding of payloads by topic filter (JSON where none matches).
    #[serde(default)]
    pub payloads: Vec<crate::PayloadConfig>,
    /// `[devices]`: device metadata (tags) that rules read with `device_tag('site')`.
    #[serde(default)]
    pub devices: DevicesConfig,
    /// Named sinks that rules send rows to (`actions = ["<name>"]`).
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub scaling: ScalingConfig,
    /// The file this config was loaded from (rule reloads re-read it).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

/// What an empty file means: embedded brokers, no rules, no sinks.
impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            mqtt: MqttConfig::default(),
            kafka: KafkaConfig::default(),
            embedded: EmbeddedConfig::default(),
            gateway: GatewayConfig::default(),
            ingest: IngestConfig::default(),
            router: RouterConfig::default(),
            rules: vec![],
            rule_paths: vec![],
            payloads: vec![],
            devices: DevicesConfig::default(),
            sinks: BTreeMap::new(),
            http: HttpConfig::default(),
            metrics: MetricsConfig::default(),
            scaling: ScalingConfig::default(),
            source: None,
        }
    }
}

/// `[mqtt]`: where devices publish.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `host:port` of an external MQTT broker (Mosquitto, EMQX…). Unset: the embedded broker.
    #[serde(default)]
    pub broker: Option<String>,
    /// Stable client id: the broker keeps this session's unacknowledged messages across restarts.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// Topic filters to subscribe to (QoS 1).
    #[serde(default = "default_topics")]
    pub topics: Vec<String>,
    /// With a name, subscribe as `$share/<name>/<filter>` so ingest replicas split the load.
    #[serde(default)]
    pub shared_group: Option<String>,
    /// MQTT keep-alive in seconds.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_secs: u64,
    /// Username; prefer `SLUICE_MQTT_USERNAME`.
    #[serde(default)]
    pub username: Option<String>,
    /// File that holds the password; or `SLUICE_MQTT_PASSWORD`. Never the password itself.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Refused: a password in the config file (kept only to say so).
    #[serde(default, rename = "password", skip_serializing)]
    pub password_in_file: Option<IgnoredAny>,
    /// The password, from `SLUICE_MQTT_PASSWORD` or `password_file`.
    #[serde(skip)]
    pub password: Option<crate::security::Secret>,
    /// `[mqtt.tls]`: connect over TLS. None: plain TCP.
    #[serde(default)]
    pub tls: Option<MqttTlsConfig>,
}

fn default_client_id() -> String {
    "sluice-ingest".into()
}
fn default_topics() -> Vec<String> {
    vec!["devices/+/telemetry".into()]
}
const fn default_keep_alive() -> u64 {
    30
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            broker: None,
            client_id: default_client_id(),
            topics: default_topics(),
            shared_group: None,
            keep_alive_secs: default_keep_alive(),
            username: None,
            password_file: None,
            password_in_file: None,
            password: None,
            tls: None,
        }
    }
}

/// `[kafka]`: the durable log between ingest and router.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers of an external Kafka cluster. Unset: the embedded tansu broker.
    #[serde(default)]
    pub bootstrap: Option<String>,
    /// Topic ingest writes and the router reads.
    #[serde(default = "default_raw_topic")]
    pub raw_topic: String,
    /// Dead-letter topic: malformed input, with a `sluice.dlq.reason` header.
    #[serde(default = "default_dlq_topic")]
    pub dlq_topic: String,
    /// Partitions of the raw topic when Sluice creates it; caps router replicas.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// Create missing topics at start (needs admin rights on external clusters).
    #[serde(default = "default_true")]
    pub create_topics: bool,
    /// `[kafka.security]`: TLS and SASL of every Kafka client.
    #[serde(default)]
    pub security: KafkaSecurityConfig,
    /// Extra librdkafka properties for every client (tuning; no secrets: those are refused).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

fn default_raw_topic() -> String {
    "telemetry.raw".into()
}
fn default_dlq_topic() -> String {
    "telemetry.dlq".into()
}
const fn default_partitions() -> i32 {
    4
}
pub(crate) const fn default_true() -> bool {
    true
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap: None,
            raw_topic: default_raw_topic(),
            dlq_topic: default_dlq_topic(),
            partitions: default_partitions(),
            create_topics: true,
            security: KafkaSecurityConfig::default(),
            properties: BTreeMap::new(),
        }
    }
}

/// `[embedded]`: where the in-process brokers listen when `[mqtt]`/`[kafka]` name none.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Where devices connect to Sluice's MQTT gateway (when `mqtt.broker` is unset).
    #[serde(default = "default_mqtt_listen")]
    pub mqtt_listen: String,
    /// Listen address of the embedded Kafka-compatible broker (tansu, sqlite storage).
    #[serde(default = "default_kafka_listen")]
    pub kafka_listen: String,
    /// Publishes of one device connection the gateway holds until Kafka confirms them; past
    /// it the gateway stops reading that connection (backpressure instead of memory).
    #[serde(default = "default_broker_inflight")]
    pub mqtt_max_inflight: usize,
    /// Shared logins for the gateway (a bridge or a trusted back end: it may publish for any
    /// device id in the topic). None, and no `gateway.device_auth`: anyone who reaches it,
    /// which is why it then listens on loopback only.
    #[serde(default)]
    pub mqtt_users: Vec<MqttUserConfig>,
    /// `[embedded.mqtt_tls]`: the gateway serves MQTT over TLS.
    #[serde(default)]
    pub mqtt_tls: Option<ServerTlsConfig>,
    /// Address the embedded Kafka broker tells clients to connect to, when a TLS terminator
    /// (stunnel) fronts it. None: `kafka_listen`.
    #[serde(default)]
    pub kafka_advertised: Option<String>,
}

fn default_mqtt_listen() -> String {
    "127.0.0.1:1883".into()
}
fn default_kafka_listen() -> String {
    "127.0.0.1:9092".into()
}
const fn default_broker_inflight() -> usize {
    1000
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            mqtt_listen: default_mqtt_listen(),
            kafka_listen: default_kafka_listen(),
            mqtt_max_inflight: default_broker_inflight(),
            mqtt_users: vec![],
            mqtt_tls: None,
            kafka_advertised: None,
        }
    }
}

/// `[gateway]`: Sluice as the devices' own MQTT endpoint (when `mqtt.broker` is unset). It
/// listens on `embedded.mqtt_listen` and sends each PUBACK only after Kafka confirmed the
/// publish.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Device connections served at once; further ones are refused (and counted).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A connection that sends no CONNECT within this many seconds is closed.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Each device logs in with its own credentials (username = device id, a secret from
    /// `sluice devices provision`) and may publish only under its own id.
    #[serde(default)]
    pub device_auth: bool,
    /// Compacted Kafka topic holding device credentials and retirements (every gateway
    /// replica reads it).
    #[serde(default = "default_devices_topic")]
    pub devices_topic: String,
    /// Keep-alive (s) asked of clients that send 0 (none); a connection silent for 1.5 × its
    /// keep-alive is closed.
    #[serde(default = "default_max_keep_alive")]
    pub max_keep_alive_secs: u64,
}

const fn default_max_connections() -> usize {
    10_000
}
const fn default_connect_timeout() -> u64 {
    10
}
fn default_devices_topic() -> String {
    "sluice.devices".into()
}
const fn default_max_keep_alive() -> u64 {
    600
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_connections: default_max_connections(),
            connect_timeout_secs: default_connect_timeout(),
            device_auth: false,
            devices_topic: default_devices_topic(),
            max_keep_alive_secs: default_max_keep_alive(),
        }
    }
}

/// `[ingest]`: MQTT → Kafka.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// 1-based MQTT topic level that holds the device id (`devices/{id}/telemetry` → 2).
    #[serde(default = "default_device_level")]
    pub device_id_level: usize,
    /// Larger payloads go to the DLQ (`reason = oversize`) instead of the raw topic.
    #[serde(default = "default_max_payload")]
    pub max_payload_bytes: usize,
    /// Messages received from MQTT but not yet confirmed by Kafka; beyond it ingest stops
    /// reading the MQTT socket (backpressure instead of unbounded memory).
    #[serde(default = "default_max_inflight")]
    pub max_inflight: usize,
}

const fn default_device_level() -> usize {
    2
}
const fn default_max_payload() -> usize {
    64 * 1024
}
const fn default_max_inflight() -> usize {
    1000
}

impl IngestConfig {
    /// The largest MQTT packet the embedded broker accepts and ingest reads: twice
    /// `max_payload_bytes` plus room for the longest topic. A publish whose payload lies
    /// between the two becomes a dead-letter record (`oversize`); a larger one is refused by
    /// the broker, which closes that publisher's connection. Never a packet that the broker
    /// accepts and ingest cannot read (that would be a reconnect loop: the broker redelivers).
    pub fn mqtt_max_packet_bytes(&self) -> usize {
        self.max_payload_bytes
            .saturating_mul(2)
            .saturating_add(65_540)
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            device_id_level: default_device_level(),
            max_payload_bytes: default_max_payload(),
            max_inflight: default_max_inflight(),
        }
    }
}

/// `[router]`: Kafka → rules → sinks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// Kafka consumer group; routers sharing it split the partitions.
    #[serde(default = "default_group")]
    pub group_id: String,
    /// How often open files are closed and offsets committed (the checkpoint), in ms.
    #[serde(default = "default_commit_interval")]
    pub commit_interval_ms: u64,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub decode: DecodeConfig,
    /// Sink that receives the messages no rule matched (all their fields); none: dropped.
    #[serde(default)]
    pub fallback_action: Option<String>,
    /// How often rule files are checked for changes, in ms (0 = only on `POST /rules/reload`).
    #[serde(default = "default_reload_interval")]
    pub rules_reload_interval_ms: u64,
}

const fn default_reload_interval() -> u64 {
    2_000
}

fn default_group() -> String {
    "sluice-router".into()
}
const fn default_commit_interval() -> u64 {
    5_000
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            group_id: default_group(),
            commit_interval_ms: default_commit_interval(),
            batch: BatchConfig::default(),
            decode: DecodeConfig::default(),
            fallback_action: None,
            rules_reload_interval_ms: default_reload_interval(),
        }
    }
}

/// `[router.batch]`: how records are gathered into one Arrow batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Rows per batch at most.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// A partial batch is processed after this many ms.
    #[serde(default = "default_max_wait")]
    pub max_wait_ms: u64,
}

const fn default_max_rows() -> usize {
    4096
}
const fn default_max_wait() -> u64 {
    200
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_rows: default_max_rows(),
            max_wait_ms: default_max_wait(),
        }
    }
}

/// `[router.decode]`: bounds on what one message may make of the running schema. A message
/// past a bound goes to the dead-letter topic with the reason; the others are unaffected.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeConfig {
    /// Deepest nesting of objects and arrays in one payload (`{"a":[1]}` is 2).
    #[serde(default = "default_max_depth")]
    pub max_depth: usize,
    /// Most leaf fields (values that are not objects; an array counts once) in one payload.
    #[serde(default = "default_max_fields")]
    pub max_fields_per_message: usize,
    /// Most distinct leaf fields in the router's running schema; a message that would add
    /// more goes to the dead-letter topic.
    #[serde(default = "default_max_schema_fields")]
    pub max_schema_fields: usize,
    /// A top-level field no message carried for this many seconds leaves the schema
    /// (0 = never), so a fleet that renamed its fields does not pay for the old ones forever.
    #[serde(default = "default_field_ttl")]
    pub field_ttl_secs: u64,
}

const fn default_max_depth() -> usize {
    16
}
const fn default_max_fields() -> usize {
    1000
}
const fn default_max_schema_fields() -> usize {
    1000
}
const fn default_field_ttl() -> u64 {
    24 * 3600
}

impl Default for DecodeConfig {
    fn default() -> Self {
        Self {
            max_depth: default_max_depth(),
            max_fields_per_message: default_max_fields(),
            max_schema_fields: default_max_schema_fields(),
            field_ttl_secs: default_field_ttl(),
        }
    }
}

/// `[[rules]]`: one routing rule.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique name; also the `rule=` directory of its Parquet output.
    pub name: String,
    /// `SELECT … FROM telemetry | '<mqtt filter>' [WHERE …]`.
    pub sql: String,
    /// Sinks (keys of `[sinks]`) that receive the selected rows.
    pub actions: Vec<String>,
    /// Sink that receives a message, with the failure reason in `_error`, when the rule
    /// fails on it or one of its actions fails to write it; none: the dead-letter topic.
    #[serde(default)]
    pub error_action: Option<String>,
    /// Free text for people reading the config.
    #[serde(default)]
    pub description: Option<String>,
    /// Where the rule was written, for error messages (not part of the TOML).
    #[serde(skip)]
    pub origin: RuleOrigin,
}

/// Where a rule came from: `[[rules]]` number `i` of the config, or a `.sql` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RuleOrigin {
    #[default]
    Inline,
    Config(usize),
    /// The file and the (line, column) of each header value, by key (`actions[1]`).
    File {
        path: PathBuf,
        positions: BTreeMap<String, (usize, usize)>,
    },
}

impl RuleConfig {
    /// Where `key` of this rule is: `rules[2].actions[0]` or `rules/hot.sql:3:14`.
    pub fn locate(&self, key: &str) -> String {
        match &self.origin {
            RuleOrigin::Inline => format!("rule '{}' {key}", self.name),
            RuleOrigin::Config(i) => format!("rules[{i}].{key}"),
            RuleOrigin::File { path, positions } => match positions.get(key) {
                Some((l, c)) => format!("{}:{l}:{c}", path.display()),
                None => path.display().to_string(),
            },
        }
    }
}

/// `[devices]`: the device metadata table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesConfig {
    /// CSV with a `device_id` column and one column per tag (site, group, model, …),
    /// relative to the config file. Re-read when it changes, like the rule files.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// At most this many devices are kept; the rest are ignored with a warning.
    #[serde(default = "default_max_devices")]
    pub max_devices: usize,
}

const fn default_max_devices() -> usize {
    1_000_000
}

impl Default for DevicesConfig {
    fn default() -> Self {
        Self {
            file: None,
            max_devices: default_max_devices(),
        }
    }
}

impl Config {
    /// Resolves a path relative to `data_dir`.
    pub fn under_data_dir(&self, p: &std::path::Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.data_dir.join(p)
        }
    }
}

impl KafkaConfig {
    /// The librdkafka properties of every Sluice client: security first, then the user's
    /// `[kafka.properties]` (which validation keeps free of secrets and of security keys).
    pub fn client_properties(&self) -> Vec<(String, String)> {
        let s = &self.security;
        let mut p: Vec<(String, String)> = vec![(
            "security.protocol".into(),
            s.protocol.librdkafka_name().into(),
        )];
        let mut file = |key: &str, path: &Option<PathBuf>| {
            if let Some(path) = path {
                p.push((key.into(), path.display().to_string()));
            }
        };
        if s.protocol.uses_tls() {
            file("ssl.ca.location", &s.ca_file);
            file("ssl.certificate.location", &s.cert_file);
            file("ssl.key.location", &s.key_file);
            if let Some(password) = &s.key_password {
                p.push(("ssl.key.password".into(), password.expose().to_string()));
            }
            if s.ca_file.is_none() {
                // librdkafka's vendored OpenSSL knows no system CA folder: find it at run time.
                p.push(("ssl.ca.location".into(), "probe".into()));
            }
        }
        if s.protocol.uses_sasl() {
            p.push((
                "sasl.mechanism".into(),
                s.sasl_mechanism.librdkafka_name().into(),
            ));
            if let Some(user) = &s.sasl_username {
                p.push(("sasl.username".into(), user.clone()));
            }
            if let Some(password) = &s.sasl_password {
                p.push(("sasl.password".into(), password.expose().to_string()));
            }
        }
        p.extend(self.properties.iter().map(|(k, v)| (k.clone(), v.clone())));
        p
    }
}
