//! Network namespaces made ahead. Making one is most of the kernel's share of a container's
//! start (about half a millisecond here: every protocol's per-namespace setup), so the init of
//! a `--rm` container, once its container has ended and its cleanup is background work, makes
//! one for the next container, which takes it instead of making its own. This moves the work
//! off the next start's path; it is not less work.
//!
//! A spare is a fresh namespace, made from the host's (`lo` up, nothing else), kept alive by a
//! bind mount of its nsfs file on `<run root>/netns/spare-N` (root's alone), with a ticket
//! beside it, `spare-N.ticket`, holding the namespace's inode number. One waits at most. A
//! start takes a spare by unlinking its ticket: a file is unlinked once, whatever mount
//! namespace the unlinking process is in (a copy of the bind mount in another mount namespace
//! is no second claim), so no two containers ever share one. The taker then opens the
//! namespace, checks its inode against the ticket's, and unmounts it.
//!
//! A copy of the mount that another mount namespace made while a spare waited keeps that
//! namespace alive (unused) as long as the copy lives: a container's copy goes when PID 1
//! detaches the host's tree in its pivot, except under `--userns` (copied mounts are locked
//! there), where it lives as long as the container. The run root's tmpfs goes at reboot, and
//! `berth system prune` lets the waiting spares go.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};

/// How many spares wait at most: one per start in flight is what a loop of `run --rm` uses.
const KEEP: usize = 1;

fn ticket_of(name: &str) -> Option<&str> {
    name.strip_suffix(".ticket")
        .filter(|n| n.starts_with("spare-"))
}

/// Takes a spare from `dir` for the calling process: the namespace's file, for `setns`.
pub fn take(dir: &Path) -> Option<OwnedFd> {
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(spare) = ticket_of(&name) else {
            continue;
        };
        let ticket = entry.path();
        let Ok(inode) = fs::read_to_string(&ticket) else {
            continue;
        };
        // The claim: only one process unlinks the ticket.
        if fs::remove_file(&ticket).is_err() {
            continue;
        }
        let path = dir.join(spare);
        let ns = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .ok()
            .filter(|f| {
                f.metadata()
                    .is_ok_and(|m| inode.trim().parse() == Ok(m.ino()))
            });
        let _ = nix::mount::umount2(&path, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW);
        let _ = fs::remove_file(&path);
        if let Some(ns) = ns {
            return Some(ns.into());
        }
    }
    None
}

/// Makes a spare in `dir` (made if missing), unless enough wait. The calling process moves into
/// the new namespace, made from `host_net` (the host's network namespace: a new namespace
/// may inherit settings from the one it is made in), so only a process done with its own
/// calls this; it must be in the host's mount namespace, where the next container's init
/// looks.
pub fn make(dir: &Path, host_net: &fs::File) -> io::Result<()> {
    crate::store::make_dir(dir, 0o700)?;
    let waiting = fs::read_dir(dir)?
        .flatten()
        .filter(|e| ticket_of(&e.file_name().to_string_lossy()).is_some())
        .count();
    if waiting >= KEEP {
        return Ok(());
    }
    nix::sched::setns(host_net, nix::sched::CloneFlags::CLONE_NEWNET)?;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
    crate::network::loopback::bring_up_loopback().map_err(io::Error::other)?;
    let n: u64 = rand::random();
    let path = dir.join(format!("spare-{n:016x}"));
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    let made = nix::mount::mount(
        Some("/proc/self/ns/net"),
        &path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(io::Error::from)
    .and_then(|()| {
        let inode = fs::metadata(&path)?.ino();
        // Last, and whole (written aside, then renamed): a ticket names a spare ready to take.
        let tmp = dir.join(format!(".ticket-{n:016x}"));
        fs::write(&tmp, inode.to_string())?;
        fs::rename(&tmp, dir.join(format!("spare-{n:016x}.ticket")))
    });
    if made.is_err() {
        let _ = nix::mount::umount2(&path, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW);
        let _ = fs::remove_file(&path);
    }
    made
}

/// Lets every spare of `dir` go (`berth system prune`, and before a run root is removed).
pub fn release_all(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with("spare-") {
            let _ = nix::mount::umount2(&path, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW);
        }
        let _ = fs::remove_file(path);
    }
}
