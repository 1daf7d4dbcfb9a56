//! PID 1 of a container's pid namespace, forked by `__init` (see `init.rs`): it builds the
//! container around itself (the rootfs and its pivot, loopback, the hostname), finds the
//! workload's user, environment, working directory and program, and then becomes the
//! workload: a native program is exec'd after privileges are dropped; a WASI program runs as a
//! guest in this very process, inside the same namespaces, cgroup and seccomp filter (with
//! `--init`, PID 1 forks the native workload and reaps zombies instead).
//!
//! Failures before the workload runs go to the monitor on the status pipe, as a
//! [`StartError`] with Docker's exit code.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{self, SigHandler, Signal};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use super::init::InitConfig;
use super::{capabilities, exe_seal, rootfs, seccomp, seccomp_profile};
use crate::backend;
use crate::sandbox::wasi::{self, launch};
use crate::workload::user::{self, ResolvedUser};
use crate::workload::{DEFAULT_PATH, NetworkMode, StartError, WorkloadSpec, workload_env};

/// The pipes PID 1 holds from `__init`.
pub(crate) struct Pid1Pipes<'a> {
    /// The status pipe (see `status.rs`); it closes when the workload starts.
    pub status: &'a File,
    /// The go pipe: the monitor writes a byte once PID 1 is in the cgroup.
    pub go: Option<RawFd>,
    /// The exit pipe, with `--rm`: a WASI guest's PID 1 reports the exit code on it itself.
    pub exit: Option<RawFd>,
}

/// The workload, found inside the built container.
struct Found {
    who: ResolvedUser,
    env: Vec<String>,
    program: PathBuf,
}

/// PID 1: builds the container around itself, then becomes its workload. Never returns but
/// with the reason the workload could not start.
pub(crate) fn container_main(
    cfg: &InitConfig,
    pipes: Pid1Pipes<'_>,
    preloaded: Option<launch::Preloaded>,
) -> Result<std::convert::Infallible, StartError> {
    nix::unistd::setsid().map_err(|e| StartError::berth(format!("setsid: {e}")))?;
    if cfg.spec.tty {
        // SAFETY: TIOCSCTTY on our stdin, the pty slave the monitor gave us.
        unsafe { nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) };
    }
    let spec = &cfg.spec;
    // Opened while the store is still in view; a cache that cannot be opened (a user
    // namespace's root does not own it) only means compiling each run.
    let wasm_cache = match preloaded {
        Some(_) => None,
        None => cfg.wasm_cache.as_ref().and_then(|c| c.open()),
    };
    build_container(spec, cfg)?;
    let found = find_workload(spec, true)?;
    if let Some(mut wasi) = WasiStart::of(spec, &found, wasm_cache, cfg.wasm_module.as_ref())? {
        wasi.preloaded = preloaded;
        return wasi.run(Some(pipes.status), pipes.go, pipes.exit);
    }
    if let Some(fd) = pipes.exit {
        // Only a WASI guest reports its own exit (see `init::run`).
        let _ = nix::unistd::close(fd);
    }
    run_native(spec, &found, pipes.status, pipes.go)
}

/// The rootfs and its pivot, loopback, the hostname.
fn build_container(spec: &WorkloadSpec, cfg: &InitConfig) -> Result<(), StartError> {
    rootfs::build(&cfg.rootfs).map_err(StartError::berth)?;
    // Docker's `none` keeps loopback too: it has no route out, not no network at all.
    if spec.network != NetworkMode::Host {
        crate::network::loopback::bring_up_loopback().map_err(StartError::berth)?;
    }
    if !spec.hostname.is_empty() {
        nix::unistd::sethostname(&spec.hostname)
            .map_err(|e| StartError::berth(format!("setting the hostname: {e}")))?;
    }
    Ok(())
}

