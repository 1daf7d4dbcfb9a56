//! What this host offers berth: cgroup version, overlayfs, namespaces. `berth info` reports
//! it and the backends use it to choose how to run.

use std::path::Path;

/// Which cgroup hierarchy the host mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum CgroupVersion {
    /// Unified v2 only.
    V2,
    /// v1 controllers, with a v2 hierarchy beside them (systemd's hybrid mode).
    V1Hybrid,
    /// v1 only.
    V1,
    /// No cgroups (not Linux, or not mounted).
    None,
}

impl std::fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CgroupVersion::V2 => "2",
            CgroupVersion::V1Hybrid => "1 (hybrid)",
            CgroupVersion::V1 => "1",
            CgroupVersion::None => "none",
        })
    }
}

/// The host's cgroup version.
pub fn cgroup_version() -> CgroupVersion {
    cgroup_version_at(Path::new("/sys/fs/cgroup"))
}

/// The cgroup version of the hierarchies mounted at `root` (the host's are at /sys/fs/cgroup).
pub fn cgroup_version_at(root: &Path) -> CgroupVersion {
    if !cfg!(target_os = "linux") {
        CgroupVersion::None
    } else if root.join("cgroup.controllers").exists() {
        CgroupVersion::V2
    } else if root.join("memory").is_dir() || root.join("pids").is_dir() {
        if root.join("unified").is_dir() {
            CgroupVersion::V1Hybrid
        } else {
            CgroupVersion::V1
        }
    } else {
        CgroupVersion::None
    }
}

/// Whether the kernel knows overlayfs.
pub fn has_overlayfs() -> bool {
    cfg!(target_os = "linux")
        && std::fs::read_to_string("/proc/filesystems")
            .is_ok_and(|s| s.lines().any(|l| l.ends_with("\toverlay")))
}

/// Whether this process can make the namespaces a native container needs.
pub fn can_run_native() -> bool {
    cfg!(target_os = "linux") && Path::new("/proc/self/ns/pid").exists() && is_root()
}

/// Whether berth runs as root.
pub fn is_root() -> bool {
    #[cfg(unix)]
    {
        rustix::process::geteuid().is_root()
    }
    #[cfg(not(unix))]
    {
        false
    }
}
