//! Hot reload while traffic flows: rule set A is replaced by set B through the rule files,
//! then a broken file is refused. Every message must be routed exactly once by one whole set:
//! A splits by parity, B by sequence range, so a half-applied mix would lose some messages and
//! duplicate others.

use crate::common::*;
use std::collections::BTreeMap;
use std::time::Duration;

const SET_A: &str = "-- name: a_even\n-- actions: lake\nSELECT device, seq FROM telemetry WHERE seq % 2 = 0\n\n\
                     -- name: a_odd\n-- actions: lake\nSELECT device, seq FROM telemetry WHERE seq % 2 = 1\n";
const SET_B: &str = "-- name: b_low\n-- actions: lake\nSELECT device, seq FROM telemetry WHERE seq < 150\n\n\
                     -- name: b_high\n-- actions: lake\nSELECT device, seq FROM telemetry WHERE seq >= 150\n";
const BROKEN: &str = "-- name: c\n-- actions: lake\nSELECT device seq FORM telemetry\n";

fn write_rules(dir: &std::path::Path, text: &str) {
    // Write then rename, as an editor or a deploy would: the reloader never reads half a file.
    let tmp = dir.join(".routing.sql.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join("routing.sql")).unwrap();
}

fn rules_status(http: &str) -> serde_json::Value {
    let (code, body) = http_get(http, "/rules").expect("GET /rules");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn rules_reload_under_traffic_without_loss_or_mixing() {
    let setup = Setup::new();
    let rules_dir = setup.dir.path().join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    write_rules(&rules_dir, SET_A);
    let http = format!("127.0.0.1:{}", free_port());
    let extra = "rule_paths = [\"rules\"]\n[sinks.lake]\ntype = \"parquet\"\n";
    let config = setup.write_config_with("sluice.toml", &http, extra, |c| {
        table(c, "router").insert("rules_reload_interval_ms".into(), 200.into());
    });
    let sluice = Sluice::start(&config, &[], Some(http.clone()));
    let version_a = rules_status(&http)["version"].as_str().unwrap().to_string();

    let (devices, per_device) = (20, 300);
    let publisher = publish_fleet_in_background(setup.mqtt.clone(), devices, per_device, 1_500);
    let root = setup.parquet_root();
    // Both of set A's rules: a first batch can hold only each device's first message (seq 0,
    // even), and the reload below may swap the set before the next batch.
    wait_until("set A routed some rows", Duration::from_secs(60), || {
        rule_rows(&root, "a_even") > 0 && rule_rows(&root, "a_odd") > 0
    });
    write_rules(&rules_dir, SET_B);
    wait_until("set B active", Duration::from_secs(30), || {
        rules_status(&http)["version"].as_str() != Some(&version_a)
    });
    let version_b = rules_status(&http)["version"].as_str().unwrap().to_string();

    write_rules(&rules_dir, BROKEN);
    wait_until(
        "the broken reload reported",
        Duration::from_secs(30),
        || rules_status(&http)["last_reload"]["ok"] == false,
    );
    let status = rules_status(&http);
    assert_eq!(
        status["version"].as_str(),
        Some(version_b.as_str()),
        "old set stays"
    );
    let errors = status["last_reload"]["errors"].to_string();
    assert!(
        errors.contains("routing.sql:3:"),
        "error has file and line: {errors}"
    );
    let (code, body) = http_request(&http, "POST", "/rules/reload").unwrap();
    assert_eq!(code, 422, "{body}");
    // Device metadata changes at run time through the API.
    let put = http_send(&http, "PUT", "/devices/dev-00003", r#"{"site":"plant-7"}"#).unwrap();
    assert_eq!(put.0, 204, "{put:?}");
    let got = http_get(&http, "/devices/dev-00003").unwrap();
    assert_eq!((got.0, got.1.as_str()), (200, r#"{"site":"plant-7"}"#));
    assert_eq!(
        http_request(&http, "DELETE", "/devices/dev-00003")
            .unwrap()
            .0,
        204
    );
    assert_eq!(http_get(&http, "/devices/dev-00003").unwrap().0, 404);
    let (_, metrics) = http_get(&http, "/metrics").unwrap();
    assert!(
        metrics.contains("sluice_rules_reload_failed 1"),
        "{metrics}"
    );

    publisher.join().unwrap();
    let total = devices as u64 * per_device;
    let rules = ["a_even", "a_odd", "b_low", "b_high"];
    wait_until("every message routed", Duration::from_secs(120), || {
        rules.iter().map(|r| rule_rows(&root, r)).sum::<u64>() >= total
    });
    sluice.stop();

    let mut seen: BTreeMap<(String, i64), u32> = BTreeMap::new();
    let mut per_rule = Vec::new();
    for r in rules {
        let found = device_seqs(&root, r);
        per_rule.push((r, found.values().sum::<u32>()));
        for (k, n) in found {
            *seen.entry(k).or_insert(0) += n;
        }
    }
    println!("rows per rule: {per_rule:?}");
    let (missing, duplicates) = compare(&seen, &expected(devices, per_device, |_| true));
    assert!(
        missing.is_empty(),
        "{} missing: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(duplicates, 0, "a message routed by both sets (or twice)");
    assert!(
        per_rule.iter().all(|(_, n)| *n > 0),
        "both sets routed rows: {per_rule:?}"
    );
}
