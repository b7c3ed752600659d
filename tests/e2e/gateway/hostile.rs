//! Bad input and hostile connections at the gateway's door, sent the way devices send them:
//! through rumqttc (which resends what was not acknowledged) or raw sockets.

use super::*;
use rumqttc::{AsyncClient, ConnectionError, Event, MqttOptions, Packet, QoS};
use std::io::{Read, Write};

/// What one client connection saw: acknowledgements, CONNACKs, and how it ended.
#[derive(Debug, Default)]
struct Seen {
    acked: usize,
    connacks: usize,
    refused: Option<String>,
}

/// Publishes `messages` on one connection as `login` and waits (bounded) for every PUBACK.
/// The client reconnects on its own after a drop (as devices do) unless the login is refused.
fn publish_as(
    broker: &str,
    client_id: &str,
    login: Option<(&str, &str)>,
    messages: Vec<(String, Vec<u8>)>,
    within: Duration,
) -> Seen {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (host, port) = sluice_common::addr::host_port(broker).unwrap();
        let mut opts = MqttOptions::new(client_id, host, port);
        opts.set_max_packet_size(1 << 20, 1 << 20);
        if let Some((u, p)) = login {
            opts.set_credentials(u, p);
        }
        let (client, mut eventloop) = AsyncClient::new(opts, 100);
        let total = messages.len();
        tokio::spawn(async move {
            for (topic, payload) in messages {
                let _ = client
                    .publish(topic, QoS::AtLeastOnce, false, payload)
                    .await;
            }
        });
        let mut seen = Seen::default();
        let deadline = tokio::time::Instant::now() + within;
        while seen.acked < total {
            match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                Err(_) => break,
                Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => seen.acked += 1,
                Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => seen.connacks += 1,
                Ok(Ok(_)) => {}
                Ok(Err(ConnectionError::ConnectionRefused(code))) => {
                    seen.refused = Some(format!("{code:?}"));
                    break;
                }
                Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        seen
    })
}

fn reading(device: &str, seq: i64) -> (String, Vec<u8>) {
    (
        format!("devices/{device}/telemetry"),
        format!(r#"{{"device":"{device}","seq":{seq}}}"#).into_bytes(),
    )
}

#[test]
fn an_oversize_publish_between_good_ones_is_dead_lettered_and_the_device_goes_on() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let config = setup.write_config("sluice.toml", &http, "");
    let door = Sluice::start(
        &config,
        &["--only", "brokers", "--only", "ingest"],
        Some(http.clone()),
    );
    let mut messages = vec![reading("dev-big", 0)];
    messages.push(("devices/dev-big/telemetry".into(), vec![b'x'; 200_000]));
    messages.extend((1..=5).map(|s| reading("dev-big", s)));
    let seen = publish_as(
        &setup.mqtt,
        "big-1",
        None,
        messages,
        Duration::from_secs(20),
    );
    assert_eq!(
        seen.acked, 7,
        "every publish acknowledged, the oversize one too: {seen:?}"
    );
    assert_eq!(seen.connacks, 1, "never disconnected: {seen:?}");
    let raw = RawTopic::read(&setup.kafka, 6);
    assert_eq!(
        raw.by_device.get("dev-big"),
        Some(&(0..=5).collect::<Vec<_>>())
    );
    let dlq = read_topic(&setup.kafka, "telemetry.dlq", 1);
    assert_eq!(dlq.len(), 1);
    let reason = &dlq[0].2["sluice.dlq.reason"];
    assert!(reason.starts_with("oversize: 200"), "{reason}");
    assert!(
        dlq[0].1.is_empty(),
        "the oversize payload is not copied into the DLQ"
    );
    let (_, metrics) = http_get(&http, "/metrics").unwrap();
    let disconnects = metric_sum(&metrics, "sluice_gateway_disconnects_total", &[]);
    assert_eq!(
        disconnects, 1.0,
        "only the client's own disconnect at the end:\n{metrics}"
    );
    door.stop();
}

/// Provisions `device` through the API; returns its secret.
pub(super) fn provision(http: &str, device: &str) -> String {
    let (code, body) =
        http_request(http, "POST", &format!("/devices/{device}/credentials")).unwrap();
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["username"], device);
    v["secret"].as_str().unwrap().to_string()
}

/// A raw socket that sends a PUBLISH header claiming `len` bytes; true when the gateway closed it.
fn claims_huge_packet(broker: &str, connect_first: Option<(&str, &str)>, len: usize) -> bool {
    let mut s = std::net::TcpStream::connect(broker).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    if let Some((u, p)) = connect_first {
        let mut c = rumqttc::mqttbytes::v4::Connect::new("huge-1");
        c.set_login(u, p);
        let mut buf = bytes::BytesMut::new();
        c.write(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
        let mut connack = [0u8; 4];
        s.read_exact(&mut connack).unwrap();
        assert_eq!(connack[3], 0, "logged in");
    }
    // PUBLISH QoS 1, remaining length `len` (varint), then a little of it.
    let mut header = vec![0x32u8];
    let mut n = len;
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        header.push(b);
        if n == 0 {
            break;
        }
    }
    header.extend_from_slice(&[0, 3, b'a', b'/', b'b', 0, 1]);
    let _ = s.write_all(&header);
    let mut rest = [0u8; 16];
    matches!(s.read(&mut rest), Ok(0) | Err(_))
}

