//! The container's root filesystem, built inside its own mount namespace: an overlay of the
//! image's layer snapshots and a per-container upper dir, with /proc, a minimal /dev, /sys
//! read-only, Docker's masked and read-only paths, the container's mounts and /etc files,
//! then pivot_root into it.
//!
//! Mount targets inside the rootfs are created and opened through cap-std and mounted on
//! through `/proc/self/fd`, so a symlink in the image cannot send a mount outside the rootfs.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use serde::{Deserialize, Serialize};

use crate::workload::{MountKind, MountSpec};

/// Paths Docker hides from containers (bind /dev/null over files, an empty read-only tmpfs
/// over folders).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker makes read-only.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Device nodes a container gets, bound from the host's.
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Where the rootfs comes from, as the monitor prepared it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootfsPlan {
    /// Layer snapshots, top first (overlay's lowerdir order).
    pub lowerdirs: Vec<PathBuf>,
    /// The container's writable layer.
    pub upperdir: PathBuf,
    /// overlayfs' work folder (same filesystem as upperdir).
    pub workdir: PathBuf,
    /// Where the overlay is mounted.
    pub merged: PathBuf,
    /// Files bound over /etc/hostname, /etc/hosts, /etc/resolv.conf.
    pub etc_files: Vec<(PathBuf, String)>,
    /// The container's mounts.
    pub mounts: Vec<MountSpec>,
    /// Mount the rootfs read-only.
    pub read_only: bool,
    /// `--privileged`: /sys writable, no masked paths.
    pub privileged: bool,
    /// Whether the container has a network namespace of its own (sysfs can then be mounted).
    pub own_netns: bool,
    /// Mount the overlay with `userxattr` (inside a user namespace, where trusted.* xattrs
    /// are out of reach).
    #[serde(default)]
    pub userxattr: bool,
}

/// A mount step that failed.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {cause}")]
pub struct RootfsError {
    what: String,
    cause: String,
}

fn err(what: impl Into<String>, cause: impl std::fmt::Display) -> RootfsError {
    RootfsError {
        what: what.into(),
        cause: cause.to_string(),
    }
}

fn none() -> Option<&'static str> {
    None
}

/// Opens (creating) `path` inside `root` as a folder (or, with `file`, an empty file) and
/// returns a `/proc/self/fd/N` path naming exactly it, plus the handle keeping it open.
/// A symlink anywhere in `path` cannot lead outside `root`.
fn target(
    root: &Dir,
    path: &str,
    file: bool,
) -> Result<(PathBuf, std::os::fd::OwnedFd), RootfsError> {
    use rustix::fs::{Mode, OFlags};
    let rel = path.trim_start_matches('/');
    let what = || format!("preparing mount target {path}");
    if !file {
        let rel = if rel.is_empty() { "." } else { rel };
        root.create_dir_all(rel).map_err(|e| err(what(), e))?;
        let handle: std::os::fd::OwnedFd = root
            .open_dir(rel)
            .map_err(|e| err(what(), e))?
            .into_std_file()
            .into();
        return Ok((
            PathBuf::from(format!("/proc/self/fd/{}", handle.as_raw_fd())),
            handle,
        ));
    }
    // The parent through cap-std; the file itself O_PATH, so write-only and special files
    // (/proc/sysrq-trigger, devices) can be mount targets too.
    let p = Path::new(rel);
    let name = p
        .file_name()
        .ok_or_else(|| err(what(), "not a file path"))?;
    let parent = match p.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => {
            root.create_dir_all(parent).map_err(|e| err(what(), e))?;
            root.open_dir(parent).map_err(|e| err(what(), e))?
        }
        None => root.try_clone().map_err(|e| err(what(), e))?,
    };
    if parent.symlink_metadata(name).is_err() {
        let mut oo = cap_std::fs::OpenOptions::new();
        oo.write(true).create(true);
        parent.open_with(name, &oo).map_err(|e| err(what(), e))?;
    }
    let handle = rustix::fs::openat(
        &parent,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err(what(), e))?;
    Ok((
        PathBuf::from(format!("/proc/self/fd/{}", handle.as_raw_fd())),
        handle,
    ))
}

