//! A webhook URL carrying secrets (user info, a token in the path, a query string) never
//! appears in the log, in dead-letter records (headers or payload), in the error action's
//! Parquet, in `/rules` or in `config check`: only its redacted form does.

use super::*;
use crate::common::webhook::WebhookServer;
use serde_json::json;

const SECRETS: [&str; 3] = ["hunter2user", "T0K3Nxyz9876abcd", "sig=Qz81secretQ"];

#[test]
fn webhook_secrets_stay_out_of_logs_dead_letters_and_parquet() {
    let down = WebhookServer::start(500);
    let base = down.url.trim_end_matches("/hook").replace("http://", "");
    let refused_port = free_port(); // nothing listens there: a transport error
    let with_secrets = |host: &str| {
        format!(
            "http://{}:pw@{host}/hook/{}?{}",
            SECRETS[0], SECRETS[1], SECRETS[2]
        )
    };
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let extra = format!(
        r#"
[[rules]]
name = "hot_to_parquet"
sql = "SELECT device, temperature FROM telemetry WHERE temperature > 80"
actions = ["pager"]
error_action = "failed"

[[rules]]
name = "hot_to_dlq"
sql = "SELECT device, temperature FROM telemetry WHERE temperature > 80"
actions = ["pager"]

[sinks.pager]
type = "alert"
destinations = [
  {{ type = "webhook", url = "{down}", retries = 1, backoff_ms = 20 }},
  {{ type = "webhook", url = "{refused}", retries = 0, timeout_ms = 2000 }},
]

[sinks.failed]
type = "parquet"
path = "failed"
"#,
        down = with_secrets(&base),
        refused = with_secrets(&format!("127.0.0.1:{refused_port}")),
    );
    let config = setup.write_config("sluice.toml", &http, &extra);

    let (code, out) = sluice_cli(
        &["config", "check", config.to_str().unwrap()],
        setup.dir.path(),
    );
    assert_eq!(code, 0, "{out}");
    let mut sluice = Logged::start(&config, &[], &[]);
    sluice.wait_ready(&http);
    publish_json(
        &setup.mqtt,
        &[("d1", json!({"device": "d1", "temperature": 95, "seq": 1}))],
    );

    let failed_root = setup.dir.path().join("data/failed");
    wait_until(
        "the failed alert in the error action",
        Duration::from_secs(60),
        || rule_rows(&failed_root, "hot_to_parquet") >= 1,
    );
    let dead = read_topic(&setup.kafka, "telemetry.dlq", 1);
    assert!(
        !dead.is_empty(),
        "the rule without an error action dead-lettered the message"
    );
    let rules = http_get(&http, "/rules").unwrap().1;
    let log = sluice.stop();

    let errors = parquet_strings(&failed_root, None).join("\n");
    let dlq: String = dead
        .iter()
        .map(|(k, v, h)| {
            format!(
                "{} {} {h:?}",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(v)
            )
        })
        .collect();
    assert!(errors.contains("HTTP 500"), "the reason is kept: {errors}");
    assert!(
        errors.contains("/hook/***?***"),
        "the webhook is named, redacted: {errors}"
    );
    for (place, text) in [
        ("log", &log),
        ("dead letters", &dlq),
        ("error parquet", &errors),
        ("/rules", &rules),
        ("config check", &out),
    ] {
        for secret in SECRETS {
            assert!(
                !text.contains(secret),
                "{secret} appears in the {place}:\n{text}"
            );
        }
    }
}
