//! Sluice: telemetry ingestion for IoT fleets. MQTT → Kafka → SQL rules → Parquet.
//!
//! This crate is the `sluice` binary's library half: it wires the stage crates together.
//!
//! - [`pipeline`]: `sluice run` — starts the roles asked for (embedded brokers, ingest,
//!   router), creates topics, serves HTTP, and shuts down in order on a signal: stop ingest
//!   (acking what Kafka confirmed), then the router (final checkpoint), then the brokers.
//! - [`embedded`]: the in-process MQTT (rumqttd) and Kafka-compatible (tansu, sqlite) brokers
//!   used when the config names no external ones (cargo feature `embedded`).
//! - [`http`]: the management API: `/metrics`, health, rules, devices, alerts, compliance,
//!   scaling; bearer tokens with viewer/operator/admin roles.
//! - [`loadtest_cli`]: `sluice loadtest` (the generator itself is `sluice_bench::loadtest`).
//! - [`ops_cli`]: `sluice scale`, `sluice compliance report` (read a running instance's API).
//! - [`scaling`]: consumer lag and rates → replica advice (`/scaling`, `sluice scale`).
//! - [`fleet`]: a simulated device fleet publishing over MQTT (demo, tests).
//! - [`demo`]: `sluice demo` — the whole path on embedded brokers, with a summary.
//! - [`ports`]: "port in use" errors that name the config key.
//! - [`supervise`]: restarts a failed stage (ingest, router) with backoff; `/readyz` says so.
//! - [`reload`]: re-reads rule files and the devices CSV while running; offers new rule sets.
//! - [`rules_cli`], [`rule_test`]: `sluice config check`, `rules check`, `rules test` (case
//!   files run through the router's own routing function).

pub mod demo;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod fleet;
pub mod http;
pub mod loadtest_cli;
pub mod ops_cli;
pub mod pipeline;
pub mod ports;
pub mod reload;
pub mod rule_test;
pub mod rules_cli;
pub mod scaling;
pub mod summary;
pub mod supervise;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    sluice_ingest::now_ms()
}
