//! One Parquet file being written, in the store's local root. `finish` writes the footer and
//! fsyncs it under its temporary name; the store stages it and publishes it once the
//! partition's ledger names it (see [`super::ledger`]).

use super::partition::PartitionKey;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as PqCompression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use sluice_config::Compression;
use std::fs::File;
use std::path::{Path, PathBuf};

/// A complete, fsynced file still under its temporary name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Finished {
    /// Both relative to the sink's root: the staged name, and the name readers see.
    pub tmp: PathBuf,
    #[serde(rename = "final")]
    pub final_name: PathBuf,
    // What the checkpoint reports once the file is published.
    #[serde(skip)]
    pub rule: String,
    #[serde(skip)]
    pub rows: u64,
    /// Footer plus fsync.
    #[serde(skip)]
    pub took: std::time::Duration,
}

/// A name part no other file gets ([`sluice_common::fs::unique_id`]). Offsets alone do not
/// make a name unique: an error action writing the same offsets as the rule's own action
/// (#24.8), and rows from no Kafka record (failed alerts, offsets -1, #24.3), would replace
/// each other's files.
fn unique_file_id() -> String {
    sluice_common::fs::unique_id()
}

pub struct OpenFile {
    root: PathBuf,
    dir: PathBuf,
    tmp_path: PathBuf,
    /// [`unique_file_id`], shared by the temporary and the final name.
    id: String,
    rule: String,
    partition: i32,
    first_offset: i64,
    last_offset: i64,
    rows: u64,
    schema: SchemaRef,
    writer: ArrowWriter<File>,
}

/// A Parquet file that could not be written; the sink reports it as a [`crate::SinkError`].
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> WriteError {
    let path = path.to_path_buf();
    move |source| WriteError::Io {
        action,
        path,
        source,
    }
}

pub fn is_temporary(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.starts_with(".part-p") && name.ends_with(".parquet.tmp")
}

/// The Kafka partition a temporary file holds rows of (`.part-p<partition>-…`).
pub fn temporary_partition(path: &Path) -> Option<i32> {
    if !is_temporary(path) {
        return None;
    }
    let name = path.file_name()?.to_str()?;
    name.strip_prefix(".part-p")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

pub(crate) fn properties(c: Compression) -> WriterProperties {
    let compression = match c {
        // Level 3 is zstd's default: a good ratio at a few hundred MB/s.
        Compression::Zstd => PqCompression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()),
        Compression::Snappy => PqCompression::SNAPPY,
        Compression::None => PqCompression::UNCOMPRESSED,
    };
    WriterProperties::builder()
        .set_compression(compression)
        .set_created_by("sluice".into())
        .build()
}

impl OpenFile {
    pub fn create(
        root: &Path,
        dir: &Path,
        key: &PartitionKey,
        schema: SchemaRef,
        first_offset: i64,
        compression: Compression,
    ) -> Result<Self, WriteError> {
        sluice_common::fs::create_dir_durably(dir).map_err(io("create", dir))?;
        let id = unique_file_id();
        let tmp_path = dir.join(format!(
            ".part-p{}-o{first_offset}-{id}.parquet.tmp",
            key.partition,
        ));
        let file = File::create(&tmp_path).map_err(io("create", &tmp_path))?;
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(properties(compression)))?;
        Ok(Self {
            root: root.to_path_buf(),
            dir: dir.to_path_buf(),
            tmp_path,
            id,
            rule: key.rule.clone(),
            partition: key.partition,
            first_offset,
            last_offset: first_offset,
            rows: 0,
            schema,
            writer,
        })
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn bytes(&self) -> usize {
        self.writer.bytes_written() + self.writer.in_progress_size()
    }

    pub fn write(&mut self, batch: &RecordBatch, last_offset: i64) -> Result<(), WriteError> {
        self.writer.write(batch)?;
        self.rows += batch.num_rows() as u64;
        self.last_offset = self.last_offset.max(last_offset);
        Ok(())
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Footer and fsync, still under the temporary name.
    pub fn finish(mut self) -> Result<Finished, WriteError> {
        let started = std::time::Instant::now();
        self.writer.finish()?;
        self.writer
            .inner()
            .sync_all()
            .map_err(io("fsync", &self.tmp_path))?;
        let final_path = self.dir.join(format!(
            "part-p{}-o{}-{}-{}.parquet",
            self.partition, self.first_offset, self.last_offset, self.id
        ));
        let relative = |p: &Path| p.strip_prefix(&self.root).unwrap_or(p).to_path_buf();
        Ok(Finished {
            tmp: relative(&self.tmp_path),
            final_name: relative(&final_path),
            rule: self.rule,
            rows: self.rows,
            took: started.elapsed(),
        })
    }

    /// Gives up the file (its partition was revoked): the new owner writes these rows.
    pub fn discard(self) {
        drop(self.writer);
        let _ = std::fs::remove_file(&self.tmp_path);
    }
}
