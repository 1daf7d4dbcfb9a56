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
    Wasi(#[from] wasi::WasiError),
    /// What it asks for cannot be done here.
    #[error("{0}")]
    Unsupported(String),
}

impl PortableError {
    /// Docker's exit code for a container that could not start.
    pub fn exit_code(&self) -> i32 {
        match self {
            PortableError::Wasi(e) => e.exit_code(),
            _ => 125,
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
    let bytes = std::fs::read(&program).map_err(|e| wasi::WasiError::Io {
        context: format!("reading \"{name}\" in the container"),
        source: e,
    })?;
    let engine = wasi::engine::new_engine()?;
    let (compiled, _) = wasi::ModuleCache::for_store(store.root())?.load(&engine, &bytes, &name)?;
    let mut preopens = vec![wasi::Preopen {
        host: rootfs.clone(),
        guest: "/".into(),
        read_only: c.spec.read_only,
    }];
    for m in &c.spec.mounts {
        preopens.push(wasi::Preopen {
            host: m.source.clone(),
            guest: m.destination.clone(),
            read_only: m.read_only,
        });
    }
    let mut env = c.spec.env.clone();
    if !env.iter().any(|kv| kv.starts_with("HOSTNAME=")) {
        env.push(format!("HOSTNAME={}", c.spec.hostname));
    }
    let guest = wasi::GuestSpec {
        name,
        args: c.spec.args.clone(),
        env,
        cwd: c.spec.cwd.clone(),
        preopens,
        memory: c.spec.limits.memory,
        network: c.spec.network != crate::workload::NetworkMode::None,
    };
    store.update_container(id, |c| {
        c.state.status = Status::Running;
        c.state.pid = Some(std::process::id() as i32);
        c.state.started_at = Some(Utc::now());
        c.state.exit_code = None;
    })?;
    let result = wasi::guest::run(&engine, &compiled, &guest);
    let code = match &result {
        Ok(code) => *code,
        Err(e) => e.exit_code(),
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
