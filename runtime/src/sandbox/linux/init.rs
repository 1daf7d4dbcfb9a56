//! The container's first processes, started by the monitor as `berth __init CONFIG FD`, or
//! forked by it and run in place (`container::spawn`).
//!
//! `__init` is single-threaded (a fresh exec of berth, or a fork of a single-threaded
//! monitor): it may unshare and fork freely (nothing unsafe runs between a fork and an exec
//! in a threaded process). It joins
//! the container's cgroup, unshares the namespaces and forks PID 1 of the new pid namespace,
//! then waits for it, reports its exit code on the exit pipe and exits with it. With `--rm` it
//! then also removes the cgroup and the container's folder, which the monitor hands it on the
//! cleanup pipe, so the monitor need not wait for either (see `end_with_cleanup`). PID 1
//! builds the rootfs, pivots into it, drops privileges and execs the workload (or, with
//! `--init`, forks it and reaps zombies; with `--rm`, a WASI guest's PID 1 reports its exit
//! code itself the moment the guest ends).
//!
//! PID 1 is `pid1.rs`. Progress goes to the monitor over the status pipe `FD` as typed
//! messages (`status.rs`): the container's pid, and why the workload could not start if it
//! could not. A successful start closes the pipe.

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};
use serde::{Deserialize, Serialize};

use super::rootfs::RootfsPlan;
use super::status::{self, StatusMessage};
use super::{cgroups, pid1, userns};
use crate::backend::Backend;
use crate::sandbox::wasi::{self, launch};
use crate::workload::{NetworkMode, StartError, WorkloadSpec};

/// What the monitor hands `__init`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitConfig {
    /// The container id (names its cgroup).
    pub id: String,
    /// What to run.
    pub spec: WorkloadSpec,
    /// The rootfs to build.
    pub rootfs: RootfsPlan,
    /// PID 1 joins the container's cgroup itself (made by the monitor), as it is forked; else
    /// the monitor moves it (a user namespace's root cannot write the host's cgroup files).
    pub cgroup: bool,
    /// The store's compiled-module cache, for a WASI program (opened before the pivot hides it).
    #[serde(default)]
    pub wasm_cache: Option<wasi::cache::CacheLocation>,
    /// The WASI program's digest, when the monitor knows it.
    #[serde(default)]
    pub wasm_module: Option<wasi::KnownModule>,
    /// The exit pipe's fd: `__init` writes the container's exit code on it before it exits
    /// (with `--rm`, a WASI guest's PID 1 may have written it first: the monitor reads the
    /// first line).
    #[serde(default)]
    pub exit_fd: Option<RawFd>,
    /// The ready pipe's fd: the monitor writes a byte on it once the rootfs files and the
    /// cgroup are made, which it does while `__init` makes the namespaces.
    #[serde(default)]
    pub ready_fd: Option<RawFd>,
    /// The cleanup pipe's fd (with `--rm`): `__init` watches it while PID 1 runs (closed with
    /// nothing on it, it means the monitor gave the container up) and reads from it the name
    /// of a folder to remove, in [`InitConfig::cleanup_in`] (the container's, taken out of the
    /// store by the monitor), until the monitor closes it; the monitor need not wait for the
    /// removal.
    #[serde(default)]
    pub cleanup_fd: Option<RawFd>,
    /// The store's folder of network namespaces made ahead (`network::spare`), when the
    /// container may take one (a network namespace of its own, no user namespace).
    #[serde(default)]
    pub netns_spares: Option<PathBuf>,
    /// With `--rm`, where `__init` makes a container folder ahead for the next container at its
    /// end (`container::store::make_spare_folder`): the store's `containers/`. Not under
    /// `--userns`, whose init cannot go back to the host's mount namespace.
    #[serde(default)]
    pub spare_folders: Option<PathBuf>,
    /// Where the folders named on the cleanup pipe are: the store's `tmp/`. Opened before PID 1
    /// pivots into the rootfs, which moves the root of `__init`'s mount namespace too.
    #[serde(default)]
    pub cleanup_in: Option<PathBuf>,
    /// The container's places on bridge networks, wired by `__init` as its network namespace
    /// is made.
    #[serde(default)]
    pub networks: Vec<crate::network::bridge::Wiring>,
    /// Where its cgroup is, as a runtime spec's `linux.cgroupsPath` says (containerd's
    /// shim); else `berth/<id>`.
    #[serde(default)]
    pub cgroup_path: Option<String>,
    /// Namespaces joined instead of made (a pod's network namespace, given by path).
    #[serde(default)]
    pub join: Vec<NamespacePath>,
}

