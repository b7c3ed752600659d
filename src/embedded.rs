//! The embedded brokers: rumqttd for MQTT and tansu (sqlite storage) for Kafka, in-process.
//! The pipeline still talks to them over loopback through rumqttc and rdkafka, so the
//! embedded and the production paths are the same code.

use crate::ports::{check_free, wait_listening};
use anyhow::Context;
use sluice_config::Config;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tansu_broker::broker::Broker;
use tansu_broker::coordinator::group::administrator::Controller;
use tansu_storage::StorageContainer;
use url::Url;

/// The embedded MQTT broker as the pipeline sees it: the gate devices come through, and the
/// broker's own loopback address, which ingest in this process uses.
pub struct EmbeddedMqtt {
    pub gate: crate::gate::Gate,
    pub broker: SocketAddr,
}

/// Starts the embedded brokers the config needs (those it names no external address for).
pub async fn start(config: &Config) -> anyhow::Result<Option<EmbeddedMqtt>> {
    let mut mqtt = None;
    if config.mqtt.broker.is_none() {
        mqtt = Some(start_mqtt(&config.embedded, config.ingest.mqtt_max_packet_bytes()).await?);
        tracing::warn!(
            "the embedded MQTT broker keeps messages in memory: if this process crashes, messages \
             it acknowledged to devices that ingest had not yet written to Kafka are lost. Where \
             that matters, run an MQTT broker with persistent sessions (Mosquitto, EMQX) and set \
             [mqtt].broker"
        );
    }
    if config.kafka.bootstrap.is_none() {
        let e = &config.embedded;
        start_kafka(
            &e.kafka_listen,
            e.kafka_advertised.as_deref(),
            &config.data_dir,
        )
        .await?;
    }
    Ok(mqtt)
}

/// rumqttd on a loopback port of its own, in its own threads (its `start` blocks), behind a
/// [`crate::gate::Gate`] on `embedded.mqtt_listen`. It refuses
/// packets larger than `max_packet_bytes` (ingest reads up to the same size), and with
/// `mqtt_users` a connection without one of their user names and passwords.
pub async fn start_mqtt(
    embedded: &sluice_config::EmbeddedConfig,
    max_packet_bytes: usize,
) -> anyhow::Result<EmbeddedMqtt> {
    let listen = check_free(&embedded.mqtt_listen, "embedded.mqtt_listen")?;
    let addr = SocketAddr::from(([127, 0, 0, 1], crate::ports::free_local_port()?));
    let users: HashMap<String, String> = embedded
        .mqtt_users
        .iter()
        .map(|u| {
            let password = u.password.as_ref().map(|p| p.expose().to_string());
            (u.username.clone(), password.unwrap_or_default())
        })
        .collect();
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: max_packet_bytes,
        max_inflight_count: embedded.mqtt_max_inflight,
        auth: (!users.is_empty()).then_some(users),
        external_auth: None,
        dynamic_filters: true,
    };
    let tls = embedded
        .mqtt_tls
        .as_ref()
        .map(|t| rumqttd::TlsConfig::Rustls {
            capath: None,
            certpath: t.cert_file.display().to_string(),
            keypath: t.key_file.display().to_string(),
        });
    if embedded.mqtt_tls.is_none() && !embedded.mqtt_users.is_empty() {
        tracing::warn!("the embedded MQTT broker checks passwords but serves plain TCP: they cross the network readable; add [embedded.mqtt_tls]");
    }
    let server = rumqttd::ServerSettings {
        name: "v4".into(),
        listen: addr,
        tls,
        next_connection_delay_ms: 1,
        connections,
    };
    let config = rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            ..Default::default()
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        ..Default::default()
    };
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })?;
    wait_listening(addr, Duration::from_secs(10)).await?;
    let gate = crate::gate::Gate::open(listen, addr)
        .await
        .with_context(|| format!("embedded.mqtt_listen {listen}"))?;
    tracing::info!(%listen, tls = embedded.mqtt_tls.is_some(), users = embedded.mqtt_users.len(),
        "embedded MQTT broker (rumqttd) listening");
    Ok(EmbeddedMqtt { gate, broker: addr })
}

/// tansu with sqlite storage at `<data_dir>/tansu.db`, on `listen`, telling clients to
/// connect to `advertised` (a TLS terminator in front of it) when given.
pub async fn start_kafka(
    listen: &str,
    advertised: Option<&str>,
    data_dir: &Path,
) -> anyhow::Result<()> {
    let addr = check_free(listen, "embedded.kafka_listen")?;
    std::fs::create_dir_all(data_dir).with_context(|| format!("create {}", data_dir.display()))?;
    let db = std::path::absolute(data_dir.join("tansu.db"))?;
    // tansu joins the URL path onto the current directory; a path that itself starts with
    // '/' after the first one is stripped replaces it, which gives us an absolute file.
    let storage = Url::parse(&format!("sqlite:///{}", db.display()))?;
    let url = Url::parse(&format!("tcp://{addr}"))?;
    let advertised = match advertised {
        Some(a) => Url::parse(&format!("tcp://{a}"))?,
        None => url.clone(),
    };
    let broker = Broker::<Controller<StorageContainer>, StorageContainer>::builder()
        .node_id(1)
        .cluster_id("sluice")
        .incarnation_id(uuid::Uuid::new_v4())
        .advertised_listener(advertised)
        .storage(storage)
        .listener(url)
        .silent(true)
        .build()
        .await
        .map_err(|e| anyhow::anyhow!("embedded Kafka broker: {e:?}"))?;
    tokio::spawn(async move {
        let mut broker = broker;
        if let Err(e) = broker.serve(tokio::time::Instant::now()).await {
            tracing::error!(error = ?e, "embedded Kafka broker stopped");
        }
    });
    wait_listening(addr, Duration::from_secs(30)).await?;
    tracing::info!(%addr, db = %db.display(), "embedded Kafka broker (tansu, sqlite) listening");
    Ok(())
}
