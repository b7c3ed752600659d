//! A newcomer's first hour (issue #29), as found with the release binary: what an all-in-one
//! run shows at start (the router count, dead letters at 0, its log lines), what `/readyz`
//! says while the MQTT broker is unreachable, and the CLI's `--url host:port`.

use crate::common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `sluice run` with its log (stdout and stderr) in `log`; waits for `/readyz` when `ready`.
fn run_logged(config: &std::path::Path, log: &std::path::Path, http: &str, ready: bool) -> Sluice {
    let file = std::fs::File::create(log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--config"])
        .arg(config)
        .env("SLUICE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("start sluice");
    let mut s = Sluice {
        child,
        http: Some(http.to_string()),
    };
    if ready {
        wait_until("sluice /readyz = 200", Duration::from_secs(120), || {
            assert!(
                s.child.try_wait().unwrap().is_none(),
                "sluice exited during start"
            );
            http_get(http, "/readyz").is_some_and(|(code, _)| code == 200)
        });
    }
    s
}

/// `sluice run` with these arguments that must fail: its standard error.
fn run_to_failure(config: &std::path::Path, roles: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("run")
        .args(roles)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .expect("run sluice");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stderr}");
    stderr
}

#[test]
fn an_all_in_one_start_shows_its_router_zero_dead_letters_and_plain_log_lines() {
    let setup = Setup::new();
    let port = free_port();
    // `localhost:PORT` listen addresses are accepted (they mean 127.0.0.1).
    let http = format!("127.0.0.1:{port}");
    let devices = setup.dir.path().join("devices.csv");
    std::fs::write(&devices, "device_id,site\ndev-1,north\n").unwrap();
    let config = setup.write_config_with(
        "sluice.toml",
        &format!("localhost:{port}"),
        ALL_TO_PARQUET,
        |c| {
            table(c, "devices").insert("file".into(), devices.display().to_string().into());
            let mqtt = setup.mqtt.replace("127.0.0.1", "localhost");
            table(c, "embedded").insert("mqtt_listen".into(), mqtt.into());
        },
    );
    let log = setup.dir.path().join("sluice.log");
    let sluice = run_logged(&config, &log, &http, true);

    let (_, metrics) = http_get(&http, "/metrics").unwrap();
    assert_eq!(
        metric_value(&metrics, "sluice_dlq_total", &["stage=\"router\""]),
        Some(0.0),
        "dead letters exist at 0 before the first one:\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("dlq"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The consumer group's member count, from the embedded broker: one router here.
    wait_until(
        "/scaling counts this process's router",
        Duration::from_secs(30),
        || get_json(&http, "/scaling")["router"]["current_replicas"] == 1,
    );
    let (code, out) = sluice_cli(&["scale", "--url", &http], setup.dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("replicas         1 now"), "{out}");
    publish_json(&setup.mqtt, &[("dev-1", serde_json::json!({"seq": 0}))]);
    wait_until("the reading in Parquet", Duration::from_secs(60), || {
        rule_rows(&setup.parquet_root(), "all") >= 1
    });
    sluice.stop();

    let text = std::fs::read_to_string(&log).unwrap();
    let running = text
        .lines()
        .find(|l| l.contains("sluice running"))
        .expect(&text);
    assert!(
        running.contains("roles=brokers, ingest, router"),
        "{running}"
    );
    assert!(!running.contains("Roles {"), "{running}");
    assert!(
        running.contains(&format!(
            "mqtt={}",
            setup.mqtt.replace("127.0.0.1", "localhost")
        )),
        "{running}"
    );
    assert_eq!(text.matches("device metadata loaded").count(), 1, "{text}");
    assert!(
        !text.contains("recovered from its ledger"),
        "a fresh start recovers nothing:\n{text}"
    );
    let after_stop = text
        .split("sluice stopped cleanly")
        .nth(1)
        .expect("a clean stop");
    assert!(
        !after_stop.contains("ERROR"),
        "errors after the clean stop:\n{after_stop}"
    );
    let long_errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("ERROR") && l.len() > 500)
        .collect();
    assert!(long_errors.is_empty(), "huge ERROR lines: {long_errors:?}");
}

#[test]
fn readyz_says_the_mqtt_broker_is_unreachable_and_turns_ready_when_it_comes_up() {
    let setup = Setup::new();
    let port = free_port();
    let http = format!("127.0.0.1:{}", free_port());
    let extra = format!("[mqtt]\nbroker = \"127.0.0.1:{port}\"\nclient_id = \"newcomer\"\n");
    let config = setup.write_config("sluice.toml", &http, &extra);
    let log = setup.dir.path().join("sluice.log");
    let sluice = run_logged(&config, &log, &http, false);

    let mut why = String::new();
    wait_until(
        "/readyz names the unreachable broker",
        Duration::from_secs(90),
        || match http_get(&http, "/readyz") {
            Some((503, body)) => {
                why = body;
                why.contains(&format!("127.0.0.1:{port}"))
            }
            _ => false,
        },
    );
    assert!(
        why.contains("is the broker up") && why.contains("mqtt.broker"),
        "{why}"
    );

    let conf = setup.dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
    .unwrap();
    let _mosquitto = mosquitto::spawn(&conf, &[port]);
    wait_until(
        "ready once the broker is up",
        Duration::from_secs(60),
        || http_get(&http, "/readyz").is_some_and(|(code, _)| code == 200),
    );
    sluice.stop();
    let text = std::fs::read_to_string(&log).unwrap();
    let warnings = text
        .lines()
        .filter(|l| l.contains("mqtt connection failed"))
        .count();
    // Reconnects back off (0.1 s doubling to 5 s): a handful of lines, not one per 200 ms.
    assert!(warnings < 30, "{warnings} connection warnings");
}

#[test]
fn cli_url_without_a_scheme_and_an_untrusted_https_certificate_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens: the error names the URL it tried, with http:// added, and what to check.
    let port = free_port();
    let (code, out) = sluice_cli(
        &["scale", "--url", &format!("127.0.0.1:{port}")],
        dir.path(),
    );
    assert_ne!(code, 0);
    assert!(
        out.contains(&format!("http://127.0.0.1:{port}/scaling")),
        "{out}"
    );
    assert!(!out.contains("relative URL"), "{out}");
    assert!(out.contains("is `sluice run` up"), "{out}");
    let (code, out) = sluice_cli(
        &[
            "compliance",
            "report",
            "--url",
            &format!("127.0.0.1:{port}"),
        ],
        dir.path(),
    );
    assert_ne!(code, 0);
    assert!(
        out.contains(&format!("http://127.0.0.1:{port}/compliance")),
        "{out}"
    );
}