/// A namespace to join, by the path of its file (`/proc/PID/ns/net`, `/var/run/netns/NAME`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespacePath {
    /// Its kind, as runtime specs name it: `network`, `ipc`, `uts` or `pid`.
    pub kind: String,
    /// The file.
    pub path: PathBuf,
}

impl NamespacePath {
    /// The clone flag of its kind; `None` for a kind that cannot be joined here (`mount`,
    /// `user`, `cgroup`: berth makes those itself).
    pub fn flag(&self) -> Option<CloneFlags> {
        match self.kind.as_str() {
            "network" => Some(CloneFlags::CLONE_NEWNET),
            "ipc" => Some(CloneFlags::CLONE_NEWIPC),
            "uts" => Some(CloneFlags::CLONE_NEWUTS),
            "pid" => Some(CloneFlags::CLONE_NEWPID),
            _ => None,
        }
    }
}

/// The cgroup a config places its container in.
pub(crate) fn open_cgroup(id: &str, path: Option<&str>) -> Result<cgroups::Cgroup, StartError> {
    match path {
        Some(p) => {
            cgroups::CgroupPath::from_spec(p).and_then(|at| cgroups::Cgroup::open_at(id, &at))
        }
        None => cgroups::Cgroup::open(id),
    }
    .map_err(StartError::berth)
}

/// Runs `__init`; never returns. `monitor` is the pid of the monitor that spawned it; with
/// `go_fd`, PID 1 waits for a byte on it (the monitor has put it in the cgroup) before the
/// workload runs.
pub fn main(config: &Path, status_fd: RawFd, monitor: i32, go_fd: Option<RawFd>) -> ! {
    match std::fs::read(config)
        .map_err(|e| StartError::berth(format!("reading {}: {e}", config.display())))
        .and_then(|b| {
            serde_json::from_slice(&b)
                .map_err(|e| StartError::berth(format!("parsing {}: {e}", config.display())))
        }) {
        Ok(cfg) => run(cfg, status_fd, monitor, go_fd),
        Err(e) => {
            // SAFETY: the monitor passed this fd for us alone.
            report_and_exit(&unsafe { File::from_raw_fd(status_fd) }, e)
        }
    }
}

/// `__init` with its config in hand: called by [`main`], or straight after the fork by a
/// single-threaded monitor (see `container::spawn`). Never returns.
pub fn run(mut cfg: InitConfig, status_fd: RawFd, monitor: i32, go_fd: Option<RawFd>) -> ! {
    let status = take_inheritance(&cfg, status_fd, go_fd, monitor);
    // With `--rm`, what the next container would make at its start (a network namespace, a
    // container folder) is made at the end (see `end_with_cleanup`), back in the host's mount
    // namespace, which this process is about to leave.
    let host_mounts = cfg
        .cleanup_fd
        .filter(|_| cfg.netns_spares.is_some() || cfg.spare_folders.is_some())
        .and_then(|_| File::open("/proc/self/ns/mnt").ok());
    // A network namespace made ahead is made from the host's, as a container's own would be.
    let host_net = host_mounts
        .as_ref()
        .and(cfg.netns_spares.as_ref())
        .and_then(|_| File::open("/proc/self/ns/net").ok());
    let preloaded = match enter_when_ready(&mut cfg) {
        Ok(p) => p,
        Err(e) => report_and_exit(&status, e),
    };
    let fork = match ForkPlan::make(&mut cfg) {
        Ok(f) => f,
        Err(e) => report_and_exit(&status, e),
    };
    // SAFETY: `__init` is single-threaded (see the module's doc), so the child of this fork is
    // a complete copy and may run any code.
    match unsafe { fork.fork_target.fork() } {
        Err(e) => report_and_exit(
            &status,
            StartError::berth(format!("forking the container's first process: {e}")),
        ),
        Ok(ForkResult::Child) => {
            drop((host_mounts, host_net));
            fork.into_pid1(&cfg, status, go_fd, preloaded)
        }
        Ok(ForkResult::Parent { child }) => {
            // PID 1's now; this copy goes with this process' exit, not on the way to it.
            std::mem::forget(preloaded);
            status::send(&status, &StatusMessage::Pid(child.as_raw()));
            drop(status);
            let ahead = host_mounts.map(|host_mounts| MadeAhead {
                host_mounts,
                netns: cfg.netns_spares.clone().zip(host_net),
                folders: cfg.spare_folders.clone(),
            });
            fork.into_parent(&cfg, child, ahead)
        }
    }
}

