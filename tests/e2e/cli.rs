//! The command line's contract for users: config check reports every problem at once.

fn sluice(args: &[&str]) -> (i32, String) {
    crate::common::sluice_cli(args, std::path::Path::new("."))
}

#[test]
fn config_check_reports_all_mistakes_with_key_paths() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        r#"
[router.batch]
max_rows = 0

[[rules]]
name = "hot"
sql = "SELECT * FROM telemetry WHERE"
actions = ["nowhere"]

[sinks.lake]
type = "parquet"
max_rows = 0
"#,
    )
    .unwrap();
    let (code, out) = sluice(&["config", "check", file.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}");
    for expected in [
        "router.batch.max_rows: must be > 0",
        "rules[0].actions[0]: unknown sink 'nowhere'",
        "sinks.lake.max_rows: must be > 0",
        "rules[0].sql:1:30: rule 'hot': syntax error",
    ] {
        assert!(out.contains(expected), "missing '{expected}' in:\n{out}");
    }
}

#[test]
fn the_example_config_checks_clean() {
    let (code, out) = sluice(&[
        "config",
        "check",
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/sluice.toml"),
    ]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_port_in_use_names_the_port_and_the_key() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        format!("data_dir = \"{}\"\n[embedded]\nmqtt_listen = \"127.0.0.1:{port}\"\n[http]\nlisten = \"\"\n", dir.path().display()),
    )
    .unwrap();
    let (code, out) = sluice(&[
        "run",
        "--config",
        file.to_str().unwrap(),
        "--only",
        "brokers",
    ]);
    assert_ne!(code, 0);
    assert!(
        out.contains(&format!("port {port} is already in use")),
        "{out}"
    );
    assert!(out.contains("embedded.mqtt_listen"), "{out}");
}

/// Closed by default: `sluice run` refuses to listen off loopback without authentication, and
/// says which key to change and what to do instead.
#[test]
fn run_refuses_open_listeners_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[embedded]\nkafka_listen = \"0.0.0.0:0\"\n[http]\nlisten = \"\"\n",
            "embedded.kafka_listen: the embedded Kafka-compatible broker has no authentication",
            "set kafka.bootstrap",
        ),
        (
            "[http]\nlisten = \"0.0.0.0:0\"\n",
            "http.listen: a management API reachable from other hosts needs [[http.tokens]]",
            "http.allow_unauthenticated = true",
        ),
    ];
    for (i, (text, message, hint)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("open-{i}.toml"));
        std::fs::write(
            &file,
            format!("data_dir = \"{}\"\n{text}", dir.path().display()),
        )
        .unwrap();
        let (code, out) = sluice(&["run", "--config", file.to_str().unwrap()]);
        assert_ne!(code, 0, "{out}");
        assert!(out.contains(message), "missing '{message}' in:\n{out}");
        assert!(out.contains(hint), "missing '{hint}' in:\n{out}");
    }
}
