//! End-to-end tests against real parts (the embedded brokers, Mosquitto, stunnel, openssl, a
//! real HTTP server for webhooks, Parquet read back), in one test binary: DataFusion and
//! librdkafka are linked once, and `cargo test` runs the modules' tests in parallel.
//!
//! - [`common`]: a `sluice` process on free ports, deadline waits, Parquet read-back, fleets.
//! - one module per concern: the spine ([`embedded`], [`mosquitto`], [`crash`], [`malformed`]),
//!   faults other than crashes ([`faults`]), processes killed at random ([`chaos`]),
//!   hostile input ([`hostile`], [`poison`]), alerts, compliance, hot reload, the API, scaling,
//!   the load generator, the CLI and the demo, and [`security`] (TLS, authentication, secrets).

mod common;

mod alert_handover;
mod alert_outage;
mod alerts;
mod api;
mod chaos;
mod cli;
mod compliance;
mod console;
mod crash;
mod delta;
mod demo;
mod embedded;
mod faults;
mod gateway;
mod guarantees;
mod hostile;
mod kafka_outage;
mod loadtest;
mod malformed;
mod mosquitto;
mod newcomer;
mod object_store;
mod payloads;
mod poison;
mod preview;
mod readme_scale_out;
mod reload;
mod rules_cli;
mod scale_out;
mod scaling;
mod security;
mod sparkplug;
