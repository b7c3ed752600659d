//! One typed event per thing that happens on the data path (Vector's `internal_events`).
//!
//! A crate declares its metrics once with [`metrics!`](crate::metrics) (name, kind, help) in
//! its `events` module, next to the event structs whose `emit()` logs and counts them. Metric
//! handles are touched only inside `emit()`; the help catalog served with `/metrics` is the
//! union of every crate's `ALL`, so a metric without help cannot exist.

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
}

/// Label pairs, e.g. `&[("rule", name.to_string())]`.
pub type Labels<'a> = &'a [(&'static str, String)];

impl Metric {
    pub fn count(&'static self, n: u64) {
        metrics::counter!(self.name).increment(n);
    }

    pub fn count_with(&'static self, labels: Labels, n: u64) {
        metrics::counter!(self.name, labels).increment(n);
    }

    pub fn gauge_set(&'static self, value: f64) {
        metrics::gauge!(self.name).set(value);
    }

    pub fn gauge_set_with(&'static self, labels: Labels, value: f64) {
        metrics::gauge!(self.name, labels).set(value);
    }

    pub fn observe(&'static self, value: f64) {
        metrics::histogram!(self.name).record(value);
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
            };
        )*
        /// Every metric this module declares.
        pub static ALL: &[&$crate::Metric] = &[$(&$ident),*];
    };
}
