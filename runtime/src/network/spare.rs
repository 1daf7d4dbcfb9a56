//! Network namespaces made ahead. Making one is most of the kernel's share of a container's
//! start (about half a millisecond here: every protocol's per-namespace setup), so the init of
//! a `--rm` container, once its container has ended and its cleanup is background work, makes
//! one for the next container, which takes it instead of making its own.
//!
//! A spare is a fresh namespace (`lo` up, nothing else) kept alive by a bind mount of its nsfs
//! file on a file of the spares folder, `<run root>/netns` (root's alone). One waits at most. A
//! start takes a spare by opening it, then unmounting it: only the process whose unmount
//! succeeds uses it (another that opened it meanwhile lets it go), so no two containers ever
//! share one. A copy of the mount that a container's mount namespace got when it was made goes
//! when PID 1 detaches the host's tree in its pivot. The run root's tmpfs goes at reboot, and
//! `berth system prune` lets the waiting spares go.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};

/// How many spares wait at most: one per start in flight is what a loop of `run --rm` uses.
const KEEP: usize = 1;

/// nsfs' magic number (`statfs`): the file is a namespace's, not the plain file it was
/// mounted on.
const NSFS_MAGIC: u64 = 0x6e73_6673;

fn is_spare(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|n| n.starts_with("spare-"))
}

/// Whether `file` is a mounted namespace file (else the plain file left under a spare).
fn is_namespace(file: &fs::File) -> bool {
    rustix::fs::fstatfs(file).is_ok_and(|s| s.f_type as u64 == NSFS_MAGIC)
}

/// Takes a spare from `dir` for the calling process: the namespace's file, for `setns`.
pub fn take(dir: &Path) -> Option<OwnedFd> {
    for entry in fs::read_dir(dir).ok()?.flatten() {
        if !is_spare(&entry.file_name()) {
            continue;
        }
        let path = entry.path();
        let Ok(file) = fs::File::open(&path) else {
            continue;
        };
        if !is_namespace(&file) {
            continue;
        }
        // Only one taker's unmount succeeds: the spare is that one's alone.
        if nix::mount::umount2(&path, MntFlags::MNT_DETACH).is_ok() {
            let _ = fs::remove_file(&path);
            return Some(file.into());
        }
    }
    None
}

/// Makes a spare in `dir` (made if missing), unless enough wait. The calling process moves into
/// the new namespace, so only a process done with its own calls this; it must be in the host's
/// mount namespace, where the next container's init looks.
pub fn make(dir: &Path) -> io::Result<()> {
    match fs::metadata(dir) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => crate::store::make_dir(dir, 0o700)?,
        Err(e) => return Err(e),
    }
    let mut waiting = 0;
    for entry in fs::read_dir(dir)?.flatten() {
        if !is_spare(&entry.file_name()) {
            continue;
        }
        if fs::File::open(entry.path()).is_ok_and(|f| is_namespace(&f)) {
            waiting += 1;
        } else {
            // Left by a reboot (a run root that is not a tmpfs) or a maker that died.
            let _ = fs::remove_file(entry.path());
        }
    }
    if waiting >= KEEP {
        return Ok(());
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
    crate::network::loopback::bring_up_loopback().map_err(io::Error::other)?;
    let n: u64 = rand::random();
    let path = dir.join(format!("spare-{n:016x}"));
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    let pinned = nix::mount::mount(
        Some("/proc/self/ns/net"),
        &path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    );
    if let Err(e) = pinned {
        let _ = fs::remove_file(&path);
        return Err(e.into());
    }
    Ok(())
}

/// Lets every spare of `dir` go (`berth system prune`, and before a run root is removed).
pub fn release_all(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if is_spare(&entry.file_name()) {
            let _ = nix::mount::umount2(&entry.path(), MntFlags::MNT_DETACH);
            let _ = fs::remove_file(entry.path());
        }
    }
}
