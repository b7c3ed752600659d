//! One rule's Delta table: its snapshot, what was written since the last commit, the commit.
//!
//! Files are written as rows arrive, one writer per Kafka partition (so a revoked partition's
//! rows are dropped alone, as in the Parquet sink); nothing is visible until the checkpoint
//! commits them. A commit carries, besides the files, one `txn` action per Kafka partition:
//! app id `<sink>-<partition>`, version the offset after the partition's last record in the
//! commit. The table is the ledger: a router that takes over a partition reads that version
//! and skips rows of records below it.
//!
//! Fencing: the version this router read when it started writing the partition must still be
//! the log's when it commits. A router that missed its revocation finds it moved on (the new
//! owner committed), and a commit racing the new owner's loses at the log: both write
//! `_delta_log/<version>.json` put-if-absent, and the loser's retry finds the winner's `txn`
//! for its app id. Either way it commits nothing and fails its checkpoint. Commits are written
//! by [`super::log`], not by deltalake's commit builder (why: there).

use super::conform::{self, PARTITION_COLUMNS};
use super::log;
use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use deltalake_core::kernel::engine::arrow_conversion::{TryIntoArrow, TryIntoKernel};
use deltalake_core::kernel::transaction::{TransactionError, PROTOCOL};
use deltalake_core::kernel::{Action, Add, MetadataExt, StructType, Transaction};
use deltalake_core::protocol::checkpoints;
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use deltalake_core::{DeltaTable, DeltaTableBuilder, DeltaTableError, ObjectStore, TableProperty};
use std::collections::{BTreeMap, HashMap};
use url::Url;

/// What every table of one sink is written with.
#[derive(Clone)]
pub struct Settings {
    pub sink: String,
    pub options: HashMap<String, String>,
    pub compression: sluice_config::Compression,
    pub max_rows: u64,
    pub max_bytes: u64,
    pub checkpoint_interval: u64,
    /// This sink instance (a random id per process start), in each commit's `commitInfo`.
    pub writer_id: String,
}

impl Settings {
    pub fn app_id(&self, partition: i32) -> String {
        format!("{}-{partition}", self.sink)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error(transparent)]
    Delta(#[from] DeltaTableError),
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// The rule's output cannot go into a table as it is (the rule must change).
    #[error("{0}")]
    Rule(String),
    /// Another router changed the table under this one's uncommitted files.
    #[error("{0}")]
    Raced(String),
    #[error(
        "partition {partition} was taken over: the table's txn for it is at {log:?}, this \
         router read {mine:?}; not committing"
    )]
    Fenced {
        partition: i32,
        log: Option<i64>,
        mine: Option<i64>,
    },
}

/// One Kafka partition's rows since the last commit.
struct Window {
    writer: Option<RecordBatchWriter>,
    /// Rows in the writer's open files.
    open_rows: u64,
    adds: Vec<Add>,
    next_offset: i64,
    rows: u64,
}

/// A partition's `txn` version as this router knows it, and the table version through which
/// it knows it: a commit after that version with a `txn` for the partition is another router's.
#[derive(Clone, Copy)]
struct Floor {
    txn: Option<i64>,
    known_at: u64,
}

/// What a write had to change to fit the table (counted, never an error).
#[derive(Default)]
pub struct Written {
    /// Values NULL because their type differs from their column's and does not convert.
    pub nulled_values: usize,
    /// Columns left out: their Delta name equals an earlier column's ignoring case.
    pub dropped_columns: usize,
}

/// What a commit made visible.
pub struct Committed {
    pub version: i64,
    pub files: u64,
    pub rows: u64,
}

pub struct Table {
    pub url: Url,
    /// The table as loaded at open, and again only when its schema or protocol changed, a
    /// floor is read, or a log checkpoint is due: not at every commit.
    table: DeltaTable,
    /// The latest table version this router knows of (read or written).
    version: u64,
    /// The data columns: the table's, and those this router added since its last commit.
    data: SchemaRef,
    /// Per Kafka partition: the `txn` version this router read from the log (or wrote).
    floors: HashMap<i32, Floor>,
    windows: BTreeMap<i32, Window>,
}

