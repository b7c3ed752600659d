//! Sluice's Kafka client presets, in one place every stage uses (ingest's producer, the
//! router's consumer and dead-letter producer, the scaling monitor's lag reader, the alert
//! sinks' producers, topic creation).
//!
//! Layout:
//! - [`client`]: the settings every client shares: bootstrap, `[kafka.security]` (TLS, SASL)
//!   and the user's `[kafka.properties]`; the config check and the start-up preflight.
//! - [`presets`]: what each kind of client adds: the idempotent producer (ingest, dead
//!   letters), the router's consumer.
//! - [`producer_id`]: ingest's idempotent producer, which can say when the broker gave it
//!   its producer id (until then librdkafka holds every record).
//! - [`topics`]: creating the raw, dead-letter and alert topics at start.

pub mod client;
pub mod presets;
pub mod producer_id;
pub mod topics;

pub use client::{
    bootstrap, check_client_config, kafka_client_config, partition_ids, preflight, ClientError,
    FETCH_WAIT_MS,
};
pub use presets::{idempotent_producer, router_consumer};
pub use producer_id::{create_idempotent_producer, IdempotentProducer};
pub use topics::{ensure_topics, TopicError};
