//! The WASI [`Runner`]: a guest in this process, over a folder as its `/`. It needs nothing
//! from the kernel (no namespaces, no cgroup): WASI's capability model is the isolation, the
//! guest reaching only its preopens. The portable path (`container::portable`) runs
//! containers through it, and so can any host that has a root filesystem and a spec.

use std::path::Path;

use cap_std::fs::Dir;
use wasmtime::Engine;

use super::engine::{self, Program};
use super::launch::{self, GuestFiles};
use super::{ModuleCache, guest};
use crate::backend::{self, Backend};
use crate::workload::user;
use crate::workload::{DEFAULT_PATH, Runner, StartError, Workload, WorkloadSpec, workload_env};

/// Runs WASI guests with one engine, and a compile cache when given one.
pub struct WasiRunner {
    engine: Engine,
    cache: Option<ModuleCache>,
}

impl WasiRunner {
    /// A runner whose compiled programs go to (and come from) `cache`, if any.
    pub fn new(cache: Option<ModuleCache>) -> Result<WasiRunner, StartError> {
        Ok(WasiRunner {
            engine: engine::new_engine().map_err(StartError::from)?,
            cache,
        })
    }

    /// The guest's program, compiled (or from the cache).
    fn program(&self, name: &str, bytes: &[u8]) -> Result<Program, StartError> {
        match &self.cache {
            Some(c) => c.load(&self.engine, bytes, name).map(|(p, _)| p),
            None => engine::compile(&self.engine, bytes, name),
        }
        .map_err(StartError::from)
    }
}

impl Runner for WasiRunner {
    fn backend(&self) -> Backend {
        Backend::Wasi
    }

    fn run(&self, workload: &Workload<'_>) -> Result<i32, StartError> {
        let spec = workload.spec;
        let root =
            Dir::open_ambient_dir(workload.rootfs, cap_std::ambient_authority()).map_err(|e| {
                StartError::berth(format!("opening {}: {e}", workload.rootfs.display()))
            })?;
        let who = user::resolve_in(&spec.user, &root).map_err(StartError::berth)?;
        let env = workload_env(spec, &who.home);
        let bytes = read_program(&root, spec, &env)?;
        let header = &bytes[..bytes.len().min(8)];
        if backend::check_program(spec, header)?.is_none() {
            return Err(StartError::cannot_run(format!(
                "exec: \"{}\": not a WebAssembly module (it does not start with \\0asm): the wasi runtime runs only WebAssembly programs",
                spec.args[0]
            )));
        }
        let program = self.program(&spec.args[0], &bytes)?;
        let guest = launch::guest_spec(
            spec,
            env,
            &GuestFiles::Folder(workload.rootfs.to_path_buf()),
        );
        guest::run(&self.engine, &program, &guest).map_err(StartError::from)
    }
}

/// Reads the program `spec` names, found in `root` as execve would find it (a path, or a name
/// looked up in PATH), with Docker's messages when it is not there.
fn read_program(root: &Dir, spec: &WorkloadSpec, env: &[String]) -> Result<Vec<u8>, StartError> {
    let Some(name) = spec.args.first() else {
        return Err(StartError::berth(
            "no command specified: give the program to run",
        ));
    };
    let inside = |p: &str| p.trim_start_matches('/').to_string();
    let candidates: Vec<String> = if name.starts_with('/') {
        vec![inside(name)]
    } else if name.contains('/') {
        vec![inside(&format!(
            "{}/{name}",
            spec.cwd.trim_end_matches('/')
        ))]
    } else {
        let path = env
            .iter()
            .rev()
            .find_map(|kv| kv.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| inside(&format!("{}/{name}", d.trim_end_matches('/'))))
            .collect()
    };
    for c in &candidates {
        if root.metadata(Path::new(c)).is_ok_and(|m| m.is_file()) {
            return root
                .read(c)
                .map_err(|e| StartError::cannot_run(format!("reading \"{name}\": {e}")));
        }
    }
    Err(StartError::not_found(if name.contains('/') {
        format!("exec: \"{name}\": stat {name}: no such file or directory")
    } else {
        format!("exec: \"{name}\": executable file not found in $PATH")
    }))
}
