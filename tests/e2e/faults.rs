//! Faults other than a crash: a second process on a data directory, a reload naming a sink
//! that does not exist, a graceful stop under load.

use crate::common::*;

#[test]
fn a_second_process_on_a_locked_data_dir_is_refused_naming_the_holder() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let config = setup.write_config("sluice.toml", &http, ALL_TO_PARQUET);
    let running = Sluice::start(&config, &["--only", "brokers"], Some(http));
    let holder = format!("pid {}", running.child.id());
    let (code, out) = sluice_cli(
        &["run", "--config", config.to_str().unwrap(), "--only", "brokers"],
        setup.dir.path(),
    );
    assert_ne!(code, 0, "a second process started on the same data_dir: {out}");
    assert!(out.contains("in use by another Sluice process"), "{out}");
    assert!(out.contains(&holder), "the holder is not named: {out}");
    running.stop();
    // The lock goes with its holder: the same directory starts again.
    let http = format!("127.0.0.1:{}", free_port());
    let config = setup.write_config("sluice.toml", &http, ALL_TO_PARQUET);
    Sluice::start(&config, &["--only", "brokers"], Some(http)).stop();
}

#[test]
fn a_reload_naming_a_sink_that_is_not_running_is_rejected() {
    let setup = Setup::new();
    let rules_dir = setup.dir.path().join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    let rule = |action: &str| format!("-- name: r\n-- actions: {action}\nSELECT device FROM telemetry\n");
    std::fs::write(rules_dir.join("r.sql"), rule("lake")).unwrap();
    let http = format!("127.0.0.1:{}", free_port());
    let extra = "rule_paths = [\"rules\"]\n[sinks.lake]\ntype = \"parquet\"\n";
    let config = setup.write_config("sluice.toml", &http, extra);
    let sluice = Sluice::start(&config, &["--only", "brokers", "--only", "router"], Some(http.clone()));
    let reload = || http_request(&http, "POST", "/rules/reload").unwrap();

    std::fs::write(rules_dir.join("r.sql"), rule("nowhere")).unwrap();
    let (code, body) = reload();
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("unknown sink 'nowhere'"), "{body}");

    // A fallback action naming a sink the new config defines but the router does not run.
    std::fs::write(rules_dir.join("r.sql"), rule("lake")).unwrap();
    setup.write_config_with("sluice.toml", &http, extra, |c| {
        table(c, "router").insert("fallback_action".into(), "spare".into());
        let sinks = table(c, "sinks");
        sinks.insert("spare".into(), toml::toml! { type = "parquet" }.into());
    });
    let (code, body) = reload();
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("router.fallback_action: sink 'spare' is not running"),
        "{body}"
    );
    let status = get_json(&http, "/rules");
    assert_eq!(status["last_reload"]["ok"], false, "{status}");
    sluice.stop();
}
