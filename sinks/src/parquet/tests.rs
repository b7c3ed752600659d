use super::*;
use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sluice_config::RuleConfig;
use sluice_processors::decode::{BatchDecoder, RawBatch};
use sluice_processors::record::TelemetryRecord;
use sluice_processors::rule::RuleSet;

/// 2024-03-05T10:00:00Z in ms.
const T0: i64 = 1_709_632_800_000;

fn output(rows: &[(i32, i64, &str)]) -> RuleOutput {
    let mut raw = RawBatch::default();
    for (partition, offset, payload) in rows {
        let rec = TelemetryRecord {
            device_id: "d",
            mqtt_topic: "devices/d/telemetry",
            received_ms: T0,
            payload: payload.as_bytes(),
        };
        raw.push(&rec, *partition, *offset);
    }
    let batch = BatchDecoder::new().decode(&raw).batch.unwrap();
    let rule = RuleConfig {
        name: "all".into(),
        sql: "SELECT seq, ts FROM telemetry".into(),
        actions: vec![],
        ..Default::default()
    };
    let mut set = RuleSet::compile(&[rule]).unwrap();
    set.evaluate(&batch).remove(0).output.unwrap()
}

fn files(root: &Path) -> Vec<PathBuf> {
    sluice_common::fs::files_under(root)
}

fn read_seqs(path: &Path) -> Vec<i64> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    reader
        .flat_map(|b| {
            b.unwrap()
                .column(0)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect()
}

use std::fs::File;

fn sink(dir: &Path, max_rows: usize) -> ParquetSink {
    let config = ParquetSinkConfig {
        max_rows,
        ..Default::default()
    };
    ParquetSink::new(
        "lake",
        dir.to_path_buf(),
        config,
        Arc::new(Stats::default()),
    )
    .unwrap()
}

#[test]
fn files_appear_only_at_checkpoint_partitioned_by_event_hour() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(dir.path(), 1000);
    let next_hour = T0 + 3_600_000;
    let out = output(&[
        (0, 10, &format!(r#"{{"seq": 1, "ts": {T0}}}"#)),
        (0, 11, &format!(r#"{{"seq": 2, "ts": {next_hour}}}"#)),
        (1, 5, r#"{"seq": 3}"#),
    ]);
    s.write("all", &out).unwrap();
    assert!(
        files(dir.path()).iter().all(|p| is_temp(p)),
        "only temporary files before checkpoint"
    );
    let stats = s.checkpoint().unwrap();
    assert_eq!(stats, CheckpointStats { files: 3, rows: 3 });
    let found = files(dir.path());
    let rel: Vec<String> = found
        .iter()
        .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
        .collect();
    assert_eq!(
        rel,
        [
            "rule=all/date=2024-03-05/hour=10/part-p0-o10-10.parquet",
            "rule=all/date=2024-03-05/hour=10/part-p1-o5-5.parquet",
            "rule=all/date=2024-03-05/hour=11/part-p0-o11-11.parquet",
        ]
    );
    assert_eq!(read_seqs(&found[0]), [1]);
    assert_eq!(read_seqs(&found[2]), [2]);
}

fn is_temp(p: &Path) -> bool {
    writer::is_temporary(p)
}

#[test]
fn rolls_by_rows_and_names_by_offset_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(dir.path(), 2);
    for (off, seq) in [(0, 1), (1, 2), (2, 3)] {
        s.write("all", &output(&[(0, off, &format!(r#"{{"seq": {seq}}}"#))]))
            .unwrap();
    }
    s.checkpoint().unwrap();
    let names: Vec<String> = files(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["part-p0-o0-1.parquet", "part-p0-o2-2.parquet"]);
}

#[test]
fn leftover_temporary_files_are_removed_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("rule=x/date=2024-01-01/hour=00");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::write(nested.join(".part-p0-o0-1.parquet.tmp"), b"partial").unwrap();
    std::fs::write(nested.join("part-p0-o0-0.parquet"), b"kept").unwrap();
    let _s = sink(dir.path(), 10);
    let left: Vec<_> = files(dir.path());
    assert_eq!(left.len(), 1);
    assert!(left[0].ends_with("part-p0-o0-0.parquet"));
}

#[test]
fn event_times_outside_the_window_are_filed_by_receive_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(dir.path(), 1000);
    // Far past, far future, beyond i64 and the panic of the field report (`"ts": -1e19`).
    let out = output(&[
        (0, 1, r#"{"seq": 1, "ts": -1e19}"#),
        (0, 2, r#"{"seq": 2, "ts": 1e300}"#),
        (
            0,
            3,
            &format!(r#"{{"seq": 3, "ts": {}}}"#, T0 - 40 * 86_400_000),
        ),
        (
            0,
            4,
            &format!(r#"{{"seq": 4, "ts": {}}}"#, T0 + 2 * 3_600_000),
        ),
        (0, 5, &format!(r#"{{"seq": 5, "ts": {}}}"#, T0 - 3_600_000)),
    ]);
    s.write("all", &out).unwrap();
    s.checkpoint().unwrap();
    let rel: Vec<String> = files(dir.path())
        .iter()
        .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
        .collect();
    assert_eq!(
        rel,
        [
            "rule=all/date=2024-03-05/hour=09/part-p0-o5-5.parquet",
            "rule=all/date=2024-03-05/hour=10/part-p0-o1-4.parquet",
        ]
    );
}

#[test]
fn open_files_are_capped_by_closing_the_least_recently_written() {
    let dir = tempfile::tempdir().unwrap();
    let config = ParquetSinkConfig {
        max_open_files: 3,
        max_event_age_secs: 10 * 365 * 86_400,
        ..Default::default()
    };
    let mut s = ParquetSink::new(
        "lake",
        dir.path().into(),
        config,
        Arc::new(Stats::default()),
    )
    .unwrap();
    // Ten hours apart each: ten files, never more than three open at once.
    for i in 0..10i64 {
        let ts = T0 - i * 3_600_000;
        s.write(
            "all",
            &output(&[(0, i, &format!(r#"{{"seq": {i}, "ts": {ts}}}"#))]),
        )
        .unwrap();
        assert!(s.open.len() <= 3);
    }
    s.checkpoint().unwrap();
    let found = files(dir.path());
    assert_eq!(found.len(), 10);
    let mut seqs: Vec<i64> = found.iter().flat_map(|p| read_seqs(p)).collect();
    seqs.sort();
    assert_eq!(seqs, (0..10).collect::<Vec<_>>());
}