/// The user, environment and program of the workload, from inside its rootfs, with the
/// working directory entered (`make_cwd`: made when missing, as Docker's run does; `exec`
/// does not).
fn find_workload(spec: &WorkloadSpec, make_cwd: bool) -> Result<Found, StartError> {
    let who = user::resolve(&spec.user, Path::new("/")).map_err(|e| {
        if make_cwd {
            StartError::berth(e)
        } else {
            StartError::cannot_run(e)
        }
    })?;
    let env = workload_env(spec, &who.home);
    let cwd = if spec.cwd.is_empty() {
        "/"
    } else {
        spec.cwd.as_str()
    };
    if make_cwd && std::fs::metadata(cwd).is_err() {
        std::fs::create_dir_all(cwd)
            .map_err(|e| StartError::berth(format!("creating the working directory {cwd}: {e}")))?;
    }
    nix::unistd::chdir(cwd).map_err(|e| {
        let message = format!("entering the working directory {cwd}: {e}");
        if make_cwd {
            StartError::berth(message)
        } else {
            StartError::cannot_run(message)
        }
    })?;
    let program = resolve_program(&spec.args, &env)?;
    Ok(Found { who, env, program })
}

/// A program's first bytes (none when it cannot be read here: exec gives the precise error).
fn read_header(program: &Path) -> Vec<u8> {
    File::open(program)
        .and_then(|mut f| wasi::read_header(&mut f))
        .unwrap_or_default()
}

/// A native workload: confined, privileges dropped, then exec'd (with `--init`, forked under
/// this process, which reaps zombies).
fn run_native(
    spec: &WorkloadSpec,
    found: &Found,
    status: &File,
    go: Option<RawFd>,
) -> Result<std::convert::Infallible, StartError> {
    if !spec.security.privileged {
        // While still privileged: restricting ourselves needs CAP_SYS_ADMIN or no_new_privs.
        // Only the workload's own tree: a landlock domain cannot trace processes outside it,
        // and `berth exec`'d commands (from the sealed binary) must still see PID 1's /proc.
        exe_seal::confine_exec_to_root().map_err(|e| {
            StartError::berth(format!("confining the container's executables: {e}"))
        })?;
    }
    drop_privileges(spec, &found.who)?;
    // The status pipe must close when the workload starts.
    nix::fcntl::fcntl(
        status,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(StartError::berth)?;
    wait_for_go(go)?;
    if spec.init {
        become_init(status)?;
    }
    exec(&found.program, &spec.args, &found.env)
}

/// `--init`: forks the workload, and this process stays as its init (never returning); the
/// child returns to exec the workload.
fn become_init(status: &File) -> Result<(), StartError> {
    // The signals the init forwards are held from before the fork until its handlers are in
    // place, so one sent the moment the workload starts is delivered, not lost (an init with
    // no handler ignores it). The workload's exec clears the mask.
    let _ = signal::sigprocmask(signal::SigmaskHow::SIG_BLOCK, Some(&init_forwarded()), None);
    for sig in init_forwarded().iter() {
        // SAFETY: the handler only calls kill (and does nothing until CHILD is set).
        let _ = unsafe { signal::signal(sig, SigHandler::Handler(forward)) };
    }
    // SAFETY: still single-threaded (a forked copy of `__init`).
    match unsafe { nix::unistd::fork() }.map_err(StartError::berth)? {
        ForkResult::Child => Ok(()),
        ForkResult::Parent { child } => {
            // Our copy of the status pipe would keep it open past the workload's exec.
            // SAFETY: the fd is ours and is not used again in this process.
            unsafe { nix::libc::close(status.as_raw_fd()) };
            reap_as_init(child)
        }
    }
}

/// Waits for the monitor's go byte: PID 1 is in the cgroup.
fn wait_for_go(go_fd: Option<RawFd>) -> Result<(), StartError> {
    if let Some(fd) = go_fd {
        // SAFETY: the monitor passed this fd for us alone.
        let mut go = unsafe { File::from_raw_fd(fd) };
        let mut b = [0u8; 1];
        std::io::Read::read_exact(&mut go, &mut b).map_err(|_| {
            StartError::berth(
                "the monitor did not let the container start (it could not join the cgroup)",
            )
        })?;
    }
    Ok(())
}

/// A WASI workload about to run in this process (a container's PID 1, or `berth exec`'s
/// command in a WASI container).
pub(crate) struct WasiStart<'a> {
    spec: &'a WorkloadSpec,
    found: &'a Found,
    kind: wasi::WasmKind,
    cache: Option<wasi::ModuleCache>,
    known: Option<&'a wasi::KnownModule>,
    /// The engine and program `__init` made ahead, if it did.
    preloaded: Option<launch::Preloaded>,
}

