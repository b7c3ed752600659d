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
    assert_eq!(c.mqtt.password.as_ref().map(|p| p.expose()), Some("s3cret"));
    assert!(!format!("{c:?}").contains("s3cret"), "Debug hides secrets");
    assert_eq!(c.kafka.bootstrap.as_deref(), Some("k:9092"));
}

#[test]
fn topic_filters_are_checked() {
    assert!(validate::check_topic_filter("a/+/b/#").is_ok());
    assert!(validate::check_topic_filter("a/#/b").is_err());
    assert!(validate::check_topic_filter("a/b+").is_err());
    assert!(validate::check_topic_filter("").is_err());
}

#[test]
fn kafka_security_becomes_librdkafka_properties() {
    let mut c = Config::from_toml_str(
        "[kafka]\nbootstrap = \"k:9093\"\n[kafka.security]\nprotocol = \"sasl_ssl\"\n\
         sasl_mechanism = \"SCRAM-SHA-256\"\n",
    )
    .unwrap();
    c.apply_env(|k| match k {
        "SLUICE_KAFKA_SASL_USERNAME" => Some("fleet".into()),
        "SLUICE_KAFKA_SASL_PASSWORD" => Some("pw".into()),
        "SLUICE_KAFKA_SSL_KEY_PASSWORD" => Some("key-pw".into()),
        _ => None,
    });
    c.validate().expect("valid");
    let props: std::collections::BTreeMap<_, _> = c.kafka.client_properties().into_iter().collect();
    for (k, v) in [
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "SCRAM-SHA-256"),
        ("sasl.username", "fleet"),
        ("sasl.password", "pw"),
        ("ssl.key.password", "key-pw"),
        ("ssl.ca.location", "probe"),
    ] {
        assert_eq!(props.get(k).map(String::as_str), Some(v), "{k}");
    }
}

#[test]
fn passwords_in_the_file_are_refused_without_echoing_them() {
    let text = "[mqtt]\npassword = \"hunter2\"\n[kafka.security]\nsasl_password = \"hunter2\"\n\
                [kafka.properties]\n\"ssl.key.password\" = \"hunter2\"\n\"security.protocol\" = \"SSL\"\n";
    let errs = Config::from_toml_str(text).unwrap().validate().unwrap_err();
    let paths: Vec<_> = errs.0.iter().map(|e| e.path.as_str()).collect();
    for key in [
        "mqtt.password",
        "kafka.security.sasl_password",
        "kafka.properties.\"ssl.key.password\"",
        "kafka.properties.\"security.protocol\"",
    ] {
        assert!(paths.contains(&key), "{key} in {paths:?}");
    }
    let shown = errs.to_string();
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn sasl_without_credentials_names_where_they_come_from() {
    let c = Config::from_toml_str(
        "[kafka]\nbootstrap = \"k:9093\"\n[kafka.security]\nprotocol = \"sasl_plaintext\"\n",
    )
    .unwrap();
    let msg = c.validate().unwrap_err().to_string();
    assert!(msg.contains("SLUICE_KAFKA_SASL_USERNAME"), "{msg}");
    assert!(msg.contains("SLUICE_KAFKA_SASL_PASSWORD"), "{msg}");
}
