//! The MQTT side of ingest: subscribe, hand each publish to Kafka, PUBACK after Kafka acked.

use crate::events::{
    KafkaRefused, KafkaSendFailed, MessageReceived, MqttConnectionFailed, RecordProduced,
    SubscriptionRefused,
};
use crate::forward::{is_permanent, Forwarder, Outcome};
use crate::IngestError;
use futures::stream::{FuturesOrdered, StreamExt};
use rdkafka::error::KafkaError;
use rdkafka::producer::DeliveryFuture;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet,
    Publish, QoS, SubscribeReasonCode,
};
use sluice_common::retry::{Backoff, Policy};
use sluice_common::Event as _;
use sluice_common::Stats;
use sluice_config::{IngestConfig, MqttConfig};
use sluice_processors::events::DeadLettered;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Reconnecting to the MQTT broker.
const RECONNECT: Policy = Policy::doubling(Duration::from_millis(100), Duration::from_secs(5));
/// Re-sending a record Kafka did not confirm.
const RESEND: Policy = Policy::doubling(Duration::from_millis(100), Duration::from_secs(5));
/// Waiting for room in librdkafka's queue (at shutdown: until the wait reaches its cap).
const QUEUE_FULL: Policy = Policy::doubling(Duration::from_millis(5), Duration::from_secs(5));

/// The ingest stage, ready to run.
pub struct Ingest {
    options: MqttOptions,
    filters: Vec<String>,
    forwarder: Forwarder,
    max_inflight: usize,
    stats: Arc<Stats>,
    subscribed: Arc<AtomicBool>,
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
            subscribed: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Becomes true once the broker confirmed the subscriptions (the stage is ready).
    pub fn subscribed(&self) -> Arc<AtomicBool> {
        self.subscribed.clone()
    }

    /// Reports subscription on `flag` (shared by every restart of the stage).
    pub fn with_subscribed(mut self, flag: Arc<AtomicBool>) -> Self {
        self.subscribed = flag;
        self
    }

    /// Runs until `shutdown`; then acknowledges what Kafka confirmed and disconnects.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), IngestError> {
        let (client, mut eventloop) =
            AsyncClient::new(self.options.clone(), self.max_inflight * 2 + 64);
        let (tx, rx) = mpsc::channel::<Publish>(self.max_inflight);
        let acker = tokio::spawn(ack_loop(
            rx,
            client.clone(),
            self.forwarder.clone(),
            self.stats.clone(),
            self.max_inflight,
            shutdown.clone(),
        ));
        let mut backoff = Backoff::new(RECONNECT);
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => break,
                event = eventloop.poll() => event,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff.reset();
                    tracing::info!(filters = ?self.filters, "mqtt connected, subscribing");
                    for f in &self.filters {
                        client
                            .subscribe(f.clone(), QoS::AtLeastOnce)
                            .await
                            .map_err(|e| IngestError::Mqtt(e.to_string()))?;
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    if ack.return_codes.contains(&SubscribeReasonCode::Failure) {
                        // Retrying cannot help: the broker's ACL decides. Stay unready and say so.
                        let codes = format!("{:?}", ack.return_codes);
                        SubscriptionRefused {
                            filters: &self.filters,
                            codes,
                        }
                        .emit();
                    } else {
                        self.subscribed.store(true, Ordering::Relaxed)
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    MessageReceived { stats: &self.stats }.emit();
                    // Waits when max_inflight messages await Kafka: backpressure to the broker.
                    if tx.send(p).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let retry_in = backoff.next_delay();
                    MqttConnectionFailed {
                        hint: &describe(&e),
                        retry_in,
                    }
                    .emit();
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(retry_in) => {}
                    }
                }
            }
        }
        drop(tx);
        finish(client, eventloop, acker).await;
        Ok(())
    }
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
async fn finish(client: AsyncClient, mut eventloop: EventLoop, acker: tokio::task::JoinHandle<()>) {
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

/// A message and what Kafka said of its record.
type Delivered = (Publish, Outcome, Result<(), KafkaError>);

/// Sends each message to Kafka as it arrives and acks in arrival order once Kafka confirmed.
async fn ack_loop(
    mut rx: mpsc::Receiver<Publish>,
    client: AsyncClient,
    forwarder: Forwarder,
    stats: Arc<Stats>,
    max_inflight: usize,
    shutdown: CancellationToken,
) {
    let mut pending = FuturesOrdered::new();
    let mut open = true;
    while open || !pending.is_empty() {
        tokio::select! {
            biased;
            Some(delivered) = pending.next(), if !pending.is_empty() => {
                acknowledge(delivered, &client, &forwarder, &stats, &shutdown).await;
            }
            msg = rx.recv(), if open && pending.len() < max_inflight => match msg {
                Some(p) => pending.push_back(send(&forwarder, p, &shutdown).await),
                None => open = false,
            },
        }
    }
}

fn queue_full(e: &KafkaError) -> bool {
    e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
}

async fn confirmed(future: DeliveryFuture) -> Result<(), KafkaError> {
    match future.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e),
        Err(_) => Err(KafkaError::Canceled),
    }
}

