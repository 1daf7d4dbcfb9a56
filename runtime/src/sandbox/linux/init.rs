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
//! Progress goes to the monitor over the status pipe `FD`, one line each:
//! `pid N` (the container's first process, as the host sees it) and, if the workload could
//! not be started, `error CODE MESSAGE` (125 berth's failure, 126 not runnable, 127 not found).
//! A successful exec closes the pipe, so EOF without an error means the workload runs.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sched::CloneFlags;
use nix::sys::signal::{self, SigHandler, Signal};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};
use serde::{Deserialize, Serialize};

use super::rootfs::{self, RootfsPlan};
use super::{capabilities, cgroups, exe_seal, seccomp, user, userns};
use crate::backend::Backend;
use crate::sandbox::wasi;
use crate::workload::{NetworkMode, WorkloadSpec};

/// Docker's PATH for images that set none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

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
}

/// A failure before the workload runs, with Docker's exit code for it.
#[derive(Debug)]
pub struct StartError {
    /// 125, 126 or 127.
    pub code: i32,
    /// What went wrong.
    pub message: String,
}

fn fail(code: i32, message: impl std::fmt::Display) -> StartError {
    StartError {
        code,
        message: message.to_string(),
    }
}

/// Runs `__init`; never returns. `monitor` is the pid of the monitor that spawned it; with
/// `go_fd`, PID 1 waits for a byte on it (the monitor has put it in the cgroup) before the
/// workload runs.
pub fn main(config: &Path, status_fd: RawFd, monitor: i32, go_fd: Option<RawFd>) -> ! {
    match std::fs::read(config)
        .map_err(|e| fail(125, format!("reading {}: {e}", config.display())))
        .and_then(|b| {
            serde_json::from_slice(&b)
                .map_err(|e| fail(125, format!("parsing {}: {e}", config.display())))
        }) {
        Ok(cfg) => run(cfg, status_fd, monitor, go_fd),
        Err(e) => {
            // SAFETY: the monitor passed this fd for us alone.
            report_and_exit(&mut unsafe { File::from_raw_fd(status_fd) }, e)
        }
    }
}

