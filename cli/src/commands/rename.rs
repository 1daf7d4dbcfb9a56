//! `berth rename`: a container's new name, as Docker's (running or not).

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

use crate::app::GlobalOptions;

/// Arguments of `berth rename`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  berth rename web frontend")]
pub struct RenameArgs {
    /// The container: a name or an id
    pub container: String,
    /// Its new name
    pub new_name: String,
}

/// Renames the container; prints nothing, as Docker.
pub fn run(g: &GlobalOptions, a: RenameArgs) -> Result<ExitCode> {
    let store = super::open_store(g)?;
    let c = store.find_container(&a.container)?;
    if c.name == a.new_name {
        bail!(
            "container {} is already named {}: give another name",
            c.short_id(),
            a.new_name
        );
    }
    store.rename_container(&c.id, &a.new_name)?;
    Ok(ExitCode::SUCCESS)
}
