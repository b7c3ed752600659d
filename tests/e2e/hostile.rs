//! A mixed fleet through the embedded brokers: good readings from many devices, interleaved
//! with hostile messages of every class a broken firmware or an attacker can send. Afterwards
//! the process is alive and ready, every good (device, seq) is in Parquet exactly once and
//! unchanged, every hostile message is in the dead-letter topic with its reason or was routed
//! harmlessly, and the counters moved.

use crate::common::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const DEVICES: usize = 20;
const PER_DEVICE: u64 = 100;

const CONFIG: &str = r#"
[mqtt]
topics = ["devices/#"]
[ingest]
max_payload_bytes = 16384
[router.decode]
max_fields_per_message = 100
max_schema_fields = 200

[[rules]]
name = "all"
sql = "SELECT device, seq FROM telemetry"
actions = ["lake"]

[[rules]]
name = "warm"
sql = "SELECT device, seq, temperature FROM telemetry WHERE temperature > 0"
actions = ["lake"]

[[rules]]
name = "checked"
sql = "SELECT device, seq, 100 / humidity AS inverse FROM telemetry"
actions = ["lake"]

[sinks.lake]
type = "parquet"
"#;

/// What must become of a hostile message.
enum Fate {
    /// In the `all` rule's Parquet as (device, seq).
    Routed,
    /// In the dead-letter topic with a reason starting so.
    Dead(&'static str),
}

struct Hostile {
    class: &'static str,
    topic: String,
    payload: Vec<u8>,
    fate: Fate,
}

fn evil(class: &'static str, seq: i64, extra: serde_json::Value, fate: Fate) -> Hostile {
    let mut body = json!({"device": format!("evil-{class}"), "seq": seq});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    Hostile {
        class,
        topic: format!("devices/evil-{class}/telemetry"),
        payload: body.to_string().into_bytes(),
        fate,
    }
}

fn raw_msg(class: &'static str, topic: &str, payload: Vec<u8>, fate: Fate) -> Hostile {
    Hostile {
        class,
        topic: topic.to_string(),
        payload,
        fate,
    }
}

fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

fn hostile_messages() -> Vec<Hostile> {
    use Fate::*;
    let many: serde_json::Map<String, serde_json::Value> =
        (0..150).map(|i| (format!("f{i}"), json!(i))).collect();
    let mut v = vec![
        evil("ts-far-past", 1, json!({"ts": -1e19}), Routed),
        evil("ts-far-future", 2, json!({"ts": 1e300}), Routed),
        evil("ts-not-a-time", 3, json!({"ts": "yesterday"}), Routed),
        evil(
            "temp-numeric-string",
            4,
            json!({"temperature": "21.5"}),
            Routed,
        ),
        evil("temp-word", 5, json!({"temperature": "hot"}), Routed),
        evil("struct-as-scalar", 6, json!({"battery": 5}), Routed),
        evil(
            "reserved-spoof",
            7,
            json!({"_device_id": "dev-00000", "_offset": 1}),
            Routed,
        ),
        evil("big-integer", 8, json!({"odometer": u64::MAX}), Routed),
        evil("divide-by-zero", 9, json!({"humidity": 0}), Routed),
        evil(
            "collide-across",
            10,
            json!({"battery.level": 5}),
            Dead("field name collision"),
        ),
        evil("empty-key", 11, json!({"": 1}), Dead("empty field name")),
        evil(
            "too-many-fields",
            12,
            json!({"wide": many}),
            Dead("too many fields"),
        ),
        raw_msg(
            "collide-within",
            "devices/evil-cw/telemetry",
            br#"{"device":"evil-cw","seq":1,"a.b":1,"a":{"b":2}}"#.to_vec(),
            Dead("field name collision"),
        ),
        raw_msg(
            "too-deep",
            "devices/evil-deep/telemetry",
            format!(r#"{{"device":"evil-deep","seq":1,"x":{}}}"#, nested(40)).into_bytes(),
            Dead("too deep"),
        ),
        raw_msg(
            "deeper-than-parser",
            "devices/evil-deeper/telemetry",
            format!(r#"{{"x":{}}}"#, nested(300)).into_bytes(),
            Dead("invalid JSON"),
        ),
        raw_msg(
            "number-beyond-f64",
            "devices/evil-f64/telemetry",
            br#"{"device":"evil-f64","seq":1,"x":1e400}"#.to_vec(),
            Dead("invalid JSON"),
        ),
        raw_msg(
            "empty-payload",
            "devices/evil-empty/telemetry",
            vec![],
            Dead("invalid JSON"),
        ),
        raw_msg(
            "trailing-garbage",
            "devices/evil-trail/telemetry",
            br#"{"seq": 1} trailing"#.to_vec(),
            Dead("invalid JSON"),
        ),
        raw_msg(
            "not-utf8",
            "devices/evil-utf8/telemetry",
            vec![b'{', 0xff, 0xfe, b'}'],
            Dead("payload is not UTF-8"),
        ),
        raw_msg(
            "array",
            "devices/evil-array/telemetry",
            b"[1,2]".to_vec(),
            Dead("payload is not a JSON object"),
        ),
        raw_msg(
            "string",
            "devices/evil-string/telemetry",
            b"\"hi\"".to_vec(),
            Dead("payload is not a JSON object"),
        ),
        raw_msg(
            "null",
            "devices/evil-null/telemetry",
            b"null".to_vec(),
            Dead("payload is not a JSON object"),
        ),
        raw_msg(
            "oversize",
            "devices/evil-big/telemetry",
            format!(r#"{{"pad":"{}"}}"#, "x".repeat(20_000)).into_bytes(),
            Dead("oversize"),
        ),
        raw_msg(
            "empty-device-level",
            "devices//telemetry",
            br#"{"seq":1}"#.to_vec(),
            Dead("no device id"),
        ),
        raw_msg(
            "short-topic",
            "devices",
            br#"{"seq":1}"#.to_vec(),
            Dead("no device id"),
        ),
    ];
    // A unicode device id and a long one are routed like any other.
    let long = "d".repeat(2000);
    v.push(raw_msg(
        "unicode-device",
        "devices/装置-💥/telemetry",
        br#"{"device":"evil-unicode-device","seq":13}"#.to_vec(),
        Routed,
    ));
    v.push(raw_msg(
        "long-device",
        &format!("devices/{long}/telemetry"),
        br#"{"device":"evil-long-device","seq":14}"#.to_vec(),
        Routed,
    ));
    v
}

/// 10 messages with 30 new fields each: the schema (capped at 200) takes some, not all.
fn schema_flood() -> Vec<(String, Vec<u8>)> {
    (0..10)
        .map(|m| {
            let mut body = json!({"device": "evil-flood", "seq": m});
            for f in 0..30 {
                body[format!("junk_{m}_{f}")] = json!(f);
            }
            (
                "devices/evil-flood/telemetry".to_string(),
                body.to_string().into_bytes(),
            )
        })
        .collect()
}

fn good(device: usize, seq: u64) -> (String, Vec<u8>) {
    let name = sluice_loadtest::fleet::device_name(device);
    let body = sluice_loadtest::fleet::payload(&name, seq, sluice_common::now_ms());
    (format!("devices/{name}/telemetry"), body.into_bytes())
}

#[test]
fn hostile_input_stops_nothing_and_costs_no_other_device_anything() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let config = setup.write_config("sluice.toml", &http, CONFIG);
    let sluice = Sluice::start(&config, &[], Some(http.clone()));

    // A first round of good readings settles the fleet's schema.
    publish_raw(&setup.mqtt, (0..DEVICES).map(|d| good(d, 0)).collect());
    let hostile = hostile_messages();
    let flood = schema_flood();
    let mut messages = Vec::new();
    let mut extra = hostile
        .iter()
        .map(|h| (h.topic.clone(), h.payload.clone()))
        .chain(flood.iter().cloned());
    for seq in 1..PER_DEVICE {
        for d in 0..DEVICES {
            messages.push(good(d, seq));
        }
        // About one hostile message per good round, so batches mix both.
        if let Some(m) = extra.next() {
            messages.push(m);
        }
    }
    messages.extend(extra);
    publish_raw(&setup.mqtt, messages);

    // A publish over the packet limit (and under the gateway's hard ceiling) is skipped,
    // acknowledged and dead-lettered: never a disconnect the device would answer by resending
    // it forever.
    assert!(
        !publish_is_refused(
            &setup.mqtt,
            "devices/evil-huge/telemetry",
            vec![b'x'; 200_000]
        ),
        "the gateway acknowledges an oversize publish (and dead-letters it)"
    );

    // A topic that is not UTF-8 (MQTT forbids it; rumqttc cannot even send one): the broker
    // refuses it on the raw connection.
    assert!(
        raw_publish_is_refused(
            &setup.mqtt,
            &[b'd', b'/', 0xff, 0xfe, b'/', b't'],
            b"{\"seq\":1}"
        ),
        "the gateway refuses a non-UTF-8 topic (a malformed packet closes the connection)"
    );

    let root = setup.parquet_root();
    let mut want = expected(DEVICES, PER_DEVICE, |_| true);
    for h in &hostile {
        if let Fate::Routed = h.fate {
            let body: serde_json::Value = serde_json::from_slice(&h.payload).unwrap();
            want.push((
                body["device"].as_str().unwrap().to_string(),
                body["seq"].as_i64().unwrap(),
            ));
        }
    }
    wait_until(
        "every good and harmless reading in parquet",
        Duration::from_secs(120),
        || compare(&device_seqs(&root, "all"), &want).0.is_empty(),
    );
    // Still alive and ready after all of it.
    assert_eq!(http_get(&http, "/readyz").map(|(c, _)| c), Some(200));

    let all = device_seqs(&root, "all");
    let flood_routed = all.keys().filter(|(d, _)| d == "evil-flood").count();
    assert!(
        flood_routed >= 1 && flood_routed < 10,
        "the schema cap took some of the flood: {flood_routed}"
    );
    let good_keys = expected(DEVICES, PER_DEVICE, |_| true);
    for rule in ["all", "warm", "checked"] {
        let found = device_seqs(&root, rule);
        let (missing, duplicates) = compare(&found, &good_keys);
        assert!(
            missing.is_empty(),
            "rule {rule}: {} good readings missing, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        assert_eq!(duplicates, 0, "rule {rule}");
    }
    let warm = device_seqs(&root, "warm");
    assert!(
        warm.contains_key(&("evil-temp-numeric-string".into(), 4)),
        "\"21.5\" reads as 21.5"
    );
    assert!(
        !warm.contains_key(&("evil-temp-word".into(), 5)),
        "\"hot\" is NULL, not > 0"
    );
    assert!(!device_seqs(&root, "checked").contains_key(&("evil-divide-by-zero".into(), 9)));
    // Good readings are exactly as sent.
    assert_temperatures_as_sent(&root);

    // The dead-letter topic: every rejected message once, with its reason.
    let mut dead: BTreeMap<&str, usize> = BTreeMap::new();
    for h in &hostile {
        if let Fate::Dead(prefix) = h.fate {
            *dead.entry(prefix).or_default() += 1;
        }
    }
    *dead.entry("schema full").or_default() += 10 - flood_routed;
    *dead.entry("rule 'checked'").or_default() += 1;
    *dead.entry("oversize").or_default() += 1; // the 200 kB publish above
    let total: usize = dead.values().sum();
    let records = read_topic(&setup.kafka, "telemetry.dlq", total);
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, headers) in &records {
        let reason = headers.get("sluice.dlq.reason").expect("a reason");
        let prefix = dead
            .keys()
            .find(|p| reason.starts_with(**p))
            .copied()
            .unwrap_or(reason);
        *reasons.entry(prefix.to_string()).or_default() += 1;
    }
    let want_reasons: BTreeMap<String, usize> =
        dead.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(reasons, want_reasons);

    let metrics = http_get(&http, "/metrics").unwrap().1;
    for (counter, labels) in [
        ("sluice_decode_type_mismatch_total", &[][..]),
        ("sluice_event_time_outside_window_total", &[]),
        ("sluice_rule_failures_total", &["rule=\"checked\""]),
        (
            "sluice_dlq_total",
            &["reason=\"field name collision\"", "stage=\"router\""],
        ),
        (
            "sluice_dlq_total",
            &["reason=\"oversize\"", "stage=\"gateway\""],
        ),
    ] {
        let value = metric_value(&metrics, counter, labels);
        assert!(
            value.is_some_and(|v| v >= 1.0),
            "{counter}{labels:?} moved: {value:?}"
        );
    }
    for h in &hostile {
        eprintln!("hostile class covered: {}", h.class);
    }
    sluice.stop();
}

/// Publishes one message on its own connection; true when the broker closed the connection
/// instead of acknowledging it.
fn publish_is_refused(broker: &str, topic: &str, payload: Vec<u8>) -> bool {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (host, port) = sluice_common::addr::host_port(broker).unwrap();
        let mut opts = MqttOptions::new(format!("huge-{}", free_port()), host, port);
        opts.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(opts, 10);
        client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => return false,
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return true,
                Err(_) => return false,
            }
        }
    })
}

