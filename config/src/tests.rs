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
        "SLUICE_MQTT_CLIENT_ID" => Some("sluice-ingest-2".into()),
        _ => None,
    });
    assert_eq!(c.mqtt.client_id, "sluice-ingest-2");
    assert_eq!(c.mqtt.password.as_ref().map(|p| p.expose()), Some("s3cret"));
    assert!(!format!("{c:?}").contains("s3cret"), "Debug hides secrets");
    assert_eq!(c.kafka.bootstrap.as_deref(), Some("k:9092"));
}

#[test]
fn each_replica_gets_its_own_client_id_from_one_config() {
    let id = |replica: Option<&str>, host: Option<&str>| {
        let mut c =
            Config::from_toml_str("[mqtt]\nclient_id = \"sluice-ingest-{replica}\"").unwrap();
        let (replica, host) = (replica.map(String::from), host.map(String::from));
        c.apply_env(|k| match k {
            "SLUICE_REPLICA" => replica.clone(),
            "HOSTNAME" => host.clone(),
            _ => None,
        });
        c.mqtt.client_id
    };
    assert_eq!(id(Some("2"), Some("node-a")), "sluice-ingest-2");
    assert_eq!(
        id(None, Some("sluice-ingest-1")),
        "sluice-ingest-sluice-ingest-1"
    );
    assert_ne!(id(Some("a"), None), id(Some("b"), None));
    // Without the placeholder the configured id stays as it is.
    let mut c = Config::from_toml_str("").unwrap();
    c.apply_env(|k| (k == "SLUICE_REPLICA").then(|| "9".to_string()));
    assert_eq!(c.mqtt.client_id, "sluice-ingest");
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

/// README's config snippets are read by the same parser as a config file (unknown keys are
/// errors), and those that define rules and sinks name only sinks they define: the docs cannot
/// drift from the config they describe. Rule test cases (`[[messages]]`) are not configs.
#[test]
fn readme_config_snippets_parse_and_their_rules_name_defined_sinks() {
    let readme = include_str!("../../README.md");
    let snippets: Vec<&str> = readme
        .split("```toml\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .filter(|s| !s.contains("[[messages]]"))
        .collect();
    assert!(snippets.len() >= 5, "README has its config examples");
    for snippet in snippets {
        let config = Config::from_toml_str(snippet)
            .unwrap_or_else(|e| panic!("README snippet does not parse: {e}\n{snippet}"));
        if !config.rules.is_empty() && !config.sinks.is_empty() {
            let problems = config.rule_problems(true);
            assert!(
                problems.is_empty(),
                "README snippet: {problems:?}\n{snippet}"
            );
        }
    }
}

/// README's rule-file examples (SQL blocks with a `-- name:` header) have valid headers.
#[test]
fn readme_rule_file_headers_are_valid() {
    let readme = include_str!("../../README.md");
    let files: Vec<&str> = readme
        .split("```sql\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .filter(|s| s.starts_with("-- name:"))
        .collect();
    assert!(!files.is_empty(), "README shows a rule file");
    for text in files {
        let config = Config {
            rules: rule_files::parse_rule_file(std::path::Path::new("README.sql"), text),
            ..Config::default()
        };
        let problems = config.rule_problems(false);
        assert!(
            problems.is_empty(),
            "README rule file: {problems:?}\n{text}"
        );
    }
}

#[test]
fn each_stateful_sink_gets_its_own_state_file_and_sharing_one_is_refused() {
    let log = "destinations = [{ type = \"log\" }]";
    let two = format!("[sinks.a]\ntype = \"alert\"\n{log}\n[sinks.b]\ntype = \"alert\"\n{log}\n");
    let c = Config::from_toml_str(&two).unwrap();
    c.validate().expect("default state files differ");
    let files: Vec<_> = c
        .sinks
        .iter()
        .map(|(n, s)| s.state_file(n).unwrap())
        .collect();
    assert_ne!(files[0], files[1]);
    let shared =
        format!("{two}[sinks.c]\ntype = \"alert\"\nstate_file = \"alerts/a.json\"\n{log}\n");
    let errs = Config::from_toml_str(&shared)
        .unwrap()
        .validate()
        .unwrap_err();
    let paths: Vec<_> = errs.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["sinks.c.state_file"], "{errs}");
    assert!(
        errs.to_string().contains("also the state file of sink 'a'"),
        "{errs}"
    );
}

#[test]
fn unknown_keys_type_errors_and_semantic_mistakes_come_in_one_report_in_file_order() {
    let dir = tempdir();
    let file = dir.join("sluice.toml");
    let text = "[mqtt]\nkeepalive = 30\nkeep_alive_secs = \"x\"\n[router]\nbatchsize = 5\n\
                [router.batch]\nmax_rows = 0\n\
                [sinks.updates]\ntype = \"compliance\"\n[[sinks.updates.updates]]\nid = \"u1\"\n\
                version = \"1.2\"\nmodels = [\"cam\"]\n[[sinks.updates.deployments]]\nid = \"d1\"\n\
                group = \"g\"\nupdate = \"u1\"\nstatus = \"failed\"\n";
    std::fs::write(&file, text).unwrap();
    let errs = load(&file).unwrap_err().0;
    let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
    let expected = [
        ("mqtt.keepalive", "unknown field `keepalive`", 2),
        (
            "mqtt.keep_alive_secs",
            "invalid type: string \"x\", expected u64",
            3,
        ),
        ("router.batchsize", "unknown field `batchsize`", 5),
        ("router.batch.max_rows", "must be > 0", 7),
        (
            "sinks.updates.deployments[0].status",
            "unknown variant `failed`, expected `active` or `cancelled`",
            18,
        ),
    ];
    assert_eq!(errs.len(), expected.len(), "{shown:#?}");
    for ((path, message, line), e) in expected.iter().zip(&errs) {
        assert_eq!(&e.path, path, "{shown:#?}");
        assert!(e.message.starts_with(message), "{e}");
        assert!(e.message.ends_with(&format!("(line {line})")), "{e}");
    }
}

#[test]
fn a_sink_without_a_known_type_names_the_allowed_ones() {
    let errs = Config::from_toml_str("[sinks.x]\ntype = \"s3\"\n[sinks.y]\npath = \"p\"\n")
        .unwrap_err()
        .0;
    assert_eq!(errs[0].path, "sinks.x.type");
    assert!(errs[0]
        .message
        .contains("`parquet`, `alert` or `compliance`"));
    assert!(errs[0].message.ends_with("(line 2)"), "{}", errs[0]);
    assert_eq!(errs[1].path, "sinks.y");
    assert!(errs[1].message.contains("missing `type`"), "{}", errs[1]);
}

#[test]
fn every_path_in_the_file_is_relative_to_the_file() {
    let dir = tempdir();
    std::fs::create_dir_all(dir.join("conf")).unwrap();
    let file = dir.join("conf/sluice.toml");
    std::fs::write(&file, "data_dir = \"state\"\n").unwrap();
    let (config, _) = load_unvalidated(&file).unwrap();
    assert_eq!(config.data_dir, dir.join("conf/state"));
    std::fs::write(&file, "").unwrap();
    let (config, _) = load_unvalidated(&file).unwrap();
    assert_eq!(config.data_dir, dir.join("conf/data"), "the default too");
}

#[test]
fn a_token_whose_variable_is_unset_is_a_config_problem() {
    let dir = tempdir();
    let file = dir.join("sluice.toml");
    let text = "[[http.tokens]]\nenv = \"SLUICE_TEST_TOKEN_NEVER_SET\"\nrole = \"viewer\"\n";
    std::fs::write(&file, text).unwrap();
    let errs = load(&file).unwrap_err().0;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].path, "http.tokens[0].env");
    assert!(errs[0]
        .message
        .contains("SLUICE_TEST_TOKEN_NEVER_SET is not set"));
    assert!(errs[0].message.ends_with("(line 2)"), "{}", errs[0]);
}

