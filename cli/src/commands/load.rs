//! `berth load`: images from an archive made by `berth save`, `docker save` or skopeo.

use std::fs::File;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::app::GlobalOptions;

/// Arguments of `berth load`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth load -i busybox.tar\n  gunzip -c images.tar.gz | berth load"
)]
pub struct LoadArgs {
    /// Read from this file instead of standard input
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Print nothing
    #[arg(short, long)]
    pub quiet: bool,
}

/// Loads the archive.
pub fn run(g: &GlobalOptions, a: LoadArgs) -> Result<ExitCode> {
    let reader: Box<dyn Read> = match &a.input {
        Some(p) => Box::new(File::open(p).with_context(|| format!("opening {}", p.display()))?),
        None => {
            if std::io::stdin().is_terminal() {
                bail!("no archive given: use -i FILE or pipe one to standard input");
            }
            Box::new(std::io::stdin().lock())
        }
    };
    let store = super::open_store(g)?;
    let loaded = match store.load(reader) {
        Ok(l) => l,
        Err(e) => {
            // Blobs stored before the archive was refused are named by no image.
            let _ = store.collect_garbage();
            return Err(e.into());
        }
    };
    if !a.quiet {
        for l in loaded {
            if l.image.names.is_empty() {
                println!("Loaded image ID: {}", l.image.id);
            }
            for n in &l.image.names {
                println!("Loaded image: {}", n.familiar());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