/// `__init` with its config in hand: called by [`main`], or straight after the fork by a
/// single-threaded monitor (see `container::spawn`). Never returns.
pub fn run(mut cfg: InitConfig, status_fd: RawFd, monitor: i32, go_fd: Option<RawFd>) -> ! {
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
    let mut status = unsafe { File::from_raw_fd(status_fd) };
    if let Err(e) = closed {
        report_and_exit(
            &mut status,
            fail(125, format!("closing inherited files: {e}")),
        );
    }
    // If the monitor dies, so does the container (PID 1 has the same link to us).
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err()
        || nix::unistd::getppid().as_raw() != monitor
    {
        report_and_exit(
            &mut status,
            fail(125, "the monitor ended before the container started"),
        );
    }
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
    // The namespaces first, while the monitor makes the rootfs files and the cgroup; a user
    // namespace's needs those files (it hands the writable layer to its root), so it waits.
    let userns = cfg.spec.security.userns;
    if !userns && let Err(e) = enter(&mut cfg) {
        report_and_exit(&mut status, e);
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
    if userns && let Err(e) = enter(&mut cfg) {
        report_and_exit(&mut status, e);
    }
    // PID 1 is forked into the cgroup's v2 directory and joins the v1 ones itself.
    let (fork_target, cgroup) = if cfg.cgroup {
        match cgroups::Cgroup::open(&cfg.id).and_then(|cg| Ok((cg.fork_target()?, Some(cg)))) {
            Ok(opened) => opened,
            Err(e) => report_and_exit(&mut status, fail(125, e)),
        }
    } else {
        (cgroups::ForkTarget::default(), None)
    };
    // Opened while the host's files are in view (see `cleanup_in`); without it, the monitor
    // removes the folder itself.
    let cleanup = cfg.cleanup_fd.take().and_then(|fd| {
        // SAFETY: the monitor passed this fd for us alone.
        let pipe = unsafe { File::from_raw_fd(fd) };
        let dir = cfg.cleanup_in.as_ref().and_then(|d| {
            cap_std::fs::Dir::open_ambient_dir(d, cap_std::ambient_authority()).ok()
        })?;
        Some((pipe, dir))
    });
    // With `--rm` (a cleanup pipe) and pidfds (Linux 5.3), this process watches the monitor
    // through the cleanup pipe, not a death signal (see `end_with_cleanup`, which kills PID 1
    // if the pipe closes while it runs). Dropped before the fork: PID 1 may run a WASI guest to
    // the end and report (below), and the monitor end, before this process runs again after the
    // fork (they may share a CPU, and this one may wait on a page of its code); the signal
    // would then kill it before it removes the cgroup.
    let watched_by_pipe = cleanup.is_some()
        && rustix::process::pidfd_open(
            rustix::process::getpid(),
            rustix::process::PidfdFlags::empty(),
        )
        .is_ok();
    if watched_by_pipe {
        let _ = nix::sys::prctl::set_pdeathsig(None);
    }
    // This process then removes the cgroup after PID 1's end, so PID 1 may report a WASI
    // guest's exit code before that end (see the fork's child).
    let early_exit_report = watched_by_pipe && cgroup.is_some();
    // Opened now, as the store's tmp/ and /dev/null are: once PID 1 has pivoted into the
    // rootfs, so has this process (the same mount namespace).
    let cgroup_remover = cgroup
        .as_ref()
        .filter(|_| cleanup.is_some())
        .map(|cg| cg.remover());
    // A WASI rootfs has no /dev.
    let null = File::options().read(true).write(true).open("/dev/null");
    // PID 1 tells by this pipe's write end closing that `__init` is gone (its parent is outside
    // its pid namespace, so getppid says nothing). This process holds the end until it exits.
    let (alive_read, alive_write) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => report_and_exit(&mut status, fail(125, format!("creating a pipe: {e}"))),
    };
    // SAFETY: `__init` is single-threaded (see the module's doc), so the child of this fork is
    // a complete copy and may run any code.
    match unsafe { fork_target.fork() } {
        Err(e) => report_and_exit(
            &mut status,
            fail(125, format!("forking the container's first process: {e}")),
        ),
        Ok(ForkResult::Child) => {
            // If __init dies (its monitor was killed), the container goes too: never a ghost.
            // It may have died before the death signal was armed: then the pipe says so.
            drop(alive_write);
            if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() || gone(&alive_read) {
                std::process::exit(125);
            }
            drop(alive_read);
            // The exit pipe is __init's, except that with `--rm` a WASI guest's code goes on it
            // the moment the guest ends (this process' own end, a few tenths of a millisecond
            // of unmapping, is then not waited for): __init removes the cgroup once it has
            // reaped this process. The cleanup pipe is __init's alone.
            let exit_fd = if early_exit_report {
                cfg.exit_fd
            } else {
                if let Some(fd) = cfg.exit_fd {
                    let _ = nix::unistd::close(fd);
                }
                None
            };
            drop((cleanup, cgroup_remover, null, host_mounts, host_net));
            // Still single-threaded: PID 1 moves itself into the v1 hierarchies (born in the v2
            // one), before anything of the container runs.
            let joined = fork_target
                .finish_join()
                .and_then(|()| cgroup.as_ref().map_or(Ok(()), |cg| cg.join_v1_self()));
            if let Err(e) = joined {
                report_and_exit(&mut status, fail(125, e));
            }
            drop((fork_target, cgroup));
            let e = match container_main(&cfg, &status, go_fd, exit_fd) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            report_and_exit(&mut status, e)
        }
        Ok(ForkResult::Parent { child }) => {
            status_line(&status, &format!("pid {child}"));
            drop(status);
            // Our copies of the container's stdio would keep its output open until this
            // process is gone (and the monitor waits for the end of that output).
            match null {
                Ok(null) => {
                    let _ = nix::unistd::dup2_stdin(&null);
                    let _ = nix::unistd::dup2_stdout(&null);
                    let _ = nix::unistd::dup2_stderr(&null);
                }
                Err(_) => {
                    for fd in 0..3 {
                        let _ = nix::unistd::close(fd);
                    }
                }
            }
            let report = |code: i32| {
                if let Some(fd) = cfg.exit_fd {
                    report_exit(fd, code);
                }
            };
            match cleanup {
                Some((pipe, dir)) => {
                    let ahead = host_mounts.map(|host_mounts| MadeAhead {
                        host_mounts,
                        netns: cfg.netns_spares.clone().zip(host_net),
                        folders: cfg.spare_folders.clone(),
                    });
                    end_with_cleanup(child, pipe, &dir, cgroup_remover, ahead, report)
                }
                None => {
                    let code = wait_exit_code(child);
                    report(code);
                    std::process::exit(code)
                }
            }
        }
    }
}

