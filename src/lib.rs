//! Sluice: telemetry ingestion for IoT fleets. MQTT → Kafka → SQL rules → Parquet.
//!
//! This crate is the `sluice` binary's library half: the command line and the wiring of the
//! stage crates. Behaviour lives in the crates it wires (see README's layout section).
//!
//! - [`cli`]: one file per subcommand (`run`, `demo`, `config`/`rules`, `scale`,
//!   `compliance`, `loadtest`).
//! - [`pipeline`]: `sluice run` — starts the roles asked for (the embedded Kafka broker,
//!   ingest — the MQTT gateway, or a subscriber of the fleet's broker — and the router),
//!   creates topics, serves HTTP, and shuts down in order on a signal: stop ingest (it
//!   acknowledges what Kafka confirmed), then the router (final checkpoint). The embedded
//!   broker's tasks are detached and end with the process.
//! - [`health`]: what the running pipeline shares with the API (`/readyz`, stage health).
//! - [`supervise`]: runs each stage and restarts it with backoff after a failure.
//! - [`embedded`]: the in-process Kafka-compatible broker (tansu, sqlite) used when the config
//!   names no Kafka (cargo feature `embedded`).
//! - [`http`]: the management API: `/metrics`, health, rules, devices, alerts, compliance,
//!   scaling; bearer tokens with viewer/operator/admin roles.
//! - [`events`]: supervision and API events, and the catalog of every crate's metrics.
//! - [`ports`]: "port in use" errors that name the config key.

pub mod cli;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod events;
mod front;
pub mod health;
pub mod http;
pub mod pipeline;
pub mod ports;
pub mod supervise;
