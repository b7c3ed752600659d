//! Sluice processors: everything that turns raw telemetry into routed Arrow batches.
//!
//! Layout:
//! - [`record`]: the Kafka record contract between ingest and router (key, headers, value)
//!   and the dead-letter record. Defined once here; both sides use it.
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
pub mod record;
pub mod rule;
pub mod rule_test;

mod error;
pub use error::ProcessorError;
