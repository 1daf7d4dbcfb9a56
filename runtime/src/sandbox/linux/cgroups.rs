//! A native container's cgroup: its limits, its processes, killing them all, and whether the
//! OOM killer struck. cgroup v2, v1, and systemd's hybrid mode (v1 controllers beside an
//! empty v2 hierarchy) are all handled.
//!
//! Layout, with a `berth` parent group so `systemd-cgls` and people can tell what it is:
//! - v2: `/sys/fs/cgroup/berth/<id>`;
//! - v1: `/sys/fs/cgroup/<controller>/berth/<id>` for each controller berth uses (memory, cpu,
//!   cpuacct, pids, freezer, devices), once per hierarchy when controllers are co-mounted;
//! - hybrid: the v1 directories plus `/sys/fs/cgroup/unified/berth/<id>`, which brings v2's
//!   race-free `cgroup.kill` and `cgroup.freeze` even though the controllers live in v1.
//!
//! On v1 the devices controller also limits the container to Docker's default devices
//! (null, zero, full, random, urandom, tty, ptmx, pts; mknod of any), since the default
//! capabilities include MKNOD. v2 needs a BPF device program for that, which this module does
//! not install.

use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::host::CgroupVersion;

/// Where cgroup hierarchies are mounted.
const ROOT: &str = "/sys/fs/cgroup";
/// The group all containers' groups live in.
const PARENT: &str = "berth";
/// The v1 controllers a container joins.
const V1_CONTROLLERS: &[&str] = &["memory", "cpu", "cpuacct", "pids", "freezer", "devices"];
/// The v2 controllers enabled for containers.
const V2_CONTROLLERS: &[&str] = &["memory", "cpu", "pids"];
/// The CFS period; `--cpus` scales the quota against it, as Docker.
const CFS_PERIOD_US: u64 = 100_000;
/// Docker's smallest `--memory`; below it a container cannot even start its runtime.
const MIN_MEMORY: u64 = 6 * 1024 * 1024;
/// Docker's default device rules (runc's), for the v1 devices controller.
const DEFAULT_DEVICES: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];
/// How long to wait for a freeze, or for a cgroup to empty before removing it.
const SETTLE: Duration = Duration::from_secs(2);

/// Resource limits for a container's cgroup; `None` leaves a resource unlimited.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// `--memory`, in bytes.
    pub memory: Option<u64>,
    /// `--memory-swap`: memory plus swap, in bytes; -1 for unlimited swap; 0 or unset for no
    /// swap at all (so a memory hog is OOM-killed rather than swapping).
    pub memory_swap: Option<i64>,
    /// `--cpus`, in cores (e.g. 0.5); 0 means unlimited.
    pub cpus: Option<f64>,
    /// `--pids-limit`; 0 or -1 means unlimited.
    pub pids: Option<i64>,
}

/// What can go wrong with a cgroup.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// An id that cannot name a directory safely.
    #[error("invalid container id {0:?} for a cgroup: use letters, digits, '_', '.' and '-'")]
    InvalidId(String),
    /// A limit outside what the kernel or Docker accept.
    #[error("{0}")]
    InvalidLimit(String),
    /// A limit was asked for whose controller this host lacks.
    #[error("{flag} needs the {controller} cgroup controller, which this host does not {how}")]
    MissingController {
        /// The flag that asked for it.
        flag: &'static str,
        /// The controller.
        controller: &'static str,
        /// "mount" (v1) or "enable for berth" (v2).
        how: &'static str,
    },
    /// A signal number outside 1..=64.
    #[error("signal {0} is not a valid signal number")]
    InvalidSignal(i32),
    /// No cgroup hierarchy at all.
    #[error(
        "this host mounts no cgroup hierarchy under /sys/fs/cgroup, so berth cannot track or limit container {0}"
    )]
    NoCgroups(String),
    /// `open` found nothing.
    #[error("container {0} has no cgroup (it was never created, or was removed)")]
    NotFound(String),
    /// A cgroup file or directory operation failed.
    #[error("{action} for container {id}: {cause}")]
    Io {
        /// What was being done.
        action: String,
        /// The container (shortened).
        id: String,
        /// The kernel's answer.
        cause: std::io::Error,
    },
    /// Processes survived SIGKILL long enough to keep the cgroup from being removed.
    #[error("removing cgroup {path} for container {id}: processes are still in it after SIGKILL")]
    Busy {
        /// The directory.
        path: PathBuf,
        /// The container (shortened).
        id: String,
    },
}

/// One hierarchy's directory of the container.
#[derive(Debug, Clone)]
struct Dir {
    /// `<mount>/berth/<id>`.
    path: PathBuf,
    /// v1: the controllers of this hierarchy; v2: those enabled for the container.
    controllers: Vec<String>,
    /// A v2 hierarchy (the only one on v2, the controller-less one in hybrid mode).
    unified: bool,
}

/// A container's cgroup, in every hierarchy it belongs to.
#[derive(Debug, Clone)]
pub struct Cgroup {
    id: String,
    version: CgroupVersion,
    dirs: Vec<Dir>,
}

/// The id as error messages show it: Docker's 12-character short form.
fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

fn check_id(id: &str) -> Result<(), CgroupError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(CgroupError::InvalidId(id.to_string()))
    }
}

/// The writes a set of limits comes to, after Docker's checks and defaults.
#[derive(Debug, Clone, Default, PartialEq)]
struct Plan {
    memory: Option<u64>,
    /// Memory plus swap (v1 memsw) in bytes, or None for unlimited.
    memory_swap: Option<u64>,
    /// Whether swap was explicitly made unlimited (-1).
    swap_unlimited: bool,
    cpu_quota_us: Option<u64>,
    pids: Option<i64>,
}

