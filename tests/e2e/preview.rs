//! `sluice rules preview` against `sluice run` fed by a fleet: the rows it prints for a running
//! rule are the rows that rule wrote to Parquet for the same records; a changed rule's
//! difference is shown; nothing is committed (the router group's offsets are unchanged);
//! an unreachable broker is refused clearly.

use crate::common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const HOT: &str = "-- name: hot\n-- actions: lake\n\
    SELECT device_id() AS device, seq, temperature FROM 'devices/+/telemetry' WHERE temperature > 80\n";
const ALL: &str =
    "-- name: all\n-- actions: lake\nSELECT device_id() AS device, seq FROM telemetry\n";

#[test]
fn preview_prints_what_the_router_writes_and_commits_nothing() {
    let setup = Setup::new();
    let rules = setup.dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("hot.sql"), HOT).unwrap();
    std::fs::write(rules.join("all.sql"), ALL).unwrap();
    let http = format!("127.0.0.1:{}", free_port());
    let extra = "rule_paths = [\"rules\"]\n[sinks.lake]\ntype = \"parquet\"\n";
    let config = setup.write_config("sluice.toml", &http, extra);
    let sluice = Sluice::start(&config, &[], Some(http));

    let (devices, per_device) = (20, 50);
    publish_fleet(sluice_loadtest::fleet::FleetConfig {
        broker: setup.mqtt.clone(),
        devices,
        messages_per_device: per_device,
        client_prefix: "preview-fleet".into(),
        ..Default::default()
    });
    let total = devices as u64 * per_device;
    let root = setup.parquet_root();
    wait_until("every record routed", Duration::from_secs(120), || {
        rule_rows(&root, "all") >= total
    });
    let committed = || group_offsets(&config);
    wait_until(
        "the router committed everything",
        Duration::from_secs(60),
        || committed().values().sum::<i64>() >= total as i64,
    );
    let before = committed();

    let dir = setup.dir.path();
    let out = preview_json(dir, "rules/hot.sql");
    let previewed = rows_of(&out, "hot", None);
    let written: BTreeMap<(String, i64), u32> = device_seqs(&root, "hot");
    assert!(!written.is_empty(), "the rule wrote rows");
    assert_eq!(
        previewed, written,
        "preview rows = the rows the router wrote"
    );

    // A changed rule: its running version's extra rows are shown as `-`.
    let changed = dir.join("changed");
    std::fs::create_dir(&changed).unwrap();
    std::fs::write(changed.join("hot.sql"), HOT.replace("> 80", "> 90")).unwrap();
    let out = preview_json(dir, "changed/hot.sql");
    let only_running = rows_of(&out, "hot", Some("-")).len();
    let above_90 = rows_of(&out, "hot", None).len();
    assert!(only_running > 0 && above_90 > 0, "{out}");
    assert_eq!(
        only_running + above_90,
        written.len(),
        "the diff accounts for every row"
    );

    // A table for people, and the promise printed with it.
    let (code, out) = sluice_cli(&TABLE_PREVIEW, dir);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("rule 'hot' (unchanged)") && out.contains("| device"),
        "{out}"
    );
    assert!(out.contains("no offset committed"), "{out}");

    assert_eq!(
        committed(),
        before,
        "preview committed no offset of the router group"
    );
    sluice.stop();

    // The broker is gone: a clear refusal, not a hang.
    let (code, out) = sluice_cli(&TABLE_PREVIEW, dir);
    assert_ne!(code, 0);
    assert!(out.contains("kafka at"), "{out}");
}

/// `sluice rules preview` of the running rule, as a table.
const TABLE_PREVIEW: [&str; 5] = [
    "rules",
    "preview",
    "rules/hot.sql",
    "--config",
    "sluice.toml",
];

/// `sluice rules preview FILE --json` over every record, run in `dir`; its output.
fn preview_json(dir: &Path, file: &str) -> String {
    let args = [
        "rules",
        "preview",
        file,
        "--config",
        "sluice.toml",
        "--last",
        "100000",
        "--json",
    ];
    let (code, out) = sluice_cli(&args, dir);
    assert_eq!(code, 0, "{out}");
    out
}

/// `(device, seq)` of the `--json` lines for `rule`; `diff`: only the lines of that side.
fn rows_of(out: &str, rule: &str, diff: Option<&str>) -> BTreeMap<(String, i64), u32> {
    let mut rows = BTreeMap::new();
    for line in out.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["rule"] != rule || v["diff"].as_str() != diff {
            continue;
        }
        let key = (
            v["row"]["device"].as_str().unwrap().to_string(),
            v["row"]["seq"].as_i64().unwrap(),
        );
        *rows.entry(key).or_insert(0) += 1;
    }
    rows
}

/// The router group's committed offset per partition of the raw topic.
fn group_offsets(config_path: &Path) -> BTreeMap<i32, i64> {
    let config = sluice_config::load(config_path).unwrap();
    let bootstrap = sluice_kafka::bootstrap(&config);
    let consumer: BaseConsumer = sluice_kafka::kafka_client_config(&config, &bootstrap)
        .set("group.id", &config.router.group_id)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..config.kafka.partitions {
        tpl.add_partition(&config.kafka.raw_topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => (e.partition(), o),
            _ => (e.partition(), 0),
        })
        .collect()
}
