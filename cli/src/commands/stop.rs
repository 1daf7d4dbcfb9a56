//! `berth stop`, `kill`, `restart`, `rm`, `wait`: the lifecycle of created containers (and
//! `stop`, `kill`, `rm` of `serve -d` servers).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use berth_runtime::container::lifecycle;
use berth_serve::managed::ServerRecord;
use clap::Args;

#[cfg(target_os = "linux")]
use super::serve_detached;
use crate::app::GlobalOptions;

/// `serve -d` needs Linux: a server recorded there and found here (a copied store) is refused.
#[cfg(not(target_os = "linux"))]
mod serve_detached {
    use super::*;

    fn needs_linux(r: &ServerRecord) -> anyhow::Error {
        anyhow::anyhow!(
            "server {} was started by `serve -d` on Linux, and only Linux can manage it",
            r.name
        )
    }

    pub fn stop(r: &ServerRecord, _: Duration) -> Result<()> {
        Err(needs_linux(r))
    }

    pub fn signal(r: &ServerRecord, _: lifecycle::Signal) -> Result<()> {
        Err(needs_linux(r))
    }

    pub fn remove(_: &berth_runtime::Store, r: &ServerRecord, _: bool) -> Result<()> {
        Err(needs_linux(r))
    }
}

/// Arguments of `berth stop`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  berth stop web\n  berth stop -t 2 web db")]
pub struct StopArgs {
    /// Seconds to wait before killing (default: the container's stop timeout, 10)
    #[arg(short, long)]
    pub time: Option<u64>,
    /// Signal to send first (default: the container's stop signal, SIGTERM)
    #[arg(short, long)]
    pub signal: Option<String>,
    /// Containers: names or ids
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Arguments of `berth kill`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  berth kill web\n  berth kill -s HUP web")]
pub struct KillArgs {
    /// Signal to send
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    /// Containers: names or ids
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Arguments of `berth rm`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  berth rm web\n  berth rm -f -v web")]
pub struct RmArgs {
    /// Kill and remove a running container
    #[arg(short, long)]
    pub force: bool,
    /// Remove the container's anonymous volumes
    #[arg(short, long)]
    pub volumes: bool,
    /// Containers: names or ids
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Arguments of `berth wait`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  berth wait job")]
pub struct WaitArgs {
    /// Containers: names or ids
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Runs `f` on each named container, reporting failures as Docker does (exit 1 if any).
pub(crate) fn each(
    g: &GlobalOptions,
    names: &[String],
    mut f: impl FnMut(
        &berth_runtime::Store,
        &berth_runtime::container::Container,
    ) -> Result<Option<String>>,
) -> Result<ExitCode> {
    let store = super::open_store(g)?;
    Ok(super::report_each(names, |name| {
        f(&store, &store.find_container(name)?)
    }))
}

/// Runs `container` on each named container, or `server` on each `serve -d` server of that
/// name, reporting failures as Docker does (exit 1 if any).
fn each_or_server(
    g: &GlobalOptions,
    names: &[String],
    mut container: impl FnMut(
        &berth_runtime::Store,
        &berth_runtime::container::Container,
    ) -> Result<Option<String>>,
    mut server: impl FnMut(&berth_runtime::Store, &ServerRecord) -> Result<Option<String>>,
) -> Result<ExitCode> {
    use berth_runtime::container::store::ContainerError;
    let store = super::open_store(g)?;
    Ok(super::report_each(names, |name| {
        match store.find_container(name) {
            Ok(c) => container(&store, &c),
            Err(ContainerError::NotFound(n)) => match berth_serve::managed::find(&store, &n) {
                Ok(r) => server(&store, &r),
                Err(_) => Err(ContainerError::NotFound(n).into()),
            },
            Err(e) => Err(e.into()),
        }
    }))
}

/// How long `stop` waits for a server by default: its drain (10 s) and its containers' stops.
const SERVER_STOP_TIMEOUT: u64 = 30;

/// Stops containers, and `serve -d` servers (with their containers).
pub fn stop(g: &GlobalOptions, a: StopArgs) -> Result<ExitCode> {
    each_or_server(
        g,
        &a.containers,
        |store, c| {
            let mut c = c.clone();
            if let Some(s) = &a.signal {
                lifecycle::parse_signal(s)?;
                c.stop_signal = s.clone();
            }
            lifecycle::stop(
                store,
                &c,
                Duration::from_secs(a.time.unwrap_or(c.stop_timeout)),
            )?;
            Ok(None)
        },
        |_, r| {
            serve_detached::stop(
                r,
                Duration::from_secs(a.time.unwrap_or(SERVER_STOP_TIMEOUT)),
            )?;
            Ok(None)
        },
    )
}

/// Sends a signal (to a container, or a `serve -d` server).
pub fn kill(g: &GlobalOptions, a: KillArgs) -> Result<ExitCode> {
    let signal = lifecycle::parse_signal(&a.signal)?;
    each_or_server(
        g,
        &a.containers,
        |store, c| {
            lifecycle::kill(store, c, signal)?;
            Ok(None)
        },
        |_, r| {
            serve_detached::signal(r, signal)?;
            Ok(None)
        },
    )
}

/// Stops then starts containers.
pub fn restart(g: &GlobalOptions, a: StopArgs) -> Result<ExitCode> {
    each(g, &a.containers, |store, c| {
        lifecycle::stop(
            store,
            c,
            Duration::from_secs(a.time.unwrap_or(c.stop_timeout)),
        )?;
        store.update_container(&c.id, |c| c.state.restart_count += 1)?;
        super::start::spawn_monitor(g, store, c)?;
        Ok(None)
    })
}

/// Removes containers; one whose state file is damaged is removed from what is left of it.
pub fn rm(g: &GlobalOptions, a: RmArgs) -> Result<ExitCode> {
    use berth_runtime::container::store::ContainerError;
    let store = super::open_store(g)?;
    Ok(super::report_each(&a.containers, |name| {
        match store.find_container(name) {
            Ok(c) => lifecycle::remove(&store, &c, a.force, a.volumes)?,
            Err(ContainerError::Corrupt { .. }) => {
                let r = store.find_remains(name)?;
                lifecycle::remove_remains(&store, &r, a.force)?
            }
            Err(ContainerError::NotFound(n)) => match berth_serve::managed::find(&store, &n) {
                Ok(r) => serve_detached::remove(&store, &r, a.force)?,
                Err(_) => return Err(ContainerError::NotFound(n).into()),
            },
            Err(e) => return Err(e.into()),
        }
        Ok(None)
    }))
}

/// Waits for containers and prints their exit codes.
pub fn wait(g: &GlobalOptions, a: WaitArgs) -> Result<ExitCode> {
    each(g, &a.containers, |store, c| {
        lifecycle::wait_stopped(store, &c.id, None);
        let code = store
            .load_container(&c.id)
            .ok()
            .and_then(|c| c.state.exit_code)
            .unwrap_or(c.state.exit_code.unwrap_or(0));
        Ok(Some(code.to_string()))
    })
}
