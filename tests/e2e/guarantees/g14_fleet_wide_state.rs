//! #24.14: device retirements and catalog changes lived only in one router's local file:
//! other routers kept counting a retired device, and an empty data directory lost them. Now
//! they are fleet-wide records in the compliance changelog, which every router reads (the one
//! that wrote them included).

use crate::common::*;
use serde_json::json;
use std::time::Duration;

const CONFIG: &str = r#"
[[rules]]
name = "reports"
sql = "SELECT model, version FROM telemetry WHERE is_defined(version)"
actions = ["updates"]

[sinks.updates]
type = "compliance"
updates = [{ id = "cam-1.10", version = "1.10", models = ["cam"] }]
"#;

#[test]
fn g14_retirements_and_catalog_changes_survive_an_empty_state_directory() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let cfg = setup.write_config("sluice.toml", &http, CONFIG);
    let sluice = Sluice::start(&cfg, &[], Some(http.clone()));
    let reading = json!({"model": "cam", "version": "1.10"});
    let fleet: Vec<(String, serde_json::Value)> = (1..=3)
        .map(|i| (format!("cam-{i}"), reading.clone()))
        .collect();
    publish_json(&setup.mqtt, &fleet);
    wait_until("three devices tracked", Duration::from_secs(60), || {
        get_json(&http, "/compliance")["total"]["devices"] == 3
    });
    let (code, _) = http_request(&http, "POST", "/devices/cam-2/retire").unwrap();
    assert_eq!(code, 204);
    let put = r#"{"version": "1.11", "models": ["cam"]}"#;
    let (code, body) = http_send(&http, "PUT", "/compliance/catalog/cam-1.11", put).unwrap();
    assert_eq!(code, 204, "{body}");
    sluice.stop(); // the final checkpoint writes them to the changelog

    // The router's local state is gone (a new volume, another replica); Kafka is not.
    std::fs::remove_dir_all(setup.dir.path().join("data/compliance")).unwrap();
    let sluice = Sluice::start(&cfg, &[], Some(http.clone()));
    let r = get_json(&http, "/compliance");
    assert_eq!(r["retired"], 1, "{r}");
    assert_eq!(
        r["total"]["devices"], 2,
        "the retired device is not counted: {r}"
    );
    let catalog = get_json(&http, "/compliance/catalog").to_string();
    assert!(catalog.contains("cam-1.11"), "{catalog}");
    assert_eq!(
        r["total"]["on_latest_update"], 0,
        "1.11 is the latest again, so the cams on 1.10 are not: {r}"
    );
    sluice.stop();
}
