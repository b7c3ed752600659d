//! Whatever a config file holds, parsing and checking it returns errors, never a panic.

use proptest::prelude::*;
use sluice_config::Config;

/// Lines that look like a Sluice config, with values of every TOML type in every key.
fn line() -> impl Strategy<Value = String> {
    let section = prop_oneof![
        Just("[mqtt]"),
        Just("[kafka]"),
        Just("[ingest]"),
        Just("[router]"),
        Just("[router.batch]"),
        Just("[router.decode]"),
        Just("[embedded]"),
        Just("[http]"),
        Just("[[rules]]"),
        Just("[sinks.lake]"),
        Just("[sinks.pager]"),
        Just("[scaling]"),
    ]
    .prop_map(str::to_string);
    let key = prop_oneof![
        Just("type"),
        Just("name"),
        Just("sql"),
        Just("actions"),
        Just("max_depth"),
        Just("max_rows"),
        Just("max_payload_bytes"),
        Just("path"),
        Just("listen"),
        Just("destinations"),
        Just("event_time_field"),
        Just("max_open_files"),
        Just("partitions"),
        Just("device_id_level"),
    ];
    let value = prop_oneof![
        Just("\"parquet\"".to_string()),
        Just("\"alert\"".to_string()),
        Just("\"SELECT a.b[1] FROM 'x/+/#' WHERE c > 1\"".to_string()),
        Just("[\"lake\"]".to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        Just("-1".to_string()),
        Just("1e400".to_string()),
        Just("true".to_string()),
        Just("{ type = \"webhook\", url = \"http://u:p@h/x?token=1\" }".to_string()),
        "\"[^\"\\\\]{0,12}\"",
    ];
    prop_oneof![
        section,
        (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        ".{0,20}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        if let Ok(config) = Config::from_toml_str(&text) {
            let _ = config.validate();
        }
    }

    #[test]
    fn config_like_text_never_panics(lines in prop::collection::vec(line(), 0..24)) {
        let text = lines.join("\n");
        if let Ok(config) = Config::from_toml_str(&text) {
            let _ = config.validate();
        }
    }
}
