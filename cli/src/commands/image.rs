//! `berth image …`: Docker's management-command spelling of the image commands
//! (`image ls`, `image rm`, …) and `image prune`.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

#[cfg(target_os = "linux")]
use super::import;
use super::{history, images, inspect, load, rmi, save, tag};
use crate::app::GlobalOptions;

/// Arguments of `berth image`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth image ls\n  berth image rm busybox\n  berth image prune"
)]
pub struct ImageArgs {
    /// The image command.
    #[command(subcommand)]
    pub command: ImageCommand,
}

/// `berth image` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List images
    #[command(visible_alias = "list")]
    Ls(images::ImagesArgs),
    /// Remove one or more images
    #[command(visible_alias = "remove")]
    Rm(rmi::RmiArgs),
    /// Show low-level information on images as JSON
    Inspect(inspect::InspectArgs),
    /// Create a tag TARGET that refers to SOURCE
    Tag(tag::TagArgs),
    /// Show the history of an image
    History(history::HistoryArgs),
    #[cfg(target_os = "linux")]
    /// Import a root filesystem tarball or folder as an image
    Import(import::ImportArgs),
    /// Save images to a tar archive
    Save(save::SaveArgs),
    /// Load images from a tar archive
    Load(load::LoadArgs),
    /// Remove dangling images (with -a, every image), then unused blobs and snapshots
    Prune(PruneArgs),
}

/// Arguments of `berth image prune`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  berth image prune\n  berth image prune -a")]
pub struct PruneArgs {
    /// Remove every image no container uses, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask for confirmation (berth never asks; accepted for Docker's sake)
    #[arg(short, long)]
    pub force: bool,
}

/// Runs an image subcommand.
pub fn run(g: &GlobalOptions, a: ImageArgs) -> Result<ExitCode> {
    match a.command {
        ImageCommand::Ls(a) => images::run(g, a),
        ImageCommand::Rm(a) => rmi::run(g, a),
        ImageCommand::Inspect(a) => inspect::run(g, a),
        ImageCommand::Tag(a) => tag::run(g, a),
        ImageCommand::History(a) => history::run(g, a),
        #[cfg(target_os = "linux")]
        ImageCommand::Import(a) => import::run(g, a),
        ImageCommand::Save(a) => save::run(g, a),
        ImageCommand::Load(a) => load::run(g, a),
        ImageCommand::Prune(a) => prune(g, a),
    }
}

/// Removes dangling images (with `all`, every image no container uses); returns what went.
pub fn prune_images(
    store: &berth_runtime::Store,
    all: bool,
) -> Result<Vec<berth_runtime::image::store::Removed>> {
    // Entries whose manifest or config is gone: nothing can use them.
    let mut deleted = store.remove_broken_images()?;
    for image in store.images()? {
        if (!all && !image.names.is_empty()) || !store.containers_using(&image.id).is_empty() {
            continue;
        }
        deleted.extend(store.remove_image(&image.id.to_string(), true)?);
    }
    Ok(deleted)
}

fn prune(g: &GlobalOptions, a: PruneArgs) -> Result<ExitCode> {
    let store = super::open_store(g)?;
    let deleted = prune_images(&store, a.all)?;
    let stats = store.collect_garbage()?;
    if !deleted.is_empty() {
        println!("Deleted Images:");
        for e in &deleted {
            match e {
                berth_runtime::image::store::Removed::Untagged(n) => println!("untagged: {n}"),
                berth_runtime::image::store::Removed::Deleted(d) => println!("deleted: {d}"),
            }
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        crate::output::human_size(stats.bytes)
    );
    Ok(ExitCode::SUCCESS)
}
