//! A container's record: its configuration and its run state.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::workload::WorkloadSpec;

/// A container's lifecycle state, as Docker names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Made, never started.
    Created,
    /// Its process runs.
    Running,
    /// Being restarted.
    Restarting,
    /// Its process ended.
    Exited,
    /// Being removed.
    Removing,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Restarting => "restarting",
            Status::Exited => "exited",
            Status::Removing => "removing",
        })
    }
}

/// How a container is isolated, which decides what starts and stops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Linux namespaces and cgroups, under a `__monitor` process.
    #[default]
    Namespaces,
    /// WASI's capabilities alone: the guest in a berth process of its own, with no namespaces
    /// (`--isolation wasi`, and every container where there is no Linux).
    Wasi,
}

/// What is running (or ran) right now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The lifecycle state.
    pub status: Status,
    /// The host pid of the container's first process.
    pub pid: Option<i32>,
    /// The host pid of the monitor holding the container.
    pub monitor_pid: Option<i32>,
    /// The monitor's start time (from /proc), so a reused pid is not taken for it.
    pub monitor_start: Option<u64>,
    /// The exit code once exited.
    pub exit_code: Option<i32>,
    /// When it last started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it last ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Whether the kernel's OOM killer ended it.
    pub oom_killed: bool,
    /// Why berth could not start it, if it could not.
    pub error: Option<String>,
    /// How often it was restarted.
    pub restart_count: u32,
    /// Frozen by `berth pause` (while running: its status stays running, as Docker's).
    #[serde(default)]
    pub paused: bool,
}

impl Default for RunState {
    fn default() -> Self {
        RunState {
            status: Status::Created,
            pid: None,
            monitor_pid: None,
            monitor_start: None,
            exit_code: None,
            started_at: None,
            finished_at: None,
            oom_killed: false,
            error: None,
            restart_count: 0,
            paused: false,
        }
    }
}

/// A container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    /// 64 hex characters.
    pub id: String,
    /// A unique name.
    pub name: String,
    /// The image as the user named it.
    pub image: String,
    /// The image id (config digest); keeps the image from removal.
    pub image_id: Digest,
    /// The image's layers (diff_ids), bottom first: the rootfs' lower dirs.
    pub layers: Vec<Digest>,
    /// When it was made.
    pub created: DateTime<Utc>,
    /// What runs.
    pub spec: WorkloadSpec,
    /// Published ports, as given (`-p`), resolved when the container starts.
    pub publish: Vec<String>,
    /// Host ports actually bound, `HOSTIP:HOSTPORT->PORT/PROTO`.
    pub ports: Vec<String>,
    /// Remove when it exits (`--rm`).
    pub auto_remove: bool,
    /// The signal `stop` sends first.
    pub stop_signal: String,
    /// Seconds `stop` waits before SIGKILL.
    pub stop_timeout: u64,
    /// Labels.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Where its output goes and how the log is rotated (`--log-driver`, `--log-opt`); a
    /// container recorded before these existed gets the default cap.
    #[serde(default)]
    pub log_config: super::log::LogConfig,
    /// Its places on bridge networks, from its first start on (kept across restarts, given
    /// back at its removal).
    #[serde(default)]
    pub endpoints: Vec<crate::workload::Endpoint>,
    /// How it is isolated (a container recorded before this existed had namespaces).
    #[serde(default)]
    pub isolation: Isolation,
    /// The run state.
    pub state: RunState,
}

impl Container {
    /// The 12-character id Docker shows.
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }

    /// Whether it runs, frozen by `berth pause`.
    pub fn is_paused(&self) -> bool {
        self.state.paused && self.state.status == Status::Running
    }

    /// Docker's STATUS column: `Up 3 minutes`, `Exited (0) 2 seconds ago`, `Created`.
    pub fn status_text(&self, ago: impl Fn(Option<DateTime<Utc>>) -> String) -> String {
        match self.state.status {
            Status::Created => "Created".into(),
            Status::Running => {
                let since = ago(self.state.started_at);
                let up = format!("Up {}", since.trim_end_matches(" ago"));
                if self.is_paused() {
                    format!("{up} (Paused)")
                } else {
                    up
                }
            }
            Status::Restarting => "Restarting".into(),
            Status::Removing => "Removing".into(),
            Status::Exited => format!(
                "Exited ({}) {}",
                self.state.exit_code.unwrap_or(0),
                ago(self.state.finished_at)
            ),
        }
    }
}

/// A new random container id.
pub fn new_id() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

/// A new random name in Docker's style (`adjective_noun`).
pub fn new_name() -> String {
    let mut g = names::Generator::default();
    g.next()
        .unwrap_or_else(|| "berth-container".into())
        .replace('-', "_")
}

/// Whether a process with `pid` runs and started at `start` (when known).
pub fn process_alive(pid: i32, start: Option<u64>) -> bool {
    match (process_start_time(pid), start) {
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// A process' start time (opaque, see [`super::process::start_time`]); `None` if it is gone
/// or a zombie.
pub fn process_start_time(pid: i32) -> Option<u64> {
    super::process::start_time(pid)
}
