//! One typed event per thing that happens on the data path (Vector's `internal_events`).
//!
//! A crate declares its metrics once with [`metrics!`](crate::metrics) (name, kind, help) in
//! its `events` module, next to the event structs whose `emit()` logs and counts them. Metric
//! handles are touched only inside `emit()`; the help catalog served with `/metrics` is the
//! union of every crate's `ALL`, so a metric without help cannot exist.
//!
//! A label-less metric keeps its handle after the first emit once the process's recorder is
//! installed ([`recorder_installed`]), so the hot path does not look its name up in the
//! recorder's registry each time. Before that (or in a process with no recorder, such as a
//! unit test) every emit goes to the recorder of the moment, as `metrics`' macros do.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Something that happened, logged and counted in one place.
pub trait Event {
    fn emit(self);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// A metric's one declaration.
#[derive(Debug)]
pub struct Metric {
    pub kind: MetricKind,
    pub name: &'static str,
    pub help: &'static str,
    /// The label names its series carry (empty: one series without labels).
    pub labels: &'static [&'static str],
    /// The registered handle of a label-less metric, kept after its first emit.
    pub handle: Handle,
}

/// Whether the process's recorder is installed: handles registered from now on stay valid.
static RECORDER_INSTALLED: AtomicBool = AtomicBool::new(false);

/// Says the process's metrics recorder is installed (call right after installing it).
pub fn recorder_installed() {
    RECORDER_INSTALLED.store(true, Ordering::Release);
}

/// A label-less metric's handle, registered with the recorder once.
#[derive(Default)]
pub struct Handle {
    counter: OnceLock<metrics::Counter>,
    gauge: OnceLock<metrics::Gauge>,
    histogram: OnceLock<metrics::Histogram>,
}

impl Handle {
    pub const fn new() -> Self {
        Self {
            counter: OnceLock::new(),
            gauge: OnceLock::new(),
            histogram: OnceLock::new(),
        }
    }

    /// The cached handle in `cell`, made by `register` — none before the recorder is installed
    /// (a handle made then would stay a no-op).
    fn get<'a, T>(cell: &'a OnceLock<T>, register: impl FnOnce() -> T) -> Option<&'a T> {
        RECORDER_INSTALLED
            .load(Ordering::Acquire)
            .then(|| cell.get_or_init(register))
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handle")
    }
}

/// Label pairs, e.g. `&[("rule", name.to_string())]`.
pub type Labels<'a> = &'a [(&'static str, String)];

impl Metric {
    pub fn count(&'static self, n: u64) {
        match Handle::get(&self.handle.counter, || metrics::counter!(self.name)) {
            Some(c) => c.increment(n),
            None => metrics::counter!(self.name).increment(n),
        }
    }

    pub fn count_with(&'static self, labels: Labels, n: u64) {
        metrics::counter!(self.name, labels).increment(n);
    }

    pub fn gauge_set(&'static self, value: f64) {
        match Handle::get(&self.handle.gauge, || metrics::gauge!(self.name)) {
            Some(g) => g.set(value),
            None => metrics::gauge!(self.name).set(value),
        }
    }

    pub fn gauge_set_with(&'static self, labels: Labels, value: f64) {
        metrics::gauge!(self.name, labels).set(value);
    }

    pub fn observe(&'static self, value: f64) {
        match Handle::get(&self.handle.histogram, || metrics::histogram!(self.name)) {
            Some(h) => h.record(value),
            None => metrics::histogram!(self.name).record(value),
        }
    }

    pub fn observe_with(&'static self, labels: Labels, value: f64) {
        metrics::histogram!(self.name, labels).record(value);
    }

    /// Makes a label-less counter exist at 0, so `/metrics` lists it (and `rate()`/`increase()`
    /// in alerting rules work) before the first increment. Other kinds are left alone: a
    /// gauge's 0 would be a claim, and labelled series need their label values (a label-less
    /// series beside them would be a stray one).
    pub fn zero(&'static self) {
        if self.kind == MetricKind::Counter && self.labels.is_empty() {
            metrics::counter!(self.name).increment(0);
        }
    }

    /// Registers the help text with the installed recorder (a `# HELP` line).
    pub fn describe(&'static self) {
        match self.kind {
            MetricKind::Counter => metrics::describe_counter!(self.name, self.help),
            MetricKind::Gauge => metrics::describe_gauge!(self.name, self.help),
            MetricKind::Histogram => metrics::describe_histogram!(self.name, self.help),
        }
    }
}

/// Declares a module's metrics and `ALL`, the list the help catalog is built from; a metric
/// whose series carry labels names them in brackets:
///
/// ```
/// sluice_common::metrics! {
///     Counter MESSAGES_IN = "sluice_example_messages_in_total", "Messages received";
///     Counter ROWS["rule"] = "sluice_example_rows_total", "Rows per rule";
/// }
/// assert_eq!(ALL[0].name, "sluice_example_messages_in_total");
/// assert_eq!(ALL[1].labels, ["rule"]);
/// ```
#[macro_export]
macro_rules! metrics {
    ($( $kind:ident $ident:ident $([$($label:literal),+])? = $name:literal, $help:literal; )*) => {
        $(
            pub static $ident: $crate::Metric = $crate::Metric {
                kind: $crate::MetricKind::$kind,
                name: $name,
                help: $help,
                labels: &[$($($label),+)?],
                handle: $crate::event::Handle::new(),
            };
        )*
        /// Every metric this module declares.
        pub static ALL: &[&$crate::Metric] = &[$(&$ident),*];
    };
}
