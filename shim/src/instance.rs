//! A task's container: made from its bundle at Create, let go at Start, its exit recorded when
//! the shim reaps its `__init`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::time::{Duration, SystemTime};

use berth_runtime::backend::{self, Backend, Evidence, ImageHints};
use berth_runtime::bundle::Bundle;
use berth_runtime::sandbox::linux::cgroups::Cgroup;
use berth_runtime::sandbox::linux::task::{CreatedTask, TaskSetup};
use berth_runtime::sandbox::wasi::cache::CacheLocation;
use berth_runtime::workload::{StartError, WorkloadSpec};

use crate::console::Console;
use crate::life::{Life, Phase};
use crate::state::{self, Saved};

/// Where the shim seals its binary for `__init` and `__exec` (see berth's `exe_seal`).
pub const RUN_ROOT: &str = "/run/berth-shim";

/// Runs every spawn of a container's `__init` on one thread that lives as long as the shim:
/// `__init` dies with the thread that made it (its parent-death signal), and the ttrpc
/// server's threads come and go.
pub struct Spawner(Mutex<Sender<Box<dyn FnOnce() + Send>>>);

impl Spawner {
    /// The thread.
    pub fn start() -> Spawner {
        let (tx, rx) = channel::<Box<dyn FnOnce() + Send>>();
        std::thread::Builder::new()
            .name("spawner".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .expect("starting the spawner thread");
        Spawner(Mutex::new(tx))
    }

    /// Runs `f` there and gives its result.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = channel();
        let job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.0
            .lock()
            .unwrap()
            .send(job)
            .expect("the spawner thread runs");
        rx.recv().expect("the spawner thread answers")
    }
}

/// What containerd asked for at Create.
pub struct Request {
    pub id: String,
    pub bundle: PathBuf,
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
    pub rootfs: Vec<containerd_shim::protos::types::mount::Mount>,
}

/// A task's container.
pub struct Instance {
    pub id: String,
    pub bundle: PathBuf,
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    /// PID 1's pid on the host.
    pub pid: i32,
    /// `__init`'s pid: the shim's child, reaped when the workload has ended.
    pub init_pid: i32,
    /// The workload runs as a WASI guest.
    pub wasi: bool,
    /// The spec, for execs.
    pub spec: WorkloadSpec,
    /// Where the cgroup is.
    pub cgroup_path: String,
    cgroup: Cgroup,
    created: Mutex<Option<CreatedTask>>,
    life: Life,
    /// containerd asked for SIGKILL: an exit by it is that, not the OOM killer.
    sigkill_sent: AtomicBool,
    /// Its terminal, when it has one.
    pub console: Option<Console>,
}

impl Instance {
    /// Makes the container of `req`'s bundle, up to its program's exec.
    pub fn create(req: Request, spawner: &Spawner) -> Result<Instance, String> {
        let bundle = Bundle::load(&req.bundle).map_err(|e| e.to_string())?;
        let mounted = state::mount_rootfs(&req.bundle, &req.rootfs)?;
        let rootfs = if mounted {
            state::rootfs_of(&req.bundle)
        } else {
            req.bundle.join(&bundle.root)
        };
        let made = Self::make(&req, bundle, &rootfs, spawner);
        if made.is_err() && mounted {
            state::unmount_rootfs(&req.bundle);
        }
        let (instance, saved) = made?;
        let saved = Saved {
            rootfs_mounted: mounted,
            ..saved
        };
        if let Err(e) = saved.save(&req.bundle) {
            log::warn!("saving the task's state in {}: {e}", req.bundle.display());
        }
        Ok(instance)
    }

    fn make(
        req: &Request,
        bundle: Bundle,
        rootfs: &Path,
        spawner: &Spawner,
    ) -> Result<(Instance, Saved), String> {
        let mut spec = bundle.spec;
        spec.backend = choose_backend(&spec, &bundle.annotations, rootfs)?;
        let (console, stdio) = if req.terminal {
            spec.tty = true;
            let (console, stdio) = Console::open(&req.stdin, &req.stdout)?;
            (Some(console), stdio)
        } else {
            let stdio = crate::stdio::open(&req.stdin, &req.stdout, &req.stderr)?;
            (None, stdio)
        };
        let cgroup_path = bundle
            .cgroup_path
            .clone()
            .unwrap_or_else(|| format!("berth/{}", req.id));
        std::fs::create_dir_all(RUN_ROOT).map_err(|e| format!("creating {RUN_ROOT}: {e}"))?;
        let (id, state_dir, rootfs_dir) =
            (req.id.clone(), req.bundle.clone(), rootfs.to_path_buf());
        let (task_spec, join, path) = (spec.clone(), bundle.join, cgroup_path.clone());
        // Opening berth's store costs a native start for nothing.
        let cache = (spec.backend == Backend::Wasi).then(wasm_cache).flatten();
        let created = spawner
            .run(move || {
                CreatedTask::create(TaskSetup {
                    id: &id,
                    spec: &task_spec,
                    rootfs: &rootfs_dir,
                    cgroup_path: Some(&path),
                    join,
                    stdio,
                    state_dir: &state_dir,
                    run_root: Path::new(RUN_ROOT),
                    wasm_cache: cache,
                })
            })
            .map_err(|e: StartError| e.message)?;
        let saved = Saved {
            id: req.id.clone(),
            pid: created.pid(),
            cgroup_path: cgroup_path.clone(),
            rootfs_mounted: false,
        };
        Ok((
            Instance {
                id: req.id.clone(),
                bundle: req.bundle.clone(),
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                pid: created.pid(),
                init_pid: created.init_pid(),
                wasi: spec.backend == Backend::Wasi,
                spec,
                cgroup_path,
                cgroup: created.cgroup().clone(),
                created: Mutex::new(Some(created)),
                life: Life::new(),
                sigkill_sent: AtomicBool::new(false),
                console,
            },
            saved,
        ))
    }

