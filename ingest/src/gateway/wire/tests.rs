use super::*;
use crate::gateway::frame::{Frame, FrameError, Framer};
use rumqttc::v5::mqttbytes::v5::{ConnectProperties, PublishProperties};

fn v5_connect(client: &str) -> BytesMut {
    let mut c = v5::Connect {
        keep_alive: 30,
        client_id: client.into(),
        clean_start: false,
        properties: None,
    };
    c.properties = Some(ConnectProperties::new());
    let mut out = BytesMut::new();
    let login = v5::Login::new("dev-1", "secret");
    v5::Packet::Connect(c, None, Some(login))
        .write(&mut out, None)
        .unwrap();
    out
}

fn v5_publish(topic: &str, pkid: u16, payload: usize, alias: Option<u16>) -> BytesMut {
    let mut p = v5::Publish::new(
        topic,
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        vec![b'x'; payload],
        None,
    );
    p.pkid = pkid;
    p.properties = Some(PublishProperties {
        topic_alias: alias,
        content_type: Some("application/json".into()),
        ..Default::default()
    });
    let mut out = BytesMut::new();
    p.write(&mut out).unwrap();
    out
}

fn frames(framer: &mut Framer, bytes: &[u8], chunk: usize) -> Result<Vec<Frame>, FrameError> {
    let mut out = Vec::new();
    for c in bytes.chunks(chunk) {
        framer.buf.extend_from_slice(c);
        while let Some(f) = framer.next()? {
            out.push(f);
        }
    }
    Ok(out)
}

#[test]
fn the_connect_says_which_codec_reads_the_connection() {
    let v5 = v5_connect("c5");
    let mut v4 = BytesMut::new();
    v4::Connect::new("c4").write(&mut v4).unwrap();
    assert_eq!(peek_connect(&v5), Peek::Level(5));
    assert_eq!(peek_connect(&v4), Peek::Level(4));
    for cut in 0..8 {
        assert_eq!(peek_connect(&v5[..cut]), Peek::More, "{cut} bytes");
    }
    assert_eq!(
        peek_connect(&v5_publish("d/1/t", 1, 3, None)),
        Peek::NotConnect
    );
    assert_eq!(
        peek_connect(&[0x10, 0xff, 0xff, 0xff, 0xff, 0]),
        Peek::NotConnect
    );
}

#[test]
fn an_mqtt5_session_reads_as_the_packets_the_connection_handles() {
    let mut stream = v5_connect("c5");
    stream.extend_from_slice(&v5_publish("d/1/t", 1, 10, None));
    stream.extend_from_slice(&v5_publish("d/1/t", 2, 5_000, None));
    let mut ping = BytesMut::new();
    v5::PingReq::write(&mut ping).unwrap();
    stream.extend_from_slice(&ping);
    stream.extend_from_slice(&v5_publish("d/1/t", 3, 10, None));
    for chunk in [1, 5, 64, 100_000] {
        let mut framer = Framer::new(1_000, 1 << 20);
        let got = frames(&mut framer, &stream, chunk).unwrap();
        assert_eq!(framer.version, Some(Version::V5));
        assert_eq!(got.len(), 5, "chunk {chunk}: {got:?}");
        assert!(matches!(&got[0], Frame::Packet(v4::Packet::Connect(c))
            if c.protocol == Protocol::V5 && c.client_id == "c5" && !c.clean_session
                && c.login.as_ref().is_some_and(|l| l.username == "dev-1" && l.password == "secret")));
        assert!(matches!(&got[1], Frame::Packet(v4::Packet::Publish(p))
            if p.pkid == 1 && p.topic == "d/1/t" && p.payload.len() == 10));
        assert!(
            matches!(&got[2], Frame::Oversize { pkid: 2, qos: QoS::AtLeastOnce, topic, .. } if topic == "d/1/t")
        );
        assert_eq!(got[3], Frame::Packet(v4::Packet::PingReq));
        assert!(matches!(&got[4], Frame::Packet(v4::Packet::Publish(p)) if p.pkid == 3));
    }
}

#[test]
fn a_topic_alias_that_was_never_announced_closes_with_its_reason() {
    let mut stream = v5_connect("c5");
    stream.extend_from_slice(&v5_publish("d/1/t", 1, 10, Some(1)));
    let mut framer = Framer::new(1_000, 1 << 20);
    let err = frames(&mut framer, &stream, 1_000).unwrap_err();
    assert_eq!(
        err.disconnect_code(),
        v5::DisconnectReasonCode::TopicAliasInvalid
    );
}

#[test]
fn answers_are_written_in_the_connections_version() {
    let mut out = BytesMut::new();
    Version::V4.puback(
        7,
        Some((Refused::NotAuthorized, "another device")),
        &mut out,
    );
    assert_eq!(&out[..], &[0x40, 2, 0, 7], "3.1.1 has no reason codes");

    let mut out = BytesMut::new();
    Version::V5.puback(
        7,
        Some((Refused::NotAuthorized, "topic names dev-2")),
        &mut out,
    );
    let v5::Packet::PubAck(ack) = v5::Packet::read(&mut out, None).unwrap() else {
        panic!("not a PUBACK");
    };
    assert_eq!((ack.pkid, ack.reason), (7, v5::PubAckReason::NotAuthorized));
    let why = ack.properties.and_then(|p| p.reason_string);
    assert_eq!(why.as_deref(), Some("topic names dev-2"));

    let mut out = BytesMut::new();
    Version::V5.connack(ConnectReturnCode::Success, true, 1000, 1 << 24, &mut out);
    let v5::Packet::ConnAck(ack) = v5::Packet::read(&mut out, None).unwrap() else {
        panic!("not a CONNACK");
    };
    let props = ack.properties.unwrap();
    assert_eq!(
        (ack.code, ack.session_present),
        (v5::ConnectReturnCode::Success, true)
    );
    assert_eq!(
        (props.receive_max, props.max_packet_size),
        (Some(1000), Some(1 << 24))
    );

    let mut out = BytesMut::new();
    Version::V5.connack(
        ConnectReturnCode::NotAuthorized,
        true,
        1000,
        1 << 24,
        &mut out,
    );
    let v5::Packet::ConnAck(ack) = v5::Packet::read(&mut out, None).unwrap() else {
        panic!("not a CONNACK");
    };
    assert_eq!(
        (ack.code, ack.session_present),
        (v5::ConnectReturnCode::NotAuthorized, false)
    );

    let mut out = BytesMut::new();
    Version::V4.disconnect(v5::DisconnectReasonCode::KeepAliveTimeout, &mut out);
    assert!(out.is_empty(), "3.1.1 has no server DISCONNECT");
    Version::V5.disconnect(v5::DisconnectReasonCode::KeepAliveTimeout, &mut out);
    assert!(matches!(v5::Packet::read(&mut out, None),
        Ok(v5::Packet::Disconnect(d)) if d.reason_code == v5::DisconnectReasonCode::KeepAliveTimeout));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever an MQTT 5 device sends after its CONNECT: frames, more bytes, or a
        /// refusal with a reason code; never a panic.
        #[test]
        fn any_bytes_after_an_mqtt5_connect_frame_or_refuse(
            bytes in prop::collection::vec(any::<u8>(), 0..600),
            chunk in 1usize..64,
        ) {
            let mut stream = v5_connect("p");
            stream.extend_from_slice(&bytes);
            let mut framer = Framer::new(64, 256);
            if let Ok(frames) = frames(&mut framer, &stream, chunk) {
                prop_assert!(matches!(frames.first(), Some(Frame::Packet(v4::Packet::Connect(_)))));
            }
        }
    }
}
