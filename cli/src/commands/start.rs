//! `berth start`: start created or stopped containers, detached (a `berth __monitor` process
//! holds each) or attached with `-a`.

use std::process::ExitCode;

use anyhow::Result;
use berth_runtime::Store;
use berth_runtime::container::{Container, Isolation, portable};
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
/// (or failed to start): `__monitor` for namespaces, `__wasi-monitor` for a WASI guest
/// without them.
pub fn spawn_monitor(g: &GlobalOptions, store: &Store, c: &Container) -> Result<()> {
    if c.isolation == Isolation::Wasi {
        portable::detached::spawn(store, &c.id, &g.log_level)?;
        return Ok(());
    }
    #[cfg(target_os = "linux")]
    berth_runtime::container::monitor::detached::spawn_detached(store, &c.id, &g.log_level)?;
    #[cfg(not(target_os = "linux"))]
    anyhow::bail!(
        "container {} has Linux namespaces, which need Linux",
        c.name
    );
    #[cfg(target_os = "linux")]
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
            spawn_monitor(g, store, c)?;
        }
        Ok(None)
    })
}