impl Limits {
    /// Checks the limits as Docker does and works out what to write.
    fn plan(&self) -> Result<Plan, CgroupError> {
        let invalid = |m: String| Err(CgroupError::InvalidLimit(m));
        let mut plan = Plan::default();
        if let Some(m) = self.memory {
            if m < MIN_MEMORY {
                return invalid(format!(
                    "--memory {m} is below the minimum of 6MiB ({MIN_MEMORY} bytes)"
                ));
            }
            plan.memory = Some(m);
        }
        match (self.memory_swap, plan.memory) {
            (None | Some(0), m) => plan.memory_swap = m,
            (Some(_), None) => {
                return invalid(
                    "--memory-swap needs --memory too: it is the total of memory and swap".into(),
                );
            }
            (Some(-1), Some(_)) => plan.swap_unlimited = true,
            (Some(s), Some(m)) if s > 0 && s as u64 >= m => plan.memory_swap = Some(s as u64),
            (Some(s), Some(m)) if s > 0 => {
                return invalid(format!(
                    "--memory-swap {s} is smaller than --memory {m}: it is the total of memory and swap (use -1 for unlimited swap)"
                ));
            }
            (Some(s), Some(_)) => {
                return invalid(format!(
                    "--memory-swap {s} is not valid: give bytes, or -1 for unlimited swap"
                ));
            }
        }
        if let Some(c) = self.cpus {
            if !c.is_finite() || c < 0.0 || (c > 0.0 && c < 0.01) {
                return invalid(format!(
                    "--cpus {c} is not valid: give a number of CPUs of at least 0.01, or 0 for no limit"
                ));
            }
            if c > 0.0 {
                plan.cpu_quota_us = Some((c * CFS_PERIOD_US as f64).round() as u64);
            }
        }
        plan.pids = self.pids.filter(|&p| p > 0);
        Ok(plan)
    }
}

/// A hierarchy: its mount, its controllers, whether it is the v2 (unified) one.
type Hierarchy = (PathBuf, Vec<String>, bool);

/// The host's cgroup version and hierarchies, looked up once per process: a forked `__init`
/// inherits them from its monitor instead of probing a dozen paths again.
fn host_layout() -> &'static (CgroupVersion, Vec<Hierarchy>) {
    static LAYOUT: std::sync::OnceLock<(CgroupVersion, Vec<Hierarchy>)> =
        std::sync::OnceLock::new();
    LAYOUT.get_or_init(|| {
        let version = crate::host::cgroup_version();
        (version, probe_hierarchies(version))
    })
}

/// Looks the host's cgroup layout up now, in a process about to fork `__init`: the child then
/// finds it in memory.
pub fn probe_host() {
    host_layout();
}

/// The host's hierarchies.
fn hierarchies() -> Vec<Hierarchy> {
    host_layout().1.clone()
}

/// Finds the hierarchies of a host, as (mount, controllers, unified).
fn probe_hierarchies(version: CgroupVersion) -> Vec<Hierarchy> {
    let root = Path::new(ROOT);
    match version {
        CgroupVersion::None => Vec::new(),
        CgroupVersion::V2 => {
            let available = std::fs::read_to_string(root.join("cgroup.controllers"))
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect();
            vec![(root.to_path_buf(), available, true)]
        }
        CgroupVersion::V1 | CgroupVersion::V1Hybrid => {
            let mut out: Vec<(PathBuf, Vec<String>, bool)> = Vec::new();
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
                if let Some(h) = out.iter_mut().find(|h| h.0 == real) {
                    if !h.1.iter().any(|x| x == c) {
                        h.1.push(c.to_string());
                    }
                    continue;
                }
                let mut ctrls: Vec<String> = real
                    .file_name()
                    .map(|n| n.to_string_lossy().split(',').map(str::to_string).collect())
                    .unwrap_or_default();
                if !ctrls.iter().any(|x| x == c) {
                    ctrls.push(c.to_string());
                }
                out.push((real, ctrls, false));
            }
            let unified = root.join("unified");
            if version == CgroupVersion::V1Hybrid && unified.join("cgroup.procs").exists() {
                out.push((unified, Vec::new(), true));
            }
            out
        }
    }
}

impl Cgroup {
    /// Creates the container's cgroup (enabling the controllers it needs in its parents on
    /// v2) and applies `limits`. A limit whose controller the host lacks is an error; with no
    /// limit asked, a missing controller is not.
    pub fn create(id: &str, limits: &Limits) -> Result<Cgroup, CgroupError> {
        check_id(id)?;
        let plan = limits.plan()?;
        let version = Self::version();
        if version == CgroupVersion::None {
            return Err(CgroupError::NoCgroups(short(id)));
        }
        let found = hierarchies();
        let has = |c: &str| found.iter().any(|h| h.1.iter().any(|x| x == c));
        let how = if version == CgroupVersion::V2 {
            "enable for berth"
        } else {
            "mount"
        };
        let needs = [
            (plan.memory.is_some(), "--memory", "memory"),
            (plan.cpu_quota_us.is_some(), "--cpus", "cpu"),
            (plan.pids.is_some(), "--pids-limit", "pids"),
        ];
        for (asked, flag, controller) in needs {
            if asked && !has(controller) {
                return Err(CgroupError::MissingController {
                    flag,
                    controller,
                    how,
                });
            }
        }

        let mut cg = Cgroup {
            id: id.to_string(),
            version,
            dirs: Vec::new(),
        };
        let made = found
            .into_iter()
            .try_for_each(|(mount, controllers, unified)| {
                cg.add_hierarchy(&mount, controllers, unified, &needs)
            })
            .and_then(|()| cg.apply(&plan));
        if let Err(e) = made {
            // Leave nothing half-made behind.
            let _ = cg.remove();
            return Err(e);
        }
        Ok(cg)
    }

