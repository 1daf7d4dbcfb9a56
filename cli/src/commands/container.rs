//! `berth container …`: Docker's management-command spelling of the container commands, and
//! `container prune`.

use std::process::ExitCode;

use anyhow::Result;
use berth_runtime::container::Status;
use clap::{Args, Subcommand};

use super::{create, exec, logs, ps, run as run_cmd, start, stop, top};
use crate::app::GlobalOptions;

/// Arguments of `berth container`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  berth container ls -a\n  berth container prune")]
pub struct ContainerArgs {
    /// The container command.
    #[command(subcommand)]
    pub command: ContainerCommand,
}

/// `berth container` subcommands.
#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// List containers
    #[command(visible_alias = "list", visible_alias = "ps")]
    Ls(ps::PsArgs),
    /// Create and start a container
    Run(run_cmd::RunArgs),
    /// Create a container
    Create(create::CreateArgs),
    /// Start containers
    Start(start::StartArgs),
    /// Stop containers
    Stop(stop::StopArgs),
    /// Restart containers
    Restart(stop::StopArgs),
    /// Send a signal to containers
    Kill(stop::KillArgs),
    /// Remove containers
    #[command(visible_alias = "remove")]
    Rm(stop::RmArgs),
    /// Wait for containers to stop
    Wait(stop::WaitArgs),
    /// Show a container's output
    Logs(logs::LogsArgs),
    /// Run a command in a running container
    Exec(exec::ExecArgs),
    /// Show a container's processes
    Top(top::TopArgs),
    /// Show containers as JSON
    Inspect(super::inspect::InspectArgs),
    /// List a container's published ports
    Port(super::port::PortArgs),
    /// Freeze every process of containers
    Pause(super::pause::PauseArgs),
    /// Thaw paused containers
    Unpause(super::pause::PauseArgs),
    /// Rename a container
    Rename(super::rename::RenameArgs),
    /// Remove every stopped container
    Prune {
        /// Do not ask (berth never asks)
        #[arg(short, long)]
        force: bool,
    },
}

/// Runs a container subcommand.
pub fn run(g: &GlobalOptions, a: ContainerArgs) -> Result<ExitCode> {
    match a.command {
        ContainerCommand::Ls(a) => ps::run(g, a),
        ContainerCommand::Run(a) => run_cmd::run(g, a),
        ContainerCommand::Create(a) => create::run(g, a),
        ContainerCommand::Start(a) => start::run(g, a),
        ContainerCommand::Stop(a) => stop::stop(g, a),
        ContainerCommand::Restart(a) => stop::restart(g, a),
        ContainerCommand::Kill(a) => stop::kill(g, a),
        ContainerCommand::Rm(a) => stop::rm(g, a),
        ContainerCommand::Wait(a) => stop::wait(g, a),
        ContainerCommand::Logs(a) => logs::run(g, a),
        ContainerCommand::Exec(a) => exec::run(g, a),
        ContainerCommand::Top(a) => top::run(g, a),
        ContainerCommand::Inspect(a) => super::inspect::run(g, a),
        ContainerCommand::Port(a) => super::port::run(g, a),
        ContainerCommand::Pause(a) => super::pause::pause(g, a),
        ContainerCommand::Unpause(a) => super::pause::unpause(g, a),
        ContainerCommand::Rename(a) => super::rename::run(g, a),
        ContainerCommand::Prune { .. } => {
            let store = super::open_store(g)?;
            let removed = prune_containers(&store)?;
            if !removed.is_empty() {
                println!("Deleted Containers:");
                removed.iter().for_each(|id| println!("{id}"));
                println!();
            }
            println!("Total reclaimed containers: {}", removed.len());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Removes every stopped container, every one whose state file is damaged and of which
/// nothing runs (Docker's "dead"), and the running containers of a `berth serve` that was
/// killed; returns their ids. Their volumes stay, as Docker's
/// (`system prune --volumes` and `volume prune` take the anonymous ones).
pub fn prune_containers(store: &berth_runtime::Store) -> Result<Vec<String>> {
    use berth_runtime::container::lifecycle;
    let mut removed = Vec::new();
    for c in store.containers()? {
        if matches!(c.state.status, Status::Exited | Status::Created) {
            berth_runtime::container::monitor::remove_container(store, &c, false)?;
            removed.push(c.id);
        } else if berth_serve::executor::container::owner::is_orphan(&c) {
            // A function's container whose `berth serve` was killed: nothing will stop it.
            lifecycle::stop(store, &c, std::time::Duration::from_secs(c.stop_timeout))?;
            let c = store.load_container(&c.id)?;
            lifecycle::remove(store, &c, true, false)?;
            removed.push(c.id);
        }
    }
    for r in store.damaged_containers() {
        if !lifecycle::remains_running(store, &r) {
            lifecycle::remove_remains(store, &r, false)?;
            removed.push(r.id);
        }
    }
    // `serve -d` servers that ended, as stopped containers.
    for r in berth_serve::managed::list(store) {
        if !r.running() && r.pid.is_some() {
            berth_serve::managed::remove(store, &r.id)?;
            removed.push(r.id);
        }
    }
    store.remove_stale_run_dirs();
    Ok(removed)
}
