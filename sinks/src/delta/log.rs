//! The Delta log as an appending router reads and writes it, without deltalake's
//! `CommitBuilder`.
//!
//! Why not the builder: after each commit it rebuilds the in-memory list of every live file of
//! the table (and a router then read the log again for the next commit), so a commit cost
//! more the larger the table grew: in `bench/benches/delta_write.rs`, log read plus commit took
//! 11 ms at 200 files and 24 ms at 600 (4 files a commit, no compaction), and a table that
//! commits every few seconds has thousands by evening. An append needs none of that list:
//! it needs the commits since the version it last saw (their `txn`s fence it; a `metaData` or
//! `protocol` among them means the table changed under it) and a put-if-absent of the next
//! `_delta_log/<version>.json`, which is the protocol's own fence between writers.

use deltalake_core::kernel::transaction::{CommitData, TransactionError};
use deltalake_core::kernel::Action;
use deltalake_core::logstore::{CommitOrBytes, LogStoreRef};
use deltalake_core::protocol::DeltaOperation;
use deltalake_core::DeltaTableError;

/// What the commits after a version hold for an appending router.
#[derive(Debug, Default)]
pub struct Since {
    /// `(table version, app id, txn version)` of every `txn` action read.
    pub txns: Vec<(u64, String, i64)>,
    /// A commit after `known` changed the table's metadata (a schema) or protocol.
    pub changed: bool,
    /// The last version read: the table's latest (or `known` when nothing is newer).
    pub latest: u64,
    /// A version at or below `known` is no longer in the log (log retention removed it).
    pub gone: bool,
}

/// Reads the commits from `from` on, until the first version that does not exist. `known` is
/// the latest version the caller knew to exist.
pub async fn read_since(
    log: &LogStoreRef,
    from: u64,
    known: u64,
) -> Result<Since, DeltaTableError> {
    let mut since = Since {
        latest: known,
        ..Since::default()
    };
    let mut version = from;
    loop {
        let Some(entry) = log.read_commit_entry(version).await? else {
            since.gone = version <= known;
            return Ok(since);
        };
        for line in entry.split(|b| *b == b'\n') {
            if line.starts_with(b"{\"txn\"") {
                if let Some((app, txn)) = txn(line) {
                    since.txns.push((version, app, txn));
                }
            } else if version > known
                && (line.starts_with(b"{\"metaData\"") || line.starts_with(b"{\"protocol\""))
            {
                since.changed = true;
            }
        }
        since.latest = since.latest.max(version);
        version += 1;
    }
}

/// One `txn` line: app id and version.
fn txn(line: &[u8]) -> Option<(String, i64)> {
    #[derive(serde::Deserialize)]
    struct Line {
        txn: Txn,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Txn {
        app_id: String,
        version: i64,
    }
    let t = serde_json::from_slice::<Line>(line).ok()?.txn;
    Some((t.app_id, t.version))
}

/// Writes `actions` as table version `version` if no other writer has (put-if-absent):
/// `Err(VersionAlreadyExists)` otherwise. `commitInfo` carries `operation` and `info`.
pub async fn write(
    log: &LogStoreRef,
    version: u64,
    actions: Vec<Action>,
    operation: DeltaOperation,
    info: (String, serde_json::Value),
) -> Result<(), TransactionError> {
    let data = CommitData::new(actions, operation, [info].into_iter().collect(), vec![]);
    let bytes = data.get_bytes()?;
    log.write_commit_entry(
        version,
        CommitOrBytes::LogBytes(bytes),
        uuid::Uuid::new_v4(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake_core::kernel::Transaction;
    use deltalake_core::protocol::SaveMode;

    fn append() -> DeltaOperation {
        DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: None,
            predicate: None,
        }
    }

    fn txn_action(app: &str, version: i64) -> Vec<Action> {
        vec![Action::Txn(Transaction::new(app, version))]
    }

    /// Two routers writing the same version: the second loses at the log (the race half of
    /// the fence), and reading the log back shows the winner's `txn`.
    #[test]
    fn a_taken_version_is_refused_and_its_txn_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path()).unwrap();
        let log = deltalake_core::DeltaTableBuilder::from_url(url)
            .unwrap()
            .build()
            .unwrap()
            .log_store();
        let info = || ("sluice".to_string(), serde_json::json!({"writer": "a"}));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            write(&log, 0, txn_action("lake-0", 10), append(), info())
                .await
                .unwrap();
            let lost = write(&log, 0, txn_action("lake-0", 20), append(), info()).await;
            assert!(
                matches!(lost, Err(TransactionError::VersionAlreadyExists(0))),
                "{lost:?}"
            );
            write(&log, 1, txn_action("lake-1", 5), append(), info())
                .await
                .unwrap();
            let since = read_since(&log, 0, 0).await.unwrap();
            assert_eq!(
                since.txns,
                vec![(0, "lake-0".into(), 10), (1, "lake-1".into(), 5)]
            );
            assert_eq!((since.latest, since.changed, since.gone), (1, false, false));
            let nothing_new = read_since(&log, 2, 1).await.unwrap();
            assert_eq!((nothing_new.latest, nothing_new.gone), (1, false));
            let cleaned = read_since(&log, 7, 9).await.unwrap();
            assert!(cleaned.gone, "a version known to exist is missing");
        });
    }

    #[test]
    fn txn_lines_are_read_and_others_ignored() {
        let line = br#"{"txn":{"appId":"lake-3","version":42,"lastUpdated":1}}"#;
        assert_eq!(txn(line), Some(("lake-3".into(), 42)));
        assert_eq!(txn(br#"{"txn":{"appId":"x"}}"#), None);
        assert_eq!(txn(b"{\"txn\": not json"), None);
    }
}
