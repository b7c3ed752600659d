//! One Parquet file being written: temporary name until `finish` renames it into place.

use super::partition::PartitionKey;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as PqCompression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use sluice_config::Compression;
use std::fs::File;
use std::path::{Path, PathBuf};

pub struct OpenFile {
    dir: PathBuf,
    tmp_path: PathBuf,
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
    name.starts_with('.') && name.ends_with(".parquet.tmp")
}

fn properties(c: Compression) -> WriterProperties {
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
        dir: &Path,
        key: &PartitionKey,
        schema: SchemaRef,
        first_offset: i64,
        compression: Compression,
    ) -> Result<Self, WriteError> {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let tmp_path = dir.join(format!(
            ".part-p{}-o{first_offset}-{}.parquet.tmp",
            key.partition,
            std::process::id()
        ));
        let file = File::create(&tmp_path).map_err(io("create", &tmp_path))?;
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(properties(compression)))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            tmp_path,
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

    /// Footer, fsync, rename into place, fsync the directory. Returns the final path.
    pub fn finish(mut self) -> Result<PathBuf, WriteError> {
        self.writer.finish()?;
        self.writer
            .inner()
            .sync_all()
            .map_err(io("fsync", &self.tmp_path))?;
        let final_path = self.dir.join(format!(
            "part-p{}-o{}-{}.parquet",
            self.partition, self.first_offset, self.last_offset
        ));
        sluice_common::fs::rename_durably(&self.tmp_path, &final_path)
            .map_err(io("rename to", &final_path))?;
        Ok(final_path)
    }
}
