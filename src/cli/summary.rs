//! What a run wrote: Parquet files and rows per rule, read back from the files' footers.

use parquet::file::reader::{FileReader, SerializedFileReader};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Files and rows under one rule's directory.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RuleFiles {
    pub files: u64,
    pub rows: u64,
}

/// Every finished `*.parquet` file under `root` (temporary files excluded), sorted.
pub fn parquet_files(root: &Path) -> Vec<PathBuf> {
    sluice_common::fs::files_under(root)
        .into_iter()
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            name.ends_with(".parquet") && !name.starts_with('.')
        })
        .collect()
}

/// The `rule=<name>` component of a path, if any.
pub fn rule_of(path: &Path) -> Option<String> {
    path.components()
        .filter_map(|c| c.as_os_str().to_str())
        .find_map(|c| c.strip_prefix("rule=").map(str::to_string))
}

/// Rows and files per rule under `root`, from the Parquet footers.
pub fn rows_per_rule(root: &Path) -> anyhow::Result<BTreeMap<String, RuleFiles>> {
    let mut out: BTreeMap<String, RuleFiles> = BTreeMap::new();
    for path in parquet_files(root) {
        let reader = SerializedFileReader::new(std::fs::File::open(&path)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let rows = reader.metadata().file_metadata().num_rows() as u64;
        let entry = out.entry(rule_of(&path).unwrap_or_default()).or_default();
        entry.files += 1;
        entry.rows += rows;
    }
    Ok(out)
}
