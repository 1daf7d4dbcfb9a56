//! `berth start`: start created or stopped containers, detached (a `berth __monitor` process
//! holds each) or attached with `-a`.

use std::io::{BufRead, BufReader};
use std::process::{ExitCode, Stdio};

use anyhow::{Context, Result, anyhow};
use berth_runtime::Store;
use berth_runtime::sandbox::linux::exe_seal::SealedExe;
use berth_runtime::sandbox::linux::status::StatusMessage;
use berth_runtime::workload::StartError;
use clap::Args;

use crate::app::GlobalOptions;

/// Arguments of `berth start`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  berth start web\n  berth start -a job")]
pub struct StartArgs {
    /// Attach to the container's output and wait for it (its exit code is berth's)
    #[arg(short, long)]
    pub attach: bool,
    /// Attach stdin (with -a)
    #[arg(short, long)]
    pub interactive: bool,
    /// Containers: names or ids
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Starts a container under a detached monitor process and waits until its workload runs
/// (or failed to start).
pub fn spawn_monitor(g: &GlobalOptions, store: &Store, id: &str) -> Result<()> {
    let log = std::fs::File::create(store.container_dir(id).join("monitor.log"))
        .context("creating the monitor's log")?;
    // Sealed: the monitor forks the container's init, which then runs the same file.
    let exe = SealedExe::of_self(store.run_root()).context("sealing berth's binary")?;
    let mut child = exe
        .command()
        .arg("--root")
        .arg(store.root())
        .arg("--log-level")
        .arg(&g.log_level)
        .arg("__monitor")
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .context("starting the container's monitor")?;
    let out = child.stdout.take().expect("piped");
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .context("reading from the container's monitor")?;
    match serde_json::from_str::<StatusMessage>(line.trim_end()) {
        Ok(StatusMessage::Pid(_)) => Ok(()),
        Ok(StatusMessage::Failed(e)) => {
            let _ = child.wait();
            Err(anyhow!(e))
        }
        Err(_) => {
            let _ = child.wait();
            Err(anyhow!(StartError::berth(format!(
                "the container's monitor ended without starting it (see {})",
                store.container_dir(id).join("monitor.log").display()
            ))))
        }
    }
}

/// Starts each container.
pub fn run(g: &GlobalOptions, a: StartArgs) -> Result<ExitCode> {
    let store = super::open_store(g)?;
    if a.attach {
        let [name] = a.containers.as_slice() else {
            anyhow::bail!("start -a takes one container");
        };
        let c = store.find_container(name)?;
        if a.interactive && !c.spec.stdin {
            store.update_container(&c.id, |c| c.spec.stdin = true)?;
        }
        return super::run::foreground(&store, &c.id, false);
    }
    drop(store);
    super::stop::each(g, &a.containers, |store, c| {
        if c.state.status != berth_runtime::container::Status::Running {
            spawn_monitor(g, store, &c.id)?;
        }
        Ok(None)
    })
}
