//! `berth start`: start created or stopped containers, detached (a `berth __monitor` process
//! holds each) or attached with `-a`.

use std::process::ExitCode;

use anyhow::Result;
use berth_runtime::Store;
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
    berth_runtime::container::monitor::detached::spawn_detached(store, id, &g.log_level)?;
    Ok(())
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