impl Table {
    /// Opens the table at `url`, creating it with `first`'s columns if there is none.
    pub async fn open(url: Url, first: &RecordBatch, s: &Settings) -> Result<Self, TableError> {
        let (first, _) = conform::delta_names(first)?;
        let first = first.schema();
        let first = first.as_ref();
        conform::check_names(first).map_err(TableError::Rule)?;
        if let Ok(dir) = url.to_file_path() {
            // A local table's directory must exist before its log can be looked for.
            std::fs::create_dir_all(&dir).map_err(|e| DeltaTableError::Io { source: e })?;
        }
        let mut table = DeltaTableBuilder::from_url(url.clone())?
            .with_storage_options(s.options.clone())
            .build()?;
        // Looked for first: loading a table that is not there logs an error in the kernel.
        let log = deltalake_core::Path::from("_delta_log");
        let listed = table
            .log_store()
            .object_store(None)
            .list_with_delimiter(Some(&log))
            .await;
        if listed.is_ok_and(|l| l.objects.is_empty()) {
            // Another router may create it first (its version 0 wins): then this one loads it.
            if let Err(e) = create(&table, first, s).await {
                table.load().await.map_err(|_| e)?;
            }
        }
        table.load().await?;
        let data = data_schema(&table)?;
        Ok(Self {
            url,
            version: table.version().unwrap_or_default(),
            table,
            data,
            floors: HashMap::new(),
            windows: BTreeMap::new(),
        })
    }

    /// Rows of `partition`'s records below this offset are in the table already.
    pub async fn floor(&mut self, partition: i32, s: &Settings) -> Result<i64, TableError> {
        if partition < 0 {
            return Ok(i64::MIN); // Rows from no Kafka record (failed alerts): no txn.
        }
        if let Some(f) = self.floors.get(&partition) {
            return Ok(f.txn.unwrap_or(i64::MIN));
        }
        self.reload().await?;
        let txn = txn_version(&self.table, s.app_id(partition)).await?;
        let known_at = self.table.version().unwrap_or_default();
        self.floors.insert(partition, Floor { txn, known_at });
        Ok(txn.unwrap_or(i64::MIN))
    }

    /// Writes `rows` (from `partition`, records up to offset `last`) under the partition
    /// values `date`/`hour`; returns how many values a type conflict made NULL.
    pub async fn write(
        &mut self,
        partition: i32,
        last: i64,
        rows: &RecordBatch,
        values: [&str; 2],
        s: &Settings,
    ) -> Result<Written, TableError> {
        let (rows, dropped_columns) = conform::delta_names(rows)?;
        let rows = &rows;
        conform::check_names(&rows.schema()).map_err(TableError::Rule)?;
        if let Some(wider) = conform::widened(&self.data, &rows.schema()) {
            self.seal_all().await?;
            self.data = wider;
        }
        let (batch, lost) = conform::conform(rows, &self.data)?;
        let window = self.windows.entry(partition).or_insert(Window {
            writer: None,
            open_rows: 0,
            adds: vec![],
            next_offset: i64::MIN,
            rows: 0,
        });
        if window.writer.is_none() {
            window.writer = Some(writer(&self.url, &self.data, s)?);
        }
        let n = batch.num_rows() as u64;
        if let Some(w) = window.writer.as_mut() {
            // All rows of one date and hour: written as that partition's, so the writer does
            // not sort the batch to find out.
            let values = conform::partition_values(values);
            w.write_partition(batch, &values, WriteMode::Default)
                .await?;
        }
        window.open_rows += n;
        window.rows += n;
        window.next_offset = window.next_offset.max(last.saturating_add(1));
        if window.open_rows >= s.max_rows {
            seal(window).await?;
        }
        Ok(Written {
            nulled_values: lost,
            dropped_columns,
        })
    }

    /// Finishes every open file (their `add` actions wait for the commit).
    async fn seal_all(&mut self) -> Result<(), TableError> {
        for window in self.windows.values_mut() {
            seal(window).await?;
        }
        Ok(())
    }

    /// Forgets `partitions`: their uncommitted files are never committed (the new owner
    /// replays their records) and their floors are read again.
    pub fn drop_partitions(&mut self, partitions: &[i32]) {
        for p in partitions {
            if let Some(mut w) = self.windows.remove(p) {
                if let Some(mut writer) = w.writer.take() {
                    writer.reset();
                }
            }
            self.floors.remove(p);
        }
    }

    pub fn has_pending(&self) -> bool {
        !self.windows.is_empty()
    }

