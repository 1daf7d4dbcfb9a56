//! The run root: where a store keeps what its containers need only while this machine is up
//! (locks, the `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` they are given, the rootfs
//! mount point), as Podman's `--runroot` and containerd's state folder do.
//!
//! It is on a tmpfs when one is usable: every container start would otherwise create and
//! delete half a dozen inodes on the store's disk, and on ext4 without a journal each new inode
//! first skips every inode deleted in the last minutes (`recently_deleted`), which made that
//! bookkeeping cost more than the whole container's start. What must outlive a reboot (the
//! container's state, its log and its writable layer) stays under the store root.
//!
//! The folder is `/run/berth/KEY` when `/run` is a tmpfs and berth runs as root, else
//! `/dev/shm/berth-UID/KEY`, else `ROOT/run`. KEY names the store's root folder (its device and
//! inode), so every process using one store, whatever path it was given, agrees on the folder,
//! and two stores never share one. Nothing in the environment changes the choice: processes
//! that disagreed on it would take their locks in different places.

use std::io;
use std::path::{Path, PathBuf};

/// A store's run root.
#[derive(Debug, Clone)]
pub struct RunRoot {
    /// The folder.
    pub path: PathBuf,
    /// It is on a tmpfs, so it is emptied at every boot.
    pub volatile: bool,
}

/// Picks the run root of the store at `root`.
pub fn choose(root: &Path) -> RunRoot {
    #[cfg(target_os = "linux")]
    if let Some(path) = linux::on_tmpfs(root) {
        return RunRoot {
            path,
            volatile: true,
        };
    }
    RunRoot {
        path: root.join("run"),
        volatile: false,
    }
}

/// Creates `dir` if missing, readable by its owner only, and its parents if missing, which
/// anyone may traverse (a `--userns` container's root must reach its own run folder).
pub fn create_private(dir: &Path) -> io::Result<()> {
    create_all(dir, 0o700)
}

/// Creates `dir` with `mode` and its missing parents with mode 0711, whatever the umask.
fn create_all(dir: &Path, mode: u32) -> io::Result<()> {
    match super::make_dir(dir, mode) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                create_all(parent, 0o711)?;
            }
            super::make_dir(dir, mode)
        }
        done => done,
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::{Path, PathBuf};

    /// A folder for this store under a tmpfs, in a part of it this user owns, if there is one.
    pub fn on_tmpfs(root: &Path) -> Option<PathBuf> {
        let meta = std::fs::metadata(root).ok()?;
        let key = format!("{:x}-{:x}", meta.dev(), meta.ino());
        let uid = rustix::process::geteuid();
        let base: PathBuf = if uid.is_root() && is_tmpfs(Path::new("/run")) {
            "/run/berth".into()
        } else if is_tmpfs(Path::new("/dev/shm")) {
            format!("/dev/shm/berth-{}", uid.as_raw()).into()
        } else {
            return None;
        };
        owned_by_us(&base, uid).then(|| base.join(key))
    }

    fn is_tmpfs(dir: &Path) -> bool {
        nix::sys::statfs::statfs(dir)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
    }

    /// Makes `base` if missing and checks that it is a real folder of this user, 0711: `/dev/shm`
    /// is everyone's, and a folder someone else made there first must not receive our
    /// containers' files (berth then falls back to the store root).
    fn owned_by_us(base: &Path, uid: rustix::process::Uid) -> bool {
        if super::super::make_dir(base, 0o711).is_err() {
            return false;
        }
        let Ok(meta) = std::fs::symlink_metadata(base) else {
            return false;
        };
        if !meta.is_dir() || meta.uid() != uid.as_raw() {
            return false;
        }
        meta.mode() & 0o7777 == 0o711
            || std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o711)).is_ok()
    }
}
