//! A handle on berth's own binary that nothing can write through, for every berth process
//! that enters a container's namespaces (CVE-2019-5736: a process in the container that
//! opens `/proc/PID/exe` of a berth process there, and reopens it for writing once that
//! process is gone, overwrites the host's binary).
//!
//! The rule: a berth process that joins a container (`__exec`, an `--init` PID 1, the init of
//! a build's RUN step, a detached monitor's containers) is exec'd from [`SealedExe`], never
//! from the file on the host. Its `/proc/PID/exe` then names a file on a private, read-only
//! overlayfs mount whose only layers are lower ones: no remount makes it writable, and the
//! mount is attached nowhere, so nothing can reach the real file through it. This is runc's
//! zero-copy `exeseal`; where overlayfs cannot be mounted (no privilege, or the binary's folder
//! cannot be a layer) a sealed memfd copy of the binary serves instead, at the cost of copying
//! it.
//!
//! A container that `berth run` forks straight from the caller (no exec, for speed) runs the
//! host's file until its PID 1 execs the workload; `landlock` keeps that exec, and every later
//! one of the workload's, from reaching any file outside the container's root, so a
//! `#!/proc/self/exe` workload cannot run the host's binary in the container.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::fs::{Mode, OFlags, SealFlags};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};

/// berth's binary, sealed: exec it with [`SealedExe::command`].
#[derive(Debug)]
pub struct SealedExe {
    /// An `O_PATH` handle on the sealed file (overlayfs), or the sealed memfd.
    file: OwnedFd,
}

/// The folder of the run root that stays empty: overlayfs needs a second lower layer to mount
/// without an upper one, and a layer must be a real path.
pub fn empty_layer(run_root: &Path) -> PathBuf {
    run_root.join("exe-seal")
}

impl SealedExe {
    /// Seals the binary this process runs. `run_root` is the store's run root, which holds
    /// the empty folder the overlay needs.
    pub fn of_self(run_root: &Path) -> io::Result<SealedExe> {
        // A process exec'd from a sealed binary (a detached monitor) passes that on: sealing
        // it again would copy the whole binary into a memfd, its path being nowhere.
        if let Some(file) = already_sealed() {
            return Ok(SealedExe { file });
        }
        let exe = std::fs::read_link("/proc/self/exe")?;
        match overlay(&exe, &empty_layer(run_root)) {
            Ok(file) => Ok(SealedExe { file }),
            Err(e) => {
                tracing::debug!(error = %e, "sealing berth's binary on overlayfs; copying it to a memfd");
                memfd_copy().map(|file| SealedExe { file })
            }
        }
    }

    /// A command that runs the sealed binary, named `berth` in its argv. The handle is opened
    /// close-on-exec: the new process holds the file only as its executable.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(format!("/proc/self/fd/{}", self.file.as_raw_fd()));
        cmd.arg0("berth");
        cmd
    }
}

/// A handle on this process' own binary when it is sealed already: a memfd that takes no
/// more writes, or a file on an overlayfs whose path is nowhere in this mount namespace (the
/// private, detached, read-only mount [`overlay`] makes).
fn already_sealed() -> Option<OwnedFd> {
    /// overlayfs' `f_type`.
    const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
    let file: OwnedFd = File::open("/proc/self/exe").ok()?.into();
    if rustix::fs::fcntl_get_seals(&file).is_ok_and(|s| s.contains(SealFlags::WRITE)) {
        return Some(file);
    }
    // `f_type`'s width differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    let on_overlay =
        rustix::fs::fstatfs(&file).is_ok_and(|s| s.f_type as i64 == OVERLAYFS_SUPER_MAGIC);
    let path = std::fs::read_link("/proc/self/exe").ok()?;
    (on_overlay && !path.exists()).then_some(file)
}

