//! `berth rmi`: remove images (or names of images), then what nothing needs any more.

use std::process::ExitCode;

use anyhow::Result;
use berth_runtime::image::store::Removed;
use clap::Args;

use crate::app::GlobalOptions;

/// Arguments of `berth rmi`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  berth rmi busybox\n  berth rmi -f 3f57d9401f8d")]
pub struct RmiArgs {
    /// Remove even an image with several names or one a container uses
    #[arg(short, long)]
    pub force: bool,
    /// Images: names or ids
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Removes images; reports each failure and exits 1 if any failed, as Docker does.
pub fn run(g: &GlobalOptions, a: RmiArgs) -> Result<ExitCode> {
    let store = super::open_store(g)?;
    Ok(super::report_each(&a.images, |name| {
        let lines: Vec<String> = store
            .remove_image(name, a.force)?
            .into_iter()
            .map(|e| match e {
                Removed::Untagged(n) => format!("Untagged: {n}"),
                Removed::Deleted(d) => format!("Deleted: {d}"),
            })
            .collect();
        Ok(Some(lines.join("\n")))
    }))
}
