//! Atomic file writes: a temp file in the store's `tmp/`, fsync, rename over the target, fsync
//! the directory. A reader sees the old file or the new one, never half of either, and a crash
//! leaves at most a temp file that the next start removes.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rand::Rng;

/// A unique name for a temp file or folder in `dir`.
pub fn temp_path(dir: &Path, hint: &str) -> PathBuf {
    temp_path_owned(dir, hint, std::process::id())
}

/// [`temp_path`] for a file that the process `owner` will finish with: no cleanup takes it
/// for a leftover while that process lives.
pub fn temp_path_owned(dir: &Path, hint: &str, owner: u32) -> PathBuf {
    let n: u64 = rand::rng().random();
    dir.join(format!("{hint}-{owner}-{n:016x}"))
}

/// Writes `bytes` to `target` atomically, staging in `tmp_dir` (same filesystem).
pub fn write_atomic(tmp_dir: &Path, target: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(tmp_dir, "write");
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        rename_durable(&tmp, target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `target` atomically but without fsync: readers and a killed process never
/// see half a file, but a power loss may lose the write. For files berth rebuilds or can do
/// without (a container's per-start files, its run state).
pub fn write_atomic_unsynced(tmp_dir: &Path, target: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(tmp_dir, "write");
    let result = fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, target));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Renames `from` to `to` and fsyncs `to`'s directory so the rename survives a crash.
pub fn rename_durable(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)?;
    sync_parent(to)
}

/// Fsyncs the directory holding `path`.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    if let Some(parent) = path.parent() {
        File::open(parent)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
