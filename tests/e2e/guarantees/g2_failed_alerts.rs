//! #24.2: rows of an alert the webhook gave up on go to the rule's Parquet error action a
//! checkpoint or more after their Kafka record. When that sink's ledger for the partition had
//! already moved past the record's offset (other rows of the same device reached it first),
//! the sink took the failure rows for a replay and dropped them.

use crate::common::webhook::WebhookServer;
use crate::common::*;
use serde_json::json;
use std::time::Duration;

fn config(down: &WebhookServer) -> String {
    format!(
        r#"
[[rules]]
name = "hot"
sql = "SELECT device, temperature FROM telemetry WHERE temperature > 80"
actions = ["pager"]
error_action = "failed"

[[rules]]
name = "copy"
sql = "SELECT device, seq FROM telemetry"
actions = ["failed"]

[sinks.pager]
type = "alert"
resolve_after_ms = 600000
destinations = [{{ type = "webhook", url = "{down}", retries = 3, backoff_ms = 1000 }}]

[sinks.failed]
type = "parquet"
path = "failed"
"#,
        down = down.url
    )
}

#[test]
fn g2_a_failed_alert_reaches_a_parquet_error_action_whose_ledger_moved_past_it() {
    let down = WebhookServer::start(500);
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let cfg = setup.write_config("sluice.toml", &http, &config(&down));
    let sluice = Sluice::start(&cfg, &[], Some(http.clone()));
    let root = setup.dir.path().join("data/failed");

    publish_json(&setup.mqtt, &[("d1", json!({"temperature": 95, "seq": 0}))]);
    // The same device's later readings reach `failed` (rule `copy`) while the webhook is
    // still being retried: the partition's ledger there moves past the hot reading.
    for seq in 1..=20 {
        publish_json(
            &setup.mqtt,
            &[("d1", json!({"temperature": 20, "seq": seq}))],
        );
        std::thread::sleep(Duration::from_millis(100)); // a device's pace, not a wait
    }
    wait_until("the copies published", Duration::from_secs(30), || {
        rule_rows(&root, "copy") >= 21
    });
    wait_until("the webhook gave up", Duration::from_secs(60), || {
        down.total() >= 4
    });
    wait_until(
        "the failed alert's row in the error action",
        Duration::from_secs(30),
        || rule_rows(&root, "hot") >= 1,
    );
    let errors = parquet_strings(&root, Some("_error"));
    assert!(errors.iter().any(|e| e.contains("HTTP 500")), "{errors:?}");
    sluice.stop();
}
