//! An image's init layer, as Docker's `-init` layer: the mount points a container's start mounts
//! on when the image lacks them (`/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`, and for a
//! native container `/proc`, `/dev` and `/sys`), made once per image and shared, read-only, by
//! its containers as their top lower layer. Without it, every start made them in its writable
//! layer: up to seven new inodes through overlayfs on the start's path, and entries in the
//! container's layer that were never its own.
//!
//! It is `init-layers/<key>` in the store, the key naming the image's layers and the kind of
//! container: a folder, or an empty file when the image needs none (it has every mount point).
//! An `/etc` that a folder above would change (a symlink, a file, or a folder with extended
//! attributes such as an ACL) is left out: the start then makes what is missing there in the
//! writable layer, as before. The garbage collection removes the layers no image names.

use std::path::Path;
#[cfg(target_os = "linux")]
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

/// The folder of init layers, under the store's root.
pub const DIR_NAME: &str = "init-layers";

/// The files of `/etc` a container's start binds over.
pub const ETC_MOUNT_POINTS: [&str; 3] = ["hostname", "hosts", "resolv.conf"];

/// The folders of `/` a native container's start mounts the kernel's file systems on (a WASI
/// guest gets none).
pub const SYSTEM_MOUNT_POINTS: [&str; 3] = ["proc", "dev", "sys"];

/// Prefix of an init layer being made (see [`ensure`]).
pub const MAKING: &str = ".making";

