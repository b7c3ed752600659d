//! The door in front of the embedded MQTT broker: devices connect here and are relayed to
//! rumqttd on a loopback port of its own, which only ingest (in this process) uses directly.
//!
//! rumqttd cannot stop accepting publishes while staying up, and a broker that keeps
//! acknowledging messages after ingest left exits with them. At a graceful stop the gate
//! closes first (no new connections, every device connection cut); ingest, still connected
//! behind it, drains what rumqttd acknowledged; then ingest and the router stop.

use sluice_common::Stats;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub struct Gate {
    closed: CancellationToken,
}

impl Gate {
    /// Relays connections from `listen` to `broker` until [`Gate::close`].
    pub async fn open(listen: SocketAddr, broker: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let closed = CancellationToken::new();
        tokio::spawn(accept(listener, broker, closed.clone()));
        Ok(Self { closed })
    }

    /// Stops accepting and cuts every relayed connection.
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Closes, then (with ingest's counters) waits until ingest drained the broker.
    pub async fn close_and_drain(&self, ingest: Option<&Stats>) {
        self.close();
        if let Some(stats) = ingest {
            drain_ingest(stats).await;
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

async fn accept(listener: TcpListener, broker: SocketAddr, closed: CancellationToken) {
    loop {
        let (device, _) = tokio::select! {
            _ = closed.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "embedded MQTT: accept failed");
                    continue;
                }
            },
        };
        tokio::spawn(relay(device, broker, closed.clone()));
    }
}

async fn relay(mut device: TcpStream, broker: SocketAddr, closed: CancellationToken) {
    let _ = device.set_nodelay(true);
    let Ok(mut upstream) = TcpStream::connect(broker).await else {
        return; // The broker is gone (shutting down): the device reconnects later.
    };
    let _ = upstream.set_nodelay(true);
    tokio::select! {
        _ = closed.cancelled() => {}
        _ = tokio::io::copy_bidirectional(&mut device, &mut upstream) => {}
    }
}

/// Waits until ingest has written every message it received to Kafka and nothing new came
/// for a moment (the embedded broker has nothing left for it), within a deadline.
async fn drain_ingest(stats: &Stats) {
    const QUIET: Duration = Duration::from_millis(500);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let handled = || Stats::get(&stats.produced) + Stats::get(&stats.dead_lettered);
    let mut last = (
        Stats::get(&stats.mqtt_received),
        tokio::time::Instant::now(),
    );
    while tokio::time::Instant::now() < deadline {
        let received = Stats::get(&stats.mqtt_received);
        if received != last.0 {
            last = (received, tokio::time::Instant::now());
        } else if last.1.elapsed() >= QUIET && handled() >= received {
            tracing::info!(received, "ingest drained the embedded broker");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::warn!("ingest did not drain the embedded broker within 20 s; stopping anyway");
}
