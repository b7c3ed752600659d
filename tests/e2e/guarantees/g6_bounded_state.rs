//! #24.6: state keyed by ids devices choose was unbounded: the compliance tracker and the
//! alert sink kept every id ever seen, and each checkpoint rewrote the whole inventory. Now a
//! fleet minting more ids than `max_devices` / `max_keys` has the rest refused and counted,
//! the state file holds no inventory (the changelog does), and a restart shows the tracked
//! devices again at once.

use crate::common::*;
use serde_json::json;
use std::time::Duration;

const CONFIG: &str = r#"
[[rules]]
name = "reports"
sql = "SELECT model, version FROM telemetry WHERE is_defined(version)"
actions = ["updates"]

[[rules]]
name = "hot"
sql = "SELECT temp FROM telemetry WHERE temp > 40"
actions = ["pager"]

[sinks.updates]
type = "compliance"
max_devices = 300
updates = [{ id = "cam-1.10", version = "1.10", models = ["cam"] }]

[sinks.pager]
type = "alert"
max_keys = 200
resolve_after_ms = 600000
destinations = [{ type = "log" }]
"#;

const FLEET: usize = 1_000;

fn refused(http: &str) -> (f64, f64) {
    let metrics = http_get(http, "/metrics").unwrap().1;
    let compliance = metric_value(
        &metrics,
        "sluice_compliance_reports_refused_total",
        &["sink=\"updates\"", "reason=\"max_devices\""],
    );
    let alerts = metric_value(
        &metrics,
        "sluice_alert_keys_refused_total",
        &["sink=\"pager\""],
    );
    (compliance.unwrap_or(0.0), alerts.unwrap_or(0.0))
}

#[test]
fn g6_ids_past_the_limits_are_refused_and_counted_and_the_state_stays_bounded() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let cfg = setup.write_config("sluice.toml", &http, CONFIG);
    let sluice = Sluice::start(&cfg, &[], Some(http.clone()));
    let reading = json!({"model": "cam", "version": "1.9", "temp": 50});
    let fleet: Vec<(String, serde_json::Value)> = (0..FLEET)
        .map(|i| (format!("minted-{i:05}"), reading.clone()))
        .collect();
    publish_json(&setup.mqtt, &fleet);
    let want = ((FLEET - 300) as f64, (FLEET - 200) as f64);
    wait_until("every id routed", Duration::from_secs(90), || {
        refused(&http) == want
    });
    assert_eq!(get_json(&http, "/compliance")["total"]["devices"], 300);
    assert_eq!(
        get_json(&http, "/alerts")["firing"]
            .as_array()
            .map(Vec::len),
        Some(200)
    );

    // The state file keeps catalog and retirements, not the inventory: the changelog does.
    let file = setup.dir.path().join("data/compliance/updates.json");
    wait_until(
        "a checkpoint saved the state",
        Duration::from_secs(30),
        || file.exists(),
    );
    let state = std::fs::read_to_string(&file).unwrap();
    assert!(
        !state.contains("minted-"),
        "{} bytes: {state:.300}",
        state.len()
    );
    sluice.stop();

    // A restart shows the tracked devices at once (read back from the changelog), and the
    // limit still holds for new ids.
    let sluice = Sluice::start(&cfg, &[], Some(http.clone()));
    assert_eq!(get_json(&http, "/compliance")["total"]["devices"], 300);
    publish_json(&setup.mqtt, &[("minted-new", reading.clone())]);
    wait_until("the new id refused", Duration::from_secs(60), || {
        refused(&http).0 == 1.0
    });
    assert_eq!(get_json(&http, "/compliance")["total"]["devices"], 300);
    sluice.stop();
}
