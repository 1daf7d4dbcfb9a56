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
//! The end of a container on a bridge makes its spare with a veth pair ahead as well (the
//! kernel's making of the pair is the bridge's share of a start): the container end `eth0`,
//! down, in the spare, and the host end on the bridge, down; its ticket also holds the host
//! end's index and name, and only a start on a bridge takes such a spare (and a start with
//! loopback alone only a plain one: an `eth0` on a bridge is no `--network none`). The taker
//! renames the host end for its container, moves it to its own bridge and brings it up. A
//! spare let go takes its veth with it.
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

/// How many spares of each kind (plain, with a veth) wait at most: one per start in flight is
/// what a loop of `run --rm` uses.
const KEEP: usize = 1;

fn ticket_of(name: &str) -> Option<&str> {
    name.strip_suffix(".ticket")
        .filter(|n| n.starts_with("spare-"))
}

/// A ticket's content: the namespace's inode, then for a spare with a veth the host end's
/// index and name.
struct Ticket {
    inode: u64,
    veth: Option<(u32, String)>,
}

impl Ticket {
    fn parse(text: &str) -> Option<Ticket> {
        let mut words = text.split_whitespace();
        let inode = words.next()?.parse().ok()?;
        let veth = match (words.next(), words.next()) {
            (Some(index), Some(name)) => Some((index.parse().ok()?, name.to_string())),
            _ => None,
        };
        Some(Ticket { inode, veth })
    }
}

/// A spare taken: its namespace's file, for `setns`, and the host end (index, name) of the
/// veth made into it, if any.
pub struct Spare {
    /// The namespace.
    pub ns: OwnedFd,
    /// The host end of its veth.
    pub veth: Option<(u32, String)>,
}

/// Takes a spare from `dir` for the calling process: one with a veth when `with_veth`, else a
/// plain one.
pub fn take(dir: &Path, with_veth: bool) -> Option<Spare> {
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(spare) = ticket_of(&name) else {
            continue;
        };
        let ticket = entry.path();
        let Some(t) = fs::read_to_string(&ticket)
            .ok()
            .and_then(|t| Ticket::parse(&t))
        else {
            continue;
        };
        if t.veth.is_some() != with_veth {
            continue;
        }
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
            .filter(|f| f.metadata().is_ok_and(|m| m.ino() == t.inode));
        let _ = nix::mount::umount2(&path, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW);
        let _ = fs::remove_file(&path);
        if let Some(ns) = ns {
            return Some(Spare {
                ns: ns.into(),
                veth: t.veth,
            });
        }
    }
    None
}

/// Makes a spare in `dir` (made if missing), unless enough of its kind wait; with `bridge`
/// (a bridge's index), with a veth whose host end is on that bridge. The calling process moves
/// into the new namespace, made from `host_net` (the host's network namespace: a new namespace
/// may inherit settings from the one it is made in), so only a process done with its own
/// calls this; it must be in the host's mount namespace, where the next container's init
/// looks.
pub fn make(dir: &Path, host_net: &fs::File, bridge: Option<u32>) -> io::Result<()> {
    crate::store::make_dir(dir, 0o700)?;
    let waiting = fs::read_dir(dir)?
        .flatten()
        .filter(|e| ticket_of(&e.file_name().to_string_lossy()).is_some())
        .filter_map(|e| Ticket::parse(&fs::read_to_string(e.path()).ok()?))
        .filter(|t| t.veth.is_some() == bridge.is_some())
        .count();
    if waiting >= KEEP {
        return Ok(());
    }
    nix::sched::setns(host_net, nix::sched::CloneFlags::CLONE_NEWNET)?;
    let n: u64 = rand::random();
    // Made in the host's namespace, then its container end moved into the new one.
    let pair = bridge.and_then(|b| make_pair(n, b).ok());
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
    crate::network::loopback::bring_up_loopback().map_err(io::Error::other)?;
    let veth = pair.and_then(|(mut nl, host, host_index, peer_index)| {
        let ns = fs::File::open("/proc/thread-self/ns/net").ok()?;
        match nl.move_link(peer_index, std::os::fd::AsFd::as_fd(&ns), "eth0") {
            Ok(()) => Some(format!(" {host_index} {host}")),
            Err(_) => {
                let _ = nl.delete_link_in_host(&host);
                None
            }
        }
    });
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
        fs::write(&tmp, format!("{inode}{}", veth.as_deref().unwrap_or("")))?;
        fs::rename(&tmp, dir.join(format!("spare-{n:016x}.ticket")))
    });
    if made.is_err() {
        let _ = nix::mount::umount2(&path, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW);
        let _ = fs::remove_file(&path);
    }
    made
}

/// A veth pair for spare `n` in the calling thread's (the host's) namespace: the host end on
/// `bridge`; the socket they were made through, the host end's name and index, and the
/// container end's index.
fn make_pair(n: u64, bridge: u32) -> io::Result<(super::netlink::Netlink, String, u32, u32)> {
    let mut nl = super::netlink::Netlink::open()?;
    let (host, peer) = (
        format!("vsp{:012x}", n & 0xffff_ffff_ffff),
        format!("vsq{:012x}", n & 0xffff_ffff_ffff),
    );
    nl.add_veth_pair(&host, bridge, &peer)?;
    let index = |name: &str| {
        super::netlink::link_index(name)?.ok_or_else(|| io::Error::other("the veth vanished"))
    };
    match (index(&host), index(&peer)) {
        (Ok(h), Ok(p)) => Ok((nl, host, h, p)),
        (Err(e), _) | (_, Err(e)) => {
            let _ = nl.delete_link_in_host(&host);
            Err(e)
        }
    }
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