/// The start of `__init`: no core dumps or /proc access to it, nothing inherited open but its
/// pipes, Docker's umask, and a death signal tied to the monitor. Gives the status pipe.
fn take_inheritance(
    cfg: &InitConfig,
    status_fd: RawFd,
    go_fd: Option<RawFd>,
    monitor: i32,
) -> File {
    // No process of the container may open this one's /proc/PID/exe (berth's binary) or
    // memory: PID 1 runs berth until it execs the workload (for good with `--init` or a WASI
    // guest), and an exec gives the workload its own dumpable state.
    let _ = nix::sys::prctl::set_dumpable(false);
    // Nothing the monitor inherited from its own caller may stay open here: an `--init` PID 1
    // lives on beside the workload, and an fd to a host folder is a way out of the rootfs.
    let mut keep: Vec<RawFd> = [
        Some(status_fd),
        go_fd,
        cfg.exit_fd,
        cfg.ready_fd,
        cfg.cleanup_fd,
    ]
    .into_iter()
    .flatten()
    .collect();
    keep.sort_unstable();
    let closed = close_all_but(&keep);
    // Docker's umask for everything of the container (the folders made for it, its mount
    // points, its workload), not the one berth's caller happened to have.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    // SAFETY: the monitor passed this fd for us alone; nothing else in this process owns it.
    let status = unsafe { File::from_raw_fd(status_fd) };
    if let Err(e) = closed {
        report_and_exit(
            &status,
            StartError::berth(format!("closing inherited files: {e}")),
        );
    }
    // If the monitor dies, so does the container (PID 1 has the same link to us).
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err()
        || nix::unistd::getppid().as_raw() != monitor
    {
        report_and_exit(
            &status,
            StartError::berth("the monitor ended before the container started"),
        );
    }
    status
}

/// The namespaces first, while the monitor makes the rootfs files and the cgroup, then the
/// wait for its ready byte; a user namespace's needs those files (it hands the writable layer
/// to its root), so it waits first. A WASI guest's engine and compiled program are made
/// meanwhile too (see [`preload_guest`]).
fn enter_when_ready(cfg: &mut InitConfig) -> Result<Option<launch::Preloaded>, StartError> {
    let userns = cfg.spec.security.userns;
    let mut preloaded = None;
    if !userns {
        enter(cfg)?;
        preloaded = preload_guest(cfg);
    }
    if let Some(fd) = cfg.ready_fd.take() {
        // SAFETY: the monitor passed this fd for us alone.
        let mut ready = unsafe { File::from_raw_fd(fd) };
        let mut byte = [0u8; 1];
        let got = loop {
            match std::io::Read::read(&mut ready, &mut byte) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                got => break got,
            }
        };
        if !matches!(got, Ok(1)) {
            // The monitor gave the start up (and says why itself).
            std::process::exit(125);
        }
    }
    if userns {
        enter(cfg)?;
    }
    Ok(preloaded)
}

/// The engine and the mapped artifact of a WASI container's program whose digest the monitor
/// knows, made while the monitor makes the container's cgroup (on the other CPU): PID 1 is
/// forked with them in its memory and starts the guest without making either. Nothing here
/// starts a thread, so this process may still fork. `None` (PID 1 does it all itself) for a
/// native container, an unknown program or a cache miss.
fn preload_guest(cfg: &InitConfig) -> Option<launch::Preloaded> {
    if cfg.spec.backend != Backend::Wasi {
        return None;
    }
    let known = cfg.wasm_module.as_ref()?;
    let cache = cfg.wasm_cache.as_ref()?.open()?;
    launch::preload(&cache, known)
}

