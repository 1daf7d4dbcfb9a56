//! `ctr task exec` (and kubelet's exec probes): another process in a native task's container,
//! run as `berth exec` runs one: this binary's `__exec` joins the container's namespaces and
//! cgroup and execs the command. A WASI task has no process to join.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use berth_runtime::sandbox::linux::exe_seal::SealedExe;
use berth_runtime::sandbox::linux::nsexec::ExecConfig;
use containerd_shim::protos::protobuf::well_known_types::any::Any;

use crate::console::Console;
use crate::instance::{Instance, RUN_ROOT};
use crate::life::{Life, Phase};

/// An exec'd process.
pub struct Exec {
    pub id: String,
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    config: ExecConfig,
    pid: Mutex<Option<i32>>,
    life: Life,
    /// It runs in a terminal of its own.
    terminal: bool,
    /// That terminal, once started.
    pub console: Mutex<Option<Arc<Console>>>,
}

impl Exec {
    /// An exec of the process in `spec` (containerd's runtime-spec Process, as JSON) into
    /// `task`, not started yet.
    pub fn new(
        task: &Instance,
        id: &str,
        spec: &Any,
        stdio: [&str; 3],
        terminal: bool,
    ) -> Result<Exec, String> {
        let named_well = !id.is_empty()
            && id.len() <= 76
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
            && !id.starts_with('.');
        if !named_well {
            return Err(format!(
                "invalid exec id {id:?}: use letters, digits, '_', '.' and '-'"
            ));
        }
        if task.wasi {
            return Err(format!(
                "task {} runs a WebAssembly guest, which has no namespaces to exec a process into: exec works in native tasks only",
                task.id
            ));
        }
        let process: oci_spec::runtime::Process = serde_json::from_slice(&spec.value)
            .map_err(|e| format!("reading the exec's process spec: {e}"))?;
        let args = process.args().clone().unwrap_or_default();
        if args.is_empty() {
            return Err("the exec's process has no args: give the command to run".into());
        }
        let mut workload = task.spec.clone();
        workload.args = args;
        workload.env = process.env().clone().unwrap_or_default();
        if !process.cwd().as_os_str().is_empty() {
            workload.cwd = process.cwd().display().to_string();
        }
        workload.user = format!("{}:{}", process.user().uid(), process.user().gid());
        workload.tty = terminal;
        workload.init = false;
        Ok(Exec {
            id: id.to_string(),
            stdin: stdio[0].to_string(),
            stdout: stdio[1].to_string(),
            stderr: stdio[2].to_string(),
            config: ExecConfig {
                id: task.id.clone(),
                pid: task.pid,
                spec: workload,
                cgroup: true,
                wasm_cache: None,
                cgroup_path: Some(task.cgroup_path.clone()),
            },
            pid: Mutex::new(None),
            life: Life::new(),
            terminal,
            console: Mutex::new(None),
        })
    }

    /// Starts it; gives its pid.
    pub fn start(&self, bundle: &Path) -> Result<i32, String> {
        if self.pid.lock().unwrap().is_some() {
            return Err(format!("exec {} was started already", self.id));
        }
        let [stdin, stdout, stderr] = if self.terminal {
            let (console, stdio) = Console::open(&self.stdin, &self.stdout)?;
            *self.console.lock().unwrap() = Some(Arc::new(console));
            stdio
        } else {
            crate::stdio::open(&self.stdin, &self.stdout, &self.stderr)?
        };
        let path = bundle.join(format!(".exec-{}.json", self.id));
        std::fs::write(&path, serde_json::to_vec(&self.config).unwrap_or_default())
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        // Never the host's file: the exec process joins the container (see `exe_seal`).
        let exe = SealedExe::of_self(Path::new(RUN_ROOT))
            .map_err(|e| format!("sealing the shim's binary: {e}"))?;
        let mut cmd = exe.command();
        cmd.arg("__exec")
            .arg(&path)
            .env_clear()
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        let child = cmd.spawn().map_err(|e| {
            let _ = std::fs::remove_file(&path);
            format!("starting exec {}: {e}", self.id)
        })?;
        let pid = child.id() as i32;
        *self.pid.lock().unwrap() = Some(pid);
        self.life.started();
        Ok(pid)
    }

    /// Its pid once started.
    pub fn pid(&self) -> Option<i32> {
        *self.pid.lock().unwrap()
    }

    /// Where it is.
    pub fn phase(&self) -> Phase {
        self.life.get()
    }

    /// Records its end.
    pub fn exited(&self, code: i32) {
        self.life.ended(code);
    }

    /// Waits for its end.
    pub fn wait(&self) -> (u32, SystemTime) {
        self.life.wait()
    }

    /// Sends it `signal`.
    pub fn kill(&self, signal: u32) -> Result<(), String> {
        let (Some(pid), Phase::Running) = (self.pid(), self.phase()) else {
            return Ok(());
        };
        crate::instance::send_signal(pid, signal)
            .map_err(|e| format!("signalling exec {}: {e}", self.id))
    }
}
