//! The door in front of the embedded MQTT broker: devices connect here and are relayed to
//! rumqttd on a loopback port of its own, which only ingest (in this process) uses directly.
//!
//! rumqttd cannot stop accepting publishes while staying up, and a broker that keeps
//! acknowledging messages after ingest left exits with them. At a graceful stop the gate
//! closes first (no new connections, every device connection cut); ingest, still connected
//! behind it, drains what rumqttd acknowledged; then ingest and the router stop.

use std::net::SocketAddr;
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
