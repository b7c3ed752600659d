//! The contract every Sluice stage shares, with no query engine and no Kafka client in it.
//!
//! Layout:
//! - [`record`]: the Kafka record between ingest and router (key, headers, value) and the
//!   dead-letter record's headers. Defined once; both sides use it.
//! - [`raw`]: [`RawBatch`], the records of one batch before decoding, column by column.
//! - [`meta`]: the metadata columns every decoded batch carries (`_device_id`, `_topic`,
//!   `_received_at`, `_partition`, `_offset`) and [`Meta`], the one place they are read.
//! - [`dead_letter`]: the dead-letter event ingest and router share, with a bounded reason.
//! - [`fault`]: whose fault an error is and whether retrying can help; the supervisor acts
//!   on it.
//! - [`retired`]: devices retired in the compliance tracker, read by the router per message.

pub mod dead_letter;
pub mod fault;
pub mod meta;
pub mod raw;
pub mod record;
pub mod retired;

pub use dead_letter::{DeadLettered, DlqReason};
pub use fault::{Classified, Classify, Retry, Whose};
pub use meta::Meta;
pub use raw::RawBatch;
pub use retired::RetiredDevices;
