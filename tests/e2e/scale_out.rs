//! Scale-out on the engines users already run: Mosquitto, the Kafka broker as its own process,
//! an S3-compatible object store. Two ingest replicas share one subscription
//! (`$share/sluice/…`) with client ids from one config (`{replica}`); routers in one group
//! write one bucket and keep compliance state in the changelog topic. Quiet devices report
//! once; then, while a fleet publishes, routers are `kill -9`ed and a new one is added. After:
//! every (device, seq) is in the bucket exactly once, and every surviving router — whichever
//! saw which device — still knows the quiet devices: a later partial report is merged onto
//! the state reported before the deaths.

use crate::chaos::{mosquitto_conf, Process};
use crate::common::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const QUIET: usize = 12;

const COMPLIANCE: &str = r#"
[[rules]]
name = "reports"
sql = """SELECT model, version, fleet_group AS "group", deployment, deployment_state
         FROM telemetry WHERE is_defined(version)"""
actions = ["updates"]

[sinks.updates]
type = "compliance"
snapshot_interval_ms = 0
updates = [
  { id = "cam-1.9", version = "1.9", models = ["cam"] },
  { id = "cam-1.10", version = "1.10", models = ["cam"] },
]
deployments = [{ id = "dep-a", group = "a", update = "cam-1.10" }]
"#;

/// (device → (group, model, state)) as a router's `/compliance` shows the quiet devices.
fn quiet_view(http: &str) -> BTreeMap<String, (String, String, String)> {
    let report = get_json(http, "/compliance");
    let devices = report["devices"].as_array().cloned().unwrap_or_default();
    devices
        .iter()
        .filter(|d| {
            d["device"]
                .as_str()
                .is_some_and(|n| n.starts_with("quiet-"))
        })
        .map(|d| {
            let s = |k: &str| d[k].as_str().unwrap_or("-").to_string();
            (s("device"), (s("group"), s("model"), s("state")))
        })
        .collect()
}

fn quiet_reports(value: impl Fn(usize) -> serde_json::Value) -> Vec<(String, serde_json::Value)> {
    (0..QUIET)
        .map(|i| (format!("quiet-{i}"), value(i)))
        .collect()
}

