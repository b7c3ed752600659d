use super::*;
use crate::test_rows::{rule_output, T0};
use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn output(rows: &[(i32, i64, &str)]) -> RuleOutput {
    rule_output("SELECT seq, ts FROM telemetry", rows)
}

/// The output's files (final and temporary), without the ledger.
fn files(root: &Path) -> Vec<PathBuf> {
    sluice_common::fs::files_under(root)
        .into_iter()
        .filter(|p| !p.starts_with(root.join("_sluice")))
        .collect()
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
        .map(|p| without_id(&p.strip_prefix(dir.path()).unwrap().display().to_string()))
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

/// A published name without its unique id: `…-o<first>-<last>.parquet`.
fn without_id(name: &str) -> String {
    let stem = name.strip_suffix(".parquet").unwrap();
    let (rest, id) = stem.rsplit_once('-').unwrap();
    assert!(
        id.len() >= 9 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{name}"
    );
    format!("{rest}.parquet")
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
        .map(|p| without_id(&p.file_name().unwrap().to_string_lossy()))
        .collect();
    assert_eq!(names, ["part-p0-o0-1.parquet", "part-p0-o2-2.parquet"]);
}

#[test]
fn recovery_removes_leftover_temporary_files_of_its_partition_only() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("rule=x/date=2024-01-01/hour=00");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::write(nested.join(".part-p0-o0-1-7.parquet.tmp"), b"partial").unwrap();
    std::fs::write(
        nested.join(".part-p1-o0-1-7.parquet.tmp"),
        b"another router's",
    )
    .unwrap();
    std::fs::write(nested.join("part-p0-o0-0.parquet"), b"kept").unwrap();
    let mut s = sink(dir.path(), 10);
    assert_eq!(
        files(dir.path()).len(),
        3,
        "nothing removed before assignment"
    );
    s.assigned(&[0]).unwrap();
    let left: Vec<String> = files(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left,
        [".part-p1-o0-1-7.parquet.tmp", "part-p0-o0-0.parquet"]
    );
}

fn seq_rows(partition: i32, offsets: std::ops::Range<i64>) -> RuleOutput {
    let payloads: Vec<(i32, i64, String)> = offsets
        .map(|o| {
            (
                partition,
                o,
                format!(r#"{{"seq": {}}}"#, partition as i64 * 1000 + o),
            )
        })
        .collect();
    let rows: Vec<(i32, i64, &str)> = payloads
        .iter()
        .map(|(p, o, s)| (*p, *o, s.as_str()))
        .collect();
    output(&rows)
}

/// Every seq in the output, sorted (duplicates kept, so a test sees them).
fn all_seqs(root: &Path) -> Vec<i64> {
    let mut seqs: Vec<i64> = files(root)
        .iter()
        .filter(|p| !is_temp(p))
        .flat_map(|p| read_seqs(p))
        .collect();
    seqs.sort();
    seqs
}

#[test]
fn a_crash_between_checkpoints_then_a_replay_writes_each_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(dir.path(), 3);
    s.write("all", &seq_rows(0, 0..10)).unwrap();
    s.checkpoint().unwrap();
    // Rolled files (max_rows 3) stay temporary until the next checkpoint, which never comes.
    s.write("all", &seq_rows(0, 10..20)).unwrap();
    drop(s);
    // The replacement replays from an older committed offset (the commit after the ledger
    // write may have been lost too).
    let mut s = sink(dir.path(), 3);
    s.assigned(&[0]).unwrap();
    s.write("all", &seq_rows(0, 5..20)).unwrap();
    s.checkpoint().unwrap();
    assert_eq!(all_seqs(dir.path()), (0..20).collect::<Vec<_>>());
    assert!(files(dir.path()).iter().all(|p| !is_temp(p)));
}

#[test]
fn a_crash_between_ledger_and_renames_is_rolled_forward() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(dir.path(), 4);
    s.write("all", &seq_rows(0, 0..10)).unwrap();
    // The checkpoint's first half: files finished, the ledger written; then the crash.
    let keys: Vec<PartitionKey> = s.open.keys().cloned().collect();
    for key in keys {
        s.close(&key).unwrap();
    }
    let files_written = s.finished.remove(&0).unwrap();
    let entry = ledger::Ledger {
        next_offset: 10,
        files: files_written,
    };
    ledger::write(s.store.as_ref(), 0, &entry).unwrap();
    drop(s);
    let mut s = sink(dir.path(), 4);
    s.assigned(&[0]).unwrap();
    assert_eq!(all_seqs(dir.path()), (0..10).collect::<Vec<_>>());
    s.write("all", &seq_rows(0, 0..12)).unwrap();
    s.checkpoint().unwrap();
    assert_eq!(all_seqs(dir.path()), (0..12).collect::<Vec<_>>());
}