/// What `__init` holds across the fork of PID 1.
struct ForkPlan {
    /// PID 1 is forked into the cgroup's v2 directory and joins the v1 ones itself.
    fork_target: cgroups::ForkTarget,
    cgroup: Option<cgroups::Cgroup>,
    /// With `--rm`: the cleanup pipe and the store's tmp/, where the folder it names is.
    cleanup: Option<(File, cap_std::fs::Dir)>,
    /// PID 1 reports a WASI guest's exit code itself (see [`ForkPlan::make`]).
    early_exit_report: bool,
    /// Removes the cgroup after PID 1's end, with `--rm`.
    cgroup_remover: Option<cgroups::Remover>,
    /// Where this process' stdio goes once PID 1 runs (a WASI rootfs has no /dev).
    null: std::io::Result<File>,
    /// PID 1 tells by this pipe's write end closing that `__init` is gone (its parent is
    /// outside its pid namespace, so getppid says nothing). This process holds the end until
    /// it exits.
    alive: (std::os::fd::OwnedFd, std::os::fd::OwnedFd),
}

impl ForkPlan {
    fn make(cfg: &mut InitConfig) -> Result<ForkPlan, StartError> {
        let (fork_target, cgroup) = if cfg.cgroup {
            let cg = open_cgroup(&cfg.id, cfg.cgroup_path.as_deref())?;
            (cg.fork_target().map_err(StartError::berth)?, Some(cg))
        } else {
            (cgroups::ForkTarget::default(), None)
        };
        // Opened while the host's files are in view (see `cleanup_in`); without it, the
        // monitor removes the folder itself.
        let cleanup = cfg.cleanup_fd.take().and_then(|fd| {
            // SAFETY: the monitor passed this fd for us alone.
            let pipe = unsafe { File::from_raw_fd(fd) };
            let dir = cfg.cleanup_in.as_ref().and_then(|d| {
                cap_std::fs::Dir::open_ambient_dir(d, cap_std::ambient_authority()).ok()
            })?;
            Some((pipe, dir))
        });
        // With `--rm` (a cleanup pipe) and pidfds (Linux 5.3), this process watches the monitor
        // through the cleanup pipe, not a death signal (see `end_with_cleanup`, which kills
        // PID 1 if the pipe closes while it runs). Dropped before the fork: PID 1 may run a
        // WASI guest to the end and report (below), and the monitor end, before this process
        // runs again after the fork (they may share a CPU, and this one may wait on a page of
        // its code); the signal would then kill it before it removes the cgroup.
        let watched_by_pipe = cleanup.is_some()
            && rustix::process::pidfd_open(
                rustix::process::getpid(),
                rustix::process::PidfdFlags::empty(),
            )
            .is_ok();
        if watched_by_pipe {
            let _ = nix::sys::prctl::set_pdeathsig(None);
        }
        // Opened now, as the store's tmp/ and /dev/null are: once PID 1 has pivoted into the
        // rootfs, so has this process (the same mount namespace).
        let cgroup_remover = cgroup
            .as_ref()
            .filter(|_| cleanup.is_some())
            .map(|cg| cg.remover());
        let alive = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| StartError::berth(format!("creating a pipe: {e}")))?;
        Ok(ForkPlan {
            fork_target,
            // This process then removes the cgroup after PID 1's end, so PID 1 may report a
            // WASI guest's exit code before that end.
            early_exit_report: watched_by_pipe && cgroup.is_some(),
            cgroup,
            cleanup,
            cgroup_remover,
            null: File::options().read(true).write(true).open("/dev/null"),
            alive,
        })
    }

    /// The child of the fork: PID 1. Never returns.
    fn into_pid1(
        self,
        cfg: &InitConfig,
        status: File,
        go_fd: Option<RawFd>,
        preloaded: Option<launch::Preloaded>,
    ) -> ! {
        let ForkPlan {
            fork_target,
            cgroup,
            early_exit_report,
            alive: (alive_read, alive_write),
            cleanup,
            cgroup_remover,
            null,
        } = self;
        // `__init`'s alone: a host folder's handle and the cleanup pipe never reach the
        // container.
        drop((cleanup, cgroup_remover, null));
        // If __init dies (its monitor was killed), the container goes too: never a ghost. It
        // may have died before the death signal was armed: then the pipe says so.
        drop(alive_write);
        if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() || gone(&alive_read) {
            std::process::exit(125);
        }
        drop(alive_read);
        // The exit pipe is __init's, except that with `--rm` a WASI guest's code goes on it the
        // moment the guest ends (this process' own end, a few tenths of a millisecond of
        // unmapping, is then not waited for): __init removes the cgroup once it has reaped
        // this process.
        let exit_fd = if early_exit_report {
            cfg.exit_fd
        } else {
            if let Some(fd) = cfg.exit_fd {
                let _ = nix::unistd::close(fd);
            }
            None
        };
        // Still single-threaded: PID 1 moves itself into the v1 hierarchies (born in the v2
        // one), before anything of the container runs. Itself: a write of another process'
        // pid to `tasks` takes the threadgroup lock and waits out an RCU grace period (tens of
        // milliseconds here), which a thread moving itself skips.
        let joined = fork_target
            .finish_join()
            .and_then(|()| cgroup.as_ref().map_or(Ok(()), |cg| cg.join_v1_self()));
        if let Err(e) = joined {
            report_and_exit(&status, StartError::berth(e));
        }
        drop((fork_target, cgroup));
        let pipes = pid1::Pid1Pipes {
            status: &status,
            go: go_fd,
            exit: exit_fd,
        };
        let e = match pid1::container_main(cfg, pipes, preloaded) {
            Ok(never) => match never {},
            Err(e) => e,
        };
        report_and_exit(&status, e)
    }

    /// The parent of the fork, once PID 1's pid is sent: waits for PID 1, reports its code,
    /// cleans up with `--rm`, and exits with the code. Never returns.
    fn into_parent(self, cfg: &InitConfig, child: Pid, ahead: Option<MadeAhead>) -> ! {
        // Our copies of the container's stdio would keep its output open until this process
        // is gone (and the monitor waits for the end of that output).
        match &self.null {
            Ok(null) => {
                let _ = nix::unistd::dup2_stdin(null);
                let _ = nix::unistd::dup2_stdout(null);
                let _ = nix::unistd::dup2_stderr(null);
            }
            Err(_) => {
                for fd in 0..3 {
                    let _ = nix::unistd::close(fd);
                }
            }
        }
        let exit_fd = cfg.exit_fd;
        let report = move |code: i32| {
            if let Some(fd) = exit_fd {
                report_exit(fd, code);
            }
        };
        match self.cleanup {
            Some((pipe, dir)) => {
                end_with_cleanup(child, pipe, &dir, self.cgroup_remover, ahead, report)
            }
            None => {
                let code = wait_exit_code(child);
                report(code);
                std::process::exit(code)
            }
        }
    }
}

