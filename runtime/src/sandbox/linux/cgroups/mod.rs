//! A native container's cgroup: its limits, its processes, killing them all, and whether the
//! OOM killer struck. cgroup v2, v1, and systemd's hybrid mode (v1 controllers beside an
//! empty v2 hierarchy) are all handled.
//!
//! Layout, with a `berth` parent group so `systemd-cgls` and people can tell what it is:
//! - v2: `/sys/fs/cgroup/berth/<id>`;
//! - v1: `/sys/fs/cgroup/<controller>/berth/<id>` for each controller berth uses (memory, cpu,
//!   cpuacct, pids, freezer, devices; cpuset and blkio when a limit asks for them), once per
//!   hierarchy when controllers are co-mounted;
//! - hybrid: the v1 directories plus `/sys/fs/cgroup/unified/berth/<id>`, which brings v2's
//!   race-free `cgroup.kill` and `cgroup.freeze` even though the controllers live in v1.
//!
//! On v1 the devices controller also limits the container to Docker's default devices
//! (null, zero, full, random, urandom, tty, ptmx, pts; mknod of any), since the default
//! capabilities include MKNOD. v2 needs a BPF device program for that, which this module does
//! not install.
//!
//! [`CgroupRoot`] says where the hierarchies are (the host's, or a folder laid out as
//! /sys/fs/cgroup); `plan` turns [`Limits`] into values, `v1` and `v2` write them.

use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::host::CgroupVersion;
use crate::workload::Limits;

mod fork;
mod plan;
mod root;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tree_tests;
mod v1;
mod v2;

pub use fork::ForkTarget;
pub use root::{CgroupRoot, probe_host};

use plan::Plan;
use root::{Hierarchy, OPTIONAL};

/// The group all containers' groups live in.
const PARENT: &str = "berth";
/// How long to wait for a freeze, or for a cgroup to empty before removing it.
const SETTLE: Duration = Duration::from_secs(2);

/// What can go wrong with a cgroup.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// An id that cannot name a directory safely.
    #[error("invalid container id {0:?} for a cgroup: use letters, digits, '_', '.' and '-'")]
    InvalidId(String),
    /// A runtime spec's `linux.cgroupsPath` that cannot name a group safely.
    #[error(
        "invalid cgroupsPath {0:?}: give a path of names made of letters, digits, '_', '.', '-', ':' and '@', with no '..', or systemd's slice:prefix:name"
    )]
    InvalidPath(String),
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
    /// A limit whose controller this host has, but without the file it needs.
    #[error("{flag} cannot be applied on this host: {why}; run without {flag}")]
    Unsupported {
        /// The flag that asked for it.
        flag: &'static str,
        /// What the kernel lacks.
        why: String,
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

/// Where a container's group is below each hierarchy's mount: `berth/<id>` for berth's own
/// containers, or what a runtime spec's `linux.cgroupsPath` says (containerd's shim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupPath(PathBuf);

impl CgroupPath {
    /// `berth/<id>`.
    pub fn of_container(id: &str) -> Result<CgroupPath, CgroupError> {
        check_id(id)?;
        Ok(CgroupPath(Path::new(PARENT).join(id)))
    }

    /// A spec's `linux.cgroupsPath`: a path (`/default/ctr`, relative to each hierarchy's
    /// root, as runc takes it) or systemd's `slice:prefix:name`, laid out as systemd would
    /// (`a-b.slice` in `a.slice`, the group `prefix-name.scope`). Nothing above the
    /// hierarchy's root, and no name the kernel gives a meaning (`cgroup.*`, a controller's
    /// file), can be reached.
    pub fn from_spec(given: &str) -> Result<CgroupPath, CgroupError> {
        let bad = || CgroupError::InvalidPath(given.to_string());
        let parts: Vec<String> = match given.split(':').collect::<Vec<_>>()[..] {
            [slice, prefix, name] if !given.starts_with('/') => {
                let mut parts = systemd_slice(slice).ok_or_else(bad)?;
                parts.push(if prefix.is_empty() {
                    format!("{name}.scope")
                } else {
                    format!("{prefix}-{name}.scope")
                });
                parts
            }
            _ => given
                .split('/')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect(),
        };
        let fine = |c: &String| {
            !c.is_empty()
                && c.len() <= 255
                && !c.starts_with('.')
                && !c.starts_with("cgroup.")
                && !c.contains('/')
                && c.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b':' | b'@')
                })
        };
        if parts.is_empty() || parts.len() > 32 || !parts.iter().all(fine) {
            return Err(bad());
        }
        Ok(CgroupPath(parts.iter().collect()))
    }

    /// The path, relative to a hierarchy's mount.
    pub fn as_path(&self) -> &Path {
        &self.0
    }
}