#[test]
fn hostile_connections_are_refused_and_counted_and_the_good_fleet_is_served() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let extra = "[gateway]\ndevice_auth = true\nmax_connections = 40\nconnect_timeout_secs = 1\n";
    let config = setup.write_config("sluice.toml", &http, extra);
    let door = Sluice::start(
        &config,
        &["--only", "brokers", "--only", "ingest"],
        Some(http.clone()),
    );
    let good = provision(&http, "dev-good");
    let other = provision(&http, "dev-other");

    // Sockets that never send a CONNECT: past the login limit they are closed at once, the
    // rest when the connect timeout (1 s) runs out.
    let idle: Vec<std::net::TcpStream> = (0..30)
        .map(|_| std::net::TcpStream::connect(&setup.mqtt).unwrap())
        .collect();
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 8];
        assert!(
            matches!(s.read(&mut b), Ok(0) | Err(_)),
            "an idle socket is closed"
        );
    }

    // No login, a wrong secret, another device's secret: refused at CONNECT.
    let one = || vec![reading("dev-good", 0)];
    let none = publish_as(&setup.mqtt, "anon", None, one(), Duration::from_secs(10));
    assert_eq!(none.refused.as_deref(), Some("NotAuthorized"), "{none:?}");
    let wrong = publish_as(
        &setup.mqtt,
        "guess",
        Some(("dev-good", "guess")),
        one(),
        Duration::from_secs(10),
    );
    assert_eq!(
        wrong.refused.as_deref(),
        Some("BadUserNamePassword"),
        "{wrong:?}"
    );
    let swapped = publish_as(
        &setup.mqtt,
        "swap",
        Some(("dev-good", &other)),
        one(),
        Duration::from_secs(10),
    );
    assert!(swapped.refused.is_some(), "{swapped:?}");

    // Over the hard ceiling: closed, before and after login.
    assert!(claims_huge_packet(&setup.mqtt, None, 20 << 20));
    assert!(claims_huge_packet(
        &setup.mqtt,
        Some(("dev-good", &good)),
        20 << 20
    ));

    // A device publishing under another's id: acknowledged (so it is not resent forever),
    // dead-lettered with the reason, never keyed as the other device.
    let spoof = vec![reading("dev-other", 0), reading("dev-good", 0)];
    let seen = publish_as(
        &setup.mqtt,
        "good-1",
        Some(("dev-good", &good)),
        spoof,
        Duration::from_secs(20),
    );
    assert_eq!((seen.acked, seen.connacks), (2, 1), "{seen:?}");

    // Retired: its connection is closed and its login refused from then on.
    let (code, body) = http_request(&http, "POST", "/devices/dev-other/retire").unwrap();
    assert_eq!(code, 204, "{body}");
    wait_until(
        "the retired device is refused",
        Duration::from_secs(20),
        || {
            let r = publish_as(
                &setup.mqtt,
                "other-1",
                Some(("dev-other", &other)),
                one(),
                Duration::from_secs(5),
            );
            r.refused.as_deref() == Some("NotAuthorized")
        },
    );

    // The good device, after all that: every reading acknowledged and in Kafka under its id.
    let readings: Vec<_> = (1..=50).map(|s| reading("dev-good", s)).collect();
    let seen = publish_as(
        &setup.mqtt,
        "good-2",
        Some(("dev-good", &good)),
        readings,
        Duration::from_secs(30),
    );
    assert_eq!(seen.acked, 50, "{seen:?}");
    let raw = read_topic(&setup.kafka, "telemetry.raw", 51);
    assert_eq!(raw.len(), 51);
    assert!(
        raw.iter().all(|(key, _, _)| key == b"dev-good"),
        "only the logged-in id is a key"
    );
    let dlq = read_topic(&setup.kafka, "telemetry.dlq", 1);
    assert_eq!(dlq.len(), 1);
    assert!(
        dlq[0].2["sluice.dlq.reason"].starts_with("unauthorized"),
        "{:?}",
        dlq[0].2
    );

    let (_, m) = http_get(&http, "/metrics").unwrap();
    let refused = |r: &str| {
        metric_value(
            &m,
            "sluice_gateway_connections_refused_total",
            &[&format!("reason=\"{r}\"")],
        )
        .unwrap_or(0.0)
    };
    println!(
        "hostile door: login_limit {}, connect_timeout {}, not_authorized {}, bad_login {}, protocol errors {}",
        refused("login_limit"),
        refused("connect_timeout"),
        refused("not_authorized"),
        refused("bad_login"),
        metric_value(&m, "sluice_gateway_protocol_errors_total", &[]).unwrap_or(0.0)
    );
    assert!(
        refused("login_limit") >= 1.0 && refused("connect_timeout") >= 1.0,
        "{m}"
    );
    assert!(
        refused("not_authorized") >= 2.0 && refused("bad_login") >= 2.0,
        "{m}"
    );
    assert!(metric_value(&m, "sluice_gateway_protocol_errors_total", &[]).unwrap_or(0.0) >= 1.0);
    door.stop();
}
