//! `sluice demo` is the newcomer's first command: it must finish, print the summary, and
//! leave Parquet that DuckDB reads with the row counts it reported.

use crate::common::duckdb_first_row;
use std::process::Command;

#[test]
fn demo_runs_and_duckdb_reads_its_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("demo-out");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "demo",
            "--devices",
            "20",
            "--messages",
            "50",
            "--rate",
            "0",
            "--data-dir",
        ])
        .arg(&out_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("== Sluice demo summary"), "{stdout}");
    assert!(
        stdout.contains("dead-lettered (DLQ)              10"),
        "{stdout}"
    );

    let glob = format!("{}/parquet/**/*.parquet", out_dir.display());
    let query = format!(
        "SELECT count(*) FROM read_parquet('{glob}', hive_partitioning=true) \
         WHERE rule = 'all_telemetry'"
    );
    let rows: u64 = duckdb_first_row(&query)[0].parse().unwrap();
    assert_eq!(
        rows,
        20 * 50,
        "every valid reading is in the all_telemetry files"
    );
}
