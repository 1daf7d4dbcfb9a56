//! `berth exec`'s process, `berth __exec CONFIG`: joins a running container's namespaces
//! and cgroup, forks into its pid namespace, and there drops privileges as the container's
//! first process did and execs the command. It waits for the command and exits with its code.
//!
//! Like `__init` it is a fresh, single-threaded exec of berth, so setns (the mount namespace
//! needs a single-threaded caller) and fork are safe here.

use std::fs::File;
use std::path::Path;

use nix::sched::CloneFlags;
use nix::unistd::ForkResult;
use serde::{Deserialize, Serialize};

use super::init::wait_exit_code;
use super::{cgroups, pid1};
use crate::workload::{NetworkMode, StartError, WorkloadSpec};

/// What `berth exec` hands `__exec`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecConfig {
    /// The container id (names its cgroup).
    pub id: String,
    /// The host pid of the container's first process, whose namespaces are joined.
    pub pid: i32,
    /// The command: args, env, cwd and user for it; security as the container's.
    pub spec: WorkloadSpec,
    /// Join the container's cgroup.
    pub cgroup: bool,
    /// The store's compiled-module cache, for a WebAssembly command.
    #[serde(default)]
    pub wasm_cache: Option<crate::sandbox::wasi::cache::CacheLocation>,
    /// Where the container's cgroup is, when not `berth/<id>` (see `InitConfig::cgroup_path`).
    #[serde(default)]
    pub cgroup_path: Option<String>,
}

/// Runs `__exec`; never returns.
pub fn main(config: &Path) -> ! {
    match run(config) {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("berth: {e}");
            std::process::exit(e.code())
        }
    }
}

fn run(config: &Path) -> Result<std::convert::Infallible, StartError> {
    // Berth's binary in the container until the command's exec: nothing there may open this
    // process' /proc/PID/exe or memory meanwhile (the exec makes the command dumpable again).
    let _ = nix::sys::prctl::set_dumpable(false);
    let cfg: ExecConfig = std::fs::read(config)
        .map_err(|e| StartError::berth(format!("reading {}: {e}", config.display())))
        .and_then(|b| {
            serde_json::from_slice(&b)
                .map_err(|e| StartError::berth(format!("parsing {}: {e}", config.display())))
        })?;
    // Read and gone: `berth exec -d` returns once it sees the file removed.
    let _ = std::fs::remove_file(config);
    // Docker's umask for an exec'd command, as for the container's workload.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    // Into the cgroup before the namespaces (the container's mount namespace hides it): this
    // process joins the v1 hierarchies (single-threaded, without the wait a cgroup.procs write
    // costs) and forks the command into the v2 one. A user namespace's root cannot fork into
    // a cgroup of the host's, so there this process joins the whole cgroup first.
    let mut fork_target = cgroups::ForkTarget::default();
    if cfg.cgroup {
        let cg = super::init::open_cgroup(&cfg.id, cfg.cgroup_path.as_deref())?;
        if cfg.spec.security.userns {
            cg.add_process(std::process::id() as i32)
        } else {
            cg.join_v1_self()
                .and_then(|()| cg.fork_target())
                .map(|t| fork_target = t)
        }
        .map_err(StartError::berth)?;
    }
    // Opened while the store is in view (the container's mount namespace hides it).
    let wasm_cache = cfg.wasm_cache.as_ref().and_then(|c| c.open());
    let mut namespaces = Vec::new();
    // The user namespace first: the others belong to it.
    if cfg.spec.security.userns {
        namespaces.push(("user", CloneFlags::CLONE_NEWUSER));
    }
    namespaces.extend([
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
    ]);
    if cfg.spec.network != NetworkMode::Host {
        namespaces.push(("net", CloneFlags::CLONE_NEWNET));
    }
    namespaces.push(("pid", CloneFlags::CLONE_NEWPID));
    // The mount namespace last: after it, /proc is the container's.
    namespaces.push(("mnt", CloneFlags::CLONE_NEWNS));
    let files = namespaces
        .iter()
        .map(|(name, flag)| {
            File::open(format!("/proc/{}/ns/{name}", cfg.pid))
                .map(|f| (f, *flag))
                .map_err(|e| {
                    StartError::berth(format!(
                        "the container is not running ({name} namespace: {e})"
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (f, flag) in &files {
        nix::sched::setns(f, *flag)
            .map_err(|e| StartError::berth(format!("joining the container's namespaces: {e}")))?;
    }
    drop(files);
    if cfg.spec.security.userns {
        let (g, u) = (nix::unistd::Gid::from_raw(0), nix::unistd::Uid::from_raw(0));
        nix::unistd::setresgid(g, g, g).map_err(StartError::berth)?;
        nix::unistd::setresuid(u, u, u).map_err(StartError::berth)?;
    }
    // SAFETY: single-threaded (a fresh exec of berth), so the child may run any code.
    let forked = unsafe { fork_target.fork() }.map_err(StartError::berth)?;
    if forked.is_child() {
        fork_target.finish_join().map_err(StartError::berth)?;
    }
    drop(fork_target);
    match forked {
        ForkResult::Parent { child } => std::process::exit(wait_exit_code(child)),
        ForkResult::Child => {}
    }
    let spec = &cfg.spec;
    // A session of its own always: the caller's terminal must not be the command's controlling
    // terminal (TIOCSTI could type into the user's shell).
    let _ = nix::unistd::setsid();
    if spec.tty {
        // SAFETY: TIOCSCTTY on our stdin, the pty slave berth exec gave us.
        unsafe { nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) };
    }
    pid1::exec_command(spec, wasm_cache)
}
