//! File chores: replacing a file so a crash leaves the old or the new content, and listing
//! the files under a directory.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` so a reader sees the old or the new content, never a mix:
/// temporary file, fsync, [`rename_durably`].
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_dir_durably(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    rename_durably(&tmp, path)
}

/// Renames a complete, fsynced file into place and fsyncs the directory, so the new name
/// survives a power cut before anything (an offset commit) relies on it.
pub fn rename_durably(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::rename(from, to)?;
    let dir = to.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

/// Creates `dir` and any missing parents, fsyncing each parent a new directory was created
/// in: a file renamed into a new directory survives a power cut only if the directory's own
/// entry does.
pub fn create_dir_durably(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        create_dir_durably(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        // Another writer (a second router on the same root) made it first: also fine.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    std::fs::File::open(parent.unwrap_or(Path::new(".")))?.sync_all()
}

/// Every regular file below `root`, in a stable (sorted) order; unreadable entries and a
/// missing root are skipped.
pub fn files_under(root: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(walkdir::DirEntry::into_path)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("sluice-fs-{}", std::process::id()));
        let path = dir.join("sub/state.json");
        atomic_write(&path, b"one").unwrap();
        atomic_write(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(files_under(&dir), vec![path]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn create_dir_durably_makes_every_missing_level() {
        let dir = std::env::temp_dir().join(format!("sluice-mkdir-{}", std::process::id()));
        let deep = dir.join("a/b/c");
        create_dir_durably(&deep).unwrap();
        create_dir_durably(&deep).unwrap();
        assert!(deep.is_dir());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
