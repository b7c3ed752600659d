//! A simulated fleet: devices publishing JSON telemetry over MQTT with QoS 1.
//!
//! Each message carries the device id in its topic (`devices/<id>/telemetry`) and in the
//! payload, a per-device sequence number and the send time, so a reader of the output can
//! check that every (device, seq) arrived. Devices are spread over a few MQTT connections.

use rumqttc::{Event, MqttOptions, Outgoing, Packet, QoS};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// MQTT broker `host:port`.
    pub broker: String,
    pub devices: usize,
    /// Index of the first device (`dev-<first_device>` …), so fleets at once can differ.
    pub first_device: usize,
    /// Messages per device.
    pub messages_per_device: u64,
    /// Messages per second over the whole fleet (0 = as fast as the broker takes them).
    pub rate: u64,
    /// MQTT connections to spread the devices over.
    pub connections: usize,
    /// Extra malformed payloads to send (invalid JSON, not an object) from device `broken`.
    pub malformed: u64,
    /// Client id prefix (must differ between fleets running at once).
    pub client_prefix: String,
    /// User name and password, for a broker that asks for them.
    pub credentials: Option<(String, String)>,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            broker: "127.0.0.1:1883".into(),
            devices: 100,
            first_device: 0,
            messages_per_device: 100,
            rate: 0,
            connections: 4,
            malformed: 0,
            client_prefix: "sluice-fleet".into(),
            credentials: None,
        }
    }
}

/// What the fleet published and the broker acknowledged.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FleetReport {
    pub published: u64,
    pub acked: u64,
    pub malformed: u64,
}

pub fn device_name(i: usize) -> String {
    format!("dev-{i:05}")
}

pub use crate::payload::reading as payload;

/// Publishes the whole fleet's messages; returns once the broker acked them all (or `within`).
pub async fn run(cfg: FleetConfig, within: Duration) -> anyhow::Result<FleetReport> {
    let acked = Arc::new(AtomicU64::new(0));
    let connections = cfg.connections.max(1).min(cfg.devices.max(1));
    let per_conn_rate = cfg.rate / connections as u64;
    let mut tasks = Vec::new();
    for c in 0..connections {
        let devices: Vec<String> = (0..cfg.devices)
            .filter(|d| d % connections == c)
            .map(|d| device_name(cfg.first_device + d))
            .collect();
        let malformed = if c == 0 { cfg.malformed } else { 0 };
        let client_id = format!("{}-{c}", cfg.client_prefix);
        tasks.push(tokio::spawn(publish_connection(
            mqtt_options(&cfg, client_id)?,
            devices,
            cfg.messages_per_device,
            per_conn_rate,
            malformed,
            acked.clone(),
            within,
        )));
    }
    let mut report = FleetReport::default();
    for t in tasks {
        let (published, malformed) = t.await??;
        report.published += published;
        report.malformed += malformed;
    }
    report.acked = acked.load(Ordering::Relaxed);
    Ok(report)
}

fn mqtt_options(cfg: &FleetConfig, client_id: String) -> anyhow::Result<MqttOptions> {
    let mut options = crate::connect::options(&cfg.broker, client_id, 200)?;
    if let Some((user, password)) = &cfg.credentials {
        options.set_credentials(user, password);
    }
    Ok(options)
}

async fn publish_connection(
    options: MqttOptions,
    devices: Vec<String>,
    per_device: u64,
    rate: u64,
    malformed: u64,
    acked: Arc<AtomicU64>,
    within: Duration,
) -> anyhow::Result<(u64, u64)> {
    let (client, mut eventloop) = crate::connect::publishing_client(options);
    let total = per_device * devices.len() as u64 + malformed;
    let acked_here = Arc::new(AtomicU64::new(0));
    let counter = acked_here.clone();
    let global = acked.clone();
    let poller = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    counter.fetch_add(1, Ordering::Relaxed);
                    global.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "fleet connection error; reconnecting");
                    tokio::time::sleep(crate::connect::RECONNECT_DELAY).await;
                }
            }
        }
    });
    let pace = (rate > 0).then(|| Duration::from_secs_f64(1.0 / rate as f64));
    let started = tokio::time::Instant::now();
    let mut sent = 0u64;
    for seq in 0..per_device {
        for d in &devices {
            let body = payload(d, seq, sluice_common::now_ms());
            client
                .publish(
                    format!("devices/{d}/telemetry"),
                    QoS::AtLeastOnce,
                    false,
                    body,
                )
                .await?;
            sent += 1;
            if let Some(p) = pace {
                tokio::time::sleep_until(started + p * sent as u32).await;
            }
        }
    }
    for i in 0..malformed {
        let body: Vec<u8> = if i % 2 == 0 {
            b"{\"seq\": oops".to_vec()
        } else {
            b"[1, 2, 3]".to_vec()
        };
        client
            .publish("devices/broken/telemetry", QoS::AtLeastOnce, false, body)
            .await?;
    }
    let deadline = tokio::time::Instant::now() + within;
    while acked_here.load(Ordering::Relaxed) < total && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client.disconnect().await.ok();
    let _ = tokio::time::timeout(Duration::from_secs(5), poller).await;
    Ok((sent + malformed, malformed))
}
