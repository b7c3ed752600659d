//! The operator console and the monitoring files, against a running `sluice run` fed by a
//! fleet: headless Chromium (Debian's `chromium`, driven by Playwright from `console.py`) shows
//! the numbers the API gives, a viewer token cannot acknowledge an alert and an operator token
//! can, payload text is never markup, the page fits a phone; every metric the Grafana
//! dashboard and the Prometheus rules name exists on `/metrics`, and `promtool check rules`
//! accepts the rules.

use crate::common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const CONFIG: &str = r#"
[[rules]]
name = "telemetry"
sql = "SELECT device, seq, temperature FROM telemetry WHERE is_defined(temperature)"
actions = ["lake"]

[[rules]]
name = "hot"
sql = "SELECT device, temperature FROM telemetry WHERE temperature > 80"
actions = ["pager"]

[[rules]]
name = "reports"
sql = """SELECT model, version, fleet_group AS "group", deployment, deployment_state
         FROM telemetry WHERE is_defined(version)"""
actions = ["updates"]

[sinks.lake]
type = "parquet"

[sinks.pager]
type = "alert"
destinations = [{ type = "log" }]

[sinks.updates]
type = "compliance"
updates = [{ id = "cam-2", version = "2.0", models = ["cam"] }]
deployments = [{ id = "dep-a", group = "a", update = "cam-2" }]
"#;

const TOKENS: &str = r#"
[[http.tokens]]
role = "viewer"
env = "CONSOLE_VIEWER_TOKEN"
[[http.tokens]]
role = "operator"
env = "CONSOLE_OPERATOR_TOKEN"
"#;

const VIEWER: &str = "viewer-console-secret";
const OPERATOR: &str = "operator-console-secret";
/// A device id that is markup: the page must show it as text.
const HOSTILE: &str = "<img src=x onerror=alert(1)>";

/// 20 devices × 5 readings, 3 of them hot; 6 compliance reports (one failed deployment);
/// 2 payloads that are not JSON. Returns how many messages were published.
fn publish(mqtt: &str) -> usize {
    let mut messages = vec![];
    for d in 0..20 {
        let device = if d == 0 {
            HOSTILE.to_string()
        } else {
            format!("dev-{d:02}")
        };
        for seq in 0..5 {
            let temperature = if d < 3 { 90 } else { 20 + seq };
            messages.push((
                device.clone(),
                json!({"seq": seq, "temperature": temperature}),
            ));
        }
    }
    for (d, group, version, state) in [
        ("cam-1", "a", "2.0", None),
        ("cam-2", "a", "1.0", Some("in_progress")),
        ("cam-3", "a", "1.0", Some("failed")),
        ("cam-4", "b", "1.0", None),
        ("cam-5", "b", "2.0", None),
        ("cam-6", "b", "2.0", None),
    ] {
        let mut v = json!({"model": "cam", "version": version, "fleet_group": group});
        if let Some(s) = state {
            v["deployment"] = "dep-a".into();
            v["deployment_state"] = s.into();
        }
        messages.push((d.to_string(), v));
    }
    publish_json(mqtt, &messages);
    let broken = ["not json at all", "{\"seq\": "].map(|p| {
        (
            "devices/broken/telemetry".to_string(),
            p.as_bytes().to_vec(),
        )
    });
    publish_raw(mqtt, broken.to_vec());
    messages.len() + 2
}

