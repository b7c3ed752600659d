//! A dead alert destination never stalls routing: the same fleet, with every message firing
//! an alert, routed once with a healthy webhook and once with one that accepts connections
//! and never answers. Routing throughput stays within 20 %, the outbox stays within its
//! capacity, the circuit breaker opens, and the overflow goes to the error action.

use crate::common::webhook::WebhookServer;
use crate::common::*;
use std::time::{Duration, Instant};

const DEVICES: usize = 20;
const PER_DEVICE: u64 = 300;
const RATE: u64 = 1_500;
const CAPACITY: usize = 200;

fn config(webhook: &str) -> String {
    format!(
        r#"
[[rules]]
name = "every"
sql = "SELECT device, seq FROM telemetry"
actions = ["pager", "lake"]
error_action = "failed"

[sinks.lake]
type = "parquet"

[sinks.failed]
type = "parquet"
path = "failed"

[sinks.pager]
type = "alert"
key_columns = ["device", "seq"]
resolve_after_ms = 600000
queue_capacity = {CAPACITY}
destinations = [{{ type = "webhook", url = "{webhook}", timeout_ms = 1000, retries = 1, backoff_ms = 50 }}]
"#
    )
}

/// Routes the fleet with alerts going to `webhook`: (rows per second routed, /metrics once
/// `until` holds on them).
fn route_fleet(webhook: &str, until: impl Fn(&str) -> bool) -> (f64, String) {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let cfg = setup.write_config("sluice.toml", &http, &config(webhook));
    let sluice = Sluice::start(&cfg, &[], Some(http.clone()));
    let started = Instant::now();
    let publisher = publish_fleet_in_background(setup.mqtt.clone(), DEVICES, PER_DEVICE, RATE);
    let total = DEVICES as u64 * PER_DEVICE;
    let root = setup.parquet_root();
    wait_until("every message routed", Duration::from_secs(120), || {
        rule_rows(&root, "every") >= total
    });
    let rate = total as f64 / started.elapsed().as_secs_f64();
    publisher.join().unwrap();
    let metrics = || http_get(&http, "/metrics").unwrap().1;
    wait_until(
        "the metrics show the outcome",
        Duration::from_secs(60),
        || until(&metrics()),
    );
    let metrics = metrics();
    sluice.stop();
    (rate, metrics)
}

#[test]
fn a_dead_webhook_never_stalls_routing_and_its_queue_stays_bounded() {
    let healthy = WebhookServer::start(200);
    // Accepts connections and never answers: every attempt waits out its timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}/hook", silent.local_addr().unwrap());

    let sink = "sink=\"pager\"";
    let (healthy_rate, _) = route_fleet(&healthy.url, |_| true);
    let (dead_rate, metrics) = route_fleet(&silent_url, |m| {
        metric_value(m, "sluice_alert_circuit_open", &[sink]) == Some(1.0)
    });
    println!(
        "alert outage: routed {healthy_rate:.0} rows/s with a healthy webhook, {dead_rate:.0} \
         rows/s with a dead one (ratio {:.2})",
        dead_rate / healthy_rate
    );
    let backlog = metric_value(&metrics, "sluice_alert_backlog", &[sink]);
    let open = metric_value(&metrics, "sluice_alert_circuit_open", &[sink]);
    let overflowed = metric_value(&metrics, "sluice_alerts_overflowed_total", &[]);
    println!("alert outage: backlog {backlog:?}, circuit open {open:?}, overflowed {overflowed:?}");
    assert!(
        dead_rate >= 0.8 * healthy_rate,
        "routing slowed by the dead webhook: {dead_rate:.0} vs {healthy_rate:.0} rows/s"
    );
    assert!(
        backlog.is_some_and(|b| b <= CAPACITY as f64 + 1.0),
        "backlog {backlog:?}"
    );
    assert_eq!(open, Some(1.0), "the circuit breaker opened");
    assert!(
        overflowed.is_some_and(|n| n > 0.0),
        "the overflow went to the error action"
    );
    drop(silent);
}
