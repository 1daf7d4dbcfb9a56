//! Setting a WASI workload up, the same way wherever it runs: in a container's PID 1 on Linux
//! (and `berth exec` there), on the portable path without namespaces, and in any host that runs
//! a [`crate::workload::Workload`]. The program comes from the compile cache when it can; the
//! guest gets the rootfs as `/`, the volumes as further preopens (read-only where asked), the
//! environment with Docker's defaults, the working directory, and `--memory` as its limit.

use std::path::{Path, PathBuf};

use wasmtime::Engine;

use super::engine::{self, Program};
use super::guest::{self, GuestSpec, Preopen};
use super::{KnownModule, ModuleCache, WasmKind};
use crate::workload::{MountKind, StartError, WorkloadSpec};

/// Where a guest's files are on this host.
#[derive(Debug, Clone)]
pub enum GuestFiles {
    /// This process is inside the container's rootfs (PID 1 after the pivot): `/` is the
    /// rootfs and the mounts are mounted at their destinations already.
    InRootfs,
    /// The rootfs is this folder, and each mount is its host source (no mount namespace).
    Folder(PathBuf),
}

/// The compiled program at `program` (`name` as the user gave it): the cached artifact of a
/// module whose digest is `known` is mapped without reading the module; else the module is
/// read and loaded through `cache` (compiled and stored on a miss), or compiled.
pub fn load_program(
    engine: &Engine,
    program: &Path,
    name: &str,
    kind: WasmKind,
    cache: Option<&ModuleCache>,
    known: Option<&KnownModule>,
) -> Result<Program, StartError> {
    if let (Some(cache), Some(known)) = (cache, known.filter(|k| Path::new(&k.path) == program))
        && let Some(p) = cache.load_known(engine, &known.sha256, kind)
    {
        return Ok(p);
    }
    let bytes = std::fs::read(program)
        .map_err(|e| StartError::cannot_run(format!("reading \"{name}\": {e}")))?;
    match cache {
        Some(c) => c.load(engine, &bytes, name).map(|(p, _)| p),
        None => engine::compile(engine, &bytes, name),
    }
    .map_err(StartError::from)
}

/// A known module's engine and compiled program, made ahead: a container's `__init` maps the
/// artifact while the monitor makes the container's cgroup, and PID 1, forked from it, finds
/// them in its memory.
pub struct Preloaded {
    /// The engine the program was loaded for.
    pub engine: Engine,
    /// The program.
    pub program: Program,
    /// Its path in the container.
    pub path: PathBuf,
}

/// Makes the engine and maps the cached artifact of `known`; `None` when it is not in `cache`
/// (PID 1 then loads it as usual). Starts no thread: the caller may fork after it.
pub fn preload(cache: &ModuleCache, known: &KnownModule) -> Option<Preloaded> {
    let engine = engine::new_engine().ok()?;
    let program = cache.load_known(&engine, &known.sha256, known.kind)?;
    Some(Preloaded {
        engine,
        program,
        path: PathBuf::from(&known.path),
    })
}

/// What the guest of `spec` runs with: `env` (the workload's, with its defaults, see
/// [`crate::workload::workload_env`]), its files where `files` says.
pub fn guest_spec(spec: &WorkloadSpec, env: Vec<String>, files: &GuestFiles) -> GuestSpec {
    let root = match files {
        GuestFiles::InRootfs => PathBuf::from("/"),
        GuestFiles::Folder(root) => root.clone(),
    };
    let mut preopens = vec![Preopen {
        host: root,
        guest: "/".into(),
        read_only: spec.read_only,
    }];
    // In the rootfs, volumes and tmpfs mounts are mounted already (read-only ones by the
    // kernel); as their own preopens the guest's view of `:ro` holds in WASI's permissions too
    // (and a tmpfs stays writable under a `--read-only` `/`). A folder has no tmpfs to give.
    let in_rootfs = matches!(files, GuestFiles::InRootfs);
    for m in spec
        .mounts
        .iter()
        .filter(|m| in_rootfs || m.kind != MountKind::Tmpfs)
    {
        preopens.push(Preopen {
            host: match files {
                GuestFiles::InRootfs => PathBuf::from(&m.destination),
                GuestFiles::Folder(_) => m.source.clone(),
            },
            guest: m.destination.clone(),
            read_only: m.read_only,
        });
    }
    GuestSpec {
        name: spec.args.first().cloned().unwrap_or_default(),
        args: spec.args.clone(),
        env,
        cwd: if spec.cwd.is_empty() {
            "/".into()
        } else {
            spec.cwd.clone()
        },
        preopens,
        memory: spec.limits.memory,
        network: spec.network != crate::workload::NetworkMode::None,
    }
}

/// Runs the guest to its end and gives the workload's exit code; a guest that could not be set
/// up is reported on stderr and gets Docker's code for it.
pub fn run_to_exit(engine: &Engine, program: &Program, guest: &GuestSpec) -> i32 {
    match guest::run(engine, program, guest) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth: {e}");
            StartError::from(e).code()
        }
    }
}