    /// The cgroup of an existing container.
    pub fn open(id: &str) -> Result<Cgroup, CgroupError> {
        check_id(id)?;
        let version = Self::version();
        let dirs: Vec<Dir> = hierarchies()
            .into_iter()
            .map(|(mount, controllers, unified)| {
                let path = mount.join(PARENT).join(id);
                let controllers = if version == CgroupVersion::V2 {
                    // The controllers enabled for the container are those its parent passes on.
                    std::fs::read_to_string(path.join("cgroup.controllers"))
                        .unwrap_or_default()
                        .split_whitespace()
                        .map(str::to_string)
                        .collect()
                } else {
                    controllers
                };
                Dir {
                    path,
                    controllers,
                    unified,
                }
            })
            .filter(|d| d.path.is_dir())
            .collect();
        if dirs.is_empty() {
            return Err(CgroupError::NotFound(short(id)));
        }
        Ok(Cgroup {
            id: id.to_string(),
            version,
            dirs,
        })
    }

    /// The host's cgroup version.
    pub fn version() -> CgroupVersion {
        host_layout().0
    }

    /// The container's directory in each hierarchy (for `inspect` and debugging).
    pub fn paths(&self) -> Vec<&Path> {
        self.dirs.iter().map(|d| d.path.as_path()).collect()
    }

    /// Lifts the device restriction `create` sets on v1, for `--privileged` (Docker gives a
    /// privileged container every device). Call it before any process joins.
    pub fn allow_all_devices(&self) -> Result<(), CgroupError> {
        match self.dir_with("devices") {
            Some(d) if self.version != CgroupVersion::V2 => {
                self.write(&d.path, "devices.allow", "a")
            }
            _ => Ok(()),
        }
    }

    /// Moves the calling process into the cgroup's v1 hierarchies, without the wait that
    /// [`Cgroup::add_process`] costs. A `cgroup.procs` write takes the kernel's global
    /// threadgroup lock, whose first writer waits out an RCU grace period (5 to 15 ms on this
    /// kind of VM); writing `0` to `tasks` moves only the calling thread and skips that lock.
    /// So the caller must be single-threaded (a fresh fork), which makes its thread the whole
    /// process. The v2 directory, if any, is joined through [`ForkTarget::fork`].
    pub fn join_v1_self(&self) -> Result<(), CgroupError> {
        for d in self.dirs.iter().filter(|d| !d.unified) {
            self.write(&d.path, "tasks", "0")?;
        }
        Ok(())
    }