/// Queues a message with the producer (waiting while its queue is full, without blocking a
/// runtime thread and giving up at shutdown: an unacked message is redelivered).
async fn send(
    forwarder: &Forwarder,
    p: Publish,
    shutdown: &CancellationToken,
) -> impl std::future::Future<Output = Delivered> {
    let received = sluice_common::now_ms();
    let mut wait = Backoff::new(QUEUE_FULL);
    let queued = loop {
        match forwarder.send(&p.topic, &p.payload, received) {
            Ok(q) => break Ok(q),
            Err(e) if queue_full(&e) && !(shutdown.is_cancelled() && wait.at_max()) => {
                tracing::debug!(error = %e, "kafka producer busy, retrying");
                tokio::time::sleep(wait.next_delay()).await;
            }
            Err(e) => break Err(e),
        }
    };
    async move {
        match queued {
            Ok((future, outcome)) => (p, outcome, confirmed(future).await),
            Err(e) => (p, Outcome::Telemetry, Err(e)),
        }
    }
}

/// Acks a message once Kafka confirmed its record. A record Kafka refused for good is
/// replaced by a dead-letter record (then acked); a transient failure is retried with backoff
/// until it succeeds or the stage stops (then the message stays unacked: redelivered).
async fn acknowledge(
    (publish, mut outcome, mut result): Delivered,
    client: &AsyncClient,
    forwarder: &Forwarder,
    stats: &Stats,
    shutdown: &CancellationToken,
) {
    let mut wait = Backoff::new(RESEND);
    let mut refused: Option<String> = None;
    while let Err(e) = &result {
        let topic = &publish.topic;
        if is_permanent(e) {
            let reason = format!("kafka refused: {e}");
            let dead_letter_too = refused.is_some();
            KafkaRefused {
                topic,
                reason: &reason,
                dead_letter_too,
            }
            .emit();
            if dead_letter_too {
                break; // Even the payload-less dead-letter record was refused.
            }
            outcome = Outcome::DeadLetter(reason.clone());
            refused = Some(reason);
        } else {
            if shutdown.is_cancelled() {
                return; // Not acked: the broker redelivers it to the next session.
            }
            let retry_in = wait.next_delay();
            KafkaSendFailed {
                topic,
                error: e,
                retry_in,
            }
            .emit();
            tokio::time::sleep(retry_in).await;
        }
        let queued = match &refused {
            Some(reason) => forwarder.dead_letter(&publish.topic, reason),
            None => forwarder
                .send(&publish.topic, &publish.payload, sluice_common::now_ms())
                .map(|(f, _)| f),
        };
        result = match queued {
            Ok(f) => confirmed(f).await,
            Err(e) => Err(e),
        };
    }
    match &outcome {
        Outcome::Telemetry => RecordProduced { stats }.emit(),
        Outcome::DeadLetter(reason) => DeadLettered {
            stage: "ingest",
            reason,
            stats,
        }
        .emit(),
    }
    if let Err(e) = client.ack(&publish).await {
        tracing::warn!(error = %e, "could not queue MQTT ack; the broker will redeliver");
    }
}
