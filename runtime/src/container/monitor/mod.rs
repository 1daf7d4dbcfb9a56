//! The monitor: the process that holds one running container. It spawns the container's init,
//! holds its stdio and writes its log, serves its published ports, reaps it and records how it
//! ended. `berth run` in the foreground is its own monitor; `run -d` and `start` hand the
//! container to a detached `berth __monitor` process.
//!
//! A start goes in stages, each a function below: claim the container, plan its rootfs and
//! `__init`'s config, bind its ports, make the pipes (`pipes.rs`) and spawn `__init`, make the
//! rootfs files and the cgroup while `__init` makes the namespaces, read its status (a typed
//! message, `sandbox::linux::status`), start copying the output, serve the ports, record it as
//! running. Whatever fails, the start guard (`guard.rs`) undoes what was made.

pub mod detached;
mod guard;
mod pipes;
mod rootfs_plan;
mod stdio;

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use chrono::Utc;

use self::guard::{Recorded, StartGuard};
use self::pipes::{CHILD_ENDS, ContainerStdio, SpawnedPipes, StartPipes};
use self::stdio::stop_forwarding;
pub use self::stdio::{
    copy_output, copy_stdin, forward_signals, forwarded_signals, watch_forwarded_signals,
};
use super::log::Log;
use super::spawn::{self, InitChild, InitHandoff};
use super::state::{Container, Status, process_start_time};
use super::store::ContainerError;
use super::tty::RawMode;
use crate::network::ports::{self, PortMapping};
use crate::network::proxy::{BoundPorts, Proxy};
use crate::sandbox::linux::cgroups::{self, Cgroup};
use crate::sandbox::linux::init::InitConfig;
use crate::sandbox::linux::rootfs::RootfsPlan;
use crate::sandbox::linux::status::{self, StartReport};
use crate::store::{IoContext, Store};
use crate::workload::{NetworkMode, StartError};

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
    /// The workload could not be started.
    #[error(transparent)]
    Start(#[from] StartError),
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
    /// The exit code berth exits with for this error: the start failure's (125, 126, 127),
    /// else 125.
    pub fn exit_code(&self) -> i32 {
        match self {
            MonitorError::Start(e) => e.code(),
            _ => 125,
        }
    }

    /// The failure as a start failure: itself, or berth's own (125) with this message.
    pub fn into_start_error(self) -> StartError {
        match self {
            MonitorError::Start(e) => e,
            other => StartError::berth(other),
        }
    }
}

