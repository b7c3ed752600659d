//! The compliance tracker end to end: devices of two models in three groups report their
//! installed update over MQTT; an active deployment and a failed one; per-device states and
//! per-group counts per the Device Update definitions; a new catalog entry flips "on latest"
//! devices; a retired device leaves the counts; state survives a restart; snapshots are Parquet.

use crate::common::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const CONFIG: &str = r#"
[[rules]]
name = "device_reports"
sql = """SELECT model, version, fleet_group AS "group", deployment, deployment_state
         FROM telemetry WHERE is_defined(version)"""
actions = ["updates"]

[sinks.updates]
type = "compliance"
snapshot_interval_ms = 500
updates = [
  { id = "cam-1.9", version = "1.9", models = ["cam"] },
  { id = "cam-1.10", version = "1.10", models = ["cam"] },
  { id = "gw-2.0", version = "2.0", models = ["gw"] },
  { id = "gw-2.1", version = "2.1", models = ["gw"] },
]
deployments = [
  { id = "dep-a", group = "a", update = "cam-1.10" },
  { id = "dep-b", group = "b", update = "gw-2.1" },
  { id = "dep-c", group = "c", update = "cam-1.10", status = "cancelled" },
]
"#;

/// (device, model, version, group, deployment state for the group's deployment).
const FLEET: [(&str, &str, &str, &str, Option<&str>); 8] = [
    ("cam-a1", "cam", "1.10", "a", Some("succeeded")),
    ("cam-a2", "cam", "1.9", "a", Some("in_progress")),
    ("gw-a1", "gw", "2.1", "a", None),
    ("gw-b1", "gw", "2.0", "b", Some("in_progress")),
    ("gw-b2", "gw", "2.0", "b", Some("failed")),
    ("cam-b1", "cam", "1.9", "b", None),
    ("cam-c1", "cam", "1.9", "c", None),
    ("cam-c2", "cam", "1.10", "c", None),
];

fn reports() -> Vec<(&'static str, serde_json::Value)> {
    FLEET
        .iter()
        .map(|(d, model, version, group, state)| {
            let mut v = json!({"model": model, "version": version, "fleet_group": group});
            if let Some(s) = state {
                v["deployment"] = format!("dep-{group}").into();
                v["deployment_state"] = (*s).into();
            }
            (*d, v)
        })
        .collect()
}

fn states(http: &str) -> BTreeMap<String, String> {
    get_json(http, "/compliance")["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let name = d["device"].as_str().unwrap().to_string();
            (name, d["state"].as_str().unwrap().to_string())
        })
        .collect()
}

fn counts(r: &serde_json::Value, group: &str) -> [u64; 3] {
    let g = &r["groups"][group];
    [
        "on_latest_update",
        "update_in_progress",
        "new_updates_available",
    ]
    .map(|k| g[k].as_u64().unwrap_or(u64::MAX))
}

