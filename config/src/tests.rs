use super::*;

const EXAMPLE: &str = include_str!("../sluice.toml");

#[test]
fn example_config_is_valid() {
    let c = Config::from_toml_str(EXAMPLE).expect("example parses");
    c.validate().expect("example validates");
    assert!(!c.rules.is_empty());
}

#[test]
fn all_errors_are_reported_at_once_with_paths() {
    let text = r#"
[router.batch]
max_rows = 0
[kafka]
partitions = 0
[[rules]]
name = "hot"
sql = "SELECT * FROM telemetry"
actions = ["nowhere"]
"#;
    let errs = Config::from_toml_str(text).unwrap().validate().unwrap_err();
    let paths: Vec<_> = errs.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "kafka.partitions",
            "router.batch.max_rows",
            "rules[0].actions[0]"
        ]
    );
    assert!(errs.to_string().contains("unknown sink 'nowhere'"));
}

#[test]
fn unknown_key_is_an_error_with_position() {
    let errs = Config::from_toml_str("[router]\nbatch_size = 3\n").unwrap_err();
    let msg = errs.to_string();
    assert!(msg.contains("batch_size"), "{msg}");
    assert!(msg.contains("line 2"), "{msg}");
}

#[test]
fn env_overrides_secrets() {
    let mut c = Config::from_toml_str("").unwrap();
    c.apply_env(|k| match k {
        "SLUICE_MQTT_PASSWORD" => Some("s3cret".into()),
        "SLUICE_KAFKA_BOOTSTRAP" => Some("k:9092".into()),
        _ => None,
    });
    assert_eq!(c.mqtt.password.as_deref(), Some("s3cret"));
    assert_eq!(c.kafka.bootstrap.as_deref(), Some("k:9092"));
}

#[test]
fn topic_filters_are_checked() {
    assert!(validate::check_topic_filter("a/+/b/#").is_ok());
    assert!(validate::check_topic_filter("a/#/b").is_err());
    assert!(validate::check_topic_filter("a/b+").is_err());
    assert!(validate::check_topic_filter("").is_err());
}
