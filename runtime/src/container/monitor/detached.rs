//! A container started under a monitor process of its own (`berth __monitor ID`), which
//! outlives the command that started it: `run -d`, `start`, `restart`, and `berth serve`'s
//! container functions.

use std::process::Stdio;

use crate::sandbox::linux::exe_seal::SealedExe;
use crate::sandbox::linux::status::StatusMessage;
use crate::store::Store;
use crate::workload::StartError;

/// Starts container `id` under a detached monitor (berth's own binary, sealed, logging at
/// `log_level` to the container's `monitor.log`) and waits until its workload runs or failed
/// to start; gives the workload's host pid.
pub fn spawn_detached(store: &Store, id: &str, log_level: &str) -> Result<i32, StartError> {
    let began = std::time::Instant::now();
    let (log_path, log) = crate::container::handshake::monitor_log(store, id)?;
    // Sealed: the monitor forks the container's init, which then runs the same file.
    let exe = sealed_self(store)?;
    tracing::debug!(took = ?began.elapsed(), "sealed");
    let mut child = exe
        .command()
        .arg("--root")
        .arg(store.root())
        .arg("--log-level")
        .arg(log_level)
        .arg("__monitor")
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| StartError::berth(format!("starting the container's monitor: {e}")))?;
    tracing::debug!(took = ?began.elapsed(), "monitor spawned");
    let status = super::super::handshake::read::<StatusMessage>(&mut child, &log_path);
    tracing::debug!(took = ?began.elapsed(), "monitor answered");
    match status? {
        // The monitor runs on, detached: it is reaped by whoever inherits it.
        StatusMessage::Pid(pid) => {
            reap_in_background(child);
            Ok(pid)
        }
        StatusMessage::Failed(e) => {
            let _ = child.wait();
            Err(e)
        }
    }
}

/// This process' sealed binary, sealed once: a long-lived process that starts many monitors
/// (`berth serve`'s cold starts) mounts no overlay per start.
fn sealed_self(store: &Store) -> Result<std::sync::Arc<SealedExe>, StartError> {
    use std::sync::{Arc, Mutex};
    static SEALED: Mutex<Option<(std::path::PathBuf, Arc<SealedExe>)>> = Mutex::new(None);
    let mut sealed = SEALED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((root, exe)) = sealed.as_ref()
        && root == store.run_root()
    {
        return Ok(exe.clone());
    }
    let exe = Arc::new(
        SealedExe::of_self(store.run_root())
            .map_err(|e| StartError::berth(format!("sealing berth's binary: {e}")))?,
    );
    *sealed = Some((store.run_root().to_path_buf(), exe.clone()));
    Ok(exe)
}

/// A long-lived process that starts monitors (`berth serve`) reaps each when it ends, so no
/// zombie is left per cold start; a short-lived command's exit hands them to init anyway.
fn reap_in_background(mut child: std::process::Child) {
    let _ = std::thread::Builder::new()
        .name("berth-monitor-reaper".into())
        .spawn(move || {
            let _ = child.wait();
        });
}
