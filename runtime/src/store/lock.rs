//! Advisory file locks that keep concurrent berth processes from corrupting the store.
//!
//! Two locks, always taken in this order:
//! - `gc`: shared by every process that adds content or uses it (import, load, pull, build,
//!   run), exclusive for the one that deletes unreferenced content (rmi, prune). So nothing is
//!   deleted while a writer still holds blobs it has not yet referenced from `index.json`.
//! - `index`: exclusive around each read-modify-write of `index.json`.
//!
//! The kernel drops a lock when its holder dies, so a `kill -9` never leaves the store locked.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct LockGuard {
    _file: File,
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
}

/// Blocks until a shared lock on `path` is held.
pub fn shared(path: &Path) -> io::Result<LockGuard> {
    let file = open(path)?;
    file.lock_shared()?;
    Ok(LockGuard { _file: file })
}

/// Blocks until an exclusive lock on `path` is held.
pub fn exclusive(path: &Path) -> io::Result<LockGuard> {
    let file = open(path)?;
    file.lock()?;
    Ok(LockGuard { _file: file })
}

/// Takes an exclusive lock on `path` if nobody holds it, without waiting.
pub fn try_exclusive(path: &Path) -> io::Result<Option<LockGuard>> {
    let file = open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(LockGuard { _file: file })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}