#[test]
fn replicas_share_one_bucket_and_state_follows_its_partition() {
    let setup = Setup::new();
    let s3 = s3::spawn(setup.dir.path(), &["lake"]);
    let port = free_port();
    let _mosquitto = mosquitto::spawn(&mosquitto_conf(setup.dir.path(), port), &[port]);
    let broker = format!("127.0.0.1:{port}");
    let extra = format!(
        "{COMPLIANCE}\n[[rules]]\nname = \"all\"\nsql = \"SELECT device, seq FROM telemetry \
         WHERE seq IS NOT NULL\"\nactions = [\"lake\"]\n{}\n[mqtt]\nbroker = \"{broker}\"\n\
         shared_group = \"sluice\"\nclient_id = \"sluice-ingest-{{replica}}\"\n",
        s3.parquet_sink("lake", "lake", "telemetry")
    );
    let mut processes: BTreeMap<String, Process> = BTreeMap::new();
    let add = |processes: &mut BTreeMap<String, Process>,
               name: &str,
               args: Vec<&'static str>,
               env: Vec<(&'static str, String)>| {
        let http = format!("127.0.0.1:{}", free_port());
        let config = setup.write_config(&format!("{name}.toml"), &http, &extra);
        let mut p = Process {
            name: name.into(),
            config,
            args,
            http: Some(http),
            env,
            running: None,
            log: None,
        };
        p.start();
        processes.insert(name.into(), p);
    };
    add(&mut processes, "kafka", vec!["--only", "brokers"], vec![]);
    for replica in ["a", "b"] {
        let env = vec![("SLUICE_REPLICA", replica.to_string())];
        add(
            &mut processes,
            &format!("ingest-{replica}"),
            vec!["--only", "ingest"],
            env,
        );
    }
    for r in ["router-1", "router-2", "router-3"] {
        add(&mut processes, r, vec!["--only", "router"], s3.env());
    }
    let http =
        |processes: &BTreeMap<String, Process>, name: &str| processes[name].http.clone().unwrap();

    // Quiet devices report model, version and group once.
    publish_json(
        &broker,
        &quiet_reports(|_| json!({"model": "cam", "version": "1.9", "fleet_group": "a"})),
    );
    for r in ["router-1", "router-2", "router-3"] {
        let addr = http(&processes, r);
        wait_until(
            &format!("{r} shows every quiet device (fleet-wide)"),
            Duration::from_secs(60),
            || quiet_view(&addr).len() == QUIET,
        );
    }

    // A fleet publishes while routers die and a new one joins.
    let (devices, per_device, rate) = (40, 150, 600);
    let publisher = publish_fleet_in_background(broker.clone(), devices, per_device, rate);
    let pause = Duration::from_secs(3);
    std::thread::sleep(pause); // A schedule: the kills land while the fleet publishes.
    processes
        .get_mut("router-1")
        .unwrap()
        .running
        .take()
        .unwrap()
        .kill();
    add(
        &mut processes,
        "router-4",
        vec!["--only", "router"],
        s3.env(),
    );
    std::thread::sleep(pause);
    processes
        .get_mut("router-2")
        .unwrap()
        .running
        .take()
        .unwrap()
        .kill();
    assert!(
        !publisher.is_finished(),
        "the fleet had finished before the kills"
    );
    publisher.join().unwrap();

    // The quiet devices report again without model and group, half of them a failed
    // deployment: the survivors must merge that onto what they were told before the deaths
    // (model cam, group a). Without that history a device would be "on latest" (no model)
    // in the default group.
    publish_json(
        &broker,
        &quiet_reports(|i| match i % 2 {
            0 => json!({"version": "1.9", "deployment": "dep-a", "deployment_state": "failed"}),
            _ => {
                json!({"version": "1.9", "deployment": "dep-a", "deployment_state": "in_progress"})
            }
        }),
    );
    let expected_view: BTreeMap<String, (String, String, String)> = (0..QUIET)
        .map(|i| {
            let state = match i % 2 {
                0 => "new_updates_available", // its deployment failed: no longer in progress
                _ => "update_in_progress",
            };
            let quiet = ("a".to_string(), "cam".to_string(), state.to_string());
            (format!("quiet-{i}"), quiet)
        })
        .collect();
    for r in ["router-3", "router-4"] {
        let addr = http(&processes, r);
        wait_until(
            &format!("{r} shows the quiet devices' merged state"),
            Duration::from_secs(60),
            || quiet_view(&addr) == expected_view,
        );
    }
    let restores: f64 = ["router-3", "router-4"]
        .iter()
        .map(|r| {
            let text = http_get(&http(&processes, r), "/metrics").unwrap().1;
            metric_value(&text, "sluice_compliance_restores_total", &[]).unwrap_or(0.0)
        })
        .sum();

    let total = devices as u64 * per_device;
    wait_until(
        "every message in the bucket",
        Duration::from_secs(180),
        || s3.device_seqs("lake", "telemetry", "all").len() as u64 >= total,
    );
    for p in processes.values_mut().rev() {
        if let Some(s) = p.running.take() {
            s.stop();
        }
    }
    let found = s3.device_seqs("lake", "telemetry", "all");
    let (missing, duplicates) = compare(&found, &expected(devices, per_device, |_| true));
    println!(
        "scale-out: {total} published, {} read back with pyarrow, {} missing, {duplicates} \
         duplicates; {restores} state restores on the survivors; quiet devices on router-3 and \
         router-4: {expected_view:?}",
        found.values().sum::<u32>(),
        missing.len(),
    );
    assert!(
        missing.is_empty(),
        "missing: {:?}",
        &missing[..missing.len().min(5)]
    );
    assert_eq!(duplicates, 0, "rows written twice");
    assert!(restores > 0.0, "the survivors restored state on assignment");
}
