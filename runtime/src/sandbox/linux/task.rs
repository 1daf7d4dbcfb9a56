//! A workload started in two steps, for a host that creates a container and starts it later
//! (containerd's shim: its Create, then its Start). [`CreatedTask::create`] builds the container
//! up to its program's exec, as a monitor's start does (`init.rs`, `pid1.rs`: the namespaces,
//! some joined by path; the cgroup at the host's path; the root filesystem the host mounted
//! already), and PID 1 waits on the go pipe; [`CreatedTask::start`] lets it go. The host reaps
//! `__init`, its child, whose exit code is the workload's.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::cgroups::{Cgroup, CgroupPath};
use super::init::{InitConfig, NamespacePath};
use super::rootfs::RootfsPlan;
use super::runner::close_on_exec;
use super::status::TwoStep;
use crate::backend::Backend;
use crate::container::spawn::{self, InitHandoff, InitStdio};
use crate::sandbox::wasi::cache::CacheLocation;
use crate::workload::{NetworkMode, StartError, WorkloadSpec};

/// What a task is made of.
pub struct TaskSetup<'a> {
    /// Its id (names it in messages, and its cgroup when no path is given).
    pub id: &'a str,
    /// What to run.
    pub spec: &'a WorkloadSpec,
    /// Its root filesystem, mounted by the host.
    pub rootfs: &'a Path,
    /// Its cgroup, as `linux.cgroupsPath` gives it; `berth/<id>` when `None`.
    pub cgroup_path: Option<&'a str>,
    /// Namespaces joined instead of made.
    pub join: Vec<NamespacePath>,
    /// Its stdin, stdout and stderr.
    pub stdio: [OwnedFd; 3],
    /// A folder of the host's for this task (`__init`'s config goes there).
    pub state_dir: &'a Path,
    /// Where berth's binary is sealed when `__init` is exec'd (see `exe_seal`).
    pub run_root: &'a Path,
    /// The compile cache for a WASI program.
    pub wasm_cache: Option<CacheLocation>,
}

/// A container made and waiting to start.
pub struct CreatedTask {
    init_pid: i32,
    pid: i32,
    status: TwoStep,
    go: File,
    cgroup: Cgroup,
}

/// Removes a cgroup made for a task whose creation failed.
struct CgroupGuard(Option<Cgroup>);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        if let Some(cg) = self.0.take() {
            let _ = cg.kill_all(nix::libc::SIGKILL);
            let _ = cg.remove();
        }
    }
}

impl CreatedTask {
    /// Makes the container: its cgroup, then `__init`, which builds the namespaces and the
    /// rootfs and reports PID 1's pid; the program is found but not run.
    pub fn create(setup: TaskSetup<'_>) -> Result<CreatedTask, StartError> {
        let at = match setup.cgroup_path {
            Some(p) => CgroupPath::from_spec(p),
            None => CgroupPath::of_container(setup.id),
        }
        .map_err(StartError::berth)?;
        let guard = CgroupGuard(Some(
            Cgroup::create_at(setup.id, &at, &setup.spec.cgroup_limits())
                .map_err(StartError::berth)?,
        ));
        let config = InitConfig {
            id: setup.id.to_string(),
            spec: setup.spec.clone(),
            rootfs: plan(setup.spec, setup.rootfs),
            cgroup: true,
            wasm_cache: setup.wasm_cache.clone(),
            wasm_module: None,
            exit_fd: None,
            ready_fd: None,
            cleanup_fd: None,
            netns_spares: None,
            spare_folders: None,
            cleanup_in: None,
            networks: Vec::new(),
            cgroup_path: Some(at.as_path().display().to_string()),
            join: setup.join.clone(),
        };
        let (status_read, status_write) = pipe_to_us()?;
        let (go_read, go_write) = pipe_from_us()?;
        super::cgroups::probe_host();
        let [stdin, stdout, stderr] = setup.stdio;
        let child = spawn::spawn(
            InitStdio {
                stdin,
                stdout,
                stderr,
            },
            InitHandoff {
                config: &config,
                config_path: &setup.state_dir.join("init.json"),
                status_fd: status_write.as_raw_fd(),
                go_fd: Some(go_read.as_raw_fd()),
                run_root: setup.run_root,
            },
        )
        .map_err(|e| StartError::berth(format!("starting the container's init: {e}")))?;
        drop((status_write, go_read));
        let init_pid = child.pid().as_raw();
        let (status, pid) = TwoStep::pid(File::from(status_read)).inspect_err(|_| {
            let _ = nix::sys::signal::kill(child.pid(), nix::sys::signal::Signal::SIGKILL);
        })?;
        let mut guard = guard;
        Ok(CreatedTask {
            init_pid,
            pid,
            status,
            go: File::from(go_write),
            cgroup: guard.0.take().expect("made above"),
        })
    }

    /// PID 1's pid on the host.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// `__init`'s pid: the host's child, which exits with the workload's code.
    pub fn init_pid(&self) -> i32 {
        self.init_pid
    }

    /// Its cgroup.
    pub fn cgroup(&self) -> &Cgroup {
        &self.cgroup
    }

    /// Lets PID 1 run the program; says why it could not (a program not found is 127, as
    /// with `berth run`).
    pub fn start(mut self) -> Result<Cgroup, StartError> {
        // PID 1 may have ended already, having said why (a program not found): that is the
        // error, not the closed pipe.
        let written = self.go.write_all(b"g");
        drop(self.go);
        self.status.started()?;
        written.map_err(|e| StartError::berth(format!("starting the container: {e}")))?;
        Ok(self.cgroup)
    }
}

/// The rootfs: the host's, bound onto itself (no overlay), with the system mounts a native
/// workload needs (none for a WASI guest).
fn plan(spec: &WorkloadSpec, rootfs: &Path) -> RootfsPlan {
    RootfsPlan {
        lowerdirs: Vec::new(),
        upperdir: PathBuf::new(),
        workdir: PathBuf::new(),
        merged: rootfs.to_path_buf(),
        etc_files: Vec::new(),
        mounts: spec.mounts.clone(),
        read_only: spec.read_only,
        privileged: spec.security.privileged,
        masked_paths: spec.security.masked_paths.clone(),
        readonly_paths: spec.security.readonly_paths.clone(),
        // A joined network namespace is a pod's, which the host's root made: sysfs can be
        // mounted from it as from one of the container's own.
        own_netns: spec.network != NetworkMode::Host,
        userxattr: false,
        wasi_guest: spec.backend == Backend::Wasi,
        volatile: false,
        prepared: true,
    }
}

/// A pipe whose write end `__init` inherits.
fn pipe_to_us() -> Result<(OwnedFd, OwnedFd), StartError> {
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::empty()).map_err(StartError::berth)?;
    close_on_exec(&read)?;
    Ok((read, write))
}

/// A pipe whose read end `__init` inherits.
fn pipe_from_us() -> Result<(OwnedFd, OwnedFd), StartError> {
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::empty()).map_err(StartError::berth)?;
    close_on_exec(&write)?;
    Ok((read, write))
}
