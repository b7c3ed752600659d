//! README's "What Sluice guarantees", read hostilely (issue #24): one test per point, named
//! after it, each with real parts.

mod disk_full;
mod g14_fleet_wide_state;
mod g15_browser;
mod g1_redelivery;
mod g2_failed_alerts;
mod g6_bounded_state;
mod raw_topic;