/// Opens the binary `exe` through a private read-only overlayfs of its folder.
fn overlay(exe: &Path, empty: &Path) -> io::Result<OwnedFd> {
    let (Some(dir), Some(name)) = (exe.parent(), exe.file_name()) else {
        return Err(io::Error::other(format!("{} has no folder", exe.display())));
    };
    match std::fs::create_dir(empty) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let ctx = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    // The binary's folder on top, so nothing in the empty layer can mask it. ':' and '\' in a
    // path are escaped, as overlayfs' option parser reads them.
    let lower = format!("{}:{}", escape(dir), escape(empty));
    rustix::mount::fsconfig_set_string(ctx.as_fd(), "lowerdir", lower.as_str())?;
    // Only to keep the kernel from logging about inode numbers across filesystems.
    let _ = rustix::mount::fsconfig_set_string(ctx.as_fd(), "xino", "off");
    rustix::mount::fsconfig_create(ctx.as_fd())?;
    let mnt = rustix::mount::fsmount(
        ctx.as_fd(),
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_RDONLY
            | MountAttrFlags::MOUNT_ATTR_NODEV
            | MountAttrFlags::MOUNT_ATTR_NOSUID,
    )?;
    Ok(rustix::fs::openat(
        mnt.as_fd(),
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

fn escape(p: &Path) -> String {
    p.to_string_lossy()
        .replace('\\', "\\\\")
        .replace(':', "\\:")
}

/// A copy of the binary in a memfd, sealed against any write, shrink or growth.
fn memfd_copy() -> io::Result<OwnedFd> {
    use rustix::fs::MemfdFlags;
    let mut src = File::open("/proc/self/exe")?;
    let memfd = rustix::fs::memfd_create("berth", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    let mut dst = File::from(memfd);
    io::copy(&mut src, &mut dst)?;
    rustix::fs::fcntl_add_seals(
        &dst,
        SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
    )?;
    Ok(dst.into())
}

/// Keeps the container's workload (PID 1, once it execs, and all it starts) from executing a
/// file outside the container's root: the host's berth binary reached through `/proc/PID/exe`
/// or a `#!/proc/self/exe` interpreter, a memfd, a file passed in. Called in the container,
/// after pivot_root and while still privileged. `Ok(false)` when the kernel has no landlock
/// (or only its first ABI), where callers must not rely on it. `berth exec`'d commands stay
/// outside the domain (a domain's processes cannot trace, or read the /proc entries of,
/// processes outside it, and an exec'd `ps` must see PID 1's): they come from the sealed
/// binary.
pub fn confine_exec_to_root() -> io::Result<bool> {
    use landlock::{
        AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
        RulesetCreatedAttr, RulesetStatus,
    };
    if !landlock_available() {
        return Ok(false);
    }
    let fail = |e: &dyn std::fmt::Display| io::Error::other(format!("landlock: {e}"));
    // Refer is granted as well: a ruleset that leaves it out denies every rename and link
    // across folders (EXDEV), which apt and dpkg do not survive. Needs ABI 2 (see
    // `landlock_available`).
    let access = AccessFs::Execute | AccessFs::Refer;
    let status = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(access)
        .map_err(|e| fail(&e))?
        .create()
        .map_err(|e| fail(&e))?
        .add_rule(PathBeneath::new(
            PathFd::new("/").map_err(|e| fail(&e))?,
            access,
        ))
        .map_err(|e| fail(&e))?
        // The caller still holds CAP_SYS_ADMIN, and sets no_new_privs itself as the spec says.
        .no_new_privs(false)
        .restrict_self()
        .map_err(|e| fail(&e))?;
    Ok(status.ruleset == RulesetStatus::FullyEnforced)
}

/// Whether this kernel enforces landlock with renames across folders allowed (ABI 2, Linux
/// 5.19; one syscall; callers decide per start).
pub fn landlock_available() -> bool {
    // SAFETY: landlock_create_ruleset with a null attribute and the version flag only returns
    // the ABI version.
    let abi = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32, // LANDLOCK_CREATE_RULESET_VERSION
        )
    };
    abi >= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_overlayfs_splits_on() {
        assert_eq!(escape(Path::new("/a:b\\c")), "/a\\:b\\\\c");
    }
}
