//! The MQTT side of ingest: subscribe, hand each publish to Kafka, PUBACK after Kafka acked.

use crate::deliver::{Acker, Inbound};
use crate::events::{MessageReceived, MqttConnectionFailed, SubscriptionRefused};
use crate::forward::Forwarder;
use crate::front_door::FrontDoor;
use crate::resend::{content_hash, InKafka};
use crate::IngestError;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS,
    SubscribeReasonCode,
};
use sluice_common::retry::{Backoff, Policy};
use sluice_common::Event as _;
use sluice_common::Stats;
use sluice_config::{IngestConfig, MqttConfig};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Reconnecting to the MQTT broker.
const RECONNECT: Policy = Policy::doubling(Duration::from_millis(100), Duration::from_secs(5));
/// Messages held beyond what is being sent, as multiples of `max_inflight`: a broker keeps
/// far fewer than this unacknowledged (its in-flight window), so reaching it means a broker
/// that ignores the window, and only then does ingest stop reading the socket.
const BACKLOG_WINDOWS: usize = 16;

/// The ingest stage, ready to run.
pub struct Ingest {
    options: MqttOptions,
    filters: Vec<String>,
    forwarder: Forwarder,
    max_inflight: usize,
    stats: Arc<Stats>,
    front_door: Arc<FrontDoor>,
}

impl Ingest {
    /// `broker` is `host:port`.
    pub fn new(
        mqtt: &MqttConfig,
        ingest: &IngestConfig,
        broker: &str,
        forwarder: Forwarder,
        stats: Arc<Stats>,
    ) -> Result<Self, IngestError> {
        let (host, port) = sluice_common::addr::host_port(broker)
            .map_err(|e| IngestError::Mqtt(format!("mqtt.broker {e}")))?;
        let mut options = MqttOptions::new(&mqtt.client_id, host, port);
        options
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_keep_alive(Duration::from_secs(mqtt.keep_alive_secs))
            // Room for every ack we may owe plus subscribes, so queuing an ack never waits.
            .set_request_channel_capacity(ingest.max_inflight * 2 + 64)
            .set_max_packet_size(ingest.mqtt_max_packet_bytes(), 1 << 20);
        if let Some(user) = &mqtt.username {
            let password = mqtt.password.as_ref().map(|p| p.expose().to_string());
            options.set_credentials(user, password.unwrap_or_default());
        }
        if let Some(tls) = &mqtt.tls {
            let config = crate::tls::client_config(tls)?;
            options.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(Arc::new(config)),
            ));
        }
        let filters = mqtt
            .topics
            .iter()
            .map(|t| match &mqtt.shared_group {
                Some(g) => format!("$share/{g}/{t}"),
                None => t.clone(),
            })
            .collect();
        Ok(Self {
            options,
            filters,
            forwarder,
            max_inflight: ingest.max_inflight,
            stats,
            front_door: Arc::default(),
        })
    }

    /// Up once the broker confirmed the subscriptions; down, with the reason, while the
    /// connection fails.
    pub fn front_door(&self) -> Arc<FrontDoor> {
        self.front_door.clone()
    }

    /// Reports on `door` (shared by every restart of the stage).
    pub fn with_front_door(mut self, door: Arc<FrontDoor>) -> Self {
        self.front_door = door;
        self
    }

    /// Runs until `shutdown`; then acknowledges what Kafka confirmed and disconnects.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), IngestError> {
        let (client, mut eventloop) =
            AsyncClient::new(self.options.clone(), self.max_inflight * 2 + 64);
        let (tx, rx) = mpsc::channel::<Inbound>(self.max_inflight);
        let connection = Arc::new(AtomicU64::new(0));
        let in_kafka = Arc::new(InKafka::default());
        let acker = Acker {
            in_kafka: in_kafka.clone(),
            client: client.clone(),
            forwarder: self.forwarder.clone(),
            stats: self.stats.clone(),
            max_inflight: self.max_inflight,
            connection: connection.clone(),
        };
        let mut acker = tokio::spawn(acker.run(rx, shutdown.clone()));
        // Received, not yet handed to the acker: lets the connection be polled while Kafka
        // is slow (see BACKLOG_WINDOWS).
        let mut backlog: VecDeque<Inbound> = VecDeque::new();
        let backlog_cap = self.max_inflight.max(1) * BACKLOG_WINDOWS;
        let mut backoff = Backoff::new(RECONNECT);
        let failed = loop {
            let event = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break None,
                done = &mut acker => break Some(done),
                permit = tx.reserve(), if !backlog.is_empty() => {
                    match (permit, backlog.pop_front()) {
                        (Ok(permit), Some(inbound)) => permit.send(inbound),
                        _ => break None,
                    }
                    continue;
                }
                event = eventloop.poll(), if backlog.len() < backlog_cap => event,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff.reset();
                    new_connection(&connection, &mut backlog);
                    tracing::info!(filters = ?self.filters, "mqtt connected, subscribing");
                    for f in &self.filters {
                        client
                            .subscribe(f.clone(), QoS::AtLeastOnce)
                            .await
                            .map_err(|e| IngestError::Mqtt(e.to_string()))?;
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => self.on_suback(&ack),
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    MessageReceived { stats: &self.stats }.emit();
                    let connection = connection.load(Ordering::Acquire);
                    let content = content_hash(&publish.topic, &publish.payload);
                    // Decided on arrival, before the backlog can be dropped by a reconnect.
                    let in_kafka = in_kafka.arrived(publish.pkid, publish.dup, content);
                    backlog.push_back(Inbound {
                        publish,
                        connection,
                        content,
                        in_kafka,
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    new_connection(&connection, &mut backlog);
                    let retry_in = backoff.next_delay();
                    let hint = describe(&e);
                    self.front_door.set_down(format!(
                        "mqtt broker at {}:{}: {hint} (retrying)",
                        self.options.broker_address().0,
                        self.options.broker_address().1
                    ));
                    MqttConnectionFailed {
                        hint: &hint,
                        retry_in,
                    }
                    .emit();
                    tokio::select! {
                        _ = shutdown.cancelled() => break None,
                        _ = tokio::time::sleep(retry_in) => {}
                    }
                }
            }
        };
        drop(tx);
        match failed {
            // The acker stopped on its own: the producer broke. Restart the stage.
            Some(Ok(Err(e))) => Err(e),
            Some(_) => Err(IngestError::Mqtt("the acknowledging task ended".into())),
            None => {
                finish(client, eventloop, acker).await;
                Ok(())
            }
        }
    }

    fn on_suback(&self, ack: &rumqttc::SubAck) {
        if ack.return_codes.contains(&SubscribeReasonCode::Failure) {
            // Retrying cannot help: the broker's ACL decides. Stay unready and say so.
            let codes = format!("{:?}", ack.return_codes);
            self.front_door.set_down(format!(
                "the mqtt broker refused the subscriptions {:?} ({codes}): check its ACL \
                 for mqtt.client_id / mqtt.username",
                self.filters
            ));
            SubscriptionRefused {
                filters: &self.filters,
                codes,
            }
            .emit();
        } else {
            self.front_door.set_up()
        }
    }
}