/// Lowers this process to the least priority once it has reported its exit: its end (unmapping
/// a guest's memory and a compiled module, tenths of a millisecond) then does not keep the
/// monitor, woken by the report, off the CPU they share. Every thread goes to nice 19 (this
/// process leads its own process group), and the calling one to SCHED_IDLE too. After the
/// report, so that the report itself never waits at that priority.
pub(crate) fn yield_to_the_monitor() {
    let _ = rustix::process::setpriority_pgrp(None, 19);
    let idle = nix::libc::sched_param { sched_priority: 0 };
    // SAFETY: a plain syscall on this thread, with a valid parameter.
    unsafe { nix::libc::sched_setscheduler(0, nix::libc::SCHED_IDLE, &idle) };
}

/// Writes the container's exit code on the exit pipe `fd` (the monitor reads its first line)
/// and closes it.
pub(crate) fn report_exit(fd: RawFd, code: i32) {
    // SAFETY: the monitor passed the exit pipe's end to this process for this alone.
    let mut exit = unsafe { File::from_raw_fd(fd) };
    let _ = exit.write_all(format!("{code}\n").as_bytes());
}

/// What `__init` makes ahead for the next container at its end, in the host's mount namespace.
struct MadeAhead {
    /// The host's mount namespace (`/proc/self/ns/mnt`, opened before this one was made).
    host_mounts: File,
    /// Where a network namespace is made (`network::spare`), and the host's, it is made from.
    netns: Option<(PathBuf, File)>,
    /// Where a container folder is made (`container::store::make_spare_folder`).
    folders: Option<PathBuf>,
}

