//! Hidden subcommands of a detached WASI container without namespaces (every container where
//! there is no Linux, and `--isolation wasi`): `__wasi-monitor` holds it, `__wasi-run` runs
//! its guest (see `berth_runtime::container::portable::detached`).

use std::process::ExitCode;

use anyhow::Result;
use berth_runtime::container::portable;
use clap::Args;

use crate::app::GlobalOptions;

/// A container id.
#[derive(Debug, Args)]
pub struct ContainerArg {
    /// The container id.
    pub id: String,
}

/// `__wasi-monitor`: starts the runner, tells the starting command, holds the container.
pub fn monitor(g: &GlobalOptions, a: ContainerArg) -> Result<ExitCode> {
    #[cfg(unix)]
    // Our own session: the terminal of the command that started us does not reach us.
    let _ = rustix::process::setsid();
    let store = super::open_store(g)?;
    portable::detached::monitor(&store, &a.id, &g.log_level)?;
    Ok(ExitCode::SUCCESS)
}

/// `__wasi-run`: the guest, its output on this process' stdout and stderr (the monitor's
/// pipes, the container's log); berth's own messages go to the monitor's log. Exits with the
/// guest's code.
pub fn run(g: &GlobalOptions, a: ContainerArg) -> Result<ExitCode> {
    let store = super::open_store(g).map_err(super::start_failure)?;
    let log = store.container_dir(&a.id).join("monitor.log");
    if let Ok(f) = std::fs::OpenOptions::new().append(true).open(&log) {
        crate::app::init_logging_into(&g.log_level, f);
    }
    let code = portable::run_under_monitor(&store, &a.id)
        .map_err(|e| anyhow::Error::new(e.into_start_error()))?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}