/// systemd's folders for a slice: `a-b.slice` is `a.slice/a-b.slice`; `-.slice` and an empty
/// one are the root.
fn systemd_slice(slice: &str) -> Option<Vec<String>> {
    if slice.is_empty() || slice == "-.slice" {
        return Some(Vec::new());
    }
    let stem = slice.strip_suffix(".slice")?;
    if stem.is_empty() || stem.starts_with('-') || stem.ends_with('-') || stem.contains("--") {
        return None;
    }
    let words: Vec<&str> = stem.split('-').collect();
    Some(
        (1..=words.len())
            .map(|n| format!("{}.slice", words[..n].join("-")))
            .collect(),
    )
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

impl Cgroup {
    /// Creates the container's cgroup on this host (see [`Cgroup::create_in`]).
    pub fn create(id: &str, limits: &Limits) -> Result<Cgroup, CgroupError> {
        Self::create_in(CgroupRoot::host(), id, limits)
    }

    /// Creates the container's cgroup under `root` (enabling the controllers it needs in its
    /// parents on v2) and applies `limits`. A limit whose controller the host lacks is an
    /// error; with no limit asked, a missing controller is not. cpuset and blkio/io are joined
    /// only when a limit needs them.
    pub fn create_in(root: &CgroupRoot, id: &str, limits: &Limits) -> Result<Cgroup, CgroupError> {
        Self::create_at_in(root, id, &CgroupPath::of_container(id)?, limits)
    }

    /// Creates the group at `path` on this host for the container `id` (which only names it
    /// in messages), as [`Cgroup::create_in`] does.
    pub fn create_at(id: &str, path: &CgroupPath, limits: &Limits) -> Result<Cgroup, CgroupError> {
        Self::create_at_in(CgroupRoot::host(), id, path, limits)
    }

    /// [`Cgroup::create_at`] under `root`.
    pub fn create_at_in(
        root: &CgroupRoot,
        id: &str,
        path: &CgroupPath,
        limits: &Limits,
    ) -> Result<Cgroup, CgroupError> {
        let plan = Plan::of(limits)?;
        let version = root.version;
        if version == CgroupVersion::None {
            return Err(CgroupError::NoCgroups(short(id)));
        }
        let v2 = version == CgroupVersion::V2;
        let needs = plan.needs();
        let controller = |n: &plan::Need| if v2 { n.v2 } else { n.v1 };
        for n in needs.iter().filter(|n| n.asked) {
            if !root.has(controller(n)) {
                return Err(CgroupError::MissingController {
                    flag: n.flag,
                    controller: controller(n),
                    how: if v2 { "enable for berth" } else { "mount" },
                });
            }
        }
        let asked = |c: &str| needs.iter().any(|n| n.asked && controller(n) == c);
        let joined = |h: &&Hierarchy| {
            h.unified
                || h.controllers
                    .iter()
                    .any(|c| asked(c) || !OPTIONAL.contains(&c.as_str()))
        };
        let mut cg = Cgroup {
            id: id.to_string(),
            version,
            dirs: Vec::new(),
        };
        let made = root
            .hierarchies
            .iter()
            .filter(joined)
            .try_for_each(|h| cg.add_hierarchy(h, path.as_path(), &asked))
            .and_then(|()| {
                if v2 {
                    v2::apply(&cg, &plan)
                } else {
                    v1::apply(&cg, &plan)
                }
            });
        if let Err(e) = made {
            // Leave nothing half-made behind.
            let _ = cg.remove();
            return Err(e);
        }
        Ok(cg)
    }

    /// The cgroup of an existing container on this host.
    pub fn open(id: &str) -> Result<Cgroup, CgroupError> {
        Self::open_in(CgroupRoot::host(), id)
    }

    /// The cgroup of an existing container under `root`.
    pub fn open_in(root: &CgroupRoot, id: &str) -> Result<Cgroup, CgroupError> {
        Self::open_at_in(root, id, &CgroupPath::of_container(id)?)
    }

    /// The group at `path` on this host, of the container `id`.
    pub fn open_at(id: &str, path: &CgroupPath) -> Result<Cgroup, CgroupError> {
        Self::open_at_in(CgroupRoot::host(), id, path)
    }

    /// [`Cgroup::open_at`] under `root`.
    pub fn open_at_in(root: &CgroupRoot, id: &str, at: &CgroupPath) -> Result<Cgroup, CgroupError> {
        let version = root.version;
        let dirs: Vec<Dir> = root
            .hierarchies
            .iter()
            .map(|h| {
                let path = h.mount.join(at.as_path());
                let controllers = if version == CgroupVersion::V2 {
                    // The controllers enabled for the container are those its parent passes on.
                    root::words(&path.join("cgroup.controllers"))
                } else {
                    h.controllers.clone()
                };
                Dir {
                    path,
                    controllers,
                    unified: h.unified,
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
        CgroupRoot::host().version
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

    /// Writes each of `lines` to `file` through one open file, as the kernel takes one rule
    /// per write.
    fn write_each<S: AsRef<str>>(
        &self,
        dir: &Path,
        file: &str,
        lines: &[S],
    ) -> Result<(), CgroupError> {
        let path = dir.join(file);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(self.io_err(format!("opening {}", path.display())))?;
        for line in lines {
            let line = line.as_ref();
            std::io::Write::write_all(&mut f, line.as_bytes()).map_err(self.io_err(format!(
                "setting {file} to {} in {}",
                line.trim_end(),
                dir.display()
            )))?;
        }
        Ok(())
    }

    /// Writes each of `lines` to `file`, a file a limit's `flag` needs and the kernel may
    /// lack (a feature not built in).
    fn write_rules(
        &self,
        dir: &Path,
        file: &str,
        flag: &'static str,
        lines: &[String],
    ) -> Result<(), CgroupError> {
        if !dir.join(file).exists() {
            return Err(CgroupError::Unsupported {
                flag,
                why: format!("its kernel offers no {file}"),
            });
        }
        self.write_each(dir, file, lines)
    }

    /// Makes the container's directory at `rel` in one hierarchy (and the groups above it).
    fn add_hierarchy(
        &mut self,
        h: &Hierarchy,
        rel: &Path,
        asked: &dyn Fn(&str) -> bool,
    ) -> Result<(), CgroupError> {
        // The mount, each group down to the container's, and the container's.
        let mut chain = vec![h.mount.clone()];
        for c in rel.components() {
            let next = chain[chain.len() - 1].join(c);
            chain.push(next);
        }
        let path = chain[chain.len() - 1].clone();
        let controllers = if self.version == CgroupVersion::V2 {
            let controllers = v2::enable(self, &chain[..chain.len() - 1], &h.controllers, asked)?;
            self.mkdir(&path)?;
            controllers
        } else {
            // The groups above are there but for the first container: made only when
            // missing, which saves a syscall per hierarchy at each start.
            match std::fs::create_dir(&path) {
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    for dir in &chain[1..] {
                        self.mkdir(dir)?;
                    }
                }
                Err(e) if e.kind() != ErrorKind::AlreadyExists => {
                    return Err(self.io_err(format!("creating cgroup {}", path.display()))(
                        e,
                    ));
                }
                _ => {}
            }
            if h.controllers.iter().any(|c| c == "cpuset") {
                let chain: Vec<&Path> = chain.iter().map(PathBuf::as_path).collect();
                v1::inherit_cpuset(self, &chain)?;
            }
            h.controllers.clone()
        };
        self.dirs.push(Dir {
            path,
            controllers,
            unified: h.unified,
        });
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

    /// Freezes every process of the cgroup until [`Cgroup::thaw`] (`berth pause`): the v2
    /// `cgroup.freeze`, else the v1 freezer.
    pub fn pause(&self) -> Result<(), CgroupError> {
        if self.freeze(true)? {
            Ok(())
        } else {
            Err(CgroupError::Unsupported {
                flag: "pause",
                why: "the container's cgroup has no freezer (v2 cgroup.freeze or the v1 freezer controller), or it did not freeze within 2 s".into(),
            })
        }
    }

    /// Thaws a frozen cgroup (`berth unpause`).
    pub fn thaw(&self) -> Result<(), CgroupError> {
        self.freeze(false).map(|_| ())
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

#[cfg(test)]
mod path_tests {
    use super::*;

    #[test]
    fn spec_paths_stay_below_the_hierarchy() {
        let p = |s: &str| CgroupPath::from_spec(s).map(|c| c.as_path().to_path_buf());
        assert_eq!(p("/default/t1").unwrap(), Path::new("default/t1"));
        assert_eq!(
            p("/kubepods/besteffort/pod1/abc").unwrap(),
            Path::new("kubepods/besteffort/pod1/abc")
        );
        assert_eq!(
            p("kubepods-besteffort-pod1.slice:cri-containerd:abc").unwrap(),
            Path::new(
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope"
            )
        );
        for bad in [
            "",
            "/",
            "/a/../../etc",
            "/a/./b",
            "/cgroup.procs",
            "/a b",
            ".hidden",
            "-.slice:x:../y",
        ] {
            assert!(p(bad).is_err(), "{bad:?} was taken");
        }
        assert_eq!(
            CgroupPath::of_container("abc").unwrap().as_path(),
            Path::new("berth/abc")
        );
    }
}