/// `__init`'s end with `--rm`: waits for PID 1 (and reports its exit code) and for the monitor
/// to close the cleanup pipe, then removes the cgroup (the monitor has read what it needs from
/// it by then) and the folder of `dir` the monitor named on the pipe, makes what it can ahead
/// for the next container (`ahead`), and exits with the container's code.
///
/// The monitor may end before PID 1 does (a WASI guest's PID 1 reports its own code first), so
/// no death signal links this process to the monitor here, which would end it before its
/// cleanup: the pipe does. Closed with no name while PID 1 runs, it says the monitor gave the
/// container up (or died), and PID 1 is killed, as the death signal would have.
///
/// The folder is named for this process: it is a leftover for the store's cleanup only once
/// this process is gone, which then removes what this one could not.
fn end_with_cleanup(
    child: Pid,
    mut pipe: File,
    dir: &cap_std::fs::Dir,
    cgroup: Option<cgroups::Remover>,
    ahead: Option<MadeAhead>,
    report: impl Fn(i32),
) -> ! {
    use rustix::event::{PollFd, PollFlags, poll};
    use std::os::unix::ffi::OsStrExt;
    // (The death signal was dropped before the fork when pidfds work.)
    let pidfd = rustix::process::Pid::from_raw(child.as_raw())
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
    let mut code = None;
    let mut name = Vec::new();
    let mut pipe_open = true;
    let end = |code: &mut Option<i32>| {
        let c = wait_exit_code(child);
        // PID 1 is gone: the monitor's end no longer needs to end this process (without a
        // pidfd, the death signal was kept until now).
        let _ = nix::sys::prctl::set_pdeathsig(None);
        report(c);
        // Background work from here on: woken on the monitor's CPU, this process would
        // otherwise take it from the monitor before it returns.
        let _ = rustix::process::setpriority_process(None, 19);
        *code = Some(c);
    };
    while code.is_none() || pipe_open {
        let (pid_ended, pipe_ready) = match (&pidfd, code.is_none(), pipe_open) {
            (Some(pidfd), true, true) => {
                let mut fds = [
                    PollFd::new(pidfd, PollFlags::IN),
                    PollFd::new(&pipe, PollFlags::IN),
                ];
                match poll(&mut fds, None) {
                    Ok(_) => (!fds[0].revents().is_empty(), !fds[1].revents().is_empty()),
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(_) => (true, false),
                }
            }
            // No pidfd (Linux before 5.3): the death signal holds until PID 1 is waited for.
            (None, true, _) => (true, false),
            (_, false, _) => (false, true),
            (_, true, false) => (true, false),
        };
        if pid_ended {
            end(&mut code);
        }
        if pipe_ready {
            let mut buf = [0u8; 512];
            match std::io::Read::read(&mut pipe, &mut buf) {
                Ok(0) => {
                    pipe_open = false;
                    if name.is_empty() && code.is_none() {
                        let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
                    }
                }
                Ok(n) => name.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => pipe_open = false,
            }
        }
    }
    if let Some(cg) = &cgroup {
        // PID 1 is reaped: nothing of the container runs in it any more.
        cg.remove();
    }
    if !name.is_empty() {
        let _ = dir.remove_dir_all(std::ffi::OsStr::from_bytes(&name));
    }
    if let Some(ahead) = ahead
        && nix::sched::setns(&ahead.host_mounts, CloneFlags::CLONE_NEWNS).is_ok()
    {
        if let Some(folders) = &ahead.folders {
            let _ = crate::container::store::make_spare_folder(folders);
        }
        if let Some((netns, host_net)) = &ahead.netns {
            let _ = crate::network::spare::make(netns, host_net);
        }
    }
    std::process::exit(code.unwrap_or(137))
}

/// Closes every fd from 3 up except `keep` (sorted).
fn close_all_but(keep: &[RawFd]) -> std::io::Result<()> {
    let mut from = 3u32;
    for &fd in keep {
        let fd = fd as u32;
        if fd >= from {
            if fd > from {
                close_range(from, fd - 1)?;
            }
            from = fd + 1;
        }
    }
    close_range(from, u32::MAX)
}

