//! Starting the embedded Kafka-compatible broker (the `sluice-embedded` crate): its port checked
//! first, its listener waited for after.

use crate::ports::{check_free, wait_listening};
use anyhow::Context;
use sluice_config::Config;
use std::path::Path;
use std::time::Duration;

/// Starts the embedded Kafka-compatible broker when the config names no Kafka. (There is no
/// embedded MQTT broker: devices connect to the gateway, which ingest runs.)
pub async fn start(config: &Config) -> anyhow::Result<()> {
    if config.kafka.bootstrap.is_none() {
        let e = &config.embedded;
        start_kafka(
            &e.kafka_listen,
            e.kafka_advertised.as_deref(),
            &config.data_dir,
        )
        .await?;
    }
    Ok(())
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
    sluice_embedded::spawn_kafka(addr, advertised, &db).await?;
    wait_listening(addr, Duration::from_secs(30)).await?;
    tracing::info!(%addr, db = %db.display(), "embedded Kafka broker (tansu, sqlite) listening");
    Ok(())
}
