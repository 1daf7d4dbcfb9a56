//! `berth create`: a container from an image, not started.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::container_flags::ContainerFlags;
use crate::app::GlobalOptions;

/// Arguments of `berth create`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
#[command(
    after_help = "Examples:\n  berth create --name web -p 8000:80 busybox httpd -f -p 80\n  berth start web"
)]
pub struct CreateArgs {
    /// The container's settings
    #[command(flatten)]
    pub flags: ContainerFlags,
}

/// Creates the container and prints its id.
pub fn run(g: &GlobalOptions, a: CreateArgs) -> Result<ExitCode> {
    let store = super::open_store(g).map_err(super::start_failure)?;
    let c = super::run::create(g, &store, &a.flags).map_err(super::start_failure)?;
    println!("{}", c.id);
    Ok(ExitCode::SUCCESS)
}