/// Lowers this process to the least priority once it has reported its exit: its end (unmapping
/// a guest's memory and a compiled module, tenths of a millisecond) then does not keep the
/// monitor, woken by the report, off the CPU they share. Every thread goes to nice 19 (this
/// process leads its own process group), and the calling one to SCHED_IDLE too. After the
/// report, so that the report itself never waits at that priority.
fn yield_to_the_monitor() {
    let _ = rustix::process::setpriority_pgrp(None, 19);
    let idle = nix::libc::sched_param { sched_priority: 0 };
    // SAFETY: a plain syscall on this thread, with a valid parameter.
    unsafe { nix::libc::sched_setscheduler(0, nix::libc::SCHED_IDLE, &idle) };
}

/// Writes the container's exit code on the exit pipe `fd` (the monitor reads its first line)
/// and closes it.
fn report_exit(fd: RawFd, code: i32) {
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

/// Writes one status line in a single write: PID 1 and its parent both write to the pipe, and
/// a line in pieces could interleave with the other's (lines under PIPE_BUF are atomic).
fn status_line(mut status: &File, line: &str) {
    let _ = status.write_all(format!("{line}\n").as_bytes());
}

fn report_and_exit(status: &mut File, e: StartError) -> ! {
    status_line(
        status,
        &format!("error {} {}", e.code, e.message.replace('\n', " ")),
    );
    std::process::exit(e.code)
}

/// `--userns`: while still host root, mounts the layer snapshots idmapped into a new user
/// namespace and hands the writable layer to its root, then becomes that root. The namespaces
/// unshared after this (a new mount namespace among them) belong to the user namespace, so
/// its root may mount the overlay, /proc and sysfs there.
fn enter_userns(cfg: &mut InitConfig) -> Result<(), StartError> {
    use nix::mount::{MsFlags, mount};
    let e = |what: &str| {
        let what = what.to_string();
        move |err: std::io::Error| fail(125, format!("--userns: {what}: {err}"))
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
    if cfg.spec.security.userns {
        enter_userns(cfg)?;
    }
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWPID;
    if cfg.spec.network != NetworkMode::Host {
        // A namespace made ahead, else a new one.
        let spare = cfg
            .netns_spares
            .as_deref()
            .and_then(crate::network::spare::take);
        if spare.is_none_or(|ns| nix::sched::setns(ns, CloneFlags::CLONE_NEWNET).is_err()) {
            flags |= CloneFlags::CLONE_NEWNET;
        }
    }
    nix::sched::unshare(flags).map_err(|e| fail(125, format!("creating namespaces: {e}")))?;
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

/// PID 1 of the new pid namespace: builds the container around itself, then execs.
fn container_main(
    cfg: &InitConfig,
    status: &File,
    go_fd: Option<RawFd>,
    exit_fd: Option<RawFd>,
) -> Result<std::convert::Infallible, StartError> {
    nix::unistd::setsid().map_err(|e| fail(125, format!("setsid: {e}")))?;
    if cfg.spec.tty {
        // SAFETY: TIOCSCTTY on our stdin, the pty slave the monitor gave us.
        unsafe { nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) };
    }
    let spec = &cfg.spec;
    // Opened while the store is still in view; a cache that cannot be opened (a user
    // namespace's root does not own it) only means compiling each run.
    let wasm_cache = cfg.wasm_cache.as_ref().and_then(|c| c.open());
    rootfs::build(&cfg.rootfs).map_err(|e| fail(125, e))?;
    // Docker's `none` keeps loopback too: it has no route out, not no network at all.
    if spec.network != NetworkMode::Host {
        crate::network::loopback::bring_up_loopback().map_err(|e| fail(125, e))?;
    }
    if !spec.hostname.is_empty() {
        nix::unistd::sethostname(&spec.hostname)
            .map_err(|e| fail(125, format!("setting the hostname: {e}")))?;
    }

    let who = user::resolve(&spec.user, Path::new("/")).map_err(|e| fail(125, e))?;
    let env = workload_env(spec, &who);
    let cwd = if spec.cwd.is_empty() {
        "/"
    } else {
        spec.cwd.as_str()
    };
    // Docker creates a missing working directory.
    if std::fs::metadata(cwd).is_err() {
        std::fs::create_dir_all(cwd)
            .map_err(|e| fail(125, format!("creating the working directory {cwd}: {e}")))?;
    }
    nix::unistd::chdir(cwd)
        .map_err(|e| fail(125, format!("entering the working directory {cwd}: {e}")))?;

    let program = resolve_program(&spec.args, &env)?;
    if let Some(kind) = wasm_program(spec, &program)? {
        return wasi_main(
            spec,
            Some(status),
            go_fd,
            &program,
            kind,
            env,
            &who,
            wasm_cache,
            cfg.wasm_module.as_ref(),
            exit_fd,
        );
    }
    drop(wasm_cache);
    if let Some(fd) = exit_fd {
        // Only a WASI guest reports its own exit (see `run`).
        let _ = nix::unistd::close(fd);
    }
    if !spec.security.privileged {
        // While still privileged: restricting ourselves needs CAP_SYS_ADMIN or no_new_privs.
        // Only the workload's own tree: a landlock domain cannot trace processes outside it,
        // and `berth exec`'d commands (from the sealed binary) must still see PID 1's /proc.
        exe_seal::confine_exec_to_root()
            .map_err(|e| fail(125, format!("confining the container's executables: {e}")))?;
    }
    drop_privileges(spec, &who)?;

    // The status pipe must close when the workload starts.
    nix::fcntl::fcntl(
        status,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| fail(125, e))?;
    wait_for_go(go_fd)?;
    if spec.init {
        // The signals the init forwards are held from before the fork until its handlers are
        // in place, so one sent the moment the workload starts is delivered, not lost (an
        // init with no handler ignores it). The workload's exec clears the mask.
        let _ = signal::sigprocmask(signal::SigmaskHow::SIG_BLOCK, Some(&init_forwarded()), None);
        for sig in init_forwarded().iter() {
            // SAFETY: the handler only calls kill (and does nothing until CHILD is set).
            let _ = unsafe { signal::signal(sig, SigHandler::Handler(forward)) };
        }
        // SAFETY: still single-threaded (a forked copy of `__init`).
        match unsafe { nix::unistd::fork() }.map_err(|e| fail(125, e))? {
            ForkResult::Child => {}
            ForkResult::Parent { child } => {
                // Our copy of the status pipe would keep it open past the workload's exec.
                // SAFETY: the fd is ours and is not used again in this process.
                unsafe { nix::libc::close(status.as_raw_fd()) };
                reap_as_init(child)
            }
        }
    }
    exec(&program, &spec.args, &env)
}

/// Waits for the monitor's go byte: PID 1 is in the cgroup.
fn wait_for_go(go_fd: Option<RawFd>) -> Result<(), StartError> {
    if let Some(fd) = go_fd {
        // SAFETY: the monitor passed this fd for us alone.
        let mut go = unsafe { File::from_raw_fd(fd) };
        let mut b = [0u8; 1];
        std::io::Read::read_exact(&mut go, &mut b).map_err(|_| {
            fail(
                125,
                "the monitor did not let the container start (it could not join the cgroup)",
            )
        })?;
    }
    Ok(())
}

/// Whether the program runs as a WASI guest: its magic bytes decide, unless `--runtime` chose
/// a backend the program cannot run on, which is refused with the way out.
pub(crate) fn wasm_program(
    spec: &WorkloadSpec,
    program: &Path,
) -> Result<Option<wasi::WasmKind>, StartError> {
    let name = &spec.args[0];
    let header = match File::open(program) {
        Ok(mut f) => wasi::read_header(&mut f).unwrap_or_default(),
        // Not readable here: exec gives the precise error.
        Err(_) => Vec::new(),
    };
    let kind = wasi::WasmKind::detect(&header);
    match (spec.backend, kind) {
        (Backend::Native, Some(_)) if spec.backend_forced => Err(fail(
            126,
            format!(
                "exec: \"{name}\": it is a WebAssembly module, which --runtime native cannot run: use --runtime wasi or drop --runtime"
            ),
        )),
        (Backend::Wasi, None) => Err(fail(
            126,
            format!(
                "exec: \"{name}\": not a WebAssembly module (it does not start with \\0asm), and this container runs on the wasi runtime, which runs only WebAssembly programs{}",
                if spec.backend_forced {
                    ": drop --runtime wasi to run it natively"
                } else {
                    ""
                }
            ),
        )),
        (_, kind) => Ok(kind),
    }
}

/// PID 1 of a WASI container: compiles (or loads from the cache) the program while still
/// privileged, drops privileges as a native workload would, then runs the guest in this
/// process, inside the container's namespaces, cgroup and seccomp filter, and exits with its
/// code.
#[allow(clippy::too_many_arguments)]
pub(crate) fn wasi_main(
    spec: &WorkloadSpec,
    status: Option<&File>,
    go_fd: Option<RawFd>,
    program: &Path,
    kind: wasi::WasmKind,
    env: Vec<String>,
    who: &user::ResolvedUser,
    cache: Option<wasi::ModuleCache>,
    known: Option<&wasi::KnownModule>,
    exit_fd: Option<RawFd>,
) -> Result<std::convert::Infallible, StartError> {
    // While single-threaded (a mount namespace of its own needs it).
    rootfs::hide_system_mounts().map_err(|e| fail(125, e))?;

    // Before wasmtime starts any thread, so all of them inherit the held mask.
    wasi::stop::hold_signals();
    let name = spec.args[0].clone();
    let engine = wasi::engine::new_engine().map_err(|e| fail(125, e))?;
    // A known module's artifact is mapped without reading the module.
    let hit = match (&cache, known.filter(|k| Path::new(&k.path) == program)) {
        (Some(c), Some(k)) => c.load_known(&engine, &k.sha256, kind),
        _ => None,
    };
    let compiled = match hit {
        Some(p) => p,
        None => {
            let bytes = std::fs::read(program)
                .map_err(|e| fail(126, format!("reading \"{name}\": {e}")))?;
            match &cache {
                Some(c) => c.load(&engine, &bytes, &name).map(|(p, _)| p),
                None => wasi::engine::compile(&engine, &bytes, &name),
            }
            .map_err(|e| fail(e.exit_code(), e))?
        }
    };
    drop(cache);
    if let Some(status) = status {
        status_line(status, &format!("backend wasi {}", kind.os()));
    }
    drop_privileges(spec, who)?;
    wait_for_go(go_fd)?;
    wasi::stop::watch(&engine);
    let mut preopens = vec![wasi::Preopen {
        host: PathBuf::from("/"),
        guest: "/".into(),
        read_only: spec.read_only,
    }];
    // Volumes are mounted in the rootfs already (read-only ones by the kernel); as their own
    // preopens the guest's view of `:ro` holds in WASI's permissions too.
    for m in &spec.mounts {
        preopens.push(wasi::Preopen {
            host: PathBuf::from(&m.destination),
            guest: m.destination.clone(),
            read_only: m.read_only,
        });
    }
    let guest = wasi::GuestSpec {
        name: name.clone(),
        args: spec.args.clone(),
        env,
        cwd: if spec.cwd.is_empty() {
            "/".into()
        } else {
            spec.cwd.clone()
        },
        preopens,
        memory: spec.limits.memory,
        network: spec.network != NetworkMode::None,
    };
    // The guest starts: closing the status pipe tells the monitor so.
    if let Some(status) = status {
        // SAFETY: the fd is ours and is not used again in this process.
        unsafe { nix::libc::close(status.as_raw_fd()) };
    }
    let code = match wasi::guest::run(&engine, &compiled, &guest) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth: {e}");
            e.exit_code()
        }
    };
    if let Some(fd) = exit_fd {
        // The guest's output is complete (the monitor copies it to the end before it records
        // the exit), then its code: the monitor goes on while this process ends.
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        for stdio in 0..3 {
            let _ = nix::unistd::close(stdio);
        }
        report_exit(fd, code);
        yield_to_the_monitor();
        // Nothing is left to flush, and nothing may hold this process' end up now that the
        // monitor goes on: no exit handlers.
        // SAFETY: _exit ends the process at once.
        unsafe { nix::libc::_exit(code) };
    }
    std::process::exit(code)
}

