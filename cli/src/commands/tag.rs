//! `berth tag`: another name for an image.

use std::process::ExitCode;

use anyhow::Result;
use berth_runtime::reference::ImageRef;
use clap::Args;

use crate::app::GlobalOptions;

/// Arguments of `berth tag`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth tag busybox localhost:5000/busybox:1\n  berth tag 3f57d9401f8d myimage:v2"
)]
pub struct TagArgs {
    /// The image: a name or an id
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    /// The new name
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
}

/// Tags an image.
pub fn run(g: &GlobalOptions, a: TagArgs) -> Result<ExitCode> {
    let target = ImageRef::parse(&a.target)?;
    let store = super::open_store(g)?;
    let image = store.find_image(&a.source)?;
    store.tag_image(&image, &target)?;
    Ok(ExitCode::SUCCESS)
}
