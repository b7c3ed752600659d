//! The compliance gauges of one sink, kept true between checkpoints.
//!
//! Prometheus keeps the last value of every label set it was given, so a device moving from
//! group `a` to `b` would leave `a` counting it forever and the series would add up to more
//! than the fleet. Each publication therefore also sets to 0 every label set the previous one
//! showed and this one does not (an emptied group, a failed deployment whose devices recovered).
//!
//! Group names come from device payloads: only `max_group_labels` of them get their own label
//! value; reports of any further group are counted under [`OVERFLOW`], so a fleet inventing
//! groups cannot blow up `/metrics`.

use super::fleet::{ComplianceReport, Counts};
use crate::events::{ComplianceGroupsOverflowed, ComplianceMeasured};
use sluice_common::Event;
use std::collections::{BTreeMap, BTreeSet};

/// The `group` label of groups past `max_group_labels`.
pub const OVERFLOW: &str = "_overflow";

pub struct ComplianceGauges {
    sink: String,
    max_labels: usize,
    /// Group names that have their own label value (at most `max_labels` beyond the pinned).
    labelled: BTreeSet<String>,
    pinned: usize,
    overflowed: bool,
    shown_groups: BTreeSet<String>,
    shown_failed: BTreeSet<(String, String)>,
}

/// Counts per group label and failed devices per (deployment, group label).
#[derive(Debug, Default, PartialEq)]
pub struct Labelled {
    pub groups: BTreeMap<String, Counts>,
    pub failed: BTreeMap<(String, String), u64>,
}

impl ComplianceGauges {
    /// `pinned`: groups that always get their own label (configured ones).
    pub fn new(sink: &str, max_labels: usize, pinned: impl IntoIterator<Item = String>) -> Self {
        let labelled: BTreeSet<String> = pinned.into_iter().collect();
        ComplianceGauges {
            sink: sink.to_string(),
            max_labels,
            pinned: labelled.len(),
            labelled,
            overflowed: false,
            shown_groups: BTreeSet::new(),
            shown_failed: BTreeSet::new(),
        }
    }

    /// The label a group is counted under. A group keeps its label once it has one.
    fn label(&mut self, group: &str) -> String {
        if self.labelled.contains(group) {
            return group.to_string();
        }
        if self.labelled.len() < self.pinned + self.max_labels {
            self.labelled.insert(group.to_string());
            return group.to_string();
        }
        if !self.overflowed {
            self.overflowed = true;
            ComplianceGroupsOverflowed {
                sink: &self.sink,
                limit: self.max_labels,
                group,
            }
            .emit();
        }
        OVERFLOW.to_string()
    }

    /// The report's counts under bounded labels, with 0 for every label set shown last time
    /// and absent now.
    pub fn labelled(&mut self, report: &ComplianceReport) -> Labelled {
        let mut out = Labelled::default();
        for (group, c) in &report.groups {
            let label = self.label(group);
            out.groups.entry(label).or_default().merge(c);
        }
        for f in &report.failed {
            let key = (f.deployment.clone(), self.label(&f.group));
            *out.failed.entry(key).or_default() += f.devices;
        }
        let gone_groups: Vec<String> = self
            .shown_groups
            .iter()
            .filter(|g| !out.groups.contains_key(*g))
            .cloned()
            .collect();
        for g in gone_groups {
            out.groups.insert(g, Counts::empty());
        }
        for key in &self.shown_failed {
            out.failed.entry(key.clone()).or_insert(0);
        }
        // Zeroed once is enough: the exporter keeps the 0.
        self.shown_groups = out
            .groups
            .iter()
            .filter(|(_, c)| c.devices > 0)
            .map(|(g, _)| g.clone())
            .collect();
        self.shown_failed = out
            .failed
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, _)| k.clone())
            .collect();
        out
    }

    /// Sets the gauges from a report.
    pub fn publish(&mut self, report: &ComplianceReport) {
        let labelled = self.labelled(report);
        ComplianceMeasured {
            sink: &self.sink,
            total: &report.total,
            labelled: &labelled,
        }
        .emit();
    }
}
