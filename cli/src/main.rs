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

fn main() -> ExitCode {
    #[cfg(target_os = "linux")]
    if let Some(code) = commands::internal::init_fast_path() {
        return code;
    }
    let cli = match Cli::try_parse() {
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
    app::init_logging(&cli.global);
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth: {e:#}");
            ExitCode::from(commands::exit_code(&e))
        }
    }
}