#[test]
fn a_revoked_partition_is_written_once_by_its_new_owner_in_a_shared_root() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = sink(dir.path(), 1000);
    let mut b = sink(dir.path(), 1000);
    a.write("all", &seq_rows(0, 0..5)).unwrap();
    a.write("all", &seq_rows(1, 0..5)).unwrap();
    a.checkpoint().unwrap();
    a.write("all", &seq_rows(0, 5..10)).unwrap();
    a.write("all", &seq_rows(1, 5..10)).unwrap();
    // Partition 1 moves to b before a's next checkpoint: a drops what it held of it.
    a.revoked(&[1]);
    b.assigned(&[1]).unwrap();
    b.write("all", &seq_rows(1, 5..12)).unwrap();
    // a assigned partition 0 afresh replays it, and must not touch b's open file of
    // partition 1.
    a.assigned(&[0]).unwrap();
    a.write("all", &seq_rows(0, 5..10)).unwrap();
    a.checkpoint().unwrap();
    b.checkpoint().unwrap();
    let expected: Vec<i64> = (0..10).chain(1000..1012).collect();
    assert_eq!(all_seqs(dir.path()), expected);
}

/// A router that missed its revocation (a stall, a slow rebalance) while the partition's new
/// owner recovered, wrote and published: its checkpoint is refused and writes nothing, and the
/// ledger does not go back.
#[test]
fn a_router_that_missed_its_revocation_is_fenced_and_writes_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let mut zombie = sink(dir.path(), 1000);
    zombie.write("all", &seq_rows(0, 0..5)).unwrap();
    zombie.checkpoint().unwrap();
    zombie.write("all", &seq_rows(0, 5..10)).unwrap();
    let mut owner = sink(dir.path(), 1000);
    owner.assigned(&[0]).unwrap();
    owner.write("all", &seq_rows(0, 5..12)).unwrap();
    owner.checkpoint().unwrap();
    let err = zombie.checkpoint().unwrap_err();
    assert!(err.message.contains("taken over"), "{err:?}");
    assert_eq!(
        ledger::read(owner.store.as_ref(), 0).unwrap().next_offset,
        12
    );
    // The owner goes on; the next one to be assigned replays from the ledger.
    owner.write("all", &seq_rows(0, 12..15)).unwrap();
    owner.checkpoint().unwrap();
    let mut next = sink(dir.path(), 1000);
    next.assigned(&[0]).unwrap();
    next.write("all", &seq_rows(0, 10..16)).unwrap();
    next.checkpoint().unwrap();
    assert_eq!(all_seqs(dir.path()), (0..16).collect::<Vec<_>>());
}

/// The same, earlier: the new owner has only recovered the partition (removing the files the
/// stalled router had staged) when the stalled router checkpoints. Without the fence its
/// ledger would list files that no longer exist: their records would be lost.
#[test]
fn a_router_whose_staged_files_a_new_owner_removed_is_fenced_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut zombie = sink(dir.path(), 1000);
    zombie.write("all", &seq_rows(0, 0..5)).unwrap();
    zombie.checkpoint().unwrap();
    zombie.write("all", &seq_rows(0, 5..10)).unwrap();
    let mut owner = sink(dir.path(), 1000);
    owner.assigned(&[0]).unwrap();
    let err = zombie.checkpoint().unwrap_err();
    assert!(err.message.contains("staged files removed"), "{err:?}");
    assert_eq!(
        ledger::read(owner.store.as_ref(), 0).unwrap().next_offset,
        5
    );
    owner.write("all", &seq_rows(0, 5..12)).unwrap();
    owner.checkpoint().unwrap();
    assert_eq!(all_seqs(dir.path()), (0..12).collect::<Vec<_>>());
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
        .map(|p| without_id(&p.strip_prefix(dir.path()).unwrap().display().to_string()))
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

/// A sink on an object store: `object_store`'s local file system as the client, so the
/// objects can be read back as files under `<dir>/bucket/lake`.
fn bucket_sink(dir: &Path, max_rows: usize) -> ParquetSink {
    std::fs::create_dir_all(dir.join("bucket")).unwrap();
    let client = object_store::local::LocalFileSystem::new_with_prefix(dir.join("bucket"));
    let client = Arc::new(client.unwrap());
    let url = url::Url::parse("s3://bucket/lake").unwrap();
    let store = super::store::object::Bucket::with_client(url, client, dir.join("staging"));
    let config = ParquetSinkConfig {
        max_rows,
        ..Default::default()
    };
    ParquetSink::with_store(
        "lake",
        Box::new(store.unwrap()),
        config,
        Arc::new(Stats::default()),
    )
}

