//! The monitor: the process that holds one running container. It spawns the container's init,
//! holds its stdio and writes its log, serves its published ports, reaps it and records how it
//! ended. `berth run` in the foreground is its own monitor; `run -d` and `start` hand the
//! container to a detached `berth __monitor` process.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use chrono::Utc;
use nix::sys::signal::{SigSet, Signal};

use super::log::{Log, LogWriter};
use super::spawn::{self, InitChild, InitHandoff, InitStdio};
use super::state::{Container, Status, process_start_time};
use super::store::ContainerError;
use super::tty::{RawMode, terminal_size};
use crate::network::ports::{self, PortMapping};
use crate::network::proxy::Proxy;
use crate::sandbox::linux::cgroups::{self, Cgroup};
use crate::sandbox::linux::init::InitConfig;
use crate::sandbox::linux::rootfs::RootfsPlan;
use crate::store::{IoContext, Store};
use crate::workload::NetworkMode;

/// How the container's stdio is connected.
#[derive(Clone)]
pub enum Attach {
    /// Output goes to the log only (`run -d`, `start`).
    Detached,
    /// Output also goes to this process' stdout and stderr, and signals sent to this process
    /// reach the container (`run`, `start -a`).
    Foreground,
    /// Output also goes to the sink, and signals sent to this process reach the container:
    /// a build's live display shows a RUN step's output under the step.
    Captured(OutputSink),
}

/// Receives a container's output (stdout and stderr alike) in chunks as it is read, from the
/// monitor's copying threads.
pub type OutputSink = std::sync::Arc<dyn Fn(&[u8]) + Send + Sync>;

impl std::fmt::Debug for Attach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Attach::Detached => "Detached",
            Attach::Foreground => "Foreground",
            Attach::Captured(_) => "Captured",
        })
    }
}

impl Attach {
    /// Where a copy of one output stream goes besides the log; `stdio` is this process' own
    /// stream of the same name.
    fn tee(&self, stdio: impl Write + Send + 'static) -> Option<Box<dyn Write + Send>> {
        match self {
            Attach::Detached => None,
            Attach::Foreground => Some(Box::new(stdio)),
            Attach::Captured(sink) => Some(Box::new(SinkWriter(sink.clone()))),
        }
    }
}

/// An [`OutputSink`] as a writer, for [`copy_output`].
struct SinkWriter(OutputSink);

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (self.0)(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What can go wrong starting or monitoring a container.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The workload could not be started; `code` is Docker's exit code for it.
    #[error("{message}")]
    Start {
        /// 125, 126 or 127.
        code: i32,
        /// Why.
        message: String,
    },
    /// The container is in the wrong state.
    #[error("{0}")]
    State(String),
    /// The container store failed.
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl MonitorError {
    /// The exit code berth exits with for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            MonitorError::Start { code, .. } => *code,
            _ => 125,
        }
    }
}

fn start_err(message: impl std::fmt::Display) -> MonitorError {
    MonitorError::Start {
        code: 125,
        message: message.to_string(),
    }
}

/// A running container held by this process.
pub struct Monitor {
    store: Store,
    /// `__init`.
    child: InitChild,
    /// Where `__init` writes the container's exit code, before its own exit (which tears down
    /// the namespaces, a millisecond or more that the cleanup overlaps); with `--rm`, a WASI
    /// guest's PID 1 writes it first, before its own end.
    exit: File,
    /// The container as it was started (`--rm`, its volumes).
    container: Container,
    pid: i32,
    io: Vec<JoinHandle<()>>,
    proxy: Option<Proxy>,
    cgroup: Option<Cgroup>,
    raw_mode: Option<RawMode>,
    /// Kept open so a detached `-i` container's stdin does not see end-of-file.
    _stdin_hold: Option<Box<dyn Send>>,
    /// This process is the container's monitor while it holds this.
    _start_lock: crate::store::LockGuard,
}

