//! `berth serve -d`: a server in the background, as `run -d` runs a container. The launcher
//! records the server (`berth_serve::managed`), starts `berth serve … --managed-as ID` in a
//! session of its own, waits until it listens (or failed), and prints its id. The server sends
//! its stdout and stderr (the access log, the functions' output) into its rotated log, which
//! `berth logs` reads; `ps`, `stop`, `kill` and `rm` find it by name or id.

use std::ffi::OsString;
use std::io::Read;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_runtime::container::log::{self, Log, LogConfig, ReadOptions};
use berth_runtime::container::state::{new_id, new_name};
use berth_serve::managed::{self, ServerRecord};

use super::serve::ServeArgs;
use crate::app::GlobalOptions;

/// How long the launcher waits for the server to listen (it may pull and compile first).
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// Starts the server in the background; prints its id once it listens.
pub fn launch(g: &GlobalOptions, a: &ServeArgs) -> Result<()> {
    let store = super::open_store(g)?;
    let name = match &a.name {
        Some(n) => {
            if !berth_runtime::container::create::valid_volume_name(n) {
                bail!("invalid server name {n:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
            }
            if store.find_container(n).is_ok() || managed::find(&store, n).is_ok() {
                bail!(
                    "the name {n:?} is already in use: choose another with --name, or remove the container or server that has it"
                );
            }
            n.clone()
        }
        None => new_name(),
    };
    let id = new_id();
    let source = match (&a.file, &a.image) {
        (Some(f), _) => std::fs::canonicalize(f)
            .unwrap_or_else(|_| f.clone())
            .display()
            .to_string(),
        (None, Some(i)) => i.clone(),
        (None, None) => bail!("give an image to serve, or a serve file with -f"),
    };
    managed::save(&store, &ServerRecord::new(id.clone(), name, source))?;
    let mut child = Command::new(std::env::current_exe().context("finding berth's own binary")?)
        .arg("--root")
        .arg(store.root())
        .arg("--log-level")
        .arg(&g.log_level)
        .arg("serve")
        .args(server_args())
        .arg("--managed-as")
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the server")?;
    let began = Instant::now();
    loop {
        if managed::load(&store, &id).is_ok_and(|r| r.listen.is_some()) {
            println!("{id}");
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let why = last_lines(&store, &id);
            let _ = managed::remove(&store, &id);
            bail!("the server did not start ({status}):\n{why}");
        }
        if began.elapsed() > START_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            let why = last_lines(&store, &id);
            let _ = managed::remove(&store, &id);
            bail!("the server did not listen within {START_TIMEOUT:?}:\n{why}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// This command's `serve` arguments without the launcher's own (`-d`, `--name`).
fn server_args() -> Vec<OsString> {
    let all: Vec<OsString> = std::env::args_os().collect();
    let at = all
        .iter()
        .position(|a| a == "serve")
        .map_or(all.len(), |i| i + 1);
    let mut out = Vec::new();
    let mut skip_next = false;
    for a in &all[at..] {
        if std::mem::take(&mut skip_next) {
            continue;
        }
        match a.to_str() {
            Some("-d" | "--detach") => {}
            Some("--name") => skip_next = true,
            Some(s) if s.starts_with("--name=") => {}
            _ => out.push(a.clone()),
        }
    }
    out
}

/// The last lines of server `id`'s log, indented, for a message.
fn last_lines(store: &berth_runtime::Store, id: &str) -> String {
    let mut lines = Vec::new();
    let opts = ReadOptions {
        tail: Some(20),
        ..ReadOptions::default()
    };
    let _ = log::read(&managed::log_path(store, id), &opts, |r| {
        lines.push(format!("  {}", r.log.trim_end()));
        Ok(())
    });
    lines.join("\n")
}

/// Runs as detached server `id`: its output into its log, its record kept, until it stops.
pub fn run_managed(g: &GlobalOptions, a: ServeArgs, id: &str) -> Result<ExitCode> {
    // The id names a folder of the store: only what `serve -d` makes (64 hex digits).
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--managed-as is berth's own: `serve -d` passes it (64 hex digits), not {id:?}");
    }
    let store = super::open_store(g)?;
    // Out of the launcher's session: a Ctrl-C there does not reach this server.
    let _ = nix::unistd::setsid();
    let log = Log::open(&managed::log_path(&store, id), &LogConfig::default())
        .context("opening the server's log")?;
    let (from, to) = nix::unistd::pipe().context("making the server's output pipe")?;
    nix::unistd::dup2_stdout(&to).context("sending stdout to the log")?;
    nix::unistd::dup2_stderr(&to).context("sending stderr to the log")?;
    drop(to);
    let mut writer = log.writer("stderr");
    let copier = std::thread::spawn(move || {
        let mut from = std::fs::File::from(from);
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = writer.write(&buf[..n]);
        }
        let _ = writer.flush();
    });
    managed::started(&store, id)?;
    let code = match super::serve::serve(g, a, Some(id)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth: {e:#}");
            125
        }
    };
    let _ = managed::update(&store, id, |r| {
        r.finished = Some(chrono::Utc::now());
        r.exit_code = Some(code);
    });
    // The pipe's last writers are stdout and stderr: once they point elsewhere the copier
    // reads to the end and writes the last lines.
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
    let _ = copier.join();
    Ok(ExitCode::from(code as u8))
}

/// Stops a detached server: SIGTERM (it drains, then stops and removes its containers), then
/// SIGKILL past `timeout`.
pub fn stop(r: &ServerRecord, timeout: Duration) -> Result<()> {
    if !r.running() {
        return Ok(());
    }
    signal(r, nix::sys::signal::Signal::SIGTERM)?;
    let began = Instant::now();
    while r.running() {
        if began.elapsed() > timeout {
            signal(r, nix::sys::signal::Signal::SIGKILL)?;
            std::thread::sleep(Duration::from_millis(100));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Sends `sig` to a running server.
pub fn signal(r: &ServerRecord, sig: nix::sys::signal::Signal) -> Result<()> {
    let Some(pid) = r.pid.filter(|_| r.running()) else {
        bail!("server {} is not running", r.name);
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
        .with_context(|| format!("signalling server {}", r.name))
}

/// Removes a stopped server's record and log; a running one only with `force` (stopped first).
pub fn remove(store: &berth_runtime::Store, r: &ServerRecord, force: bool) -> Result<()> {
    if r.running() {
        if !force {
            bail!(
                "cannot remove server {}: it is running; stop it first (`berth stop {}`) or force removal with -f",
                r.name,
                r.name
            );
        }
        stop(r, Duration::from_secs(30))?;
    }
    managed::remove(store, &r.id)?;
    Ok(())
}
