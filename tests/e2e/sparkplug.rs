//! Sparkplug B end to end (#28): a fleet of edge nodes encoded by another implementation
//! (Python's protobuf with Tahu's schema, paho-mqtt, QoS 1) goes through the gateway, Kafka
//! and two routers in one group to Parquet that DuckDB reads back. DATA messages carry
//! aliases only. While they arrive, each router is `kill -9`ed once and restarted, so edge
//! nodes' partitions move to a router that never saw their BIRTH (and to one that restarted
//! with an empty memory): every metric of every DATA message must still be in Parquet once,
//! under the name its BIRTH gave the alias, with its own value. The deaths at the end reach
//! the compliance tracker: every edge node and device is listed offline. Halfway, one edge
//! node sends a payload that does not decode and a DDATA no DBIRTH named, on its own
//! connection: both go to the dead-letter topic with their reasons, and nothing else moves.

use crate::common::*;
use std::process::Command;
use std::time::Duration;

const NODES: usize = 8;
const DEVICES: usize = 2;
const ROUNDS: usize = 200;

const RULE: &str = r#"
[[payloads]]
topics = "spBv1.0/#"
format = "sparkplug"

[[rules]]
name = "metrics"
sql = """SELECT edge_node, device, message_type, metric, message_ts, float_value, int_value,
         bool_value, string_value, online FROM 'spBv1.0/#'"""
actions = ["lake"]

[[rules]]
name = "liveness"
sql = """SELECT CASE WHEN device IS NULL THEN edge_node ELSE edge_node || '/' || device END
         AS device_id, online FROM 'spBv1.0/#' WHERE message_type LIKE '_BIRTH'
         OR message_type LIKE '_DEATH'"""
actions = ["fleet"]

[sinks.lake]
type = "parquet"

[sinks.fleet]
type = "compliance"
"#;

#[test]
fn sparkplug_metrics_keep_their_birth_names_across_router_kills() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let door = setup.write_config("sluice.toml", &http, RULE);
    let apis = [0, 1].map(|_| format!("127.0.0.1:{}", free_port()));
    let router_configs = [
        setup.write_config("router-a.toml", &apis[0], RULE),
        setup.write_config("router-b.toml", &apis[1], RULE),
    ];
    let door = Sluice::start(
        &door,
        &["--only", "brokers", "--only", "ingest"],
        Some(http),
    );
    let start = |i: usize| {
        let api = Some(apis[i].clone());
        Sluice::start(&router_configs[i], &["--only", "router"], api)
    };
    let mut routers = [Some(start(0)), Some(start(1))];

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/sparkplug.py");
    let mqtt = setup.mqtt.clone();
    let publisher = std::thread::spawn(move || {
        Command::new("python3")
            .arg(script)
            .arg(&mqtt)
            .args([NODES, DEVICES, ROUNDS].map(|n| n.to_string()))
            .arg("0.15")
            .output()
            .expect("python3")
    });
    let root = setup.parquet_root();
    let data_rows = (NODES * ROUNDS * (3 + DEVICES * 2)) as u64;
    // BIRTH rows: bdSeq and 3 metrics per node, 2 per device; DEATH rows: one each.
    let total = data_rows + (NODES * (4 + DEVICES * 2) + NODES * (1 + DEVICES)) as u64;
    for victim in [0, 1] {
        let before = rule_rows(&root, "metrics");
        wait_until("the routers write on", Duration::from_secs(120), || {
            rule_rows(&root, "metrics") > before + data_rows / 6
        });
        assert!(!publisher.is_finished(), "the kill must land mid-stream");
        routers[victim].take().unwrap().kill();
        let killed_at = rule_rows(&root, "metrics");
        wait_until("the survivor writes on", Duration::from_secs(60), || {
            rule_rows(&root, "metrics") > killed_at
        });
        routers[victim] = Some(start(victim));
    }
    let out = publisher.join().unwrap();
    assert!(
        out.status.success(),
        "publisher failed (pip install protobuf paho-mqtt pysparkplug): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("every metric in Parquet", Duration::from_secs(180), || {
        rule_rows(&root, "metrics") >= total
    });
    // Either router lists the whole fleet (the other's devices through its changelog).
    let offline = || {
        let report = get_json(&apis[0], "/compliance");
        let devices = report["devices"].as_array().cloned().unwrap_or_default();
        let dead = devices.iter().filter(|d| d["online"] == false).count();
        (devices.len(), dead)
    };
    let everyone = NODES * (1 + DEVICES);
    wait_until("the deaths in /compliance", Duration::from_secs(60), || {
        offline() == (everyone, everyone)
    });
    // The two bad messages (a killed router may have dead-lettered one twice: at least once).
    let dlq = read_topic(&setup.kafka, "telemetry.dlq", 2);
    let mut reasons: Vec<String> = (dlq.iter())
        .map(|(_, _, h)| {
            h["sluice.dlq.reason"]
                .split(':')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    reasons.sort();
    reasons.dedup();
    assert_eq!(
        reasons,
        ["Sparkplug alias unknown", "invalid Sparkplug B payload"]
    );
    for r in routers.into_iter().flatten() {
        r.stop();
    }
    door.stop();

    let glob = format!("{}/rule=metrics/**/*.parquet", root.display());
    let query = format!(
        "WITH data AS (SELECT *, CAST(split_part(edge_node, '-', 2) AS INT) AS e, \
                CAST(split_part(device, '-', 2) AS INT) AS d, message_ts - 1700000000000 AS r \
             FROM read_parquet('{glob}', hive_partitioning = false) \
             WHERE message_type IN ('NDATA', 'DDATA')) \
         SELECT count(*), count(DISTINCT (edge_node, device, metric, r)), \
           sum(CASE WHEN (metric = 'Temperature' AND float_value = e * 1000 + r + 0.25) \
                  OR (metric = 'Counter' AND int_value = -(r + 1)) \
                  OR (metric = 'Running' AND bool_value = (r % 2 = 0)) \
                  OR (metric = 'Speed' AND int_value = -(e * 100 + d * 10 + r)) \
                  OR (metric = 'Label' AND string_value = 'r' || r) THEN 1 ELSE 0 END), \
           (SELECT count(*) FROM read_parquet('{glob}', hive_partitioning = false) \
              WHERE message_type LIKE '_DEATH' AND NOT online) \
         FROM data"
    );
    let n = data_rows.to_string();
    let deaths = (NODES * (1 + DEVICES)).to_string();
    assert_eq!(
        duckdb_first_row(&query),
        [n.as_str(), n.as_str(), n.as_str(), deaths.as_str()],
        "DATA metric rows, distinct (edge node, device, metric, round), rows named and valued \
         as published, DEATH rows offline"
    );
}