/// Speaks MQTT 3.1.1 by hand (CONNECT, then a QoS 1 PUBLISH with `topic` as raw bytes); true
/// when the broker closed the connection instead of acknowledging the publish.
fn raw_publish_is_refused(broker: &str, topic: &[u8], payload: &[u8]) -> bool {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(broker).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let id = b"raw-topic-test";
    let mut connect = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c];
    connect.extend_from_slice(&(id.len() as u16).to_be_bytes());
    connect.extend_from_slice(id);
    let mut publish = (topic.len() as u16).to_be_bytes().to_vec();
    publish.extend_from_slice(topic);
    publish.extend_from_slice(&[0x00, 0x01]);
    publish.extend_from_slice(payload);
    for (header, body) in [(0x10u8, connect), (0x32u8, publish)] {
        assert!(body.len() < 128, "one-byte remaining length");
        s.write_all(&[header, body.len() as u8]).unwrap();
        s.write_all(&body).unwrap();
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        if got.windows(4).any(|w| w == [0x40, 0x02, 0x00, 0x01]) {
            return false; // PUBACK for packet 1
        }
    }
    true
}

/// Every good reading's temperature in the `warm` rule equals what the fleet sent.
fn assert_temperatures_as_sent(root: &std::path::Path) {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type};
    let mut checked = 0;
    for batch in parquet_batches(&root.join("rule=warm")) {
        let device = batch
            .column_by_name("device")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let seq = batch
            .column_by_name("seq")
            .unwrap()
            .as_primitive::<Int64Type>()
            .clone();
        let t = batch
            .column_by_name("temperature")
            .unwrap()
            .as_primitive::<Float64Type>()
            .clone();
        for i in 0..batch.num_rows() {
            let name = device.value(i);
            if !name.starts_with("dev-") {
                continue;
            }
            let sent: serde_json::Value = serde_json::from_str(&sluice_loadtest::fleet::payload(
                name,
                seq.value(i) as u64,
                0,
            ))
            .unwrap();
            assert!(t.is_valid(i));
            assert_eq!(
                t.value(i),
                sent["temperature"].as_f64().unwrap(),
                "{name}/{}",
                seq.value(i)
            );
            checked += 1;
        }
    }
    assert_eq!(checked, DEVICES * PER_DEVICE as usize);
}
