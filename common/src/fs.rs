//! File chores: replacing a file so a crash leaves the old or the new content, and listing
//! the files under a directory.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` so a reader sees the old or the new content, never a mix:
/// temporary file, fsync, [`rename_durably`]. The temporary file's name is the writer's own
/// ([`unique_id`]): two writers of one path (a router that missed its revocation and the
/// partition's new owner, #24.9) each rename a whole file, never one the other is writing.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_dir_durably(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let tmp = dir.join(format!(".{name}.{}.tmp", unique_id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    rename_durably(&tmp, path)
}

/// A name part no other file of any process gets: a random number drawn once per process
/// (pids repeat — pid 1 in every container sharing a volume or a bucket) and a counter.
pub fn unique_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static PROCESS: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let process = *PROCESS.get_or_init(|| {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish() as u32
    });
    format!("{process:08x}{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
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

    /// #24.9: with one fixed temporary name, a second writer truncated the first one's file
    /// mid-write and one of the renames failed (the other had moved the file away).
    #[test]
    fn two_writers_of_one_path_each_replace_it_whole() {
        let dir = std::env::temp_dir().join(format!("sluice-fs2-{}", std::process::id()));
        let path = dir.join("ledger.json");
        let writers: Vec<_> = [b'a', b'b']
            .into_iter()
            .map(|byte| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for _ in 0..300 {
                        atomic_write(&path, &[byte; 64 * 1024])?;
                    }
                    Ok::<_, std::io::Error>(())
                })
            })
            .collect();
        let readers = std::thread::spawn({
            let path = path.clone();
            move || {
                let mut torn = 0;
                for _ in 0..2_000 {
                    if let Ok(b) = std::fs::read(&path) {
                        let whole = b.len() == 64 * 1024 && b.iter().all(|x| *x == b[0]);
                        torn += usize::from(!whole);
                    }
                }
                torn
            }
        });
        for w in writers {
            w.join().unwrap().expect("every write succeeds");
        }
        assert_eq!(readers.join().unwrap(), 0, "a reader saw a torn file");
        assert_eq!(files_under(&dir), vec![path], "no temporary file left");
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
