//! A WASI container without namespaces, detached (`run -d`, `start`, `restart`): a monitor
//! process (`berth __wasi-monitor ID`) outlives the command that started it, runs the guest in
//! a runner process of its own (`berth __wasi-run ID`), writes the runner's output to the
//! container's log, and records its end.
//!
//! Two processes, so that `stop` and `kill` can end the guest (a signal, or on Windows the
//! process' end) while the monitor stays to record the exit code and remove a `--rm`
//! container; the same on every OS, so Linux tests it natively with `--isolation wasi`.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::PortableError;
use crate::backend::Backend;
use crate::container::log::{self, Log};
use crate::container::state::Status;
use crate::container::store::ContainerError;
use crate::store::Store;
use crate::workload::StartError;

/// The monitor's hidden subcommand.
pub const MONITOR_COMMAND: &str = "__wasi-monitor";
/// The runner's hidden subcommand.
pub const RUNNER_COMMAND: &str = "__wasi-run";

/// Where the runner finds its monitor's pid, to end with it.
pub const MONITOR_ENV: &str = "BERTH_WASI_MONITOR";

/// The one line a monitor writes on its stdout: the runner's pid, or why it could not start.
#[derive(Debug, Serialize, Deserialize)]
enum Started {
    Pid(i32),
    Failed(StartError),
}

/// berth's own binary with `--root` and `--log-level` for `store`.
fn berth(store: &Store, log_level: &str) -> Result<Command, StartError> {
    let exe = std::env::current_exe()
        .map_err(|e| StartError::berth(format!("finding berth's own binary: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--root")
        .arg(store.root())
        .arg("--log-level")
        .arg(log_level);
    Ok(cmd)
}

/// Starts container `id` under a detached monitor (its log at `log_level` in the container's
/// `monitor.log`) and waits until the guest's runner runs; gives the runner's pid.
pub fn spawn(store: &Store, id: &str, log_level: &str) -> Result<i32, StartError> {
    let (log_path, log) = crate::container::handshake::monitor_log(store, id)?;
    let mut cmd = berth(store, log_level)?;
    cmd.arg(MONITOR_COMMAND)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    detach(&mut cmd);
    crate::container::process::keep_stdio_from_children();
    let mut child = cmd
        .spawn()
        .map_err(|e| StartError::berth(format!("starting the container's monitor: {e}")))?;
    match crate::container::handshake::read::<Started>(&mut child, &log_path)? {
        // It runs on, detached; whoever inherits it reaps it.
        Started::Pid(pid) => Ok(pid),
        Started::Failed(e) => {
            let _ = child.wait();
            Err(e)
        }
    }
}

/// The monitor out of the starting command's process group (Unix) or console (Windows), so
/// the terminal's Ctrl-C or the command's end does not reach it.
fn detach(cmd: &mut Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        const DETACHED_PROCESS: u32 = 0x0000_0008;
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        cmd.creation_flags(DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP);
    }
}

/// The monitor (`__wasi-monitor`): starts the runner, tells the starting command on stdout,
/// copies the guest's output into the log, records the end and removes a `--rm` container.
pub fn monitor(store: &Store, id: &str, log_level: &str) -> Result<(), PortableError> {
    // The log first: a runner is never left writing into pipes nobody reads.
    let started = open_log(store, id)
        .and_then(|log| start_runner(store, id, log_level).map(|(child, lock)| (log, child, lock)));
    let (log, mut child, _lock) = match started {
        Ok(started) => started,
        Err(e) => {
            let e = e.into_start_error();
            say(&Started::Failed(e.clone()));
            return Err(PortableError::Start(e));
        }
    };
    say(&Started::Pid(child.id() as i32));
    let copies = [
        child.stdout.take().map(|o| copy_into(o, &log, "stdout")),
        child.stderr.take().map(|e| copy_into(e, &log, "stderr")),
    ];
    let status = child.wait();
    for t in copies.into_iter().flatten() {
        let _ = t.join();
    }
    record_end(store, id, status)?;
    let c = store.load_container(id)?;
    if c.auto_remove {
        crate::container::lifecycle::remove_files(store, &c, true)?;
    }
    Ok(())
}

/// The container's json-file log, open for appending.
fn open_log(store: &Store, id: &str) -> Result<Log, PortableError> {
    let c = store.load_container(id)?;
    Log::open(&store.container_dir(id).join(log::FILE_NAME), &c.log_config).map_err(|e| {
        PortableError::Start(StartError::berth(format!(
            "opening the container's log: {e}"
        )))
    })
}

/// Writes one line to the starting command; it stops reading after it.
fn say(msg: &Started) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string(msg).expect("a status serializes")
    );
    let _ = out.flush();
}

/// Claims the container (one monitor at a time), starts its runner and records it running.
fn start_runner(
    store: &Store,
    id: &str,
    log_level: &str,
) -> Result<(Child, crate::store::LockGuard), PortableError> {
    let run_dir = store.create_container_run_dir(id)?;
    let lock_path = run_dir.join("monitor.lock");
    let lock = crate::store::lock::try_exclusive(&lock_path)
        .map_err(|e| StartError::berth(format!("locking {}: {e}", lock_path.display())))?
        .ok_or_else(|| PortableError::Unsupported(format!("container {id} is already running")))?;
    let c = store.load_container(id)?;
    if c.spec.backend != Backend::Wasi {
        return Err(PortableError::Unsupported(format!(
            "container {} is a native container, which needs Linux namespaces",
            c.name
        )));
    }
    let mut cmd = berth(store, log_level)?;
    cmd.arg(RUNNER_COMMAND)
        .arg(id)
        .env(MONITOR_ENV, std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .map_err(|e| StartError::berth(format!("starting the container's runner: {e}")))?;
    let me = std::process::id() as i32;
    let pid = child.id() as i32;
    store.update_container(id, |c| {
        c.state.status = Status::Running;
        c.state.paused = false;
        c.state.pid = Some(pid);
        c.state.monitor_pid = Some(me);
        c.state.monitor_start = crate::container::process::start_time(me);
        c.state.started_at = Some(Utc::now());
        c.state.finished_at = None;
        c.state.exit_code = None;
        c.state.error = None;
    })?;
    Ok((child, lock))
}

/// Copies one of the runner's streams into the log until it closes.
fn copy_into(
    mut from: impl Read + Send + 'static,
    log: &Log,
    stream: &'static str,
) -> std::thread::JoinHandle<()> {
    let mut w = log.writer(stream);
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || w.write(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = w.flush();
    })
}

/// Records the runner's end unless it recorded its own: killed by a signal (128+N, as a
/// Linux container's), or ended before it could.
fn record_end(
    store: &Store,
    id: &str,
    status: std::io::Result<ExitStatus>,
) -> Result<(), ContainerError> {
    let code = match &status {
        Ok(s) => exit_code(s),
        Err(_) => 137,
    };
    store.update_container(id, |c| {
        if c.state.status == Status::Running {
            c.state.status = Status::Exited;
            c.state.exit_code = Some(code);
            c.state.finished_at = Some(Utc::now());
        }
        c.state.pid = None;
    })?;
    Ok(())
}

/// A process' exit code as a shell gives it: 128+N for a signal.
fn exit_code(s: &ExitStatus) -> i32 {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = s.signal() {
            return 128 + sig;
        }
    }
    s.code().unwrap_or(137)
}
