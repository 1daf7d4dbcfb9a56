//! `berth version`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::json;

use crate::app::GlobalOptions;
use crate::output::{self, Format};

/// Arguments of `berth version`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  berth version\n  berth version --format json")]
pub struct VersionArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Prints the version.
pub fn run(_g: &GlobalOptions, a: VersionArgs) -> Result<ExitCode> {
    let (linux, arch) = berth_runtime::image::config::host_platform();
    let os = if cfg!(target_os = "linux") {
        linux
    } else {
        std::env::consts::OS
    };
    let v = json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "Os": os,
        "Arch": arch,
        "Backends": crate::BACKENDS,
    });
    match a.format {
        Format::Json => output::json_line(&v)?,
        Format::Table => {
            println!("berth version {}", env!("CARGO_PKG_VERSION"));
            println!(" OS/Arch:   {os}/{arch}");
            println!(
                " Backends:  {}",
                if crate::BACKENDS.is_empty() {
                    "none yet".to_string()
                } else {
                    crate::BACKENDS.join(", ")
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
