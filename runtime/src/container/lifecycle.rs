//! Stopping, killing, waiting for and removing containers, from any berth process: signals
//! go to the container's first process (see [`super::process`] for Windows); the monitor
//! records the end.

use std::time::{Duration, Instant};

#[cfg(target_os = "linux")]
pub use nix::sys::signal::Signal;
#[cfg(not(target_os = "linux"))]
pub use portable_signal::Signal;

use super::state::{Container, Status};
use super::store::ContainerError;
use super::store::Remains;
#[cfg(target_os = "linux")]
use crate::sandbox::linux::cgroups::Cgroup;
use crate::store::Store;

/// Why a lifecycle request failed.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The container is in the wrong state, or a signal could not be sent.
    #[error("{0}")]
    State(String),
    /// The container store failed.
    #[error(transparent)]
    Container(#[from] ContainerError),
}

/// Parses a signal as Docker accepts it: `SIGTERM`, `TERM`, `term` or `15`.
pub fn parse_signal(s: &str) -> Result<Signal, LifecycleError> {
    let bad = || {
        LifecycleError::State(format!(
            "invalid signal {s:?}: give a name such as SIGTERM or KILL, or a number"
        ))
    };
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<Signal>().map_err(|_| bad())
}

/// Sends `signal` to a running container's first process; a paused one is thawed after,
/// so the signal is acted on (as Docker does).
pub fn kill(store: &Store, c: &Container, signal: Signal) -> Result<(), LifecycleError> {
    let Some(pid) = c.state.pid.filter(|_| c.state.status == Status::Running) else {
        return Err(LifecycleError::State(format!(
            "container {} is not running",
            c.name
        )));
    };
    super::process::signal(pid, signal as i32)
        .map_err(|e| LifecycleError::State(format!("signalling container {}: {e}", c.name)))?;
    if c.state.paused {
        unpause(store, c)?;
    }
    Ok(())
}

/// Freezes a running container's processes (`berth pause`) through its cgroup's freezer.
pub fn pause(store: &Store, c: &Container) -> Result<(), LifecycleError> {
    if c.state.status != Status::Running {
        return Err(LifecycleError::State(format!(
            "container {} is not running",
            c.name
        )));
    }
    if c.state.paused {
        return Err(LifecycleError::State(format!(
            "container {} is already paused",
            c.name
        )));
    }
    freeze(c, true)?;
    store.update_container(&c.id, |c| c.state.paused = true)?;
    Ok(())
}

/// Thaws a paused container (`berth unpause`).
pub fn unpause(store: &Store, c: &Container) -> Result<(), LifecycleError> {
    if !c.is_paused() {
        return Err(LifecycleError::State(format!(
            "container {} is not paused",
            c.name
        )));
    }
    freeze(c, false)?;
    store.update_container(&c.id, |c| c.state.paused = false)?;
    Ok(())
}

/// Freezes (`on`) or thaws `c`'s processes through its cgroup's freezer.
#[cfg(target_os = "linux")]
fn freeze(c: &Container, on: bool) -> Result<(), LifecycleError> {
    if c.isolation == super::state::Isolation::Wasi {
        return Err(LifecycleError::State(format!(
            "container {} runs with --isolation wasi, without a cgroup to freeze: pausing needs a container with namespaces",
            c.name
        )));
    }
    let what = if on { "pausing" } else { "unpausing" };
    let cg = Cgroup::open(&c.id)
        .map_err(|e| LifecycleError::State(format!("{what} container {}: {e}", c.name)))?;
    let done = if on { cg.pause() } else { cg.thaw() };
    done.map_err(|e| LifecycleError::State(format!("{what} container {}: {e}", c.name)))
}

/// Where there is no Linux there is no cgroup freezer.
#[cfg(not(target_os = "linux"))]
fn freeze(c: &Container, _on: bool) -> Result<(), LifecycleError> {
    Err(LifecycleError::State(format!(
        "pausing container {} needs Linux (the cgroup freezer)",
        c.name
    )))
}

