//! Sluice processors: everything that turns raw telemetry into routed Arrow batches.
//!
//! Layout:
//! - [`record`]: the Kafka record contract, re-exported from `sluice-core` (where ingest,
//!   which links no DataFusion, reads it too).
//! - [`decode`]: a batch of raw JSON payloads → one Arrow `RecordBatch` with a stable, evolving
//!   schema plus metadata columns (`_device_id`, `_topic`, `_received_at`, `_partition`,
//!   `_offset`). Malformed payloads come back as rejects with a reason, never as a batch error.
//! - [`rule`]: the rule language. A rule's SQL is planned by DataFusion once per input schema
//!   and kept as physical expressions; each batch is filtered and projected without re-planning.
//!   [`rule::route`] sorts a batch's rows into actions, error actions, the dead-letter topic
//!   and the fallback; [`rule::devices`] is the device metadata behind `device_tag()`.
//! - [`events`]: what happens while decoding and routing (and the dead-letter event ingest and
//!   router share), each logged and counted in one `emit()`.
//! - [`rule_test`]: `sluice rules test`: case files (messages in, rows out) run through
//!   [`rule::RuleSet::route`], the router's own routing function.
//!
//! Data enters as [`decode::RawBatch`] (filled by the router from Kafka) and leaves as
//! [`rule::RuleOutput`] per rule, which sinks write.

pub mod decode;
pub mod events;
pub mod rule;
pub mod rule_test;

/// The Kafka record contract, defined in `sluice-core` (ingest uses it without this crate).
pub use sluice_core::record;

mod error;
pub use error::ProcessorError;
