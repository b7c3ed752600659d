use super::proto::{Metric, Payload, Value};
use super::state::Births;
use super::*;
use proptest::prelude::*;
use serde_json::{json, Value as Json};

const NBIRTH: &str = "spBv1.0/plant/NBIRTH/edge1";
const NDATA: &str = "spBv1.0/plant/NDATA/edge1";

fn birth() -> Payload {
    Payload {
        timestamp: Some(1_700_000_000_000),
        seq: Some(0),
        metrics: vec![
            Metric::named("Temperature", 1, 10, Value::Double(21.5)),
            Metric::named("Running", 2, 11, Value::Boolean(true)),
            Metric::named("Offset", 3, 2, Value::Int((-7i16) as u16 as u32)),
        ],
        ..Default::default()
    }
}

fn data(seq: u64, metrics: Vec<Metric>) -> Payload {
    Payload {
        timestamp: Some(1_700_000_000_500),
        seq: Some(seq),
        metrics,
        ..Default::default()
    }
}

/// The rows of one message, as JSON values.
fn rows_of(
    births: &mut Births,
    topic: &str,
    p: &Payload,
    offset: i64,
) -> Result<(Vec<Json>, Seen), String> {
    let mut rows = MetricRows::default();
    let seen = decode(births, topic, &p.encode_to_vec(), 0, offset, &mut rows)?;
    let rows = rows
        .iter()
        .map(|r| serde_json::from_slice(r).unwrap())
        .collect();
    Ok((rows, seen))
}

#[test]
fn data_by_alias_is_named_by_the_birth_one_row_per_metric() {
    let mut b = Births::default();
    let (rows, _) = rows_of(&mut b, NBIRTH, &birth(), 0).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2]["int_value"], json!(-7), "Int16 is signed");
    let p = data(
        1,
        vec![
            Metric::aliased(1, Value::Double(22.25)),
            Metric::aliased(2, Value::Boolean(false)),
        ],
    );
    let (rows, seen) = rows_of(&mut b, NDATA, &p, 1).unwrap();
    assert!(!seen.seq_gap);
    assert_eq!(
        rows[0],
        json!({"group_id": "plant", "edge_node": "edge1", "message_type": "NDATA", "online": true,
               "metric": "Temperature", "alias": 1, "datatype": "Double", "float_value": 22.25,
               "message_ts": 1_700_000_000_500i64, "seq": 1})
    );
    assert_eq!(rows[1]["metric"], "Running");
    assert_eq!(rows[1]["bool_value"], false);
}

#[test]
fn data_before_its_birth_is_refused_with_the_reason() {
    let mut b = Births::default();
    let p = data(5, vec![Metric::aliased(1, Value::Double(1.0))]);
    let ghost = "spBv1.0/plant/DDATA/edge1/ghost";
    assert!(rows_of(&mut b, ghost, &p, 0).is_err());
    let node = b.node("plant/edge1").unwrap();
    assert!(
        node.devices.is_empty(),
        "DATA of an unannounced device is not remembered"
    );
    let err = rows_of(&mut b, NDATA, &p, 0).unwrap_err();
    assert!(
        err.starts_with(
            "Sparkplug alias unknown: NDATA of plant/edge1: alias 1 was not named by an NBIRTH"
        ),
        "{err}"
    );
    // Metrics that carry their names need no BIRTH.
    let named = data(
        6,
        vec![Metric::named("Temperature", 1, 10, Value::Double(1.0))],
    );
    assert_eq!(rows_of(&mut b, NDATA, &named, 1).unwrap().0.len(), 1);
}

#[test]
fn device_metrics_use_the_device_birth_and_deaths_mark_offline() {
    let mut b = Births::default();
    rows_of(&mut b, NBIRTH, &birth(), 0).unwrap();
    let dbirth = data(1, vec![Metric::named("Speed", 1, 7, Value::Int(1200))]);
    rows_of(&mut b, "spBv1.0/plant/DBIRTH/edge1/pump", &dbirth, 1).unwrap();
    let ddata = data(2, vec![Metric::aliased(1, Value::Int(1300))]);
    let (rows, _) = rows_of(&mut b, "spBv1.0/plant/DDATA/edge1/pump", &ddata, 2).unwrap();
    assert_eq!(rows[0]["metric"], "Speed");
    assert_eq!(rows[0]["device"], "pump");
    assert_eq!(rows[0]["int_value"], 1300);
    let ddeath = data(3, vec![]);
    let (rows, _) = rows_of(&mut b, "spBv1.0/plant/DDEATH/edge1/pump", &ddeath, 3).unwrap();
    assert_eq!(rows.len(), 1, "a death without metrics is one row");
    assert_eq!(rows[0]["online"], false);
    assert!(!b.node("plant/edge1").unwrap().devices["pump"].online);
    let ndeath = Payload {
        metrics: vec![Metric::named("bdSeq", 0, 8, Value::Long(3))],
        ..Default::default()
    };
    rows_of(&mut b, "spBv1.0/plant/NDEATH/edge1", &ndeath, 4).unwrap();
    assert!(!b.node("plant/edge1").unwrap().online);
}

#[test]
fn seq_gaps_are_seen_once_and_not_on_replay() {
    let mut b = Births::default();
    rows_of(&mut b, NBIRTH, &birth(), 10).unwrap();
    let one = |seq| data(seq, vec![Metric::aliased(1, Value::Double(1.0))]);
    assert!(!rows_of(&mut b, NDATA, &one(1), 11).unwrap().1.seq_gap);
    assert!(rows_of(&mut b, NDATA, &one(5), 12).unwrap().1.seq_gap);
    // A replay of records already seen (a crash, a trial run) counts nothing.
    assert!(!rows_of(&mut b, NDATA, &one(1), 11).unwrap().1.seq_gap);
    assert!(!rows_of(&mut b, NDATA, &one(6), 13).unwrap().1.seq_gap);
    // 255 wraps to 0.
    assert!(rows_of(&mut b, NDATA, &one(255), 14).unwrap().1.seq_gap);
    assert!(!rows_of(&mut b, NDATA, &one(0), 15).unwrap().1.seq_gap);
}