/// Waits until the container is no longer running (or is gone), up to `timeout`. Returns
/// whether it stopped.
pub fn wait_stopped(store: &Store, id: &str, timeout: Option<Duration>) -> bool {
    let start = Instant::now();
    let mut delay = Duration::from_millis(2);
    loop {
        match store.load_container(id) {
            Ok(c) if matches!(c.state.status, Status::Running | Status::Restarting) => {}
            _ => return true,
        }
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            return false;
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

/// Stops a container as `docker stop` does: its stop signal, then SIGKILL after `timeout`.
pub fn stop(store: &Store, c: &Container, timeout: Duration) -> Result<(), LifecycleError> {
    if c.state.status != Status::Running {
        return Ok(());
    }
    let signal = parse_signal(&c.stop_signal).unwrap_or(Signal::SIGTERM);
    // Already gone between reading and signalling: as good as stopped.
    let _ = kill(store, c, signal);
    if wait_stopped(store, &c.id, Some(timeout)) {
        return Ok(());
    }
    if let Ok(c) = store.load_container(&c.id) {
        let _ = kill(store, &c, Signal::SIGKILL);
    }
    if wait_stopped(store, &c.id, Some(Duration::from_secs(10))) {
        Ok(())
    } else {
        Err(LifecycleError::State(format!(
            "container {} did not stop after SIGKILL",
            c.name
        )))
    }
}

/// Removes a container; a running one only with `force` (it is killed first).
pub fn remove(
    store: &Store,
    c: &Container,
    force: bool,
    volumes: bool,
) -> Result<(), LifecycleError> {
    if c.state.status == Status::Running {
        if !force {
            return Err(LifecycleError::State(format!(
                "cannot remove container {}: it is running; stop it first (`berth stop {}`) or force removal with -f",
                c.name, c.name
            )));
        }
        let _ = kill(store, c, Signal::SIGKILL);
        wait_stopped(store, &c.id, Some(Duration::from_secs(10)));
        // With --rm the monitor may have removed it already.
        if store.load_container(&c.id).is_err() {
            return Ok(());
        }
    }
    remove_stopped(store, c, volumes)?;
    Ok(())
}

/// Removes a stopped container: its cgroup (a monitor that was killed could not remove it;
/// nothing runs in it any more), its files, and with `volumes` its anonymous volumes.
pub fn remove_stopped(store: &Store, c: &Container, volumes: bool) -> Result<(), ContainerError> {
    #[cfg(target_os = "linux")]
    if let Ok(cg) = Cgroup::open(&c.id) {
        let _ = cg.remove();
    }
    remove_files(store, c, volumes)
}

/// Removes a container's folder, and with `volumes` its anonymous volumes.
pub fn remove_files(store: &Store, c: &Container, volumes: bool) -> Result<(), ContainerError> {
    store.remove_container_files(&c.id)?;
    if volumes {
        remove_volumes(store, c);
    }
    Ok(())
}

/// Removes a container's anonymous volumes.
pub fn remove_volumes(store: &Store, c: &Container) {
    for m in &c.spec.mounts {
        if let Some(v) = &m.volume
            && store.volume(v).is_ok_and(|v| v.anonymous)
        {
            let _ = store.remove_volume(v, true);
        }
    }
}

/// Whether anything of a damaged container still runs: its monitor, or a process in its
/// cgroup.
pub fn remains_running(store: &Store, r: &Remains) -> bool {
    #[cfg(target_os = "linux")]
    if Cgroup::open(&r.id).is_ok_and(|cg| !cg.pids().unwrap_or_default().is_empty()) {
        return true;
    }
    store.monitor_holds(&r.id)
}

/// Removes a container whose state file is damaged, from what is left of it: the processes
/// in its cgroup are killed (only with `force` if any run), its monitor given time to end,
/// its rootfs unmounted, its folder and run folder removed, which frees its name. Its
/// anonymous volumes are not known any more (`berth volume prune` takes them).
pub fn remove_remains(store: &Store, r: &Remains, force: bool) -> Result<(), LifecycleError> {
    let name = r.name.as_deref().unwrap_or(r.short_id());
    if !force && remains_running(store, r) {
        return Err(LifecycleError::State(format!(
            "cannot remove container {name}: its state file is corrupt and its processes still run; force removal with -f (`berth rm -f {name}`)"
        )));
    }
    #[cfg(target_os = "linux")]
    if let Ok(cg) = Cgroup::open(&r.id) {
        let _ = cg.kill_all(Signal::SIGKILL as i32);
    }
    // Its monitor ends once the container has: it still holds the log and the rootfs' mount
    // point until then.
    let start = Instant::now();
    while store.monitor_holds(&r.id) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    #[cfg(target_os = "linux")]
    {
        if let Ok(cg) = Cgroup::open(&r.id)
            && let Err(e) = cg.remove()
        {
            return Err(LifecycleError::State(format!(
                "removing container {name}: {e}"
            )));
        }
        // Mounted in the container's own mount namespace, which is gone with its processes;
        // a mount left on the host by an older berth or by hand goes too.
        let merged = store.container_run_dir(&r.id).join("merged");
        let _ = nix::mount::umount2(&merged, nix::mount::MntFlags::MNT_DETACH);
    }
    store.remove_container_files(&r.id)?;
    Ok(())
}

/// Signals by their Linux names and numbers, where there is no Linux: what `--stop-signal`,
/// `kill -s` and `stop -s` take (see [`super::process::signal`] for what sending one does).
#[cfg(not(target_os = "linux"))]
mod portable_signal {
    /// A signal, numbered as on Linux x86_64.
    #[allow(missing_docs, clippy::upper_case_acronyms)]
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[repr(i32)]
    pub enum Signal {
        SIGHUP = 1,
        SIGINT = 2,
        SIGQUIT = 3,
        SIGABRT = 6,
        SIGKILL = 9,
        SIGUSR1 = 10,
        SIGUSR2 = 12,
        SIGPIPE = 13,
        SIGALRM = 14,
        SIGTERM = 15,
    }

    const ALL: [Signal; 10] = [
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGABRT,
        Signal::SIGKILL,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGPIPE,
        Signal::SIGALRM,
        Signal::SIGTERM,
    ];

    impl TryFrom<i32> for Signal {
        type Error = ();
        fn try_from(n: i32) -> Result<Signal, ()> {
            ALL.into_iter().find(|s| *s as i32 == n).ok_or(())
        }
    }

    impl std::str::FromStr for Signal {
        type Err = ();
        fn from_str(name: &str) -> Result<Signal, ()> {
            ALL.into_iter().find(|s| format!("{s:?}") == name).ok_or(())
        }
    }
}