/// A Kafka client property librdkafka refuses is a configuration mistake found at start: the
/// process says so at once and exits, instead of reporting that Kafka "did not answer within
/// 20 s" (what it said before) or restarting a stage forever.
#[test]
fn a_refused_kafka_property_is_named_as_a_configuration_problem_at_start() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let extra = format!("{ALL_TO_PARQUET}\n[kafka.properties]\n\"fetch.wait.max.ms\" = \"soon\"\n");
    let config = setup.write_config("sluice.toml", &http, &extra);
    let started = std::time::Instant::now();
    let stderr = run_to_failure(&config, &[]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "it waited: {stderr}"
    );
    assert!(
        stderr.contains("the Kafka client settings are refused"),
        "{stderr}"
    );
    assert!(stderr.contains("fetch.wait.max.ms"), "{stderr}");
    assert!(!stderr.contains("did not answer"), "{stderr}");
}

/// A Kafka cluster that is not there (#29.6): `run` says in one sentence what failed and what
/// to check — the bootstrap address and where it comes from — instead of librdkafka's text
/// alone. Nothing listens on the configured port.
#[test]
fn an_unreachable_kafka_is_named_with_what_to_check() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let nobody = format!("127.0.0.1:{}", free_port());
    let extra = format!("{ALL_TO_PARQUET}\n[kafka]\nbootstrap = \"{nobody}\"\n");
    let config = setup.write_config("sluice.toml", &http, &extra);
    let stderr = run_to_failure(&config, &["--only", "router"]);
    let line = stderr
        .lines()
        .find(|l| l.contains(&format!("kafka at {nobody} did not answer")))
        .unwrap_or_else(|| panic!("no line names the address: {stderr}"));
    assert!(
        line.contains("check kafka.bootstrap (or SLUICE_KAFKA_BOOTSTRAP)"),
        "{line}"
    );
}

/// A configuration mistake found when a stage starts (#25): a Parquet `path` that names a
/// file. At start, `run` refuses in one line naming the sink and the key. When it appears at a
/// restart (here the router panics on a marked payload after the output folder became a
/// file), the supervisor stops the router once — `/readyz`, one ERROR line and
/// `sluice_stage_stopped_total` say so — instead of restarting it with backoff forever, which
/// it did while every sink error counted as an outside system's.
#[test]
fn a_parquet_path_that_is_a_file_is_refused_at_start_and_stops_the_router_at_a_restart() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let config = setup.write_config("sluice.toml", &http, ALL_TO_PARQUET);
    let root = setup.parquet_root();
    std::fs::create_dir_all(root.parent().unwrap()).unwrap();
    std::fs::write(&root, "not a directory").unwrap();
    let stderr = run_to_failure(&config, &[]);
    assert!(
        stderr.contains("sink 'lake'") && stderr.contains("`path` must name a directory"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("AllBrokersDown"),
        "the reason is the last word: {stderr}"
    );

    std::fs::remove_file(&root).unwrap();
    let log = setup.dir.path().join("sluice.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--config"])
        .arg(&config)
        .env("SLUICE_FAULT_PANIC_ON_PAYLOAD", "boom-marker")
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("start sluice");
    let sluice = Sluice {
        child,
        http: Some(http.clone()),
    };
    wait_until("sluice /readyz = 200", Duration::from_secs(120), || {
        http_get(&http, "/readyz").is_some_and(|(code, _)| code == 200)
    });
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::write(&root, "not a directory").unwrap();
    publish_json(
        &setup.mqtt,
        &[("d1", serde_json::json!({"note": "boom-marker"}))],
    );
    let mut last = String::new();
    wait_until(
        "/readyz names the stopped router",
        Duration::from_secs(90),
        || {
            last = http_get(&http, "/readyz")
                .map(|(_, b)| b)
                .unwrap_or_default();
            last.contains("router: stopped: a configuration problem")
        },
    );
    assert!(last.contains("`path` must name a directory"), "{last}");
    let (_, metrics) = http_get(&http, "/metrics").unwrap();
    let stopped = metric_value(
        &metrics,
        "sluice_stage_stopped_total",
        &["stage=\"router\""],
    );
    assert_eq!(stopped, Some(1.0), "{metrics}");
    // The panic's restart, and none after the mistake.
    let restarts = metric_sum(
        &metrics,
        "sluice_stage_restarts_total",
        &["stage=\"router\""],
    );
    assert_eq!(restarts, 1.0, "{metrics}");
    drop(sluice);
    let text = std::fs::read_to_string(&log).unwrap();
    let errors = text
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("must name a directory"))
        .count();
    assert_eq!(errors, 1, "{text}");
}
