//! Which server a function's containers belong to, written in their labels: a server removes
//! its own when it stops; the next server of the same source (file or image) removes those a
//! killed one left, and so does `berth container prune`.

use berth_runtime::container::Container;
use berth_runtime::container::state::{process_alive, process_start_time};
use sha2::{Digest, Sha256};

/// The label naming the server that owns a container: its pid and start time (`PID:START`).
pub const SERVER_LABEL: &str = "berth.serve.server";
/// The label naming the source the server serves (a hash of the file's path, or the image).
pub const SOURCE_LABEL: &str = "berth.serve.source";
/// The label naming the container's route.
pub const ROUTE_LABEL: &str = "berth.serve.route";

/// This server, as its containers' labels name it.
#[derive(Debug, Clone)]
pub struct Owner {
    /// `PID:START`.
    pub server: String,
    /// The source's key.
    pub source: String,
}

impl Owner {
    /// The running server, serving `source` (a serve file's path, or an image name).
    pub fn this_server(source: &str) -> Owner {
        let pid = std::process::id() as i32;
        let start = process_start_time(pid).unwrap_or(0);
        Owner {
            server: format!("{pid}:{start}"),
            source: source_key(source),
        }
    }

    /// Whether `c` is one of this server's.
    pub fn owns(&self, c: &Container) -> bool {
        c.labels.get(SERVER_LABEL) == Some(&self.server)
    }

    /// Whether `c` was left by an earlier server of the same source that has ended.
    pub fn left_by_predecessor(&self, c: &Container) -> bool {
        c.labels.get(SOURCE_LABEL) == Some(&self.source) && is_orphan(c)
    }
}

/// The key of a source: a file by its absolute path, an image by its name.
fn source_key(source: &str) -> String {
    let p = std::path::Path::new(source);
    let canonical = std::fs::canonicalize(p)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| source.to_string());
    let hash = Sha256::digest(canonical.as_bytes());
    hash.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Whether `c` belongs to a `berth serve` that is no longer running.
pub fn is_orphan(c: &Container) -> bool {
    let Some(server) = c.labels.get(SERVER_LABEL) else {
        return false;
    };
    let Some((pid, start)) = server.split_once(':') else {
        return true;
    };
    match (pid.parse::<i32>(), start.parse::<u64>()) {
        (Ok(pid), Ok(start)) => !process_alive(pid, Some(start).filter(|s| *s != 0)),
        _ => true,
    }
}