    /// Commits everything written since the last commit, with the partitions' `txn`s.
    /// `checkpoint` (this sink's checkpoint count) goes into the commit's `commitInfo` as
    /// `sluice: {sink, writer, checkpoint}`: a table's history shows which checkpoint of which
    /// router made each version.
    pub async fn commit(
        &mut self,
        s: &Settings,
        checkpoint: u64,
    ) -> Result<Option<Committed>, TableError> {
        if self.windows.is_empty() {
            return Ok(None);
        }
        self.seal_all().await?;
        let adds: Vec<Add> = self.windows.values().flat_map(|w| w.adds.clone()).collect();
        let rows = self.windows.values().map(|w| w.rows).sum();
        let operation = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: Some(PARTITION_COLUMNS.map(String::from).to_vec()),
            predicate: None,
        };
        let info = serde_json::json!({
            "sink": s.sink, "writer": s.writer_id, "checkpoint": checkpoint,
        });
        let mut attempt = 0;
        let version = loop {
            attempt += 1;
            self.catch_up(s).await?;
            let actions = self.actions(&adds, s)?;
            let widens = actions.iter().any(|a| matches!(a, Action::Metadata(_)));
            PROTOCOL
                .can_commit(self.table.snapshot()?, &actions, &operation)
                .map_err(DeltaTableError::from)?;
            let version = self.version + 1;
            let info = ("sluice".to_string(), info.clone());
            let log = self.table.log_store();
            match log::write(&log, version, actions, operation.clone(), info).await {
                Ok(()) => {
                    self.version = version;
                    if widens {
                        // The loaded table must know the columns this commit added.
                        self.table.update_incremental(None).await?;
                    }
                    break version;
                }
                // Another writer took the version: read its commit (the fence) and retry.
                Err(TransactionError::VersionAlreadyExists(_)) if attempt < 15 => continue,
                Err(e) => return Err(DeltaTableError::from(e).into()),
            }
        };
        for (&p, w) in &self.windows {
            if p >= 0 {
                let floor = Floor {
                    txn: Some(w.next_offset),
                    known_at: version,
                };
                self.floors.insert(p, floor);
            }
        }
        self.windows.clear();
        self.log_checkpoint_if_due(version, s).await?;
        Ok(Some(Committed {
            version: version as i64,
            files: adds.len() as u64,
            rows,
        }))
    }

    /// Reads the commits since this router last looked. Fails when another router committed
    /// one of this commit's partitions since this one read (or last wrote) its `txn`: a commit
    /// after that version carries a `txn` for it. Reading those commits, not replaying the log
    /// for each partition, keeps the check as cheap as the number of commits other routers
    /// made since (usually none or one). A commit that changed the schema or protocol reloads
    /// the table.
    async fn catch_up(&mut self, s: &Settings) -> Result<(), TableError> {
        let mine: HashMap<String, (i32, Floor)> = self
            .windows
            .keys()
            .filter(|p| **p >= 0)
            .filter_map(|&p| Some((s.app_id(p), (p, *self.floors.get(&p)?))))
            .collect();
        let oldest_floor = mine.values().map(|(_, f)| f.known_at + 1).min();
        let from = oldest_floor.unwrap_or(u64::MAX).min(self.version + 1);
        let log = self.table.log_store();
        let since = log::read_since(&log, from, self.version).await?;
        if since.gone {
            // Cleaned up (log retention): the snapshot says what the versions are now.
            self.reload().await?;
            return self.fence_from_snapshot(s).await;
        }
        for (version, app, txn) in since.txns {
            let Some(&(p, floor)) = mine.get(&app) else {
                continue;
            };
            if version > floor.known_at {
                self.drop_partitions(&[p]);
                return Err(TableError::Fenced {
                    partition: p,
                    log: Some(txn),
                    mine: floor.txn,
                });
            }
        }
        self.version = self.version.max(since.latest);
        if since.changed {
            self.reload().await?;
        }
        Ok(())
    }

    /// Loads the table's latest snapshot (every live file: not on every commit).
    async fn reload(&mut self) -> Result<(), TableError> {
        self.table.update_incremental(None).await?;
        self.version = self.version.max(self.table.version().unwrap_or_default());
        Ok(())
    }

    /// Every `checkpoint_interval` versions: a Delta log checkpoint (so readers replay few
    /// commits), then the log entries past their retention are removed. Both read the whole
    /// table, hence not on every commit.
    async fn log_checkpoint_if_due(
        &mut self,
        version: u64,
        s: &Settings,
    ) -> Result<(), TableError> {
        if !(version + 1).is_multiple_of(s.checkpoint_interval.max(1)) {
            return Ok(());
        }
        self.reload().await?;
        checkpoints::create_checkpoint(&self.table, None).await?;
        checkpoints::cleanup_metadata(&self.table, None).await?;
        Ok(())
    }

    /// The fence from the snapshot's `txn` versions (one log replay per partition).
    async fn fence_from_snapshot(&mut self, s: &Settings) -> Result<(), TableError> {
        let partitions: Vec<i32> = self.windows.keys().copied().filter(|p| *p >= 0).collect();
        for p in partitions {
            let log = txn_version(&self.table, s.app_id(p)).await?;
            let mine = self.floors.get(&p).and_then(|f| f.txn);
            if log != mine {
                self.drop_partitions(&[p]);
                return Err(TableError::Fenced {
                    partition: p,
                    log,
                    mine,
                });
            }
        }
        Ok(())
    }

    /// The commit's actions: a schema change if this router added columns, the files, the
    /// `txn`s.
    fn actions(&mut self, adds: &[Add], s: &Settings) -> Result<Vec<Action>, TableError> {
        let snapshot = self.table.snapshot()?;
        let current = data_schema(&self.table)?;
        let mut actions = Vec::with_capacity(adds.len() + self.windows.len() + 1);
        let clash = self.data.fields().iter().find_map(|field| {
            let theirs = current.field_with_name(field.name()).ok()?;
            (theirs.data_type() != field.data_type()).then(|| {
                format!(
                    "column '{}' was added by another router as {} while this one wrote it as \
                     {}; its rows are written again",
                    field.name(),
                    theirs.data_type(),
                    field.data_type()
                )
            })
        });
        if let Some(clash) = clash {
            // This router's files cannot join the table; replayed, its rows are cast.
            self.windows.clear();
            self.data = current;
            return Err(TableError::Raced(clash));
        }
        if let Some(wider) = conform::widened(&current, &self.data) {
            let full: StructType = conform::with_partitions(&wider)
                .as_ref()
                .try_into_kernel()?;
            let metadata = snapshot
                .metadata()
                .clone()
                .with_schema(&full)
                .map_err(DeltaTableError::from)?;
            actions.push(Action::Metadata(metadata));
        }
        actions.extend(adds.iter().cloned().map(Action::Add));
        let now = chrono::Utc::now().timestamp_millis();
        for (&p, w) in &self.windows {
            if p >= 0 {
                let txn = Transaction::new_with_last_update(s.app_id(p), w.next_offset, Some(now));
                actions.push(Action::Txn(txn));
            }
        }
        Ok(actions)
    }
}