#[test]
fn values_keep_their_exact_kind() {
    let cases = [
        (4, Value::Long((-5i64) as u64), ("int_value", json!(-5))),
        (
            8,
            Value::Long(u64::MAX),
            ("string_value", json!("18446744073709551615")),
        ),
        (9, Value::Float(0.1), ("float_value", json!(0.1))),
        (
            12,
            Value::String("on".into()),
            ("string_value", json!("on")),
        ),
        (
            13,
            Value::Long(1_700_000_000_000),
            ("int_value", json!(1_700_000_000_000i64)),
        ),
        (1, Value::Int(0xFF), ("int_value", json!(-1))),
    ];
    for (datatype, value, (column, want)) in cases {
        let mut b = Births::default();
        let p = data(0, vec![Metric::named("m", 1, datatype, value)]);
        let (rows, _) = rows_of(&mut b, NBIRTH, &p, 0).unwrap();
        assert_eq!(rows[0][column], want, "datatype {datatype}");
    }
}

#[test]
fn the_state_travels_through_the_changelog() {
    let mut b = Births::default();
    rows_of(&mut b, NBIRTH, &birth(), 0).unwrap();
    let saved = b.take_changed();
    assert_eq!(saved.len(), 1);
    assert!(b.take_changed().is_empty(), "only what changed since");
    let mut other = Births::default();
    for (_, key, value) in &saved {
        other.apply(key, value.as_deref());
    }
    let p = data(1, vec![Metric::aliased(1, Value::Double(3.0))]);
    let (rows, _) = rows_of(&mut other, NDATA, &p, 1).unwrap();
    assert_eq!(rows[0]["metric"], "Temperature");
    // DATA changes nothing that is saved: checkpoints cost births and deaths, not traffic.
    rows_of(&mut b, NDATA, &p, 1).unwrap();
    assert!(b.take_changed().is_empty());
    // A restored edge node's first message is not compared with a seq as old as its BIRTH.
    let mut third = Births::default();
    for (_, key, value) in &saved {
        third.apply(key, value.as_deref());
    }
    let far = data(77, vec![Metric::aliased(1, Value::Double(3.0))]);
    assert!(!rows_of(&mut third, NDATA, &far, 5).unwrap().1.seq_gap);
    let next = data(79, vec![Metric::aliased(1, Value::Double(3.0))]);
    assert!(rows_of(&mut third, NDATA, &next, 6).unwrap().1.seq_gap);
}

#[test]
fn topics_outside_the_namespace_are_refused() {
    for t in [
        "spBv1.0/plant/NDATA",
        "spBv1.0/plant/DDATA/edge1",
        "spBv1.0/plant/NDATA/edge1/dev",
        "spBv1.0/STATE/host",
        "spBv1.0//NDATA/edge1",
        "devices/d1/telemetry",
    ] {
        assert!(SparkplugTopic::parse(t).is_err(), "{t}");
    }
}

proptest! {
    #[test]
    fn any_bytes_decode_or_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut b = Births::default();
        let mut rows = MetricRows::default();
        let _ = decode(&mut b, NDATA, &bytes, 0, 0, &mut rows);
        for r in rows.iter() {
            let row: serde_json::Map<String, Json> = serde_json::from_slice(r).unwrap();
            prop_assert_eq!(&row["edge_node"], "edge1");
        }
    }

    #[test]
    fn any_names_make_valid_rows(edge in "[^/+#]{1,12}", name in any::<String>(), text in any::<String>()) {
        let mut b = Births::default();
        let p = data(0, vec![Metric::named(&name, 1, 12, Value::String(text.clone()))]);
        let topic = format!("spBv1.0/g/NBIRTH/{edge}");
        let (rows, _) = rows_of(&mut b, &topic, &p, 0).unwrap();
        prop_assert_eq!(&rows[0]["edge_node"], &json!(edge));
        prop_assert_eq!(&rows[0]["metric"], &json!(name));
        prop_assert_eq!(&rows[0]["string_value"], &json!(text));
    }

    #[test]
    fn births_round_trip_any_metrics(
        values in prop::collection::vec((any::<u64>(), any::<f64>(), any::<bool>()), 1..20)
    ) {
        let metrics: Vec<Metric> = values.iter().enumerate().flat_map(|(i, (l, d, flag))| {
            let i = i as u64 * 3;
            [
                Metric::named(&format!("l{i}"), i, 4, Value::Long(*l)),
                Metric::named(&format!("d{i}"), i + 1, 10, Value::Double(*d)),
                Metric::named(&format!("b{i}"), i + 2, 11, Value::Boolean(*flag)),
            ]
        }).collect();
        let mut b = Births::default();
        let p = Payload { seq: Some(0), metrics, ..Default::default() };
        let (rows, _) = rows_of(&mut b, NBIRTH, &p, 0).unwrap();
        prop_assert_eq!(rows.len(), values.len() * 3);
        for (i, (l, d, flag)) in values.iter().enumerate() {
            prop_assert_eq!(&rows[i * 3]["int_value"], &json!(*l as i64));
            if d.is_finite() {
                prop_assert_eq!(rows[i * 3 + 1]["float_value"].as_f64(), Some(*d));
            } else {
                prop_assert!(rows[i * 3 + 1].get("float_value").is_none());
            }
            prop_assert_eq!(&rows[i * 3 + 2]["bool_value"], &json!(*flag));
        }
    }
}