impl Monitor {
    /// Starts the container `id` and returns once its workload runs (or failed to start).
    pub fn start(store: &Store, id: &str, attach: Attach) -> Result<Monitor, MonitorError> {
        // One monitor per container: held for the monitor's life, so a second `start` finds
        // it running instead of racing for the same rootfs.
        let run_dir = store.create_container_run_dir(id)?;
        let lock_path = run_dir.join("monitor.lock");
        let start_lock = crate::store::lock::try_exclusive(&lock_path)
            .ctx(|| format!("locking {}", lock_path.display()))?
            .ok_or_else(|| MonitorError::State(format!("container {id} is already running")))?;
        let c = store.load_container(id)?;
        if c.state.status == Status::Running {
            return Err(MonitorError::State(format!(
                "container {} is already running",
                c.name
            )));
        }
        // Attached (in the foreground or captured), signals sent to this process go on to the
        // container.
        let forward = !matches!(attach, Attach::Detached);
        if forward {
            // Blocked here, before any thread exists, so only the forwarding thread takes them;
            // `__init` starts with a clean mask (see `spawn`).
            forwarded_signals().thread_block().map_err(start_err)?;
        }
        let (plan, rootfs_files) = rootfs_plan(store, &c, &store.container_dir(id), &run_dir)?;
        // Every container gets a cgroup: limits, `top`, OOM reporting, and the device rules
        // that keep CAP_MKNOD from reaching host disks.
        let limits = c.spec.cgroup_limits();
        let wasm_cache = crate::sandbox::wasi::cache::CacheLocation::of_store(store);
        let mut config = InitConfig {
            exit_fd: None,
            ready_fd: None,
            cleanup_fd: None,
            cleanup_in: None,
            netns_spares: (c.spec.network != NetworkMode::Host && !c.spec.security.userns)
                .then(|| store.run_root().join("netns")),
            spare_folders: None,
            id: c.id.clone(),
            spec: c.spec.clone(),
            wasm_module: known_wasm_module(&c, &plan, &wasm_cache.cache),
            rootfs: plan,
            // PID 1 joins the cgroup itself, except in a user namespace (see the go pipe).
            cgroup: !c.spec.security.userns,
            wasm_cache: Some(wasm_cache),
        };
        // Published ports are bound before the container starts: a port in use fails the start
        // before the workload runs.
        let mut ports_bound = None;
        if !c.publish.is_empty() && c.spec.network != NetworkMode::Host {
            let mut mappings: Vec<PortMapping> = Vec::new();
            for spec in &c.publish {
                mappings.extend(ports::parse_publish(spec).map_err(start_err)?);
            }
            match Proxy::bind(&mappings) {
                Ok(b) => ports_bound = Some(b),
                Err(e) => {
                    let message = e.to_string();
                    store.update_container(id, |c| c.state.error = Some(message.clone()))?;
                    return Err(start_err(message));
                }
            }
        }
        // The pipes' ends for `__init` are inheritable: no other start may spawn its child
        // while they are open here (a build starts parallel stages' RUN steps from threads),
        // or that child would hold them, and this start would wait for it to end.
        let spawning = CHILD_ENDS.lock().unwrap_or_else(|e| e.into_inner());
        // The exit pipe: `__init` writes the exit code on it, then exits.
        let (exit_read, exit_write) = nix::unistd::pipe().map_err(start_err)?;
        close_on_exec(&exit_read)?;
        config.exit_fd = Some(exit_write.as_raw_fd());
        // The ready pipe: `__init` makes the namespaces, then waits on it for the rootfs files
        // and the cgroup, which this process makes meanwhile.
        let (ready_read, ready_write) = nix::unistd::pipe().map_err(start_err)?;
        close_on_exec(&ready_write)?;
        config.ready_fd = Some(ready_read.as_raw_fd());
        // The cleanup pipe, with `--rm`: `__init` removes the container's folder after the end
        // (see `Monitor::wait`).
        let cleanup = if c.auto_remove {
            let (cleanup_read, cleanup_write) = nix::unistd::pipe().map_err(start_err)?;
            close_on_exec(&cleanup_write)?;
            config.cleanup_fd = Some(cleanup_read.as_raw_fd());
            config.cleanup_in = Some(store.tmp_dir());
            config.spare_folders = Some(store.containers_dir());
            Some((cleanup_read, cleanup_write))
        } else {
            None
        };
        let (status_read, status_write) = nix::unistd::pipe().map_err(start_err)?;
        close_on_exec(&status_read)?;
        // The go pipe, when this process moves PID 1 into the cgroup (a user namespace's root
        // cannot): PID 1 waits on it before the workload runs. The move waits out an RCU
        // grace period (5 to 15 ms here), overlapped with PID 1 building its rootfs.
        let go = if config.cgroup {
            None
        } else {
            let (go_read, go_write) = nix::unistd::pipe().map_err(start_err)?;
            close_on_exec(&go_write)?;
            Some((go_read, go_write))
        };
        // The log is opened before the workload exists: nothing can fail between its start
        // and the copying of its output.
        let log_path = store.container_dir(id).join(super::log::FILE_NAME);
        let log = Log::open(&log_path, &c.log_config)
            .ctx(|| format!("opening {}", log_path.display()))?;
        let stdout_log = log.writer("stdout");
        let stderr_log = if c.spec.tty {
            None
        } else {
            Some(log.writer("stderr"))
        };
        let cloexec_pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(start_err);
        let mut tty_master: Option<OwnedFd> = None;
        let mut raw_mode = None;
        // This process' ends of the container's stdio: its stdin (when it reads one), its
        // stdout and stderr.
        let mut stdin_end: Option<File> = None;
        let mut output_ends: Option<(File, File)> = None;
        let stdio = if c.spec.tty {
            let size = terminal_size();
            let pty = nix::pty::openpty(size.as_ref(), None).map_err(start_err)?;
            close_on_exec(&pty.master)?;
            tty_master = Some(pty.master);
            if matches!(attach, Attach::Foreground) && c.spec.stdin {
                raw_mode = RawMode::enter();
            }
            InitStdio {
                stdin: pty.slave.try_clone().map_err(start_err)?,
                stdout: pty.slave.try_clone().map_err(start_err)?,
                stderr: pty.slave,
            }
        } else {
            let (out_read, out_write) = cloexec_pipe()?;
            let (err_read, err_write) = cloexec_pipe()?;
            output_ends = Some((File::from(out_read), File::from(err_read)));
            let stdin = if c.spec.stdin {
                let (in_read, in_write) = cloexec_pipe()?;
                stdin_end = Some(File::from(in_write));
                in_read
            } else {
                File::open("/dev/null").map_err(start_err)?.into()
            };
            InitStdio {
                stdin,
                stdout: out_write,
                stderr: err_write,
            }
        };
        // `__init` opens the cgroup the moment it may: the host's layout is looked up here,
        // before the fork, for both processes.
        cgroups::probe_host();
        let mut child = spawn::spawn(
            stdio,
            InitHandoff {
                config: &config,
                config_path: &run_dir.join("init.json"),
                status_fd: status_write.as_raw_fd(),
                go_fd: go.as_ref().map(|(r, _)| r.as_raw_fd()),
                run_root: store.run_root(),
            },
        )
        .map_err(|e| start_err(format!("starting the container's init: {e}")))?;
        drop(status_write);
        drop(exit_write);
        drop(ready_read);
        if let Some((cleanup_read, cleanup_write)) = cleanup {
            drop(cleanup_read);
            child.set_cleanup(File::from(cleanup_write));
        }
        let go_write = go.map(|(_, w)| w);
        drop(spawning);

        // While `__init` makes the namespaces (the network one alone takes half a millisecond):
        // the writable layer's folders, the /etc files and the cgroup.
        let mut cgroup = None;
        let prepared = rootfs_files.make().and_then(|()| {
            let cg = Cgroup::create(&c.id, &limits).map_err(start_err)?;
            let cg = cgroup.insert(cg);
            if c.spec.security.privileged {
                cg.allow_all_devices().map_err(start_err)?;
            }
            Ok(())
        });
        if let Err(e) = prepared {
            // The ready pipe closes unwritten: `__init` ends without starting anything.
            drop(ready_write);
            let _ = child.wait();
            if let Some(cg) = &cgroup {
                let _ = cg.remove();
            }
            drop(raw_mode);
            let message = e.to_string();
            store.update_container(id, |c| c.state.error = Some(message.clone()))?;
            return Err(e);
        }
        // `__init` may have failed and gone already: the status pipe then says why.
        let _ = File::from(ready_write).write_all(b"1");

        let join = |pid: i32| -> Result<(), MonitorError> {
            let Some(go_write) = &go_write else {
                return Ok(());
            };
            if let Some(cg) = &cgroup
                && let Err(e) = cg.add_process(pid)
            {
                // Gone already (it failed to start): the status pipe says why, not this.
                if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok() {
                    return Err(start_err(e));
                }
            }
            // PID 1 may already have failed and gone: its error follows on the status pipe.
            let _ = File::from(go_write.try_clone().map_err(start_err)?).write_all(b"1");
            Ok(())
        };
        let pid = match read_status(status_read, join) {
            Ok((pid, backend)) => {
                // The init found a WebAssembly program where a native one was expected.
                if let Some(b) = backend
                    && b != c.backend
                {
                    store.update_container(id, |c| c.backend = b.clone())?;
                }
                pid
            }
            Err(e) => {
                child.kill();
                let _ = child.wait();
                if let Some(cg) = &cgroup {
                    let _ = cg.remove();
                }
                drop(raw_mode);
                let message = e.to_string();
                let code = e.exit_code();
                store.update_container(id, |c| {
                    c.state.status = Status::Exited;
                    c.state.exit_code = Some(code);
                    c.state.error = Some(message.clone());
                    c.state.finished_at = Some(Utc::now());
                })?;
                return Err(e);
            }
        };

        let mut io = Vec::new();
        let mut stdin_hold: Option<Box<dyn Send>> = None;
        // Only a foreground container reads this process' stdin.
        let foreground = matches!(attach, Attach::Foreground);
        // Signals are forwarded to the workload before any of its output is copied: a user
        // who sees it and presses Ctrl-C must reach it (a build's forwarding thread, already
        // running for earlier steps, would otherwise find no target and drop the signal).
        if let Some(master) = tty_master {
            let reader = File::from(master.try_clone().map_err(start_err)?);
            let writer = File::from(master);
            if foreground && c.spec.stdin {
                forward_signals(pid, Some(writer.try_clone().map_err(start_err)?));
                std::thread::spawn(move || copy_stdin(writer));
            } else {
                if forward {
                    forward_signals(pid, None);
                }
                stdin_hold = Some(Box::new(writer));
            }
            io.push(copy_output(reader, stdout_log, attach.tee(io::stdout())));
        } else if let Some((out, err)) = output_ends {
            if forward {
                forward_signals(pid, None);
            }
            if let Some(stdin) = stdin_end {
                if foreground {
                    std::thread::spawn(move || copy_stdin(stdin));
                } else {
                    stdin_hold = Some(Box::new(stdin));
                }
            }
            io.push(copy_output(out, stdout_log, attach.tee(io::stdout())));
            if let Some(stderr_log) = stderr_log {
                io.push(copy_output(err, stderr_log, attach.tee(io::stderr())));
            }
        }

        let mut proxy = None;
        let mut bound = Vec::new();
        if let Some(ports_bound) = ports_bound {
            match ports_bound.serve(Path::new(&format!("/proc/{pid}/ns/net"))) {
                Ok(p) => {
                    bound = p.bound().iter().map(ports::format_mapping).collect();
                    proxy = Some(p);
                }
                Err(e) => {
                    stop_forwarding(pid);
                    let _ =
                        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
                    let _ = child.wait();
                    if let Some(cg) = &cgroup {
                        let _ = cg.remove();
                    }
                    drop(raw_mode);
                    let message = e.to_string();
                    store.update_container(id, |c| {
                        c.state.status = Status::Created;
                        c.state.error = Some(message.clone());
                    })?;
                    return Err(start_err(message));
                }
            }
        }

        let me = std::process::id() as i32;
        store.update_container(id, |c| {
            c.state.status = Status::Running;
            c.state.pid = Some(pid);
            c.state.monitor_pid = Some(me);
            c.state.monitor_start = process_start_time(me);
            c.state.started_at = Some(Utc::now());
            c.state.finished_at = None;
            c.state.exit_code = None;
            c.state.error = None;
            c.state.oom_killed = false;
            c.ports = bound.clone();
        })?;
        Ok(Monitor {
            store: store.clone(),
            child,
            exit: File::from(exit_read),
            container: c,
            pid,
            io,
            proxy,
            cgroup,
            raw_mode,
            _stdin_hold: stdin_hold,
            _start_lock: start_lock,
        })
    }

