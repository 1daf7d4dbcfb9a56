//! The workload spec: what to run and with what isolation. One type, taken by every backend
//! (native processes and WASI modules alike), built by `berth run`/`create` from the image
//! config and the command line, and stored in the container's state.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::backend::Backend;

mod start_error;
pub mod user;

pub use start_error::{StartError, StartFailure};

/// Docker's PATH for images that set none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The workload's environment: the spec's, plus what Docker adds when the image did not set
/// it (PATH, HOSTNAME, HOME from the user's passwd entry, TERM with a tty). Every backend
/// gives its workload this.
pub fn workload_env(spec: &WorkloadSpec, home: &str) -> Vec<String> {
    let mut env = spec.env.clone();
    let has = |env: &[String], k: &str| {
        env.iter()
            .any(|kv| kv.split_once('=').map_or(kv.as_str(), |p| p.0) == k)
    };
    if !has(&env, "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !has(&env, "HOSTNAME") && !spec.hostname.is_empty() {
        env.push(format!("HOSTNAME={}", spec.hostname));
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={home}"));
    }
    if spec.tty && !has(&env, "TERM") {
        env.push("TERM=xterm".into());
    }
    env
}

/// Everything a backend needs to run a container's process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadSpec {
    /// argv: the entrypoint followed by the command.
    pub args: Vec<String>,
    /// `KEY=VALUE` entries, image first, then flags.
    pub env: Vec<String>,
    /// The working directory inside the container.
    pub cwd: String,
    /// `user[:group]` as names or ids; empty for root.
    pub user: String,
    /// The container's hostname.
    pub hostname: String,
    /// Bind mounts, volumes and tmpfs mounts, in the order given.
    pub mounts: Vec<MountSpec>,
    /// Resource limits.
    pub limits: Limits,
    /// Which network the workload gets.
    pub network: NetworkMode,
    /// A pseudo-terminal for stdio.
    pub tty: bool,
    /// Keep stdin open.
    pub stdin: bool,
    /// The rootfs is read-only.
    pub read_only: bool,
    /// Capabilities, seccomp, privileges.
    pub security: Security,
    /// Run a minimal init as PID 1 that forwards signals and reaps zombies.
    pub init: bool,
    /// Extra /etc/hosts entries (`host:ip`).
    pub extra_hosts: Vec<String>,
    /// The backend chosen for it (see `backend::select`).
    #[serde(default)]
    pub backend: Backend,
    /// `--runtime` chose the backend; otherwise a native choice still runs a program whose
    /// magic bytes say WebAssembly as WASI.
    #[serde(default)]
    pub backend_forced: bool,
}

/// A mount into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// What is mounted.
    pub kind: MountKind,
    /// The host path (bind), the volume's data folder (volume), or unused (tmpfs).
    pub source: PathBuf,
    /// The absolute path inside the container.
    pub destination: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// The volume's name, for named and anonymous volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// Fill an empty volume with what the image has at the destination.
    #[serde(default)]
    pub populate: bool,
}

/// Kinds of mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A host path.
    Bind,
    /// A named (or anonymous) volume under the berth root.
    Volume,
    /// A fresh tmpfs.
    Tmpfs,
}

/// Resource limits, enforced through cgroups (and StoreLimits for WASI).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Memory in bytes.
    pub memory: Option<u64>,
    /// CPUs, e.g. 0.5.
    pub cpus: Option<f64>,
    /// Most processes at once.
    pub pids: Option<i64>,
}

/// The network a workload gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// A network namespace of its own with loopback up (the default).
    #[default]
    Private,
    /// A network namespace of its own with loopback only and no route out, as Docker's `none`.
    None,
    /// The host's network.
    Host,
}

/// Security settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    /// `--cap-add` names.
    pub cap_add: Vec<String>,
    /// `--cap-drop` names.
    pub cap_drop: Vec<String>,
    /// `--privileged`: every capability, no seccomp, devices and /sys writable.
    pub privileged: bool,
    /// The default seccomp filter (off with `--security-opt seccomp=unconfined`).
    pub seccomp: bool,
    /// no_new_privs (always on unless privileged; `--security-opt no-new-privileges=false`).
    pub no_new_privs: bool,
    /// `--userns`: a user namespace mapping container root to an unprivileged host range.
    pub userns: bool,
}

impl Default for Security {
    fn default() -> Self {
        Security {
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            privileged: false,
            seccomp: true,
            no_new_privs: true,
            userns: false,
        }
    }
}

impl WorkloadSpec {
    /// The value of an environment variable.
    pub fn env_var(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find_map(|kv| kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }

    /// Sets an environment variable, replacing an earlier value.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env
            .retain(|kv| kv.split_once('=').map_or(kv.as_str(), |p| p.0) != key);
        self.env.push(format!("{key}={value}"));
    }
}