/// The init layer's name for an image with `layers` (diff_ids, bottom first), for native
/// containers or WASI guests.
pub fn key(layers: &[Digest], native: bool) -> String {
    let mut h = Sha256::new();
    // Another set of mount points is another layer.
    h.update(b"berth init layer 1: etc/hostname etc/hosts etc/resolv.conf");
    if native {
        h.update(b" proc dev sys");
    }
    for l in layers {
        h.update(b"\n");
        h.update(l.to_string().as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

/// The init layer in the store rooted at `root` of an image with `layers` (bottom first),
/// whose snapshots are `lowerdirs` (top first, as overlayfs takes them), for native
/// containers or WASI guests, made if missing. `None` when the image needs none, or it could
/// not be made (the start then makes the mount points itself).
#[cfg(target_os = "linux")]
pub fn ensure(
    root: &Path,
    layers: &[Digest],
    lowerdirs: &[PathBuf],
    native: bool,
) -> Option<PathBuf> {
    let dir = root.join(DIR_NAME);
    let path = dir.join(key(layers, native));
    // One lookup at each start once it is made.
    match std::fs::symlink_metadata(&path) {
        Ok(m) => return m.is_dir().then_some(path),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return None,
        Err(_) => {}
    }
    match make(&dir, &path, lowerdirs, native) {
        Ok(made) => made,
        Err(e) => {
            tracing::debug!("not making the init layer {}: {e}", path.display());
            None
        }
    }
}

/// What the image has in one folder, as overlayfs would merge its layers.
#[cfg(target_os = "linux")]
struct Merged {
    /// The topmost folder's metadata (the merged folder's), if there is one.
    folder: Option<std::fs::Metadata>,
    /// Whether it is something a folder above would change: a symlink, a file, or a folder
    /// with extended attributes of its own (an ACL, a label), which the one above would not
    /// have.
    not_a_folder: bool,
    /// Which of the names asked for the merged folder holds (any kind of entry).
    present: Vec<bool>,
}

/// Reads `folder` (a name in `/`, or `/` itself with `None`) of the layers `lowerdirs` (top
/// first) for `names`: the highest layer's entry wins, a whiteout hides what is below, and an
/// opaque folder hides the folders below.
#[cfg(target_os = "linux")]
fn merged(lowerdirs: &[PathBuf], folder: Option<&str>, names: &[&str]) -> std::io::Result<Merged> {
    use cap_fs_ext::DirExt as _;
    use cap_std::ambient_authority;
    use cap_std::fs::{Dir, FileTypeExt as _, MetadataExt as _};
    let whiteout = |m: &cap_std::fs::Metadata| m.file_type().is_char_device() && m.rdev() == 0;
    let mut out = Merged {
        folder: None,
        not_a_folder: false,
        present: vec![false; names.len()],
    };
    // Which names a higher layer decided (present or whited out).
    let mut decided = vec![false; names.len()];
    for lower in lowerdirs {
        let layer = Dir::open_ambient_dir(lower, ambient_authority())?;
        let dir = match folder {
            None => layer,
            Some(f) => {
                let m = match layer.symlink_metadata(f) {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                if whiteout(&m) {
                    break;
                }
                if !m.is_dir() {
                    // Only the topmost entry counts: a file or symlink below a folder is hidden.
                    out.not_a_folder = out.folder.is_none();
                    break;
                }
                if out.folder.is_none() {
                    out.folder = Some(std::fs::symlink_metadata(lower.join(f))?);
                    if has_own_xattrs(&lower.join(f)) {
                        out.not_a_folder = true;
                        break;
                    }
                }
                layer.open_dir_nofollow(f)?
            }
        };
        for (i, name) in names.iter().enumerate() {
            if decided[i] {
                continue;
            }
            match dir.symlink_metadata(name) {
                Ok(m) => {
                    decided[i] = true;
                    out.present[i] = !whiteout(&m);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        // By path: the folder's handle is an O_PATH one, which has no xattrs to read.
        let mut v = [0u8; 1];
        let opaque = folder.is_some_and(|f| {
            rustix::fs::lgetxattr(lower.join(f), "trusted.overlay.opaque", &mut v)
                .is_ok_and(|n| n == 1 && v[0] == b'y')
        });
        if opaque {
            break;
        }
    }
    Ok(out)
}

/// Whether the folder `path` has extended attributes other than overlayfs' own.
#[cfg(target_os = "linux")]
fn has_own_xattrs(path: &Path) -> bool {
    let mut names = vec![0u8; 4096];
    match rustix::fs::llistxattr(path, &mut names) {
        Ok(n) => names[..n]
            .split(|&b| b == 0)
            .any(|name| !name.is_empty() && !name.starts_with(b"trusted.overlay.")),
        // A file system without them has none; too many to list is some.
        Err(rustix::io::Errno::OPNOTSUPP) => false,
        Err(_) => true,
    }
}

/// Makes the init layer `path` in `dir`: staged in a folder of its own, renamed into place,
/// so a start never sees half of one, and two starts making it at once agree.
#[cfg(target_os = "linux")]
fn make(
    dir: &Path,
    path: &Path,
    lowerdirs: &[PathBuf],
    native: bool,
) -> std::io::Result<Option<PathBuf>> {
    use cap_fs_ext::DirExt as _;
    use cap_std::ambient_authority;
    use cap_std::fs::{Dir, DirBuilder, DirBuilderExt as _, OpenOptions, OpenOptionsExt as _};
    use rustix::fs::{AtFlags, Mode, Timespec, Timestamps};
    use std::os::unix::fs::MetadataExt as _;
    let etc = merged(lowerdirs, Some("etc"), &ETC_MOUNT_POINTS)?;
    let etc_needed = !etc.not_a_folder && etc.present.contains(&false);
    let system: &[&str] = if native { &SYSTEM_MOUNT_POINTS } else { &[] };
    let top = merged(lowerdirs, None, system)?;
    let needed = etc_needed || top.present.contains(&false);
    std::fs::create_dir_all(dir)?;
    let staging = crate::store::atomic::temp_path(dir, MAKING);
    let made = (|| {
        if !needed {
            // Remembered as an empty file: the next start looks no further.
            std::fs::File::create(&staging)?;
            return Ok(());
        }
        std::fs::create_dir(&staging)?;
        let layer = Dir::open_ambient_dir(&staging, ambient_authority())?;
        for (name, _) in system.iter().zip(&top.present).filter(|(_, p)| !**p) {
            layer.create_dir_with(name, DirBuilder::new().mode(0o755))?;
            rustix::fs::chmodat(&layer, *name, Mode::from_raw_mode(0o755), AtFlags::empty())?;
        }
        if !etc_needed {
            return Ok(());
        }
        layer.create_dir_with("etc", DirBuilder::new().mode(0o755))?;
        let sub = layer.open_dir_nofollow("etc")?;
        for (name, _) in ETC_MOUNT_POINTS
            .iter()
            .zip(etc.present)
            .filter(|(_, present)| !present)
        {
            sub.open_with(
                name,
                OpenOptions::new().write(true).create_new(true).mode(0o644),
            )?;
            // Whatever the umask.
            rustix::fs::chmodat(&sub, *name, Mode::from_raw_mode(0o644), AtFlags::empty())?;
        }
        // The merged /etc takes this folder's owner, mode and times: the image's own (the
        // owner first: a chown clears the set-id bits).
        if let Some(m) = &etc.folder {
            let (uid, gid) = (
                rustix::fs::Uid::from_raw(m.uid()),
                rustix::fs::Gid::from_raw(m.gid()),
            );
            rustix::fs::chownat(
                &layer,
                "etc",
                Some(uid),
                Some(gid),
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
        }
        let mode = etc.folder.as_ref().map_or(0o755, |m| m.mode() & 0o7777);
        rustix::fs::chmodat(&layer, "etc", Mode::from_raw_mode(mode), AtFlags::empty())?;
        if let Some(m) = &etc.folder {
            let time = |s: i64, ns: i64| Timespec {
                tv_sec: s,
                tv_nsec: ns as _,
            };
            let times = Timestamps {
                last_access: time(m.atime(), m.atime_nsec()),
                last_modification: time(m.mtime(), m.mtime_nsec()),
            };
            rustix::fs::utimensat(&layer, "etc", &times, AtFlags::SYMLINK_NOFOLLOW)?;
        }
        Ok(())
    })();
    let placed = made.and_then(|()| std::fs::rename(&staging, path));
    if let Err(e) = placed {
        let _ = crate::store::remove_tree(&staging);
        let _ = std::fs::remove_file(&staging);
        // Another start made it first.
        if std::fs::symlink_metadata(path).is_err() {
            return Err(e);
        }
    }
    Ok(std::fs::symlink_metadata(path)?
        .is_dir()
        .then(|| path.to_path_buf()))
}

/// Removes the init layers of `dir` (the store's [`DIR_NAME`] folder) whose key is not in
/// `keep`, and those left half made for a minute (a start that died making one).
pub fn collect_garbage(dir: &Path, keep: &std::collections::BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let stale = if name.starts_with(MAKING) {
            e.metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 60)
        } else {
            !keep.contains(&name)
        };
        if stale {
            let p = e.path();
            if crate::store::remove_tree(&p).is_err() {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}
