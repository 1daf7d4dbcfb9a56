//! `berth`: build and run OCI images as native containers or WASI modules, without a daemon.

mod app;
#[cfg(target_os = "linux")]
mod build_progress;
mod commands;
mod output;
mod progress;

use std::process::ExitCode;

use clap::Parser;

use app::Cli;

/// The runtime backends compiled into this binary.
#[cfg(target_os = "linux")]
pub const BACKENDS: &[&str] = &["native", "wasi"];
/// The runtime backends compiled into this binary (native containers need Linux).
#[cfg(not(target_os = "linux"))]
pub const BACKENDS: &[&str] = &["wasi"];

/// `berth run ...` parsed without building every other command's arguments, about half a
/// millisecond of each run. Whatever it does not take as it is (help, a mistake) goes to the
/// full parser, which answers as it always does.
fn run_fast_path() -> Option<Cli> {
    #[derive(Debug, Parser)]
    #[command(name = "run", bin_name = "berth run", disable_help_flag = true)]
    struct RunCommand {
        #[command(flatten)]
        global: app::GlobalOptions,
        #[command(flatten)]
        args: commands::run::RunArgs,
    }
    if std::env::args_os().nth(1).is_none_or(|a| a != "run") {
        return None;
    }
    let cmd = RunCommand::try_parse_from(std::env::args_os().skip(1)).ok()?;
    Some(Cli {
        global: cmd.global,
        command: app::Command::Run(cmd.args),
    })
}

fn main() -> ExitCode {
    // A container whose program is a wasi:http component serves it (in its init too).
    berth_runtime::sandbox::wasi::http::register_server(berth_serve::serve_component);
    #[cfg(target_os = "linux")]
    if let Some(code) = commands::internal::init_fast_path() {
        return code;
    }
    let cli = match run_fast_path().map_or_else(Cli::try_parse, Ok) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let _ = e.print();
            return match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => ExitCode::SUCCESS,
                // Docker exits 125 when its own command line is wrong.
                _ => ExitCode::from(125),
            };
        }
    };
    // The runner of a WASI container logs to its monitor's log: its stderr is the container's.
    if !matches!(cli.command, app::Command::InternalWasiRun(_)) {
        app::init_logging(&cli.global);
    }
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth: {e:#}");
            ExitCode::from(commands::exit_code(&e))
        }
    }
}
