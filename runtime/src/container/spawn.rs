//! Starting a container's `__init`. A single-threaded monitor (`run`, `start`, `__monitor`)
//! forks it and runs it straight away (unless PID 1 outlives the start: see [`spawn`]): the init's code and config are already in memory, and
//! an exec of berth costs a start about a millisecond (loading the binary, the dynamic linker,
//! parsing the config again). A monitor with other threads (a build runs RUN steps from
//! several) cannot run arbitrary code in a fork (another thread may hold the allocator's lock),
//! so it execs `berth __init CONFIG` as before.

use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use crate::sandbox::linux::init::{self, InitConfig};

/// The container's stdio as `__init` gets it (0, 1, 2).
pub(crate) struct InitStdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// What `__init` is handed besides its stdio.
pub(crate) struct InitHandoff<'a> {
    pub store: &'a crate::store::Store,
    pub config: &'a InitConfig,
    /// Where the exec path writes the config for `berth __init` to read.
    pub config_path: &'a Path,
    pub status_fd: RawFd,
    pub go_fd: Option<RawFd>,
}

/// A started `__init`, reaped with [`InitChild::wait`].
pub(crate) struct InitChild {
    pid: Pid,
    code: Option<i32>,
}

impl InitChild {
    /// Its pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Waits for it to end; its exit code (128 + the signal that killed it).
    pub fn wait(&mut self) -> io::Result<i32> {
        if let Some(code) = self.code {
            return Ok(code);
        }
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
/// copy of this process (which may hold the user's environment or registry credentials).
pub(crate) fn spawn(stdio: InitStdio, handoff: InitHandoff<'_>) -> io::Result<InitChild> {
    if !handoff.config.spec.init && single_threaded() {
        fork_init(stdio, handoff)
    } else {
        exec_init(stdio, handoff)
    }
}

fn exec_init(stdio: InitStdio, h: InitHandoff<'_>) -> io::Result<InitChild> {
    h.store
        .write_file_unsynced(
            h.config_path,
            &serde_json::to_vec(h.config).expect("serializes"),
        )
        .map_err(io::Error::other)?;
    let mut cmd = Command::new("/proc/self/exe");
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
    })
}

fn fork_init(stdio: InitStdio, h: InitHandoff<'_>) -> io::Result<InitChild> {
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
        }),
        ForkResult::Child => {
            if let Err(e) = become_init(&stdio, &h) {
                // Said on the status pipe, as `__init` says its own failures.
                // SAFETY: the status pipe's write end is this child's; it exits right after.
                let mut status = unsafe { File::from_raw_fd(h.status_fd) };
                let _ = writeln!(status, "error 125 starting the container's init: {e}");
                std::process::exit(125);
            }
            init::run(h.config.clone(), h.status_fd, monitor, h.go_fd)
        }
    }
}

/// In the forked child: what an exec of `__init` would have given it. Its own process group,
/// stdio, a clean signal state and environment, and no file of the monitor's but the pipes.
fn become_init(stdio: &InitStdio, h: &InitHandoff<'_>) -> io::Result<()> {
    nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
    nix::unistd::dup2_stdin(&stdio.stdin)?;
    nix::unistd::dup2_stdout(&stdio.stdout)?;
    nix::unistd::dup2_stderr(&stdio.stderr)?;
    let mut keep: Vec<RawFd> = [Some(h.status_fd), h.go_fd]
        .into_iter()
        .flatten()
        .chain(h.config.exit_fd)
        .collect();
    keep.sort_unstable();
    close_all_but(&keep)?;
    // The monitor ignores SIGPIPE (Rust's runtime) and blocks the signals it forwards; an
    // exec would have reset both (std's spawn clears the mask and restores SIGPIPE).
    // SAFETY: restoring the default disposition installs no handler.
    unsafe { signal::signal(Signal::SIGPIPE, SigHandler::SigDfl) }?;
    signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
    // SAFETY: single-threaded; no other code reads the environment meanwhile.
    unsafe { nix::libc::clearenv() };
    Ok(())
}

/// Closes every fd from 3 up except `keep` (sorted).
fn close_all_but(keep: &[RawFd]) -> io::Result<()> {
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

fn close_range(first: u32, last: u32) -> io::Result<()> {
    // SAFETY: closes fds this process owns; nothing uses them after the fork.
    if unsafe { nix::libc::syscall(nix::libc::SYS_close_range, first, last, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
