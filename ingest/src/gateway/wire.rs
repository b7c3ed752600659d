//! The two MQTT versions a device may speak, behind one set of packets. The connection logic
//! works on rumqttc's 3.1.1 packet types; an MQTT 5 connection's packets are read with
//! rumqttc's v5 codec and turned into those, and the gateway's answers are written in the
//! connection's own version. What MQTT 5 adds that the gateway uses: the receive maximum and
//! packet size it announces at CONNACK, reason codes (and a reason string) on PUBACK/PUBREC
//! when a publish was dead-lettered, and a DISCONNECT that says why the gateway closed.

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{self, ConnAck, PingResp, PubAck, PubComp, PubRec, SubAck};
use rumqttc::mqttbytes::{Protocol, QoS};
use rumqttc::v5::mqttbytes::v5;
use rumqttc::ConnectReturnCode;

/// The MQTT version of a connection, known from its CONNECT.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Version {
    #[default]
    V4,
    V5,
}

/// What the first bytes of a connection say about its CONNECT.
#[derive(Debug, PartialEq, Eq)]
pub enum Peek {
    /// Not all of the CONNECT's header is here yet.
    More,
    /// The protocol level the CONNECT asks for (4: 3.1.1, 5: MQTT 5).
    Level(u8),
    /// The first packet is not a CONNECT (the 3.1.1 codec reads it, the handshake refuses it).
    NotConnect,
}

/// Reads the protocol level of a CONNECT from its bytes, before any codec parses them, so the
/// right codec reads it.
pub fn peek_connect(buf: &[u8]) -> Peek {
    let Some(&first) = buf.first() else {
        return Peek::More;
    };
    if first >> 4 != 1 {
        return Peek::NotConnect;
    }
    // Remaining length: 1 to 4 bytes, the high bit says another follows.
    let Some(len_bytes) = buf[1..].iter().take(4).position(|b| b & 0x80 == 0) else {
        return if buf.len() < 5 {
            Peek::More
        } else {
            Peek::NotConnect
        };
    };
    let name_at = 1 + len_bytes + 1;
    let Some(name) = buf.get(name_at..name_at + 2) else {
        return Peek::More;
    };
    let level_at = name_at + 2 + usize::from(u16::from_be_bytes([name[0], name[1]]));
    match buf.get(level_at) {
        Some(level) => Peek::Level(*level),
        None if level_at > 64 => Peek::NotConnect,
        None => Peek::More,
    }
}

/// An MQTT 5 packet the gateway does not serve: the connection is closed with this reason.
#[derive(Debug, PartialEq, Eq)]
pub struct Unsupported {
    pub why: &'static str,
    pub code: v5::DisconnectReasonCode,
}

/// An MQTT 5 packet from a device as the 3.1.1 packet the connection logic handles.
pub fn from_v5(packet: v5::Packet) -> Result<v4::Packet, Unsupported> {
    use v5::DisconnectReasonCode as Code;
    let refuse = |why, code| Err(Unsupported { why, code });
    Ok(match packet {
        v5::Packet::Connect(c, _will, login) => {
            let auth = c.properties.as_ref();
            if auth.is_some_and(|p| p.authentication_method.is_some()) {
                return refuse("enhanced authentication", Code::NotAuthorized);
            }
            v4::Packet::Connect(v4::Connect {
                protocol: Protocol::V5,
                keep_alive: c.keep_alive,
                client_id: c.client_id,
                clean_session: c.clean_start,
                last_will: None,
                login: login.map(|l| v4::Login {
                    username: l.username,
                    password: l.password,
                }),
            })
        }
        v5::Packet::Publish(p) => {
            // The CONNACK announced no topic aliases (MQTT 5's default): one is a protocol error.
            if p.properties
                .as_ref()
                .is_some_and(|p| p.topic_alias.is_some())
            {
                return refuse("topic alias (none announced)", Code::TopicAliasInvalid);
            }
            let Ok(topic) = String::from_utf8(p.topic.to_vec()) else {
                return refuse("topic is not UTF-8", Code::MalformedPacket);
            };
            v4::Packet::Publish(v4::Publish {
                dup: p.dup,
                qos: qos_v4(p.qos),
                retain: p.retain,
                topic,
                pkid: p.pkid,
                payload: p.payload,
            })
        }
        v5::Packet::PubRel(r) => v4::Packet::PubRel(v4::PubRel { pkid: r.pkid }),
        v5::Packet::PingReq(_) => v4::Packet::PingReq,
        v5::Packet::Subscribe(s) => v4::Packet::Subscribe(v4::Subscribe {
            pkid: s.pkid,
            filters: (s.filters.into_iter())
                .map(|f| v4::SubscribeFilter::new(f.path, qos_v4(f.qos)))
                .collect(),
        }),
        v5::Packet::Unsubscribe(u) => v4::Packet::Unsubscribe(v4::Unsubscribe {
            pkid: u.pkid,
            topics: u.filters,
        }),
        v5::Packet::Disconnect(_) => v4::Packet::Disconnect,
        _ => return refuse("a packet only a server sends", Code::ProtocolError),
    })
}

