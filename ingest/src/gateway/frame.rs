//! Framing the bytes a device sends into MQTT packets with rumqttc's codecs (3.1.1, or 5 when
//! the CONNECT asks for it: see [`super::wire`]), plus one
//! thing the codec does not do: a PUBLISH larger than the packet limit (but under the hard
//! ceiling) is not refused. Its topic and packet id are read, its payload is skipped as it
//! streams past (never buffered), and it comes out as [`Frame::Oversize`], so the gateway can
//! dead-letter and acknowledge it and the device's next messages flow. Every QoS 1 client
//! resends an unacknowledged publish after a reconnect: closing the connection instead would
//! stop that device for good.

use super::wire::{self, Peek, Version};
use bytes::{Buf, BytesMut};
use rumqttc::mqttbytes::{self, v4::Packet, QoS};
use rumqttc::v5::mqttbytes as v5bytes;

/// What the next bytes of a connection are.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Packet(Packet),
    /// A PUBLISH over the packet limit: what identifies it, its payload already skipped.
    Oversize {
        topic: String,
        pkid: u16,
        qos: QoS,
        bytes: usize,
    },
}

/// Why a connection's bytes are not MQTT we serve: the connection is closed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("packet of {0} bytes is over the gateway's hard ceiling")]
    OverCeiling(usize),
    #[error("packet of {0} bytes over the limit that is not a PUBLISH")]
    OversizeNotPublish(usize),
    #[error("malformed packet: {0}")]
    Malformed(String),
    #[error("not served: {}", .0.why)]
    Unsupported(wire::Unsupported),
}

impl FrameError {
    /// The MQTT 5 DISCONNECT reason that closes the connection for this.
    pub fn disconnect_code(&self) -> v5bytes::v5::DisconnectReasonCode {
        use v5bytes::v5::DisconnectReasonCode as Code;
        match self {
            FrameError::OverCeiling(_) | FrameError::OversizeNotPublish(_) => Code::PacketTooLarge,
            FrameError::Malformed(_) => Code::MalformedPacket,
            FrameError::Unsupported(u) => u.code,
        }
    }
}

/// Turns a connection's bytes into frames.
pub struct Framer {
    /// Bytes read from the socket and not yet framed.
    pub buf: BytesMut,
    /// Bytes of an oversize payload still to be dropped as they arrive.
    skip: usize,
    /// The largest packet read whole (payload limit plus room for the longest topic).
    max_packet: usize,
    /// Past this the connection is closed.
    ceiling: usize,
    /// The connection's MQTT version: `None` until the CONNECT's bytes said which.
    pub version: Option<Version>,
}