/// The workload's environment: the spec's, plus what Docker adds when the image did not set
/// it (PATH, HOSTNAME, HOME from passwd, TERM with a tty).
pub(crate) fn workload_env(spec: &WorkloadSpec, who: &user::ResolvedUser) -> Vec<String> {
    let mut env = spec.env.clone();
    let has = |env: &[String], k: &str| {
        env.iter()
            .any(|kv| kv.split_once('=').map_or(kv.as_str(), |p| p.0) == k)
    };
    if !has(&env, "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !has(&env, "HOSTNAME") && !spec.hostname.is_empty() {
        env.push(format!("HOSTNAME={}", spec.hostname));
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={}", who.home));
    }
    if spec.tty && !has(&env, "TERM") {
        env.push("TERM=xterm".into());
    }
    env
}

/// Finds the program as execve would be asked for it, or fails with Docker's message and code.
pub(crate) fn resolve_program(args: &[String], env: &[String]) -> Result<PathBuf, StartError> {
    let Some(name) = args.first() else {
        return Err(fail(
            125,
            "no command specified: the image has no Cmd or Entrypoint; give a command after the image name",
        ));
    };
    let executable = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file());
    if name.contains('/') {
        let p = PathBuf::from(name);
        if !p.exists() {
            return Err(fail(
                127,
                format!("exec: \"{name}\": stat {name}: no such file or directory"),
            ));
        }
        return Ok(p);
    }
    let path = env
        .iter()
        .rev()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(name);
        if executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(fail(
        127,
        format!("exec: \"{name}\": executable file not found in $PATH"),
    ))
}