/// A fresh directory, removed when the test ends.
fn tempdir() -> TempDir {
    TempDir(tempfile::tempdir().unwrap())
}

struct TempDir(tempfile::TempDir);

impl TempDir {
    fn join(&self, p: &str) -> std::path::PathBuf {
        self.0.path().join(p)
    }
}

/// #24.7: two Parquet sinks with the default `path` shared one root and one ledger, fencing
/// and deleting each other's files; a root inside another's is as bad.
#[test]
fn g7_parquet_sinks_sharing_or_nesting_a_root_are_refused() {
    let two = "[sinks.a]\ntype = \"parquet\"\n[sinks.b]\ntype = \"parquet\"\n";
    let errs = Config::from_toml_str(two).unwrap().validate().unwrap_err();
    let paths: Vec<_> = errs.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["sinks.b.path"], "{errs}");
    assert!(errs.to_string().contains("sink 'a'"), "{errs}");
    let nested = "[sinks.a]\ntype = \"parquet\"\npath = \"out\"\n\
                  [sinks.b]\ntype = \"parquet\"\npath = \"out/b\"\n";
    assert!(Config::from_toml_str(nested).unwrap().validate().is_err());
    let urls = "[sinks.a]\ntype = \"parquet\"\npath = \"s3://lake/t\"\n\
                [sinks.b]\ntype = \"parquet\"\npath = \"s3://lake/t/x/\"\n";
    assert!(Config::from_toml_str(urls).unwrap().validate().is_err());
    let apart = "[sinks.a]\ntype = \"parquet\"\npath = \"out\"\n\
                 [sinks.b]\ntype = \"parquet\"\npath = \"outside\"\n";
    Config::from_toml_str(apart)
        .unwrap()
        .validate()
        .expect("siblings with a common prefix");
}