impl<'a> WasiStart<'a> {
    /// The guest `found` is, when its first bytes (with the spec's backend) say it runs as
    /// one; `None` for a native program.
    fn of(
        spec: &'a WorkloadSpec,
        found: &'a Found,
        cache: Option<wasi::ModuleCache>,
        known: Option<&'a wasi::KnownModule>,
    ) -> Result<Option<WasiStart<'a>>, StartError> {
        let header = read_header(&found.program);
        Ok(
            backend::check_program(spec, &header)?.map(|kind| WasiStart {
                spec,
                found,
                kind,
                cache,
                known,
                preloaded: None,
            }),
        )
    }

    /// Compiles (or loads from the cache) the program while still privileged, drops privileges
    /// as a native workload would, then runs the guest and exits with its code. With `status`,
    /// closing it tells the monitor the guest runs; with `exit_fd` the code is reported there
    /// the moment the guest ends.
    fn run(
        self,
        status: Option<&File>,
        go: Option<RawFd>,
        exit_fd: Option<RawFd>,
    ) -> Result<std::convert::Infallible, StartError> {
        // While single-threaded (a mount namespace of its own needs it).
        rootfs::hide_system_mounts().map_err(StartError::berth)?;
        // Before wasmtime starts any thread, so all of them inherit the held mask.
        wasi::stop::hold_signals();
        let (engine, program) = match self.preloaded.filter(|p| p.path == self.found.program) {
            Some(p) => (p.engine, p.program),
            None => {
                let engine = wasi::engine::new_engine().map_err(StartError::from)?;
                let program = launch::load_program(
                    &engine,
                    &self.found.program,
                    &self.spec.args[0],
                    self.kind,
                    self.cache.as_ref(),
                    self.known,
                )?;
                (engine, program)
            }
        };
        drop(self.cache);
        drop_privileges(self.spec, &self.found.who)?;
        wait_for_go(go)?;
        wasi::stop::watch(&engine);
        let guest = launch::guest_spec(
            self.spec,
            self.found.env.clone(),
            &launch::GuestFiles::InRootfs,
        );
        // The guest starts: closing the status pipe tells the monitor so.
        if let Some(status) = status {
            // SAFETY: the fd is ours and is not used again in this process.
            unsafe { nix::libc::close(status.as_raw_fd()) };
        }
        let code = launch::run_to_exit(&engine, &program, &guest);
        if let Some(fd) = exit_fd {
            report_early_exit(fd, code);
        }
        std::process::exit(code)
    }
}

/// With `--rm`, a WASI guest's PID 1 reports its code the moment the guest ends: its output is
/// complete (the monitor copies it to the end before it records the exit), then its code, and
/// the monitor goes on while this process ends.
fn report_early_exit(fd: RawFd, code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    for stdio in 0..3 {
        let _ = nix::unistd::close(stdio);
    }
    super::init::report_exit(fd, code);
    super::init::yield_to_the_monitor();
    // Nothing is left to flush, and nothing may hold this process' end up now that the monitor
    // goes on: no exit handlers.
    // SAFETY: _exit ends the process at once.
    unsafe { nix::libc::_exit(code) }
}

/// `berth exec`'s command, inside the container's namespaces (see `nsexec.rs`): found as PID 1
/// finds the workload, then exec'd, or run as a WASI guest in a WASI container.
pub(crate) fn exec_command(
    spec: &WorkloadSpec,
    wasm_cache: Option<wasi::ModuleCache>,
) -> Result<std::convert::Infallible, StartError> {
    let found = find_workload(spec, false)?;
    if let Some(wasi) = WasiStart::of(spec, &found, wasm_cache, None)? {
        return wasi.run(None, None, None);
    }
    drop_privileges(spec, &found.who)?;
    exec(&found.program, &spec.args, &found.env)
}

