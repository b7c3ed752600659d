//! The command line's contract for users: config check reports every problem at once; run
//! says how to name a config; debug logs are Sluice's own and plain in files.

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

[mqtt]
keepalive = 30

[sinks.updates]
type = "compliance"
updates = [{ id = "u1", version = "1.2", models = ["cam"] }]
[[sinks.updates.deployments]]
id = "d1"
group = "g"
update = "u1"
status = "failed"
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
        "mqtt.keepalive: unknown field `keepalive`, expected one of",
        "sinks.updates.deployments[0].status: unknown variant `failed`, expected `active` or `cancelled` (line 24)",
        "6 problem(s)",
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
        "ingest", // the gateway listens on embedded.mqtt_listen
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

/// `SLUICE_LOG=debug` (README's example) is Sluice's own debug lines: no DataFusion planner
/// or parser lines, and no colour codes when stderr is a file.
#[test]
fn debug_logs_are_sluices_own_and_plain_in_a_file() {
    use crate::common::*;
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let rule = "[[rules]]\nname = \"hot\"\nsql = \"SELECT device FROM telemetry WHERE temperature > 80\"\nactions = [\"lake\"]\n[sinks.lake]\ntype = \"parquet\"\n";
    let cfg = setup.write_config("sluice.toml", &http, rule);
    let log = setup.dir.path().join("sluice.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--config", cfg.to_str().unwrap()])
        .env("SLUICE_LOG", "debug")
        .env_remove("SLUICE_LOG_FORMAT")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_until("ready", std::time::Duration::from_secs(120), || {
        http_get(&http, "/readyz").is_some_and(|(code, _)| code == 200)
    });
    publish_json(
        &setup.mqtt,
        &[("d1", serde_json::json!({"temperature": 90}))],
    );
    wait_until(
        "a debug line of the router",
        std::time::Duration::from_secs(60),
        || {
            std::fs::read_to_string(&log)
                .unwrap()
                .contains("DEBUG sluice")
        },
    );
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains('\u{1b}'), "colour codes in a log file");
    let foreign: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" DEBUG ") || l.contains(" TRACE "))
        .filter(|l| {
            let target = l.split(" DEBUG ").nth(1).unwrap_or(l);
            !target.starts_with("sluice")
        })
        .collect();
    assert!(foreign.is_empty(), "dependency debug lines: {foreign:#?}");
}

/// `sluice run` where there is no `config/sluice.toml` says how to name the config.
#[test]
fn run_without_a_config_file_says_how_to_name_one() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = crate::common::sluice_cli(&["run"], dir.path());
    assert_ne!(code, 0);
    assert!(
        out.contains("config/sluice.toml") && out.contains("--config"),
        "{out}"
    );
}
