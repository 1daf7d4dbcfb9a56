//! The container's root filesystem, built inside its own mount namespace: an overlay of the
//! image's layer snapshots and a per-container upper dir, with /proc, a minimal /dev, /sys
//! read-only, Docker's masked and read-only paths, the container's mounts and /etc files,
//! then pivot_root into it.
//!
//! A WASI guest's `/` is this whole tree, so its rootfs is the image's files, its volumes and
//! /etc files only, with no /proc, /dev or /sys: through /proc/self/mem a guest could write
//! into the memory of the process running it (the wasm sandbox's host), and the host's
//! devices and kernel settings are no more a guest's business. A guest that opens
//! /dev/null or /dev/urandom by path finds none (WASI gives it random bytes directly).
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
    /// The paths to hide; `None`: [`MASKED_PATHS`].
    #[serde(default)]
    pub masked_paths: Option<Vec<String>>,
    /// The paths to make read-only; `None`: [`READONLY_PATHS`].
    #[serde(default)]
    pub readonly_paths: Option<Vec<String>>,
    /// Whether the container has a network namespace of its own (sysfs can then be mounted).
    pub own_netns: bool,
    /// Mount the overlay with `userxattr` (inside a user namespace, where trusted.* xattrs
    /// are out of reach).
    #[serde(default)]
    pub userxattr: bool,
    /// The workload is a WASI guest: no /proc, /dev or /sys (see the module's doc).
    #[serde(default)]
    pub wasi_guest: bool,
    /// The writable layer goes with the container (`--rm`): overlay need not make it durable
    /// (`volatile`, no sync when it is unmounted).
    #[serde(default)]
    pub volatile: bool,
    /// `merged` is a root filesystem made already (a containerd bundle's `rootfs`, which
    /// containerd's snapshotter mounted): it is bound onto itself, and no overlay is made.
    #[serde(default)]
    pub prepared: bool,
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
    let what = || format!("preparing mount target {path}");
    let rel = path.trim_start_matches('/');
    let p = Path::new(if rel.is_empty() { "." } else { rel });
    let handle = if file {
        match in_root(root, p, OFlags::PATH) {
            Ok(h) => h,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let name = p
                    .file_name()
                    .ok_or_else(|| err(what(), "not a file path"))?;
                let parent = mkdir_all_in_root(root, p.parent().unwrap_or(Path::new("")))
                    .map_err(|e| err(what(), e))?;
                match rustix::fs::openat(
                    &parent,
                    name,
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::WRONLY
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                ) {
                    Ok(_) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(err(what(), e)),
                }
                in_root(root, p, OFlags::PATH).map_err(|e| err(what(), e))?
            }
            Err(e) => return Err(err(what(), e)),
        }
    } else {
        mkdir_all_in_root(root, p).map_err(|e| err(what(), e))?
    };
    Ok((
        PathBuf::from(format!("/proc/self/fd/{}", handle.as_raw_fd())),
        handle,
    ))
}