#[test]
fn an_object_store_root_is_exactly_once_across_a_crash_between_ledger_and_publish() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bucket/lake");
    let mut s = bucket_sink(dir.path(), 4);
    s.write("all", &seq_rows(0, 0..10)).unwrap();
    assert!(
        all_seqs(&root).is_empty(),
        "nothing visible before the checkpoint"
    );
    s.checkpoint().unwrap();
    assert_eq!(all_seqs(&root), (0..10).collect::<Vec<_>>());

    // The next checkpoint's first half: files staged (uploaded), the ledger written; crash.
    s.write("all", &seq_rows(0, 10..20)).unwrap();
    let keys: Vec<PartitionKey> = s.open.keys().cloned().collect();
    for key in keys {
        s.close(&key).unwrap();
    }
    let staged = s.finished.remove(&0).unwrap();
    assert!(staged
        .iter()
        .all(|f| f.tmp.starts_with("_sluice/staging/p0")));
    let entry = ledger::Ledger {
        next_offset: 20,
        files: staged,
    };
    ledger::write(s.store.as_ref(), 0, &entry).unwrap();
    // A file staged after the ledger (the crash came mid-way through the next batch).
    s.write("all", &seq_rows(0, 20..23)).unwrap();
    let keys: Vec<PartitionKey> = s.open.keys().cloned().collect();
    for key in keys {
        s.close(&key).unwrap();
    }
    drop(s);

    let mut s = bucket_sink(dir.path(), 4);
    s.assigned(&[0]).unwrap();
    assert_eq!(
        all_seqs(&root),
        (0..20).collect::<Vec<_>>(),
        "rolled forward"
    );
    assert!(
        files(&root.join("_sluice/staging")).is_empty(),
        "the unlisted staged file is removed"
    );
    // Kafka replays from the last commit (10): only 20.. is written again.
    s.write("all", &seq_rows(0, 10..25)).unwrap();
    s.checkpoint().unwrap();
    assert_eq!(all_seqs(&root), (0..25).collect::<Vec<_>>());
}

fn count_rows(paths: &[PathBuf]) -> usize {
    paths
        .iter()
        .filter(|p| !is_temp(p))
        .flat_map(|p| {
            ParquetRecordBatchReaderBuilder::try_new(File::open(p).unwrap())
                .unwrap()
                .build()
                .unwrap()
        })
        .map(|b| b.unwrap().num_rows())
        .sum()
}

/// #24.3: rows from no Kafka record (failed alerts: partition and offset -1) got one file
/// name, so each checkpoint's file replaced the last one's.
#[test]
fn g3_rows_from_no_kafka_record_never_replace_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(dir.path(), 1000);
    for seq in 1..=3 {
        s.write("all", &output(&[(-1, -1, &format!(r#"{{"seq": {seq}}}"#))]))
            .unwrap();
        s.checkpoint().unwrap();
    }
    let found = files(dir.path());
    assert_eq!(count_rows(&found), 3, "{found:?}");
    let mut seqs: Vec<i64> = found.iter().flat_map(|p| read_seqs(p)).collect();
    seqs.sort();
    assert_eq!(seqs, [1, 2, 3]);
    assert!(
        !dir.path().join("_sluice/ledger/p-1.json").exists(),
        "no ledger for rows from no partition"
    );
}

/// #24.8: an error action that is one of the rule's own actions writes the same offsets
/// (with `_error`, so in a new file); under the same name that file replaced the good rows.
#[test]
fn g8_error_rows_written_beside_the_rules_own_rows_keep_both() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(dir.path(), 1000);
    let good = output(&[(0, 0, r#"{"seq": 1}"#), (0, 1, r#"{"seq": 2}"#)]);
    s.write("all", &good).unwrap();
    let failed =
        sluice_processors::rule::route::with_error(&good.source, "action 'x' failed").unwrap();
    s.write(
        "all",
        &RuleOutput {
            source: failed.clone(),
            rows: failed,
        },
    )
    .unwrap();
    s.checkpoint().unwrap();
    let found = files(dir.path());
    assert_eq!(count_rows(&found), 4, "{found:?}");
}
