//! The embedded Kafka-compatible broker: tansu (sqlite storage), in-process. The pipeline
//! still talks to it over loopback through rdkafka, so the embedded and the production paths
//! are the same code.
//!
//! Layout: one function, [`spawn_kafka`]; the binary checks the address is free before and
//! waits for the listener after (`src/embedded.rs`).

use std::net::SocketAddr;
use std::path::Path;
use tansu_broker::broker::Broker;
use tansu_broker::coordinator::group::administrator::Controller;
use tansu_storage::StorageContainer;
use url::Url;

/// Why the embedded broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("embedded Kafka broker: {0}")]
    Url(#[from] url::ParseError),
    #[error("embedded Kafka broker: {0}")]
    Broker(String),
}

/// Builds tansu with sqlite storage in the file `db` (an absolute path), listening on
/// `listen` and telling clients to connect to `advertised` (a TLS terminator in front of it)
/// when given, and serves it on a task of its own.
pub async fn spawn_kafka(
    listen: SocketAddr,
    advertised: Option<&str>,
    db: &Path,
) -> Result<(), EmbeddedError> {
    // tansu joins the URL path onto the current directory; a path that itself starts with
    // '/' after the first one is stripped replaces it, which gives us an absolute file.
    let storage = Url::parse(&format!("sqlite:///{}", db.display()))?;
    let url = Url::parse(&format!("tcp://{listen}"))?;
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
        .map_err(|e| EmbeddedError::Broker(format!("{e:?}")))?;
    tokio::spawn(async move {
        let mut broker = broker;
        if let Err(e) = broker.serve(tokio::time::Instant::now()).await {
            tracing::error!(error = ?e, "embedded Kafka broker stopped");
        }
    });
    Ok(())
}
