//! Hidden subcommands berth runs itself: `__init` (a container's first processes) and
//! `__monitor` (the detached process that holds a container), and `__exec`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use berth_runtime::container::monitor::{Attach, Monitor};
use berth_runtime::sandbox::linux::status::StatusMessage;
use clap::Args;

use crate::app::GlobalOptions;

/// Arguments of `__init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The init config file.
    pub config: PathBuf,
    /// The status pipe's fd.
    pub status_fd: i32,
    /// The monitor's pid.
    pub monitor: i32,
    /// The go pipe's fd (PID 1 waits on it before the workload runs).
    pub go_fd: Option<i32>,
}

/// Arguments of `__monitor`.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// The container id.
    pub id: String,
}

/// Arguments of `__exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The exec config file.
    pub config: PathBuf,
}

/// Arguments of `__dns`.
#[derive(Debug, Args)]
pub struct DnsArgs {
    /// The network.
    pub network: String,
}

/// `__init` alone on the command line: each container start runs it, and parsing berth's whole
/// command line (every subcommand's arguments) would cost it most of a millisecond.
#[derive(Debug, clap::Parser)]
#[command(name = "__init")]
struct InitCommand {
    #[command(flatten)]
    args: InitArgs,
}

/// Runs `__init` when it is this process' command (never returning then).
pub fn init_fast_path() -> Option<ExitCode> {
    use clap::Parser as _;
    if std::env::args_os().nth(1).is_none_or(|a| a != "__init") {
        return None;
    }
    let cmd = match InitCommand::try_parse_from(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return Some(ExitCode::from(125));
        }
    };
    crate::app::init_logging_at("warn");
    Some(init(cmd.args).unwrap_or(ExitCode::from(125)))
}

/// `__init`: never returns.
pub fn init(a: InitArgs) -> Result<ExitCode> {
    berth_runtime::sandbox::linux::init::main(&a.config, a.status_fd, a.monitor, a.go_fd)
}

/// `__exec`: never returns.
pub fn exec(a: ExecArgs) -> Result<ExitCode> {
    berth_runtime::sandbox::linux::nsexec::main(&a.config)
}

/// `__monitor`: detaches, starts the container, tells the parent on stdout (one status message:
/// the container's pid, or why it could not start), then holds the container until it ends.
pub fn monitor(g: &GlobalOptions, a: MonitorArgs) -> Result<ExitCode> {
    // Our own session: the terminal and process group of the command that started us do not
    // reach the container.
    let _ = nix::unistd::setsid();
    let store = super::open_store(g)?;
    let m = match Monitor::start(&store, &a.id, Attach::Detached) {
        Ok(m) => m,
        Err(e) => {
            let failed = StatusMessage::Failed(e.into_start_error());
            println!("{}", serde_json::to_string(&failed)?);
            // `run -d --rm` of a container that never started leaves nothing, as Docker's.
            if let Ok(c) = store.load_container(&a.id)
                && c.auto_remove
                && c.state.status != berth_runtime::container::Status::Running
            {
                let _ = berth_runtime::container::monitor::remove_container(&store, &c, true);
            }
            return Ok(ExitCode::from(1));
        }
    };
    println!("{}", serde_json::to_string(&StatusMessage::Pid(m.pid()))?);
    let _ = std::io::stdout().flush();
    // The parent stops reading after this line; later writes to stdout must not fail us.
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(null);
    }
    match m.wait() {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("berth monitor: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Runs a user-defined network's DNS server until the network has no containers.
pub fn dns(g: &GlobalOptions, a: DnsArgs) -> Result<ExitCode> {
    // Our own session: the start that made us does not end us.
    let _ = nix::unistd::setsid();
    let store = super::open_store(g)?;
    berth_runtime::network::dns::serve(store, &a.network)?;
    Ok(ExitCode::SUCCESS)
}
