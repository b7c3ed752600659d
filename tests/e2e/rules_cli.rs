//! The CLI contracts of `sluice rules test` (a wrong expectation fails with a readable diff)
//! and `sluice rules check` (all problems, with positions). The rule cases themselves run one
//! test each in `processors/tests/rule_cases.rs`.

use std::path::Path;

fn sluice(args: &[&str], dir: &Path) -> (bool, String) {
    let (code, out) = crate::common::sluice_cli(args, dir);
    (code == 0, out)
}

#[test]
fn rules_test_cli_fails_on_a_wrong_expectation_with_a_diff() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("cases")).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rules/hot.sql"),
        dir.path().join("hot.sql"),
    )
    .unwrap();
    let case = r#"
[[messages]]
topic = "devices/d7/telemetry"
payload = { temperature = 95 }
[[expect]]
rule = "hot"
rows = [ { device = "d7", temperature = 96 } ]
"#;
    std::fs::write(dir.path().join("cases/wrong.toml"), case).unwrap();
    let (ok, out) = sluice(
        &["rules", "test", "hot.sql", "--cases", "cases"],
        dir.path(),
    );
    println!("{out}");
    assert!(!ok, "a wrong expectation must fail");
    assert!(out.contains("FAIL"), "{out}");
    assert!(out.contains("rule 'hot'"), "names the rule: {out}");
    assert!(
        out.contains("devices/d7/telemetry"),
        "names the input: {out}"
    );
    assert!(
        out.contains("column 'temperature': expected 96, got 95"),
        "{out}"
    );

    std::fs::write(
        dir.path().join("cases/wrong.toml"),
        case.replace("96", "95"),
    )
    .unwrap();
    let (ok, out) = sluice(
        &["rules", "test", "hot.sql", "--cases", "cases"],
        dir.path(),
    );
    assert!(ok, "the corrected expectation passes: {out}");
}

#[test]
fn rules_check_reports_syntax_function_and_action_problems_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sluice.toml"),
        "[sinks.lake]\ntype = \"parquet\"\n",
    )
    .unwrap();
    let rules = "-- name: broken\n-- actions: lake, nowhere\nSELECT v\nFORM telemetry\n\n\
                 -- name: unknown_fn\n-- actions: lake\nSELECT frobnicate(v) FROM telemetry\n";
    std::fs::write(dir.path().join("bad.sql"), rules).unwrap();
    let (ok, out) = sluice(
        &["rules", "check", "--config", "sluice.toml", "bad.sql"],
        dir.path(),
    );
    println!("{out}");
    assert!(!ok);
    assert!(
        out.contains("bad.sql:2:19: unknown sink 'nowhere'"),
        "{out}"
    );
    assert!(out.contains("bad.sql:4:6: rule 'broken'"), "{out}");
    assert!(
        out.contains("bad.sql:8:8: rule 'unknown_fn'") && out.contains("frobnicate"),
        "{out}"
    );
    assert!(out.contains("3 problem(s)"), "{out}");
}
