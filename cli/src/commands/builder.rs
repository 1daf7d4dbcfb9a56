//! `berth builder prune`: forget the build cache.

use std::process::ExitCode;

use anyhow::Result;
use berth_builder::cache::Cache;
use clap::{Args, Subcommand};

use crate::app::GlobalOptions;

/// Arguments of `berth builder`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  berth builder prune\n  berth builder prune -af")]
pub struct BuilderArgs {
    /// What to do
    #[command(subcommand)]
    pub command: BuilderCommand,
}

/// `berth builder` subcommands.
#[derive(Debug, Subcommand)]
pub enum BuilderCommand {
    /// Remove the build cache (step results and RUN cache mounts)
    Prune {
        /// Remove it all (the only mode: accepted for Docker compatibility)
        #[arg(short, long)]
        all: bool,
        /// Do not ask (berth never asks)
        #[arg(short, long)]
        force: bool,
    },
}

/// Runs a `berth builder` subcommand.
pub fn run(g: &GlobalOptions, a: BuilderArgs) -> Result<ExitCode> {
    match a.command {
        BuilderCommand::Prune { .. } => {
            let store = super::open_store(g)?;
            let pruned = Cache::new(&store).prune(&store)?;
            let gc = store.collect_garbage()?;
            println!(
                "Deleted {} cache entries and {} cache mounts; {} layers",
                pruned.entries, pruned.mounts, gc.blobs
            );
            println!(
                "Total reclaimed space: {}",
                crate::output::human_size(gc.bytes)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