/// A connection closed or opened: acknowledgements owed to the old one are not sent, and
/// messages not yet handed to Kafka are dropped (the broker redelivers both).
fn new_connection(connection: &AtomicU64, backlog: &mut VecDeque<Inbound>) {
    connection.fetch_add(1, Ordering::AcqRel);
    backlog.clear();
}

/// A connection failure in words an operator can act on: what failed, and what to check.
fn describe(e: &ConnectionError) -> String {
    let hint = match e {
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized,
        ) => {
            "the broker refused the login: check the user name and password (mqtt.username, \
             SLUICE_MQTT_PASSWORD or mqtt.password_file), the client certificate and the client id"
        }
        ConnectionError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "nothing accepts connections there: is the broker up, and are mqtt.broker \
             (SLUICE_MQTT_BROKER) and its port right?"
        }
        _ => {
            let text = e.to_string();
            if text.contains("certificate") || text.contains("UnknownIssuer") {
                "TLS: the broker's certificate was not accepted: is mqtt.tls.ca_file the CA that \
                 signed it, and does it name the host (or mqtt.tls.server_name)?"
            } else if text.contains("tls") || text.contains("TLS") || text.contains("handshake") {
                "TLS handshake failed: does the broker speak TLS on this port, and does it want a \
                 client certificate (mqtt.tls.cert_file, key_file)?"
            } else {
                return text;
            }
        }
    };
    format!("{e}: {hint}")
}

/// Keeps the MQTT connection polled (so queued PUBACKs go out) until the acker is done,
/// then disconnects. Messages arriving now are neither forwarded nor acked: the broker
/// redelivers them to the next session.
async fn finish(
    client: AsyncClient,
    mut eventloop: EventLoop,
    acker: JoinHandle<Result<(), IngestError>>,
) {
    let deadline = tokio::time::sleep(Duration::from_secs(30));
    tokio::pin!(deadline);
    tokio::pin!(acker);
    let mut acker_done = false;
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            _ = &mut acker, if !acker_done => {
                acker_done = true;
                let _ = client.try_disconnect();
            }
            ev = eventloop.poll() => match ev {
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                Err(_) if acker_done => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                _ => {}
            }
        }
    }
}