#[test]
fn compliance_follows_the_device_update_definitions() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let cfg = setup.write_config("sluice.toml", &http, CONFIG);
    let sluice = Sluice::start(&cfg, &[], Some(http.clone()));
    publish_json(&setup.mqtt, &reports());
    wait_until("every device reported", Duration::from_secs(60), || {
        states(&http).len() == FLEET.len()
    });

    let s = states(&http);
    let expect = [
        ("cam-a1", "on_latest_update"),
        ("cam-a2", "update_in_progress"), // dep-a delivers cam 1.10 to group a
        ("gw-a1", "on_latest_update"),
        ("gw-b1", "update_in_progress"), // dep-b delivers gw 2.1 to group b
        ("gw-b2", "new_updates_available"), // its dep-b failed: not in progress
        ("cam-b1", "new_updates_available"), // no deployment for cams in b
        ("cam-c1", "new_updates_available"), // dep-c is cancelled
        ("cam-c2", "on_latest_update"),
    ];
    for (device, state) in expect {
        assert_eq!(s[device], state, "{device}");
    }
    let r = get_json(&http, "/compliance");
    assert_eq!(counts(&r, "a"), [2, 1, 0]);
    assert_eq!(counts(&r, "b"), [0, 1, 2]);
    assert_eq!(counts(&r, "c"), [1, 0, 1]);
    assert_eq!(r["total"]["devices"], 8);
    assert_eq!(r["total"]["compliance_percent"], 37.5);
    assert_eq!(
        r["failed"],
        json!([{"deployment": "dep-b", "group": "b", "devices": 1}])
    );
    let filtered = get_json(&http, "/compliance?state=update_in_progress&group=b");
    assert_eq!(filtered["devices"].as_array().unwrap().len(), 1);
    assert_eq!(filtered["devices"][0]["device"], "gw-b1");

    // cam 1.11 is published: the cams on 1.10 are no longer on the latest.
    let put = r#"{"version": "1.11", "models": ["cam"]}"#;
    let (code, body) = http_send(&http, "PUT", "/compliance/catalog/cam-1.11", put).unwrap();
    assert_eq!(code, 204, "{body}");
    let s = states(&http);
    assert_eq!(s["cam-a1"], "new_updates_available");
    assert_eq!(s["cam-c2"], "new_updates_available");
    assert_eq!(
        s["cam-a2"], "new_updates_available",
        "dep-a delivers 1.10, not the latest"
    );
    assert_eq!(s["gw-a1"], "on_latest_update");

    // A retired device leaves the counts and its messages are dropped.
    let (code, _) = http_request(&http, "POST", "/devices/cam-c1/retire").unwrap();
    assert_eq!(code, 204);
    assert_eq!(get_json(&http, "/compliance")["total"]["devices"], 7);
    publish_json(
        &setup.mqtt,
        &[("cam-c1", json!({"model": "cam", "version": "1.11"}))],
    );
    wait_until(
        "the retired device's message dropped",
        Duration::from_secs(30),
        || {
            http_get(&http, "/metrics")
                .unwrap()
                .1
                .contains("sluice_retired_messages_dropped_total 1")
        },
    );

    let snapshots = setup.dir.path().join("data/compliance/snapshots");
    wait_until("a Parquet snapshot", Duration::from_secs(30), || {
        !sluice::cli::summary::parquet_files(&snapshots).is_empty()
    });
    // No --url: the address comes from the config's [http].
    let (code, out) = sluice_cli(
        &[
            "compliance",
            "report",
            "--config",
            cfg.to_str().unwrap(),
            "--group",
            "b",
        ],
        setup.dir.path(),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("TOTAL") && out.contains("dep-b"), "{out}");
    assert!(!out.contains('"'), "plain names, no JSON quotes:\n{out}");
    let counts: Vec<&str> = out.lines().take_while(|l| !l.is_empty()).collect();
    assert_eq!(
        counts.len(),
        1 + 3 + 1,
        "header, groups a b c, TOTAL:\n{out}"
    );
    let width = counts[0].len();
    assert!(
        counts.iter().all(|l| l.len() == width),
        "numbers sit under their headers:\n{out}"
    );
    let gw_b1 = out
        .lines()
        .find(|l| l.starts_with("gw-b1"))
        .unwrap_or_default();
    let words: Vec<&str> = gw_b1.split_whitespace().collect();
    assert_eq!(
        words,
        ["gw-b1", "b", "gw", "2.0", "2.1", "update_in_progress"],
        "{out}"
    );
    let metrics = http_get(&http, "/metrics").unwrap().1;
    assert!(metrics.contains("sluice_compliance_percent{sink=\"updates\",group=\"a\"}"));
    sluice.stop();

    // State (inventory, published update, retirement) survives a restart.
    let sluice = Sluice::start(&cfg, &[], Some(http.clone()));
    let r = get_json(&http, "/compliance");
    assert_eq!(r["total"]["devices"], 7);
    assert_eq!(states(&http)["cam-a1"], "new_updates_available");
    assert!(!states(&http).contains_key("cam-c1"));
    sluice.stop();
    let rows = snapshot_rows(&snapshots);
    assert!(rows >= 7, "snapshot rows: {rows}");
}

/// Rows of the newest snapshot file.
fn snapshot_rows(root: &std::path::Path) -> usize {
    let mut files = sluice::cli::summary::parquet_files(root);
    files.sort();
    let file = std::fs::File::open(files.last().unwrap()).unwrap();
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum()
}

