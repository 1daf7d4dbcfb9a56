//! `berth pause` and `unpause`: a running container's processes frozen and thawed through
//! its cgroup's freezer (v2 `cgroup.freeze`, or the v1 freezer), as Docker's.

use std::process::ExitCode;

use anyhow::Result;
use berth_runtime::container::lifecycle;
use clap::Args;

use crate::app::GlobalOptions;

/// Arguments of `berth pause` and `unpause`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  berth pause web\n  berth unpause web")]
pub struct PauseArgs {
    /// Containers: names or ids
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Freezes each container; prints its name, as Docker.
pub fn pause(g: &GlobalOptions, a: PauseArgs) -> Result<ExitCode> {
    super::stop::each(g, &a.containers, |store, c| {
        lifecycle::pause(store, c)?;
        Ok(None)
    })
}

/// Thaws each container; prints its name, as Docker.
pub fn unpause(g: &GlobalOptions, a: PauseArgs) -> Result<ExitCode> {
    super::stop::each(g, &a.containers, |store, c| {
        lifecycle::unpause(store, c)?;
        Ok(None)
    })
}
