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
//! The folder is chosen in this order: `BERTH_RUNROOT`; `/run/berth/KEY` when `/run` is a
//! tmpfs; `$XDG_RUNTIME_DIR/berth/KEY`; `/dev/shm/berth-UID/KEY`; else `ROOT/run`. KEY names
//! the store's root folder (its device and inode), so every process using one store, whatever
//! path it was given, agrees on the folder, and two stores never share one.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The environment variable that sets the run root.
pub const ENV: &str = "BERTH_RUNROOT";

/// Picks the run root of the store at `root`.
pub fn choose(root: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os(ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    #[cfg(target_os = "linux")]
    if let Some(dir) = linux::on_tmpfs(root) {
        return dir;
    }
    root.join("run")
}

/// Creates `dir` (and its parents) if missing, readable by its owner only.
pub fn create_private(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match builder.create(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                fs::create_dir_all(parent)?;
            }
            match builder.create(dir) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
                _ => Ok(()),
            }
        }
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    use std::path::{Path, PathBuf};

    /// A folder for this store under a tmpfs this user owns a part of, if there is one.
    pub fn on_tmpfs(root: &Path) -> Option<PathBuf> {
        let meta = std::fs::metadata(root).ok()?;
        let key = format!("{:x}-{:x}", meta.dev(), meta.ino());
        let uid = rustix::process::geteuid();
        let mut bases: Vec<PathBuf> = Vec::new();
        if uid.is_root() {
            bases.push("/run/berth".into());
        }
        if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
            bases.push(PathBuf::from(x).join("berth"));
        }
        bases.push(format!("/dev/shm/berth-{}", uid.as_raw()).into());
        bases
            .into_iter()
            .find(|base| base.parent().is_some_and(is_tmpfs) && owned_by_us(base, uid))
            .map(|base| base.join(key))
    }

    fn is_tmpfs(dir: &Path) -> bool {
        nix::sys::statfs::statfs(dir)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
    }

    /// Makes `base` if missing and checks that it is a real folder of this user that no one
    /// else may write: `/dev/shm` is everyone's, and a folder someone else made there first
    /// must not receive our containers' files.
    fn owned_by_us(base: &Path, uid: rustix::process::Uid) -> bool {
        let _ = std::fs::DirBuilder::new().mode(0o711).create(base);
        let Ok(meta) = std::fs::symlink_metadata(base) else {
            return false;
        };
        if !meta.is_dir() || meta.uid() != uid.as_raw() {
            return false;
        }
        if meta.mode() & 0o022 != 0 {
            return std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o711)).is_ok();
        }
        true
    }
}
