//! `berth system`: `prune` (everything unused at once) and `info`.

use std::process::ExitCode;

use anyhow::Result;
use berth_builder::cache::Cache;
use berth_runtime::image::store::Removed;
use clap::{Args, Subcommand};

use crate::app::GlobalOptions;
use crate::output;

/// Arguments of `berth system`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth system prune\n  berth system prune -a --volumes -f\n  berth system info"
)]
pub struct SystemArgs {
    /// What to do
    #[command(subcommand)]
    pub command: SystemCommand,
}

/// `berth system` subcommands.
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Remove stopped containers, dangling images, the build cache, network namespaces made
    /// ahead and leftovers
    Prune {
        /// Remove every image no container uses, not just dangling ones
        #[arg(short, long)]
        all: bool,
        /// Also remove anonymous volumes no container uses
        #[arg(long)]
        volumes: bool,
        /// Do not ask (berth never asks)
        #[arg(short, long)]
        force: bool,
    },
    /// Show system-wide information (as `berth info`)
    Info(super::info::InfoArgs),
}

/// Runs a `berth system` subcommand.
pub fn run(g: &GlobalOptions, a: SystemArgs) -> Result<ExitCode> {
    match a.command {
        SystemCommand::Info(a) => super::info::run(g, a),
        SystemCommand::Prune { all, volumes, .. } => {
            let store = super::open_store(g)?;
            let containers = super::container::prune_containers(&store)?;
            let mut removed_volumes = Vec::new();
            if volumes {
                for v in store.volumes()? {
                    if v.anonymous && store.volume_users(&v.name).is_empty() {
                        store.remove_volume(&v.name, false)?;
                        removed_volumes.push(v.name);
                    }
                }
            }
            let images = super::image::prune_images(&store, all)?;
            let cache = Cache::new(&store).prune(&store)?;
            let gc = store.collect_garbage()?;
            // The network namespaces made ahead for the next containers: kernel memory, and
            // mounts in the run root (made again by the next `run --rm`).
            #[cfg(target_os = "linux")]
            berth_runtime::network::spare::release_all(&store.run_root().join("netns"));
            // Bridges no container is on, and their firewall rules (made again at a start).
            #[cfg(target_os = "linux")]
            if berth_runtime::network::bridge::any(&store) {
                berth_runtime::network::bridge::tear_down_unused(&store)?;
            }
            berth_runtime::container::store::remove_spare_folders(&store.containers_dir());
            if !containers.is_empty() {
                println!("Deleted Containers:");
                containers.iter().for_each(|c| println!("{c}"));
                println!();
            }
            if !removed_volumes.is_empty() {
                println!("Deleted Volumes:");
                removed_volumes.iter().for_each(|v| println!("{v}"));
                println!();
            }
            if !images.is_empty() {
                println!("Deleted Images:");
                for e in &images {
                    match e {
                        Removed::Untagged(n) => println!("untagged: {n}"),
                        Removed::Deleted(d) => println!("deleted: {d}"),
                    }
                }
                println!();
            }
            if cache.entries > 0 || cache.mounts > 0 {
                println!(
                    "Deleted build cache: {} steps, {} cache mounts",
                    cache.entries, cache.mounts
                );
                println!();
            }
            println!("Total reclaimed space: {}", output::human_size(gc.bytes));
            Ok(ExitCode::SUCCESS)
        }
    }
}
