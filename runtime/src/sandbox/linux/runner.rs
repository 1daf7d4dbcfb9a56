//! The native [`Runner`]: a workload in namespaces over a folder as its root filesystem, with
//! no container record or monitor. It starts the container's init as the monitor does
//! (`container::spawn`, `init.rs`, `pid1.rs`: the same namespaces, pivot, cgroup, capabilities,
//! seccomp and landlock), with the folder as the overlay's only lower layer and a writable
//! layer in a scratch folder that goes with the run; it waits for the init and gives the
//! workload's exit code. A WASI program in the folder runs as a guest in PID 1, as in a
//! container.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::cgroups::Cgroup;
use super::init::InitConfig;
use super::rootfs::RootfsPlan;
use super::status::{self, StartReport};
use crate::backend::Backend;
use crate::container::spawn::{self, InitHandoff, InitStdio};
use crate::sandbox::wasi::cache::CacheLocation;
use crate::workload::{NetworkMode, Runner, StartError, Workload};

/// Runs native workloads; their writable layers go under `scratch`.
pub struct NativeRunner {
    /// Where each run's writable layer and init config go (a folder per run, removed after).
    scratch: PathBuf,
    /// Where berth's binary is sealed when the init is exec'd (see `exe_seal`).
    run_root: PathBuf,
    /// The compile cache for a WASI program the workload runs.
    wasm_cache: Option<CacheLocation>,
}

impl NativeRunner {
    /// A runner keeping its runs' writable layers under `scratch` and sealing berth's binary
    /// under `run_root` (a store's run root).
    pub fn new(scratch: &Path, run_root: &Path) -> NativeRunner {
        NativeRunner {
            scratch: scratch.to_path_buf(),
            run_root: run_root.to_path_buf(),
            wasm_cache: None,
        }
    }

    /// Compiled WASI programs go to (and come from) `cache`.
    pub fn with_wasm_cache(mut self, cache: CacheLocation) -> NativeRunner {
        self.wasm_cache = Some(cache);
        self
    }
}

/// A run's scratch folder and cgroup, removed when the run ends whichever way.
struct RunFolder {
    dir: PathBuf,
    cgroup: Option<Cgroup>,
}

impl Drop for RunFolder {
    fn drop(&mut self) {
        if let Some(cg) = self.cgroup.take() {
            let _ = cg.remove();
        }
        let _ = crate::store::remove_tree(&self.dir);
    }
}

impl Runner for NativeRunner {
    fn backend(&self) -> Backend {
        Backend::Native
    }

    fn run(&self, workload: &Workload<'_>) -> Result<i32, StartError> {
        let spec = workload.spec;
        let id = workload.id;
        let named_well = !id.is_empty()
            && !id.starts_with('.')
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !named_well {
            return Err(StartError::berth(format!(
                "invalid workload id {id:?}: use letters, digits, '_', '.' and '-'"
            )));
        }
        if spec.security.userns {
            return Err(StartError::berth(
                "a user namespace needs the container monitor (berth run --userns), not a runner",
            ));
        }
        let dir = self.scratch.join(id);
        let mut folder = RunFolder {
            dir: dir.clone(),
            cgroup: None,
        };
        for (sub, mode) in [("upper", 0o755), ("work", 0o700), ("merged", 0o755)] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path)
                .and_then(|()| {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                })
                .map_err(|e| StartError::berth(format!("creating {}: {e}", path.display())))?;
        }
        folder.cgroup =
            Some(Cgroup::create(workload.id, &spec.cgroup_limits()).map_err(StartError::berth)?);
        let config = InitConfig {
            id: workload.id.to_string(),
            spec: spec.clone(),
            rootfs: plan(workload, &dir),
            cgroup: true,
            wasm_cache: self.wasm_cache.clone(),
            wasm_module: None,
            exit_fd: None,
            ready_fd: None,
            cleanup_fd: None,
            netns_spares: None,
            spare_folders: None,
            cleanup_in: None,
            networks: Vec::new(),
            cgroup_path: None,
            join: Vec::new(),
        };
        let (status_read, status_write) = nix::unistd::pipe().map_err(StartError::berth)?;
        close_on_exec(&status_read)?;
        super::cgroups::probe_host();
        let mut child = spawn::spawn(
            inherited_stdio()?,
            InitHandoff {
                config: &config,
                config_path: &dir.join("init.json"),
                status_fd: status_write.as_raw_fd(),
                go_fd: None,
                run_root: &self.run_root,
            },
        )
        .map_err(|e| StartError::berth(format!("starting the workload's init: {e}")))?;
        drop(status_write);
        if let StartReport::Failed(e) = status::read(File::from(status_read), |_| Ok(())) {
            child.kill();
            let _ = child.wait();
            return Err(e);
        }
        // `__init` exits with the workload's code once PID 1 has ended.
        let code = child
            .wait()
            .map_err(|e| StartError::berth(format!("waiting for the workload: {e}")));
        drop(folder);
        code
    }
}

/// The rootfs: the workload's folder as the overlay's only lower layer, its writes in `dir`.
fn plan(workload: &Workload<'_>, dir: &Path) -> RootfsPlan {
    let spec = workload.spec;
    RootfsPlan {
        lowerdirs: vec![workload.rootfs.to_path_buf()],
        upperdir: dir.join("upper"),
        workdir: dir.join("work"),
        merged: dir.join("merged"),
        etc_files: Vec::new(),
        mounts: spec.mounts.clone(),
        read_only: spec.read_only,
        privileged: spec.security.privileged,
        masked_paths: spec.security.masked_paths.clone(),
        readonly_paths: spec.security.readonly_paths.clone(),
        own_netns: spec.network != NetworkMode::Host,
        userxattr: false,
        wasi_guest: spec.backend == Backend::Wasi,
        volatile: true,
        prepared: false,
    }
}

/// This process' stdio, for the workload.
fn inherited_stdio() -> Result<InitStdio, StartError> {
    let dup = |fd: i32| -> Result<OwnedFd, StartError> {
        // SAFETY: 0, 1 and 2 are open for the life of the process; dup gives an fd of our own.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        borrowed
            .try_clone_to_owned()
            .map_err(|e| StartError::berth(format!("duplicating stdio: {e}")))
    };
    Ok(InitStdio {
        stdin: dup(0)?,
        stdout: dup(1)?,
        stderr: dup(2)?,
    })
}

/// Keeps this process' end of a pipe from the init's inheritance.
pub(super) fn close_on_exec(fd: &OwnedFd) -> Result<(), StartError> {
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map(drop)
    .map_err(StartError::berth)
}
