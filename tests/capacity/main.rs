//! `sluice loadtest --find-max` against `sluice run` on this machine (issue #26). A test binary
//! of its own so that it runs alone: `cargo test` runs test binaries one after another, and a
//! capacity measured while the end-to-end tests share the two cores would say little.
//!
//! The search must stop within its budget; the knee it reports must hold in a separate
//! fixed-rate run at 80 % of it and fail at 150 %; the stage it names must be the one whose
//! lag grew; and headless Chromium must find the plots, the knee and the plan in its HTML.

#[path = "../e2e/common/mod.rs"]
mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BUDGET_SECS: u64 = 300;

#[test]
fn find_max_reports_a_knee_that_holds_below_and_fails_above() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    // Lag is read from /scaling, which the router refreshes every scaling.interval_ms.
    let extra = format!("{ALL_TO_PARQUET}\n[scaling]\ninterval_ms = 100\n");
    let cfg = setup.write_config("sluice.toml", &http, &extra);
    let sluice = Sluice::start(&cfg, &[], Some(http.clone()));
    let url = format!("http://{http}");
    let dir = setup.dir.path();
    let loadtest = |args: &[&str]| -> (i32, String) {
        let mut all = vec![
            "loadtest",
            "--broker",
            &setup.mqtt,
            "--kafka",
            &setup.kafka,
            "--sluice-url",
            &url,
        ];
        all.extend_from_slice(args);
        sluice_cli(&all, dir)
    };

    let began = Instant::now();
    let (code, out) = loadtest(&[
        "--find-max",
        "--start-rate",
        "4000",
        "--max-rate",
        "200000",
        "--step-secs",
        "15",
        "--step-drain-secs",
        "5",
        "--max-steps",
        "11",
        "--budget-secs",
        &BUDGET_SECS.to_string(),
        "--plan-for",
        "5x",
        "--report",
        "capacity.json",
        "--html",
        "capacity.html",
    ]);
    let took = began.elapsed();
    eprintln!("{out}");
    assert_eq!(code, 0, "{out}");
    // Lag sampled on a cadence near the commit interval beats against it and reads a slope
    // that is not there (CI once failed 16 000/s on 6.4 % "growth" and then held 21 000/s).
    assert!(!out.contains("Sluice samples lag every"), "{out}");
    // The budget bounds the steps it starts; the last one and the report may run past it.
    assert!(
        took < Duration::from_secs(BUDGET_SECS + 90),
        "took {took:?}"
    );
    let found: Value =
        serde_json::from_slice(&std::fs::read(dir.join("capacity.json")).unwrap()).unwrap();
    let knee = found["knee"].as_f64().expect("a knee");
    assert!(found["steps"].as_array().unwrap().len() >= 3, "{found}");
    assert!(
        ["converged", "steps", "time"].contains(&found["bound"].as_str().unwrap()),
        "a failing step bounded the search: {found}"
    );

    // The limiting stage is the router exactly when the failed step's lag grew.
    let failed = lowest_failed_above(&found, knee);
    let stage = found["limit"]["stage"].as_str().unwrap();
    let grew = failed["lag_growth"].as_f64().is_some_and(|g| g >= 0.05);
    assert_eq!(stage == "router", grew, "{stage}: {failed}");
    assert!(found["plan"]["routers"].as_u64().unwrap() >= 1, "{found}");

    // The knee, checked by fixed-rate runs with the same objectives.
    let slo = found["objectives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect::<Vec<_>>()
        .join(",");
    let fixed = |share: f64| {
        // Longer than a search step: a p99 over more samples moves less from run to run.
        let profile = format!("steady:{:.0}:20", knee * share);
        loadtest(&["--profile", &profile, "--drain-secs", "10", "--slo", &slo])
    };
    // 80 %, not 90 %: at the knee a 15-s step's lag growth varies by ±10 points from run to
    // run on this 2-core machine (2026-12-07, one search: 23 000/s passed at -4.4 % and
    // 2.7 %, then a 20-s run at 20 700/s grew 11 %); the margin below must exceed that noise.
    let (code, out) = fixed(0.8);
    assert_eq!(code, 0, "80 % of the knee ({knee}) holds {slo}:\n{out}");
    let (code, out) = fixed(1.5);
    assert_eq!(code, 1, "150 % of the knee ({knee}) misses {slo}:\n{out}");
    sluice.stop();

    // The HTML report in headless Chromium.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("capacity-report.png");
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/capacity/report.py"
        ))
        .arg(dir.join("capacity.html"))
        .arg(&shot)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "report.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!(
        "the report showed: {page:#}\nscreenshot: {}",
        shot.display()
    );
    assert!(page["plots"].as_u64().unwrap() >= 4, "{page}");
    assert_eq!(
        page["external"], 0,
        "self-contained: no script, style or image fetched"
    );
    assert_eq!(page["errors"], serde_json::json!([]));
    assert!(page["plot_points"].as_u64().unwrap() >= 3 * 4, "{page}");
    assert!(
        page["knee"]
            .as_str()
            .unwrap()
            .contains(&format!("{knee:.0} msg/s")),
        "{page}"
    );
    assert!(page["plan"].as_str().unwrap().contains("routers"), "{page}");
    assert_eq!(
        page["steps"].as_u64(),
        found["steps"].as_array().map(|s| s.len() as u64)
    );
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
}

fn lowest_failed_above(found: &Value, knee: f64) -> Value {
    found["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["sustainable"] == false && s["offered"].as_f64().unwrap() > knee)
        .min_by(|a, b| {
            a["offered"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["offered"].as_f64().unwrap())
        })
        .cloned()
        .unwrap_or_else(|| panic!("no failed step above the knee: {found}"))
}