/// Why a publish that Kafka has was not taken as telemetry (MQTT 5 tells the device).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Published under another device's identity.
    NotAuthorized,
    /// Over the payload limit, or otherwise dead-lettered at the door.
    NotAccepted,
}

impl Version {
    /// The answer to a CONNECT. `window`: the publishes a connection may have waiting for
    /// Kafka (MQTT 5's receive maximum); `max_packet`: the largest packet the gateway reads.
    pub fn connack(
        self,
        code: ConnectReturnCode,
        present: bool,
        window: usize,
        max_packet: usize,
        out: &mut BytesMut,
    ) {
        if self == Version::V4 {
            let _ = ConnAck::new(code, present).write(out);
            return;
        }
        let code = match code {
            ConnectReturnCode::Success => v5::ConnectReturnCode::Success,
            ConnectReturnCode::RefusedProtocolVersion => {
                v5::ConnectReturnCode::UnsupportedProtocolVersion
            }
            ConnectReturnCode::BadClientId => v5::ConnectReturnCode::ClientIdentifierNotValid,
            ConnectReturnCode::ServiceUnavailable => v5::ConnectReturnCode::ServerUnavailable,
            ConnectReturnCode::BadUserNamePassword => v5::ConnectReturnCode::BadUserNamePassword,
            ConnectReturnCode::NotAuthorized => v5::ConnectReturnCode::NotAuthorized,
        };
        let success = code == v5::ConnectReturnCode::Success;
        let properties = success.then(|| v5::ConnAckProperties {
            session_expiry_interval: None,
            receive_max: Some(u16::try_from(window).unwrap_or(u16::MAX).max(1)),
            max_qos: None,
            retain_available: None,
            max_packet_size: u32::try_from(max_packet).ok(),
            assigned_client_identifier: None,
            topic_alias_max: None,
            reason_string: None,
            user_properties: Vec::new(),
            // A way into Kafka, not a broker: nothing to subscribe to.
            wildcard_subscription_available: Some(0),
            subscription_identifiers_available: Some(0),
            shared_subscription_available: Some(0),
            server_keep_alive: None,
            response_information: None,
            server_reference: None,
            authentication_method: None,
            authentication_data: None,
        });
        let ack = v5::ConnAck {
            session_present: present && success,
            code,
            properties,
        };
        let _ = ack.write(out);
    }

    /// A QoS 1 acknowledgement; `refused` with its reason when the publish was dead-lettered.
    pub fn puback(self, pkid: u16, refused: Option<(Refused, &str)>, out: &mut BytesMut) {
        if self == Version::V4 {
            let _ = PubAck::new(pkid).write(out);
            return;
        }
        let mut ack = v5::PubAck::new(pkid, reason_string(refused));
        if let Some((why, _)) = refused {
            ack.reason = match why {
                Refused::NotAuthorized => v5::PubAckReason::NotAuthorized,
                Refused::NotAccepted => v5::PubAckReason::ImplementationSpecificError,
            };
        }
        let _ = ack.write(out);
    }

