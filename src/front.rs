//! Wiring of the MQTT gateway stage: what outlives its restarts (device registry, sessions,
//! logins) is built once; each (re)start gets a fresh producer and listener.

use crate::supervise::StageRun;
use anyhow::Context;
use sluice_common::Stats;
use sluice_config::Config;
use sluice_ingest::front_door::FrontDoor;
use sluice_ingest::gateway::login::Login;
use sluice_ingest::gateway::registry::{OnRetire, Registry};
use sluice_ingest::gateway::sessions::Sessions;
use sluice_ingest::gateway::Gateway;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long the gateway waits for Kafka to give its producer an id before it lets devices in.
const PRODUCER_ID_WAIT: Duration = Duration::from_secs(10);

/// How long the gateway may take to read the device registry at start.
const REGISTRY_WITHIN: Duration = Duration::from_secs(30);

/// Builds the gateway stage's starter. `listening` is up once the listener is bound.
pub async fn gateway_starter(
    config: &Config,
    bootstrap: &str,
    stats: &Arc<Stats>,
    listening: &Arc<FrontDoor>,
    stop: &CancellationToken,
) -> anyhow::Result<impl FnMut() -> anyhow::Result<StageRun>> {
    let sessions = Arc::new(Sessions::default());
    let registry = Arc::new(Registry::default());
    if config.gateway.device_auth {
        let (r, s) = (registry.clone(), sessions.clone());
        let kafka = sluice_kafka::kafka_client_config(config, bootstrap);
        let topic = config.gateway.devices_topic.clone();
        let on_retire: OnRetire = Box::new(move |device| {
            s.kick_device(device);
        });
        tokio::task::spawn_blocking(move || r.tail(&kafka, &topic, on_retire, REGISTRY_WITHIN))
            .await?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        tracing::info!(devices = registry.len(), "device registry read");
    }
    let users: HashMap<String, String> = config
        .embedded
        .mqtt_users
        .iter()
        .map(|u| {
            let password = u.password.as_ref().map(|p| p.expose().to_string());
            (u.username.clone(), password.unwrap_or_default())
        })
        .collect();
    if config.embedded.mqtt_tls.is_none() && !users.is_empty() {
        tracing::warn!(
            "the MQTT gateway checks passwords but serves plain TCP: they cross the \
            network readable; add [embedded.mqtt_tls]"
        );
    }
    let (config, bootstrap) = (config.clone(), bootstrap.to_string());
    let (stats, listening, stop) = (stats.clone(), listening.clone(), stop.clone());
    Ok(move || {
        let producer = sluice_kafka::create_idempotent_producer(&config, &bootstrap)
            .context("kafka producer")?;
        let forwarder = sluice_ingest::Forwarder::new(producer, &config.kafka, &config.ingest);
        let login = Login {
            device_auth: config.gateway.device_auth,
            registry: registry.clone(),
            users: users.clone(),
            device_id_level: config.ingest.device_id_level,
        };
        let (config, sessions, stats) = (config.clone(), sessions.clone(), stats.clone());
        let (listening, stop) = (listening.clone(), stop.clone());
        Ok(Box::pin(async move {
            // Devices are let in once Kafka can confirm their publishes (see `ready`).
            if !forwarder.ready(PRODUCER_ID_WAIT).await {
                tracing::warn!("Kafka gave the producer no id within {PRODUCER_ID_WAIT:?}: accepting devices anyway; their publishes wait in the producer's queue");
            }
            let gateway = Gateway::bind(&config, forwarder, login, sessions, stats).await?;
            listening.set_up();
            Ok(gateway.run(stop).await?)
        }) as StageRun)
    })
}
