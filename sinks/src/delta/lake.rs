//! `sluice lake optimize|vacuum`: Delta table maintenance, safe while routers write.
//!
//! Optimize compacts each `date`/`hour` partition's small files into files of about the
//! target size, as one commit of `remove` + `add` actions with `dataChange = false`: the rows
//! are the same, so a reader of any version sees each row once, and a router's append commit
//! does not conflict with it (the routers never read the files optimize removes). The removed
//! files stay on storage for older versions until vacuum. Vacuum (lite mode) deletes only
//! files the log has removed longer ago than `--retain`: never a router's file that is
//! written but not yet committed.

use super::conform::{self, PARTITION_COLUMNS};
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake_core::kernel::{Action, Remove};
use deltalake_core::operations::vacuum::VacuumMode;
use deltalake_core::protocol::DeltaOperation;
use deltalake_core::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use deltalake_core::{DeltaTable, DeltaTableBuilder, DeltaTableError, ObjectStore, Path};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use std::collections::{BTreeMap, HashMap};
use url::Url;

/// What one optimize did to one table.
#[derive(Debug, Default)]
pub struct Compacted {
    /// The new version, `None` when nothing was worth compacting.
    pub version: Option<i64>,
    pub files_before: usize,
    pub files_removed: usize,
    pub files_added: usize,
    pub rows: u64,
}

/// Opens the table at `url`; `None` when there is no table there.
pub async fn open(
    url: &Url,
    options: &HashMap<String, String>,
) -> Result<Option<DeltaTable>, DeltaTableError> {
    super::location::register_stores();
    if url.to_file_path().is_ok_and(|dir| !dir.is_dir()) {
        return Ok(None);
    }
    let mut table = DeltaTableBuilder::from_url(url.clone())?
        .with_storage_options(options.clone())
        .build()?;
    match table.load().await {
        Ok(()) => Ok(Some(table)),
        Err(DeltaTableError::NotATable(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// (data files, rows) of the table's current version.
pub async fn size(table: &DeltaTable) -> Result<(usize, u64), DeltaTableError> {
    let log = table.log_store();
    let views: Vec<_> = table
        .snapshot()?
        .snapshot()
        .file_views(log.as_ref(), None)
        .try_collect()
        .await?;
    let rows = views.iter().filter_map(|v| v.num_records()).sum::<usize>();
    Ok((views.len(), rows as u64))
}

/// Compacts partitions holding more than one file smaller than `target_bytes`.
pub async fn optimize(
    mut table: DeltaTable,
    target_bytes: u64,
    compression: sluice_config::Compression,
) -> Result<Compacted, DeltaTableError> {
    table.update_incremental(None).await?;
    let log = table.log_store();
    let snapshot = table.snapshot()?;
    let views: Vec<_> = snapshot
        .snapshot()
        .file_views(log.as_ref(), None)
        .try_collect()
        .await?;
    let mut done = Compacted {
        files_before: views.len(),
        ..Default::default()
    };
    let mut groups: BTreeMap<Vec<Option<String>>, Vec<_>> = BTreeMap::new();
    for view in views {
        if (view.size() as u64) < target_bytes {
            let values = view.partition_values_map();
            let key = PARTITION_COLUMNS.map(|c| values.get(c).cloned().flatten());
            groups.entry(key.to_vec()).or_default().push(view);
        }
    }
    groups.retain(|_, files| files.len() > 1);
    if groups.is_empty() {
        return Ok(done);
    }
    let data = super::table::data_schema(&table)?;
    let mut writer = RecordBatchWriter::for_table(&table)?
        .with_target_file_size(target_bytes)
        .with_writer_properties(crate::parquet::writer::properties(compression));
    let store = table.object_store();
    let mut removes: Vec<Remove> = vec![];
    for (values, files) in &groups {
        let date = values[0].as_deref().unwrap_or_default();
        let hour = values[1].as_deref().unwrap_or_default();
        for view in files {
            let bytes = store
                .get(&Path::from(view.path().as_ref()))
                .await?
                .bytes()
                .await?;
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)?
                    .with_batch_size(8192)
                    .build()?;
            for batch in reader {
                let (batch, _) = conform::conform(&batch?, &data)?;
                done.rows += batch.num_rows() as u64;
                let values = conform::partition_values([date, hour]);
                writer
                    .write_partition(batch, &values, WriteMode::Default)
                    .await?;
            }
            removes.push(view.remove_action(false));
        }
    }
    let mut adds = writer.flush().await?;
    for add in &mut adds {
        add.data_change = false;
    }
    done.files_removed = removes.len();
    done.files_added = adds.len();
    let mut actions: Vec<Action> = removes.into_iter().map(Action::Remove).collect();
    actions.extend(adds.into_iter().map(Action::Add));
    let operation = DeltaOperation::Optimize {
        predicate: None,
        target_size: target_bytes as i64,
    };
    let commit = CommitBuilder::from(CommitProperties::default())
        .with_actions(actions)
        .build(Some(table.snapshot()?), table.log_store(), operation)
        .await?;
    done.version = Some(commit.version() as i64);
    Ok(done)
}

/// Deletes files removed from the log more than `retain_hours` ago; returns their count.
pub async fn vacuum(
    table: DeltaTable,
    retain_hours: u64,
    dry_run: bool,
) -> Result<usize, DeltaTableError> {
    let hours = i64::try_from(retain_hours).unwrap_or(i64::MAX / 3_600_000);
    let (_, metrics) = table
        .vacuum()
        .with_mode(VacuumMode::Lite)
        .with_retention_period(chrono::Duration::hours(hours))
        // The operator chose the retention: shorter than the table's default (a week) is
        // allowed, at the cost of time travel to versions that need the deleted files.
        .with_enforce_retention_duration(false)
        .with_dry_run(dry_run)
        .await?;
    Ok(metrics.files_deleted.len())
}

/// The tables under a sink's root: each child prefix holding a `_delta_log`.
pub async fn tables(root: &Url, options: &HashMap<String, String>) -> Result<Vec<Url>, String> {
    super::location::register_stores();
    let store =
        deltalake_core::logstore::store_for(root, options.clone()).map_err(|e| e.to_string())?;
    let listed = store
        .list_with_delimiter(None)
        .await
        .map_err(|e| e.to_string())?;
    let mut found = vec![];
    for prefix in listed.common_prefixes {
        let log = prefix.clone().join("_delta_log");
        let has_log = store
            .list_with_delimiter(Some(&log))
            .await
            .is_ok_and(|l| !l.objects.is_empty());
        if let (true, Some(name)) = (has_log, prefix.filename()) {
            found.push(super::location::table_url(root, name)?);
        }
    }
    Ok(found)
}
