//! Making a container from an image and Docker's `run`/`create` options: the image config
//! gives the defaults (Entrypoint, Cmd, Env, WorkingDir, User, ExposedPorts, Volumes,
//! StopSignal) and the options override them as Docker's do.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::Utc;

use super::state::{Container, RunState, new_id, new_name};
use super::store::ContainerError;
use crate::backend::{self, Backend};
use crate::image::{Image, ImageError};
use crate::store::Store;
use crate::volume::VolumeError;
use crate::workload::{Limits, MountKind, MountSpec, NetworkMode, Security, WorkloadSpec};

/// The options of `berth run` and `berth create` that shape a container.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// `--name`.
    pub name: Option<String>,
    /// The command after the image name.
    pub command: Vec<String>,
    /// `--entrypoint` (an empty string clears the image's).
    pub entrypoint: Option<String>,
    /// `-e`/`--env-file` entries, `KEY=VALUE`.
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `--hostname`.
    pub hostname: Option<String>,
    /// `-v` specs.
    pub volumes: Vec<String>,
    /// `--mount` specs.
    pub mounts: Vec<String>,
    /// `--tmpfs` paths.
    pub tmpfs: Vec<String>,
    /// `-p` specs.
    pub publish: Vec<String>,
    /// `-P`.
    pub publish_all: bool,
    /// `--network`.
    pub network: NetworkMode,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub stdin: bool,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--read-only`.
    pub read_only: bool,
    /// `--init`.
    pub init: bool,
    /// Security options.
    pub security: Security,
    /// Limits.
    pub limits: Limits,
    /// `--stop-signal`.
    pub stop_signal: Option<String>,
    /// `--stop-timeout`.
    pub stop_timeout: Option<u64>,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `--add-host`.
    pub extra_hosts: Vec<String>,
    /// `--runtime`: the backend that runs it, when not chosen from the image.
    pub runtime: Option<Backend>,
}

/// Why a container could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// An option is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The image is unusable.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A volume could not be made.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// The container store failed.
    #[error(transparent)]
    Container(#[from] ContainerError),
}

fn invalid(s: impl Into<String>) -> CreateError {
    CreateError::Invalid(s.into())
}

/// Parses `-v SPEC`: `HOST:CTR[:ro|rw]` (HOST a path), `NAME:CTR[:ro]` (a named volume) or
/// `CTR` (an anonymous volume).
fn parse_volume(store: &Store, spec: &str) -> Result<MountSpec, CreateError> {
    // A Windows host path starts with a drive (`C:\data:/data`): its colon is not a separator.
    let drive = spec.len() > 2
        && spec.as_bytes()[0].is_ascii_alphabetic()
        && spec.as_bytes()[1] == b':'
        && matches!(spec.as_bytes()[2], b'\\' | b'/');
    let mut parts: Vec<&str> = spec[if drive { 2 } else { 0 }..].split(':').collect();
    if drive {
        parts[0] = &spec[..2 + parts[0].len()];
    }
    let (src, dst, opts) = match parts.as_slice() {
        [dst] => (None, *dst, ""),
        [src, dst] => (Some(*src), *dst, ""),
        [src, dst, opts] => (Some(*src), *dst, *opts),
        _ => {
            return Err(invalid(format!(
                "invalid -v {spec:?}: expected HOST_PATH:CONTAINER_PATH[:ro], NAME:CONTAINER_PATH[:ro] or CONTAINER_PATH"
            )));
        }
    };
    if !dst.starts_with('/') {
        return Err(invalid(format!(
            "invalid -v {spec:?}: the container path {dst:?} must be absolute"
        )));
    }
    let mut read_only = false;
    let mut nocopy = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" | "readonly" => read_only = true,
            "nocopy" => nocopy = true,
            "rw" | "z" | "Z" | "rprivate" | "private" => {}
            other => {
                return Err(invalid(format!(
                    "invalid -v {spec:?}: unknown option {other:?} (use ro or rw)"
                )));
            }
        }
    }
    match src {
        Some(s) if s.starts_with('/') || s.starts_with('.') || s.starts_with('~') || drive => {
            let path = std::path::absolute(s).map_err(|e| invalid(format!("-v {spec:?}: {e}")))?;
            // Docker creates a missing host folder for -v.
            if !path.exists() {
                std::fs::create_dir_all(&path).map_err(|e| {
                    invalid(format!("-v {spec:?}: creating {}: {e}", path.display()))
                })?;
            }
            Ok(MountSpec {
                kind: MountKind::Bind,
                source: path,
                destination: dst.to_string(),
                read_only,
                volume: None,
                populate: false,
            })
        }
        Some(name) => volume_mount(store, name, dst, read_only, false),
        None => volume_mount(store, &new_id(), dst, read_only, true),
    }
    .map(|mut m| {
        m.populate &= !nocopy;
        m
    })
}

fn volume_mount(
    store: &Store,
    name: &str,
    dst: &str,
    read_only: bool,
    anonymous: bool,
) -> Result<MountSpec, CreateError> {
    let v = store.create_volume(name, anonymous)?;
    Ok(MountSpec {
        kind: MountKind::Volume,
        source: v.mountpoint,
        destination: dst.to_string(),
        read_only,
        volume: Some(name.to_string()),
        populate: true,
    })
}

/// Parses `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly]`.
fn parse_mount(store: &Store, spec: &str) -> Result<MountSpec, CreateError> {
    let mut kind = "volume";
    let (mut source, mut target, mut read_only) = (None, None, false);
    for field in spec.split(',') {
        let (k, v) = field.split_once('=').unwrap_or((field, "true"));
        match k {
            "type" => kind = v,
            "source" | "src" => source = Some(v.to_string()),
            "target" | "destination" | "dst" => target = Some(v.to_string()),
            "readonly" | "ro" => read_only = v != "false" && v != "0",
            "bind-propagation" | "volume-nocopy" | "consistency" | "tmpfs-size" | "tmpfs-mode" => {}
            other => {
                return Err(invalid(format!(
                    "invalid --mount {spec:?}: unknown field {other:?}"
                )));
            }
        }
    }
    let target =
        target.ok_or_else(|| invalid(format!("invalid --mount {spec:?}: target= is required")))?;
    if !target.starts_with('/') {
        return Err(invalid(format!(
            "invalid --mount {spec:?}: target {target:?} must be absolute"
        )));
    }
    match kind {
        "bind" => {
            let src = source.ok_or_else(|| {
                invalid(format!(
                    "invalid --mount {spec:?}: a bind mount needs source="
                ))
            })?;
            let path = PathBuf::from(&src);
            // Unlike -v, --mount does not create the host path, as Docker's.
            if !path.exists() {
                return Err(invalid(format!(
                    "invalid --mount {spec:?}: bind source path does not exist: {src}"
                )));
            }
            Ok(MountSpec {
                kind: MountKind::Bind,
                source: std::path::absolute(&path).unwrap_or(path),
                destination: target,
                read_only,
                volume: None,
                populate: false,
            })
        }
        "volume" => match source {
            Some(name) => volume_mount(store, &name, &target, read_only, false),
            None => volume_mount(store, &new_id(), &target, read_only, true),
        },
        "tmpfs" => Ok(MountSpec {
            kind: MountKind::Tmpfs,
            source: PathBuf::new(),
            destination: target,
            read_only,
            volume: None,
            populate: false,
        }),
        other => Err(invalid(format!(
            "invalid --mount {spec:?}: type {other:?} is not bind, volume or tmpfs"
        ))),
    }
}

/// Makes and records a container of `image` (named `image_name` by the user).
pub fn create_container(
    store: &Store,
    image: &Image,
    image_name: &str,
    opts: &CreateOptions,
) -> Result<Container, CreateError> {
    let rc = image.config.config.clone().unwrap_or_default();
    let entrypoint: Vec<String> = match &opts.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => rc.entrypoint.clone().unwrap_or_default(),
    };
    // A command given on the command line replaces the image's; so does --entrypoint.
    let cmd: Vec<String> = if !opts.command.is_empty() {
        opts.command.clone()
    } else if opts.entrypoint.is_some() {
        Vec::new()
    } else {
        rc.cmd.clone().unwrap_or_default()
    };
    let mut args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    // An image of bare wasm layers (other wasm tooling's) runs its module by default.
    if args.is_empty() && image.has_wasm_layer() {
        args.push(crate::image::layer::WASM_LAYER_PATH.to_string());
    }
    if args.is_empty() {
        return Err(invalid(format!(
            "no command specified: image {image_name} has no Cmd or Entrypoint; give a command after the image name"
        )));
    }

    let mut spec = WorkloadSpec {
        args,
        env: rc.env.clone().unwrap_or_default(),
        cwd: opts
            .workdir
            .clone()
            .or(rc.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into()),
        user: opts.user.clone().or(rc.user.clone()).unwrap_or_default(),
        hostname: String::new(),
        mounts: Vec::new(),
        limits: opts.limits.clone(),
        network: opts.network,
        tty: opts.tty,
        stdin: opts.stdin,
        read_only: opts.read_only,
        security: opts.security.clone(),
        init: opts.init,
        extra_hosts: opts.extra_hosts.clone(),
        backend: backend::select(image, image_name, opts.runtime).map_err(invalid)?,
        backend_forced: opts.runtime.is_some(),
    };
    if !spec.backend.available() {
        return Err(invalid(format!(
            "this build of berth cannot run {} workloads on this system; image {image_name} needs the {} runtime",
            spec.backend, spec.backend
        )));
    }
    if !spec.cwd.starts_with('/') {
        return Err(invalid(format!(
            "the working directory {:?} must be an absolute path",
            spec.cwd
        )));
    }
    for kv in &opts.env {
        match kv.split_once('=') {
            Some((k, v)) => spec.set_env(k, v),
            None => {
                return Err(invalid(format!(
                    "invalid environment entry {kv:?}: expected KEY=VALUE"
                )));
            }
        }
    }
    // Everything that can be refused is checked before volumes are made.
    if let Some(name) = &opts.name
        && !(name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(invalid(format!(
            "invalid container name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    #[cfg(target_os = "linux")]
    for p in &opts.publish {
        crate::network::ports::parse_publish(p).map_err(|e| invalid(e.to_string()))?;
    }
    #[cfg(not(target_os = "linux"))]
    if !opts.publish.is_empty() || opts.publish_all {
        return Err(invalid(
            "publishing ports (-p, -P) needs Linux network namespaces; this system runs WASI guests on the host network",
        ));
    }
    for v in &opts.volumes {
        spec.mounts.push(parse_volume(store, v)?);
    }
    for m in &opts.mounts {
        spec.mounts.push(parse_mount(store, m)?);
    }
    for t in &opts.tmpfs {
        let path = t.split(':').next().unwrap_or(t);
        spec.mounts.push(MountSpec {
            kind: MountKind::Tmpfs,
            source: PathBuf::new(),
            destination: path.to_string(),
            read_only: false,
            volume: None,
            populate: false,
        });
    }
    // The image's VOLUMEs get anonymous volumes unless something is mounted there.
    for path in rc.volumes.clone().unwrap_or_default().into_keys() {
        if !spec.mounts.iter().any(|m| m.destination == path) {
            spec.mounts
                .push(volume_mount(store, &new_id(), &path, false, true)?);
        }
    }

    // Shallow mounts first, so `-v a:/x/y -v b:/x` does not hide /x/y, as Docker sorts them.
    spec.mounts
        .sort_by_key(|m| m.destination.trim_end_matches('/').matches('/').count());
    let mut publish = opts.publish.clone();
    if opts.network == NetworkMode::Host && !publish.is_empty() {
        tracing::warn!("published ports are discarded when using host network mode");
        publish.clear();
    }
    #[cfg(target_os = "linux")]
    if opts.publish_all && opts.network != NetworkMode::Host {
        let exposed: Vec<String> = rc
            .exposed_ports
            .clone()
            .unwrap_or_default()
            .into_keys()
            .collect();
        for m in crate::network::ports::publish_all(&exposed).map_err(|e| invalid(e.to_string()))? {
            publish.push(format!("{}/{}", m.container_port, m.protocol.as_str()));
        }
    }

    for layer in image.layers()? {
        store.ensure_snapshot(&layer)?;
    }
    #[cfg(not(target_os = "linux"))]
    if spec.backend == Backend::Native {
        return Err(invalid(format!(
            "image {image_name} is not a WebAssembly image, and native containers need Linux: on this system berth runs WASI images (os wasip1/wasip2, arch wasm)"
        )));
    }
    let id = new_id();
    spec.hostname = opts
        .hostname
        .clone()
        .unwrap_or_else(|| id[..12].to_string());
    let mut labels = rc.labels.clone().unwrap_or_default();
    labels.extend(opts.labels.clone());
    let c = Container {
        id,
        name: opts.name.clone().unwrap_or_else(new_name),
        image: image_name.to_string(),
        image_id: image.id.clone(),
        layers: image.config.rootfs.diff_ids.clone(),
        created: Utc::now(),
        backend: spec.backend.to_string(),
        spec,
        publish,
        ports: Vec::new(),
        auto_remove: opts.auto_remove,
        stop_signal: opts
            .stop_signal
            .clone()
            .or(rc.stop_signal.clone())
            .unwrap_or_else(|| "SIGTERM".into()),
        stop_timeout: opts
            .stop_timeout
            .or(rc.stop_timeout.map(|t| t.max(0) as u64))
            .unwrap_or(10),
        labels,
        state: RunState::default(),
    };
    store.create_container(&c)?;
    Ok(c)
}
