//! Running a container where there are no Linux namespaces (Windows, macOS, and Linux hosts
//! that refuse them, such as qemu-user, with `--isolation wasi`): only WASI guests, each in a
//! berth process: the command's own in the foreground, or a runner under a detached monitor
//! ([`detached`]). The guest's `/` is the image's layers merged into the container's own
//! folder (its writable layer), and volumes are further preopens. WASI's capability model is
//! the isolation here: the guest reaches only its preopens.

pub mod detached;

use chrono::Utc;

use super::state::Status;
use super::store::ContainerError;
use crate::backend::Backend;
use crate::image::ImageError;
use crate::sandbox::wasi;
use crate::sandbox::wasi::runner::WasiRunner;
use crate::store::Store;
use crate::workload::{Runner, StartError, Workload};

/// Why a container could not run here.
#[derive(Debug, thiserror::Error)]
pub enum PortableError {
    /// The container store failed.
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// Its image's layers could not be merged.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The guest could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// What it asks for cannot be done here.
    #[error("{0}")]
    Unsupported(String),
}

impl PortableError {
    /// The failure as a start failure: itself, or berth's own (125) with this message.
    pub fn into_start_error(self) -> StartError {
        match self {
            PortableError::Start(e) => e,
            other => StartError::berth(other),
        }
    }
}

/// Runs container `id` to its end in this process, which holds it as its monitor, and
/// records its exit; gives its code.
pub fn run_foreground(store: &Store, id: &str) -> Result<i32, PortableError> {
    run(store, id, true)
}

/// Runs container `id` to its end in this process under a monitor of its own (which has
/// recorded itself), and records its exit; gives its code.
pub fn run_under_monitor(store: &Store, id: &str) -> Result<i32, PortableError> {
    if let Some(monitor) = std::env::var(detached::MONITOR_ENV)
        .ok()
        .and_then(|p| p.parse().ok())
    {
        super::process::end_with_parent(monitor);
    }
    run(store, id, false)
}

/// Runs the container's guest here; `holds` when this process is its monitor too.
fn run(store: &Store, id: &str, holds: bool) -> Result<i32, PortableError> {
    let c = store.load_container(id)?;
    if c.spec.backend != Backend::Wasi {
        let needs = if cfg!(target_os = "linux") {
            "Linux namespaces: drop --isolation wasi"
        } else {
            "Linux"
        };
        return Err(PortableError::Unsupported(format!(
            "container {} is a native container, which needs {needs}",
            c.name
        )));
    }
    let image = store.find_image(&c.image_id.to_string())?;
    let rootfs = store.container_dir(id).join("rootfs");
    if !rootfs.exists() {
        store.merge_layers(&image.layers()?, &rootfs)?;
    }
    for m in &c.spec.mounts {
        if m.kind == crate::workload::MountKind::Tmpfs {
            return Err(PortableError::Unsupported(format!(
                "--tmpfs {} needs Linux; use a volume (-v NAME:{}) instead",
                m.destination, m.destination
            )));
        }
    }
    // The same setup as a Linux container's PID 1 (user, environment defaults, working
    // directory, preopens, limits), through the runner any host uses.
    let cache = wasi::ModuleCache::for_store(store.root()).map_err(StartError::from)?;
    let runner = WasiRunner::new(Some(cache))?;
    let me = std::process::id() as i32;
    store.update_container(id, |c| {
        c.state.status = Status::Running;
        c.state.paused = false;
        c.state.pid = Some(me);
        if holds {
            // So another berth sees it running, and sees it die with this process.
            c.state.monitor_pid = Some(me);
            c.state.monitor_start = super::process::start_time(me);
        }
        c.state.started_at = Some(Utc::now());
        c.state.exit_code = None;
        c.state.error = None;
    })?;
    let result = runner.run(&Workload {
        id,
        spec: &c.spec,
        rootfs: &rootfs,
    });
    let code = match &result {
        Ok(code) => *code,
        Err(e) => e.code(),
    };
    store.update_container(id, |c| {
        c.state.status = Status::Exited;
        c.state.pid = None;
        if holds {
            c.state.monitor_pid = None;
        }
        c.state.exit_code = Some(code);
        c.state.finished_at = Some(Utc::now());
        if let Err(e) = &result {
            c.state.error = Some(e.to_string());
        }
    })?;
    result.map_err(PortableError::from)
}
