//! One device connection: CONNECT and login, then publishes to Kafka and their
//! acknowledgements in publish order, each sent only after Kafka confirmed the publish.
//!
//! At most `embedded.mqtt_max_inflight` publishes wait for Kafka at once; past that the socket
//! is not read (TCP slows the device down; memory stays flat). When the connection ends — the
//! device left, the keep-alive lapsed, the session was taken over, the device was retired or
//! the gateway stops — reading stops first, what is in flight is still confirmed and
//! acknowledged where the socket allows, and only then does the connection close.

use super::frame::{Frame, Framer};
use super::login::Identity;
use super::produce::{produce, Job};
use super::sessions::Session;
use super::wire::{Refused, Version};
use super::{events, printable, Shared};
use crate::forward::Outcome;
use crate::resend::content_hash;
use bytes::{Bytes, BytesMut};
use futures::stream::{FuturesOrdered, StreamExt};
use futures::FutureExt;
use rumqttc::mqttbytes::v4::{Connect, Packet, Publish};
use rumqttc::mqttbytes::{Protocol, QoS};
use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode;
use rumqttc::ConnectReturnCode;
use sluice_common::Event as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A device that does not read its acknowledgements for this long is cut off.
const WRITE_WITHIN: Duration = Duration::from_secs(30);

/// How long a connection we end keeps reading (and discarding) after its last PUBACK, waiting
/// for the device to close its side.
const LINGER: Duration = Duration::from_secs(2);

/// A publish's way through Kafka, finished.
struct Done {
    pkid: u16,
    qos: QoS,
    content: u64,
    /// What MQTT 5 tells the device if the publish is dead-lettered.
    refused: Refused,
    result: Result<Outcome, String>,
}

type Pending = Pin<Box<dyn Future<Output = Done> + Send>>;

/// Why a connection ended (a label of `sluice_gateway_disconnects_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    ClientLeft,
    KeepAlive,
    Protocol,
    Kicked,
    Stopping,
    KafkaFailed,
    WriteFailed,
}

impl Ended {
    /// What an MQTT 5 device is told when the gateway closes (3.1.1 has no server DISCONNECT).
    fn disconnect_code(self) -> Option<DisconnectReasonCode> {
        Some(match self {
            Ended::ClientLeft | Ended::WriteFailed => return None,
            Ended::KeepAlive => DisconnectReasonCode::KeepAliveTimeout,
            Ended::Protocol => DisconnectReasonCode::ProtocolError,
            Ended::Kicked => DisconnectReasonCode::SessionTakenOver,
            Ended::Stopping => DisconnectReasonCode::ServerShuttingDown,
            Ended::KafkaFailed => DisconnectReasonCode::ServerBusy,
        })
    }

    pub fn label(self) -> &'static str {
        match self {
            Ended::ClientLeft => "client_left",
            Ended::KeepAlive => "keep_alive",
            Ended::Protocol => "protocol_error",
            Ended::Kicked => "taken_over_or_retired",
            Ended::Stopping => "gateway_stopping",
            Ended::KafkaFailed => "kafka_failed",
            Ended::WriteFailed => "write_failed",
        }
    }
}

/// Reads the CONNECT (the caller bounds the time), answers it, and takes the session.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    framer: &mut Framer,
    shared: &Shared,
) -> Result<(Connect, Identity, Session), &'static str> {
    let connect = loop {
        match framer.next() {
            Ok(Some(Frame::Packet(Packet::Connect(c)))) => break c,
            Ok(Some(_)) => return Err("first packet is not CONNECT"),
            Err(_) => return Err("malformed CONNECT"),
            Ok(None) => {}
        }
        if io.read_buf(&mut framer.buf).await.unwrap_or(0) == 0 {
            return Err("closed before CONNECT");
        }
    };
    let version = framer.version.unwrap_or_default();
    let refuse = |code| refuse(version, shared, code);
    if !matches!(connect.protocol, Protocol::V4 | Protocol::V5) {
        refuse(ConnectReturnCode::RefusedProtocolVersion)
            .write(io)
            .await;
        return Err("protocol level other than 3.1.1 and 5");
    }
    if connect.client_id.is_empty() && !connect.clean_session {
        refuse(ConnectReturnCode::BadClientId).write(io).await;
        return Err("empty client id with a persistent session");
    }
    if shared.login.device_auth && !shared.login.registry.caught_up() {
        refuse(ConnectReturnCode::ServiceUnavailable)
            .write(io)
            .await;
        return Err("device registry not read yet");
    }
    let identity = match shared.login.check(&connect) {
        Ok(i) => i,
        Err(code) => {
            refuse(code).write(io).await;
            return Err(match code {
                ConnectReturnCode::NotAuthorized => "not authorized (no login, or retired)",
                _ => "bad username or password",
            });
        }
    };
    let device = match &identity {
        Identity::Device(d) => Some(d.as_str()),
        Identity::Topic => None,
    };
    let Some(session) = shared
        .sessions
        .open(&connect.client_id, device, connect.clean_session)
        .await
    else {
        refuse(ConnectReturnCode::ServiceUnavailable)
            .write(io)
            .await;
        return Err("the session's previous connection did not finish");
    };
    let mut out = BytesMut::new();
    let (window, max_packet) = (shared.window, super::HARD_CEILING);
    version.connack(
        ConnectReturnCode::Success,
        session.present,
        window,
        max_packet,
        &mut out,
    );
    io.write_all(&out).await.map_err(|_| "closed at CONNACK")?;
    Ok((connect, identity, session))
}

