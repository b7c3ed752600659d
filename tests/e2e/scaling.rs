//! Scaling signals against real brokers: with no router running while traffic flows, lag
//! grows and `/scaling` asks for more router replicas, capped at the partitions; once a router
//! catches up the advice settles back to one and does not flap.

use crate::common::*;
use std::time::{Duration, Instant};

/// Every message to Parquet, and scaling tuned so 300 msg/s is one router's worth.
const SCALING: &str = r#"
[scaling]
interval_ms = 500
router_capacity_per_replica = 500.0
target_lag_seconds = 2.0
scale_down_window_ms = 3000
ewma_alpha = 0.5
"#;

fn config_text() -> String {
    format!("{ALL_TO_PARQUET}\n{SCALING}")
}

fn router_signals(http: &str) -> serde_json::Value {
    get_json(http, "/scaling")["router"].clone()
}

#[test]
fn lag_raises_the_replica_advice_up_to_the_partitions_then_it_settles_without_flapping() {
    let setup = Setup::new();
    let ingest_http = format!("127.0.0.1:{}", free_port());
    let ingest_cfg = setup.write_config("ingest.toml", &ingest_http, &config_text());
    let ingest = Sluice::start(
        &ingest_cfg,
        &["--only", "brokers", "--only", "ingest"],
        Some(ingest_http.clone()),
    );
    // 300 msg/s: one router's worth (capacity 500/s), so only the backlog asks for more.
    let fleet = publish_fleet_in_background(setup.mqtt.clone(), 10, 4_000, 300);

    wait_until("lag growing", Duration::from_secs(60), || {
        router_signals(&ingest_http)["lag_total"]
            .as_u64()
            .unwrap_or(0)
            > 1_000
    });
    let before = router_signals(&ingest_http)["lag_total"].as_u64().unwrap();
    wait_until(
        "more replicas asked for, capped at 4 partitions",
        Duration::from_secs(60),
        || {
            let r = router_signals(&ingest_http);
            r["desired_replicas"] == 4 && r["partition_limited"] == true
        },
    );
    let r = router_signals(&ingest_http);
    assert!(
        r["lag_total"].as_u64().unwrap() > before,
        "lag kept growing: {r}"
    );
    assert!(
        r["lag_seconds"].is_null(),
        "nothing consumed: unbounded lag-seconds: {r}"
    );
    assert!(
        r["warning"].as_str().unwrap().contains("add partitions"),
        "{r}"
    );
    let (code, out) = sluice_cli(
        &["scale", "--url", &format!("http://{ingest_http}")],
        setup.dir.path(),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("advice 4"), "{out}");

    // A router joins and catches up.
    let router_http = format!("127.0.0.1:{}", free_port());
    let router_cfg = setup.write_config("router.toml", &router_http, &config_text());
    let router = Sluice::start(&router_cfg, &["--only", "router"], Some(router_http));
    wait_until(
        "caught up and advice back to 1",
        Duration::from_secs(120),
        || {
            let r = router_signals(&ingest_http);
            r["desired_replicas"] == 1 && r["lag_total"].as_u64().unwrap_or(u64::MAX) < 1_000
        },
    );
    // Traffic still flows at one router's worth: the advice must hold at 1 (no flapping).
    let mut seen = Vec::new();
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        seen.push(
            router_signals(&ingest_http)["desired_replicas"]
                .as_u64()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(seen.iter().all(|&d| d == 1), "advice flapped: {seen:?}");
    assert!(
        !fleet.is_finished(),
        "the check ran while traffic was still flowing"
    );
    router.stop();
    ingest.stop();
}
