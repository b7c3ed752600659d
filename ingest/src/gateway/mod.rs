//! The MQTT gateway: Sluice as the devices' own MQTT endpoint (MQTT 3.1.1 and 5, over TCP or
//! TLS).
//! Each QoS 1 PUBLISH is produced to the raw topic and its PUBACK sent only after Kafka
//! confirmed it, in publish order per connection (TBMQ's and Zilla's mqtt-kafka technique),
//! so an acknowledged message is in Kafka whatever happens to the process next.
//!
//! Layout:
//! - this file: [`Gateway`] (config → runtime), the accept loop, connection limits, stop;
//! - [`frame`]: bytes → packets with rumqttc's codec; oversize publishes skipped, not fatal;
//! - [`conn`]: one connection — CONNECT, login, publishes → Kafka → acknowledgements;
//! - [`produce`]: one publish to Kafka (queue-full waits, refusals to the dead-letter topic);
//! - [`login`]: who a connection is, and which device ids it may publish for;
//! - [`registry`]: per-device credentials and retirements in a compacted Kafka topic;
//! - [`sessions`]: one connection per client id, and what proves a resend a second copy;
//! - [`wire`]: MQTT 5 packets as the 3.1.1 ones the connection handles, answers in either.
//!
//! QoS 0 is produced and not acknowledged (MQTT has nothing to send). QoS 2: PUBREC after
//! Kafka confirmed, PUBCOMP on PUBREL; a retransmission before PUBREL is not produced again.
//! SUBSCRIBE is answered with failure for every filter: the gateway is a way into Kafka, not
//! a broker (devices that need commands use a broker and Sluice's broker mode).

pub mod conn;
pub mod events;
pub mod frame;
pub mod login;
pub mod produce;
pub mod registry;
pub mod sessions;
pub mod wire;

