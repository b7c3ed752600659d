use super::*;
use crate::test_rows::{rule_output, T0};
use deltalake_core::DeltaTable;
use std::path::Path;

/// The rule `all`'s output for (partition, offset, payload) records.
fn output(sql: &str, rows: &[(i32, i64, String)]) -> RuleOutput {
    let rows: Vec<(i32, i64, &str)> = rows.iter().map(|(p, o, s)| (*p, *o, s.as_str())).collect();
    rule_output(sql, &rows)
}

/// Records `offsets` of `partition`, each `{"seq": offset, "ts": T0}`.
fn seqs(partition: i32, offsets: std::ops::Range<i64>) -> RuleOutput {
    let rows: Vec<_> = offsets
        .map(|o| (partition, o, format!(r#"{{"seq":{o},"ts":{T0}}}"#)))
        .collect();
    output("SELECT seq, ts FROM telemetry", &rows)
}

fn sink(dir: &Path) -> DeltaSink {
    let config = ParquetSinkConfig {
        format: sluice_config::OutputFormat::Delta,
        delta_checkpoint_interval: 3,
        ..Default::default()
    };
    let location = ParquetLocation::Directory(dir.to_path_buf());
    DeltaSink::new("lake", &location, config, Arc::new(Stats::default())).unwrap()
}

fn load(sink: &DeltaSink, rule: &str) -> DeltaTable {
    let url = sink.table_url(rule).unwrap();
    sink.runtime
        .block(lake::open(&url, &HashMap::new()))
        .unwrap()
        .expect("a table")
}

/// The table's column names (partition columns included).
fn column_names(table: &DeltaTable) -> Vec<String> {
    let schema = table.snapshot().unwrap().schema();
    schema.fields().map(|f| f.name().to_string()).collect()
}

/// (files, rows) of the table's current version.
fn files_and_rows(sink: &DeltaSink, table: &DeltaTable) -> (usize, u64) {
    sink.runtime.block(lake::size(table)).unwrap()
}

#[test]
fn each_checkpoint_is_one_commit_and_replayed_records_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(dir.path());
    s.assigned(&[0, 1]).unwrap();
    s.write("all", &seqs(0, 0..100)).unwrap();
    s.write("all", &seqs(1, 0..50)).unwrap();
    assert_eq!(s.checkpoint().unwrap().rows, 150);
    s.write("all", &seqs(0, 100..120)).unwrap();
    assert_eq!(s.checkpoint().unwrap().rows, 20);
    assert_eq!(s.checkpoint().unwrap().rows, 0, "nothing new: no commit");
    let table = load(&s, "all");
    assert_eq!(table.version(), Some(2), "create + two checkpoints");
    assert_eq!(files_and_rows(&s, &table).1, 170);

    // A new owner replays from an older Kafka offset: the txn versions skip what is in.
    let mut next = sink(dir.path());
    next.assigned(&[0, 1]).unwrap();
    next.write("all", &seqs(0, 90..130)).unwrap();
    next.write("all", &seqs(1, 0..60)).unwrap();
    assert_eq!(next.checkpoint().unwrap().rows, 10 + 10);
    let table = load(&next, "all");
    assert_eq!(files_and_rows(&next, &table).1, 190);
    // delta.checkpointInterval = 3: the third commit (version 2) wrote a log checkpoint.
    let log = dir.path().join("all/_delta_log");
    assert!(log.join("00000000000000000002.checkpoint.parquet").exists());
    assert!(!log.join("00000000000000000001.checkpoint.parquet").exists());
}

#[test]
fn a_router_that_lost_its_partition_is_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let mut old = sink(dir.path());
    old.assigned(&[0]).unwrap();
    old.write("all", &seqs(0, 0..10)).unwrap();
    old.checkpoint().unwrap();
    old.write("all", &seqs(0, 10..20)).unwrap(); // ... then stalls past its revocation.
    let mut new = sink(dir.path());
    new.assigned(&[0]).unwrap();
    new.write("all", &seqs(0, 10..25)).unwrap();
    new.checkpoint().unwrap();
    let err = old.checkpoint().unwrap_err();
    assert!(err.message.contains("taken over"), "{err}");
    let table = load(&new, "all");
    assert_eq!(files_and_rows(&new, &table).1, 25, "rows 10..20 once");
}

#[test]
fn a_revoked_partition_drops_only_its_own_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(dir.path());
    s.assigned(&[0, 1]).unwrap();
    s.write("all", &seqs(0, 0..10)).unwrap();
    s.write("all", &seqs(1, 0..7)).unwrap();
    s.revoked(&[0]);
    assert_eq!(s.checkpoint().unwrap().rows, 7);
}

