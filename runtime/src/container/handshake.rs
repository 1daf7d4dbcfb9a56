//! What the command that starts a detached monitor shares with it, for both kinds of monitor:
//! the monitor's own log, and the one line it writes on its stdout (the workload's pid, or
//! why it could not start).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Child;

use serde::de::DeserializeOwned;

use crate::store::Store;
use crate::workload::StartError;

/// Reads the monitor's first line as an `M`. A monitor that wrote none, or garbage, is waited
/// for and reported with its log at `log_path`.
pub(crate) fn read<M: DeserializeOwned>(
    child: &mut Child,
    log_path: &Path,
) -> Result<M, StartError> {
    let out = child.stdout.take().expect("the monitor's stdout is piped");
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .map_err(|e| StartError::berth(format!("reading from the container's monitor: {e}")))?;
    serde_json::from_str(line.trim_end()).map_err(|_| {
        let _ = child.wait();
        StartError::berth(format!(
            "the container's monitor ended without starting it (see {})",
            log_path.display()
        ))
    })
}

/// Creates (emptied) the log of container `id`'s monitor, its stderr; gives its path too.
pub(crate) fn monitor_log(store: &Store, id: &str) -> Result<(PathBuf, File), StartError> {
    let path = store.container_dir(id).join("monitor.log");
    let file = File::create(&path).map_err(|e| {
        StartError::berth(format!(
            "creating the monitor's log {}: {e}",
            path.display()
        ))
    })?;
    Ok((path, file))
}