impl Framer {
    pub fn new(max_packet: usize, ceiling: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(16 * 1024),
            skip: 0,
            max_packet,
            ceiling: ceiling.max(max_packet),
            version: None,
        }
    }

    /// Whether reading more bytes can make progress (false while a whole packet waits).
    pub fn wants_bytes(&self) -> bool {
        self.skip > 0 || mqttbytes::check(self.buf.iter(), self.max_packet).is_err()
    }

    /// The next frame, `None` when more bytes are needed.
    pub fn next(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.skip > 0 {
            let n = self.skip.min(self.buf.len());
            self.buf.advance(n);
            self.skip -= n;
            if self.skip > 0 {
                return Ok(None);
            }
        }
        let version = match self.version {
            Some(v) => v,
            None => match wire::peek_connect(&self.buf) {
                Peek::More => return Ok(None),
                Peek::Level(5) => *self.version.insert(Version::V5),
                Peek::Level(_) | Peek::NotConnect => *self.version.insert(Version::V4),
            },
        };
        match version {
            Version::V4 => match Packet::read(&mut self.buf, self.max_packet) {
                Ok(packet) => Ok(Some(Frame::Packet(packet))),
                Err(mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
                Err(mqttbytes::Error::PayloadSizeLimitExceeded(len)) => self.oversize(len),
                Err(e) => Err(FrameError::Malformed(e.to_string())),
            },
            Version::V5 => self.next_v5(),
        }
    }

    fn next_v5(&mut self) -> Result<Option<Frame>, FrameError> {
        let max = u32::try_from(self.max_packet).unwrap_or(u32::MAX);
        match v5bytes::v5::Packet::read(&mut self.buf, Some(max)) {
            Ok(packet) => wire::from_v5(packet)
                .map(|p| Some(Frame::Packet(p)))
                .map_err(FrameError::Unsupported),
            Err(v5bytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(v5bytes::Error::PayloadSizeLimitExceeded { pkt_size, .. }) => {
                self.oversize(pkt_size)
            }
            Err(e) => Err(FrameError::Malformed(e.to_string())),
        }
    }

    /// A packet whose remaining length `len` is over the limit: a PUBLISH under the ceiling
    /// is identified and skipped; anything else closes the connection.
    fn oversize(&mut self, len: usize) -> Result<Option<Frame>, FrameError> {
        if len > self.ceiling {
            return Err(FrameError::OverCeiling(len));
        }
        let byte1 = self.buf[0];
        if byte1 >> 4 != 3 {
            return Err(FrameError::OversizeNotPublish(len));
        }
        let Some(qos) = wire::qos_of(byte1) else {
            return Err(FrameError::Malformed("QoS 3".into()));
        };
        // The codec already parsed this length, so its encoding is 1 to 4 bytes.
        let header_len = 1
            + self.buf[1..]
                .iter()
                .take(4)
                .take_while(|b| *b & 0x80 != 0)
                .count()
            + 1;
        let b = &self.buf[header_len..];
        if b.len() < 2 {
            return Ok(None);
        }
        let topic_len = usize::from(u16::from_be_bytes([b[0], b[1]]));
        let id_len = if qos == QoS::AtMostOnce { 0 } else { 2 };
        let needed = 2 + topic_len + id_len;
        if needed > len {
            return Err(FrameError::Malformed("topic longer than the packet".into()));
        }
        if b.len() < needed {
            return Ok(None);
        }
        let topic = std::str::from_utf8(&b[2..2 + topic_len])
            .map_err(|_| FrameError::Malformed("topic is not UTF-8".into()))?
            .to_string();
        let pkid = match id_len {
            0 => 0,
            _ => u16::from_be_bytes([b[2 + topic_len], b[3 + topic_len]]),
        };
        if qos != QoS::AtMostOnce && pkid == 0 {
            return Err(FrameError::Malformed("packet id 0".into()));
        }
        // MQTT 5's properties follow the packet id: skipped with the payload.
        self.buf.advance(header_len + needed);
        self.skip = len - needed;
        Ok(Some(Frame::Oversize {
            topic,
            pkid,
            qos,
            bytes: len,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::v4::{PingReq, Publish};

    fn publish(topic: &str, pkid: u16, payload: usize) -> BytesMut {
        let mut p = Publish::new(topic, QoS::AtLeastOnce, vec![7u8; payload]);
        p.pkid = pkid;
        let mut out = BytesMut::new();
        p.write(&mut out).unwrap();
        out
    }

    /// Feeds `bytes` in chunks of `chunk` and collects every frame.
    fn frames(framer: &mut Framer, bytes: &[u8], chunk: usize) -> Vec<Frame> {
        let mut out = Vec::new();
        for c in bytes.chunks(chunk) {
            framer.buf.extend_from_slice(c);
            while let Some(f) = framer.next().unwrap() {
                out.push(f);
            }
        }
        out
    }

    #[test]
    fn an_oversize_publish_is_skipped_and_the_next_packets_read() {
        let mut stream = publish("d/a/t", 1, 10);
        stream.extend_from_slice(&publish("d/a/t", 2, 5_000));
        let mut ping = BytesMut::new();
        PingReq.write(&mut ping).unwrap();
        stream.extend_from_slice(&ping);
        stream.extend_from_slice(&publish("d/a/t", 3, 10));
        for chunk in [1, 7, 100, 100_000] {
            let mut framer = Framer::new(1_000, 1 << 20);
            let got = frames(&mut framer, &stream, chunk);
            assert_eq!(got.len(), 4, "chunk {chunk}: {got:?}");
            assert!(matches!(&got[0], Frame::Packet(Packet::Publish(p)) if p.pkid == 1));
            assert!(
                matches!(&got[1], Frame::Oversize { topic, pkid: 2, qos: QoS::AtLeastOnce, .. } if topic == "d/a/t")
            );
            assert_eq!(got[2], Frame::Packet(Packet::PingReq));
            assert!(matches!(&got[3], Frame::Packet(Packet::Publish(p)) if p.pkid == 3));
            assert!(
                framer.buf.capacity() < 64 * 1024,
                "the payload was not buffered"
            );
        }
    }

    #[test]
    fn past_the_ceiling_or_not_a_publish_closes() {
        let mut framer = Framer::new(1_000, 2_000);
        framer
            .buf
            .extend_from_slice(&publish("d/a/t", 1, 5_000)[..10]);
        assert!(matches!(framer.next(), Err(FrameError::OverCeiling(_))));
        let mut framer = Framer::new(10, 2_000);
        let mut sub = BytesMut::new();
        rumqttc::mqttbytes::v4::Subscribe::new("a/very/long/filter/name", QoS::AtLeastOnce)
            .write(&mut sub)
            .unwrap();
        framer.buf.extend_from_slice(&sub);
        assert!(matches!(
            framer.next(),
            Err(FrameError::OversizeNotPublish(_))
        ));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever a device sends, framing returns frames, asks for bytes or refuses:
            /// never a panic, and never a frame larger than the ceiling.
            #[test]
            fn any_bytes_frame_or_refuse(bytes in prop::collection::vec(any::<u8>(), 0..600), chunk in 1usize..64) {
                let mut framer = Framer::new(64, 256);
                'feed: for c in bytes.chunks(chunk) {
                    framer.buf.extend_from_slice(c);
                    loop {
                        match framer.next() {
                            Ok(Some(Frame::Oversize { bytes, .. })) => prop_assert!(bytes <= 256),
                            Ok(Some(_)) => {}
                            Ok(None) => break,
                            Err(_) => break 'feed,
                        }
                    }
                }
            }
        }
    }
}
