//! Alert state follows its partition: devices fire alerts through two routers; one is
//! `kill -9`ed and a new router (its own, empty data directory, as a rescheduled pod) joins;
//! the devices go on reporting the condition through whichever router now owns their
//! partition, which took their keys over from the changelog — so each key still fires exactly
//! once and resolves exactly once.

use crate::common::webhook::WebhookServer;
use crate::common::*;
use serde_json::json;
use std::time::Duration;

const DEVICES: usize = 8;

fn config(hook: &WebhookServer) -> String {
    format!(
        r#"
[[rules]]
name = "hot"
sql = "SELECT device, temperature FROM telemetry WHERE temperature > 80"
actions = ["pager"]

[sinks.pager]
type = "alert"
cooldown_ms = 600000
resolve_after_ms = 4000
destinations = [{{ type = "webhook", url = "{}" }}]
"#,
        hook.url
    )
}

fn hot_readings(seq: i64) -> Vec<(String, serde_json::Value)> {
    (0..DEVICES)
        .map(|i| {
            let device = format!("hot-{i}");
            let reading = json!({"device": device, "temperature": 90, "seq": seq});
            (device, reading)
        })
        .collect()
}

fn metric(http: &str, name: &str) -> f64 {
    let text = http_get(http, "/metrics").map(|r| r.1).unwrap_or_default();
    metric_value(&text, name, &[]).unwrap_or(0.0)
}

#[test]
fn a_killed_routers_alerts_fire_and_resolve_once_on_the_survivor() {
    let hook = WebhookServer::start(200);
    let setup = Setup::new();
    let extra = config(&hook);
    let http = format!("127.0.0.1:{}", free_port());
    let brokers_config = setup.write_config("sluice.toml", &http, &extra);
    let brokers = Sluice::start(
        &brokers_config,
        &["--only", "brokers", "--only", "ingest"],
        Some(http),
    );
    let routers: Vec<(String, std::path::PathBuf)> = ["router-a", "router-b", "router-c"]
        .iter()
        .map(|name| {
            let http = format!("127.0.0.1:{}", free_port());
            (
                http.clone(),
                setup.write_config(&format!("{name}.toml"), &http, &extra),
            )
        })
        .collect();
    let start = |i: usize| {
        let (http, config) = &routers[i];
        Sluice::start(config, &["--only", "router"], Some(http.clone()))
    };
    let owned = |i: usize| metric(&routers[i].0, "sluice_router_partitions_owned");
    let mut running = vec![start(0), start(1)];
    wait_until(
        "both routers own partitions",
        Duration::from_secs(60),
        || owned(0) > 0.0 && owned(1) > 0.0,
    );

    publish_json(&setup.mqtt, &hot_readings(0));
    let firing = |hook: &WebhookServer| {
        (0..DEVICES)
            .map(|i| hook.count("firing", &format!("hot-{i}")))
            .sum::<usize>()
    };
    wait_until(
        "every device's alert fired",
        Duration::from_secs(60),
        || firing(&hook) >= DEVICES,
    );
    // Each key's firing state is in the changelog (written at the checkpoint, just before the
    // offsets are committed); then the first router dies, holding some of the keys.
    let saved = read_topic(&setup.kafka, "telemetry.raw.changelog.pager", DEVICES);
    assert_eq!(saved.len(), DEVICES, "every key's state in the changelog");
    let first_owned = owned(0);
    running.remove(0).kill();
    running.push(start(2));
    wait_until(
        "the survivor and the new router own every partition",
        Duration::from_secs(90),
        || owned(1) + owned(2) >= 4.0,
    );
    // The condition goes on: no key may fire again on its new owner.
    publish_json(&setup.mqtt, &hot_readings(1));
    wait_until(
        "every key resolved after the quiet period",
        Duration::from_secs(90),
        || (0..DEVICES).all(|i| hook.count("resolved", &format!("hot-{i}")) >= 1),
    );
    let restored: f64 = [1, 2]
        .map(|i| metric(&routers[i].0, "sluice_alert_restores_total"))
        .iter()
        .sum();
    for s in running {
        s.stop();
    }
    brokers.stop();
    println!(
        "alert hand-over: the killed router owned {first_owned} partitions; restores on the \
         survivor and the new router: {restored}; firing notifications {} and resolved {} for \
         {DEVICES} keys",
        firing(&hook),
        (0..DEVICES)
            .map(|i| hook.count("resolved", &format!("hot-{i}")))
            .sum::<usize>()
    );
    assert!(first_owned > 0.0, "the killed router held partitions");
    for i in 0..DEVICES {
        let device = format!("hot-{i}");
        assert_eq!(hook.count("firing", &device), 1, "{device} fired once");
        assert_eq!(hook.count("resolved", &device), 1, "{device} resolved once");
    }
}
