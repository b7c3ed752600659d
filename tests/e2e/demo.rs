//! `sluice demo` is the newcomer's first command: it must finish, print the summary, and
//! leave Parquet that DuckDB reads with the row counts it reported.

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
    let script = format!(
        "import duckdb; print(duckdb.sql(\"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning=true) WHERE rule = 'all_telemetry'\").fetchall()[0][0])"
    );
    let py = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    assert!(
        py.status.success(),
        "duckdb query failed (pip install duckdb): {}",
        String::from_utf8_lossy(&py.stderr)
    );
    let rows: u64 = String::from_utf8_lossy(&py.stdout).trim().parse().unwrap();
    assert_eq!(
        rows,
        20 * 50,
        "every valid reading is in the all_telemetry files"
    );
}
