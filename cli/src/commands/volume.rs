//! `berth volume`: named volumes.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::app::GlobalOptions;
use crate::output::{self, Format};

/// Arguments of `berth volume`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth volume create data\n  berth volume ls\n  berth volume rm data\n  berth volume prune"
)]
pub struct VolumeArgs {
    /// The volume command.
    #[command(subcommand)]
    pub command: VolumeCommand,
}

/// `berth volume` subcommands.
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create {
        /// The name (default: a random one)
        name: Option<String>,
    },
    /// List volumes
    #[command(visible_alias = "list")]
    Ls {
        /// Only names
        #[arg(short, long)]
        quiet: bool,
        /// Output format
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Remove volumes
    #[command(visible_alias = "remove")]
    Rm {
        /// Remove even if a container uses it
        #[arg(short, long)]
        force: bool,
        /// Names
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Show a volume as JSON
    Inspect {
        /// Names
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes no container uses (anonymous ones; with -a every one)
    Prune {
        /// Also named volumes
        #[arg(short, long)]
        all: bool,
        /// Do not ask (berth never asks)
        #[arg(short, long)]
        force: bool,
    },
}

/// Runs a volume subcommand.
pub fn run(g: &GlobalOptions, a: VolumeArgs) -> Result<ExitCode> {
    let store = super::open_store(g)?;
    match a.command {
        VolumeCommand::Create { name } => {
            let name = name.unwrap_or_else(berth_runtime::container::state::new_id);
            println!("{}", store.create_volume(&name, false)?.name);
        }
        VolumeCommand::Ls { quiet, format } => {
            let vols = store.volumes()?;
            if quiet {
                vols.iter().for_each(|v| println!("{}", v.name));
            } else if format == Format::Json {
                for v in &vols {
                    output::json_line(
                        &json!({"Driver": "local", "Name": v.name, "Mountpoint": v.mountpoint}),
                    )?;
                }
            } else {
                output::print_table(
                    "DRIVER\tVOLUME NAME",
                    vols.iter().map(|v| format!("local\t{}", v.name)),
                )?;
            }
        }
        VolumeCommand::Rm { force, names } => {
            return Ok(super::report_each(&names, |n| {
                store.remove_volume(n, force)?;
                Ok(None)
            }));
        }
        VolumeCommand::Inspect { names } => {
            let mut out = Vec::new();
            for n in names {
                let v = store.volume(&n)?;
                out.push(json!({"Name": v.name, "Driver": "local", "Mountpoint": v.mountpoint, "CreatedAt": v.created, "Scope": "local", "Anonymous": v.anonymous}));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        VolumeCommand::Prune { all, .. } => {
            let mut removed = Vec::new();
            for v in store.volumes()? {
                if (all || v.anonymous) && store.volume_users(&v.name).is_empty() {
                    store.remove_volume(&v.name, false)?;
                    removed.push(v.name);
                }
            }
            if !removed.is_empty() {
                println!("Deleted Volumes:");
                removed.iter().for_each(|n| println!("{n}"));
                println!();
            }
            println!("Total reclaimed volumes: {}", removed.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}
