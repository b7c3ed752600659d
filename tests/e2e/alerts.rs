//! Alert sinks against real local HTTP servers: a threshold rule fires once per device within
//! the cooldown, resolves after the quiet period (by webhook and on the `alerts` topic), stays quiet on a repeat inside the cooldown;
//! a server answering 500 gets the retries, then the rows go to the rule's error action.

use crate::common::webhook::WebhookServer;
use crate::common::*;
use serde_json::json;
use std::time::Duration;

fn config(ok: &WebhookServer, down: &WebhookServer) -> String {
    format!(
        r#"
[[rules]]
name = "hot"
sql = "SELECT device, temperature FROM telemetry WHERE temperature > 80"
actions = ["pager"]

[[rules]]
name = "hot_down"
sql = "SELECT device, temperature FROM telemetry WHERE temperature > 80"
actions = ["pager_down"]
error_action = "failed"

[sinks.pager]
type = "alert"
severity = {{ hot = "critical" }}
cooldown_ms = 60000
resolve_after_ms = 1500
destinations = [{{ type = "webhook", url = "{ok}" }}, {{ type = "kafka" }}, {{ type = "log" }}]

[sinks.pager_down]
type = "alert"
resolve_after_ms = 600000
destinations = [{{ type = "webhook", url = "{down}", retries = 2, backoff_ms = 50 }}]

[sinks.failed]
type = "parquet"
path = "failed"
"#,
        ok = ok.url,
        down = down.url
    )
}

fn reading(device: &str, temperature: i64, seq: i64) -> (&str, serde_json::Value) {
    (
        device,
        json!({"device": device, "temperature": temperature, "seq": seq}),
    )
}

#[test]
fn alerts_fire_once_resolve_and_failed_deliveries_reach_the_error_action() {
    let ok = WebhookServer::start(200);
    let down = WebhookServer::start(500);
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let cfg = setup.write_config("sluice.toml", &http, &config(&ok, &down));
    let sluice = Sluice::start(&cfg, &[], Some(http.clone()));

    // Three devices run hot five times each; one stays cool.
    let devices = ["d1", "d2", "d3"];
    let mut msgs: Vec<_> = (0..5)
        .flat_map(|seq| devices.map(|d| reading(d, 90 + seq, seq)))
        .collect();
    msgs.push(reading("cool", 20, 0));
    publish_json(&setup.mqtt, &msgs);

    wait_until(
        "every repeat counted on the firing alerts",
        Duration::from_secs(60),
        || {
            let alerts = get_json(&http, "/alerts");
            let counts: Vec<u64> = alerts["firing"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["sink"] == "pager")
                .map(|a| a["count"].as_u64().unwrap())
                .collect();
            counts == [5, 5, 5]
        },
    );
    wait_until("three resolves", Duration::from_secs(30), || {
        devices.iter().all(|d| ok.count("resolved", d) == 1)
    });
    for d in devices {
        assert_eq!(ok.count("firing", d), 1, "{d}: one firing notification");
    }
    let first = ok.bodies.lock().unwrap()[0].clone();
    assert_eq!(first["severity"], "critical");
    assert_eq!(first["rule"], "hot");
    assert!(
        first["columns"]["temperature"].as_i64().unwrap() > 80,
        "{first}"
    );
    assert_eq!(ok.count("firing", "cool"), 0);
    // The same six notifications on the `alerts` topic, keyed by alert key.
    let records = read_topic(&setup.kafka, "alerts", 6);
    let mut keys: Vec<String> = records
        .iter()
        .map(|(k, _, _)| String::from_utf8_lossy(k).into_owned())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["hot/d1", "hot/d1", "hot/d2", "hot/d2", "hot/d3", "hot/d3"]
    );

    // d1 runs hot again inside the 60 s cooldown: it fires again silently.
    publish_json(&setup.mqtt, &[reading("d1", 95, 9)]);
    wait_until("d1 firing again", Duration::from_secs(30), || {
        get_json(&http, "/alerts")["firing"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["sink"] == "pager" && a["device"] == "d1")
    });
    assert_eq!(
        ok.count("firing", "d1"),
        1,
        "no second notification in the cooldown"
    );

    // The failing server saw 1 + 2 retries per alert, then the rows reached `failed`.
    let failed_root = setup.dir.path().join("data/failed");
    wait_until(
        "failed alerts in the error action",
        Duration::from_secs(60),
        || rule_rows(&failed_root, "hot_down") >= 3,
    );
    assert_eq!(down.total(), 3 * 3, "three alerts, three attempts each");
    let errors = read_errors(&failed_root);
    assert!(
        errors.iter().all(|e| e.contains("HTTP 500")),
        "reasons: {errors:?}"
    );
    let metrics = http_get(&http, "/metrics").unwrap().1;
    for name in [
        "sluice_alerts_fired_total{rule=\"hot\"} 3",
        "sluice_alerts_resolved_total{rule=\"hot\"} 3",
        "sluice_alerts_failed_total{rule=\"hot_down\"} 3",
        "sluice_alert_delivery_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    sluice.stop();
}

/// The `_error` column of every row under `root`.
fn read_errors(root: &std::path::Path) -> Vec<String> {
    parquet_strings(root, Some("_error"))
}