    /// Lets the workload run.
    pub fn start(&self) -> Result<(), String> {
        let Some(created) = self.created.lock().unwrap().take() else {
            return Err(format!("task {} was started already", self.id));
        };
        self.life.started();
        created.start().map(drop).map_err(|e| {
            // PID 1 said why and ended: its end is recorded before the error goes back, so
            // the Delete containerd sends next finds the task stopped.
            if !self.life.wait_for(Duration::from_secs(5)) {
                let _ = self.cgroup.kill_all(nix::libc::SIGKILL);
            }
            e.message
        })
    }

    /// Where it is now.
    pub fn phase(&self) -> Phase {
        self.life.get()
    }

    /// Records its end (its `__init` was reaped with `code`); says whether the OOM killer
    /// struck.
    pub fn exited(&self, code: i32) -> bool {
        self.life.ended(code);
        // The kernel signals its victim before it counts the kill (`__oom_kill_process`): a
        // SIGKILLed workload reaped at once may be counted a moment later. Waited for only
        // where the memory cgroup could have killed it (a limit, and no SIGKILL asked for),
        // as this holds up every other exit the shim reports.
        let maybe_oom = code == 128 + nix::libc::SIGKILL
            && self.spec.limits.memory.is_some()
            && !self.sigkill_sent.load(Ordering::Relaxed);
        if !maybe_oom {
            return self.cgroup.oom_killed();
        }
        (0..20).any(|i| {
            if i > 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
            self.cgroup.oom_killed()
        })
    }

    /// Waits for its end.
    pub fn wait(&self) -> (u32, SystemTime) {
        self.life.wait()
    }

    /// Sends `signal` to PID 1, or with `all` to every process of the container.
    pub fn kill(&self, signal: u32, all: bool) -> Result<(), String> {
        if matches!(self.phase(), Phase::Stopped(..)) {
            return Ok(());
        }
        if signal == nix::libc::SIGKILL as u32 {
            self.sigkill_sent.store(true, Ordering::Relaxed);
        }
        if all {
            return self
                .cgroup
                .kill_all(signal as i32)
                .map_err(|e| e.to_string());
        }
        send_signal(self.pid, signal).map_err(|e| format!("signalling task {}: {e}", self.id))
    }

    /// The container's processes.
    pub fn pids(&self) -> Vec<i32> {
        self.cgroup.pids().unwrap_or_default()
    }

    /// Everything it left: its cgroup and its rootfs mount.
    pub fn clean_up(&self) {
        if let Some(saved) = Saved::load(&self.bundle) {
            saved.clean_up(&self.bundle);
        } else {
            let _ = self.cgroup.kill_all(nix::libc::SIGKILL);
            let _ = self.cgroup.remove();
        }
    }
}

/// Sends `signal` (a number, as containerd gives it) to `pid`.
pub fn send_signal(pid: i32, signal: u32) -> Result<(), String> {
    let sig = nix::sys::signal::Signal::try_from(signal as i32)
        .map_err(|_| format!("signal {signal} is not a valid signal number"))?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).map_err(|e| e.to_string())
}

/// The backend, as `berth run` chooses it: the program's magic bytes in the rootfs, else the
/// image's wasm annotations (containerd copies them into the spec), else native.
fn choose_backend(
    spec: &WorkloadSpec,
    annotations: &[(String, String)],
    rootfs: &Path,
) -> Result<Backend, String> {
    let header = backend::program_header(&[rootfs.to_path_buf()], spec);
    let hints = ImageHints {
        platform: String::new(),
        wasm_platform: false,
        wasm_annotation: backend::has_wasm_annotation(
            annotations.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ),
    };
    backend::decide(
        "",
        &hints,
        Evidence {
            forced: None,
            program_header: header.as_deref(),
        },
    )
}

/// berth's compile cache (`BERTH_ROOT`, else berth's default root), so a module berth ran
/// before is not compiled again.
fn wasm_cache() -> Option<CacheLocation> {
    let root = std::env::var_os("BERTH_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(berth_runtime::store::Store::default_root);
    berth_runtime::store::Store::open(root)
        .ok()
        .map(|s| CacheLocation::of_store(&s))
}
