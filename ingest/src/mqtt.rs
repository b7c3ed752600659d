//! The MQTT side of ingest: subscribe, hand each publish to Kafka, PUBACK after Kafka acked.

use crate::forward::{is_permanent, Forwarder, Outcome};
use crate::IngestError;
use futures::stream::{FuturesOrdered, StreamExt};
use rdkafka::error::KafkaError;
use rdkafka::producer::DeliveryFuture;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet,
    Publish, QoS, SubscribeReasonCode,
};
use sluice_config::{IngestConfig, MqttConfig};
use sluice_processors::stats::Stats;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const MAX_BACKOFF: Duration = Duration::from_secs(5);

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
        let (host, port) = broker
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
            .ok_or_else(|| IngestError::Mqtt(format!("mqtt.broker '{broker}' is not host:port")))?;
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
            let config = crate::tls::client_config(tls).map_err(IngestError::Mqtt)?;
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
        let mut backoff = Duration::from_millis(100);
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => break,
                event = eventloop.poll() => event,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff = Duration::from_millis(100);
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
                        metrics::counter!("sluice_ingest_mqtt_errors_total").increment(1);
                        tracing::error!(filters = ?self.filters, codes = ?ack.return_codes,
                            "the MQTT broker refused a subscription (its ACL does not allow this \
                             user to read these topics); ingest is not ready");
                    } else {
                        self.subscribed.store(true, Ordering::Relaxed)
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    Stats::add(&self.stats.mqtt_received, 1);
                    metrics::counter!("sluice_ingest_messages_in_total").increment(1);
                    // Waits when max_inflight messages await Kafka: backpressure to the broker.
                    if tx.send(p).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    metrics::counter!("sluice_ingest_mqtt_errors_total").increment(1);
                    tracing::warn!(error = %describe(&e), retry_in = ?backoff, "mqtt connection failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
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
    let received = crate::now_ms();
    let mut wait = Duration::from_millis(5);
    let queued = loop {
        match forwarder.send(&p.topic, &p.payload, received) {
            Ok(q) => break Ok(q),
            Err(e) if queue_full(&e) && !(shutdown.is_cancelled() && wait >= MAX_BACKOFF) => {
                tracing::debug!(error = %e, "kafka producer busy, retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_BACKOFF);
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
    let mut wait = Duration::from_millis(100);
    let mut refused: Option<String> = None;
    while let Err(e) = &result {
        metrics::counter!("sluice_ingest_kafka_errors_total").increment(1);
        if is_permanent(e) {
            if refused.is_some() {
                // Even the payload-less dead-letter record was refused: nothing more to try.
                tracing::error!(topic = %publish.topic, error = %e, "kafka refused the dead-letter record too; acknowledging the message");
                break;
            }
            metrics::counter!("sluice_ingest_kafka_rejected_total").increment(1);
            let reason = format!("kafka refused: {e}");
            tracing::warn!(topic = %publish.topic, %reason, "sending the message to the dead-letter topic");
            outcome = Outcome::DeadLetter(reason.clone());
            refused = Some(reason);
        } else {
            if shutdown.is_cancelled() {
                return; // Not acked: the broker redelivers it to the next session.
            }
            tracing::warn!(topic = %publish.topic, error = %e, retry_in = ?wait, "kafka did not confirm a record, re-sending");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_BACKOFF);
        }
        let queued = match &refused {
            Some(reason) => forwarder.dead_letter(&publish.topic, reason),
            None => forwarder
                .send(&publish.topic, &publish.payload, crate::now_ms())
                .map(|(f, _)| f),
        };
        result = match queued {
            Ok(f) => confirmed(f).await,
            Err(e) => Err(e),
        };
    }
    match &outcome {
        Outcome::Telemetry => {
            Stats::add(&stats.produced, 1);
            metrics::counter!("sluice_ingest_produced_total").increment(1);
        }
        Outcome::DeadLetter(reason) => {
            Stats::add(&stats.dead_lettered, 1);
            let reason = reason.split(':').next().unwrap_or("other").to_string();
            metrics::counter!("sluice_dlq_total", "stage" => "ingest", "reason" => reason)
                .increment(1);
        }
    }
    if let Err(e) = client.ack(&publish).await {
        tracing::warn!(error = %e, "could not queue MQTT ack; the broker will redeliver");
    }
}