use crate::forward::Forwarder;
use crate::IngestError;
use conn::{Connection, Ended};
use frame::Framer;
use login::Login;
use rumqttc::tokio_rustls::TlsAcceptor;
use sessions::Sessions;
use sluice_common::{Event as _, Stats};
use sluice_config::Config;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A packet larger than this closes the connection (a larger PUBLISH, up to here, is skipped
/// and dead-lettered).
pub const HARD_CEILING: usize = 16 << 20;
/// Connections that have not logged in yet, at most: a quarter of `gateway.max_connections`
/// up to this, so sockets that never send a CONNECT cannot take every slot from the fleet.
const MAX_UNAUTHENTICATED: usize = 1024;
/// How often the accept loop checks the producer's health.
const PRODUCER_CHECK: Duration = Duration::from_secs(1);

/// A device-chosen string made safe for a log line (control characters escaped, bounded).
pub fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(200).flat_map(char::escape_debug).collect();
    if s.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// What every connection of a gateway shares.
pub struct Shared {
    pub forwarder: Arc<Forwarder>,
    pub login: Login,
    pub sessions: Arc<Sessions>,
    pub stats: Arc<Stats>,
    /// Publishes of one connection waiting for Kafka, at most.
    pub window: usize,
    max_packet: usize,
    connect_timeout: Duration,
    max_keep_alive: u16,
    open: AtomicUsize,
}

/// The gateway stage, ready to run.
pub struct Gateway {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    max_connections: usize,
}

impl Gateway {
    /// Binds `embedded.mqtt_listen`. `sessions` and the registry in `login` outlive restarts.
    pub async fn bind(
        config: &Config,
        forwarder: Forwarder,
        login: Login,
        sessions: Arc<Sessions>,
        stats: Arc<Stats>,
    ) -> Result<Self, IngestError> {
        let listen = &config.embedded.mqtt_listen;
        let addr = sluice_common::addr::listen_addr(listen)
            .map_err(|e| IngestError::Mqtt(format!("embedded.mqtt_listen: {e}")))?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| IngestError::Mqtt(format!("embedded.mqtt_listen {listen}: {e}")))?;
        let tls = match &config.embedded.mqtt_tls {
            Some(t) => Some(TlsAcceptor::from(Arc::new(crate::tls::server_config(t)?))),
            None => None,
        };
        let max_payload = config.ingest.max_payload_bytes;
        let shared = Shared {
            forwarder: Arc::new(forwarder),
            login,
            sessions,
            stats,
            window: config.embedded.mqtt_max_inflight.max(1),
            // Room for the longest topic (65 535 bytes), its length and the packet id.
            max_packet: max_payload.saturating_add(65_540),
            connect_timeout: Duration::from_secs(config.gateway.connect_timeout_secs),
            max_keep_alive: config.gateway.max_keep_alive_secs.min(65_535) as u16,
            open: AtomicUsize::new(0),
        };
        Ok(Self {
            listener,
            tls,
            shared: Arc::new(shared),
            max_connections: config.gateway.max_connections,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop`, then lets every connection finish what Kafka has in flight.
    /// Returns early (an error) only when the producer broke for good.
    pub async fn run(self, stop: CancellationToken) -> Result<(), IngestError> {
        let connections = Arc::new(Semaphore::new(self.max_connections));
        let logins = Arc::new(Semaphore::new(
            (self.max_connections / 4).clamp(1, MAX_UNAUTHENTICATED),
        ));
        let conn_stop = stop.child_token();
        let mut tasks = JoinSet::new();
        let mut check = tokio::time::interval(PRODUCER_CHECK);
        tracing::info!(listen = %self.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            tls = self.tls.is_some(), open = self.shared.login.open(),
            device_auth = self.shared.login.device_auth, "MQTT gateway listening");
        let failed = loop {
            tokio::select! {
                _ = stop.cancelled() => break None,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = check.tick() => {
                    if let Some(why) = self.shared.forwarder.fatal_error() {
                        crate::events::ProducerFailed { why: &why }.emit();
                        break Some(why);
                    }
                }
                accepted = self.listener.accept() => match accepted {
                    Ok((socket, peer)) => {
                        let refused = |reason| crate::events::GatewayRefused { reason, peer: &peer }.emit();
                        let Ok(slot) = connections.clone().try_acquire_owned() else {
                            refused("connection_limit");
                            continue;
                        };
                        let Ok(login) = logins.clone().try_acquire_owned() else {
                            refused("login_limit");
                            continue;
                        };
                        let (shared, tls, stop) = (self.shared.clone(), self.tls.clone(), conn_stop.clone());
                        tasks.spawn(connection(socket, peer, shared, tls, [slot, login], stop));
                    }
                    Err(e) => {
                        // Out of file descriptors, most likely: wait instead of spinning.
                        crate::events::GatewayAcceptFailed { error: &e }.emit();
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        };
        drop(self.listener);
        conn_stop.cancel();
        while tasks.join_next().await.is_some() {}
        match failed {
            Some(why) => Err(IngestError::ProducerFatal(why)),
            None => Ok(()),
        }
    }
}

/// One accepted socket: TLS (when configured), the handshake within the connect timeout,
/// then the connection until it ends.
async fn connection(
    socket: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    permits: [OwnedSemaphorePermit; 2],
    stop: CancellationToken,
) {
    let open = shared.open.fetch_add(1, Ordering::Relaxed) + 1;
    events::OpenSockets(open).emit();
    let _ = socket.set_nodelay(true);
    let within = shared.connect_timeout;
    match tls {
        Some(acceptor) => match tokio::time::timeout(within, acceptor.accept(socket)).await {
            Ok(Ok(stream)) => serve(stream, peer, &shared, permits, stop).await,
            _ => crate::events::GatewayRefused {
                reason: "tls_handshake",
                peer: &peer,
            }
            .emit(),
        },
        None => serve(socket, peer, &shared, permits, stop).await,
    }
    let open = shared.open.fetch_sub(1, Ordering::Relaxed) - 1;
    events::OpenSockets(open).emit();
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    [slot, login]: [OwnedSemaphorePermit; 2],
    stop: CancellationToken,
) {
    let mut framer = Framer::new(shared.max_packet, HARD_CEILING);
    let handshake = conn::handshake(&mut io, &mut framer, shared);
    let (connect, identity, session) =
        match tokio::time::timeout(shared.connect_timeout, handshake).await {
            Ok(Ok(accepted)) => accepted,
            Ok(Err(why)) => {
                tracing::debug!(%peer, why, "gateway: connection not accepted");
                return crate::events::GatewayRefused {
                    reason: "handshake",
                    peer: &peer,
                }
                .emit();
            }
            Err(_) => {
                return crate::events::GatewayRefused {
                    reason: "connect_timeout",
                    peer: &peer,
                }
                .emit()
            }
        };
    drop(login);
    events::Connected.emit();
    let keep_alive = match connect.keep_alive {
        0 => shared.max_keep_alive,
        k => k.min(shared.max_keep_alive),
    };
    let ended: Ended = Connection {
        io,
        framer,
        shared: shared.clone(),
        identity,
        session,
        keep_alive: Duration::from_millis(u64::from(keep_alive) * 1500),
        stop,
    }
    .serve()
    .await;
    events::Disconnected { why: ended }.emit();
    drop(slot);
}