/// Berth's own failure to start a container.
fn start_err(message: impl std::fmt::Display) -> MonitorError {
    MonitorError::Start(StartError::berth(message))
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
        let (mut c, run_dir, start_lock) = claim(store, id)?;
        // Its address (kept from an earlier start) and the host's side of its network.
        let wiring = bridge_wiring(store, &mut c).map_err(|e| record_error(store, id, e))?;
        // Attached (in the foreground or captured), signals sent to this process go on to the
        // container.
        let forward = !matches!(attach, Attach::Detached);
        if forward {
            // Blocked here, before any thread exists, so only the forwarding thread takes them;
            // `__init` starts with a clean mask (see `spawn`).
            stdio::forwarded_signals()
                .thread_block()
                .map_err(start_err)?;
        }
        let (plan, rootfs_files) =
            rootfs_plan::rootfs_plan(store, &c, &store.container_dir(id), &run_dir)?;
        let mut config = init_config(store, &c, plan);
        config.networks = wiring;
        // Published ports are bound before the container starts: a port in use fails the start
        // before the workload runs.
        let ports_bound = bind_ports(&c).map_err(|e| record_error(store, id, e))?;
        // The log is opened before the workload exists: nothing can fail between its start
        // and the copying of its output.
        let log_path = store
            .container_dir(id)
            .join(crate::container::log::FILE_NAME);
        let log = Log::open(&log_path, &c.log_config)
            .ctx(|| format!("opening {}", log_path.display()))?;

        let mut guard = StartGuard::new(store, id);
        let spawning = CHILD_ENDS.lock().unwrap_or_else(|e| e.into_inner());
        let pipes = StartPipes::new(&mut config, &c, store)?;
        let stdio = ContainerStdio::new(&c, &attach)?;
        guard.raw_mode = stdio.raw_mode;
        // `__init` opens the cgroup the moment it may: the host's layout is looked up here,
        // before the fork, for both processes.
        cgroups::probe_host();
        let child = spawn::spawn(
            stdio.init,
            InitHandoff {
                config: &config,
                config_path: &run_dir.join("init.json"),
                status_fd: pipes.status_fd(),
                go_fd: pipes.go_fd(),
                run_root: store.run_root(),
            },
        )
        .map_err(|e| start_err(format!("starting the container's init: {e}")))?;
        let mut pipes = pipes.spawned(guard.child.insert(child));
        drop(spawning);

        // While `__init` makes the namespaces (the network one alone takes half a
        // millisecond): the writable layer's folders, the /etc files and the cgroup.
        if let Err(e) = prepare(&c, &rootfs_files, &mut guard) {
            return Err(guard.fail(e, Recorded::Error));
        }
        pipes.ready();
        let pid = match wait_for_pid(&pipes, &guard) {
            StartReport::Running(pid) => pid,
            StartReport::Failed(e) => {
                let code = e.code();
                return Err(guard.fail(MonitorError::Start(e), Recorded::Exited(code)));
            }
        };
        guard.pid = Some(pid);
        if forward {
            guard.forwarding = Some(pid);
        }
        let copies = start_copying(
            &c,
            &attach,
            pid,
            &log,
            stdio.tty_master,
            stdio.stdin,
            stdio.output,
        )?;
        let (proxy, bound) = match serve_ports(ports_bound, pid) {
            Ok(p) => p,
            Err(e) => return Err(guard.fail(e, Recorded::Created)),
        };
        record_running(store, id, pid, bound)?;
        let (child, cgroup, raw_mode) = guard.disarm();
        Ok(Monitor {
            store: store.clone(),
            child,
            exit: pipes.exit,
            container: c,
            pid,
            io: copies.threads,
            proxy,
            cgroup,
            raw_mode,
            _stdin_hold: copies.stdin_hold,
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
                    super::lifecycle::remove_volumes(&self.store, &self.container);
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

/// Removes a stopped container's files, and with `volumes` its anonymous volumes.
pub fn remove_container(store: &Store, c: &Container, volumes: bool) -> Result<(), MonitorError> {
    Ok(super::lifecycle::remove_stopped(store, c, volumes)?)
}

/// Takes the container's monitor lock (held for the monitor's life, so a second `start` finds
/// it running instead of racing for the same rootfs) and loads it; gives it, its run folder
/// and the lock.
fn claim(
    store: &Store,
    id: &str,
) -> Result<(Container, PathBuf, crate::store::LockGuard), MonitorError> {
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
    Ok((c, run_dir, start_lock))
}

/// What `__init` is handed (its pipes are named later, as they are made).
fn init_config(store: &Store, c: &Container, plan: RootfsPlan) -> InitConfig {
    let wasm_cache = crate::sandbox::wasi::cache::CacheLocation::of_store(store);
    InitConfig {
        exit_fd: None,
        ready_fd: None,
        cleanup_fd: None,
        cleanup_in: None,
        netns_spares: (c.spec.network != NetworkMode::Host && !c.spec.security.userns)
            .then(|| store.run_root().join("netns")),
        spare_folders: None,
        networks: Vec::new(),
        id: c.id.clone(),
        spec: c.spec.clone(),
        wasm_module: rootfs_plan::known_wasm_module(c, &plan, &wasm_cache.cache),
        rootfs: plan,
        // PID 1 joins the cgroup itself, except in a user namespace (see the go pipe).
        cgroup: !c.spec.security.userns,
        wasm_cache: Some(wasm_cache),
        cgroup_path: None,
        join: Vec::new(),
    }
}

/// Records a start that failed before the workload existed in the container's `State.Error`
/// (what `inspect` shows); passes the failure on.
fn record_error(store: &Store, id: &str, e: MonitorError) -> MonitorError {
    let message = e.to_string();
    match store.update_container(id, |c| c.state.error = Some(message.clone())) {
        Ok(_) => e,
        Err(store_error) => store_error.into(),
    }
}

/// A bridge container's wiring, one per network it is on: the network it was created on
/// (an address leased at its first start, recorded with the container so a restart keeps
/// it) and those `network connect` added; each network's host side is made when missing.
fn bridge_wiring(
    store: &Store,
    c: &mut Container,
) -> Result<Vec<crate::network::bridge::Wiring>, MonitorError> {
    use crate::network::bridge;
    if c.spec.network != NetworkMode::Bridge {
        return Ok(Vec::new());
    }
    let primary = &c.spec.bridge.network;
    // Its first start: the network it was created on (later, a `network disconnect` from it
    // holds).
    let mut endpoints = c.endpoints.clone();
    if c.state.started_at.is_none() && !endpoints.iter().any(|e| &e.network == primary) {
        let network = bridge::load(store, primary).map_err(start_err)?;
        let e = bridge::endpoint(
            store,
            &network,
            &c.id,
            c.spec.bridge.ip,
            "eth0",
            &c.spec.bridge.aliases,
        )
        .map_err(start_err)?;
        endpoints.insert(0, e);
    }
    // Interfaces in the endpoints' order: the first network's is eth0 and has the default
    // route, whatever was connected or disconnected since.
    let mut renumbered = endpoints;
    for (i, e) in renumbered.iter_mut().enumerate() {
        e.interface = format!("eth{i}");
    }
    if renumbered != c.endpoints {
        let recorded = renumbered.clone();
        store.update_container(&c.id, |c| c.endpoints = recorded)?;
        c.endpoints = renumbered;
    }
    let mut wirings = Vec::new();
    for e in &c.endpoints {
        let network = bridge::load(store, &e.network).map_err(start_err)?;
        let bridge_index = bridge::ensure_host_side(store, &network).map_err(start_err)?;
        if crate::network::dns::serves(&network) {
            crate::network::dns::ensure_running(store, &network).map_err(start_err)?;
        }
        wirings.push(bridge::Wiring {
            bridge_index,
            host_veth: crate::workload::Endpoint::host_veth(&c.id, &e.network_id),
            endpoint: e.clone(),
        });
    }
    Ok(wirings)
}

/// Binds the container's published ports (none with the host's network).
fn bind_ports(c: &Container) -> Result<Option<BoundPorts>, MonitorError> {
    if c.publish.is_empty() || c.spec.network == NetworkMode::Host {
        return Ok(None);
    }
    let mut mappings: Vec<PortMapping> = Vec::new();
    for spec in &c.publish {
        mappings.extend(ports::parse_publish(spec).map_err(start_err)?);
    }
    Proxy::bind(&mappings).map(Some).map_err(start_err)
}

/// Makes the rootfs files and the cgroup (every container gets one: limits, `top`, OOM
/// reporting, and the device rules that keep CAP_MKNOD from reaching host disks).
fn prepare(
    c: &Container,
    rootfs_files: &rootfs_plan::RootfsFiles,
    guard: &mut StartGuard<'_>,
) -> Result<(), MonitorError> {
    rootfs_files.make()?;
    let limits = c.spec.cgroup_limits();
    let cg = guard
        .cgroup
        .insert(Cgroup::create(&c.id, &limits).map_err(start_err)?);
    if c.spec.security.privileged {
        cg.allow_all_devices().map_err(start_err)?;
    }
    Ok(())
}

/// Reads the status pipe until the workload runs or fails. When this process moves PID 1 into
/// the cgroup (a user namespace), it does so the moment the pid is known, then lets PID 1 go
/// on.
fn wait_for_pid(pipes: &SpawnedPipes, guard: &StartGuard<'_>) -> StartReport {
    let join = |pid: i32| -> Result<(), StartError> {
        let Some(go) = &pipes.go else {
            return Ok(());
        };
        if let Some(cg) = &guard.cgroup
            && let Err(e) = cg.add_process(pid)
        {
            // Gone already (it failed to start): the status pipe says why, not this.
            if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok() {
                return Err(StartError::berth(e));
            }
        }
        // PID 1 may already have failed and gone: its error follows on the status pipe.
        let _ = (&*go).write_all(b"1");
        Ok(())
    };
    match pipes.status.try_clone() {
        Ok(status) => status::read(status, join),
        Err(e) => StartReport::Failed(StartError::berth(format!(
            "reading the container's init: {e}"
        ))),
    }
}

/// The threads that copy the container's output and input, and what holds its stdin open.
struct Copies {
    threads: Vec<JoinHandle<()>>,
    stdin_hold: Option<Box<dyn Send>>,
}

/// Forwards signals to the workload and starts copying its output (and input). Signals go
/// first: a user who sees its output and presses Ctrl-C must reach it (a build's forwarding
/// thread, already running for earlier steps, would otherwise find no target and drop the
/// signal).
fn start_copying(
    c: &Container,
    attach: &Attach,
    pid: i32,
    log: &Log,
    tty_master: Option<OwnedFd>,
    stdin: Option<File>,
    output: Option<(File, File)>,
) -> Result<Copies, MonitorError> {
    let forward = !matches!(attach, Attach::Detached);
    // Only a foreground container reads this process' stdin.
    let foreground = matches!(attach, Attach::Foreground);
    let mut threads = Vec::new();
    let mut stdin_hold: Option<Box<dyn Send>> = None;
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
        threads.push(copy_output(
            reader,
            log.writer("stdout"),
            attach.tee(io::stdout()),
        ));
    } else if let Some((out, err)) = output {
        if forward {
            forward_signals(pid, None);
        }
        if let Some(stdin) = stdin {
            if foreground {
                std::thread::spawn(move || copy_stdin(stdin));
            } else {
                stdin_hold = Some(Box::new(stdin));
            }
        }
        threads.push(copy_output(
            out,
            log.writer("stdout"),
            attach.tee(io::stdout()),
        ));
        threads.push(copy_output(
            err,
            log.writer("stderr"),
            attach.tee(io::stderr()),
        ));
    }
    Ok(Copies {
        threads,
        stdin_hold,
    })
}

/// Serves the bound ports into the container's network namespace; gives the proxy and the
/// mappings as `ps` shows them.
fn serve_ports(
    bound: Option<BoundPorts>,
    pid: i32,
) -> Result<(Option<Proxy>, Vec<String>), MonitorError> {
    let Some(bound) = bound else {
        return Ok((None, Vec::new()));
    };
    let proxy = bound
        .serve(Path::new(&format!("/proc/{pid}/ns/net")))
        .map_err(start_err)?;
    let shown = proxy.bound().iter().map(ports::format_mapping).collect();
    Ok((Some(proxy), shown))
}

/// Records the container as running, as `pid`, under this monitor.
fn record_running(
    store: &Store,
    id: &str,
    pid: i32,
    ports: Vec<String>,
) -> Result<(), MonitorError> {
    let me = std::process::id() as i32;
    store.update_container(id, |c| {
        c.state.status = Status::Running;
        c.state.paused = false;
        c.state.pid = Some(pid);
        c.state.monitor_pid = Some(me);
        c.state.monitor_start = process_start_time(me);
        c.state.started_at = Some(Utc::now());
        c.state.finished_at = None;
        c.state.exit_code = None;
        c.state.error = None;
        c.state.oom_killed = false;
        c.ports = ports.clone();
    })?;
    Ok(())
}