/// Capabilities, groups, ids, no_new_privs and seccomp, in the order that keeps each step
/// possible: the filter is built while root and installed last.
pub(crate) fn drop_privileges(
    spec: &WorkloadSpec,
    who: &user::ResolvedUser,
) -> Result<(), StartError> {
    let sec = &spec.security;
    let caps = capabilities::resolve(&sec.cap_add, &sec.cap_drop, sec.privileged)
        .map_err(|e| fail(125, e))?;
    let filter = if sec.seccomp && !sec.privileged {
        Some(seccomp::default_profile(&caps).map_err(|e| fail(125, e))?)
    } else {
        None
    };
    // Without no_new_privs the filter needs CAP_SYS_ADMIN to install, so it goes in while
    // we are still root; the profile allows the setuid, capset and prctl calls after it.
    let early = !sec.no_new_privs || sec.privileged;
    if early && let Some(f) = &filter {
        seccomp::install(f).map_err(|e| fail(125, e))?;
    }
    capabilities::prepare_uid_change().map_err(|e| fail(125, e))?;
    let groups: Vec<nix::unistd::Gid> = who
        .groups
        .iter()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&groups).map_err(|e| fail(125, format!("setting groups: {e}")))?;
    nix::unistd::setgid(nix::unistd::Gid::from_raw(who.gid))
        .map_err(|e| fail(125, format!("setting gid {}: {e}", who.gid)))?;
    nix::unistd::setuid(nix::unistd::Uid::from_raw(who.uid))
        .map_err(|e| fail(125, format!("setting uid {}: {e}", who.uid)))?;
    capabilities::apply(&caps, who.uid == 0).map_err(|e| fail(125, e))?;
    if sec.no_new_privs && !sec.privileged {
        seccomp::set_no_new_privs().map_err(|e| fail(125, e))?;
    }
    if !early && let Some(f) = &filter {
        seccomp::install(f).map_err(|e| fail(125, e))?;
    }
    Ok(())
}

