//! Running a container where there are no Linux namespaces (Windows, macOS): only WASI
//! guests, in the foreground, in this process. The guest's `/` is the image's layers merged
//! into the container's own folder (its writable layer), and volumes are further preopens.
//! WASI's capability model is the isolation here: the guest reaches only its preopens.

use chrono::Utc;

use super::state::Status;
use super::store::ContainerError;
use crate::backend::Backend;
use crate::image::ImageError;
use crate::sandbox::wasi;
use crate::store::Store;
use crate::workload::user;
use crate::workload::{StartError, workload_env};

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

/// Runs container `id` to its end in this process and records its exit; gives its code.
pub fn run_foreground(store: &Store, id: &str) -> Result<i32, PortableError> {
    let c = store.load_container(id)?;
    if c.spec.backend != Backend::Wasi {
        return Err(PortableError::Unsupported(format!(
            "container {} is a native container, which needs Linux",
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
    let name = c.spec.args[0].clone();
    let program = rootfs.join(name.trim_start_matches('/'));
    let header = std::fs::File::open(&program)
        .and_then(|mut f| wasi::read_header(&mut f))
        .map_err(|e| {
            let message = format!("reading \"{name}\" in the container: {e}");
            if e.kind() == std::io::ErrorKind::NotFound {
                StartError::not_found(message)
            } else {
                StartError::cannot_run(message)
            }
        })?;
    let kind = crate::backend::check_program(&c.spec, &header)?
        .ok_or_else(|| StartError::cannot_run(format!("\"{name}\" is not a WebAssembly program")))?;
    let engine = wasi::engine::new_engine().map_err(StartError::from)?;
    let cache = wasi::ModuleCache::for_store(store.root()).map_err(StartError::from)?;
    let compiled = wasi::launch::load_program(&engine, &program, &name, kind, Some(&cache), None)?;
    // The same user, environment defaults and working directory as in a Linux container.
    let who = user::resolve(&c.spec.user, &rootfs).map_err(StartError::berth)?;
    let env = workload_env(&c.spec, &who.home);
    let guest = wasi::launch::guest_spec(&c.spec, env, &wasi::launch::GuestFiles::Folder(rootfs));
    store.update_container(id, |c| {
        c.state.status = Status::Running;
        c.state.pid = Some(std::process::id() as i32);
        c.state.started_at = Some(Utc::now());
        c.state.exit_code = None;
    })?;
    let result = wasi::guest::run(&engine, &compiled, &guest).map_err(StartError::from);
    let code = match &result {
        Ok(code) => *code,
        Err(e) => e.code(),
    };
    store.update_container(id, |c| {
        c.state.status = Status::Exited;
        c.state.pid = None;
        c.state.exit_code = Some(code);
        c.state.finished_at = Some(Utc::now());
        if let Err(e) = &result {
            c.state.error = Some(e.to_string());
        }
    })?;
    result.map_err(PortableError::from)
}