#[test]
fn a_new_field_widens_the_table_and_older_rows_read_null() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(dir.path());
    s.assigned(&[0]).unwrap();
    s.write("all", &seqs(0, 0..5)).unwrap();
    s.checkpoint().unwrap();
    let rows: Vec<_> = (5..8)
        .map(|o| (0, o, format!(r#"{{"seq":{o},"ts":{T0},"fw":"1.{o}"}}"#)))
        .collect();
    s.write("all", &output("SELECT * FROM telemetry", &rows))
        .unwrap();
    // A type conflict: `seq` as text where the table has a number → NULL, the row kept.
    let bad = vec![(0, 8, format!(r#"{{"seq":"eight","ts":{T0}}}"#))];
    s.write("all", &output("SELECT seq, ts FROM telemetry", &bad))
        .unwrap();
    s.checkpoint().unwrap();
    let table = load(&s, "all");
    let names = column_names(&table);
    assert!(names.contains(&"fw".to_string()), "{names:?}");
    assert!(names.contains(&"seq".to_string()), "{names:?}");
    assert_eq!(files_and_rows(&s, &table).1, 9);
}

#[test]
fn a_rule_column_named_like_a_partition_column_is_the_rules_fault() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(dir.path());
    let rows = vec![(0, 0, format!(r#"{{"date":"x","ts":{T0}}}"#))];
    let err = s
        .write("all", &output("SELECT date FROM telemetry", &rows))
        .unwrap_err();
    assert_eq!(err.whose, sluice_core::Whose::User, "{err}");
    assert!(err.message.contains("partition column"), "{err}");
}

#[test]
fn optimize_compacts_small_files_and_keeps_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(dir.path());
    s.assigned(&[0]).unwrap();
    for i in 0..6 {
        s.write("all", &seqs(0, i * 10..i * 10 + 10)).unwrap();
        s.checkpoint().unwrap();
    }
    let table = load(&s, "all");
    assert_eq!(files_and_rows(&s, &table), (6, 60));
    let done = s
        .runtime
        .block(lake::optimize(
            table,
            64 << 20,
            sluice_config::Compression::Zstd,
        ))
        .unwrap();
    assert_eq!(
        (done.files_removed, done.files_added, done.rows),
        (6, 1, 60)
    );
    let table = load(&s, "all");
    assert_eq!(files_and_rows(&s, &table), (1, 60));
    // The router goes on writing after the compaction, and its txn still holds.
    s.write("all", &seqs(0, 55..70)).unwrap();
    s.checkpoint().unwrap();
    let table = load(&s, "all");
    assert_eq!(files_and_rows(&s, &table).1, 70);
    let deleted = s.runtime.block(lake::vacuum(table, 0, false)).unwrap();
    assert_eq!(deleted, 6, "the compacted files");
}

#[test]
fn device_field_names_delta_cannot_take_are_renamed_or_left_out_never_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(dir.path());
    s.assigned(&[0]).unwrap();
    let rows: Vec<_> = (0..3)
        .map(|o| {
            let payload = format!(
                r#"{{"seq":{o},"ts":{T0},"temp (C)":21.5,"Temp":1,"temp":2,"cfg":{{"a b":1}}}}"#
            );
            (0, o, payload)
        })
        .collect();
    s.write("all", &output("SELECT * FROM telemetry", &rows))
        .unwrap();
    s.checkpoint().unwrap();
    let table = load(&s, "all");
    let names = column_names(&table);
    assert!(names.contains(&"temp__C_".to_string()), "{names:?}");
    let temps = names
        .iter()
        .filter(|n| n.eq_ignore_ascii_case("temp"))
        .count();
    assert_eq!(temps, 1, "{names:?}");
    assert_eq!(files_and_rows(&s, &table).1, 3);
}

/// A table made elsewhere whose protocol asks writers for a feature deltalake does not
/// implement (here in-commit timestamps) is refused before anything is committed: Sluice
/// writes its commits itself, and runs deltalake's protocol check first.
#[test]
fn a_table_whose_protocol_asks_more_of_appends_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("all").join("_delta_log");
    std::fs::create_dir_all(&log).unwrap();
    let field = |name: &str, kind: &str| serde_json::json!({"name": name, "type": kind, "nullable": true, "metadata": {}});
    let schema = serde_json::json!({"type": "struct", "fields": [
        field("seq", "long"), field("ts", "long"), field("date", "string"), field("hour", "string"),
    ]});
    let lines = [
        serde_json::json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 7,
            "writerFeatures": ["appendOnly", "inCommitTimestamp"]}}),
        serde_json::json!({"metaData": {
            "id": "4d3c5a10-0000-4000-8000-000000000000",
            "format": {"provider": "parquet", "options": {}},
            "schemaString": schema.to_string(),
            "partitionColumns": ["date", "hour"],
            "configuration": {},
            "createdTime": 0,
        }}),
    ];
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(log.join(format!("{:020}.json", 0)), text.join("\n")).unwrap();
    let mut s = sink(dir.path());
    s.assigned(&[0]).unwrap();
    let refused = s
        .write("all", &seqs(0, 0..10))
        .and_then(|_| s.checkpoint().map(|_| ()));
    let e = refused.expect_err("refused").to_string();
    assert!(e.contains("Unsupported table features required"), "{e}");
    let versions = std::fs::read_dir(&log).unwrap().count();
    assert_eq!(versions, 1, "nothing committed");
}