/// The `txn` version of `app_id` in the table's snapshot. (A free function: a future that
/// holds `&Table` across an await could not move between threads.)
async fn txn_version(table: &DeltaTable, app_id: String) -> Result<Option<i64>, TableError> {
    let log = table.log_store();
    Ok(table
        .snapshot()?
        .transaction_version(log.as_ref(), app_id)
        .await?)
}

/// Finishes a window's open files.
async fn seal(window: &mut Window) -> Result<(), TableError> {
    if let Some(mut writer) = window.writer.take() {
        window.adds.extend(writer.flush().await?);
    }
    window.open_rows = 0;
    Ok(())
}

/// The table's data columns (its schema without the partition columns).
pub(super) fn data_schema(table: &DeltaTable) -> Result<SchemaRef, DeltaTableError> {
    let kernel = table.snapshot()?.schema();
    let full: Schema = kernel.as_ref().try_into_arrow()?;
    Ok(conform::without_partitions(&full))
}

/// Creates the table: `first`'s columns, partitioned by date and hour.
async fn create(table: &DeltaTable, first: &Schema, s: &Settings) -> Result<(), TableError> {
    conform::check_names(first).map_err(TableError::Rule)?;
    let full = conform::with_partitions(&conform::initial(first));
    let kernel: StructType = full.as_ref().try_into_kernel()?;
    table
        .create()
        .with_columns(kernel.fields().cloned())
        .with_partition_columns(PARTITION_COLUMNS)
        .with_save_mode(SaveMode::Ignore)
        .with_configuration_property(
            TableProperty::CheckpointInterval,
            Some(s.checkpoint_interval.max(1).to_string()),
        )
        .await?;
    Ok(())
}

/// A writer of files with the table's columns `data` (and partition columns).
fn writer(url: &Url, data: &SchemaRef, s: &Settings) -> Result<RecordBatchWriter, TableError> {
    let full = conform::with_partitions(data);
    let partitions = Some(PARTITION_COLUMNS.map(String::from).to_vec());
    Ok(
        RecordBatchWriter::try_new(url.as_str(), full, partitions, Some(s.options.clone()))?
            .with_target_file_size(s.max_bytes)
            .with_writer_properties(crate::parquet::writer::properties(s.compression)),
    )
}
