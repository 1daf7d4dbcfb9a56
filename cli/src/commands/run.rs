//! `berth run`: create a container from an image and start it, in the foreground (this process
//! is its monitor: output, signals and the exit code pass through) or detached (`-d`).

use std::process::ExitCode;

use anyhow::Result;
use berth_runtime::Store;
use berth_runtime::container::create::create_container;
#[cfg(target_os = "linux")]
use berth_runtime::container::monitor::{Attach, Monitor};
use clap::Args;

use super::container_flags::ContainerFlags;
use crate::app::GlobalOptions;

/// Arguments of `berth run`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
#[command(
    after_help = "Examples:\n  berth run --rm busybox echo hello\n  berth run -d -p 8000:80 --name web busybox httpd -f -p 80 -h /var/www\n  berth run -it --rm busybox sh\n  berth run --rm -e NAME=world -v \"$PWD\":/data:ro busybox sh -c 'echo hello $NAME; ls /data'"
)]
pub struct RunArgs {
    /// Run in the background and print the container id
    #[arg(short, long)]
    pub detach: bool,
    /// The container's settings
    #[command(flatten)]
    pub flags: ContainerFlags,
}

/// Without Linux: every container is a WASI guest without namespaces.
#[cfg(not(target_os = "linux"))]
pub fn run(g: &GlobalOptions, a: RunArgs) -> Result<ExitCode> {
    run_wasi_isolated(g, a)
}

/// A WASI guest without namespaces (every run where there is no Linux, and `--isolation
/// wasi` on Linux): in this process in the foreground, or under a detached monitor with `-d`.
fn run_wasi_isolated(g: &GlobalOptions, a: RunArgs) -> Result<ExitCode> {
    use berth_runtime::container::portable;
    let store = super::open_store(g).map_err(super::start_failure)?;
    let c = create(g, &store, &a.flags).map_err(super::start_failure)?;
    if a.detach {
        return detach(g, &store, &c);
    }
    let ran = portable::run_foreground(&store, &c.id);
    if c.auto_remove {
        let _ = store.remove_container_files(&c.id);
    }
    let code = ran.map_err(|e| anyhow::Error::new(e.into_start_error()))?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Creates and starts the container; the exit code is the workload's (or 125/126/127).
#[cfg(target_os = "linux")]
pub fn run(g: &GlobalOptions, a: RunArgs) -> Result<ExitCode> {
    if a.flags.isolation == "wasi" {
        return run_wasi_isolated(g, a);
    }
    let store = super::open_store(g).map_err(super::start_failure)?;
    let c = create(g, &store, &a.flags).map_err(super::start_failure)?;
    if a.detach {
        return detach(g, &store, &c);
    }
    foreground(&store, &c.id, true)
}

/// Starts `c` under a detached monitor and prints its id (`run -d`); one that cannot start
/// is removed.
fn detach(
    g: &GlobalOptions,
    store: &Store,
    c: &berth_runtime::container::Container,
) -> Result<ExitCode> {
    if let Err(e) = super::start::spawn_monitor(g, store, c) {
        remove_unstarted(store, &c.id);
        return Err(super::start_failure(e));
    }
    println!("{}", c.id);
    Ok(ExitCode::SUCCESS)
}

/// Removes the container a `run` made and could not start (with its anonymous volumes): the
/// failed command leaves nothing behind (a container made by `create` stays, as Docker's).
fn remove_unstarted(store: &Store, id: &str) {
    if let Ok(c) = store.load_container(id)
        && c.state.status != berth_runtime::container::Status::Running
        && let Err(e) = berth_runtime::container::lifecycle::remove(store, &c, true, true)
    {
        eprintln!("berth: removing container {}: {e}", c.short_id());
    }
}

/// Creates a container from the flags (the image must be in the store).
pub fn create(
    g: &GlobalOptions,
    store: &Store,
    f: &ContainerFlags,
) -> Result<berth_runtime::container::Container> {
    let opts = f.to_options()?;
    // Held from the image's lookup until the container records the image it uses, so no rmi
    // collects its layers in between (a pull takes the same shared lock).
    let _content = store.lock_content()?;
    // Pulls per --pull (always, or missing and not in the store).
    let image = super::pull::image_for(g, store, &f.image, &f.pull, None)?;
    Ok(create_container(store, &image, &f.image, &opts)?)
}

/// Runs a created container with this process as its monitor; gives the exit code. One that
/// fails to start is removed when `run` made it (`made_here`), or has `--rm`.
pub fn foreground(store: &Store, id: &str, made_here: bool) -> Result<ExitCode> {
    if store.load_container(id)?.isolation == berth_runtime::container::Isolation::Wasi {
        let code = berth_runtime::container::portable::run_foreground(store, id)
            .map_err(|e| anyhow::Error::new(e.into_start_error()))?;
        return Ok(ExitCode::from(code.clamp(0, 255) as u8));
    }
    namespaced_foreground(store, id, made_here)
}

/// A namespaced container in the foreground, under a monitor in this process.
#[cfg(target_os = "linux")]
fn namespaced_foreground(store: &Store, id: &str, made_here: bool) -> Result<ExitCode> {
    let monitor = Monitor::start(store, id, Attach::Foreground).map_err(|e| {
        if made_here || store.load_container(id).is_ok_and(|c| c.auto_remove) {
            remove_unstarted(store, id);
        }
        anyhow::Error::new(e.into_start_error())
    })?;
    let code = monitor
        .wait()
        .map_err(|e| anyhow::Error::new(e.into_start_error()))?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Where there is no Linux no container has namespaces (one recorded on Linux cannot start).
#[cfg(not(target_os = "linux"))]
fn namespaced_foreground(store: &Store, id: &str, _made_here: bool) -> Result<ExitCode> {
    let c = store.load_container(id)?;
    Err(super::start_failure(anyhow::anyhow!(
        "container {} has Linux namespaces, which need Linux",
        c.name
    )))
}
