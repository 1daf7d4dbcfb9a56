//! What a task leaves in its bundle so that containerd's `delete` action (a fresh shim process,
//! run when the serving one died) can clean up after it: the task's cgroup and whether its
//! rootfs was mounted. And the rootfs mounts themselves.

use std::path::{Path, PathBuf};

use berth_runtime::sandbox::linux::cgroups::{Cgroup, CgroupPath};
use containerd_shim::protos::types::mount::Mount;
use serde::{Deserialize, Serialize};

/// The file, in the bundle folder.
const FILE: &str = "berth-shim.json";

/// A task's leftovers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    /// The task id.
    pub id: String,
    /// PID 1's pid on the host.
    pub pid: i32,
    /// Its cgroup, relative to each hierarchy's mount.
    pub cgroup_path: String,
    /// The rootfs was mounted by the shim (from `CreateTaskRequest.rootfs`).
    pub rootfs_mounted: bool,
}

impl Saved {
    /// Writes it into `bundle` (replacing what was there at once).
    pub fn save(&self, bundle: &Path) -> std::io::Result<()> {
        let tmp = bundle.join(format!(".{FILE}.tmp"));
        std::fs::write(&tmp, serde_json::to_vec(self).unwrap_or_default())?;
        std::fs::rename(tmp, bundle.join(FILE))
    }

    /// What `bundle` holds, if anything.
    pub fn load(bundle: &Path) -> Option<Saved> {
        serde_json::from_slice(&std::fs::read(bundle.join(FILE)).ok()?).ok()
    }

    /// Kills what is left of the task, removes its cgroup and unmounts its rootfs.
    pub fn clean_up(&self, bundle: &Path) {
        if let Ok(at) = CgroupPath::from_spec(&self.cgroup_path)
            && let Ok(cg) = Cgroup::open_at(&self.id, &at)
        {
            let _ = cg.kill_all(nix::libc::SIGKILL);
            if let Err(e) = cg.remove() {
                log::warn!("removing the cgroup of task {}: {e}", self.id);
            }
        }
        if self.rootfs_mounted {
            unmount_rootfs(bundle);
        }
        let _ = std::fs::remove_file(bundle.join(FILE));
    }
}

/// The bundle's rootfs folder.
pub fn rootfs_of(bundle: &Path) -> PathBuf {
    bundle.join("rootfs")
}

/// Mounts containerd's `rootfs` mounts (the snapshotter's overlay, or a bind) at
/// `bundle/rootfs`, in order. Returns whether anything was mounted (none: the bundle's rootfs is
/// a plain folder already).
pub fn mount_rootfs(bundle: &Path, mounts: &[Mount]) -> Result<bool, String> {
    let target = rootfs_of(bundle);
    if mounts.is_empty() {
        return Ok(false);
    }
    std::fs::create_dir_all(&target).map_err(|e| format!("creating {}: {e}", target.display()))?;
    for m in mounts {
        let kind = (!m.type_.is_empty()).then_some(m.type_.as_str());
        let source = (!m.source.is_empty()).then_some(m.source.as_str());
        if let Err(e) = containerd_shim::mount::mount_rootfs(kind, source, &m.options, &target) {
            unmount_rootfs(bundle);
            return Err(format!(
                "mounting the task's rootfs ({} {}) at {}: {e}",
                m.type_,
                m.source,
                target.display()
            ));
        }
    }
    Ok(true)
}

/// Unmounts everything at `bundle/rootfs` (lazily: a process that still has a file open there
/// must not keep the mount, and so the snapshot, busy).
pub fn unmount_rootfs(bundle: &Path) {
    let target = rootfs_of(bundle);
    while nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH).is_ok() {}
}