#[test]
fn the_console_shows_what_the_api_says_and_only_an_operator_acknowledges() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let cfg = setup.write_config("sluice.toml", &http, CONFIG);
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replacen("[router]", &format!("{TOKENS}\n[router]"), 1),
    )
    .unwrap();
    let env = [
        ("CONSOLE_VIEWER_TOKEN", VIEWER),
        ("CONSOLE_OPERATOR_TOKEN", OPERATOR),
    ];
    let sluice = Sluice::start_with_env(&cfg, &[], Some(http.clone()), &env);
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"));
    the_console_at_start_shows_routers_and_no_dead_letters(&http, shots);
    let published = publish(&setup.mqtt);
    let api = |path: &str| -> Value {
        let (code, body) = http_call(&http, "GET", path, Some(VIEWER), "").unwrap();
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_default()
    };
    let metrics = || http_get(&http, "/metrics").unwrap().1;
    wait_until(
        "the fleet routed, nothing behind",
        Duration::from_secs(90),
        || {
            let m = metrics();
            metric_value(&m, "sluice_router_consumed_total", &[]) == Some(published as f64)
                && api("/alerts")["firing"].as_array().map(Vec::len) == Some(3)
                && api("/compliance")["total"]["devices"] == 6
                && api("/scaling")["router"]["lag_total"] == 0
        },
    );

    // Every metric the dashboard and the alerting rules name is on /metrics.
    let named = monitoring_metric_names();
    assert!(named.len() > 30, "{named:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let missing = loop {
        let m = metrics();
        let missing: Vec<&String> = named.iter().filter(|n| !exported(&m, n)).collect();
        if missing.is_empty() || std::time::Instant::now() > deadline {
            break missing;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        missing.is_empty(),
        "named in deploy/ but not on /metrics: {missing:?}"
    );
    promtool_check_rules();

    let ack_key = "hot/dev-01";
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/console.py"))
        .args([&format!("http://{http}/"), VIEWER, OPERATOR, ack_key])
        .arg(shots)
        .output()
        .expect("python3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "console.py failed:\n{stderr}");
    let seen: Value = serde_json::from_slice(&out.stdout).expect("console.py prints JSON");
    eprintln!("the console showed: {seen:#}");
    let page = &seen["page"];

    // The numbers on the page are the API's.
    let m = metrics();
    for (stage, metric) in [
        ("mqtt", "sluice_ingest_messages_in_total"),
        ("kafka", "sluice_ingest_produced_total"),
        ("routed", "sluice_router_consumed_total"),
    ] {
        assert_eq!(
            page["stages"][stage].as_f64(),
            metric_value(&m, metric, &[]),
            "{stage}"
        );
    }
    let dlq = metric_sum(&m, "sluice_dlq_total", &[]);
    assert_eq!(page["stages"]["dlq"].as_f64(), Some(dlq));
    assert!(dlq >= 2.0, "two payloads were not JSON");
    let scaling = api("/scaling");
    assert_eq!(page["lag_total"], scaling["router"]["lag_total"]);
    let lag: BTreeMap<String, u64> =
        serde_json::from_value(scaling["router"]["lag_per_partition"].clone()).unwrap();
    let lag_on_page: BTreeMap<String, u64> = serde_json::from_value(page["lag"].clone()).unwrap();
    assert_eq!(lag_on_page, lag);
    assert_eq!(
        page["replicas_advice"],
        scaling["router"]["desired_replicas"]
    );
    let rules: Vec<String> = api("/rules")["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(page["rules"], json!(rules));
    let alerts = api("/alerts");
    let mut keys: Vec<String> = alerts["firing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    let mut on_page: Vec<String> = serde_json::from_value(page["alerts"].clone()).unwrap();
    on_page.sort();
    assert_eq!(on_page, keys);
    assert_eq!(page["alerts_count"], 3);
    let hostile_key = format!("hot/{HOSTILE}");
    assert!(on_page.contains(&hostile_key), "{on_page:?}");
    assert!(
        page["alerts_shown_as_text"]
            .as_array()
            .unwrap()
            .contains(&json!(hostile_key)),
        "a device id is shown as the text it is"
    );
    assert_eq!(
        page["markup_from_payloads"], 0,
        "payload text became markup"
    );
    let compliance = api("/compliance");
    for (group, counts) in compliance["groups"].as_object().unwrap() {
        assert_eq!(page["groups"][group], counts["devices"], "group {group}");
    }
    assert_eq!(page["fleet_devices"], compliance["total"]["devices"]);
    assert_eq!(page["failed"], json!(["dep-a/a"]));

    // Roles: the viewer's click is refused and says why; the operator's acknowledges.
    assert!(
        seen["without_token"]
            .as_str()
            .unwrap()
            .contains("needs a token"),
        "{seen}"
    );
    assert!(
        seen["viewer_ack"]
            .as_str()
            .unwrap()
            .contains("operator role"),
        "{seen}"
    );
    let acknowledged = |alerts: &Value| {
        alerts["firing"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == ack_key)
            .map(|a| a["acknowledged"].clone())
    };
    assert!(seen["operator_ack"]
        .as_str()
        .unwrap()
        .contains("Acknowledged"));
    assert_eq!(acknowledged(&api("/alerts")), Some(json!(true)));
    assert_eq!(
        seen["phone_overflow_px"], 0,
        "the page fits a 390 px wide screen"
    );
    assert_eq!(seen["script_errors"], json!([]));
    for shot in ["desktop_screenshot", "phone_screenshot"] {
        let path = seen[shot].as_str().unwrap();
        assert!(std::fs::metadata(path).unwrap().len() > 10_000, "{path}");
        eprintln!("screenshot: {path}");
    }
    sluice.stop();
}

/// Every `sluice_…` name in the Grafana dashboard and the Prometheus rules.
/// Issue #29.2/3: before any traffic, an all-in-one run's console said `Routers: unknown` and
/// showed the dead-letter tile as `not in this process`. It shows the group's router count and
/// 0 dead letters (console-start.png).
fn the_console_at_start_shows_routers_and_no_dead_letters(http: &str, shots: &Path) {
    // The router joins its group shortly after /readyz; the page shows what /scaling says.
    wait_until("the router in its group", Duration::from_secs(60), || {
        http_call(http, "GET", "/scaling", Some(VIEWER), "")
            .and_then(|(_, body)| serde_json::from_str::<Value>(&body).ok())
            .is_some_and(|s| s["router"]["current_replicas"] == 1)
    });
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/console.py"))
        .args(["--start", &format!("http://{http}/"), VIEWER])
        .arg(shots)
        .output()
        .expect("python3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "console.py --start failed:\n{stderr}");
    let seen: Value = serde_json::from_slice(&out.stdout).expect("console.py prints JSON");
    eprintln!("the console at start showed: {seen:#}");
    assert_eq!(seen["routers_now"], "1", "{seen}");
    assert_eq!(seen["dlq_total"], "0", "{seen}");
    assert!(
        !seen["dlq_tile"]
            .as_str()
            .unwrap()
            .contains("not in this process"),
        "{seen}"
    );
    assert_eq!(
        seen["dlq_tile_red"], false,
        "a red 0 reads as a fault: {seen}"
    );
    assert_eq!(
        seen["sinks_total"], "0",
        "sink rows exist at 0 from the start: {seen}"
    );
    assert_eq!(
        seen["fleet_percent"], "-",
        "no percent of 0 devices: {seen}"
    );
    let path = seen["start_screenshot"].as_str().unwrap();
    assert!(std::fs::metadata(path).unwrap().len() > 10_000, "{path}");
    eprintln!("screenshot: {path}");
}

fn monitoring_metric_names() -> std::collections::BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names = std::collections::BTreeSet::new();
    for file in ["deploy/grafana/sluice.json", "deploy/prometheus/alerts.yml"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("sluice_") {
            let name: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            names.insert(name.clone());
            rest = &rest[i + name.len()..];
        }
    }
    names
}

/// Whether `/metrics` text has a series of `name` (a summary's `_sum`/`_count` count too).
fn exported(metrics: &str, name: &str) -> bool {
    metrics.lines().any(|l| {
        !l.starts_with('#')
            && l.starts_with(name)
            && matches!(l.as_bytes().get(name.len()), Some(b' ' | b'{'))
    })
}

/// `promtool check rules` on the alerting rules.
fn promtool_check_rules() {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/alerts.yml");
    promtool(&["check", "rules", rules], "");
}
