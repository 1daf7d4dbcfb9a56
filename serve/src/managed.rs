//! A server run in the background (`berth serve -d`), as the store records it: under
//! `servers/<id>/`, its record (`server.json`, written by the server itself once started) and
//! its log (`log.json`, the access log and the functions' output, rotated as a container's
//! is). `ps`, `logs`, `stop`, `kill` and `rm` find servers by name or id as they find
//! containers; no daemon keeps them: a record whose process has ended shows as exited.

use std::path::PathBuf;

use berth_runtime::container::state::{process_alive, process_start_time};
use berth_runtime::store::Store;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The folder under the root that holds servers.
const FOLDER: &str = "servers";
/// A server's record in its folder.
const RECORD: &str = "server.json";

/// Why a server record could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManagedError {
    /// No server has that name or id.
    #[error("no such server: {0}")]
    NotFound(String),
    /// Several servers' ids start with it.
    #[error("{0:?} names several servers: give more of the id, or the name")]
    Ambiguous(String),
    /// The record could not be read or written.
    #[error("server record {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
}

/// A server run with `serve -d`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerRecord {
    /// 64 hex characters, as a container's.
    pub id: String,
    /// A unique name among servers and containers.
    pub name: String,
    /// What it serves: an image, or a serve file's path.
    pub source: String,
    /// When `serve -d` made it.
    pub created: DateTime<Utc>,
    /// Its process, once it runs.
    pub pid: Option<i32>,
    /// That process' start time, so a reused pid is not taken for it.
    pub pid_start: Option<u64>,
    /// The address it listens on, once it does.
    pub listen: Option<String>,
    /// When it ended, if it ended by itself (a stop, a failure).
    pub finished: Option<DateTime<Utc>>,
    /// Its exit code, when it ended by itself.
    pub exit_code: Option<i32>,
}

impl ServerRecord {
    /// A new record of a server about to start.
    pub fn new(id: String, name: String, source: String) -> ServerRecord {
        ServerRecord {
            id,
            name,
            source,
            created: Utc::now(),
            pid: None,
            pid_start: None,
            listen: None,
            finished: None,
            exit_code: None,
        }
    }

    /// Whether its process runs.
    pub fn running(&self) -> bool {
        self.finished.is_none()
            && self
                .pid
                .is_some_and(|pid| process_alive(pid, self.pid_start))
    }

    /// Docker's STATUS words: `Up 3 minutes`, `Exited (0) 2 seconds ago`; a server that was
    /// killed (no exit recorded) shows 137, as Docker shows a SIGKILL.
    pub fn status_text(&self, ago: impl Fn(Option<DateTime<Utc>>) -> String) -> String {
        if self.running() {
            return format!("Up {}", ago(Some(self.created)).trim_end_matches(" ago"));
        }
        match (self.exit_code, self.finished) {
            (Some(code), at) => format!("Exited ({code}) {}", ago(at)),
            (None, _) if self.pid.is_none() => "Created".into(),
            (None, _) => "Exited (137)".into(),
        }
    }

    /// The short id Docker shows.
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }
}

/// The folder of server `id`.
pub fn dir(store: &Store, id: &str) -> PathBuf {
    store.root().join(FOLDER).join(id)
}

/// The log of server `id`.
pub fn log_path(store: &Store, id: &str) -> PathBuf {
    dir(store, id).join(berth_runtime::container::log::FILE_NAME)
}

/// Writes `r` (atomically).
pub fn save(store: &Store, r: &ServerRecord) -> Result<(), ManagedError> {
    let d = dir(store, &r.id);
    let path = d.join(RECORD);
    let io = |e: std::io::Error| ManagedError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(&d).map_err(io)?;
    let bytes = serde_json::to_vec_pretty(r).map_err(|e| io(std::io::Error::other(e)))?;
    berth_runtime::store::atomic::write_atomic(&d, &path, &bytes).map_err(io)
}

/// Changes server `id`'s record with `f`.
pub fn update(
    store: &Store,
    id: &str,
    f: impl FnOnce(&mut ServerRecord),
) -> Result<(), ManagedError> {
    let mut r = load(store, id)?;
    f(&mut r);
    save(store, &r)
}

/// Reads server `id`'s record.
pub fn load(store: &Store, id: &str) -> Result<ServerRecord, ManagedError> {
    let path = dir(store, id).join(RECORD);
    let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ManagedError::NotFound(id.to_string()),
        _ => ManagedError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        },
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ManagedError::Io {
        path: path.display().to_string(),
        message: format!("not a server record: {e}"),
    })
}

/// Every server recorded, newest first.
pub fn list(store: &Store) -> Vec<ServerRecord> {
    let Ok(entries) = std::fs::read_dir(store.root().join(FOLDER)) else {
        return Vec::new();
    };
    let mut all: Vec<ServerRecord> = entries
        .flatten()
        .filter_map(|e| load(store, e.file_name().to_str()?).ok())
        .collect();
    all.sort_by_key(|r| std::cmp::Reverse(r.created));
    all
}

/// The server named `input`: by name, full id or unique id prefix.
pub fn find(store: &Store, input: &str) -> Result<ServerRecord, ManagedError> {
    let all = list(store);
    if let Some(r) = all.iter().find(|r| r.id == input || r.name == input) {
        return Ok(r.clone());
    }
    let hits: Vec<&ServerRecord> = all
        .iter()
        .filter(|r| !input.is_empty() && r.id.starts_with(input))
        .collect();
    match hits.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(ManagedError::NotFound(input.to_string())),
        _ => Err(ManagedError::Ambiguous(input.to_string())),
    }
}

/// Removes server `id`'s folder (its record and log).
pub fn remove(store: &Store, id: &str) -> Result<(), ManagedError> {
    let d = dir(store, id);
    berth_runtime::store::remove_tree(&d).map_err(|e| ManagedError::Io {
        path: d.display().to_string(),
        message: e.to_string(),
    })
}

/// Records that this process is server `id`, running.
pub fn started(store: &Store, id: &str) -> Result<(), ManagedError> {
    let pid = std::process::id() as i32;
    update(store, id, |r| {
        r.pid = Some(pid);
        r.pid_start = process_start_time(pid);
    })
}
