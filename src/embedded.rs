//! The embedded Kafka-compatible broker: tansu (sqlite storage), in-process. The pipeline
//! still talks to it over loopback through rdkafka, so the embedded and the production paths
//! are the same code.

use crate::ports::{check_free, wait_listening};
use anyhow::Context;
use sluice_config::Config;
use std::path::Path;
use std::time::Duration;
use tansu_broker::broker::Broker;
use tansu_broker::coordinator::group::administrator::Controller;
use tansu_storage::StorageContainer;
use url::Url;

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