/// Finds the program as execve would be asked for it, or fails with Docker's message and code.
pub(crate) fn resolve_program(args: &[String], env: &[String]) -> Result<PathBuf, StartError> {
    let Some(name) = args.first() else {
        return Err(StartError::berth(
            "no command specified: the image has no Cmd or Entrypoint; give a command after the image name",
        ));
    };
    let executable = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file());
    if name.contains('/') {
        let p = PathBuf::from(name);
        if !p.exists() {
            return Err(StartError::not_found(format!(
                "exec: \"{name}\": stat {name}: no such file or directory"
            )));
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
    Err(StartError::not_found(format!(
        "exec: \"{name}\": executable file not found in $PATH"
    )))
}

/// Capabilities, groups, ids, no_new_privs and seccomp, in the order that keeps each step
/// possible: the filter is built while root and installed last.
pub(crate) fn drop_privileges(
    spec: &WorkloadSpec,
    who: &user::ResolvedUser,
) -> Result<(), StartError> {
    let sec = &spec.security;
    let caps = capabilities::resolve(&sec.cap_add, &sec.cap_drop, sec.privileged)
        .map_err(StartError::berth)?;
    let filter = match &sec.seccomp_profile {
        _ if sec.privileged => None,
        Some(profile) => Some(seccomp_profile::compile(profile).map_err(StartError::berth)?),
        None if sec.seccomp => Some(seccomp::default_profile(&caps).map_err(StartError::berth)?),
        None => None,
    };
    // Without no_new_privs the filter needs CAP_SYS_ADMIN to install, so it goes in while
    // we are still root; the profile allows the setuid, capset and prctl calls after it.
    let early = !sec.no_new_privs || sec.privileged;
    if early && let Some(f) = &filter {
        seccomp::install(f).map_err(StartError::berth)?;
    }
    capabilities::prepare_uid_change().map_err(StartError::berth)?;
    let groups: Vec<nix::unistd::Gid> = who
        .groups
        .iter()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&groups)
        .map_err(|e| StartError::berth(format!("setting groups: {e}")))?;
    nix::unistd::setgid(nix::unistd::Gid::from_raw(who.gid))
        .map_err(|e| StartError::berth(format!("setting gid {}: {e}", who.gid)))?;
    nix::unistd::setuid(nix::unistd::Uid::from_raw(who.uid))
        .map_err(|e| StartError::berth(format!("setting uid {}: {e}", who.uid)))?;
    capabilities::apply(&caps, who.uid == 0).map_err(StartError::berth)?;
    if sec.no_new_privs && !sec.privileged {
        seccomp::set_no_new_privs().map_err(StartError::berth)?;
    }
    if !early && let Some(f) = &filter {
        seccomp::install(f).map_err(StartError::berth)?;
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
        return Err(StartError::berth(format!(
            "closing inherited files: {}",
            std::io::Error::last_os_error()
        )));
    }
    let c = |s: &str| {
        CString::new(s).map_err(|_| StartError::berth(format!("{s:?} contains a NUL byte")))
    };
    let prog = c(&program.display().to_string())?;
    let argv = args.iter().map(|a| c(a)).collect::<Result<Vec<_>, _>>()?;
    let envp = env.iter().map(|a| c(a)).collect::<Result<Vec<_>, _>>()?;
    let e = nix::unistd::execve(&prog, &argv, &envp).unwrap_err();
    let name = &args[0];
    Err(match e {
        nix::Error::EACCES => {
            StartError::cannot_run(format!("exec: \"{name}\": permission denied"))
        }
        nix::Error::ENOENT => StartError::not_found(format!(
            "exec: \"{name}\": no such file or directory (or its interpreter is missing)"
        )),
        nix::Error::ENOEXEC => {
            StartError::cannot_run(format!("exec: \"{name}\": exec format error"))
        }
        other => StartError::cannot_run(format!("exec: \"{name}\": {other}")),
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