/// Opens `rel` with symlinks resolved as if `root` were `/` (absolute links included), never
/// above it: Docker's semantics for mount destinations, without its races.
fn in_root(
    root: &Dir,
    rel: &Path,
    flags: rustix::fs::OFlags,
) -> std::io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    Ok(rustix::fs::openat2(
        root,
        rel,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// [`in_root`] for a folder, creating the missing ones (0755) on the way.
fn mkdir_all_in_root(root: &Dir, rel: &Path) -> std::io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    match in_root(root, rel, OFlags::PATH | OFlags::DIRECTORY) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let name = rel.file_name().ok_or(e)?;
            let parent = mkdir_all_in_root(root, rel.parent().unwrap_or(Path::new("")))?;
            match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            in_root(root, rel, OFlags::PATH | OFlags::DIRECTORY)
        }
        other => other,
    }
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

    if plan.prepared {
        // pivot_root wants a mount point.
        mount(
            Some(plan.merged.as_path()),
            &plan.merged,
            none(),
            MsFlags::MS_BIND | MsFlags::MS_REC,
            none(),
        )
        .map_err(|e| err(format!("binding the rootfs {}", plan.merged.display()), e))?;
    } else {
        overlay_rootfs(plan)?;
    }
    let root = Dir::open_ambient_dir(&plan.merged, ambient_authority())
        .map_err(|e| err("opening the rootfs", e))?;
    if !plan.wasi_guest {
        system_mounts(&root, plan)?;
    }
    for m in &plan.mounts {
        mount_one(&root, m)?;
    }
    for (source, dest) in &plan.etc_files {
        let (p, _h) = target(&root, dest, true)?;
        mount(Some(source.as_path()), &p, none(), MsFlags::MS_BIND, none())
            .map_err(|e| err(format!("binding {dest}"), e))?;
    }
    if !plan.privileged && !plan.wasi_guest {
        let listed = |given: &Option<Vec<String>>, docker: &[&'static str]| match given {
            Some(paths) => paths.clone(),
            None => docker.iter().map(|p| p.to_string()).collect(),
        };
        for path in &listed(&plan.masked_paths, MASKED_PATHS) {
            mask(&root, path)?;
        }
        for path in &listed(&plan.readonly_paths, READONLY_PATHS) {
            // Found as the mounts found it, symlinks resolved inside the root: a path that is
            // there but cannot be made read-only stops the start, never runs writable.
            let Some(is_dir) = kind_in_root(&root, path)? else {
                continue;
            };
            let (p, _h) = target(&root, path, !is_dir)?;
            mount(
                Some(p.as_path()),
                &p,
                none(),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                none(),
            )
            .map_err(|e| err(format!("making {path} read-only"), e))?;
            remount_read_only(&root, path, !is_dir, true)?;
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

/// The overlay of the plan's layers and writable layer, at `merged`.
fn overlay_rootfs(plan: &RootfsPlan) -> Result<(), RootfsError> {
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
    let overlay = |opts: &str| {
        mount(
            Some("overlay"),
            &plan.merged,
            Some("overlay"),
            MsFlags::empty(),
            Some(opts),
        )
    };
    // `volatile` came with Linux 5.10: an older kernel refuses it, and syncs.
    if plan.volatile {
        overlay(&format!("{opts},volatile")).or_else(|_| overlay(&opts))
    } else {
        overlay(&opts)
    }
    .map_err(|e| {
        err(
            format!("mounting the overlay rootfs at {}", plan.merged.display()),
            e,
        )
    })?;
    Ok(())
}

/// The kernel's file systems a native workload expects: /proc, a minimal /dev (with pts, shm,
/// mqueue and the console) and /sys.
fn system_mounts(root: &Dir, plan: &RootfsPlan) -> Result<(), RootfsError> {
    // The kernel's file systems go where the image says /proc, /dev and /sys are; a link
    // there would put them elsewhere and leave the masked and read-only paths unmatched.
    for name in ["proc", "dev", "sys"] {
        if root.symlink_metadata(name).is_ok_and(|m| m.is_symlink()) {
            return Err(err(
                format!("mounting /{name}"),
                format!(
                    "the image's /{name} is a symbolic link: berth mounts the kernel's /{name} there, so the image must have a folder (or nothing) at /{name}"
                ),
            ));
        }
    }
    let (p, _h) = target(root, "/proc", false)?;
    mount(Some("proc"), &p, Some("proc"), NOSUID_NODEV_NOEXEC, none())
        .map_err(|e| err("mounting /proc", e))?;
    dev_tmpfs(root)?;
    dev_filesystems(root)?;
    dev_console(root)?;
    sys(root, plan)
}

/// The flags of the kernel's file systems that hold no programs or devices.
const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// A tmpfs at /dev with the host's harmless devices bound in and the usual symlinks.
fn dev_tmpfs(root: &Dir) -> Result<(), RootfsError> {
    let (p, _h) = target(root, "/dev", false)?;
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
        let (p, _h) = target(root, &format!("/dev/{name}"), true)?;
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
    Ok(())
}

/// /dev/pts (a new instance), /dev/shm and /dev/mqueue.
fn dev_filesystems(root: &Dir) -> Result<(), RootfsError> {
    let (p, _h) = target(root, "/dev/pts", false)?;
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
    let (p, _h) = target(root, "/dev/shm", false)?;
    mount(
        Some("shm"),
        &p,
        Some("tmpfs"),
        NOSUID_NODEV_NOEXEC,
        Some("mode=1777,size=65536k"),
    )
    .map_err(|e| err("mounting /dev/shm", e))?;
    let (p, _h) = target(root, "/dev/mqueue", false)?;
    let _ = mount(
        Some("mqueue"),
        &p,
        Some("mqueue"),
        NOSUID_NODEV_NOEXEC,
        none(),
    );
    Ok(())
}

/// /dev/console, bound to the terminal when there is one.
fn dev_console(root: &Dir) -> Result<(), RootfsError> {
    // The console: with a tty, stdin is the pty slave.
    if nix::unistd::isatty(std::io::stdin()).unwrap_or(false)
        && let Ok(tty) = nix::unistd::ttyname(std::io::stdin())
    {
        let (p, _h) = target(root, "/dev/console", true)?;
        mount(Some(tty.as_path()), &p, none(), MsFlags::MS_BIND, none())
            .map_err(|e| err("binding /dev/console", e))?;
    }
    Ok(())
}

/// /sys: read-only unless privileged.
fn sys(root: &Dir, plan: &RootfsPlan) -> Result<(), RootfsError> {
    let (p, _h) = target(root, "/sys", false)?;
    let sys_flags = if plan.privileged {
        NOSUID_NODEV_NOEXEC
    } else {
        NOSUID_NODEV_NOEXEC | MsFlags::MS_RDONLY
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
            // Recursively: the host's cgroup mounts under /sys/fs/cgroup must not be writable.
            remount_read_only(root, "/sys", false, true)?;
        }
    }

    Ok(())
}

/// Takes /proc, /dev and /sys out of a WASI guest's sight where the rootfs has them: a module
/// found to be WebAssembly only once the native rootfs was built, or run by `exec` in a native
/// container, or a volume the user mounted there. In a mount namespace of this process' own,
/// so the container keeps them. Every mount stacked on each path goes (symlinks are not
/// followed), and the start fails if one is still there.
pub fn hide_system_mounts() -> Result<(), RootfsError> {
    const HIDDEN: [&str; 3] = ["/proc", "/dev", "/sys"];
    let mounted = |path: &str| {
        rustix::fs::statx(
            rustix::fs::CWD,
            path,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            rustix::fs::StatxFlags::empty(),
        )
        .is_ok_and(|st| {
            let root = rustix::fs::StatxAttributes::MOUNT_ROOT;
            st.stx_attributes_mask.contains(root) && st.stx_attributes.contains(root)
        })
    };
    if !HIDDEN.into_iter().any(mounted) {
        return Ok(());
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| err("creating a mount namespace for the guest", e))?;
    for path in HIDDEN {
        while mounted(path) {
            umount2(path, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW)
                .map_err(|e| err(format!("hiding {path} from the guest"), e))?;
        }
    }
    Ok(())
}

/// Mount attribute bits for [`set_mount_attr`].
pub(crate) const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
/// Shift ids through a user namespace.
pub(crate) const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(2) on the mount (and, with `recursive`, every mount below it) at `fd`.
pub(crate) fn set_mount_attr(
    fd: std::os::fd::BorrowedFd<'_>,
    attr_set: u64,
    recursive: bool,
    userns_fd: Option<i32>,
) -> std::io::Result<()> {
    let attr = MountAttr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns_fd.map_or(0, |f| f as u64),
    };
    let flags = nix::libc::AT_EMPTY_PATH
        | if recursive {
            nix::libc::AT_RECURSIVE
        } else {
            0
        };
    // SAFETY: mount_setattr on a valid fd with a valid, sized attr struct.
    let r = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the mount at `path` and every mount below it read-only (`nosuid,nodev,noexec` too
/// with `locked_down`). The path is opened again: the handle used to mount names the folder
/// underneath, and the attributes must go on the mount itself.
fn remount_read_only(
    root: &Dir,
    path: &str,
    is_file: bool,
    locked_down: bool,
) -> Result<(), RootfsError> {
    use std::os::fd::AsFd;
    let (_p, h) = target(root, path, is_file)?;
    let mut attrs = MOUNT_ATTR_RDONLY;
    if locked_down {
        attrs |= MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    }
    set_mount_attr(h.as_fd(), attrs, true, None)
        .map_err(|e| err(format!("making {path} read-only"), e))
}

/// Hides a path: /dev/null over a file, an empty read-only tmpfs over a folder.
fn mask(root: &Dir, path: &str) -> Result<(), RootfsError> {
    let Some(is_dir) = kind_in_root(root, path)? else {
        return Ok(());
    };
    let (p, _h) = target(root, path, !is_dir)?;
    let masked = if is_dir {
        mount(Some("tmpfs"), &p, Some("tmpfs"), MsFlags::MS_RDONLY, none())
    } else {
        mount(Some("/dev/null"), &p, none(), MsFlags::MS_BIND, none())
    };
    masked.map_err(|e| err(format!("masking {path}"), e))
}

/// Whether `path` is a folder, found inside the root as the mounts find it (symlinks resolved
/// in it); `None` when it is not there. Any other failure is an error: a path that cannot be
/// looked at cannot be known to be masked.
fn kind_in_root(root: &Dir, path: &str) -> Result<Option<bool>, RootfsError> {
    let rel = Path::new(path.trim_start_matches('/'));
    match in_root(root, rel, rustix::fs::OFlags::PATH) {
        Ok(fd) => {
            let st = rustix::fs::fstat(&fd).map_err(|e| err(format!("looking at {path}"), e))?;
            Ok(Some(
                rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory,
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(format!("looking at {path}"), e)),
    }
}

/// Mounts one of the container's mounts.
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
                remount_read_only(root, &m.destination, is_file, false)?;
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
    // Only the image's files fill a volume. Whatever is mounted there (the kernel's /proc,
    // /sys or /dev, reached by name, `..` or a symlink, or an earlier mount) is not, and
    // copying the live /proc (/proc/kcore among it) as root would never end.
    use cap_std::fs::MetadataExt;
    if src.dir_metadata()?.dev() != root.dir_metadata()?.dev() {
        return Ok(());
    }
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
    use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Uid};
    let st = rustix::fs::statat(src, sname.as_ref(), AtFlags::SYMLINK_NOFOLLOW)?;
    let (uid, gid) = (
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
    );
    if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
        rustix::fs::chownat(dst, dname.as_ref(), uid, gid, AtFlags::SYMLINK_NOFOLLOW)?;
        return Ok(());
    }
    // Through a descriptor opened without following links: another container sharing the
    // volume could swap the entry for a symlink to a host file in the meantime.
    let fd = rustix::fs::openat(
        dst,
        dname.as_ref(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::fs::fchown(&fd, uid, gid)?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(st.st_mode & 0o7777))?;
    Ok(())
}
