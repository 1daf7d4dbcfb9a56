//! Starting a container's `__init`. A single-threaded monitor (`run`, `start`, `__monitor`)
//! forks it and runs it straight away (except in the cases [`spawn`] lists): the init's code
//! and config are already in memory, and an exec of berth costs a start about a millisecond
//! (loading the binary, the dynamic linker, parsing the config again). A monitor with other threads (a build runs RUN steps from
//! several) cannot run arbitrary code in a fork (another thread may hold the allocator's lock),
//! so it execs `berth __init CONFIG` as before.

use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;

use nix::sys::signal::{self, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use crate::sandbox::linux::exe_seal::{self, SealedExe};
use crate::sandbox::linux::init::{self, InitConfig};

/// The container's stdio as `__init` gets it (0, 1, 2).
pub(crate) struct InitStdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// What `__init` is handed besides its stdio.
pub(crate) struct InitHandoff<'a> {
    pub config: &'a InitConfig,
    /// Where the exec path writes the config for `berth __init` to read.
    pub config_path: &'a Path,
    pub status_fd: RawFd,
    pub go_fd: Option<RawFd>,
    /// The store's run root, where the exec path seals berth's binary (see `exe_seal`).
    pub run_root: &'a Path,
}

/// A started `__init`, reaped with [`InitChild::wait`].
pub(crate) struct InitChild {
    pid: Pid,
    code: Option<i32>,
    /// The write end of its cleanup pipe, with `--rm` (see [`InitChild::remove_after`]).
    cleanup: Option<File>,
}

impl InitChild {
    /// Its pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Holds the write end of its cleanup pipe (its read end is `InitConfig::cleanup_fd`).
    pub fn set_cleanup(&mut self, pipe: File) {
        self.cleanup = Some(pipe);
    }

    /// Hands it the folder `name` of the store's `tmp/` to remove once the container has ended
    /// and it has reported the exit code, and closes the cleanup pipe: this process need not
    /// wait for the removal (a millisecond or more on a disk that discards freed blocks at
    /// once). `false` when it cannot take it (no cleanup pipe, or it is gone), and the caller
    /// removes the folder.
    pub fn remove_after(&mut self, name: &std::ffi::OsStr) -> bool {
        use std::io::Write as _;
        use std::os::unix::ffi::OsStrExt;
        self.cleanup
            .take()
            .is_some_and(|mut pipe| pipe.write_all(name.as_bytes()).is_ok())
    }

    /// Waits for it to end; its exit code (128 + the signal that killed it).
    pub fn wait(&mut self) -> io::Result<i32> {
        if let Some(code) = self.code {
            return Ok(code);
        }
        // It waits on the cleanup pipe before it ends: closed, the pipe says there is nothing
        // to remove.
        self.cleanup = None;
        loop {
            match waitpid(self.pid, None) {
                Ok(WaitStatus::Exited(_, code)) => {
                    self.code = Some(code);
                    return Ok(code);
                }
                Ok(WaitStatus::Signaled(_, sig, _)) => {
                    self.code = Some(128 + sig as i32);
                    return Ok(128 + sig as i32);
                }
                Ok(_) | Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Reaps it if it has ended; `true` then.
    pub fn try_wait(&mut self) -> bool {
        if self.code.is_some() {
            return true;
        }
        match waitpid(self.pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => self.code = Some(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => self.code = Some(128 + sig as i32),
            _ => {}
        }
        self.code.is_some()
    }

    /// Kills it, unless it was reaped already (its pid may be another process' by then).
    pub fn kill(&mut self) {
        if self.code.is_none() {
            let _ = signal::kill(self.pid, Signal::SIGKILL);
        }
    }
}

/// Whether this process runs no thread but the calling one.
fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|d| d.take(2).count() == 1)
}

/// Starts `__init` in a process group of its own (terminal signals reach the monitor, which
/// forwards them), with `stdio` as its 0, 1 and 2 and nothing else of this process open but
/// the handoff's pipe ends.
///
/// With `--init`, PID 1 stays for the container's whole life, where the container's root can
/// read its memory, arguments and environment (/proc/1): it must be a fresh exec then, not a
/// copy of this process (which may hold the user's environment or registry credentials). A
/// WASI guest's host is such a copy and stays too, but nothing in its container can read it:
/// the guest only through the wasm sandbox, and its rootfs has no /proc for anything else.
///
/// With berth's own logging above warnings (`--debug`), `__init` is exec'd too: a fork would
/// log berth's debug lines into the container's output, where an exec'd `__init` logs at warn.
///
/// A fork runs the host's berth binary until PID 1 execs the workload, which landlock keeps
/// from reaching that file (see `exe_seal`): without landlock, or for a privileged container
/// (which landlock does not confine), `__init` is exec'd from the sealed binary instead.
pub(crate) fn spawn(stdio: InitStdio, handoff: InitHandoff<'_>) -> io::Result<InitChild> {
    let quiet =
        tracing::level_filters::LevelFilter::current() <= tracing::level_filters::LevelFilter::WARN;
    let spec = &handoff.config.spec;
    if !spec.init
        && !spec.security.privileged
        && quiet
        && single_threaded()
        && exe_seal::landlock_available()
    {
        fork_init(stdio, handoff)
    } else {
        exec_init(stdio, handoff)
    }
}

fn exec_init(stdio: InitStdio, h: InitHandoff<'_>) -> io::Result<InitChild> {
    // Staged beside it: the run folder may be on another filesystem than the store.
    let dir = h.config_path.parent().unwrap_or(Path::new("."));
    crate::store::atomic::write_atomic_unsynced(
        dir,
        h.config_path,
        &serde_json::to_vec(h.config).expect("serializes"),
    )?;
    // Never the host's file: `__init` and PID 1 run in the container's namespaces.
    let exe = SealedExe::of_self(h.run_root)?;
    let mut cmd = exe.command();
    cmd.arg("__init")
        .arg(h.config_path)
        .arg(h.status_fd.to_string())
        .arg(std::process::id().to_string());
    if let Some(go) = h.go_fd {
        cmd.arg(go.to_string());
    }
    cmd.env_clear()
        .process_group(0)
        .stdin(Stdio::from(stdio.stdin))
        .stdout(Stdio::from(stdio.stdout))
        .stderr(Stdio::from(stdio.stderr));
    let child = cmd.spawn()?;
    // Reaped by pid from here on; std's handle neither waits nor kills when dropped.
    Ok(InitChild {
        pid: Pid::from_raw(child.id() as i32),
        code: None,
        cleanup: None,
    })
}

fn fork_init(stdio: InitStdio, h: InitHandoff<'_>) -> io::Result<InitChild> {
    use crate::sandbox::linux::status::{self, StatusMessage};
    use crate::workload::StartError;
    use std::io::Write as _;
    // Anything still buffered would be written twice, once by each process.
    let _ = io::stdout().flush();
    let monitor = std::process::id() as i32;
    // SAFETY: this process is single-threaded (checked above), so the child is a complete copy
    // and may run any code.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Parent { child } => Ok(InitChild {
            pid: child,
            code: None,
            cleanup: None,
        }),
        ForkResult::Child => {
            // A panic must not unwind into the monitor's frames this child copied (their
            // destructors would act on the monitor's terminal, files and locks).
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if let Err(e) = become_init(&stdio) {
                    // Said on the status pipe, as `__init` says its own failures.
                    // SAFETY: the status pipe's write end is this child's; it exits after.
                    let status = unsafe { File::from_raw_fd(h.status_fd) };
                    let failed = StartError::berth(format!("starting the container's init: {e}"));
                    status::send(&status, &StatusMessage::Failed(failed));
                    std::process::exit(125);
                }
                init::run(h.config.clone(), h.status_fd, monitor, h.go_fd)
            }));
            // SAFETY: ends this process without running anything of the monitor's.
            unsafe { nix::libc::_exit(125) }
        }
    }
}

