//! User namespaces for `--userns`: the container's root is an unprivileged range of host ids.
//!
//! The image's layer snapshots belong to host root; they reach the container through
//! idmapped mounts, so inside they still belong to its root while on the host nothing is
//! owned by root that the container can write. The writable layer belongs to the mapped root.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::sched::CloneFlags;
use nix::unistd::ForkResult;

/// The host ids container root and its users map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    /// Host uid of container uid 0.
    pub uid: u32,
    /// Host gid of container gid 0.
    pub gid: u32,
    /// How many ids are mapped.
    pub size: u32,
}

/// The mapping for root's containers: the `root` entries of /etc/subuid and /etc/subgid, else
/// 100000 and 65536 ids, as Docker's and Podman's defaults.
pub fn default_map() -> IdMap {
    let read = |file: &str| -> Option<(u32, u32)> {
        let text = std::fs::read_to_string(file).ok()?;
        text.lines().find_map(|l| {
            let mut f = l.split(':');
            (f.next()? == "root").then_some(())?;
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
    };
    let (uid, usize) = read("/etc/subuid").unwrap_or((100_000, 65_536));
    let (gid, gsize) = read("/etc/subgid").unwrap_or((100_000, 65_536));
    IdMap {
        uid,
        gid,
        size: usize.min(gsize),
    }
}

/// Makes a user namespace with `map` and returns a handle to it. A child process creates it
/// and is gone before this returns; the handle keeps the namespace alive.
///
/// Call only from a single-threaded process (it forks).
pub fn create(map: &IdMap) -> io::Result<OwnedFd> {
    let (ready_r, ready_w) = nix::unistd::pipe()?;
    let (go_r, go_w) = nix::unistd::pipe()?;
    // SAFETY: the caller is single-threaded (`__init`), so the child may run any code.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Child => {
            drop(ready_r);
            drop(go_w);
            let ok = nix::sched::unshare(CloneFlags::CLONE_NEWUSER).is_ok();
            let _ = File::from(ready_w).write_all(if ok { b"1" } else { b"0" });
            // Wait until the parent has the namespace open.
            let _ = File::from(go_r).read(&mut [0u8; 1]);
            std::process::exit(0)
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            drop(go_r);
            let mut b = [0u8; 1];
            let result = (|| {
                File::from(ready_r).read_exact(&mut b)?;
                if b[0] != b'1' {
                    return Err(io::Error::other("the kernel refused a new user namespace"));
                }
                std::fs::write(
                    format!("/proc/{child}/uid_map"),
                    format!("0 {} {}\n", map.uid, map.size),
                )?;
                std::fs::write(
                    format!("/proc/{child}/gid_map"),
                    format!("0 {} {}\n", map.gid, map.size),
                )?;
                Ok(OwnedFd::from(File::open(format!("/proc/{child}/ns/user"))?))
            })();
            drop(go_w);
            let _ = nix::sys::wait::waitpid(child, None);
            result
        }
    }
}

/// Mounts `source` at `target` shifted through `userns`: files owned by host uid 0 appear as
/// the namespace's uid 0.
pub fn idmapped_mount(source: &Path, target: &Path, userns: BorrowedFd<'_>) -> io::Result<()> {
    use rustix::mount::{MoveMountFlags, OpenTreeFlags};
    let tree = rustix::mount::open_tree(
        rustix::fs::CWD,
        source,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )?;
    super::rootfs::set_mount_attr(
        tree.as_fd(),
        super::rootfs::MOUNT_ATTR_IDMAP,
        false,
        Some(userns.as_raw_fd()),
    )?;
    rustix::mount::move_mount(
        tree.as_fd(),
        c"",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    Ok(())
}

/// Joins `userns` as its root. Call only from a single-threaded process.
pub fn enter(userns: &OwnedFd) -> nix::Result<()> {
    nix::sched::setns(userns, CloneFlags::CLONE_NEWUSER)?;
    let root_g = nix::unistd::Gid::from_raw(0);
    let root_u = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresgid(root_g, root_g, root_g)?;
    nix::unistd::setresuid(root_u, root_u, root_u)?;
    Ok(())
}
