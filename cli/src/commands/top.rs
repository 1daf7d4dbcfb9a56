//! `berth top`: the processes of a running container.

use std::process::ExitCode;

use anyhow::{Result, bail};
use berth_runtime::container::Status;
use clap::Args;

use crate::app::GlobalOptions;

/// Arguments of `berth top`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  berth top web")]
pub struct TopArgs {
    /// The container: a name or an id
    pub container: String,
}

fn field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// Lists the processes in the container's pid namespace, as the host sees them.
pub fn run(g: &GlobalOptions, a: TopArgs) -> Result<ExitCode> {
    let store = super::open_store(g)?;
    let c = store.find_container(&a.container)?;
    let Some(pid) = c.state.pid.filter(|_| c.state.status == Status::Running) else {
        bail!("container {} is not running", c.name);
    };
    let ns = std::fs::read_link(format!("/proc/{pid}/ns/pid"))?;
    let mut rows = Vec::new();
    for e in std::fs::read_dir("/proc")?.flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if std::fs::read_link(format!("/proc/{p}/ns/pid"))
            .ok()
            .as_ref()
            != Some(&ns)
        {
            continue;
        }
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
        let cmd = std::fs::read(format!("/proc/{p}/cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .replace('\0', " ")
                    .trim()
                    .to_string()
            })
            .unwrap_or_default();
        rows.push((
            p,
            format!(
                "{}\t{p}\t{}\t{cmd}",
                field(&status, "Uid:"),
                field(&status, "PPid:")
            ),
        ));
    }
    rows.sort();
    crate::output::print_table("UID\tPID\tPPID\tCMD", rows.into_iter().map(|(_, r)| r))?;
    Ok(ExitCode::SUCCESS)
}