/// Gives the workload default signal handling: berth's runtime ignores SIGPIPE, and the
/// monitor blocks the signals it forwards (a blocked mask survives spawn and exec).
pub(crate) fn reset_signals() {
    for sig in Signal::iterator() {
        if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
            // SAFETY: restoring the default disposition installs no handler.
            let _ = unsafe { signal::signal(sig, SigHandler::SigDfl) };
        }
    }
    let _ = signal::sigprocmask(
        signal::SigmaskHow::SIG_SETMASK,
        Some(&signal::SigSet::empty()),
        None,
    );
}

pub(crate) fn exec(
    program: &Path,
    args: &[String],
    env: &[String],
) -> Result<std::convert::Infallible, StartError> {
    reset_signals();
    // Nothing berth's callers left open may reach the workload: an fd to a host folder is a
    // way out of the rootfs. Everything from 3 up closes at exec (the status pipe included,
    // which is how the monitor learns the exec happened).
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on our own fds.
    if unsafe {
        nix::libc::syscall(
            nix::libc::SYS_close_range,
            3u32,
            u32::MAX,
            nix::libc::CLOSE_RANGE_CLOEXEC,
        )
    } != 0
    {
        return Err(fail(
            125,
            format!(
                "closing inherited files: {}",
                std::io::Error::last_os_error()
            ),
        ));
    }
    let c = |s: &str| CString::new(s).map_err(|_| fail(125, format!("{s:?} contains a NUL byte")));
    let prog = c(&program.display().to_string())?;
    let argv = args.iter().map(|a| c(a)).collect::<Result<Vec<_>, _>>()?;
    let envp = env.iter().map(|a| c(a)).collect::<Result<Vec<_>, _>>()?;
    let e = nix::unistd::execve(&prog, &argv, &envp).unwrap_err();
    let name = &args[0];
    Err(match e {
        nix::Error::EACCES => fail(126, format!("exec: \"{name}\": permission denied")),
        nix::Error::ENOENT => fail(
            127,
            format!("exec: \"{name}\": no such file or directory (or its interpreter is missing)"),
        ),
        nix::Error::ENOEXEC => fail(126, format!("exec: \"{name}\": exec format error")),
        other => fail(126, format!("exec: \"{name}\": {other}")),
    })
}

static CHILD: AtomicI32 = AtomicI32::new(0);

/// The signals `--init` passes on to the workload.
fn init_forwarded() -> signal::SigSet {
    let mut set = signal::SigSet::empty();
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        set.add(sig);
    }
    set
}

extern "C" fn forward(sig: nix::libc::c_int) {
    let child = CHILD.load(Ordering::Relaxed);
    if child > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { nix::libc::kill(child, sig) };
    }
}

/// `--init`: PID 1 forwards signals to the workload and reaps every zombie, then exits with
/// the workload's status.
fn reap_as_init(child: Pid) -> ! {
    CHILD.store(child.as_raw(), Ordering::Relaxed);
    // Handlers are in place (see the fork): what arrived meanwhile is delivered now.
    let _ = signal::sigprocmask(
        signal::SigmaskHow::SIG_SETMASK,
        Some(&signal::SigSet::empty()),
        None,
    );
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => std::process::exit(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => {
                std::process::exit(128 + sig as i32)
            }
            Err(nix::Error::ECHILD) => std::process::exit(0),
            _ => continue,
        }
    }
}