/// The CONNACK that refuses a CONNECT, counted (the caller writes it, then closes).
fn refuse(version: Version, shared: &Shared, code: ConnectReturnCode) -> Refusal {
    events::ConnectRefused { code }.emit();
    let mut out = BytesMut::new();
    version.connack(code, false, shared.window, super::HARD_CEILING, &mut out);
    Refusal(out)
}

struct Refusal(BytesMut);

impl Refusal {
    async fn write<S: AsyncWrite + Unpin>(self, io: &mut S) {
        let _ = io.write_all(&self.0).await;
    }
}

/// A connection after its CONNACK.
pub struct Connection<S> {
    pub io: S,
    pub framer: Framer,
    pub shared: Arc<Shared>,
    pub identity: Identity,
    pub session: Session,
    pub keep_alive: Duration,
    pub stop: CancellationToken,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Serves publishes until the connection ends; returns why.
    pub async fn serve(mut self) -> Ended {
        let window = self.shared.window;
        let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
        let mut out = BytesMut::new();
        let mut acked_in_out: Vec<(u16, usize)> = Vec::new();
        let mut ended: Option<Ended> = None;
        let mut acking = true;
        let mut last_heard = Instant::now();
        // MQTT 5: the DISCONNECT reason when the gateway closes (else from `ended`).
        let mut goodbye: Option<DisconnectReasonCode> = None;
        let kicked = self.session.kicked.clone();
        loop {
            while ended.is_none() && pending.len() < window {
                match self.framer.next() {
                    Ok(Some(frame)) => {
                        last_heard = Instant::now();
                        if let Err(why) = self.on_frame(frame, &mut pending, &mut out) {
                            ended = Some(why);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        events::ProtocolViolation {
                            why: &e.to_string(),
                        }
                        .emit();
                        goodbye = Some(e.disconnect_code());
                        ended = Some(Ended::Protocol);
                    }
                }
            }
            if !out.is_empty() {
                let written = write_prefix(&mut self.io, &out).await;
                // A PUBACK written whole may have reached the device: from now on a resend of
                // it is produced again (a copy, never a loss). One not written stays provable.
                for (pkid, end) in acked_in_out.drain(..) {
                    if end <= written {
                        self.session.state.unacked.remove(&pkid);
                    }
                }
                if written < out.len() {
                    acking = false;
                    ended.get_or_insert(Ended::WriteFailed);
                }
                out.clear();
            }
            if let Some(why) = ended.filter(|_| pending.is_empty()) {
                let code = goodbye.or(why.disconnect_code()).filter(|_| acking);
                if let Some(code) = code {
                    self.version().disconnect(code, &mut out);
                    write_prefix(&mut self.io, &out).await;
                }
                break;
            }
            let reading = ended.is_none() && pending.len() < window && self.framer.wants_bytes();
            tokio::select! {
                biased;
                Some(done) = pending.next(), if !pending.is_empty() => {
                    self.on_done(done, &mut acking, &mut out, &mut acked_in_out, &mut ended);
                    while let Some(Some(done)) = pending.next().now_or_never() {
                        self.on_done(done, &mut acking, &mut out, &mut acked_in_out, &mut ended);
                    }
                }
                _ = self.stop.cancelled(), if ended.is_none() => ended = Some(Ended::Stopping),
                _ = kicked.cancelled(), if ended.is_none() => ended = Some(Ended::Kicked),
                read = self.io.read_buf(&mut self.framer.buf), if reading => match read {
                    Ok(0) | Err(_) => ended = Some(Ended::ClientLeft),
                    Ok(_) => {}
                },
                _ = tokio::time::sleep_until(last_heard + self.keep_alive), if ended.is_none() => {
                    ended = Some(Ended::KeepAlive);
                }
            }
        }
        let _ = self.io.shutdown().await;
        let ended = ended.unwrap_or(Ended::ClientLeft);
        // Only on a stop: a kicked connection's device is already on its new one (and the
        // takeover waits for this session), the others' devices are gone or misbehaving.
        if matches!(ended, Ended::Stopping) {
            linger(&mut self.io, &mut self.framer.buf).await;
        }
        ended
    }

    fn version(&self) -> Version {
        self.framer.version.unwrap_or_default()
    }

    fn on_done(
        &mut self,
        done: Done,
        acking: &mut bool,
        out: &mut BytesMut,
        acked_in_out: &mut Vec<(u16, usize)>,
        ended: &mut Option<Ended>,
    ) {
        let outcome = match done.result {
            Ok(o) => o,
            Err(why) => {
                // Not in Kafka: no PUBACK for it or anything after it (MQTT acknowledges in
                // order); the device resends them on its next connection.
                events::KafkaProduceFailed { why: &why }.emit();
                *acking = false;
                ended.get_or_insert(Ended::KafkaFailed);
                return;
            }
        };
        let stats = &self.shared.stats;
        match &outcome {
            Outcome::Telemetry => crate::events::RecordProduced { stats }.emit(),
            Outcome::DeadLetter(reason) => sluice_core::DeadLettered {
                stage: "gateway",
                reason,
                stats,
            }
            .emit(),
        }
        let refused = match &outcome {
            Outcome::Telemetry => None,
            Outcome::DeadLetter(reason) => Some((done.refused, reason.as_str())),
        };
        let version = self.version();
        match done.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                // In Kafka: until the PUBACK is written, a resend of it is a provable copy.
                self.session.state.unacked.insert(done.pkid, done.content);
                if *acking {
                    version.puback(done.pkid, refused, out);
                    acked_in_out.push((done.pkid, out.len()));
                }
            }
            QoS::ExactlyOnce => {
                self.session.state.qos2.insert(done.pkid);
                if *acking {
                    version.pubrec(done.pkid, refused, out);
                }
            }
        }
    }

    /// One packet from the device. `Err`: the connection ends.
    fn on_frame(
        &mut self,
        frame: Frame,
        pending: &mut FuturesOrdered<Pending>,
        out: &mut BytesMut,
    ) -> Result<(), Ended> {
        let packet = match frame {
            Frame::Oversize {
                topic,
                pkid,
                qos,
                bytes,
            } => {
                crate::events::MessageReceived {
                    stats: &self.shared.stats,
                }
                .emit();
                let limit = self.shared.forwarder.max_payload_bytes();
                let reason = format!("oversize: {bytes} bytes > ingest.max_payload_bytes {limit}");
                let key = self.key_or_empty(&topic);
                let content = content_hash(&topic, &[]);
                let job = Job::DeadLetter {
                    key,
                    topic,
                    reason,
                    payload: Bytes::new(),
                };
                self.push(pending, (pkid, qos, content), Refused::NotAccepted, job);
                return Ok(());
            }
            Frame::Packet(p) => p,
        };
        let version = self.version();
        match packet {
            Packet::Publish(p) => self.on_publish(p, pending, out),
            Packet::PubRel(r) => {
                self.session.state.qos2.remove(&r.pkid);
                version.pubcomp(r.pkid, out);
            }
            Packet::PingReq => version.pingresp(out),
            Packet::Subscribe(s) => {
                // The gateway is a way into Kafka, not a broker: nothing to subscribe to.
                events::SubscribeRefused.emit();
                version.suback_refused(s.pkid, s.filters.len(), out);
            }
            Packet::Unsubscribe(u) => version.unsuback(u.pkid, u.topics.len(), out),
            Packet::Disconnect => return Err(Ended::ClientLeft),
            other => {
                let why = format!("{:?} is not a packet a client sends here", kind(&other));
                events::ProtocolViolation { why: &why }.emit();
                return Err(Ended::Protocol);
            }
        }
        Ok(())
    }

    fn key_or_empty(&self, topic: &str) -> String {
        self.shared
            .login
            .key_for(&self.identity, topic)
            .map(str::to_string)
            .unwrap_or_default()
    }

    fn on_publish(
        &mut self,
        p: Publish,
        pending: &mut FuturesOrdered<Pending>,
        out: &mut BytesMut,
    ) {
        crate::events::MessageReceived {
            stats: &self.shared.stats,
        }
        .emit();
        let content = content_hash(&p.topic, &p.payload);
        let state = &mut self.session.state;
        match p.qos {
            QoS::AtLeastOnce => match state.unacked.remove(&p.pkid) {
                // The device resends a publish Kafka has but whose PUBACK it never got.
                Some(c) if p.dup && c == content => {
                    events::ResendSkipped.emit();
                    pending.push_back(Box::pin(std::future::ready(Done {
                        pkid: p.pkid,
                        qos: p.qos,
                        content,
                        refused: Refused::NotAccepted,
                        result: Ok(Outcome::Telemetry),
                    })));
                    return;
                }
                _ => {}
            },
            QoS::ExactlyOnce if state.qos2.contains(&p.pkid) => {
                events::ResendSkipped.emit();
                self.version().pubrec(p.pkid, None, out);
                return;
            }
            _ => {}
        }
        let mut refused = Refused::NotAccepted;
        let job = match self.shared.login.key_for(&self.identity, &p.topic) {
            Ok(key) if p.payload.len() <= self.shared.forwarder.max_payload_bytes() => {
                Job::Telemetry {
                    key: key.to_string(),
                    topic: p.topic,
                    payload: p.payload,
                    received_ms: sluice_common::now_ms(),
                }
            }
            Ok(key) => Job::DeadLetter {
                key: key.to_string(),
                reason: format!(
                    "oversize: {} bytes > ingest.max_payload_bytes {}",
                    p.payload.len(),
                    self.shared.forwarder.max_payload_bytes()
                ),
                topic: p.topic,
                payload: Bytes::new(),
            },
            Err(refusal) => {
                refused = Refused::NotAuthorized;
                let reason = refusal.reason(&self.identity);
                tracing::debug!(topic = %printable(&p.topic), %reason, "publish refused");
                let key = match &self.identity {
                    Identity::Device(d) => d.clone(),
                    Identity::Topic => String::new(),
                };
                Job::DeadLetter {
                    key,
                    topic: p.topic,
                    reason,
                    payload: p.payload,
                }
            }
        };
        self.push(pending, (p.pkid, p.qos, content), refused, job);
    }

    /// Sends `job` to Kafka; its acknowledgement waits in `pending`, in publish order.
    fn push(
        &self,
        pending: &mut FuturesOrdered<Pending>,
        (pkid, qos, content): (u16, QoS, u64),
        refused: Refused,
        job: Job,
    ) {
        let (forwarder, stop) = (self.shared.forwarder.clone(), self.stop.clone());
        pending.push_back(Box::pin(async move {
            Done {
                pkid,
                qos,
                content,
                refused,
                result: produce(forwarder, job, stop).await,
            }
        }));
    }
}