/// #28: a `[[payloads]]` Protobuf schema is compiled when the config loads, so `config check`
/// names a broken `.proto` or a message it lacks before anything starts.
#[test]
fn a_broken_proto_or_a_missing_message_is_named_at_load() {
    let dir = tempdir();
    std::fs::write(
        dir.join("r.proto"),
        "syntax = \"proto3\";\npackage acme;\nmessage Reading { double t = 1; }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("broken.proto"),
        "syntax = \"proto3\";\nmessage {\n",
    )
    .unwrap();
    let entry = |proto: &str, message: &str| {
        format!(
            "[[payloads]]\ntopics = \"pb/#\"\nformat = \"protobuf\"\nproto = \"{proto}\"\n\
             message = \"{message}\"\n"
        )
    };
    let file = dir.join("sluice.toml");
    std::fs::write(&file, entry("r.proto", "acme.Reading")).unwrap();
    let config = load(&file).unwrap();
    let d = config.payloads[0].descriptor.as_ref().expect("compiled");
    assert_eq!(d.full_name(), "acme.Reading");
    for (proto, message, key, says) in [
        (
            "r.proto",
            "Reading",
            "payloads[0].message",
            "no message 'Reading'",
        ),
        (
            "broken.proto",
            "acme.Reading",
            "payloads[0].proto",
            "broken.proto",
        ),
        (
            "absent.proto",
            "acme.Reading",
            "payloads[0].proto",
            "absent.proto",
        ),
    ] {
        std::fs::write(&file, entry(proto, message)).unwrap();
        let errs = load(&file).unwrap_err().0;
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].path, key);
        assert!(errs[0].message.contains(says), "{}", errs[0]);
    }
    let cbor_with_message = "[[payloads]]\ntopics = \"m/#\"\nformat = \"cbor\"\nmessage = \"x\"\n";
    std::fs::write(&file, cbor_with_message).unwrap();
    assert_eq!(load(&file).unwrap_err().0[0].path, "payloads[0].format");
    // Sparkplug B lives under spBv1.0/; its aliases get a changelog topic.
    let sparkplug =
        |topics: &str| format!("[[payloads]]\ntopics = \"{topics}\"\nformat = \"sparkplug\"\n");
    std::fs::write(&file, sparkplug("plant/#")).unwrap();
    let errs = load(&file).unwrap_err().0;
    assert_eq!(errs[0].path, "payloads[0].topics");
    assert!(errs[0].message.contains("spBv1.0/"), "{}", errs[0]);
    std::fs::write(&file, sparkplug("spBv1.0/plant/#")).unwrap();
    let config = load(&file).unwrap();
    let topic = "telemetry.raw.changelog.sparkplug".to_string();
    assert_eq!(config.sparkplug_changelog_topic(), Some(topic.clone()));
    assert!(config.changelog_topics().contains(&topic));
}