    /// Whether `__init` removes the cgroup once PID 1 has ended: with `--rm` (its cleanup
    /// pipe) and no user namespace (its `InitConfig::cgroup`).
    fn cgroup_by_init(&self) -> bool {
        self.container.auto_remove && !self.container.spec.security.userns
    }

    /// The host pid of the container's first process.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Waits for the container to end, records its exit, cleans up (and removes it with
    /// `--rm`, returning before the kernel has ended its namespaces). Returns its exit code.
    pub fn wait(mut self) -> Result<i32, MonitorError> {
        let code = self.exit_code()?;
        stop_forwarding(self.pid);
        for t in self.io.drain(..) {
            let _ = t.join();
        }
        if let Some(p) = self.proxy.take() {
            p.stop();
        }
        let oom = self.cgroup.as_ref().is_some_and(|c| c.oom_killed());
        // With `--rm`, `__init` removes the cgroup once it has reaped PID 1, which may still be
        // ending (a WASI guest's reports its code first). Else nothing runs in it any more:
        // removed on another thread meanwhile (a rmdir per hierarchy, a few tenths of a
        // millisecond on v1).
        let mut cgroup = self.cgroup.take();
        let cgroup_removed = if self.cgroup_by_init() {
            None
        } else {
            cgroup.take().map(|cg| {
                std::thread::spawn(move || {
                    let _ = cg.remove();
                })
            })
        };
        drop(self.raw_mode.take());
        let record = |store: &Store, id: &str| {
            store.update_container(id, |c| {
                c.state.status = Status::Exited;
                c.state.exit_code = Some(code);
                c.state.finished_at = Some(Utc::now());
                c.state.oom_killed = oom;
                c.state.pid = None;
            })
        };
        let ended = if self.container.auto_remove {
            // Recorded first (a `berth wait` may be reading it), then removed while the kernel
            // tears the namespaces down; the folder is renamed away in one step, so it is never
            // listed half-removed. The exit code is in: what is left is PID 1's end (a WASI
            // guest's reports its code before it), `__init`'s cleanup and the kernel ending the
            // namespaces (the mount namespace's RCU grace periods take most of a millisecond),
            // which nothing here waits for. `__init` is reaped now if it is gone, else by
            // whoever inherits it when this process ends (the only callers with `--rm` end
            // once this returns).
            let removed = record(&self.store, &self.container.id)
                .map_err(MonitorError::from)
                .and_then(|_| {
                    // `__init` removes the folder (its writable layer, log and state) once this
                    // process no longer waits: most of a millisecond of directory removals on
                    // some disks. The container is out of the store from the rename on.
                    let id = &self.container.id;
                    let owner = self.child.pid().as_raw() as u32;
                    let folder = self.store.retire_container_files(id, owner);
                    let handed = folder
                        .as_ref()
                        .and_then(|f| f.file_name())
                        .is_some_and(|n| self.child.remove_after(n));
                    if !handed {
                        // `__init` is gone, perhaps without removing the cgroup.
                        if let Some(cg) = cgroup.take() {
                            let _ = cg.remove();
                        }
                        if let Some(f) = &folder {
                            crate::store::remove_tree(f)
                                .ctx(|| format!("removing {}", f.display()))?;
                        }
                    }
                    remove_volumes(&self.store, &self.container);
                    Ok(())
                });
            if self.child.try_wait()
                && let Some(cg) = cgroup.take()
            {
                // `__init` has ended already: perhaps killed before it removed the cgroup
                // (removing it twice is harmless).
                let _ = cg.remove();
            }
            removed
        } else {
            // A container that stays is recorded as exited once `__init` is gone, and with it
            // the namespaces and the overlay mounted in them: a restart can then mount the same
            // writable layer.
            self.reap().and_then(|_| {
                record(&self.store, &self.container.id)
                    .map(drop)
                    .map_err(MonitorError::from)
            })
        };
        if let Some(t) = cgroup_removed {
            let _ = t.join();
        }
        ended.map(|()| code)
    }