/// Reads and drops what the device still sends until it closes (or [`LINGER`]). Why: closing a
/// socket with unread bytes in its receive buffer sends a RST, and a RST makes the device's
/// kernel discard the PUBACKs it has not read yet; the device then resends publishes that are
/// in Kafka (copies after a graceful stop). What is dropped here was never acknowledged, so
/// the device resends it.
/// `buf` is the connection's own read buffer, no longer framed.
async fn linger<S: AsyncRead + Unpin>(io: &mut S, buf: &mut BytesMut) {
    let deadline = Instant::now() + LINGER;
    loop {
        buf.clear();
        match tokio::time::timeout_at(deadline, io.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => break,
        }
    }
}

/// Writes `out` and returns how many bytes the socket took (all of them, unless it failed or
/// the device stopped reading for [`WRITE_WITHIN`]).
async fn write_prefix<S: AsyncWrite + Unpin>(io: &mut S, out: &[u8]) -> usize {
    let mut written = 0;
    let deadline = Instant::now() + WRITE_WITHIN;
    while written < out.len() {
        match tokio::time::timeout_at(deadline, io.write(&out[written..])).await {
            Ok(Ok(n)) if n > 0 => written += n,
            _ => break,
        }
    }
    if written == out.len() && tokio::time::timeout_at(deadline, io.flush()).await.is_err() {
        return written; // Taken, not yet sent: still counted as possibly delivered.
    }
    written
}

fn kind(p: &Packet) -> &'static str {
    match p {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::SubAck(_) => "SUBACK",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingResp => "PINGRESP",
        _ => "packet",
    }
}