    /// The v2 directory: cgroup v2's only one, or hybrid mode's controller-less unified one.
    fn v2_dir(&self) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|d| d.unified)
            .map(|d| d.path.as_path())
    }

    /// The cgroup's v2 directory held open, to fork children into (see [`ForkTarget`]).
    /// Opened before the caller enters another mount namespace, where the path may not be.
    pub fn fork_target(&self) -> Result<ForkTarget, CgroupError> {
        let dir = match self.v2_dir() {
            Some(dir) => Some(
                std::fs::File::open(dir)
                    .map_err(self.io_err(format!("opening cgroup {}", dir.display())))?,
            ),
            None => None,
        };
        Ok(ForkTarget {
            dir,
            pending: std::cell::Cell::new(false),
            id: short(&self.id),
        })
    }

    /// Moves a process into the cgroup, in every hierarchy; its future children follow.
    pub fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        for d in &self.dirs {
            self.write(&d.path, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// Every process in the cgroup, including those in sub-groups the container made.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let Some(dir) = self.tracking_dir() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        self.collect_pids(&dir.path, &mut out)?;
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Sends `signal` to every process in the cgroup. SIGKILL goes through `cgroup.kill` where
    /// the kernel has it (v2 and hybrid, Linux 5.14+); otherwise the group is frozen first
    /// where possible, so no process can fork a child that escapes the signal.
    pub fn kill_all(&self, signal: i32) -> Result<(), CgroupError> {
        if !(1..=64).contains(&signal) {
            return Err(CgroupError::InvalidSignal(signal));
        }
        if signal == libc::SIGKILL
            && let Some(d) = self.dirs.iter().find(|d| d.unified)
            && d.path.join("cgroup.kill").exists()
        {
            return self.write(&d.path, "cgroup.kill", "1");
        }
        let frozen = self.freeze(true).unwrap_or(false);
        let result = self.signal_each(signal);
        if frozen {
            self.freeze(false)?;
        }
        result?;
        if signal == libc::SIGKILL && !frozen {
            // Unfrozen, a process may have forked between the listing and the signal.
            let deadline = Instant::now() + SETTLE;
            while !self.pids()?.is_empty() && Instant::now() < deadline {
                self.signal_each(signal)?;
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(())
    }

    /// Whether the kernel's OOM killer killed a process of this cgroup.
    pub fn oom_killed(&self) -> bool {
        let Some(d) = self.dir_with("memory") else {
            return false;
        };
        let field = |file: &str, key: &str| -> Option<u64> {
            let text = std::fs::read_to_string(d.path.join(file)).ok()?;
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
        };
        if d.unified {
            field("memory.events", "oom_kill ").is_some_and(|n| n > 0)
        } else {
            match field("memory.oom_control", "oom_kill ") {
                Some(n) => n > 0,
                // Kernels before 4.13 do not count kills: hitting the limit is the best sign.
                None => std::fs::read_to_string(d.path.join("memory.failcnt"))
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > 0),
            }
        }
    }

    /// Removes the cgroup from every hierarchy, killing what still runs in it. Removing a
    /// cgroup that is already gone is not an error.
    pub fn remove(&self) -> Result<(), CgroupError> {
        // Usually empty by now: each directory's rmdir says (EBUSY) when it is not, and then
        // what is left is killed.
        let mut first_err = None;
        for d in &self.dirs {
            if let Err(e) = self.remove_tree(&d.path) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// A way to remove this (empty) cgroup later by handle, for a process whose paths are about
    /// to change: `__init`, whose mount namespace PID 1 pivots into the rootfs.
    pub fn remover(&self) -> Remover {
        Remover {
            dirs: self
                .dirs
                .iter()
                .filter_map(|d| {
                    let parent = cap_std::fs::Dir::open_ambient_dir(
                        d.path.parent()?,
                        cap_std::ambient_authority(),
                    )
                    .ok()?;
                    Some((parent, d.path.file_name()?.to_owned()))
                })
                .collect(),
        }
    }

    /// The directory whose `cgroup.procs` lists every process: the unified one if any (it has
    /// cgroup.kill and cgroup.freeze too), else pids', else any.
    fn tracking_dir(&self) -> Option<&Dir> {
        self.dirs
            .iter()
            .find(|d| d.unified)
            .or_else(|| self.dir_with("pids"))
            .or_else(|| self.dirs.first())
    }

    fn dir_with(&self, controller: &str) -> Option<&Dir> {
        self.dirs
            .iter()
            .find(|d| d.controllers.iter().any(|c| c == controller))
    }

    fn io_err(&self, action: String) -> impl FnOnce(std::io::Error) -> CgroupError + '_ {
        move |cause| CgroupError::Io {
            action,
            id: short(&self.id),
            cause,
        }
    }

    fn write(&self, dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
        std::fs::write(dir.join(file), value)
            .map_err(self.io_err(format!("setting {file} to {value} in {}", dir.display())))
    }

    fn mkdir(&self, path: &Path) -> Result<(), CgroupError> {
        match std::fs::create_dir(path) {
            Err(e) if e.kind() != ErrorKind::AlreadyExists => Err(self
                .io_err(format!("creating cgroup {}", path.display()))(
                e
            )),
            _ => Ok(()),
        }
    }

    /// Makes the container's directory in one hierarchy (and `berth/` above it).
    fn add_hierarchy(
        &mut self,
        mount: &Path,
        controllers: Vec<String>,
        unified: bool,
        needs: &[(bool, &'static str, &'static str)],
    ) -> Result<(), CgroupError> {
        let parent = mount.join(PARENT);
        let path = parent.join(&self.id);
        let controllers = if self.version == CgroupVersion::V2 {
            let controllers = self.enable_v2(mount, &parent, &controllers, needs)?;
            self.mkdir(&path)?;
            controllers
        } else {
            // `berth/` is there but for the first container: made only when missing, which
            // saves a syscall per hierarchy at each start.
            match std::fs::create_dir(&path) {
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    self.mkdir(&parent)?;
                    self.mkdir(&path)?;
                }
                Err(e) if e.kind() != ErrorKind::AlreadyExists => {
                    return Err(self.io_err(format!("creating cgroup {}", path.display()))(
                        e,
                    ));
                }
                _ => {}
            }
            controllers
        };
        self.dirs.push(Dir {
            path,
            controllers,
            unified,
        });
        Ok(())
    }

    /// v2: passes the controllers on from the root to `berth/`, and makes `berth/`. Returns
    /// the controllers the container will have. Those no limit needs are best effort.
    fn enable_v2(
        &self,
        root: &Path,
        parent: &Path,
        available: &[String],
        needs: &[(bool, &'static str, &'static str)],
    ) -> Result<Vec<String>, CgroupError> {
        self.mkdir(parent)?;
        let mut enabled = Vec::new();
        for c in V2_CONTROLLERS {
            if !available.iter().any(|a| a == c) {
                continue;
            }
            let needed = needs.iter().any(|n| n.0 && n.2 == *c);
            let mut ok = true;
            for dir in [root, parent] {
                let on = std::fs::read_to_string(dir.join("cgroup.subtree_control"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .any(|x| x == *c);
                if !on && let Err(e) = self.write(dir, "cgroup.subtree_control", &format!("+{c}")) {
                    if needed {
                        return Err(e);
                    }
                    ok = false;
                    break;
                }
            }
            if ok {
                enabled.push(c.to_string());
            }
        }
        Ok(enabled)
    }

    fn apply(&self, plan: &Plan) -> Result<(), CgroupError> {
        let v2 = self.version == CgroupVersion::V2;
        if let Some(d) = self.dir_with("memory") {
            let p = &d.path;
            if let Some(m) = plan.memory {
                if v2 {
                    self.write(p, "memory.max", &m.to_string())?;
                    if p.join("memory.swap.max").exists() {
                        let swap = match (plan.swap_unlimited, plan.memory_swap) {
                            (true, _) | (false, None) => "max".to_string(),
                            (false, Some(total)) => (total - m).to_string(),
                        };
                        self.write(p, "memory.swap.max", &swap)?;
                    }
                } else {
                    // memsw must never be below the memory limit: memory first, as both
                    // start unlimited.
                    self.write(p, "memory.limit_in_bytes", &m.to_string())?;
                    // Without swap accounting there is no memsw file: the swap limit is moot.
                    if p.join("memory.memsw.limit_in_bytes").exists() {
                        let total = match (plan.swap_unlimited, plan.memory_swap) {
                            (true, _) | (false, None) => "-1".to_string(),
                            (false, Some(total)) => total.to_string(),
                        };
                        self.write(p, "memory.memsw.limit_in_bytes", &total)?;
                    }
                    if plan.memory_swap == Some(m) {
                        // Not writable in every setup (the root's, some kernels): best effort.
                        let _ = std::fs::write(p.join("memory.swappiness"), "0");
                    }
                }
            }
        }
        if let (Some(quota), Some(d)) = (plan.cpu_quota_us, self.dir_with("cpu")) {
            if v2 {
                self.write(&d.path, "cpu.max", &format!("{quota} {CFS_PERIOD_US}"))?;
            } else {
                self.write(&d.path, "cpu.cfs_period_us", &CFS_PERIOD_US.to_string())?;
                self.write(&d.path, "cpu.cfs_quota_us", &quota.to_string())?;
            }
        }
        if let (Some(pids), Some(d)) = (plan.pids, self.dir_with("pids")) {
            self.write(&d.path, "pids.max", &pids.to_string())?;
        }
        if !v2 && let Some(d) = self.dir_with("devices") {
            self.write(&d.path, "devices.deny", "a")?;
            // One rule per write, through one open file.
            let allow = d.path.join("devices.allow");
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(&allow)
                .map_err(self.io_err(format!("opening {}", allow.display())))?;
            for rule in DEFAULT_DEVICES {
                std::io::Write::write_all(&mut f, rule.as_bytes()).map_err(self.io_err(
                    format!("setting devices.allow to {rule} in {}", d.path.display()),
                ))?;
            }
        }
        Ok(())
    }

    fn collect_pids(&self, dir: &Path, out: &mut Vec<i32>) -> Result<(), CgroupError> {
        let procs = dir.join("cgroup.procs");
        let mut text = String::new();
        match std::fs::File::open(&procs).and_then(|mut f| f.read_to_string(&mut text)) {
            Ok(_) => {}
            // Removed meanwhile (a sub-group the container deleted): nothing in it.
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.io_err(format!("reading {}", procs.display()))(e)),
        }
        out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        for sub in subgroups(dir) {
            self.collect_pids(&sub, out)?;
        }
        Ok(())
    }

    fn signal_each(&self, signal: i32) -> Result<(), CgroupError> {
        for pid in self.pids()? {
            // SAFETY: kill has no memory effects; the pid comes from the cgroup.
            if unsafe { libc::kill(pid, signal) } != 0 {
                let e = std::io::Error::last_os_error();
                // Gone since the listing: fine.
                if e.raw_os_error() != Some(libc::ESRCH) {
                    return Err(self
                        .io_err(format!("sending signal {signal} to process {pid}"))(
                        e
                    ));
                }
            }
        }
        Ok(())
    }

    /// Freezes (or thaws) the cgroup. Returns whether it is frozen, false when this host has
    /// no freezer for it.
    fn freeze(&self, on: bool) -> Result<bool, CgroupError> {
        let deadline = Instant::now() + SETTLE;
        if let Some(d) = self.dirs.iter().find(|d| d.unified)
            && d.path.join("cgroup.freeze").exists()
        {
            self.write(&d.path, "cgroup.freeze", if on { "1" } else { "0" })?;
            if !on {
                return Ok(false);
            }
            let events = d.path.join("cgroup.events");
            while Instant::now() < deadline {
                let text = std::fs::read_to_string(&events).unwrap_or_default();
                if text.lines().any(|l| l == "frozen 1") {
                    return Ok(true);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            self.write(&d.path, "cgroup.freeze", "0")?;
            return Ok(false);
        }
        if let Some(d) = self.dir_with("freezer") {
            self.write(
                &d.path,
                "freezer.state",
                if on { "FROZEN" } else { "THAWED" },
            )?;
            if !on {
                return Ok(false);
            }
            while Instant::now() < deadline {
                let state =
                    std::fs::read_to_string(d.path.join("freezer.state")).unwrap_or_default();
                if state.trim() == "FROZEN" {
                    return Ok(true);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            self.write(&d.path, "freezer.state", "THAWED")?;
        }
        Ok(false)
    }

    /// Removes `dir` and the sub-groups the container made in it, deepest first, retrying
    /// while the last killed processes are being reaped.
    fn remove_tree(&self, dir: &Path) -> Result<(), CgroupError> {
        let deadline = Instant::now() + SETTLE;
        let mut killed = false;
        loop {
            match std::fs::remove_dir(dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                // Busy: it has subgroups (the workload made them), or processes.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    if Instant::now() >= deadline {
                        return Err(CgroupError::Busy {
                            path: dir.to_path_buf(),
                            id: short(&self.id),
                        });
                    }
                    for sub in subgroups(dir) {
                        self.remove_tree(&sub)?;
                    }
                    if !killed {
                        self.kill_all(libc::SIGKILL)?;
                        killed = true;
                    } else {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                Err(e) => {
                    return Err(self.io_err(format!("removing cgroup {}", dir.display()))(e));
                }
            }
        }
    }
}

/// A cgroup's directories as handles on their parents (see [`Cgroup::remover`]).
pub struct Remover {
    dirs: Vec<(cap_std::fs::Dir, std::ffi::OsString)>,
}

impl Remover {
    /// Removes the cgroup and the sub-groups its processes made, as [`Cgroup::remove`] does: a
    /// directory still busy (a `berth exec` helper that joined it and has not ended yet) has
    /// what runs in it killed, and its removal is tried again for a while.
    pub fn remove(&self) {
        fn remove_in(parent: &cap_std::fs::Dir, name: &std::ffi::OsStr, deadline: Instant) {
            loop {
                match parent.remove_dir(name) {
                    Ok(()) => return,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                    Err(_) => return,
                }
                if Instant::now() >= deadline {
                    return;
                }
                if let Ok(dir) = parent.open_dir(name) {
                    if let Ok(entries) = dir.entries() {
                        for e in entries.flatten() {
                            if e.file_type().is_ok_and(|t| t.is_dir()) {
                                remove_in(&dir, &e.file_name(), deadline);
                            }
                        }
                    }
                    let procs = dir.read_to_string("cgroup.procs").unwrap_or_default();
                    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                        // SAFETY: kill has no memory effects.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let deadline = Instant::now() + SETTLE;
        for (parent, name) in &self.dirs {
            remove_in(parent, name, deadline);
        }
    }
}

/// The sub-groups of a cgroup directory.
fn subgroups(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

/// Where [`ForkTarget::fork`] puts a child: a cgroup's v2 directory, held open. The default
/// one has none: its `fork` is a plain fork.
#[derive(Debug, Default)]
pub struct ForkTarget {
    /// The v2 directory; `None` on a v1-only host.
    dir: Option<std::fs::File>,
    /// In a child forked without `clone3`: it has yet to join the v2 directory.
    pending: std::cell::Cell<bool>,
    /// The container (shortened), for errors.
    id: String,
}

impl ForkTarget {
    /// Forks, as `fork(2)`, with the child born in the v2 directory (if there is one):
    /// `clone3` with `CLONE_INTO_CGROUP` takes the threadgroup lock only for reading, so no
    /// grace period is waited out (see [`Cgroup::join_v1_self`]). The child inherits the
    /// caller's v1 cgroups. Where the kernel or a seccomp filter refuses (before 5.7), a
    /// plain fork, after which the child must call [`ForkTarget::finish_join`] (a slower
    /// `cgroup.procs` write, the same result).
    ///
    /// # Safety
    ///
    /// As `fork`: in a multi-threaded caller the child may only call async-signal-safe
    /// functions. Also, after `clone3` the child's libc thread descriptor keeps the parent's
    /// thread id (libc's own fork would update it): until it execs, the child must not aim
    /// pthread calls at its main thread by id from another thread (`pthread_kill` of it,
    /// priority-inheriting mutexes). berth's PID 1 either execs or runs wasmtime, which
    /// does neither.
    pub unsafe fn fork(&self) -> Result<nix::unistd::ForkResult, CgroupError> {
        use nix::unistd::{ForkResult, Pid};
        use std::os::fd::AsRawFd;
        let Some(dir) = &self.dir else {
            // SAFETY: the caller upholds fork's contract.
            return unsafe { nix::unistd::fork() }.map_err(|e| self.err("forking", e.into()));
        };
        /// The kernel's `struct clone_args`, up to `cgroup` (its second version).
        #[repr(C)]
        #[derive(Default)]
        struct CloneArgs {
            flags: u64,
            pidfd: u64,
            child_tid: u64,
            parent_tid: u64,
            exit_signal: u64,
            stack: u64,
            stack_size: u64,
            tls: u64,
            set_tid: u64,
            set_tid_size: u64,
            cgroup: u64,
        }
        const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
        let args = CloneArgs {
            flags: CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: dir.as_raw_fd() as u64,
            ..Default::default()
        };
        // SAFETY: a clone3 without CLONE_VM or a stack of its own is a fork; `args` outlives
        // the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        match ret {
            0 => Ok(ForkResult::Child),
            pid if pid > 0 => Ok(ForkResult::Parent {
                child: Pid::from_raw(pid as i32),
            }),
            _ => {
                let e = std::io::Error::last_os_error();
                // No clone3 (before 5.3), no CLONE_INTO_CGROUP (before 5.7), or a seccomp
                // filter of an outer container that refuses clone3.
                if !matches!(
                    e.raw_os_error(),
                    Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL | libc::EPERM)
                ) {
                    return Err(self.err("forking into the cgroup", e));
                }
                // SAFETY: the caller upholds fork's contract.
                let forked =
                    unsafe { nix::unistd::fork() }.map_err(|e| self.err("forking", e.into()))?;
                self.pending.set(forked.is_child());
                Ok(forked)
            }
        }
    }

    /// In the child of [`ForkTarget::fork`]: joins the v2 directory if `clone3` could not put
    /// it there.
    pub fn finish_join(&self) -> Result<(), CgroupError> {
        let Some(dir) = self.dir.as_ref().filter(|_| self.pending.get()) else {
            return Ok(());
        };
        let procs = rustix::fs::openat(
            dir,
            "cgroup.procs",
            rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| self.err("opening cgroup.procs", e.into()))?;
        std::io::Write::write_all(
            &mut std::fs::File::from(procs),
            std::process::id().to_string().as_bytes(),
        )
        .map_err(|e| self.err("joining the cgroup", e))?;
        self.pending.set(false);
        Ok(())
    }

    fn err(&self, action: &str, cause: std::io::Error) -> CgroupError {
        CgroupError::Io {
            action: action.to_string(),
            id: self.id.clone(),
            cause,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Child, Command, Stdio};

    #[test]
    fn limits_are_checked_like_docker() {
        let plan = |l: Limits| l.plan();
        let mib = 1024 * 1024;
        let p = plan(Limits {
            memory: Some(32 * mib),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(p.memory, Some(32 * mib));
        assert_eq!(p.memory_swap, Some(32 * mib), "no swap by default");
        let p = plan(Limits {
            memory: Some(32 * mib),
            memory_swap: Some(-1),
            ..Default::default()
        })
        .unwrap();
        assert!(p.swap_unlimited);
        let p = plan(Limits {
            memory: Some(32 * mib),
            memory_swap: Some(64 * mib as i64),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(p.memory_swap, Some(64 * mib));
        let p = plan(Limits {
            cpus: Some(0.5),
            pids: Some(5),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((p.cpu_quota_us, p.pids), (Some(50_000), Some(5)));
        let p = plan(Limits {
            cpus: Some(0.0),
            pids: Some(-1),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(p, Plan::default());

        let bad = |l: Limits, needle: &str| {
            let e = plan(l).unwrap_err().to_string();
            assert!(e.contains(needle), "{e:?} lacks {needle:?}");
        };
        bad(
            Limits {
                memory: Some(1024),
                ..Default::default()
            },
            "--memory 1024 is below the minimum",
        );
        bad(
            Limits {
                memory_swap: Some(64 * mib as i64),
                ..Default::default()
            },
            "--memory-swap needs --memory",
        );
        bad(
            Limits {
                memory: Some(64 * mib),
                memory_swap: Some(32 * mib as i64),
                ..Default::default()
            },
            "smaller than --memory",
        );
        bad(
            Limits {
                cpus: Some(0.001),
                ..Default::default()
            },
            "--cpus 0.001",
        );
        bad(
            Limits {
                cpus: Some(f64::NAN),
                ..Default::default()
            },
            "--cpus NaN",
        );
    }

    #[test]
    fn ids_must_be_plain_names() {
        for id in ["", "..", "../x", "a/b", ".hidden", "a b"] {
            assert!(
                matches!(check_id(id), Err(CgroupError::InvalidId(_))),
                "{id:?}"
            );
        }
        check_id("3f2a0c1d9e8b_test-1.x").unwrap();
    }

    #[test]
    fn missing_controller_message_names_flag_and_controller() {
        let e = CgroupError::MissingController {
            flag: "--memory",
            controller: "memory",
            how: "mount",
        };
        assert_eq!(
            e.to_string(),
            "--memory needs the memory cgroup controller, which this host does not mount"
        );
    }

    /// Removes the cgroup (killing what runs in it) even when a test fails.
    struct Guard(Cgroup);

    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill_all(libc::SIGKILL);
            let _ = self.0.remove();
        }
    }

    fn usable() -> bool {
        let ok = rustix::process::geteuid().is_root() && Cgroup::version() != CgroupVersion::None;
        if !ok {
            eprintln!("skipped: needs root and a cgroup hierarchy");
        }
        ok
    }

    fn unique(name: &str) -> String {
        format!("berth-test-{}-{name}", std::process::id())
    }

    fn read(cg: &Cgroup, controller: &str, file: &str) -> String {
        let d = cg.dir_with(controller).unwrap();
        std::fs::read_to_string(d.path.join(file))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Starts `sh -c script` held at a `read` until [`go`], so it can join the cgroup first.
    fn held(script: &str) -> Child {
        Command::new("sh")
            .arg("-c")
            .arg(format!("read _\n{script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn go(child: &mut Child) {
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    }

    #[test]
    fn limits_are_written_and_processes_tracked_killed_and_removed() {
        if !usable() {
            return;
        }
        let mib = 1024 * 1024;
        let limits = Limits {
            memory: Some(64 * mib),
            memory_swap: None,
            cpus: Some(0.5),
            pids: Some(20),
        };
        let cg = Guard(Cgroup::create(&unique("basic"), &limits).unwrap());
        let paths: Vec<PathBuf> = cg.0.paths().iter().map(|p| p.to_path_buf()).collect();
        assert!(
            paths
                .iter()
                .all(|p| p.is_dir() && p.parent().unwrap().ends_with(PARENT))
        );
        if Cgroup::version() == CgroupVersion::V2 {
            assert_eq!(read(&cg.0, "memory", "memory.max"), (64 * mib).to_string());
            assert_eq!(read(&cg.0, "cpu", "cpu.max"), "50000 100000");
        } else {
            assert_eq!(
                read(&cg.0, "memory", "memory.limit_in_bytes"),
                (64 * mib).to_string()
            );
            assert_eq!(read(&cg.0, "cpu", "cpu.cfs_quota_us"), "50000");
            assert_eq!(read(&cg.0, "cpu", "cpu.cfs_period_us"), "100000");
            if cg
                .0
                .dir_with("memory")
                .unwrap()
                .path
                .join("memory.memsw.limit_in_bytes")
                .exists()
            {
                assert_eq!(
                    read(&cg.0, "memory", "memory.memsw.limit_in_bytes"),
                    (64 * mib).to_string()
                );
            }
            if cg.0.dir_with("devices").is_some() {
                let list = read(&cg.0, "devices", "devices.list");
                assert!(
                    list.contains("c 1:3 rwm") && !list.contains("a *:* rwm"),
                    "{list}"
                );
            }
        }
        assert_eq!(read(&cg.0, "pids", "pids.max"), "20");

        // open finds the same directories.
        let opened = Cgroup::open(&cg.0.id).unwrap();
        assert_eq!(opened.paths(), cg.0.paths());

        let mut child = held("exec sleep 30");
        cg.0.add_process(child.id() as i32).unwrap();
        go(&mut child);
        assert_eq!(cg.0.pids().unwrap(), vec![child.id() as i32]);
        assert!(!cg.0.oom_killed());

        cg.0.kill_all(libc::SIGKILL).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");

        cg.0.remove().unwrap();
        assert!(paths.iter().all(|p| !p.exists()), "{paths:?}");
        assert!(matches!(
            Cgroup::open(&cg.0.id),
            Err(CgroupError::NotFound(_))
        ));
        // Removing again is fine.
        cg.0.remove().unwrap();
    }

    #[test]
    fn kill_all_reaches_every_process_and_other_signals_work() {
        if !usable() {
            return;
        }
        let cg = Guard(Cgroup::create(&unique("killall"), &Limits::default()).unwrap());
        let mut child = held("sleep 30 & sleep 30 & trap 'exit 7' TERM; wait");
        cg.0.add_process(child.id() as i32).unwrap();
        go(&mut child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while cg.0.pids().unwrap().len() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(cg.0.pids().unwrap().len(), 3);
        cg.0.kill_all(libc::SIGTERM).unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(7));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cg.0.pids().unwrap().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(cg.0.pids().unwrap().is_empty());
        assert!(cg.0.kill_all(0).is_err());
    }

    #[test]
    fn kill_all_without_cgroup_kill_freezes_or_repeats() {
        if !usable() {
            return;
        }
        let cg = Guard(Cgroup::create(&unique("fallback"), &Limits::default()).unwrap());
        // As an older kernel or a v1-only host would see it: no cgroup.kill, then no freezer.
        let mut v1_freezer = cg.0.clone();
        v1_freezer.dirs.retain(|d| !d.unified);
        let mut bare = v1_freezer.clone();
        bare.dirs
            .retain(|d| !d.controllers.iter().any(|c| c == "freezer"));
        assert!(cg.0.freeze(true).unwrap(), "cgroup.freeze");
        cg.0.freeze(false).unwrap();
        if v1_freezer.dir_with("freezer").is_some() {
            assert!(v1_freezer.freeze(true).unwrap(), "freezer.state");
            v1_freezer.freeze(false).unwrap();
        }
        assert!(!bare.freeze(true).unwrap());
        for (what, view) in [("v1 freezer", &v1_freezer), ("no freezer", &bare)] {
            let mut child = held("sleep 30 & sleep 30 & wait");
            cg.0.add_process(child.id() as i32).unwrap();
            go(&mut child);
            let deadline = Instant::now() + Duration::from_secs(5);
            while view.pids().unwrap().len() < 3 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            assert_eq!(view.pids().unwrap().len(), 3, "{what}");
            view.kill_all(libc::SIGKILL).unwrap();
            assert_eq!(
                child.wait().unwrap().signal(),
                Some(libc::SIGKILL),
                "{what}"
            );
            let deadline = Instant::now() + Duration::from_secs(5);
            while !view.pids().unwrap().is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            assert!(view.pids().unwrap().is_empty(), "{what}");
        }
    }

    #[test]
    fn remove_kills_what_still_runs() {
        if !usable() {
            return;
        }
        let cg = Guard(Cgroup::create(&unique("remove"), &Limits::default()).unwrap());
        let mut child = held("exec sleep 30");
        cg.0.add_process(child.id() as i32).unwrap();
        go(&mut child);
        cg.0.remove().unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
        assert!(cg.0.paths().iter().all(|p| !p.exists()));
    }

    #[test]
    fn memory_hog_is_oom_killed() {
        if !usable() {
            return;
        }
        let limits = Limits {
            memory: Some(32 * 1024 * 1024),
            ..Default::default()
        };
        let cg = Guard(Cgroup::create(&unique("oom"), &limits).unwrap());
        // tail keeps the whole line (no newline in 200 MB of zeros) in memory.
        let mut child = held("head -c 200000000 /dev/zero | tail");
        cg.0.add_process(child.id() as i32).unwrap();
        go(&mut child);
        let status = child.wait().unwrap();
        // The OOM killer picks tail, the biggest: the shell reports 128 + SIGKILL.
        assert!(
            status.code() == Some(128 + libc::SIGKILL) || status.signal() == Some(libc::SIGKILL),
            "{status:?}"
        );
        assert!(cg.0.oom_killed());
    }

    #[test]
    fn pids_limit_stops_forks() {
        if !usable() {
            return;
        }
        let limits = Limits {
            pids: Some(5),
            ..Default::default()
        };
        let cg = Guard(Cgroup::create(&unique("pids"), &limits).unwrap());
        // A bounded fork loop, so a broken limit cannot take the machine down.
        let mut child = held("for i in 1 2 3 4 5 6 7 8 9 10; do sleep 30 & done; echo forked");
        cg.0.add_process(child.id() as i32).unwrap();
        go(&mut child);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut most = 0;
        while Instant::now() < deadline {
            most = most.max(cg.0.pids().unwrap().len());
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        cg.0.kill_all(libc::SIGKILL).unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(stderr.contains("fork"), "forks did not fail: {stderr:?}");
        assert!(most <= 5, "{most} processes");
    }

    #[test]
    fn privileged_keeps_every_device() {
        if !usable() {
            return;
        }
        let cg = Guard(Cgroup::create(&unique("devices"), &Limits::default()).unwrap());
        cg.0.allow_all_devices().unwrap();
        if cg.0.dir_with("devices").is_some() {
            assert_eq!(read(&cg.0, "devices", "devices.list"), "a *:* rwm");
        }
    }

    #[test]
    fn unknown_container_is_not_found() {
        if !usable() {
            return;
        }
        assert!(matches!(
            Cgroup::open(&unique("never-made")),
            Err(CgroupError::NotFound(_))
        ));
    }
}
