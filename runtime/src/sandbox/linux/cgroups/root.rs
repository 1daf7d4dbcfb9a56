//! Where a host's cgroup hierarchies are and which version it runs: looked up once for the
//! real host under /sys/fs/cgroup, or for any folder laid out like it.

use std::path::{Path, PathBuf};

use crate::host::CgroupVersion;

/// Where the host mounts its cgroup hierarchies.
const HOST_ROOT: &str = "/sys/fs/cgroup";
/// The v1 controllers berth uses. cpuset and blkio are joined only by a container whose limits
/// need them (see [`OPTIONAL`]).
const V1_CONTROLLERS: &[&str] = &[
    "memory", "cpu", "cpuacct", "pids", "freezer", "devices", "cpuset", "blkio",
];
/// The controllers a container gets only when a limit asks for them: each costs writes at every
/// start (v1 cpuset even needs its parent's CPUs and memory nodes copied down).
pub(super) const OPTIONAL: &[&str] = &["cpuset", "blkio", "io"];

/// One cgroup hierarchy.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Hierarchy {
    /// Where it is mounted.
    pub mount: PathBuf,
    /// v1: its controllers; v2: those the root offers (`cgroup.controllers`).
    pub controllers: Vec<String>,
    /// The v2 hierarchy (the only one on v2, the controller-less one in hybrid mode).
    pub unified: bool,
}

/// A host's cgroup version and hierarchies.
#[derive(Debug, Clone)]
pub struct CgroupRoot {
    pub(super) version: CgroupVersion,
    pub(super) hierarchies: Vec<Hierarchy>,
}

impl CgroupRoot {
    /// The cgroup hierarchies mounted at `path`, laid out as under /sys/fs/cgroup: `path`
    /// itself on v2; a folder per v1 controller (co-mounted ones a symlink to a shared one),
    /// and `unified/` in hybrid mode.
    pub fn at(path: &Path) -> CgroupRoot {
        let version = crate::host::cgroup_version_at(path);
        CgroupRoot {
            version,
            hierarchies: probe(path, version),
        }
    }

    /// The host's, looked up once per process: a forked `__init` inherits it from its monitor
    /// instead of probing a dozen paths again.
    pub fn host() -> &'static CgroupRoot {
        static HOST: std::sync::OnceLock<CgroupRoot> = std::sync::OnceLock::new();
        HOST.get_or_init(|| CgroupRoot::at(Path::new(HOST_ROOT)))
    }

    /// Its cgroup version.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// Whether some hierarchy has `controller`.
    pub(super) fn has(&self, controller: &str) -> bool {
        self.hierarchies
            .iter()
            .any(|h| h.controllers.iter().any(|c| c == controller))
    }
}

/// Looks the host's cgroup layout up now, in a process about to fork `__init`: the child then
/// finds it in memory.
pub fn probe_host() {
    CgroupRoot::host();
}

/// Finds the hierarchies under `root`.
fn probe(root: &Path, version: CgroupVersion) -> Vec<Hierarchy> {
    match version {
        CgroupVersion::None => Vec::new(),
        CgroupVersion::V2 => vec![Hierarchy {
            mount: root.to_path_buf(),
            controllers: words(&root.join("cgroup.controllers")),
            unified: true,
        }],
        CgroupVersion::V1 | CgroupVersion::V1Hybrid => {
            let mut out: Vec<Hierarchy> = Vec::new();
            for c in V1_CONTROLLERS {
                let p = root.join(c);
                if !p.is_dir() {
                    continue;
                }
                // Co-mounted controllers (cpu,cpuacct) share one hierarchy: one directory,
                // which the others name by a symlink (`cpu -> cpu,cpuacct`).
                let real = match std::fs::read_link(&p) {
                    Ok(to) => root.join(to),
                    Err(_) => p,
                };
                if let Some(h) = out.iter_mut().find(|h| h.mount == real) {
                    if !h.controllers.iter().any(|x| x == c) {
                        h.controllers.push(c.to_string());
                    }
                    continue;
                }
                let mut controllers: Vec<String> = real
                    .file_name()
                    .map(|n| n.to_string_lossy().split(',').map(str::to_string).collect())
                    .unwrap_or_default();
                if !controllers.iter().any(|x| x == c) {
                    controllers.push(c.to_string());
                }
                out.push(Hierarchy {
                    mount: real,
                    controllers,
                    unified: false,
                });
            }
            let unified = root.join("unified");
            if version == CgroupVersion::V1Hybrid && unified.join("cgroup.procs").exists() {
                out.push(Hierarchy {
                    mount: unified,
                    controllers: Vec::new(),
                    unified: true,
                });
            }
            out
        }
    }
}

/// The words of a cgroup file (`cgroup.controllers`, `cgroup.subtree_control`); none when it
/// cannot be read.
pub(super) fn words(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}
