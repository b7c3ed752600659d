//! The MQTT gateway: devices connect to Sluice itself, and a PUBACK means the message is in
//! Kafka. Each test uses the real parts — `sluice run` processes, the embedded Kafka broker,
//! rumqttc clients that resend unacknowledged publishes on reconnect — and reads the raw
//! topic back to count every (device, seq).
//!
//! - [`crash`]: `kill -9` of the gateway at random moments, SIGTERM under load, and two
//!   replicas with per-device order counted;
//! - [`hostile`]: an oversize publish between good ones, and connections that attack the door
//!   (idle sockets past the limit, no CONNECT, packets over the ceiling, a device publishing
//!   under another's id, a retired device);
//! - [`mqtt5`]: an MQTT 5 device (paho-mqtt) served, and told why a publish was refused.

mod crash;
mod hostile;
mod mqtt5;

use crate::common::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// Where each (device, seq) of the raw topic is, in Kafka order per partition.
pub struct RawTopic {
    /// Per device: its seqs in the order Kafka holds them.
    pub by_device: BTreeMap<String, Vec<i64>>,
    pub records: usize,
}

impl RawTopic {
    /// Reads the raw topic until at least `want` records arrived (or 60 s).
    pub fn read(kafka: &str, want: usize) -> Self {
        let mut by_device: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        let records = read_topic(kafka, "telemetry.raw", want);
        for (_, value, _) in &records {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(value) else {
                continue;
            };
            if let (Some(d), Some(s)) = (v["device"].as_str(), v["seq"].as_i64()) {
                by_device.entry(d.to_string()).or_default().push(s);
            }
        }
        Self {
            by_device,
            records: records.len(),
        }
    }

    /// Reads at least `at_least` records, then more while any of `expected` is missing: copies
    /// (resends after a crash) take places in the count, so the last records come later.
    pub fn read_covering(kafka: &str, at_least: usize, expected: &[(String, i64)]) -> Self {
        let mut raw = Self::read(kafka, at_least);
        for _ in 0..5 {
            let (missing, _, _) = raw.count(expected);
            if missing == 0 {
                break;
            }
            raw = Self::read(kafka, raw.records + missing);
        }
        raw
    }

    /// (missing of `expected`, copies beyond the first, seqs that came after a higher one).
    pub fn count(&self, expected: &[(String, i64)]) -> (usize, usize, usize) {
        let mut missing = 0;
        for (d, s) in expected {
            if !self.by_device.get(d).is_some_and(|v| v.contains(s)) {
                missing += 1;
            }
        }
        let (mut copies, mut reordered) = (0, 0);
        for seqs in self.by_device.values() {
            let mut seen = std::collections::HashSet::new();
            let mut highest = i64::MIN;
            for &s in seqs {
                if !seen.insert(s) {
                    copies += 1;
                } else if s < highest {
                    reordered += 1;
                }
                highest = highest.max(s);
            }
        }
        (missing, copies, reordered)
    }
}

/// A fleet publishing to `broker` in the background (devices `first..first+devices`).
pub fn fleet(
    broker: &str,
    first: usize,
    devices: usize,
    per_device: u64,
    rate: u64,
    prefix: &str,
) -> std::thread::JoinHandle<sluice_loadtest::fleet::FleetReport> {
    let cfg = sluice_loadtest::fleet::FleetConfig {
        broker: broker.to_string(),
        devices,
        first_device: first,
        messages_per_device: per_device,
        rate,
        client_prefix: prefix.to_string(),
        ..Default::default()
    };
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(sluice_loadtest::fleet::run(cfg, Duration::from_secs(240)))
            .unwrap()
    })
}

/// Every (device, seq) of devices `first..first+devices`.
pub fn expected_range(first: usize, devices: usize, per_device: u64) -> Vec<(String, i64)> {
    let mut v = Vec::new();
    for d in first..first + devices {
        for s in 0..per_device as i64 {
            v.push((sluice_loadtest::fleet::device_name(d), s));
        }
    }
    v
}
