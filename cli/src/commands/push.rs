//! `berth push`: an image to a registry.

use std::process::ExitCode;

use anyhow::{Context, Result};
use berth_runtime::reference::ImageRef;
use berth_runtime::registry::push::{PushOptions, push};
use clap::Args;

use crate::app::GlobalOptions;
use crate::progress::{Bars, Stream};

/// Arguments of `berth push`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth tag busybox localhost:5000/busybox:1\n  berth push localhost:5000/busybox:1\n  berth push -q registry.example.com/team/app\n\nBlobs the registry has are skipped, so a push that was cut short finishes when run again."
)]
pub struct PushArgs {
    /// Print only the pushed digest
    #[arg(short, long)]
    pub quiet: bool,
    /// The image: NAME[:TAG] (the name says the registry)
    #[arg(value_name = "NAME[:TAG]")]
    pub name: String,
}

/// Pushes the image.
pub fn run(g: &GlobalOptions, a: PushArgs) -> Result<ExitCode> {
    let name = ImageRef::parse(&a.name)?;
    let store = super::open_store(g)?;
    let registry = super::pull::registry_options(g);
    let bars = Bars::new(Stream::Stdout, a.quiet);
    bars.line(&format!("The push refers to repository [{}]", name.name()));
    let opts = PushOptions {
        registry: &registry,
        progress: &bars,
    };
    let pushed =
        push(&store, &name, &opts).with_context(|| format!("pushing {}", name.familiar()))?;
    if a.quiet {
        println!("{}", pushed.digest);
    } else {
        println!(
            "{}: digest: {} size: {}",
            name.tag().unwrap_or("latest"),
            pushed.digest,
            pushed.size
        );
    }
    Ok(ExitCode::SUCCESS)
}
