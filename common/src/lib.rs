//! What every Sluice crate shares, one helper per chore.
//!
//! Layout:
//! - [`event`]: the [`Event`] trait (one struct per thing that happens on the data path; its
//!   `emit()` logs and counts) and [`Metric`], a metric's name, kind and help text declared
//!   once with [`metrics!`]; the Prometheus help catalog is the union of those declarations.
//! - [`stats`]: [`Stats`], the run counters summaries and tests read; updated by events.
//! - [`clock`]: wall-clock milliseconds.
//! - [`retry`]: the backoff policies of every retry loop (backon).
//! - [`fs`]: atomic file replacement and recursive file listings (walkdir).
//! - [`lock`]: one process per data directory.
//! - [`addr`]: `host:port` parsing.
//! - [`blocking`]: blocking work (sink I/O) run from async code without stalling the runtime.

pub mod addr;
pub mod clock;
pub mod event;
pub mod fs;
pub mod lock;
pub mod retry;
pub mod stats;

pub use clock::now_ms;
pub use event::{Event, Metric, MetricKind};
pub use stats::Stats;

/// Runs blocking work (file writes and fsyncs, a full queue) from async code without stalling
/// the runtime: on a multi-threaded runtime the worker hands its other tasks to another thread
/// first (`block_in_place`); on a current-thread runtime (unit tests) it just runs.
pub fn blocking<R>(work: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}