fn close_range(first: u32, last: u32) -> std::io::Result<()> {
    // SAFETY: closes fds this process owns and no code of it uses any more.
    if unsafe { nix::libc::syscall(nix::libc::SYS_close_range, first, last, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether the write end of `pipe` is closed everywhere (its reader sees a hang-up).
fn gone(pipe: &std::os::fd::OwnedFd) -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    let mut fds = [PollFd::new(pipe, PollFlags::IN)];
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&zero)).is_ok() && fds[0].revents().contains(PollFlags::HUP)
}

/// Tells the monitor why the workload could not start, and exits with Docker's code for it.
fn report_and_exit(status: &File, e: StartError) -> ! {
    status::send(status, &StatusMessage::Failed(e.clone()));
    std::process::exit(e.code())
}

/// `--userns`: while still host root, mounts the layer snapshots idmapped into a new user
/// namespace and hands the writable layer to its root, then becomes that root. The namespaces
/// unshared after this (a new mount namespace among them) belong to the user namespace, so
/// its root may mount the overlay, /proc and sysfs there.
fn enter_userns(cfg: &mut InitConfig) -> Result<(), StartError> {
    use nix::mount::{MsFlags, mount};
    let e = |what: &str| {
        let what = what.to_string();
        move |err: std::io::Error| StartError::berth(format!("--userns: {what}: {err}"))
    };
    nix::sched::unshare(CloneFlags::CLONE_NEWNS)
        .map_err(|err| e("a mount namespace")(err.into()))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|err| e("making / private")(err.into()))?;
    let map = userns::default_map();
    let ns = userns::create(&map).map_err(e("creating the user namespace"))?;
    let staging = cfg.rootfs.upperdir.with_file_name("lower");
    for (i, lower) in cfg.rootfs.lowerdirs.iter_mut().enumerate() {
        let dir = staging.join(i.to_string());
        std::fs::create_dir_all(&dir).map_err(e("creating a layer mount point"))?;
        userns::idmapped_mount(lower, &dir, std::os::fd::AsFd::as_fd(&ns))
            .map_err(e("mounting a layer idmapped (needs Linux 5.12 or later)"))?;
        *lower = dir;
    }
    // The container's folder and run folder (0700 both) and its writable layer belong to its
    // root, which must reach them from inside the user namespace.
    let parent = |p: &Path| p.parent().map(Path::to_path_buf).unwrap_or_default();
    let container_dir = parent(&cfg.rootfs.upperdir);
    let run_dir = parent(&cfg.rootfs.merged);
    for dir in [
        &container_dir,
        &run_dir,
        &cfg.rootfs.upperdir,
        &cfg.rootfs.workdir,
    ] {
        std::os::unix::fs::lchown(dir, Some(map.uid), Some(map.gid))
            .map_err(e("handing the writable layer to the container's root"))?;
    }
    cfg.rootfs.userxattr = true;
    userns::enter(&ns).map_err(|err| e("entering the user namespace")(err.into()))?;
    Ok(())
}

/// Unshares the namespaces (the pid namespace applies to children).
fn enter(cfg: &mut InitConfig) -> Result<(), StartError> {
    // Made while this process is still root of the host's namespaces.
    let wirer = Wirer::new(&cfg.networks, cfg.spec.security.userns)?;
    if cfg.spec.security.userns {
        enter_userns(cfg)?;
    }
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWPID;
    for ns in &cfg.join {
        let Some(flag) = ns.flag() else {
            return Err(StartError::berth(format!(
                "joining a {} namespace by path is not supported: only network, ipc, uts and pid",
                ns.kind
            )));
        };
        let file = File::open(&ns.path).map_err(|e| {
            StartError::berth(format!(
                "opening the {} namespace {}: {e}",
                ns.kind,
                ns.path.display()
            ))
        })?;
        nix::sched::setns(&file, flag).map_err(|e| {
            StartError::berth(format!(
                "joining the {} namespace {}: {e}",
                ns.kind,
                ns.path.display()
            ))
        })?;
        flags.remove(flag);
    }
    if cfg.spec.network != NetworkMode::Host && !joined(cfg, CloneFlags::CLONE_NEWNET) {
        // A namespace made ahead, else a new one.
        let spare = cfg
            .netns_spares
            .as_deref()
            .and_then(crate::network::spare::take);
        if spare.is_none_or(|ns| nix::sched::setns(ns, CloneFlags::CLONE_NEWNET).is_err()) {
            flags |= CloneFlags::CLONE_NEWNET;
        }
    }
    nix::sched::unshare(flags)
        .map_err(|e| StartError::berth(format!("creating namespaces: {e}")))?;
    match wirer {
        Some(w) => w.wire(&cfg.networks),
        None => Ok(()),
    }
}

