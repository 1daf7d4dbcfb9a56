//! `berth exec`: run a command in a running container, by joining its namespaces.

use std::fs::File;
use std::process::{ExitCode, Stdio};

use anyhow::{Context, Result, bail};
use berth_runtime::container::Status;
use berth_runtime::container::monitor::{copy_stdin, forward_signals};
use berth_runtime::container::tty::{RawMode, terminal_size};
use berth_runtime::sandbox::linux::exe_seal::SealedExe;
use berth_runtime::sandbox::linux::nsexec::ExecConfig;
use clap::Args;

use crate::app::GlobalOptions;

/// Arguments of `berth exec`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth exec web ls /var/www\n  berth exec -it web sh\n  berth exec -e DEBUG=1 -w /tmp -u nobody web env"
)]
pub struct ExecArgs {
    /// Run in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Keep stdin open
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Set environment variables
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// User (name|uid[:group|gid])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Give the command every capability
    #[arg(long)]
    pub privileged: bool,
    /// The container: a name or an id
    pub container: String,
    /// The command and its arguments
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// The pid whose namespaces an exec joins: a running container's first process (a paused
/// one would hold the command frozen).
fn joinable(c: &berth_runtime::container::Container) -> Result<i32> {
    let Some(pid) = c.state.pid.filter(|_| c.state.status == Status::Running) else {
        bail!(
            "container {} is not running: start it first (`berth start {}`)",
            c.name,
            c.name
        );
    };
    if c.is_paused() {
        bail!(
            "container {} is paused: unpause it first (`berth unpause {}`)",
            c.name,
            c.name
        );
    }
    Ok(pid)
}

/// Runs the command; the exit code is the command's (126/127 if it cannot run).
pub fn run(g: &GlobalOptions, a: ExecArgs) -> Result<ExitCode> {
    let store = super::open_store(g)?;
    let c = store.find_container(&a.container)?;
    let pid = joinable(&c)?;
    let mut spec = c.spec.clone();
    spec.args = a.command.clone();
    spec.tty = a.tty;
    spec.stdin = a.interactive;
    spec.init = false;
    if let Some(w) = &a.workdir {
        spec.cwd = w.clone();
    }
    if let Some(u) = &a.user {
        spec.user = u.clone();
    }
    if a.privileged {
        spec.security.privileged = true;
    }
    for kv in &a.env {
        match kv.split_once('=') {
            Some((k, v)) => spec.set_env(k, v),
            None => match std::env::var(kv) {
                Ok(v) => spec.set_env(kv, &v),
                Err(_) => continue,
            },
        }
    }
    let cgroup = true;
    let config = ExecConfig {
        id: c.id.clone(),
        pid,
        spec,
        cgroup,
        wasm_cache: Some(berth_runtime::sandbox::wasi::cache::CacheLocation::of_store(&store)),
        cgroup_path: None,
    };
    let path = store.temp_path("exec");
    store.write_file(&path, &serde_json::to_vec(&config)?)?;
    // Never the host's file: the exec process joins the container (see `exe_seal`).
    let exe = SealedExe::of_self(store.run_root()).context("sealing berth's binary")?;
    let mut cmd = exe.command();
    cmd.arg("__exec").arg(&path).env_clear();
    let mut relay = None;
    if a.detach {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    } else if a.tty {
        // A pty of our own, never one opened through the container's root: paths under
        // /proc/PID/root are the container's to redirect.
        let pty =
            nix::pty::openpty(terminal_size().as_ref(), None).context("allocating a terminal")?;
        let slave = File::from(pty.slave);
        cmd.stdin(slave.try_clone()?)
            .stdout(slave.try_clone()?)
            .stderr(slave);
        relay = Some(File::from(pty.master));
    } else if !a.interactive {
        cmd.stdin(Stdio::null());
    }
    if !a.detach {
        // Blocked before any thread exists, so the forwarding thread receives them.
        berth_runtime::container::monitor::forwarded_signals().thread_block()?;
    }
    let mut child = cmd.spawn().context("starting the exec process")?;
    drop(cmd);
    if a.detach {
        // The exec process removes its config once read; until then the file must outlive
        // us (the next berth's cleanup would take it). Return when it is gone, or the
        // process ended without reading it.
        while path.exists() {
            if child.try_wait()?.is_some() {
                let _ = std::fs::remove_file(&path);
                bail!("the exec process ended before starting the command");
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut raw = None;
    let mut output = None;
    if let Some(master) = relay {
        if a.interactive {
            raw = RawMode::enter();
            let w = master.try_clone()?;
            std::thread::spawn(move || copy_stdin(w));
        }
        forward_signals(child.id() as i32, Some(master.try_clone()?));
        let mut reader = master;
        output = Some(std::thread::spawn(move || {
            let mut out = std::io::stdout();
            let _ = std::io::copy(&mut reader, &mut out);
        }));
    }
    if output.is_none() {
        forward_signals(child.id() as i32, None);
    }
    let status = child.wait()?;
    if let Some(t) = output {
        let _ = t.join();
    }
    drop(raw);
    let _ = std::fs::remove_file(&path);
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(9));
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}