    /// The container's exit code, as soon as `__init` writes it on the exit pipe (before its
    /// namespaces are torn down); its own exit status if it ended without writing it (it was
    /// killed). The pipe is read up to its first line only, and `__init`'s end is watched
    /// through a pidfd: a process that inherited the pipe by accident cannot hold this up.
    fn exit_code(&mut self) -> Result<i32, MonitorError> {
        use rustix::event::{PollFd, PollFlags, poll};
        let pidfd = rustix::process::Pid::from_raw(self.child.pid().as_raw()).and_then(|pid| {
            rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
        });
        let mut line = Vec::new();
        loop {
            let (readable, ended) = match &pidfd {
                Some(pidfd) => {
                    let mut fds = [
                        PollFd::new(&self.exit, PollFlags::IN),
                        PollFd::new(pidfd, PollFlags::IN),
                    ];
                    match poll(&mut fds, None) {
                        Ok(_) => (!fds[0].revents().is_empty(), !fds[1].revents().is_empty()),
                        Err(rustix::io::Errno::INTR) => continue,
                        Err(e) => return Err(start_err(format!("waiting for the container: {e}"))),
                    }
                }
                // No pidfd (Linux before 5.3): the pipe alone.
                None => (true, false),
            };
            if readable {
                let mut buf = [0u8; 16];
                match io::Read::read(&mut self.exit, &mut buf) {
                    Ok(0) => return self.reap(),
                    Ok(n) => {
                        line.extend_from_slice(&buf[..n]);
                        if let Some(end) = line.iter().position(|&b| b == b'\n') {
                            return match std::str::from_utf8(&line[..end])
                                .ok()
                                .and_then(|l| l.trim().parse().ok())
                            {
                                Some(code) => Ok(code),
                                None => self.reap(),
                            };
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return self.reap(),
                }
            } else if ended {
                // Ended, and nothing to read: it wrote no code.
                return self.reap();
            }
        }
    }

    /// Waits for `__init` to end; its exit code.
    fn reap(&mut self) -> Result<i32, MonitorError> {
        self.child
            .wait()
            .map_err(|e| start_err(format!("waiting for the container: {e}")))
    }
}

/// Keeps `fd` (this process' end of a pipe to `__init`) from being inherited by it.
fn close_on_exec(fd: &OwnedFd) -> Result<(), MonitorError> {
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map(drop)
    .map_err(start_err)
}

/// Held while the inheritable pipe ends for one `__init` are open in this process.
static CHILD_ENDS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Removes a stopped container's files, and with `volumes` its anonymous volumes.
pub fn remove_container(store: &Store, c: &Container, volumes: bool) -> Result<(), MonitorError> {
    // A monitor that was killed could not remove the cgroup; nothing runs in it any more.
    if let Ok(cg) = Cgroup::open(&c.id) {
        let _ = cg.remove();
    }
    remove_files(store, c, volumes)
}

/// Removes a container's folder, and with `volumes` its anonymous volumes.
fn remove_files(store: &Store, c: &Container, volumes: bool) -> Result<(), MonitorError> {
    store.remove_container_files(&c.id)?;
    if volumes {
        remove_volumes(store, c);
    }
    Ok(())
}

/// Removes a container's anonymous volumes.
fn remove_volumes(store: &Store, c: &Container) {
    for m in &c.spec.mounts {
        if let Some(v) = &m.volume
            && store.volume(v).is_ok_and(|v| v.anonymous)
        {
            let _ = store.remove_volume(v, true);
        }
    }
}

/// Reads the init's status lines: the container's pid (handed to `on_pid` as soon as it is
/// known, which lets the workload go on) and the backend it ran (`backend wasi wasip1`), or
/// why it could not start.
fn read_status(
    fd: OwnedFd,
    mut on_pid: impl FnMut(i32) -> Result<(), MonitorError>,
) -> Result<(i32, Option<String>), MonitorError> {
    let mut pid = None;
    let mut backend = None;
    for line in BufReader::new(File::from(fd)).lines() {
        let line = line.map_err(start_err)?;
        if let Some(p) = line.strip_prefix("pid ") {
            let p: i32 = p
                .trim()
                .parse()
                .map_err(|_| start_err(format!("the container's init said {line:?}")))?;
            on_pid(p)?;
            pid = Some(p);
        } else if let Some(rest) = line.strip_prefix("backend ") {
            backend = rest.split_whitespace().next().map(str::to_string);
        } else if let Some(rest) = line.strip_prefix("error ") {
            let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
            return Err(MonitorError::Start {
                code: code.parse().unwrap_or(125),
                message: message.to_string(),
            });
        }
    }
    pid.map(|p| (p, backend))
        .ok_or_else(|| start_err("the container's init ended before starting the workload"))
}

/// The digest of a WASI container's program when it is an image file the container has not
/// changed: an absolute path, found in the layer snapshots, with nothing in the writable
/// layer yet (a fresh container) and no mount over it. PID 1 then maps the cached artifact
/// without reading the module; otherwise (None) it reads and hashes the module itself.
fn known_wasm_module(
    c: &Container,
    plan: &RootfsPlan,
    cache: &Path,
) -> Option<crate::sandbox::wasi::KnownModule> {
    let path = c.spec.args.first().filter(|p| p.starts_with('/'))?;
    if c.spec.backend != crate::backend::Backend::Wasi {
        return None;
    }
    let under = |dest: &str| {
        let dest = dest.trim_end_matches('/');
        dest.is_empty()
            || path == dest
            || path.strip_prefix(dest).is_some_and(|r| r.starts_with('/'))
    };
    let mounted = ["/proc", "/sys", "/dev"]
        .into_iter()
        .chain(plan.etc_files.iter().map(|(_, d)| d.as_str()))
        .chain(plan.mounts.iter().map(|m| m.destination.as_str()))
        .any(under);
    // Not made yet (a new container) counts as empty.
    let fresh = match std::fs::read_dir(&plan.upperdir) {
        Ok(mut d) => d.next().is_none(),
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    };
    if mounted || !fresh {
        return None;
    }
    let (layer, file) = crate::image::snapshot::find_in_layers(&plan.lowerdirs, path)?;
    let digest = crate::sandbox::wasi::ModuleCache::open(cache)
        .and_then(|cache| cache.layer_module_digest(&plan.lowerdirs[layer], path, &file));
    match digest {
        Ok(sha256) => Some(crate::sandbox::wasi::KnownModule {
            path: path.clone(),
            sha256,
        }),
        Err(e) => {
            tracing::debug!("not remembering the digest of {path}: {e}");
            None
        }
    }
}

/// The container's rootfs: its layers' snapshots (top first) under its own upper dir (in the
/// container's folder `dir`), mounted on a folder in its run folder `run`, with its `/etc` files
/// from there too. Nothing is made yet: [`RootfsFiles::make`] does that, while `__init` makes
/// the namespaces.
fn rootfs_plan(
    store: &Store,
    c: &Container,
    dir: &Path,
    run: &Path,
) -> Result<(RootfsPlan, RootfsFiles), MonitorError> {
    let mut lowerdirs = Vec::new();
    for diff_id in c.layers.iter().rev() {
        let p = store.snapshot_path(diff_id);
        if !p.is_dir() {
            return Err(start_err(format!(
                "layer {diff_id} of image {} is missing from the store: pull, load or build the image again",
                c.image
            )));
        }
        // overlayfs refuses a lowerdir given twice (ELOOP), and two steps can make the same
        // layer (two RUNs that change nothing). The topmost copy alone gives the same merged
        // view: everything the lower copy provides or removes, the upper one does again.
        if !lowerdirs.contains(&p) {
            lowerdirs.push(p);
        }
    }
    // The mount points of the files bound below, made once per image (not for a build's
    // steps, whose layers are each new), unless its path would push overlayfs' options past
    // the page the kernel takes them in, which a deep image may come near.
    // (lowerdir=…:…, upperdir=<dir>/upper, workdir=<dir>/work, the init layer's path, flags)
    let options_len = lowerdirs
        .iter()
        .map(|p| p.as_os_str().len() + 1)
        .sum::<usize>()
        + 2 * (dir.as_os_str().len() + 16)
        + store.root().as_os_str().len()
        + 100;
    let init_layer = (!c.labels.contains_key(super::BUILD_LABEL) && options_len < 4000)
        .then(|| {
            let native = c.spec.backend != crate::backend::Backend::Wasi;
            crate::image::init_layer::ensure(store.root(), &c.layers, &lowerdirs, native)
        })
        .flatten();
    lowerdirs.splice(0..0, init_layer);
    let mut dirs = Vec::new();
    if lowerdirs.is_empty() {
        lowerdirs.push(dir.join("empty"));
        dirs.push((dir.join("empty"), 0o755));
    }
    let hostname = if c.spec.hostname.is_empty() {
        c.short_id().to_string()
    } else {
        c.spec.hostname.clone()
    };
    let mut hosts = format!(
        "127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
    );
    for h in &c.spec.extra_hosts {
        if let Some((name, ip)) = h.split_once(':') {
            hosts.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    let (hostname_file, hosts_file, resolv_file) = (
        run.join("hostname"),
        run.join("hosts"),
        run.join("resolv.conf"),
    );
    let files = vec![
        (hostname_file.clone(), format!("{hostname}\n")),
        (hosts_file.clone(), hosts),
        (resolv_file.clone(), resolv_conf(c.spec.network)),
    ];
    let plan = RootfsPlan {
        lowerdirs,
        upperdir: dir.join("upper"),
        workdir: dir.join("work"),
        merged: run.join("merged"),
        etc_files: vec![
            (hostname_file, "/etc/hostname".into()),
            (hosts_file, "/etc/hosts".into()),
            (resolv_file, "/etc/resolv.conf".into()),
        ],
        mounts: c.spec.mounts.clone(),
        read_only: c.spec.read_only,
        privileged: c.spec.security.privileged,
        own_netns: c.spec.network != NetworkMode::Host,
        userxattr: false,
        wasi_guest: c.spec.backend == crate::backend::Backend::Wasi,
        volatile: c.auto_remove,
    };
    dirs.extend([
        (plan.upperdir.clone(), 0o755),
        (plan.workdir.clone(), 0o700),
        (plan.merged.clone(), 0o755),
    ]);
    let files = RootfsFiles {
        dirs,
        files,
        // A volatile overlay marks its work folder, and overlayfs refuses to mount it again:
        // a `--rm` container that outlived its monitor starts with a fresh one.
        fresh_work: c.auto_remove.then(|| plan.workdir.clone()),
    };
    Ok((plan, files))
}

/// What a rootfs plan needs made before PID 1 mounts it.
struct RootfsFiles {
    /// Folders and the modes they are made with, which no umask narrows: the upper folder's
    /// mode is the container's `/`, and a `--userns` container's root must reach the mount
    /// point.
    dirs: Vec<(PathBuf, u32)>,
    /// The `/etc` files and their content.
    files: Vec<(PathBuf, String)>,
    /// A work folder to empty first.
    fresh_work: Option<PathBuf>,
}

impl RootfsFiles {
    fn make(&self) -> Result<(), MonitorError> {
        if let Some(work) = &self.fresh_work
            && work.join("work/incompat").exists()
        {
            // The mark a `volatile` overlay leaves (and keeps after it is unmounted): overlayfs
            // refuses to mount it again (a `--rm` container started a second time).
            let _ = std::fs::remove_dir_all(work);
        }
        for (d, mode) in &self.dirs {
            // Only in folders that exist: a container removed meanwhile is not made again. One
            // made before (a restart) keeps the mode its container gave it.
            crate::store::make_dir(d, *mode).ctx(|| format!("creating {}", d.display()))?;
        }
        use std::os::unix::fs::PermissionsExt;
        // Written in place: only this container reads them, and only once it runs (which this
        // process, holding its monitor lock, has not let happen yet). Readable by every user of
        // the container, whatever the umask.
        for (path, content) in &self.files {
            std::fs::write(path, content)
                .and_then(|()| {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
                })
                .ctx(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

/// The host's resolv.conf; in a namespace of its own, loopback name servers (unreachable
/// there) are dropped.
fn resolv_conf(network: NetworkMode) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if network == NetworkMode::Host {
        return host;
    }
    host.lines()
        .filter(|l| {
            let mut w = l.split_whitespace();
            !(w.next() == Some("nameserver")
                && w.next()
                    .is_some_and(|ip| ip.starts_with("127.") || ip == "::1"))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Copies one output stream into the log (and, when attached, to `tee`).
pub fn copy_output(
    mut from: impl Read + Send + 'static,
    mut writer: LogWriter,
    mut tee: Option<Box<dyn Write + Send>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Some(t) = tee.as_mut() {
                        let _ = t.write_all(&buf[..n]);
                        let _ = t.flush();
                    }
                    let _ = writer.write(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // EIO: the pty's last slave closed.
                Err(_) => break,
            }
        }
        let _ = writer.flush();
    })
}

/// Copies this process' stdin to the container until end-of-file.
pub fn copy_stdin(mut to: impl Write) {
    let mut stdin = io::stdin().lock();
    let mut buf = [0u8; 8192];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                let _ = to.flush();
            }
        }
    }
}

pub fn forwarded_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        set.add(s);
    }
    set
}

/// Forwards the signals this process receives to the container (and window size changes to
/// its pty).
///
/// One forwarding thread serves the whole process and targets the workloads running now: a
/// build runs a container per RUN step (several at once when stages build in parallel), and
/// a thread per container would leave finished ones taking signals meant for the running
/// steps (and sending them to stale pids).
pub fn forward_signals(pid: i32, pty: Option<File>) {
    FORWARD_TARGETS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((pid, pty));
    start_forwarding();
}

/// Has `hook` told of every signal the forwarding thread takes (by number), before it
/// forwards it, and starts that thread now, with no workload yet. A build uses it to stop on
/// Ctrl-C when no RUN step is running to take the signal; the calling thread must already
/// block [`forwarded_signals`] (the forwarding thread inherits its mask). The first hook stays.
pub fn watch_forwarded_signals(hook: fn(i32)) {
    let _ = SIGNAL_HOOK.set(hook);
    start_forwarding();
}

/// What [`watch_forwarded_signals`] was given.
static SIGNAL_HOOK: std::sync::OnceLock<fn(i32)> = std::sync::OnceLock::new();

/// Starts the one forwarding thread, once.
fn start_forwarding() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        std::thread::spawn(|| {
            let set = forwarded_signals();
            while let Ok(sig) = set.wait() {
                if let Some(hook) = SIGNAL_HOOK.get() {
                    hook(sig as i32);
                }
                let targets = FORWARD_TARGETS.lock().unwrap_or_else(|e| e.into_inner());
                for (pid, pty) in targets.iter() {
                    if sig == Signal::SIGWINCH {
                        if let (Some(pty), Some(size)) = (pty, terminal_size()) {
                            super::tty::set_size(pty, &size);
                        }
                        continue;
                    }
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), sig);
                }
            }
        });
    });
}

/// The workloads [`forward_signals`] forwards to, and their ptys.
static FORWARD_TARGETS: std::sync::Mutex<Vec<(i32, Option<File>)>> =
    std::sync::Mutex::new(Vec::new());

/// Stops forwarding to `pid` once it has exited, so a later signal is never sent to a pid the
/// system may have reused.
fn stop_forwarding(pid: i32) {
    FORWARD_TARGETS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(p, _)| *p != pid);
}