#[test]
fn compliance_gauges_follow_devices_that_move_group_or_recover() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let cfg = setup.write_config("sluice.toml", &http, CONFIG);
    let sluice = Sluice::start(&cfg, &[], Some(http.clone()));
    let cam = |group: &str| json!({"model": "cam", "version": "1.9", "fleet_group": group});
    let mut failed = json!({"model": "gw", "version": "2.0", "fleet_group": "b"});
    failed["deployment"] = "dep-b".into();
    failed["deployment_state"] = "failed".into();
    let mut made_up = cam("c");
    made_up["deployment"] = "dep-made-up".into();
    made_up["deployment_state"] = "failed".into();
    publish_json(
        &setup.mqtt,
        &[
            ("m1", cam("a")),
            ("m2", cam("a")),
            ("m3", failed.clone()),
            ("m4", made_up),
        ],
    );
    let devices = |text: &str, group: &str| {
        let group = format!("group=\"{group}\"");
        metric_sum(
            text,
            "sluice_compliance_devices",
            &["sink=\"updates\"", &group],
        )
    };
    let failed_gauge = |text: &str| {
        let labels = ["deployment=\"dep-b\"", "group=\"b\""];
        metric_value(text, "sluice_deployment_failed_devices", &labels)
    };
    wait_until(
        "four devices on the gauges",
        Duration::from_secs(60),
        || {
            let m = http_get(&http, "/metrics").unwrap().1;
            metric_sum(&m, "sluice_compliance_devices", &[]) == 4.0 && failed_gauge(&m) == Some(1.0)
        },
    );
    let m = http_get(&http, "/metrics").unwrap().1;
    assert_eq!(devices(&m, "a"), 2.0);
    assert!(
        !m.contains("dep-made-up"),
        "a made-up deployment id is no label value"
    );
    assert_eq!(
        metric_value(
            &m,
            "sluice_compliance_unknown_deployment_reports_total",
            &[]
        ),
        Some(1.0)
    );

    // m2 moves to group b; m3's deployment succeeds after all.
    failed["deployment_state"] = "succeeded".into();
    publish_json(&setup.mqtt, &[("m2", cam("b")), ("m3", failed)]);
    wait_until("m2 counted in b", Duration::from_secs(60), || {
        devices(&http_get(&http, "/metrics").unwrap().1, "b") == 2.0
    });
    let m = http_get(&http, "/metrics").unwrap().1;
    assert_eq!(devices(&m, "a"), 1.0, "m2 left group a:\n{m}");
    assert_eq!(
        metric_sum(&m, "sluice_compliance_devices", &[]),
        metric_value(&m, "sluice_compliance_fleet_devices", &[]).unwrap(),
        "the groups add up to the fleet"
    );
    assert_eq!(failed_gauge(&m), Some(0.0), "m3 recovered");
    sluice.stop();
}

/// #24.10: the changelog checkpoint writes every changed device at once; a producer queue
/// smaller than that used to fail the checkpoint ("Queue full"), which restarted the router
/// again and again. Now it waits for what is queued and goes on: no restart, every device
/// saved.
#[test]
fn g10_a_checkpoint_larger_than_the_producer_queue_waits_instead_of_failing() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let extra =
        format!("{CONFIG}\n[kafka.properties]\n\"queue.buffering.max.messages\" = \"20\"\n");
    let cfg = setup.write_config("sluice.toml", &http, &extra);
    let sluice = Sluice::start(&cfg, &[], Some(http.clone()));
    let devices = 300;
    let reports: Vec<(String, serde_json::Value)> = (0..devices)
        .map(|i| {
            let report = json!({"model": "cam", "version": "1.9", "fleet_group": "a"});
            (format!("cam-{i}"), report)
        })
        .collect();
    let refs: Vec<(&str, serde_json::Value)> = reports
        .iter()
        .map(|(t, v)| (t.as_str(), v.clone()))
        .collect();
    publish_json(&setup.mqtt, &refs);
    wait_until("every device reported", Duration::from_secs(60), || {
        states(&http).len() == devices
    });
    let metric = |name: &str| {
        let (_, m) = http_get(&http, "/metrics").unwrap();
        metric_value(&m, name, &["stage=\"router\""]).unwrap_or(0.0)
    };
    // Checkpoints run every 500 ms: two more after every device is in means one of them
    // saved them all (or failed, and the router restarted).
    let checkpoints = || {
        let (_, m) = http_get(&http, "/metrics").unwrap();
        metric_value(&m, "sluice_checkpoint_seconds_count", &[]).unwrap_or(0.0)
    };
    let before = checkpoints();
    wait_until("two more checkpoints", Duration::from_secs(30), || {
        checkpoints() >= before + 2.0 || metric("sluice_stage_restarts_total") > 0.0
    });
    assert_eq!(
        metric("sluice_stage_restarts_total"),
        0.0,
        "the router restarted"
    );
    sluice.stop();
}