/// Builds the rootfs at `plan.merged` and pivots into it. Runs in the container's first
/// process, inside its new mount (and pid) namespace.
pub fn build(plan: &RootfsPlan) -> Result<(), RootfsError> {
    // Nothing we mount may propagate back to the host.
    mount(
        none(),
        "/",
        none(),
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        none(),
    )
    .map_err(|e| err("making / private", e))?;

    let lower = plan
        .lowerdirs
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let mut opts = format!(
        "lowerdir={lower},upperdir={},workdir={}",
        plan.upperdir.display(),
        plan.workdir.display()
    );
    if plan.userxattr {
        opts.push_str(",userxattr");
    }
    mount(
        Some("overlay"),
        &plan.merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(opts.as_str()),
    )
    .map_err(|e| {
        err(
            format!("mounting the overlay rootfs at {}", plan.merged.display()),
            e,
        )
    })?;
    let root = Dir::open_ambient_dir(&plan.merged, ambient_authority())
        .map_err(|e| err("opening the rootfs", e))?;

    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let (p, _h) = target(&root, "/proc", false)?;
    mount(Some("proc"), &p, Some("proc"), nosuid_nodev_noexec, none())
        .map_err(|e| err("mounting /proc", e))?;

    let (p, _h) = target(&root, "/dev", false)?;
    mount(
        Some("tmpfs"),
        &p,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .map_err(|e| err("mounting /dev", e))?;
    let dev = root.open_dir("dev").map_err(|e| err("opening /dev", e))?;
    for name in DEVICES {
        let (p, _h) = target(&root, &format!("/dev/{name}"), true)?;
        mount(
            Some(Path::new("/dev").join(name).as_path()),
            &p,
            none(),
            MsFlags::MS_BIND,
            none(),
        )
        .map_err(|e| err(format!("binding /dev/{name}"), e))?;
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
        ("core", "/proc/kcore"),
    ] {
        let _ = dev.symlink_contents(to, link);
    }
    let (p, _h) = target(&root, "/dev/pts", false)?;
    mount(
        Some("devpts"),
        &p,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )
    .or_else(|_| {
        mount(
            Some("devpts"),
            &p,
            Some("devpts"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620"),
        )
    })
    .map_err(|e| err("mounting /dev/pts", e))?;
    let (p, _h) = target(&root, "/dev/shm", false)?;
    mount(
        Some("shm"),
        &p,
        Some("tmpfs"),
        nosuid_nodev_noexec,
        Some("mode=1777,size=65536k"),
    )
    .map_err(|e| err("mounting /dev/shm", e))?;
    let (p, _h) = target(&root, "/dev/mqueue", false)?;
    let _ = mount(
        Some("mqueue"),
        &p,
        Some("mqueue"),
        nosuid_nodev_noexec,
        none(),
    );
    // The console: with a tty, stdin is the pty slave.
    if nix::unistd::isatty(std::io::stdin()).unwrap_or(false)
        && let Ok(tty) = nix::unistd::ttyname(std::io::stdin())
    {
        let (p, _h) = target(&root, "/dev/console", true)?;
        mount(Some(tty.as_path()), &p, none(), MsFlags::MS_BIND, none())
            .map_err(|e| err("binding /dev/console", e))?;
    }

    let (p, _h) = target(&root, "/sys", false)?;
    let sys_flags = if plan.privileged {
        nosuid_nodev_noexec
    } else {
        nosuid_nodev_noexec | MsFlags::MS_RDONLY
    };
    // sysfs can only be mounted in a network namespace of our own; else bind the host's.
    let sysfs = if plan.own_netns {
        mount(Some("sysfs"), &p, Some("sysfs"), sys_flags, none())
    } else {
        Err(nix::Error::EPERM)
    };
    if sysfs.is_err() {
        mount(
            Some("/sys"),
            &p,
            none(),
            MsFlags::MS_BIND | MsFlags::MS_REC,
            none(),
        )
        .map_err(|e| err("binding /sys", e))?;
        if !plan.privileged {
            let _ = mount(
                none(),
                &p,
                none(),
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC,
                none(),
            );
        }
    }

    for m in &plan.mounts {
        mount_one(&root, m)?;
    }
    for (source, dest) in &plan.etc_files {
        let (p, _h) = target(&root, dest, true)?;
        mount(Some(source.as_path()), &p, none(), MsFlags::MS_BIND, none())
            .map_err(|e| err(format!("binding {dest}"), e))?;
    }

    if !plan.privileged {
        for path in MASKED_PATHS {
            mask(&root, path);
        }
        for path in READONLY_PATHS {
            let rel = path.trim_start_matches('/');
            let is_file = root.metadata(rel).is_ok_and(|m| m.is_file());
            if root.exists(rel)
                && let Ok((p, _h)) = target(&root, path, is_file)
                && mount(
                    Some(p.as_path()),
                    &p,
                    none(),
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    none(),
                )
                .is_ok()
            {
                remount_read_only(
                    &root,
                    path,
                    is_file,
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                )?;
            }
        }
    }

    pivot(&plan.merged)?;
    if plan.read_only {
        mount(
            none(),
            "/",
            none(),
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            none(),
        )
        .map_err(|e| err("making the rootfs read-only", e))?;
    }
    Ok(())
}

/// Makes the bind mount at `path` read-only. The path is opened again: the handle used to
/// mount names the folder underneath, and a remount must name the mount itself.
fn remount_read_only(
    root: &Dir,
    path: &str,
    is_file: bool,
    extra: MsFlags,
) -> Result<(), RootfsError> {
    let (p, _h) = target(root, path, is_file)?;
    mount(
        none(),
        &p,
        none(),
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC | extra,
        none(),
    )
    .map_err(|e| err(format!("making {path} read-only"), e))
}

/// Hides a path: /dev/null over a file, an empty read-only tmpfs over a folder.
fn mask(root: &Dir, path: &str) {
    let rel = path.trim_start_matches('/');
    let Ok(meta) = root.metadata(rel) else { return };
    if meta.is_dir() {
        if let Ok((p, _h)) = target(root, path, false) {
            let _ = mount(Some("tmpfs"), &p, Some("tmpfs"), MsFlags::MS_RDONLY, none());
        }
    } else if let Ok((p, _h)) = target(root, path, true) {
        let _ = mount(Some("/dev/null"), &p, none(), MsFlags::MS_BIND, none());
    }
}

fn mount_one(root: &Dir, m: &MountSpec) -> Result<(), RootfsError> {
    if !m.destination.starts_with('/') {
        return Err(err(
            format!("mount {}", m.destination),
            "the container path must be absolute",
        ));
    }
    match m.kind {
        MountKind::Tmpfs => {
            let (p, _h) = target(root, &m.destination, false)?;
            let flags = if m.read_only {
                MsFlags::MS_RDONLY
            } else {
                MsFlags::empty()
            } | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV;
            mount(Some("tmpfs"), &p, Some("tmpfs"), flags, Some("mode=1777"))
                .map_err(|e| err(format!("mounting tmpfs at {}", m.destination), e))?;
        }
        MountKind::Bind | MountKind::Volume => {
            if m.populate {
                populate_volume(root, &m.destination, &m.source).map_err(|e| {
                    err(
                        format!(
                            "filling volume {} from the image's {}",
                            m.volume.as_deref().unwrap_or(""),
                            m.destination
                        ),
                        e,
                    )
                })?;
            }
            let is_file = std::fs::metadata(&m.source)
                .map_err(|e| err(format!("mount source {}", m.source.display()), e))?
                .is_file();
            let (p, _h) = target(root, &m.destination, is_file)?;
            mount(
                Some(m.source.as_path()),
                &p,
                none(),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                none(),
            )
            .map_err(|e| {
                err(
                    format!("binding {} to {}", m.source.display(), m.destination),
                    e,
                )
            })?;
            if m.read_only {
                remount_read_only(root, &m.destination, is_file, MsFlags::empty())?;
            }
        }
    }
    Ok(())
}

/// pivot_root into `new_root` and drop the old root, with the "pivot onto itself" idiom
/// that needs no put_old folder.
fn pivot(new_root: &Path) -> Result<(), RootfsError> {
    nix::unistd::chdir(new_root).map_err(|e| err("entering the rootfs", e))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| err("pivot_root", e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| err("detaching the old root", e))?;
    nix::unistd::chdir("/").map_err(|e| err("entering /", e))?;
    Ok(())
}

/// Copies what the image has at `dest` into an empty new volume, keeping modes, owners and
/// symlinks, as Docker does the first time a volume is mounted.
fn populate_volume(root: &Dir, dest: &str, volume: &Path) -> std::io::Result<()> {
    if std::fs::read_dir(volume)?.next().is_some() {
        return Ok(());
    }
    let rel = dest.trim_start_matches('/');
    let Ok(src) = root.open_dir(rel) else {
        return Ok(());
    };
    let dst = Dir::open_ambient_dir(volume, ambient_authority())?;
    copy_metadata(&src, ".", &dst, ".")?;
    copy_dir(&src, &dst)
}

fn copy_dir(src: &Dir, dst: &Dir) -> std::io::Result<()> {
    use cap_fs_ext::DirExt;
    for e in src.entries()? {
        let e = e?;
        let name = e.file_name();
        let ft = e.file_type()?;
        if ft.is_dir() {
            dst.create_dir(&name)?;
            copy_dir(
                &src.open_dir_nofollow(&name)?,
                &dst.open_dir_nofollow(&name)?,
            )?;
        } else if ft.is_symlink() {
            dst.symlink_contents(src.read_link_contents(&name)?, &name)?;
        } else if ft.is_file() {
            let mut r = src.open(&name)?;
            let mut w = dst.create(&name)?;
            std::io::copy(&mut r, &mut w)?;
        } else {
            continue;
        }
        copy_metadata(src, &name, dst, &name)?;
    }
    Ok(())
}

fn copy_metadata(
    src: &Dir,
    sname: impl AsRef<Path>,
    dst: &Dir,
    dname: impl AsRef<Path>,
) -> std::io::Result<()> {
    use rustix::fs::{AtFlags, Gid, Mode, Uid};
    let st = rustix::fs::statat(src, sname.as_ref(), AtFlags::SYMLINK_NOFOLLOW)?;
    rustix::fs::chownat(
        dst,
        dname.as_ref(),
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Symlink {
        rustix::fs::chmodat(
            dst,
            dname.as_ref(),
            Mode::from_raw_mode(st.st_mode & 0o7777),
            AtFlags::empty(),
        )?;
    }
    Ok(())
}
