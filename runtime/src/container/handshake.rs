//! The one line a detached monitor writes on its stdout to the command that started it (the
//! workload's pid, or why it could not start), for both kinds of monitor.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Child;

use serde::de::DeserializeOwned;

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
