//! `berth save`: images to a tar archive (an OCI layout plus Docker's manifest.json).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::app::GlobalOptions;

/// Arguments of `berth save`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth save -o busybox.tar busybox\n  berth save busybox app:1 | gzip > images.tar.gz\n  skopeo inspect oci-archive:busybox.tar"
)]
pub struct SaveArgs {
    /// Write to this file instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Images: names or ids
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Saves the images.
pub fn run(g: &GlobalOptions, a: SaveArgs) -> Result<ExitCode> {
    let store = super::open_store(g)?;
    let mut images: Vec<berth_runtime::image::Image> = Vec::new();
    for name in &a.images {
        let mut image = store.find_image(name)?;
        // Saved under the name asked for when it is a name; all its names when it is an id.
        if let Ok(r) = berth_runtime::ImageRef::parse(name)
            && image.names.contains(&r)
        {
            image.names = vec![r];
        }
        match images.iter_mut().find(|i| i.digest == image.digest) {
            Some(i) => {
                for n in image.names {
                    if !i.names.contains(&n) {
                        i.names.push(n);
                    }
                }
            }
            None => images.push(image),
        }
    }
    match &a.output {
        Some(path) => {
            // Written beside the target and renamed, so a failure never leaves half an archive.
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let mut tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("creating a file in {}", dir.display()))?;
            store.save(&images, tmp.as_file_mut())?;
            tmp.as_file().sync_all()?;
            tmp.persist(path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!(
                    "refusing to write an archive to a terminal: use -o FILE or redirect the output"
                );
            }
            let stdout = std::io::stdout().lock();
            let mut out = std::io::BufWriter::new(stdout);
            store.save(&images, &mut out)?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