    /// The first QoS 2 acknowledgement, with a reason as for [`Version::puback`].
    pub fn pubrec(self, pkid: u16, refused: Option<(Refused, &str)>, out: &mut BytesMut) {
        if self == Version::V4 {
            let _ = PubRec::new(pkid).write(out);
            return;
        }
        let props = reason_string(refused).map(|p| v5::PubRecProperties {
            reason_string: p.reason_string,
            user_properties: Vec::new(),
        });
        let mut rec = v5::PubRec::new(pkid, props);
        if let Some((why, _)) = refused {
            rec.reason = match why {
                Refused::NotAuthorized => v5::PubRecReason::NotAuthorized,
                Refused::NotAccepted => v5::PubRecReason::ImplementationSpecificError,
            };
        }
        let _ = rec.write(out);
    }

    pub fn pubcomp(self, pkid: u16, out: &mut BytesMut) {
        match self {
            Version::V4 => drop(PubComp::new(pkid).write(out)),
            Version::V5 => drop(v5::PubComp::new(pkid, None).write(out)),
        }
    }

    pub fn pingresp(self, out: &mut BytesMut) {
        match self {
            Version::V4 => drop(PingResp.write(out)),
            Version::V5 => drop(v5::PingResp::write(out)),
        }
    }

    /// Every filter refused: the gateway has nothing to subscribe to.
    pub fn suback_refused(self, pkid: u16, filters: usize, out: &mut BytesMut) {
        let n = filters.max(1);
        match self {
            Version::V4 => {
                let codes = vec![v4::SubscribeReasonCode::Failure; n];
                drop(SubAck::new(pkid, codes).write(out));
            }
            Version::V5 => {
                let return_codes = vec![v5::SubscribeReasonCode::ImplementationSpecific; n];
                let ack = v5::SubAck {
                    pkid,
                    return_codes,
                    properties: None,
                };
                drop(ack.write(out));
            }
        }
    }

    pub fn unsuback(self, pkid: u16, filters: usize, out: &mut BytesMut) {
        match self {
            Version::V4 => drop(v4::UnsubAck::new(pkid).write(out)),
            Version::V5 => {
                let reasons = vec![v5::UnsubAckReason::NoSubscriptionExisted; filters.max(1)];
                let ack = v5::UnsubAck {
                    pkid,
                    reasons,
                    properties: None,
                };
                drop(ack.write(out));
            }
        }
    }

    /// MQTT 5 only (3.1.1 has no server DISCONNECT): why the gateway closes the connection.
    pub fn disconnect(self, code: v5::DisconnectReasonCode, out: &mut BytesMut) {
        // Written by hand: rumqttc 0.25's `Disconnect::write` puts a property length after
        // the reason code but counts only the reason code in the remaining length, so the
        // device's codec would read a stray byte. Here: reason code, empty properties.
        if self == Version::V5 {
            out.extend_from_slice(&[0xE0, 2, code as u8, 0]);
        }
    }
}

fn reason_string(refused: Option<(Refused, &str)>) -> Option<v5::PubAckProperties> {
    refused.map(|(_, why)| v5::PubAckProperties {
        reason_string: Some(why.chars().take(200).collect()),
        user_properties: Vec::new(),
    })
}

fn qos_v4(q: rumqttc::v5::mqttbytes::QoS) -> QoS {
    match q {
        rumqttc::v5::mqttbytes::QoS::AtMostOnce => QoS::AtMostOnce,
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce => QoS::AtLeastOnce,
        rumqttc::v5::mqttbytes::QoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

/// The QoS of a publish the codec could not read whole (from its first byte).
pub fn qos_of(first_byte: u8) -> Option<QoS> {
    match (first_byte >> 1) & 0b11 {
        0 => Some(QoS::AtMostOnce),
        1 => Some(QoS::AtLeastOnce),
        2 => Some(QoS::ExactlyOnce),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
