//! `berth completion`: shell completion scripts.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::app::Cli;

/// Arguments of `berth completion`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth completion bash > /etc/bash_completion.d/berth\n  berth completion zsh > \"${fpath[1]}/_berth\"\n  berth completion fish > ~/.config/fish/completions/berth.fish"
)]
pub struct CompletionArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Prints the script.
pub fn run(a: CompletionArgs) -> Result<ExitCode> {
    clap_complete::generate(
        a.shell,
        &mut Cli::command(),
        "berth",
        &mut std::io::stdout(),
    );
    Ok(ExitCode::SUCCESS)
}