/// Whether the config joins a namespace of this kind.
fn joined(cfg: &InitConfig, flag: CloneFlags) -> bool {
    cfg.join.iter().any(|ns| ns.flag() == Some(flag))
}

/// Who puts the container's new network namespace on its bridges: this process, through a
/// netlink socket opened in the host's namespace (which keeps talking to it from the new one),
/// or under `--userns` a helper forked before the user namespace, still root of the host's
/// (from the container's user namespace the host's network cannot be changed).
enum Wirer {
    Here(crate::network::netlink::Netlink),
    Helper {
        pid: Pid,
        go: std::os::fd::OwnedFd,
        done: std::os::fd::OwnedFd,
    },
}

impl Wirer {
    fn new(
        networks: &[crate::network::bridge::Wiring],
        userns: bool,
    ) -> Result<Option<Wirer>, StartError> {
        if networks.is_empty() {
            return Ok(None);
        }
        let host = crate::network::netlink::Netlink::open().map_err(|e| {
            StartError::berth(format!("opening a netlink socket for the bridge: {e}"))
        })?;
        if !userns {
            return Ok(Some(Wirer::Here(host)));
        }
        let pipe = || nix::unistd::pipe().map_err(StartError::berth);
        let ((go_r, go_w), (done_r, done_w)) = (pipe()?, pipe()?);
        // SAFETY: `__init` is single-threaded here; the child only wires and exits.
        match unsafe { nix::unistd::fork() }.map_err(StartError::berth)? {
            ForkResult::Child => {
                drop((go_w, done_r));
                let mut host = host;
                let mut byte = [0u8; 1];
                // End of file: the start was abandoned.
                let message = match nix::unistd::read(&go_r, &mut byte) {
                    Ok(1) => wire_from_host(nix::unistd::getppid(), networks, &mut host)
                        .err()
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                let _ = nix::unistd::write(&done_w, message.as_bytes());
                // SAFETY: ends the forked helper without running the parent's exit handlers.
                unsafe { libc::_exit(0) }
            }
            ForkResult::Parent { child } => Ok(Some(Wirer::Helper {
                pid: child,
                go: go_w,
                done: done_r,
            })),
        }
    }

    /// Wires every network into this process' (new) network namespace.
    fn wire(self, networks: &[crate::network::bridge::Wiring]) -> Result<(), StartError> {
        match self {
            Wirer::Here(mut host) => networks.iter().try_for_each(|w| {
                w.wire(&mut host)
                    .map_err(|e| StartError::berth(wiring_error(w, e)))
            }),
            Wirer::Helper { pid, go, done } => {
                let _ = nix::unistd::write(&go, b"1");
                drop(go);
                let mut message = String::new();
                let _ = std::io::Read::read_to_string(&mut File::from(done), &mut message);
                let _ = waitpid(pid, None);
                match message.is_empty() {
                    true => Ok(()),
                    false => Err(StartError::berth(message)),
                }
            }
        }
    }
}

fn wiring_error(w: &crate::network::bridge::Wiring, e: std::io::Error) -> String {
    format!("connecting to network {}: {e}", w.endpoint.network)
}

/// The helper's part: enters the network namespace of process `pid` and wires it.
fn wire_from_host(
    pid: Pid,
    networks: &[crate::network::bridge::Wiring],
    host: &mut crate::network::netlink::Netlink,
) -> Result<(), String> {
    let ns = File::open(format!("/proc/{pid}/ns/net"))
        .map_err(|e| format!("opening the container's network namespace: {e}"))?;
    nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("entering the container's network namespace: {e}"))?;
    for w in networks {
        w.wire(host).map_err(|e| wiring_error(w, e))?;
    }
    Ok(())
}

/// The exit code Docker reports for a process' end: its code, or 128 + the killing signal.
pub fn wait_exit_code(child: Pid) -> i32 {
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(_) => return 255,
        }
    }
}