/// In the forked child: what an exec of `__init` would have given it. Its own process group,
/// stdio, a clean signal state and environment.
fn become_init(stdio: &InitStdio) -> io::Result<()> {
    nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
    nix::unistd::dup2_stdin(&stdio.stdin)?;
    nix::unistd::dup2_stdout(&stdio.stdout)?;
    nix::unistd::dup2_stderr(&stdio.stderr)?;
    // The monitor's other files (the originals of these three among them) are closed by
    // `init::run`, on this path as on the exec one.
    // The monitor blocks the signals it forwards; an exec'd `__init` starts with none blocked
    // (and ignoring SIGPIPE, as Rust's runtime sets it up: so does this copy).
    signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
    // SAFETY: single-threaded; no other code reads the environment meanwhile.
    unsafe { nix::libc::clearenv() };
    rename_process();
    Ok(())
}

/// Gives this copy the command line `berth __init` and an empty environment, as an exec'd
/// `__init` has: `ps`, `berth top` and /proc/PID/environ would show the monitor's own (the
/// user's `-e` flags, the environment berth was started in) otherwise. The strings are the
/// process' own memory (the top of its stack), overwritten in place; the kernel is told where
/// the new ones end (which needs CAP_SYS_RESOURCE; without it the rest reads as NULs).
fn rename_process() {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // The fields after the command name (in parentheses, and it may hold any character),
    // from field 3 on: arg_start, arg_end, env_start and env_end are fields 48 to 51.
    let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
        return;
    };
    let f: Vec<usize> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let (Some(&arg_start), Some(&arg_end), Some(&env_start), Some(&env_end)) =
        (f.get(45), f.get(46), f.get(47), f.get(48))
    else {
        return;
    };
    const NAME: &[u8] = b"berth\0__init\0";
    if arg_start == 0 || arg_end < arg_start + NAME.len() || env_end < env_start {
        return;
    }
    // SAFETY: these ranges are this process' argument and environment strings, mapped and
    // writable (the kernel reports them); nothing reads them after `clearenv` and the
    // argument parsing the monitor did before the fork.
    unsafe {
        std::ptr::write_bytes(arg_start as *mut u8, 0, arg_end - arg_start);
        std::ptr::write_bytes(env_start as *mut u8, 0, env_end - env_start);
        std::ptr::copy_nonoverlapping(NAME.as_ptr(), arg_start as *mut u8, NAME.len());
        nix::libc::prctl(
            nix::libc::PR_SET_MM,
            nix::libc::PR_SET_MM_ARG_END,
            arg_start + NAME.len(),
            0,
            0,
        );
        nix::libc::prctl(
            nix::libc::PR_SET_MM,
            nix::libc::PR_SET_MM_ENV_END,
            env_start,
            0,
            0,
        );
    }
}
